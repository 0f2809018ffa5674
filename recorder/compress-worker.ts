// A compression thread of -M (recorder/compressor.ts): turns one published
// pcap into NAME.pcap.lz4.tmp and answers with its chunk table, so the
// recorder's own thread never spends time compressing.
import { parentPort } from 'node:worker_threads';
import { compressPcap } from './compressed-file';

/** A file to compress, as the recorder asks. */
export interface CompressJob {
  id: number;
  src: string;
  dst: string;
  boundaries: number[];
}

/** The answer: the frames written, or why there are none. */
export type CompressAnswer = { id: number; ok: true; plain: number[]; packed: number[] } | { id: number; ok: false; error: string };

const port = parentPort;
if (!port) throw new Error('compress-worker runs as a worker thread');
port.on('message', (job: CompressJob) => {
  let answer: CompressAnswer;
  try {
    const table = compressPcap(job.src, job.dst, job.boundaries);
    answer = { id: job.id, ok: true, plain: table.plain, packed: table.packed };
  } catch (e) {
    answer = { id: job.id, ok: false, error: (e as Error).message };
  }
  port.postMessage(answer);
});
