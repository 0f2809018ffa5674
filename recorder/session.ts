// Turns the native recorder's events into a dump set: an index built per
// file from the metadata batches, committed in segments while the file is
// written, and the file published when the writer closes it.
import { BatchEvent, FileDoneEvent, FileOpenEvent, Recorder, RecorderEvent, RecorderOptions } from '../native/addon';
import { DumpSet, INDEX_SUFFIX } from './dumpset';
import { IndexBuilder } from './index-builder';
import { createSegmentedIndex, SegmentedIndex, writeIndexFile } from './index-file';

/** A file being written is searchable up to its last segment, at most this old. */
const SEGMENT_INTERVAL_MS = 1000;

interface OpenFile {
  path: string;
  builder: IndexBuilder;
  index: SegmentedIndex;
  committed: number;
  pendingSegment: boolean;
  lastSegmentAt: number;
}

export interface SessionTotals {
  files: number;
  packets: number;
  bytes: number;
  flows: number;
}

export interface SessionHooks {
  /** Called after a file is published, with its final path. */
  published?: (path: string, packets: number, bytes: number) => void;
  /** Non-fatal and fatal errors, one line each. */
  error: (message: string, fatal: boolean) => void;
}

export class Session {
  private readonly recorder: Recorder;
  private readonly files = new Map<number, OpenFile>();
  private segmentTimer: NodeJS.Timeout | undefined;
  private failed = false;
  readonly totals: SessionTotals = { files: 0, packets: 0, bytes: 0, flows: 0 };
  /** Resolves when the recorder has ended and everything is published; true if all went well. */
  readonly finished: Promise<boolean>;
  private resolveFinished!: (ok: boolean) => void;

  constructor(
    opts: RecorderOptions,
    private readonly dumpSet: DumpSet,
    private readonly hooks: SessionHooks,
  ) {
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    this.recorder = new Recorder(opts, (ev) => this.onEvent(ev));
  }

  start(): void {
    this.recorder.start();
    this.segmentTimer = setInterval(() => this.commitDueSegments(), SEGMENT_INTERVAL_MS / 4);
  }

  rotate(): void {
    this.recorder.rotate();
  }

  stop(): void {
    this.recorder.stop();
  }

  stats(): ReturnType<Recorder['stats']> {
    return this.recorder.stats();
  }

  private onEvent(ev: RecorderEvent): void {
    try {
      switch (ev.type) {
        case 'open':
          return this.onOpen(ev);
        case 'batch':
          return this.onBatch(ev);
        case 'done':
          return this.onDone(ev);
        case 'error':
          if (ev.fatal) this.failed = true;
          return this.hooks.error(ev.message, ev.fatal);
        case 'end':
          clearInterval(this.segmentTimer);
          return this.resolveFinished(!this.failed);
      }
    } catch (err) {
      // A file that cannot be indexed or published is reported and recording
      // goes on: what is on disk stays readable and can be repaired.
      this.hooks.error((err as Error).message, false);
    }
  }

  private onOpen(ev: FileOpenEvent): void {
    this.files.set(ev.file, {
      path: ev.path,
      builder: new IndexBuilder({ linktype: ev.linktype, nano: ev.nano, snaplen: ev.snaplen }),
      index: createSegmentedIndex(ev.path + INDEX_SUFFIX),
      committed: 0, // set by the first batch, before any segment is due
      pendingSegment: false,
      lastSegmentAt: Date.now(),
    });
  }

  private onBatch(ev: BatchEvent): void {
    const f = this.files.get(ev.file);
    if (!f) return;
    f.builder.add(ev.meta, ev.count);
    f.committed = ev.committed;
    f.pendingSegment = true;
    if (Date.now() - f.lastSegmentAt >= SEGMENT_INTERVAL_MS) this.commitSegment(f);
  }

  private commitSegment(f: OpenFile): void {
    f.index.append(f.builder.segment(f.committed));
    f.pendingSegment = false;
    f.lastSegmentAt = Date.now();
  }

  private commitDueSegments(): void {
    for (const f of this.files.values()) {
      if (f.pendingSegment && Date.now() - f.lastSegmentAt >= SEGMENT_INTERVAL_MS) this.commitSegment(f);
    }
  }

  private onDone(ev: FileDoneEvent): void {
    const f = this.files.get(ev.file);
    if (!f) return;
    this.files.delete(ev.file);
    f.index.close();
    const finalIndex = f.builder.finish(ev.bytes);
    const finalPath = this.dumpSet.publish({
      partPath: f.path,
      writeIndex: (p) => writeIndexFile(p, finalIndex),
      minNs: f.builder.minNs,
      maxNs: f.builder.maxNs,
    });
    this.totals.files++;
    this.totals.packets += ev.packets;
    this.totals.bytes += ev.bytes;
    this.totals.flows += f.builder.flowCount;
    this.hooks.published?.(finalPath, ev.packets, ev.bytes);
  }
}
