// Reading the packets of one pcap file that fall in a time range and pass a
// filter. The index only chooses which stretches of the file are read;
// inside them every record is walked and judged by libpcap (PacketFilter).
import fs from 'node:fs';
import { PacketFilter } from '../native/addon';

/** A stretch of a file: records starting at `start`, up to those starting before `stop`. */
export interface ByteRange {
  start: number;
  stop: number;
}

/** One kept packet: its pcap record (16-byte header + data, as in its file) and its time. */
export interface Packet {
  tsNs: bigint;
  record: Buffer;
  /** The record's fraction field counts nanoseconds (its file is nanosecond pcap). */
  nano: boolean;
  /** Which output origin (timeline and link type) the packet belongs to. */
  origin: number;
  /** Where the record starts in its file. */
  offset: number;
}

/** What one file's reading needs besides the ranges. */
export interface FileReading {
  fd: number;
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
const PCAP_HEADER = 24;

export interface ReadStats {
  bytesRead: number;
  reads: number;
}

/** Yields the kept packets of `ranges` (in file order, sorted and not overlapping). */
export function* readRanges(f: FileReading, ranges: readonly ByteRange[], stats: ReadStats): Generator<Packet> {
  const { fd, filter, beginNs, endNs, nano, origin } = f;
  const fileEnd = f.end;
  const unit = nano ? 1n : 1000n;
  // One read buffer per file, grown as needed: kept packets are copied out.
  let scratch = Buffer.allocUnsafe(0);
  for (const range of ranges) {
    let pos = Math.max(range.start, PCAP_HEADER);
    const stop = Math.min(range.stop, fileEnd);
    let want = Math.min(stop - pos + TAIL, CHUNK);
    while (pos < stop) {
      const len = Math.min(want, fileEnd - pos);
      if (scratch.length < len) scratch = Buffer.allocUnsafe(len);
      const buf = scratch;
      const got = fs.readSync(fd, buf, 0, len, pos);
      stats.bytesRead += got;
      stats.reads++;
      const view = buf.subarray(0, got);
      const r = filter.scan(view, 0, stop - pos - 1, beginNs, endNs, nano);
      for (const at of r.kept) {
        const caplen = view.readUInt32LE(at + 8);
        const tsNs = BigInt(view.readUInt32LE(at)) * 1_000_000_000n + BigInt(view.readUInt32LE(at + 4)) * unit;
        yield { tsNs, record: Buffer.from(view.subarray(at, at + 16 + caplen)), nano, origin, offset: pos + at };
      }
      if (r.next === 0) {
        // Not one whole record in the buffer: the next record is larger than
        // what was read, or the file ends inside it.
        if (got < 16 || pos + got >= fileEnd) break;
        want = 16 + view.readUInt32LE(8);
        continue;
      }
      pos += r.next;
      want = Math.min(stop - pos + TAIL, CHUNK);
    }
  }
}
