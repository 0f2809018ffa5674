// Reads pcap files record by record to count and hash the packets inside a
// time range: the bench's own referee, independent of the code under test.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { pcapFormatOf } from '../../recorder/pcap-file';

export interface ScanResult {
  packets: number;
  /** Bytes of the records (16-byte headers + captured data), global header excluded. */
  bytes: number;
  /** sha256 over the records in order: equal digests mean byte-identical packets and timestamps. */
  sha256: string;
  nano: boolean;
  linktype: number;
}

/**
 * Records of `files` (read in the order given) whose timestamp, in
 * microseconds since the epoch, is in [beginUs, endUs).
 */
export function scanPcaps(files: string[], beginUs = -Infinity, endUs = Infinity): ScanResult {
  const hash = crypto.createHash('sha256');
  const res: ScanResult = { packets: 0, bytes: 0, sha256: '', nano: false, linktype: -1 };
  const buf = Buffer.alloc(16 << 20);
  for (const file of files) {
    const fd = fs.openSync(file, 'r');
    try {
      let have = 0, pos = 0, eof = false;
      // Keeps at least `n` bytes from `pos` in the buffer, unless the file ends first.
      const need = (n: number): boolean => {
        if (have - pos >= n) return true;
        if (eof) return false;
        buf.copy(buf, 0, pos, have);
        have -= pos;
        pos = 0;
        while (have < buf.length) {
          const got = fs.readSync(fd, buf, have, buf.length - have, null);
          if (got === 0) {
            eof = true;
            break;
          }
          have += got;
          if (have - pos >= n) break;
        }
        return have - pos >= n;
      };
      if (!need(24)) continue;
      const magic = buf.readUInt32LE(0);
      const format = pcapFormatOf(magic);
      if (!format?.littleEndian) throw new Error(`${file}: not a little-endian pcap`);
      const nano = format.nano;
      res.nano = nano;
      res.linktype = buf.readUInt32LE(20);
      pos = 24;
      while (need(16)) {
        const incl = buf.readUInt32LE(pos + 8);
        if (!need(16 + incl)) throw new Error(`${file}: truncated record`);
        const us = buf.readUInt32LE(pos) * 1e6 + (nano ? Math.floor(buf.readUInt32LE(pos + 4) / 1000) : buf.readUInt32LE(pos + 4));
        if (us >= beginUs && us < endUs) {
          hash.update(buf.subarray(pos, pos + 16 + incl));
          res.packets++;
          res.bytes += 16 + incl;
        }
        pos += 16 + incl;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  res.sha256 = hash.digest('hex');
  return res;
}
