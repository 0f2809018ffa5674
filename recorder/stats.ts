// The figures of one recorder instance, under n2disk's names, sampled once a
// second: written as a JSON file (--stats-file) and served to Prometheus
// (--metrics-port) from the same sample, so the two always agree.
import fs from 'node:fs';
import path from 'node:path';
import { RecorderStats } from '../native/addon';
import { metaWords, META_WORDS, WORD_TS_HI, WORD_TS_LO } from './packet-meta';

export interface InstanceStats {
  /** Seconds since the recorder started. */
  Duration: number;
  /** Bits per second captured over the last interval. */
  Throughput: number;
  /** Packets captured (seen by the capture thread) since start. */
  Packets: number;
  /** Packets the kernel dropped since start. */
  Dropped: number;
  /** Packets the kernel dropped in the last interval. */
  DroppedLastInterval: number;
  /** Bytes of the packets captured, as stored (after the snaplen). */
  Bytes: number;
  /** Bytes of pcap written: published files and what is committed of the current one. */
  DumpedBytes: number;
  /** Files published since start. */
  DumpedFiles: number;
  /** Epoch seconds of the first and of the latest packet stored since start; null before any. */
  FirstDumpedEpoch: number | null;
  LastDumpedEpoch: number | null;
  /** Bytes the dump set takes on disk, as the disk limit counts them (null without one). */
  BytesOnDisk: number | null;
  TimelinePath: string;
  /** Micro-bursts detected since start (--uburst-detection). */
  MicroBursts: number;
}

/** What a sample is made of, read from the session and the disk budget by the caller. */
export interface StatsInput {
  recorder: RecorderStats;
  dumpedBytes: number;
  dumpedFiles: number;
  bytesOnDisk: number | null;
}

const NS_PER_S = 1e9;

export class StatsCollector {
  private readonly startMs = Date.now();
  private lastMs = this.startMs;
  private lastBytes = 0;
  private firstNs: number | undefined;
  private lastNs: number | undefined;
  private bursts = 0;

  constructor(private readonly timelinePath: string) {}

  /**
   * Notes the first and the latest packet time of a metadata batch: two
   * records read per batch, nothing per packet.
   */
  observe(meta: ArrayBuffer, count: number): void {
    if (count === 0) return;
    const w = metaWords(meta, count);
    const tsAt = (i: number): number => w[i * META_WORDS + WORD_TS_HI]! * 2 ** 32 + w[i * META_WORDS + WORD_TS_LO]!;
    this.firstNs ??= tsAt(0);
    this.lastNs = tsAt(count - 1);
  }

  countBurst(): void {
    this.bursts++;
  }

  /** The figures now; drops in the last interval are those the recorder reported since the previous sample. */
  sample(input: StatsInput, nowMs = Date.now()): InstanceStats {
    const r = input.recorder;
    const seconds = (nowMs - this.lastMs) / 1000;
    const throughput = seconds > 0 ? Math.round(((r.bytes - this.lastBytes) * 8) / seconds) : 0;
    this.lastMs = nowMs;
    this.lastBytes = r.bytes;
    const epoch = (ns: number | undefined): number | null => (ns === undefined ? null : Math.floor(ns / NS_PER_S));
    return {
      Duration: Math.round((nowMs - this.startMs) / 1000),
      Throughput: throughput,
      Packets: r.packets,
      Dropped: r.dropped,
      DroppedLastInterval: r.dropIntervals.reduce((sum, d) => sum + d.dropped, 0),
      Bytes: r.bytes,
      DumpedBytes: input.dumpedBytes,
      DumpedFiles: input.dumpedFiles,
      FirstDumpedEpoch: epoch(this.firstNs),
      LastDumpedEpoch: epoch(this.lastNs),
      BytesOnDisk: input.bytesOnDisk,
      TimelinePath: this.timelinePath,
      MicroBursts: this.bursts,
    };
  }
}

/** Replaces the stats file at once (write beside it, rename), so a reader never sees half of it. */
export function writeStatsFile(file: string, stats: InstanceStats): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  fs.writeFileSync(tmp, `${JSON.stringify(stats, null, 2)}\n`);
  fs.renameSync(tmp, file);
}
