// The disk limit: the dump set (pcaps, indexes, timeline) never occupies more
// than `limit` bytes, at any moment. Space is claimed before anything is
// written, a whole file's worth before the writer may create a file, and an
// index's worth before it is written; the oldest files make room, each with
// its index and its links. What is on disk when the recorder starts counts.
import fs from 'node:fs';
import path from 'node:path';
import { DumpSet, indexPathOf, listStorageFiles } from './dumpset';
import { readIndexSpan } from './index-file';

interface StoredFile {
  pcap: string;
  /** Bytes on disk of the pcap and its index. */
  bytes: number;
  /** Known for files published in this run; read from the index otherwise. */
  span?: { minNs: bigint; maxNs: bigint };
}

export interface BudgetHooks {
  /** A file was deleted to make room. */
  deleted(pcap: string, bytes: number): void;
}

/** Bytes a path occupies on disk (0 when it is gone). */
export function diskBytes(p: string): number {
  try {
    return fs.lstatSync(p).blocks * 512;
  } catch {
    return 0;
  }
}

/** Bytes on disk of everything under `dir`, the directory itself included; `sizes` gets each file's. */
export function treeBytes(dir: string, sizes?: Map<string, number>): number {
  let total = diskBytes(dir);
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return total;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      total += treeBytes(p, sizes);
    } else {
      const bytes = diskBytes(p);
      sizes?.set(p, bytes);
      total += bytes;
    }
  }
  return total;
}

/** `--disk-limit` as given: megabytes, or a percentage of the storage file system. */
export function parseDiskLimit(text: string, storage: string): number {
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(text.trim());
  if (!m) throw new Error(`disk limit '${text}' is neither megabytes nor a percentage (e.g. 2048 or 80%)`);
  const n = Number(m[1]);
  if (!m[2]) return n * 2 ** 20;
  if (n <= 0 || n > 100) throw new Error(`disk limit ${text} is not a percentage between 0 and 100`);
  const st = fs.statfsSync(storage);
  return Math.floor((st.blocks * st.bsize * n) / 100);
}

export class DiskBudget {
  /** Oldest first; deleted ones become undefined until the list is compacted. */
  private readonly files: (StoredFile | undefined)[] = [];
  private oldest = 0;
  /** Bytes on disk now, as far as this process has counted. */
  private used = 0;
  /** Bytes promised to files the writer may create or is writing. */
  private claimed = 0;
  readonly blockSize: number;

  constructor(
    private readonly dumpSet: DumpSet,
    readonly limit: number,
    /** -4: never delete; a claim that does not fit fails instead. */
    readonly keepAll: boolean,
    private readonly hooks: BudgetHooks,
  ) {
    this.blockSize = fs.statfsSync(dumpSet.storage).bsize;
  }

  /** Counts what is on disk already (a restart, files deleted by hand, an earlier run). */
  init(): void {
    const sizes = new Map<string, number>();
    this.used = treeBytes(this.dumpSet.storage, sizes);
    if (!this.dumpSet.timeline.startsWith(this.dumpSet.storage + path.sep)) this.used += treeBytes(this.dumpSet.timeline);
    for (const pcap of listStorageFiles(this.dumpSet.storage)) {
      this.files.push({ pcap, bytes: (sizes.get(pcap) ?? 0) + (sizes.get(indexPathOf(pcap)) ?? 0) });
    }
  }

  /** Bytes the dump set is counted at: on disk, plus what is promised to the writer. */
  get usage(): number {
    return this.used + this.claimed;
  }

  /** Bytes on disk now, without what is promised to the writer. */
  get onDisk(): number {
    return this.used;
  }

  /** Whole blocks for `bytes` of a file. */
  blocks(bytes: number): number {
    return Math.ceil(bytes / this.blockSize) * this.blockSize;
  }

  /**
   * Makes room for `bytes` more by deleting the oldest files, as few as will
   * do. False when no file is left to delete, or with keepAll when anything
   * would have to be.
   */
  private makeRoom(bytes: number): boolean {
    while (this.used + this.claimed + bytes > this.limit) {
      if (this.keepAll || !this.deleteOldest()) return false;
    }
    return true;
  }

  /** Promises `bytes` to the writer (a file it may create). */
  claim(bytes: number): boolean {
    if (!this.makeRoom(bytes)) return false;
    this.claimed += bytes;
    return true;
  }

  /** A promise is kept or given back: `bytes` leave the promised count. */
  unclaim(bytes: number): void {
    this.claimed -= bytes;
  }

  /** Room for `bytes` that are about to be written by this process; counted as used. */
  take(bytes: number): boolean {
    if (!this.makeRoom(bytes)) return false;
    this.used += bytes;
    return true;
  }

  /** Bytes that left the disk (a temporary removed, a file cut). */
  release(bytes: number): void {
    this.used -= bytes;
  }

  /** Corrects the count by what a write really took beyond what was taken for it. */
  adjust(delta: number): void {
    this.used += delta;
  }

  /** A file just published: from now on it may be deleted, oldest first. */
  addFile(pcap: string, bytes: number, span: { minNs: bigint; maxNs: bigint }): void {
    this.files.push({ pcap, bytes, span });
  }

  /** A file compressed (-M): it is deleted under its new name and counts its new size. */
  replaceFile(pcap: string, by: string, bytes: number): void {
    for (let i = this.files.length - 1; i >= this.oldest; i--) {
      const f = this.files[i];
      if (f?.pcap !== pcap) continue;
      f.pcap = by;
      f.bytes = bytes;
      return;
    }
  }

  /** Deletes the oldest file with its index and links. False when there is none. */
  deleteOldest(): boolean {
    const f = this.files[this.oldest];
    if (!f) return false;
    this.files[this.oldest++] = undefined;
    if (this.oldest > 1024 && this.oldest * 2 > this.files.length) {
      this.files.splice(0, this.oldest);
      this.oldest = 0;
    }
    const removed = this.dumpSet.remove(f.pcap, f.span ?? readIndexSpan(indexPathOf(f.pcap)));
    const dirs = removed.filter((p) => !/\.(pcap|idx)$/.test(p)).length;
    const freed = f.bytes + dirs * this.blockSize;
    this.used -= freed;
    this.hooks.deleted(f.pcap, freed);
    return true;
  }

  /** Files that may still be deleted. */
  get fileCount(): number {
    return this.files.length - this.oldest;
  }
}

