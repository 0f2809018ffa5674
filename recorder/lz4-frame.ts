// One LZ4 frame (the format of the `lz4` command, lz4_Frame_format.md) per
// stretch of a pcap file, so that a compressed file is a plain concatenation
// of standard frames (`lz4 -dc` restores it) and each frame can be decoded on
// its own. Frames are assembled here around lz4-napi's block codec: its frame
// codec writes no content size and decodes several times slower.
//
// Frame written: magic, FLG 0x6c (version 1, independent blocks, content size,
// content checksum), BD 0x70 (blocks of at most 4 MiB), content size (u64),
// header checksum; blocks (u32 size, high bit set when stored raw, then the
// bytes); end mark (u32 0); XXH32 of the content.
import type * as Lz4 from 'lz4-napi';
import { xxh32 } from './xxh32';

// Loaded on first use: an extraction from plain files never pays for it.
let lz4: typeof Lz4 | undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const codec = (): typeof Lz4 => (lz4 ??= require('lz4-napi') as typeof Lz4);

export const FRAME_MAGIC = 0x184d2204;
const FLG = 0x6c;
const BD = 0x70;
const MAX_BLOCK = 4 << 20;
const RAW = 0x80000000;
/** Magic, FLG, BD, content size, header checksum: what describeFrame() needs to see. */
export const FRAME_HEADER_BYTES = 15;
const FLG_BLOCK_CHECKSUM = 0x10;
const FLG_CONTENT_SIZE = 0x08;
const FLG_CONTENT_CHECKSUM = 0x04;
const FLG_DICT = 0x01;

/** Bytes a frame of `n` content bytes takes at most. */
export const frameBound = (n: number): number => FRAME_HEADER_BYTES + 8 + Math.ceil(n / MAX_BLOCK + 1) * 4 + n + Math.ceil(n / 255) + 16;

/** A frame that is not one we can decode, or whose content fails its checks. */
export class FrameError extends Error {}

export function encodeFrame(content: Uint8Array): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32LE(FRAME_MAGIC, 0);
  header[4] = FLG;
  header[5] = BD;
  header.writeBigUInt64LE(BigInt(content.length), 6);
  header[14] = (xxh32(header.subarray(4, 14)) >>> 8) & 0xff;
  const parts: Buffer[] = [header];
  for (let at = 0; at < content.length; at += MAX_BLOCK) {
    const block = content.subarray(at, at + MAX_BLOCK);
    // compressSync prefixes the block with its content size (u32): that word
    // becomes the frame's block size, so the block is not copied again.
    const packed = codec().compressSync(Buffer.from(block.buffer, block.byteOffset, block.length));
    if (packed.length - 4 < block.length) {
      packed.writeUInt32LE(packed.length - 4, 0);
      parts.push(packed);
    } else {
      const size = Buffer.alloc(4);
      size.writeUInt32LE((RAW | block.length) >>> 0, 0);
      parts.push(size, Buffer.from(block.buffer, block.byteOffset, block.length));
    }
  }
  const tail = Buffer.alloc(8);
  tail.writeUInt32LE(xxh32(content), 4);
  parts.push(tail);
  return Buffer.concat(parts);
}

export interface FrameHeader {
  flags: number;
  /** Bytes of the header, up to the first block. */
  headerBytes: number;
  contentSize: number;
}

/** Reads a frame header at the start of `b` (at least FRAME_HEADER_BYTES, or what is left of the file). */
export function describeFrame(b: Uint8Array): FrameHeader {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  if (b.length < 7) throw new FrameError('truncated frame header');
  if (v.getUint32(0, true) !== FRAME_MAGIC) throw new FrameError('not an LZ4 frame (bad magic)');
  const flags = b[4]!;
  if (flags >> 6 !== 1 || flags & FLG_DICT || flags & 0x02) throw new FrameError(`unsupported LZ4 frame flags 0x${flags.toString(16)}`);
  if (!(flags & FLG_CONTENT_SIZE)) throw new FrameError('LZ4 frame without a content size (not written by n2disk-ts)');
  const headerBytes = FRAME_HEADER_BYTES;
  if (b.length < headerBytes) throw new FrameError('truncated frame header');
  if (((xxh32(b.subarray(4, headerBytes - 1)) >>> 8) & 0xff) !== b[headerBytes - 1]) throw new FrameError('frame header checksum mismatch');
  const size = v.getBigUint64(6, true);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new FrameError('frame content size out of range');
  return { flags, headerBytes, contentSize: Number(size) };
}

/** Length of a block entry (size word, data, block checksum) from its size word; 4 for the end mark. */
export function blockEntryBytes(sizeWord: number, flags: number): number {
  if (sizeWord === 0) return 4;
  return 4 + (sizeWord & ~RAW) + (flags & FLG_BLOCK_CHECKSUM ? 4 : 0);
}

/** Bytes after the end mark. */
export const trailerBytes = (flags: number): number => (flags & FLG_CONTENT_CHECKSUM ? 4 : 0);

/**
 * Decodes one whole frame, checking its blocks' sizes and its content
 * checksum. `frame` is used as scratch: block size words are overwritten.
 */
export function decodeFrame(frame: Buffer): Buffer {
  const h = describeFrame(frame);
  // A frame of one block (all of ours up to 4 MiB) is that block, decoded: no copy.
  let out: Buffer | undefined;
  const room = (): Buffer => (out ??= Buffer.allocUnsafe(h.contentSize));
  let at = h.headerBytes;
  let done = 0;
  for (;;) {
    if (at + 4 > frame.length) throw new FrameError('truncated frame');
    const word = frame.readUInt32LE(at);
    if (word === 0) break;
    const entry = blockEntryBytes(word, h.flags);
    if (at + entry > frame.length) throw new FrameError('truncated frame');
    const size = (word & ~RAW) >>> 0;
    if (word & RAW) {
      if (done + size > h.contentSize) throw new FrameError('frame holds more than its content size');
      frame.copy(room(), done, at + 4, at + 4 + size);
      done += size;
    } else {
      // Blocks of our frames are full except the last, which is what the
      // block codec needs to know; its size goes where the block size was.
      const expect = Math.min(MAX_BLOCK, h.contentSize - done);
      frame.writeUInt32LE(expect, at);
      let block: Buffer;
      try {
        block = codec().uncompressSync(frame.subarray(at, at + 4 + size));
      } catch (e) {
        throw new FrameError(`corrupt block (${(e as Error).message})`);
      }
      if (block.length !== expect) throw new FrameError('block decodes to a wrong size');
      if (done === 0 && expect === h.contentSize && !out) out = block;
      else block.copy(room(), done);
      done += expect;
    }
    at += entry;
  }
  at += 4;
  if (done !== h.contentSize) throw new FrameError(`frame holds ${done} bytes, its header says ${h.contentSize}`);
  const content = room();
  if (h.flags & FLG_CONTENT_CHECKSUM) {
    if (at + 4 > frame.length) throw new FrameError('truncated frame');
    if (frame.readUInt32LE(at) !== xxh32(content)) throw new FrameError('content checksum mismatch');
    at += 4;
  }
  if (at !== frame.length) throw new FrameError(`${frame.length - at} bytes after the frame's end`);
  return content;
}
