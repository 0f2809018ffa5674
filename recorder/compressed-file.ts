// Compressed dump files (-M): NAME.pcap.lz4 is a concatenation of
// independent LZ4 frames (recorder/lz4-frame.ts), cut at the blocks of the
// index's time table and, within a block, at the first record past every
// 64 KiB, so every frame starts at a record. The index NAME.pcap.idx
// goes on describing the uncompressed bytes and gains a chunk table (where
// each frame is), so a reader decodes only the frames holding what it wants.
// Without an index the frames are found from their own headers, which carry
// their content size.
import fs from 'node:fs';
import { ByteReader, plainReader } from './byte-reader';
import { COMPRESSED_SUFFIX, DumpFile, FILE_MODE, isCompressedPath, openDumpFile } from './dumpset';
import { checkIndex, ChunkTable, IndexError, IndexView, readIndexFile } from './index-file';
import { blockEntryBytes, decodeFrame, describeFrame, encodeFrame, FRAME_HEADER_BYTES, FrameError, frameBound, trailerBytes } from './lz4-frame';
import { PCAP_HEADER_BYTES } from './pcap-file';

/** A compressed file that cannot be read back: one line naming where. */
export class CompressedFileError extends Error {
  constructor(readonly file: string, readonly at: number, defect: string) {
    super(`${file}: frame at byte ${at}: ${defect}`);
  }
}

export interface DecompressStats {
  /** Frames decoded, and the compressed bytes read for them. */
  frames: number;
  packedBytes: number;
}

/**
 * Frames hold about this much of the pcap: a rare packet costs one frame's
 * decoding, and LZ4's 64 KiB window gains little from longer frames (about
 * 2% of the ratio on the ndpi corpus against 1 MiB frames).
 */
export const FRAME_TARGET = 64 << 10;

/** Block starts in the uncompressed file, then its end: the header goes with the first time block. */
export function frameBoundaries(index: IndexView): number[] {
  const starts = index.timeBlocks.map((b) => b.offset).filter((o) => o > PCAP_HEADER_BYTES);
  return [0, ...starts, index.covered.end];
}

/** Bytes the compressed form of a file of `plainBytes` in `frames` frames takes at most. */
export const compressedBound = (plainBytes: number, frames: number): number => frameBound(plainBytes) + frames * frameBound(0);

/**
 * Where to cut the bytes of `buf`, which start at a record (after the pcap
 * header when `first`): at the first record past each FRAME_TARGET bytes.
 * The cuts are offsets in `buf`, its length last.
 */
function cutsOf(buf: Buffer, first: boolean): number[] {
  const cuts: number[] = [];
  let frameStart = 0;
  for (let at = first ? PCAP_HEADER_BYTES : 0; at + 16 <= buf.length; at += 16 + buf.readUInt32LE(at + 8)) {
    if (at - frameStart >= FRAME_TARGET) cuts.push((frameStart = at));
  }
  cuts.push(buf.length);
  return cuts;
}

/**
 * Writes `dst` (fsynced, 0640): the frames of `src`, each time block
 * (`boundaries`, from frameBoundaries()) cut at records into frames of about
 * FRAME_TARGET bytes. Returns where they went, the index's chunk table.
 */
export function compressPcap(src: string, dst: string, boundaries: readonly number[]): ChunkTable {
  const table: ChunkTable = { plain: [0], packed: [0] };
  const inFd = fs.openSync(src, 'r');
  let outFd: number | undefined;
  try {
    outFd = fs.openSync(dst, 'w', FILE_MODE);
    fs.fchmodSync(outFd, FILE_MODE);
    let buf = Buffer.allocUnsafe(0);
    let packed = 0;
    for (let k = 0; k + 1 < boundaries.length; k++) {
      const from = boundaries[k]!;
      const len = boundaries[k + 1]! - from;
      if (buf.length < len) buf = Buffer.allocUnsafe(len);
      const got = fs.readSync(inFd, buf, 0, len, from);
      if (got !== len) throw new Error(`${src}: ends at byte ${from + got}, its index says ${boundaries[boundaries.length - 1]}`);
      let cut = 0;
      for (const next of cutsOf(buf.subarray(0, len), k === 0)) {
        const frame = encodeFrame(buf.subarray(cut, next));
        for (let done = 0; done < frame.length;) done += fs.writeSync(outFd, frame, done);
        packed += frame.length;
        table.plain.push(from + next);
        table.packed.push(packed);
        cut = next;
      }
    }
    fs.fsyncSync(outFd);
  } catch (e) {
    fs.rmSync(dst, { force: true });
    throw e;
  } finally {
    fs.closeSync(inFd);
    if (outFd !== undefined) fs.closeSync(outFd);
  }
  return table;
}

/** Where the frame starting at byte `at` ends and how much it holds, from its header and block sizes. */
function frameExtent(fd: number, at: number, size: number, file: string): { end: number; contentSize: number } {
  const start = at;
  const fail = (defect: string): never => {
    throw new CompressedFileError(file, start, defect);
  };
  const head = Buffer.alloc(FRAME_HEADER_BYTES);
  const n = fs.readSync(fd, head, 0, head.length, at);
  let h;
  try {
    h = describeFrame(head.subarray(0, n));
  } catch (e) {
    if (e instanceof FrameError) fail(e.message);
    throw e;
  }
  at += h!.headerBytes;
  for (;;) {
    if (fs.readSync(fd, head, 0, 4, at) < 4) fail('truncated frame');
    const entry = blockEntryBytes(head.readUInt32LE(0), h!.flags);
    at += entry;
    if (entry === 4) break;
  }
  at += trailerBytes(h!.flags);
  if (at > size) fail('truncated frame');
  return { end: at, contentSize: h!.contentSize };
}

/** Finds every frame of a compressed file from the frames' own headers, without decoding them. */
export function walkFrames(fd: number, file: string): ChunkTable {
  const size = fs.fstatSync(fd).size;
  const table: ChunkTable = { plain: [0], packed: [0] };
  for (let at = 0, plain = 0; at < size;) {
    const f = frameExtent(fd, at, size, file);
    at = f.end;
    plain += f.contentSize;
    table.plain.push(plain);
    table.packed.push(at);
  }
  if (table.plain.length < 2) throw new CompressedFileError(file, 0, 'no frame');
  return table;
}

/**
 * Decodes a compressed file frame after frame, handing each to `write` only
 * once it has passed its checks. Returns the bytes written and, when a frame
 * is truncated or corrupt, what is wrong with it (nothing of it or after it
 * is written).
 */
export function decompressFile(file: string, write: (bytes: Buffer) => void): { plainBytes: number; defect?: CompressedFileError } {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return { plainBytes: 0, defect: new CompressedFileError(file, 0, 'no frame') };
    let plainBytes = 0;
    for (let at = 0; at < size;) {
      try {
        const { end, contentSize } = frameExtent(fd, at, size, file);
        const reader = new CompressedReader(fd, file, { plain: [0, contentSize], packed: [at, end] });
        write(reader.frame(0));
        plainBytes += contentSize;
        at = end;
      } catch (e) {
        if (e instanceof CompressedFileError) return { plainBytes, defect: e };
        throw e;
      }
    }
    return { plainBytes };
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether two chunk tables name the same frames. */
export const sameChunks = (a: ChunkTable, b: ChunkTable): boolean =>
  a.plain.length === b.plain.length && a.plain.every((p, k) => p === b.plain[k] && a.packed[k] === b.packed[k]);

/** Frames decoded and kept, most recent last: a read that crosses into the next frame decodes each once. */
const CACHED_FRAMES = 2;

/** The uncompressed bytes of a compressed file, decoding only the frames a read touches. */
export class CompressedReader implements ByteReader {
  readonly size: number;
  private readonly cache: { k: number; bytes: Buffer }[] = [];
  private scratch = Buffer.allocUnsafe(0);

  /** `chunks` from the file's index; without them the frames are walked. Takes `fd` over. */
  constructor(
    private readonly fd: number,
    readonly path: string,
    private readonly chunks: ChunkTable = walkFrames(fd, path),
    private readonly stats: DecompressStats = { frames: 0, packedBytes: 0 },
  ) {
    this.size = chunks.plain[chunks.plain.length - 1]!;
  }

  read(buf: Uint8Array, offset: number, length: number, position: number): number {
    const { plain } = this.chunks;
    let done = 0;
    for (let pos = position; done < length && pos < this.size;) {
      const lo = this.frameAt(pos);
      const bytes = this.frame(lo);
      const n = Math.min(length - done, plain[lo + 1]! - pos);
      buf.set(bytes.subarray(pos - plain[lo]!, pos - plain[lo]! + n), offset + done);
      done += n;
      pos += n;
    }
    return done;
  }

  frameEnd(position: number): number {
    return this.chunks.plain[this.frameAt(position) + 1]!;
  }

  /** The frame holding byte `pos` (< size). */
  private frameAt(pos: number): number {
    const { plain } = this.chunks;
    let lo = 0, hi = plain.length - 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (plain[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Frame k, decoded and checked against its size in the table. */
  frame(k: number): Buffer {
    const hit = this.cache.find((c) => c.k === k);
    if (hit) return hit.bytes;
    const { plain, packed } = this.chunks;
    const at = packed[k]!;
    const len = packed[k + 1]! - at;
    if (this.scratch.length < len) this.scratch = Buffer.allocUnsafe(len);
    const frame = this.scratch.subarray(0, len);
    const fail = (defect: string): never => {
      throw new CompressedFileError(this.path, at, defect);
    };
    if (fs.readSync(this.fd, frame, 0, len, at) !== len) fail('truncated file');
    this.stats.frames++;
    this.stats.packedBytes += len;
    let bytes: Buffer;
    try {
      bytes = decodeFrame(frame);
    } catch (e) {
      if (e instanceof FrameError) fail(e.message);
      throw e;
    }
    if (bytes!.length !== plain[k + 1]! - plain[k]!) fail(`holds ${bytes!.length} bytes, the index says ${plain[k + 1]! - plain[k]!}`);
    this.cache.push({ k, bytes: bytes! });
    if (this.cache.length > CACHED_FRAMES) this.cache.shift();
    return bytes!;
  }

  /** Frames in the file. */
  get frames(): number {
    return this.chunks.plain.length - 1;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** Opens a pcap file of either kind by its path; a compressed one's frames are found from their headers. */
export function openPcapBytes(file: string): ByteReader {
  const fd = fs.openSync(file, 'r');
  try {
    return isCompressedPath(file) ? new CompressedReader(fd, file) : plainReader(fd, file);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/**
 * Opens a dump file for reading, plain or compressed (with the chunk table
 * of its index when there is one). A plain file compressed between listing
 * and opening is read from NAME.pcap.lz4: the same bytes.
 */
export function openDumpBytes(file: DumpFile, chunks: ChunkTable | undefined, stats: DecompressStats): ByteReader {
  const compressed = (p: string): ByteReader => {
    const fd = fs.openSync(p, 'r');
    try {
      return new CompressedReader(fd, p, chunks ?? walkFrames(fd, p), stats);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  };
  if (file.compressed) return compressed(file.pcap);
  try {
    return plainReader(openDumpFile(file), file.pcap);
  } catch (err) {
    const lz4 = file.pcap + COMPRESSED_SUFFIX;
    if (file.partial || (err as NodeJS.ErrnoException).code !== 'ENOENT' || !fs.existsSync(lz4)) throw err;
    return compressed(lz4);
  }
}

/**
 * checkIndex (npcapprintindex -c, npcaprepair -d) for a compressed file:
 * every frame is decoded and checked, the frames must be those of the
 * index's chunk table, and the index must list exactly the records decoded.
 */
export function checkCompressedIndex(idx: string, lz4: string): string[] {
  let frames: ChunkTable;
  try {
    const fd = fs.openSync(lz4, 'r');
    try {
      frames = walkFrames(fd, lz4);
    } finally {
      fs.closeSync(fd);
    }
    const chunks = readIndexFile(idx).chunks;
    if (!chunks) return [`${idx}: no chunk table, but ${lz4} is compressed`];
    if (!sameChunks(chunks, frames)) return [`${idx}: chunk table differs from the frames of ${lz4}`];
    return checkIndex(idx, lz4, openPcapBytes);
  } catch (e) {
    if (e instanceof CompressedFileError || e instanceof IndexError) return [e.message];
    throw e;
  }
}
