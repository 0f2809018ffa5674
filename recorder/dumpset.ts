// The dump set on disk, defined once: where pcap files and their indexes
// live, what a file being written is called, and the timeline of links in
// 10-minute slots. The recorder writes it; extraction and the tools read it
// through this module only.
import fs from 'node:fs';
import path from 'node:path';

/** Suffix of a pcap file still being written (and of its segmented index). */
export const PART_SUFFIX = '.part';
export const INDEX_SUFFIX = '.idx';
/** A published file compressed with -M is NAME.pcap.lz4 (recorder/compressed-file.ts); its index stays NAME.pcap.idx. */
export const COMPRESSED_SUFFIX = '.lz4';
/** A compressed file being written, beside the plain file it will replace. */
export const COMPRESSING_SUFFIX = COMPRESSED_SUFFIX + '.tmp';
const PCAP = '.pcap';
const PCAP_LZ4 = PCAP + COMPRESSED_SUFFIX;

export const isCompressedPath = (p: string): boolean => p.endsWith(PCAP_LZ4);
/** NAME.pcap for NAME.pcap or NAME.pcap.lz4. */
export const plainPathOf = (p: string): string => (isCompressedPath(p) ? p.slice(0, -COMPRESSED_SUFFIX.length) : p);
/** The index of a published file, plain or compressed: NAME.pcap.idx. */
export const indexPathOf = (p: string): string => plainPathOf(p) + INDEX_SUFFIX;
/** A published pcap file's name, plain or compressed. */
const isPublishedName = (n: string): boolean => n.endsWith(PCAP) || n.endsWith(PCAP_LZ4);

/** One entry per published file: NAME.pcap.lz4 stands for NAME.pcap when both exist (a compression being finished). */
function publishedNames(names: string[]): string[] {
  const all = new Set(names.filter(isPublishedName));
  return [...all].filter((n) => isCompressedPath(n) || !all.has(n + COMPRESSED_SUFFIX));
}
export const DIR_MODE = 0o750;
export const FILE_MODE = 0o640;

/** Timeline slots are 10 minutes wide, as in n2disk. */
export const SLOT_NS = 600n * 1_000_000_000n;
/** A file spanning more slots than this (an import with scattered timestamps)
 *  is linked in its first and last slot and in WIDE_DIR, which readers always list. */
const MAX_SLOTS_PER_FILE = 1008;
export const WIDE_DIR = 'wide';
const META_FILE = '.n2disk-ts.json';
const LOCK_FILE = '.n2disk-ts.lock';

interface TimelineMeta {
  format: 1;
  /** The storage directory, relative to the timeline directory. */
  storage: string;
  localTime: boolean;
}

export interface TimelineInfo {
  timeline: string;
  storage: string;
  localTime: boolean;
}

function mkdirp(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** The slot directory (relative to the timeline) holding time tsNs. */
export function slotOf(tsNs: bigint, localTime: boolean): string {
  const slotStart = (tsNs / SLOT_NS) * SLOT_NS;
  const d = new Date(Number(slotStart / 1_000_000n));
  const parts = localTime
    ? [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes()]
    : [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes()];
  // Local time can shift a slot's start off a 10-minute boundary (zones with
  // odd offsets); the directory name is always a multiple of 10.
  parts[4] = parts[4]! - (parts[4]! % 10);
  return [pad(parts[0]!, 4), ...parts.slice(1).map((p) => pad(p))].join('/');
}

/** Every slot a file spanning [minNs, maxNs] is linked in. */
export function slotsFor(minNs: bigint, maxNs: bigint, localTime: boolean): string[] {
  const first = minNs / SLOT_NS;
  const last = maxNs < minNs ? first : maxNs / SLOT_NS;
  if (last - first + 1n > BigInt(MAX_SLOTS_PER_FILE)) {
    return [slotOf(minNs, localTime), slotOf(maxNs, localTime), WIDE_DIR];
  }
  const slots = new Set<string>();
  for (let s = first; s <= last; s++) slots.add(slotOf(s * SLOT_NS, localTime));
  return [...slots];
}

/** Reads a timeline's description (written by the recorder that owns it). */
export function openTimeline(timeline: string): TimelineInfo {
  const metaPath = path.join(timeline, META_FILE);
  let meta: TimelineMeta;
  try {
    meta = JSON.parse(fs.readFileSync(metaPath, 'utf8')) as TimelineMeta;
  } catch (err) {
    throw new Error(`${timeline}: not an n2disk-ts timeline (${(err as Error).message})`);
  }
  return { timeline, storage: path.resolve(timeline, meta.storage), localTime: meta.localTime };
}

export interface Published {
  /** The pcap's final path (its index is beside it). */
  path: string;
  /** Directories and links that publishing created, for the disk budget's count. */
  made: string[];
}

export interface PublishInfo {
  /** The file being written, NAME.pcap.part. */
  partPath: string;
  /** The finished index (index-file container bytes are written by the caller's writer). */
  writeIndex: (finalIndexPath: string) => void;
  minNs: bigint;
  maxNs: bigint;
}

/**
 * The recorder's handle on its dump set: storage directories numbered from 0,
 * each taking `filesPerDir` files, and the timeline beside them.
 */
export class DumpSet {
  private dirNumber = 0;
  private filesInDir = 0;

  constructor(
    readonly storage: string,
    readonly timeline: string,
    private readonly filesPerDir: number,
    readonly localTime: boolean,
  ) {}

  /** Creates the directories (or checks existing ones) and continues any earlier numbering. */
  init(): void {
    mkdirp(this.storage);
    mkdirp(this.timeline);
    fs.accessSync(this.storage, fs.constants.W_OK);
    fs.accessSync(this.timeline, fs.constants.W_OK);
    const meta: TimelineMeta = {
      format: 1,
      storage: path.relative(this.timeline, this.storage) || '.',
      localTime: this.localTime,
    };
    fs.writeFileSync(path.join(this.timeline, META_FILE), JSON.stringify(meta) + '\n', { mode: FILE_MODE });
    const numbered = fs
      .readdirSync(this.storage)
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
      .sort((a, b) => a - b);
    if (numbered.length) {
      this.dirNumber = numbered[numbered.length - 1]!;
      this.filesInDir = publishedNames(fs.readdirSync(this.dirPath())).length;
    }
  }

  /** Directories a process that drops privileges must be able to write. */
  directories(): string[] {
    return [this.storage, this.timeline];
  }

  private dirPath(): string {
    return path.join(this.storage, String(this.dirNumber));
  }

  /**
   * Publishes a finished file: the pcap takes its final name first, then its
   * index is written beside it, then the timeline links appear. A reader
   * trusts only what is published, in that order.
   */
  publish(info: PublishInfo): Published {
    if (this.filesInDir >= this.filesPerDir) {
      this.dirNumber++;
      this.filesInDir = 0;
    }
    const dir = this.dirPath();
    const newDir = fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
    const base = path.basename(info.partPath).slice(0, -PART_SUFFIX.length - '.pcap'.length);
    let name = `${base}.pcap`;
    const taken = (n: string): boolean => fs.existsSync(path.join(dir, n)) || fs.existsSync(path.join(dir, n + COMPRESSED_SUFFIX));
    for (let k = 1; taken(name); k++) name = `${base}_${k}.pcap`;
    const finalPath = path.join(dir, name);
    fs.renameSync(info.partPath, finalPath);
    info.writeIndex(finalPath + INDEX_SUFFIX);
    fs.rmSync(info.partPath + INDEX_SUFFIX, { force: true });
    const made = this.link(finalPath, info.minNs, info.maxNs);
    if (newDir) made.unshift(newDir);
    this.filesInDir++;
    return { path: finalPath, made };
  }

  /** The timeline links of a published file, plain or compressed (pcap and index), that should exist. */
  linksOf(pcap: string, minNs: bigint, maxNs: bigint): { link: string; target: string }[] {
    return slotsFor(minNs, maxNs, this.localTime).flatMap((slot) =>
      [pcap, indexPathOf(pcap)].map((target) => ({ link: path.join(this.timeline, slot, path.basename(target)), target })),
    );
  }

  /**
   * The last step of compressing a published file, whose NAME.pcap.lz4 and
   * index are complete: links to the compressed file appear, then those to
   * the plain one go, then the plain file. Readers that listed the plain file
   * still find its bytes (openDumpBytes falls back to the compressed one).
   * Returns the links and directories created.
   */
  replaceWithCompressed(plain: string, span: { minNs: bigint; maxNs: bigint }): string[] {
    const made = this.link(plain + COMPRESSED_SUFFIX, span.minNs, span.maxNs);
    for (const { link } of this.linksOf(plain, span.minNs, span.maxNs)) {
      if (link.endsWith(PCAP)) fs.rmSync(link, { force: true });
    }
    fs.rmSync(plain, { force: true });
    return made;
  }

  /** Creates whichever of a published file's links are missing; returns the links and directories it created. */
  link(pcap: string, minNs: bigint, maxNs: bigint): string[] {
    const made: string[] = [];
    for (const { link, target } of this.linksOf(pcap, minNs, maxNs)) {
      if (isLink(link)) continue;
      const first = fs.mkdirSync(path.dirname(link), { recursive: true, mode: DIR_MODE });
      // mkdir -p reports the first directory it made; the rest are below it.
      for (let d = path.dirname(link); first !== undefined && d.length >= first.length; d = path.dirname(d)) made.push(d);
      fs.symlinkSync(path.relative(path.dirname(link), target), link);
      made.push(link);
    }
    return made;
  }

  /**
   * Deletes a published file: its timeline links first (so no new reader
   * finds it), then its index, then the pcap; slot directories left empty
   * go too. `span` is the file's time range when known; without it the
   * whole timeline is searched. Returns the paths removed.
   */
  remove(pcap: string, span: { minNs: bigint; maxNs: bigint } | undefined): string[] {
    const targets = new Set([pcap, indexPathOf(pcap)]);
    const links = span
      ? this.linksOf(pcap, span.minNs, span.maxNs).map((l) => l.link).filter(isLink)
      : [...this.timelineLinks()].filter((l) => targets.has(path.resolve(path.dirname(l), fs.readlinkSync(l))));
    const removed: string[] = [];
    for (const l of links) {
      fs.rmSync(l, { force: true });
      removed.push(l);
    }
    for (const f of [indexPathOf(pcap), pcap]) {
      if (fs.existsSync(f)) removed.push(f);
      fs.rmSync(f, { force: true });
    }
    for (const dir of new Set(links.map((l) => path.dirname(l)))) removed.push(...this.pruneEmpty(dir));
    return removed;
  }

  /** Removes `dir` and its parents up to the timeline while they are empty; returns them. */
  pruneEmpty(dir: string): string[] {
    const removed: string[] = [];
    for (let d = dir; d.startsWith(this.timeline + path.sep); d = path.dirname(d)) {
      try {
        fs.rmdirSync(d);
      } catch {
        break; // not empty (or gone)
      }
      removed.push(d);
    }
    return removed;
  }

  /** Every symbolic link of the timeline (slots and WIDE_DIR). */
  *timelineLinks(): Generator<string> {
    const walk = function* (dir: string, depth: number): Generator<string> {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const p = path.join(dir, e.name);
        if (e.isSymbolicLink()) yield p;
        else if (e.isDirectory() && depth < 5) yield* walk(p, depth + 1);
      }
    };
    yield* walk(this.timeline, 0);
  }

  /** Files being written, or left by a recorder that died: NAME.pcap.part. */
  partFiles(): string[] {
    return fs
      .readdirSync(this.storage)
      .filter((n) => n.endsWith('.pcap' + PART_SUFFIX))
      .sort(byFirstPacket)
      .map((n) => path.join(this.storage, n));
  }

  /**
   * Claims the storage directory for this process: one recorder (or repair)
   * at a time. A lock left by a process that is gone is taken over.
   */
  lock(): void {
    const lockPath = path.join(this.storage, LOCK_FILE);
    for (;;) {
      try {
        fs.writeFileSync(lockPath, `${process.pid}\n`, { flag: 'wx', mode: FILE_MODE });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = Number(fs.readFileSync(lockPath, 'utf8').trim());
      if (pid > 0 && pid !== process.pid && processExists(pid)) {
        throw new Error(`${this.storage} is in use by process ${pid}`);
      }
      fs.rmSync(lockPath, { force: true });
    }
  }

  unlock(): void {
    fs.rmSync(path.join(this.storage, LOCK_FILE), { force: true });
  }
}

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Orders file names by the first-packet time they carry (NAME = SEC.USEC[_K].pcap). */
function byFirstPacket(a: string, b: string): number {
  const key = (f: string): number[] => f.split(/[._]/).slice(0, 3).map((x) => (/^\d+$/.test(x) ? Number(x) : 0));
  const ka = key(a);
  const kb = key(b);
  return ka[0]! - kb[0]! || ka[1]! - kb[1]! || ka[2]! - kb[2]!;
}

/** Published pcap files of a storage directory: directory by directory, each by first-packet time. */
export function listStorageFiles(storage: string): string[] {
  const dirs = fs
    .readdirSync(storage)
    .filter((d) => /^\d+$/.test(d))
    .sort((a, b) => Number(a) - Number(b));
  return dirs.flatMap((d) =>
    publishedNames(fs.readdirSync(path.join(storage, d)))
      .sort(byFirstPacket)
      .map((f) => path.join(storage, d, f)),
  );
}

/** A pcap file of a dump set that a reader may use, with where its index is. */
export interface DumpFile {
  /** Real path, inside the storage directory. */
  pcap: string;
  index: string;
  /** Being written: only what its segmented index covers is complete. */
  partial: boolean;
  /** NAME.pcap.lz4: read through recorder/compressed-file.ts. */
  compressed: boolean;
}

/** The span [start, end) in ns of a timeline directory, from its path components (Date rolls over). */
function spanOf(parts: number[], localTime: boolean): [bigint, bigint] {
  const next = [...parts];
  next[next.length - 1]! += parts.length === 5 ? 10 : 1;
  const ms = (p: number[]): number => {
    const [Y, M = 1, D = 1, H = 0, Mi = 0] = p;
    return localTime ? new Date(Y!, M - 1, D, H, Mi).getTime() : Date.UTC(Y!, M - 1, D, H, Mi);
  };
  return [BigInt(ms(parts)) * 1_000_000n, BigInt(ms(next)) * 1_000_000n];
}

/**
 * The files of a timeline that may hold packets in [beginNs, endNs), in
 * storage order: those
 * linked from the slots the range touches, those linked from WIDE_DIR, and
 * the file being written. Links that lead out of the storage directory are
 * never followed; they are reported through `warn`.
 */
export function filesInRange(info: TimelineInfo, beginNs: bigint, endNs: bigint, warn: (msg: string) => void): DumpFile[] {
  // The native realpath: one system call a link instead of an lstat per path component.
  const storageReal = fs.realpathSync.native(info.storage);
  const found = new Map<string, DumpFile>();
  const inside = (p: string): boolean => p.startsWith(storageReal + path.sep);

  const addLink = (link: string): void => {
    let real: string;
    try {
      real = fs.realpathSync.native(link);
    } catch {
      return; // dangling: the file was deleted (disk budget) after the link was listed
    }
    if (!inside(real)) {
      warn(`${link}: points outside the dump set (${real}); not followed`);
      return;
    }
    // While a compression is being finished a slot links both forms of a file: one is read.
    const key = plainPathOf(real);
    const compressed = isCompressedPath(real);
    if (!found.has(key) || compressed) found.set(key, { pcap: real, index: indexPathOf(real), partial: false, compressed });
  };

  const walk = (dir: string, parts: number[]): void => {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return;
    }
    if (parts.length === 5) {
      for (const n of names) if (isPublishedName(n)) addLink(path.join(dir, n));
      return;
    }
    for (const n of names) {
      if (!/^\d+$/.test(n)) continue;
      const sub = [...parts, Number(n)];
      const [from, to] = spanOf(sub, info.localTime);
      // A slot holds files whose span starts in it or crosses it: a
      // directory before the range can only matter through its links,
      // which are also in every later slot the file crosses.
      if (to <= beginNs || from >= endNs) continue;
      walk(path.join(dir, n), sub);
    }
  };
  walk(info.timeline, []);
  const wide = path.join(info.timeline, WIDE_DIR);
  if (fs.existsSync(wide)) for (const n of fs.readdirSync(wide)) if (isPublishedName(n)) addLink(path.join(wide, n));

  for (const n of fs.readdirSync(storageReal)) {
    if (!n.endsWith('.pcap' + PART_SUFFIX)) continue;
    const p = path.join(storageReal, n);
    found.set(p, { pcap: p, index: p + INDEX_SUFFIX, partial: true, compressed: false });
  }
  // Storage order, which is also the order of ties in extraction's output.
  return [...found.values()].sort((a, b) => byFirstPacket(path.basename(a.pcap), path.basename(b.pcap)));
}

/**
 * Opens a dump file for reading. A file being written may be published
 * (renamed) between listing and opening; its bytes are the same under the
 * final name, which is then opened instead.
 */
export function openDumpFile(file: DumpFile): number {
  try {
    return fs.openSync(file.pcap, 'r');
  } catch (err) {
    if (!file.partial || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const storage = path.dirname(file.pcap);
    const base = path.basename(file.pcap).slice(0, -('.pcap' + PART_SUFFIX).length);
    const published = listStorageFiles(storage).filter((f) => path.basename(f) === `${base}.pcap` || path.basename(f).startsWith(`${base}_`));
    if (!published.length) throw err;
    // The newest of the candidates is the one just published.
    return fs.openSync(published[published.length - 1]!, 'r');
  }
}
