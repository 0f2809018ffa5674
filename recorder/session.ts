// Turns the native recorder's events into a dump set: an index built per
// file from the metadata batches, committed in segments while the file is
// written, and the file published when the writer closes it.
import {
  BatchEvent, FileDoneEvent, FileOpenEvent, IndexBuilder, NoSpaceEvent, Recorder, RecorderEvent, RecorderOptions,
} from '../native/addon';
import { DiskBudget, diskBytes } from './disk-budget';
import { DumpSet, INDEX_SUFFIX, Published, slotsFor } from './dumpset';
import { createSegmentedIndex, SegmentedIndex, writeIndexFile } from './index-file';

/** A file being written is searchable up to its last segment, at most this old. */
const SEGMENT_INTERVAL_MS = 1000;
/**
 * While segments cannot be written, each attempt encodes everything since
 * the last written one: the wait doubles after each failure, up to this, so
 * that a full disk has the same packets encoded a few times rather than once
 * a second.
 */
const SEGMENT_RETRY_MAX_MS = 16_000;

interface OpenFile {
  path: string;
  builder: IndexBuilder;
  /** Undefined when it could not be created (disk full): the file is searchable once published. */
  index: SegmentedIndex | undefined;
  committed: number;
  pendingSegment: boolean;
  lastSegmentAt: number;
  /** Time from one segment to the next: SEGMENT_INTERVAL_MS, longer after failures. */
  segmentEvery: number;
  /** Bytes of NAME.pcap.part.idx written so far. */
  indexBytes: number;
}

/** The disk limit, as the session applies it. */
export interface SessionBudget {
  budget: DiskBudget;
  /** Bytes promised per file before the writer may create it: its largest size, with room for its index. */
  fileClaim: number;
}

export interface SessionTotals {
  files: number;
  packets: number;
  bytes: number;
}

export interface SessionHooks {
  /** Called after a file is published, with its final path. */
  published?: (path: string, packets: number, bytes: number) => void;
  /** Non-fatal and fatal errors, one line each. */
  error: (message: string, fatal: boolean) => void;
  /** Notices worth a line in the log (disk full, space back, the limit reached with -4). */
  notice: (message: string) => void;
  /** Each metadata batch once it is indexed (stats, micro-bursts); called on the JS thread, so keep it short. */
  batch?: (meta: ArrayBuffer, count: number) => void;
  /** True while no new file should be granted (an import with -M waits for compression); asked again every 250 ms. */
  holdFiles?: () => boolean;
}

export class Session {
  private readonly recorder: Recorder;
  private readonly files = new Map<number, OpenFile>();
  private segmentTimer: NodeJS.Timeout | undefined;
  private failed = false;
  /** Files the writer may create that it has not opened yet. */
  private granted = 0;
  private noSpaceTimer: NodeJS.Timeout | undefined;
  /** Stopped because the disk limit was reached and -4 forbids deleting. */
  limitReached = false;
  private noSpaceSince = 0;
  readonly totals: SessionTotals = { files: 0, packets: 0, bytes: 0 };
  /** Resolves when the recorder has ended and everything is published; true if all went well. */
  readonly finished: Promise<boolean>;
  private resolveFinished!: (ok: boolean) => void;

  constructor(
    opts: RecorderOptions,
    private readonly dumpSet: DumpSet,
    private readonly hooks: SessionHooks,
    private readonly limit?: SessionBudget,
  ) {
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    this.recorder = new Recorder({ ...opts, meteredFiles: limit !== undefined }, (ev) => this.onEvent(ev));
  }

  /** Starts recording. With a disk limit, throws when the limit leaves no room for a file. */
  start(): void {
    if (this.limit) {
      // The file being written and the next one are always paid for, so a
      // rotation never waits for a deletion.
      if (!this.grantFile()) throw new Error(`no room for a file of ${this.limit.fileClaim} bytes within the disk limit of ${this.limit.budget.limit} bytes`);
      this.grantFiles();
    }
    this.recorder.start();
    this.segmentTimer = setInterval(() => {
      this.commitDueSegments();
      this.grantFiles();
    }, SEGMENT_INTERVAL_MS / 4);
  }

  rotate(): void {
    this.recorder.rotate();
  }

  stop(): void {
    this.recorder.stop();
    // Waiting for space would hold the last file back forever.
    if (this.noSpaceTimer) this.recorder.refuseFiles();
  }

  stats(): ReturnType<Recorder['stats']> {
    return this.recorder.stats();
  }

  /** Bytes of pcap written: the published files, and what is committed of those being written. */
  get writtenBytes(): number {
    let bytes = this.totals.bytes;
    for (const f of this.files.values()) bytes += f.committed;
    return bytes;
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
        case 'nospace':
          return this.onNoSpace(ev);
        case 'end':
          clearInterval(this.segmentTimer);
          clearInterval(this.noSpaceTimer);
          return this.resolveFinished(!this.failed);
      }
    } catch (err) {
      // A file that cannot be indexed or published is reported and recording
      // goes on: what is on disk stays readable and can be repaired.
      this.hooks.error((err as Error).message, false);
    }
  }

  private onOpen(ev: FileOpenEvent): void {
    if (this.limit) {
      this.granted--;
      this.grantFiles();
    }
    this.files.set(ev.file, {
      path: ev.path,
      builder: new IndexBuilder({ linktype: ev.linktype, nano: ev.nano, snaplen: ev.snaplen }),
      index: this.whileFull(`cannot create ${ev.path}${INDEX_SUFFIX}`, () => createSegmentedIndex(ev.path + INDEX_SUFFIX)),
      committed: 0, // set by the first batch, before any segment is due
      pendingSegment: false,
      lastSegmentAt: Date.now(),
      segmentEvery: SEGMENT_INTERVAL_MS,
      indexBytes: 0,
    });
  }

  /**
   * Runs a write of ours; when the file system is full, our oldest files make
   * room and it is tried again. A write that still fails is reported and
   * given up (undefined): it only ever concerns an index, never packets.
   */
  private whileFull<T>(what: string, write: () => T): T | undefined {
    for (let attempt = 0; ; attempt++) {
      try {
        return write();
      } catch (err) {
        const full = ['ENOSPC', 'EDQUOT'].includes((err as NodeJS.ErrnoException).code ?? '');
        // Said as the writer says it: the operator learns the disk filled up either way.
        if (full && attempt === 0) this.hooks.notice(`file system full writing an index (${(err as Error).message}): deleting the oldest files`);
        if (full && attempt < 3 && this.limit?.budget.deleteOldest()) continue;
        this.hooks.error(`${what}: ${(err as Error).message}`, false);
        return undefined;
      }
    }
  }

  /** Lets the writer create one more file once its room is claimed; false when there is none. */
  private grantFile(): boolean {
    if (!this.limit || !this.limit.budget.claim(this.limit.fileClaim)) return false;
    this.granted++;
    this.recorder.grantFiles(1);
    return true;
  }

  /** Keeps the file being written and the next one paid for. */
  private grantFiles(): void {
    while (this.limit && this.granted < 2 && !this.hooks.holdFiles?.() && this.grantFile());
  }

  private onBatch(ev: BatchEvent): void {
    const f = this.files.get(ev.file);
    if (!f) return;
    f.builder.add(ev.meta, ev.count);
    this.hooks.batch?.(ev.meta, ev.count);
    f.committed = ev.committed;
    f.pendingSegment = true;
    if (Date.now() - f.lastSegmentAt >= f.segmentEvery) this.commitSegment(f);
  }

  private commitSegment(f: OpenFile): void {
    f.pendingSegment = false;
    f.lastSegmentAt = Date.now();
    if (!f.index) return;
    const segment = f.builder.segment(f.committed);
    try {
      const written = this.appendSegment(f, f.index, segment);
      if (written) f.builder.segmentWritten();
      f.segmentEvery = written ? SEGMENT_INTERVAL_MS : Math.min(2 * f.segmentEvery, SEGMENT_RETRY_MAX_MS);
    } finally {
      IndexBuilder.release(segment);
    }
  }

  /**
   * False when the segment could not be written, for lack of room within the
   * disk limit or on the file system: the next one covers its packets too,
   * and readers meanwhile see the file up to the last segment written.
   */
  private appendSegment(f: OpenFile, index: SegmentedIndex, segment: Uint8Array): boolean {
    const budget = this.limit?.budget;
    const grow = budget ? budget.blocks(f.indexBytes + segment.length + 8) - budget.blocks(f.indexBytes) : 0;
    if (budget && !budget.take(grow)) return false;
    const appended = this.whileFull(`cannot extend ${f.path}${INDEX_SUFFIX}`, () => {
      index.append(segment);
      return true;
    });
    if (appended) f.indexBytes += segment.length + 8;
    else budget?.release(grow);
    return appended === true;
  }

  private commitDueSegments(): void {
    for (const f of this.files.values()) {
      if (f.pendingSegment && Date.now() - f.lastSegmentAt >= f.segmentEvery) this.commitSegment(f);
    }
  }

  private onDone(ev: FileDoneEvent): void {
    const f = this.files.get(ev.file);
    if (!f) return;
    this.files.delete(ev.file);
    try {
      this.publishFile(f, ev);
    } finally {
      f.index?.close();
    }
  }

  private publishFile(f: OpenFile, ev: FileDoneEvent): void {
    // Where the file's segments can be its index, only the last one is
    // encoded, and appended to them; otherwise the whole file's.
    const last = f.index ? f.builder.finishFromSegments(ev.bytes) : undefined;
    const finalIndex = last ?? f.builder.finish(ev.bytes);
    const span = { minNs: f.builder.minNs, maxNs: f.builder.maxNs };
    const budget = this.limit?.budget;
    let taken = 0;
    if (budget) {
      // The promise for this file becomes what it really takes; its index
      // and any new timeline directories are paid for before they are written.
      budget.unclaim(this.limit!.fileClaim);
      budget.adjust(diskBytes(f.path));
      const dirs = slotsFor(span.minNs, span.maxNs, this.dumpSet.localTime).length + 2;
      taken = budget.blocks(finalIndex.length + 8) + dirs * budget.blockSize;
      if (!budget.take(taken)) taken = -1;
    }
    let published: Published;
    try {
      published = this.dumpSet.publish({
        partPath: f.path,
        writeIndex: (p) => this.writeFinalIndex(p, f, finalIndex, last !== undefined, taken >= 0),
        minNs: span.minNs,
        maxNs: span.maxNs,
      });
    } finally {
      IndexBuilder.release(finalIndex);
    }
    if (budget) {
      const idx = diskBytes(published.path + INDEX_SUFFIX);
      const made = published.made.reduce((sum, p) => sum + diskBytes(p), 0);
      budget.adjust(idx + made - Math.max(taken, 0) - budget.blocks(f.indexBytes));
      budget.addFile(published.path, diskBytes(published.path) + idx, span);
    }
    this.totals.files++;
    this.totals.packets += ev.packets;
    this.totals.bytes += ev.bytes;
    this.hooks.published?.(published.path, ev.packets, ev.bytes);
    if (budget?.keepAll && this.granted === 0 && !this.grantFile()) {
      // -4: the writer has no file left to write into.
      this.hooks.notice(`disk limit of ${budget.limit} bytes reached and -4 forbids deleting: stopping`);
      this.limitReached = true;
      this.recorder.refuseFiles();
      this.recorder.stop();
    }
  }

  /**
   * A file without its index is still published: extraction scans it, and
   * npcaprepair rebuilds the index. Only the index is given up, never packets.
   */
  private writeFinalIndex(p: string, f: OpenFile, index: Uint8Array, last: boolean, fits: boolean): void {
    const why = `${p} not written (npcaprepair rebuilds it)`;
    if (!fits) this.hooks.error(`${why}: no room within the disk limit`, false);
    else if (last) this.whileFull(why, () => f.index!.publish(index, p));
    else this.whileFull(why, () => writeIndexFile(p, index));
  }

  /**
   * Someone else filled the file system: our own oldest files go, one every
   * 100 ms, until the writer gets on again; the ring meanwhile holds what it can.
   */
  private onNoSpace(ev: NoSpaceEvent): void {
    if (!ev.full) {
      clearInterval(this.noSpaceTimer);
      this.noSpaceTimer = undefined;
      this.hooks.notice(`writing again after ${((Date.now() - this.noSpaceSince) / 1000).toFixed(1)} s without space`);
      return;
    }
    this.noSpaceSince = Date.now();
    let waiting = false;
    this.hooks.notice(`file system full writing ${ev.path} (${ev.message}): deleting the oldest files`);
    this.noSpaceTimer = setInterval(() => {
      if (this.limit?.budget.deleteOldest() || waiting) return;
      waiting = true;
      this.hooks.notice('no file of ours left to delete; waiting for space');
    }, 100);
  }
}
