// Reading the packets of one pcap file that fall in a time range and pass a
// filter. The index only chooses which stretches of the file are read;
// inside them every record is walked and judged by libpcap (PacketFilter).
import { PacketFilter, prefetch } from '../native/addon';
import { ByteReader } from '../recorder/byte-reader';
import { PCAP_HEADER_BYTES } from '../recorder/pcap-file';

/** A stretch of a file: records starting at `start`, up to those starting before `stop`. */
export interface ByteRange {
  start: number;
  stop: number;
}

/**
 * The packets kept from one read: their pcap records (16-byte header + data,
 * as in their file) back to back, so that a sequential read hands over one
 * buffer per read instead of one object per packet.
 */
export interface Batch {
  records: Buffer;
  /** Where each record starts in its file, in file order. */
  offsets: ArrayLike<number>;
  /** The records' fraction fields count nanoseconds (their file is nanosecond pcap). */
  nano: boolean;
  /** Which output origin (timeline and link type) the packets belong to. */
  origin: number;
}

/** One kept packet, as the merge and the flow listing see it. */
export interface Packet {
  tsNs: bigint;
  /** Its record: 16-byte header + data. */
  record: Buffer;
  nano: boolean;
  origin: number;
  /** Where the record starts in its file. */
  offset: number;
}

/** A record's time in nanoseconds. */
export function recordNs(record: Uint8Array, at: number, nano: boolean): bigint {
  const v = new DataView(record.buffer, record.byteOffset + at, 8);
  return BigInt(v.getUint32(0, true)) * 1_000_000_000n + BigInt(v.getUint32(4, true)) * (nano ? 1n : 1000n);
}

/** The packets of a batch one by one (their records are views into the batch). */
export function* packetsOf(b: Batch): Generator<Packet> {
  for (let i = 0, at = 0; i < b.offsets.length; i++) {
    const end = at + 16 + b.records.readUInt32LE(at + 8);
    yield { tsNs: recordNs(b.records, at, b.nano), record: b.records.subarray(at, end), nano: b.nano, origin: b.origin, offset: b.offsets[i]! };
    at = end;
  }
}

/** A single packet as a batch (what merging overlapping files yields). */
export const batchOf = (p: Packet): Batch => ({ records: p.record, offsets: [p.offset], nano: p.nano, origin: p.origin });

/** What one file's reading needs besides the ranges. */
export interface FileReading {
  /** The file's bytes, plain or decompressed as needed. */
  source: ByteReader;
  /** Records beyond this are not read (a file being written ends at its last index segment). */
  end: number;
  filter: PacketFilter;
  beginNs: bigint;
  endNs: bigint;
  /** The file's precision. */
  nano: boolean;
  origin: number;
}

/** Bytes read beyond a range's last record start, so one read usually holds it whole. */
const TAIL = 4096;
/** Largest single read of a sequential stretch. */
const CHUNK = 4 << 20;
/**
 * How far past a read the disk is asked to read on: two reads. On 10 GiB
 * read cold (port 53 of bench/extract.ts), 4 runs each: 11.3 s on average
 * against 18.5 s without; 16 and 64 MiB did no better than none.
 */
const AHEAD = 2 * CHUNK;

export interface ReadStats {
  bytesRead: number;
  reads: number;
}

/** Yields the kept packets of `ranges` (in file order, sorted and not overlapping), one batch per read. */
export function* readRanges(f: FileReading, ranges: readonly ByteRange[], stats: ReadStats): Generator<Batch> {
  const { source, filter, beginNs, endNs, nano, origin } = f;
  const fileEnd = f.end;
  // One read buffer per file, grown as needed: kept records are copied out by the scan.
  let scratch = Buffer.allocUnsafe(0);
  for (const range of ranges) {
    let pos = Math.max(range.start, PCAP_HEADER_BYTES);
    const stop = Math.min(range.stop, fileEnd);
    let want = Math.min(stop - pos + TAIL, CHUNK);
    let grown = false;
    while (pos < stop) {
      let len = Math.min(want, fileEnd - pos);
      // A compressed file decodes whole frames, and frames start at records:
      // the tail that makes sure of the range's last record stays in its frame.
      const frameEnd = grown ? undefined : source.frameEnd?.(stop - 1);
      if (frameEnd !== undefined) len = Math.min(len, frameEnd - pos);
      if (scratch.length < len) scratch = Buffer.allocUnsafe(len);
      const buf = scratch;
      const got = source.read(buf, 0, len, pos);
      stats.bytesRead += got;
      stats.reads++;
      // While this read is scanned and written, the disk fetches the next ones.
      const ahead = Math.min(AHEAD, stop + TAIL - (pos + got));
      if (ahead > 0 && source.plainFd !== undefined) prefetch(source.plainFd, pos + got, ahead);
      const view = buf.subarray(0, got);
      const r = filter.scan(view, 0, stop - pos - 1, beginNs, endNs, nano);
      if (r.kept.length) {
        const base = pos;
        yield { records: r.records, offsets: Float64Array.from(r.kept, (at) => base + at), nano, origin };
      }
      if (r.next === 0) {
        // Not one whole record in the buffer: the next record is larger than
        // what was read, or the file ends inside it.
        if (got < 16 || pos + got >= fileEnd) break;
        want = 16 + view.readUInt32LE(8);
        grown = true;
        continue;
      }
      grown = false;
      pos += r.next;
      want = Math.min(stop - pos + TAIL, CHUNK);
    }
  }
}
