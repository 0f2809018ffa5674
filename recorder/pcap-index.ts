// The index of a pcap file that already exists (npcapindex, crash recovery,
// npcaprepair), built by the same parser and builder as a recording, so a
// rebuilt index equals the one that was recorded with the file.
import fs from 'node:fs';
import { IndexBuilder, recordsMeta, RecordsStop } from '../native/addon';
import { MAX_CAPLEN, PCAP_HEADER_BYTES, PcapFormatError, readPcapHeader } from './pcap-file';

const READ_BYTES = 16 << 20;

export interface PcapIndex {
  /** The finished index segment, for writeIndexFile(). */
  index: Uint8Array;
  packets: number;
  /** Length of the header and the whole records that were indexed. */
  goodBytes: number;
  fileBytes: number;
  /** Why the records ended before the file did, when they did. */
  tail: 'partial record' | 'zero padding' | 'invalid record' | undefined;
  minNs: bigint;
  maxNs: bigint;
}

const TAILS: Record<RecordsStop, PcapIndex['tail']> = { more: 'partial record', zeros: 'zero padding', invalid: 'invalid record' };

/**
 * Indexes every whole record of a little-endian classic pcap, up to the first
 * that is cut short or invalid. Throws PcapFormatError for anything else.
 */
export function indexPcapFile(file: string): PcapIndex {
  const fd = fs.openSync(file, 'r');
  try {
    const header = readPcapHeader(fd, file);
    if (!header.littleEndian) throw new PcapFormatError(file, 'byte-swapped pcap is not supported (rewrite it with editcap)');
    const fileBytes = fs.fstatSync(fd).size;
    const builder = new IndexBuilder({ linktype: header.linktype, nano: header.nano, snaplen: header.snaplen });
    const maxCaplen = Math.min(Math.max(MAX_CAPLEN, header.snaplen), READ_BYTES - 16);
    const buf = Buffer.allocUnsafe(READ_BYTES);
    let at = PCAP_HEADER_BYTES; // file offset of buf[0]
    let have = 0;
    let packets = 0;
    let stop: RecordsStop = 'more';
    for (;;) {
      const n = fs.readSync(fd, buf, have, buf.length - have, at + have);
      have += n;
      const r = recordsMeta(buf.subarray(0, have), at, header.linktype, header.nano, maxCaplen);
      builder.add(r.meta, r.count);
      packets += r.count;
      buf.copy(buf, 0, r.next, have);
      at += r.next;
      have -= r.next;
      if (r.stop !== 'more' || n === 0) {
        stop = r.stop;
        break;
      }
    }
    return {
      index: builder.finish(at),
      packets,
      goodBytes: at,
      fileBytes,
      tail: at < fileBytes ? TAILS[stop] : undefined,
      minNs: builder.minNs,
      maxNs: builder.maxNs,
    };
  } finally {
    fs.closeSync(fd);
  }
}
