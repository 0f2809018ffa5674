// The classic pcap file header, read in one place: what a file's magic,
// link type and snaplen say, or one line on why it is not a file we can use.
import fs from 'node:fs';
import { ByteReader } from './byte-reader';

export const PCAP_HEADER_BYTES = 24;
export const RECORD_HEADER_BYTES = 16;
/** libpcap refuses records longer than this for nearly every link type (MAXIMUM_SNAPLEN). */
export const MAX_CAPLEN = 262144;

export interface PcapHeader {
  /** Little-endian, as n2disk-ts writes on this architecture. */
  littleEndian: boolean;
  nano: boolean;
  snaplen: number;
  /** LINKTYPE_* value (the FCS bits above it are dropped). */
  linktype: number;
}

/** A file that is not a classic pcap, or is one in a form we cannot use. */
export class PcapFormatError extends Error {
  constructor(
    readonly file: string,
    defect: string,
  ) {
    super(`${file}: ${defect}`);
  }
}

const MAGICS: Record<number, { littleEndian: boolean; nano: boolean }> = {
  0xa1b2c3d4: { littleEndian: true, nano: false },
  0xa1b23c4d: { littleEndian: true, nano: true },
  0xd4c3b2a1: { littleEndian: false, nano: false },
  0x4d3cb2a1: { littleEndian: false, nano: true },
};
const PCAPNG_MAGIC = 0x0a0d0d0a;

/** Byte order and precision of a classic pcap from its first four bytes (read little-endian); undefined for anything else. */
export const pcapFormatOf = (magic: number): { littleEndian: boolean; nano: boolean } | undefined => MAGICS[magic];

/** The 24-byte header n2disk-ts writes: little-endian, version 2.4. */
export function pcapHeader(h: { nano: boolean; snaplen: number; linktype: number }): Buffer {
  const b = Buffer.alloc(PCAP_HEADER_BYTES);
  b.writeUInt32LE(h.nano ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeUInt32LE(h.snaplen, 16);
  b.writeUInt32LE(h.linktype, 20);
  return b;
}

/** Reads the header of an open file (a descriptor, or a reader of a compressed one). Both byte orders are recognised; callers decide what they accept. */
export function readPcapHeader(from: number | ByteReader, file: string): PcapHeader {
  const h = Buffer.alloc(PCAP_HEADER_BYTES);
  const n = typeof from === 'number' ? fs.readSync(from, h, 0, PCAP_HEADER_BYTES, 0) : from.read(h, 0, PCAP_HEADER_BYTES, 0);
  if (n >= 4 && h.readUInt32LE(0) === PCAPNG_MAGIC) {
    throw new PcapFormatError(file, 'is pcapng, not pcap (convert it with: editcap -F pcap IN OUT)');
  }
  if (n < PCAP_HEADER_BYTES) throw new PcapFormatError(file, `shorter than a pcap header (${n} bytes)`);
  const format = pcapFormatOf(h.readUInt32LE(0));
  if (!format) throw new PcapFormatError(file, 'not a pcap file (unknown magic number)');
  const u32 = (at: number): number => (format.littleEndian ? h.readUInt32LE(at) : h.readUInt32BE(at));
  return { ...format, snaplen: u32(16), linktype: u32(20) & 0x03ffffff };
}
