// -M: each published file is compressed by a pool of worker threads
// (recorder/compress-worker.ts) into NAME.pcap.lz4, which then replaces it.
// The order makes a crash at any instant leave the plain file or the whole
// compressed one, each with an index that describes it:
//   1. a worker writes NAME.pcap.lz4.tmp and fsyncs it;
//   2. the index is rewritten (atomically) with the chunk table: it still
//      describes NAME.pcap, whose offsets it keeps;
//   3. NAME.pcap.lz4.tmp becomes NAME.pcap.lz4;
//   4. links to it appear in the timeline, those to NAME.pcap go, then NAME.pcap.
// Recovery (recorder/repair.ts) removes a leftover .tmp and finishes step 4.
// The disk limit is kept throughout: the compressed file's largest size is
// taken before it is written, and the count drops to its real size after.
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { CompressAnswer, CompressJob } from './compress-worker';
import { compressedBound, frameBoundaries } from './compressed-file';
import { DiskBudget, diskBytes } from './disk-budget';
import { COMPRESSED_SUFFIX, COMPRESSING_SUFFIX, DumpSet, indexPathOf } from './dumpset';
import { readIndexFile, spanOf, TimeSpan, writeIndexWithChunks } from './index-file';

export interface CompressorHooks {
  /** A file was replaced by its compressed form (its final path), or was left plain (why). */
  compressed(plain: string, lz4: string, plainBytes: number, lz4Bytes: number): void;
  leftPlain(plain: string, why: string): void;
}

interface Pending {
  job: CompressJob;
  span: TimeSpan;
  /** Bytes taken from the disk budget for the compressed file while it is written. */
  taken: number;
}

/** Threads: one core is left to capture. */
export const compressThreads = (): number => Math.max(1, Math.min(4, os.availableParallelism() - 1));

export class Compressor {
  private readonly idle: Worker[] = [];
  private readonly busy = new Map<Worker, Pending>();
  private readonly queue: Pending[] = [];
  private nextId = 0;
  private drained: (() => void) | undefined;

  constructor(
    private readonly dumpSet: DumpSet,
    private readonly budget: DiskBudget,
    private readonly hooks: CompressorHooks,
    threads = compressThreads(),
  ) {
    for (let i = 0; i < threads; i++) {
      const w = new Worker(path.join(__dirname, 'compress-worker.js'));
      w.on('message', (a: CompressAnswer) => this.onAnswer(w, a));
      w.on('error', (e) => this.onAnswer(w, { id: -1, ok: false, error: e.message }));
      this.idle.push(w);
    }
  }

  /** Queues a published file (its index beside it). */
  add(plain: string): void {
    let index;
    try {
      index = readIndexFile(indexPathOf(plain));
    } catch (e) {
      return this.hooks.leftPlain(plain, `no usable index (${(e as Error).message})`);
    }
    const span = spanOf(index);
    if (!span) return this.hooks.leftPlain(plain, 'no packet');
    const boundaries = frameBoundaries(index);
    const job: CompressJob = { id: this.nextId++, src: plain, dst: plain + COMPRESSING_SUFFIX, boundaries };
    this.queue.push({ job, span, taken: 0 });
    this.dispatch();
  }

  /** Files queued or being compressed. */
  get backlog(): number {
    return this.queue.length + this.busy.size;
  }

  /** Threads compressing. */
  get threads(): number {
    return this.idle.length + this.busy.size;
  }

  /** Resolves once every queued file is done; the threads then end. */
  async close(): Promise<void> {
    if (this.queue.length || this.busy.size) await new Promise<void>((resolve) => (this.drained = resolve));
    await Promise.all(this.idle.map((w) => w.terminate()));
  }

  private dispatch(): void {
    while (this.idle.length && this.queue.length) {
      const p = this.queue.shift()!;
      const { job } = p;
      // Deleting the oldest files to make room can delete this very file.
      const need = this.budget.blocks(compressedBound(job.boundaries[job.boundaries.length - 1]!, job.boundaries.length));
      if (!this.budget.take(need)) {
        this.hooks.leftPlain(job.src, 'no room within the disk limit to write its compressed form beside it');
        continue;
      }
      p.taken = need;
      if (!fs.existsSync(job.src)) {
        this.budget.release(need);
        continue;
      }
      const w = this.idle.pop()!;
      this.busy.set(w, p);
      w.postMessage(job);
    }
    if (!this.queue.length && !this.busy.size) this.drained?.();
  }

  private onAnswer(w: Worker, a: CompressAnswer): void {
    const p = this.busy.get(w);
    if (!p) return;
    this.busy.delete(w);
    this.idle.push(w);
    try {
      this.finish(p, a);
    } finally {
      this.budget.release(p.taken);
      this.dispatch();
    }
  }

  /** Steps 2 to 4, on the recorder's thread: nothing else moves files meanwhile. */
  private finish(p: Pending, a: CompressAnswer): void {
    const { src: plain, dst: tmp } = p.job;
    const lz4 = plain + COMPRESSED_SUFFIX;
    if (!a.ok || !fs.existsSync(plain)) {
      // Failed, or the disk limit deleted the file meanwhile.
      fs.rmSync(tmp, { force: true });
      if (!a.ok) this.hooks.leftPlain(plain, a.error);
      return;
    }
    const idx = indexPathOf(plain);
    const plainBytes = diskBytes(plain);
    const idxBefore = diskBytes(idx);
    try {
      writeIndexWithChunks(idx, { plain: a.plain, packed: a.packed });
      fs.renameSync(tmp, lz4);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      return this.hooks.leftPlain(plain, (e as Error).message);
    }
    const made = this.dumpSet.replaceWithCompressed(plain, p.span);
    const lz4Bytes = diskBytes(lz4);
    const idxBytes = diskBytes(idx);
    this.budget.adjust(lz4Bytes + idxBytes - idxBefore - plainBytes + made.reduce((n, m) => n + diskBytes(m), 0));
    this.budget.replaceFile(plain, lz4, lz4Bytes + idxBytes);
    this.hooks.compressed(plain, lz4, plainBytes, lz4Bytes);
  }
}
