// The container around index segments (recorder/index-file.ts decodes what
// is inside). All integers little-endian:
//
//   file     "N2IX", u32 container version
//   segment  u32 length of the flatbuffer
//            u32 crc32 of the length and of the rest of this header
//            u32 crc32 of each 4 KiB block of the flatbuffer (the last one shorter)
//            zero padding to a multiple of 8 bytes
//            the flatbuffer Segment (recorder/index.fbs)
//
// A checksum per block rather than per segment lets a reader fetch and check
// only the blocks a query touches: a rare host needs the address dictionary,
// one key-table entry and a few flows, about a tenth of an index. Version 1,
// one checksum per segment, forced a whole read; those indexes are refused
// and npcaprepair rebuilds them.
import fs from 'node:fs';
import util from 'node:util';
import { DIRECT_ALIGN, crc32, writeDirect } from '../native/addon';

const CONTAINER_VERSION = 2;
const MAGIC = Buffer.from('N2IX', 'latin1');
const HEADER_BYTES = 8;
const FRAME_BYTES = 8;
const BLOCK_SHIFT = 12;
const BLOCK_BYTES = 1 << BLOCK_SHIFT;
const FILE_MODE = 0o640;
/**
 * The first read of a lazily opened index: the headers, the root table and,
 * for files of up to a few hundred MB, what every lookup needs, which
 * native/index_encode.cc writes just after it (classes, key-table
 * checkpoints, time table, flow checkpoints).
 */
const FIRST_READ = 32 << 10;

export class IndexError extends Error {
  constructor(readonly file: string, readonly defect: string) {
    super(`${file}: ${defect}`);
    this.name = 'IndexError';
  }
}

const blocksOf = (length: number): number => Math.ceil(length / BLOCK_BYTES);
/** What the container adds to a segment of `length` bytes: frame header and block checksums, padded so that the flatbuffer starts 8-byte aligned. */
export const frameHeaderBytes = (length: number): number => (FRAME_BYTES + 4 * blocksOf(length) + 7) & ~7;

/** What the container adds to an index of one segment of `length` bytes. */
export const containerBytes = (length: number): number => HEADER_BYTES + frameHeaderBytes(length);

// ---------------------------------------------------------------- writing

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length;) done += fs.writeSync(fd, bytes, done, bytes.length - done, position + done);
}

function header(): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(b, 0);
  b.writeUInt32LE(CONTAINER_VERSION, 4);
  return b;
}

/** The checksum that guards a frame's length, its block checksums and the padding after them. */
function frameCrc(length: number, crcs: Uint8Array): number {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(length);
  return crc32(crcs, crc32(len));
}

/** What goes before a segment: its length, the frame checksum, the block checksums and the padding. */
function frameHeader(segment: Uint8Array): Buffer {
  const head = frameHeaderBytes(segment.length);
  const b = Buffer.alloc(head);
  b.writeUInt32LE(segment.length, 0);
  for (let k = 0, at = 0; at < segment.length; k++, at += BLOCK_BYTES) {
    b.writeUInt32LE(crc32(segment.subarray(at, at + BLOCK_BYTES)), FRAME_BYTES + 4 * k);
  }
  b.writeUInt32LE(frameCrc(segment.length, b.subarray(FRAME_BYTES, head)), 4);
  return b;
}

/**
 * Writes `parts` back to back from `position`, in one writev when the
 * kernel takes them all, as it does for regular files, so that a segment is
 * appended by a single write and never copied into one buffer first (a
 * file's index at 100 B random flows is tens of MB). Positioned, so that
 * after a failed append the next one starts where the file was cut back to.
 */
function writeParts(fd: number, parts: Uint8Array[], position: number): void {
  let done = fs.writevSync(fd, parts, position);
  for (const p of parts) {
    if (done >= p.length) {
      done -= p.length;
    } else {
      writeAll(fd, p.subarray(done), position + done);
      done = 0;
    }
    position += p.length;
  }
}

export interface SegmentedIndex {
  /** Appends one segment (IndexBuilder.segment()) in a single write; one that fails leaves the file as it was. */
  append(segment: Uint8Array): void;
  /**
   * Appends the last segment (IndexBuilder.finishFromSegments()), makes the
   * file durable, closes it and renames it to `path`: its segments are the
   * published index. One that fails can be tried again (the segment is
   * appended once).
   */
  publish(last: Uint8Array, path: string): void;
  close(): void;
}

/** The last `n` bytes of `parts` laid end to end, copied. */
function lastBytes(parts: Uint8Array[], n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let k = parts.length - 1, end = n; end > 0; k--) {
    const p = parts[k]!;
    const take = Math.min(end, p.length);
    out.set(p.subarray(p.length - take), end - take);
    end -= take;
  }
  return out;
}

/**
 * Creates (or truncates) the index of a file being written. No fsync until
 * it is published: a torn tail is expected. Segments go past the page cache
 * where the file system allows it, as published indexes do: the part of the
 * last block already written is kept and written again with the next
 * segment.
 */
export function createSegmentedIndex(path: string): SegmentedIndex {
  const { fd, direct } = openDirect(path);
  let size = 0;
  let tail: Buffer = Buffer.alloc(0);
  let open = true;
  let lastAppended = false;
  const close = (): void => {
    if (!open) return;
    open = false;
    fs.closeSync(fd);
  };
  const write = (parts: Uint8Array[]): void => {
    const length = parts.reduce((n, p) => n + p.length, 0);
    try {
      if (direct) {
        const r = writeDirect(fd, size - tail.length, [tail, ...parts]);
        if (r < 0) throw systemError(r, 'write', path);
      } else {
        writeParts(fd, parts, size);
      }
    } catch (e) {
      // A frame cut short and then followed by the next one would read as
      // damage in the middle of the file, not as a torn tail.
      fs.ftruncateSync(fd, size);
      throw e;
    }
    size += length;
    if (direct) tail = lastBytes([tail, ...parts], size % DIRECT_ALIGN);
  };
  try {
    fs.fchmodSync(fd, FILE_MODE);
    write([header()]);
  } catch (e) {
    close();
    throw e;
  }
  const append = (segment: Uint8Array): void => {
    if (!open) throw new Error(`${path}: append after close`);
    write([frameHeader(segment), segment]);
  };
  return {
    append,
    publish(last: Uint8Array, to: string): void {
      if (!lastAppended) {
        append(last);
        lastAppended = true;
      }
      fs.fsyncSync(fd);
      close();
      fs.renameSync(path, to);
    },
    close,
  };
}

/** Opens a new file for writing past the page cache, or through it where the file system refuses O_DIRECT. */
function openDirect(path: string): { fd: number; direct: boolean } {
  const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC;
  try {
    return { fd: fs.openSync(path, flags | fs.constants.O_DIRECT, FILE_MODE), direct: true };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
    return { fd: fs.openSync(path, flags, FILE_MODE), direct: false };
  }
}

/** An error like the ones fs throws, so that callers can tell ENOSPC from the rest. */
function systemError(errno: number, syscall: string, path: string): NodeJS.ErrnoException {
  const [code, message] = util.getSystemErrorMap().get(errno) ?? ['EIO', 'i/o error'];
  return Object.assign(new Error(`${code}: ${message}, ${syscall} '${path}'`), { errno, code, syscall, path });
}

/**
 * Writes an index of `segments` so that readers see either the old file or
 * the whole new one. It goes past the page cache: the recorder writes one
 * for many files it publishes (tens of MB each at 100 B random flows), and
 * the kernel's copy into the cache took a seventh of its CPU.
 */
export function writeIndexFile(path: string, ...segments: Uint8Array[]): void {
  const tmp = `${path}.tmp`;
  const { fd, direct } = openDirect(tmp);
  try {
    fs.fchmodSync(fd, FILE_MODE);
    const parts = [header(), ...segments.flatMap((s) => [frameHeader(s), s])];
    if (direct) {
      const r = writeDirect(fd, 0, parts);
      if (r < 0) throw systemError(r, 'write', tmp);
    } else {
      writeParts(fd, parts, 0);
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, path);
}

// ---------------------------------------------------------------- reading

type Fetch = (into: Uint8Array, position: number) => void;

/**
 * One segment's flatbuffer. Its bytes are valid only where ensure() has been
 * called: each 4 KiB block is fetched (when the segment was opened lazily)
 * and checked against its checksum the first time a read touches it.
 */
export class SegmentBytes {
  readonly bytes: Uint8Array;
  private readonly checked: Uint8Array;
  private unchecked: number;

  constructor(
    readonly path: string,
    /** File offset of the flatbuffer. */
    private readonly at: number,
    private readonly crcs: Uint32Array,
    bytes: Uint8Array | number,
    /** Undefined when `bytes` already holds the data and only checking is left. */
    private readonly fetch: Fetch | undefined,
  ) {
    // Not zero-filled: nothing is read before ensure() has fetched and checked it.
    this.bytes = typeof bytes === 'number' ? new Uint8Array(Buffer.allocUnsafeSlow(bytes).buffer, 0, bytes) : bytes;
    this.checked = new Uint8Array(crcs.length);
    this.unchecked = crcs.length;
  }

  get length(): number {
    return this.bytes.length;
  }

  /** Every block has been checked: reads need no more guarding. */
  get complete(): boolean {
    return this.unchecked === 0;
  }

  /** Makes bytes [from, to) readable, or throws IndexError. */
  ensure(from: number, to: number): void {
    if (to <= from) return;
    if (from < 0 || to > this.bytes.length) this.fail(`reads bytes ${from}-${to} of a ${this.bytes.length}-byte segment`);
    const last = (to - 1) >>> BLOCK_SHIFT;
    // Most calls are a flatbuffers field read: one or two blocks, already checked.
    if (this.checked[last] && this.checked[from >>> BLOCK_SHIFT] && last - (from >>> BLOCK_SHIFT) <= 1) return;
    for (let b = from >>> BLOCK_SHIFT; b <= last; b++) {
      if (this.checked[b]) continue;
      let end = b + 1;
      while (end <= last && !this.checked[end]) end++;
      this.load(b, end);
      b = end - 1;
    }
  }

  /** ensure() for bytes [from, to) of a typed array over this segment (default: all of it). */
  ensureView(view: ArrayBufferView, from = 0, to = view.byteLength): void {
    const base = view.byteOffset - this.bytes.byteOffset;
    this.ensure(base + from, base + to);
  }

  /** Checks every block now; returns the first defect instead of throwing. */
  checkAll(): string | undefined {
    try {
      this.ensure(0, this.bytes.length);
      return undefined;
    } catch (e) {
      if (e instanceof IndexError) return e.defect;
      throw e;
    }
  }

  /** Bytes [0, upTo), a whole number of blocks or all of them, are in place already: checks them without fetching. */
  filled(upTo: number): void {
    this.load(0, blocksOf(upTo), false);
  }

  private load(first: number, end: number, fetch = true): void {
    const from = first << BLOCK_SHIFT;
    const to = Math.min(end << BLOCK_SHIFT, this.bytes.length);
    if (fetch) this.fetch?.(this.bytes.subarray(from, to), this.at + from);
    for (let b = first; b < end; b++) {
      const s = b << BLOCK_SHIFT;
      if (crc32(this.bytes.subarray(s, Math.min(s + BLOCK_BYTES, to))) !== this.crcs[b]) {
        this.fail(`checksum mismatch (byte ${this.at + s})`);
      }
      this.checked[b] = 1;
      this.unchecked--;
    }
  }

  private fail(defect: string): never {
    throw new IndexError(this.path, defect);
  }
}

interface FrameHead {
  length: number;
  crcs: Uint32Array;
  /** File offset of the flatbuffer, and of the byte after it. */
  data: number;
  end: number;
}

/**
 * Reads the frame header at `at` through `read` (which returns fewer bytes
 * only at the end of the file). Returns undefined when the file ends inside
 * it, a string naming the defect when it is damaged.
 */
function frameHead(read: (at: number, n: number) => Uint8Array, at: number): FrameHead | string | undefined {
  const fixed = read(at, FRAME_BYTES);
  if (fixed.length < FRAME_BYTES) return undefined;
  const v = new DataView(fixed.buffer, fixed.byteOffset, FRAME_BYTES);
  const length = v.getUint32(0, true);
  const table = read(at + FRAME_BYTES, frameHeaderBytes(length) - FRAME_BYTES);
  if (table.length < frameHeaderBytes(length) - FRAME_BYTES) return undefined;
  if (frameCrc(length, table) !== v.getUint32(4, true)) return `checksum mismatch in the segment header (byte ${at})`;
  const crcs = new Uint32Array(blocksOf(length));
  new Uint8Array(crcs.buffer).set(table.subarray(0, 4 * crcs.length));
  const data = at + frameHeaderBytes(length);
  return { length, crcs, data, end: data + length };
}

function checkFileHeader(head: Uint8Array, path: string, partial: boolean): boolean {
  const fail = (defect: string): never => {
    throw new IndexError(path, defect);
  };
  if (head.length < HEADER_BYTES) {
    // A partial index's header may not have reached the disk yet.
    if (partial && header().subarray(0, head.length).equals(head)) return false;
    fail(`truncated header (${head.length} bytes)`);
  }
  if (!MAGIC.equals(head.subarray(0, 4))) fail('not an n2disk-ts index (bad magic)');
  const version = new DataView(head.buffer, head.byteOffset, 8).getUint32(4, true);
  if (version !== CONTAINER_VERSION) fail(`unsupported index container version ${version} (npcaprepair rebuilds it)`);
  return true;
}

/**
 * The segments of an index read whole, every block checked. In a partial
 * index (of a file being written) a torn last segment ends the list instead
 * of failing.
 */
export function segmentsInMemory(buf: Uint8Array, path: string, partial: boolean): SegmentBytes[] {
  const segments: SegmentBytes[] = [];
  if (!checkFileHeader(buf, path, partial)) return segments;
  const read = (at: number, n: number): Uint8Array => buf.subarray(at, at + n);
  for (let at = HEADER_BYTES; at < buf.length;) {
    const k = segments.length;
    const head = frameHead(read, at);
    const defect = head === undefined ? `truncated frame header at byte ${at}`
      : typeof head === 'string' ? head
      : head.end > buf.length ? `length ${head.length} runs past the end of the file (byte ${at})` : undefined;
    if (defect !== undefined || typeof head !== 'object') {
      // A torn write ends the file, and so do zeros after the last segment
      // (an append past the page cache writes whole blocks, then cuts the
      // file to length); a damaged frame header followed by data is corruption.
      if (partial && (typeof head !== 'string' || buf.subarray(at).every((b) => b === 0))) break;
      throw new IndexError(path, `segment ${k}: ${defect}`);
    }
    // Views of aligned segments: copying every index read costs as much as reading it.
    const bytes = (buf.byteOffset + head.data) % 8 === 0 ? buf.subarray(head.data, head.end) : buf.slice(head.data, head.end);
    const s = new SegmentBytes(path, head.data, head.crcs, bytes, undefined);
    const damage = s.checkAll();
    if (damage !== undefined) {
      if (partial && head.end === buf.length) break;
      throw new IndexError(path, `segment ${k}: ${damage}`);
    }
    segments.push(s);
    at = head.end;
  }
  if (segments.length === 0 && !partial) throw new IndexError(path, 'no segment');
  return segments;
}

/**
 * The segments of a published index, their blocks fetched as they are
 * needed. The file stays open until release(); a block fetched after that
 * opens it again, and fails if it is no longer the same file.
 */
export class LazyIndexFile {
  readonly segments: SegmentBytes[] = [];
  /** Bytes read from the file so far. */
  bytesRead = 0;
  private fd: number | undefined;
  private readonly identity: fs.Stats;

  constructor(readonly path: string) {
    this.fd = fs.openSync(path, 'r');
    try {
      this.identity = fs.fstatSync(this.fd);
      this.open();
    } catch (e) {
      this.release();
      throw e;
    }
  }

  get size(): number {
    return this.identity.size;
  }

  release(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private open(): void {
    const size = this.identity.size;
    const fd = this.fd!;
    const first = this.pread(fd, new Uint8Array(Math.min(size, FIRST_READ)), 0);
    checkFileHeader(first, this.path, false);
    const read = (at: number, n: number): Uint8Array =>
      at + n <= first.length ? first.subarray(at, at + n) : this.pread(fd, new Uint8Array(Math.max(0, Math.min(n, size - at))), at);
    const fetch: Fetch = (into, position) => this.fetch(into, position);
    for (let at = HEADER_BYTES; at < size;) {
      const k = this.segments.length;
      const head = frameHead(read, at);
      if (head === undefined) throw new IndexError(this.path, `segment ${k}: truncated frame header at byte ${at}`);
      if (typeof head === 'string') throw new IndexError(this.path, `segment ${k}: ${head}`);
      if (head.end > size) throw new IndexError(this.path, `segment ${k}: length ${head.length} runs past the end of the file (byte ${at})`);
      const s = new SegmentBytes(this.path, head.data, head.crcs, head.length, fetch);
      // What the first read holds is not fetched again.
      if (head.data < first.length) {
        const upTo = Math.min(head.end, first.length) - head.data;
        s.bytes.set(first.subarray(head.data, head.data + upTo));
        s.filled(upTo === head.length ? upTo : upTo & ~(BLOCK_BYTES - 1));
      }
      this.segments.push(s);
      at = head.end;
    }
    if (this.segments.length === 0) throw new IndexError(this.path, 'no segment');
  }

  private fetch(into: Uint8Array, position: number): void {
    if (this.fd !== undefined) {
      this.pread(this.fd, into, position);
      return;
    }
    let fd: number;
    try {
      fd = fs.openSync(this.path, 'r');
    } catch (e) {
      throw new IndexError(this.path, `cannot be read again (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      const now = fs.fstatSync(fd);
      const was = this.identity;
      if (now.ino !== was.ino || now.dev !== was.dev || now.size !== was.size || now.mtimeMs !== was.mtimeMs) {
        throw new IndexError(this.path, 'replaced while being read');
      }
      this.pread(fd, into, position);
    } finally {
      fs.closeSync(fd);
    }
  }

  private pread(fd: number, into: Uint8Array, position: number): Uint8Array {
    for (let done = 0; done < into.length;) {
      const n = fs.readSync(fd, into, done, into.length - done, position + done);
      if (n === 0) throw new IndexError(this.path, `ends at byte ${position + done}, inside a segment`);
      done += n;
    }
    this.bytesRead += into.length;
    return into;
  }
}

