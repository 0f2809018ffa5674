// Counts what a tool actually stored, from its files rather than from what
// it says about itself, and checks the records on the way: a recorder that
// claims N packets but wrote something else is a bug the bench should show.
import fs from 'node:fs';
import path from 'node:path';
import { pcapFormatOf } from '../../recorder/pcap-file';

export interface StoredCount {
  packets: number;
  files: number;
  /** Bytes of everything in the output directory (data and indexes). */
  diskBytes: number;
  /** Records whose length is not the frame size trafgen sent. */
  badLength: number;
  /** Records older than the one before them in the same file. */
  outOfOrder: number;
  /** Files ending inside a record. */
  truncated: number;
  /** Data files left with an "in progress" name. */
  unfinished: number;
}

export function emptyCount(): StoredCount {
  return { packets: 0, files: 0, diskBytes: 0, badLength: 0, outOfOrder: 0, truncated: 0, unfinished: 0 };
}

export function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** The dump set's pcap files in time order (`<n>/<epoch>.<usec>.pcap`), with each one's first timestamp. */
export function dumpFiles(dump: string): { file: string; startUs: number }[] {
  const out: { file: string; startUs: number }[] = [];
  for (const d of fs.readdirSync(dump).filter((n) => /^\d+$/.test(n))) {
    for (const f of fs.readdirSync(path.join(dump, d))) {
      const m = /^(\d+)\.(\d{6})\.pcap$/.exec(f);
      if (m) out.push({ file: path.join(dump, d, f), startUs: Number(m[1]) * 1e6 + Number(m[2]) });
    }
  }
  return out.sort((x, y) => x.startUs - y.startUs);
}

export function diskBytes(dir: string): number {
  return listFiles(dir).reduce((n, f) => n + fs.statSync(f).size, 0);
}

const READ = 16 << 20;

/** Walks the records of one pcap file (either byte order, micro or nano) with large sequential reads. */
function countPcap(file: string, frameSize: number, c: StoredCount): void {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.allocUnsafe(READ);
    let pos = 24; // next record's file offset
    let base = 0; // file offset of buf[0]
    let have = fs.readSync(fd, buf, 0, READ, 0);
    const magic = buf.readUInt32LE(0);
    const format = pcapFormatOf(magic);
    if (!format) throw new Error(`${file}: not a pcap file`);
    const le = format.littleEndian;
    const sub = format.nano ? 1 : 1000; // to nanoseconds
    let last = 0;
    while (pos < size) {
      if (pos + 16 > base + have) {
        base = pos;
        have = fs.readSync(fd, buf, 0, READ, base);
        if (have < 16) {
          c.truncated++;
          break;
        }
      }
      const o = pos - base;
      const sec = le ? buf.readUInt32LE(o) : buf.readUInt32BE(o);
      const frac = le ? buf.readUInt32LE(o + 4) : buf.readUInt32BE(o + 4);
      const caplen = le ? buf.readUInt32LE(o + 8) : buf.readUInt32BE(o + 8);
      if (pos + 16 + caplen > size) {
        c.truncated++;
        break;
      }
      const ts = sec * 1e9 + frac * sub;
      if (ts < last) c.outOfOrder++;
      last = ts;
      if (caplen !== frameSize) c.badLength++;
      c.packets++;
      pos += 16 + caplen;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Every pcap file under dir, including ones still carrying a temporary name. */
export function countPcapDir(dir: string, frameSize: number): StoredCount {
  const c = emptyCount();
  c.diskBytes = diskBytes(dir);
  for (const f of listFiles(dir)) {
    if (!/\.pcap(\.part)?$/.test(f)) continue;
    c.files++;
    if (f.endsWith('.part')) c.unfinished++;
    countPcap(f, frameSize, c);
  }
  return c;
}

/**
 * Stenotype writes the kernel's TPACKET_V3 blocks as they are, 1 MiB each,
 * into DIR/PKT0/<micros> (".<micros>" while open). A block descriptor holds
 * num_pkts at +12 and offset_to_first_pkt at +16; each packet's
 * tpacket3_hdr holds tp_next_offset at +0, tp_sec +4, tp_nsec +8 and
 * tp_snaplen +12.
 */
export function countStenotypeDir(dir: string, frameSize: number, blockSize = 1 << 20): StoredCount {
  const c = emptyCount();
  c.diskBytes = diskBytes(dir);
  const buf = Buffer.allocUnsafe(blockSize);
  for (const f of listFiles(path.join(dir, 'PKT0'))) {
    c.files++;
    if (path.basename(f).startsWith('.')) c.unfinished++;
    const fd = fs.openSync(f, 'r');
    let last = 0;
    try {
      for (let off = 0; ; off += blockSize) {
        const n = fs.readSync(fd, buf, 0, blockSize, off);
        if (n === 0) break;
        if (n < blockSize) {
          c.truncated++;
          break;
        }
        const pkts = buf.readUInt32LE(12);
        let p = buf.readUInt32LE(16);
        for (let i = 0; i < pkts; i++) {
          if (p + 16 > blockSize) {
            c.truncated++;
            break;
          }
          const ts = buf.readUInt32LE(p + 4) * 1e9 + buf.readUInt32LE(p + 8);
          if (ts < last) c.outOfOrder++;
          last = ts;
          if (buf.readUInt32LE(p + 12) !== frameSize) c.badLength++;
          c.packets++;
          p += buf.readUInt32LE(p);
        }
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  return c;
}
