// The per-packet metadata record filled by the capture thread (native/meta.h
// holds the C++ side; change both together). This module is the only place
// in TypeScript that knows the layout: hot loops read records through the
// word indexes below, everything else through the accessors.
import os from 'node:os';

/** Bytes per record; records are packed back to back in a batch's ArrayBuffer. */
export const META_SIZE = 80;

/** MetaFlags of native/meta.h. */
export const META_IPV4 = 1;
export const META_IPV6 = 2;
export const META_PORTS = 4;
export const META_FRAGMENT = 8;
export const META_VLAN = 16;
export const META_PLAIN = 32;
export const META_MAC = 64;

// Byte offsets of the fields (little-endian).
const TS_NS = 0;
const OFFSET = 8;
const CAPLEN = 16;
const WIRELEN = 20;
const SRC = 24;
const DST = 40;
const SPORT = 56;
const DPORT = 58;
const ETHERTYPE = 60;
const VLAN = 62;
const SRC_MAC = 64;
const DST_MAC = 70;
const IPPROTO = 76;
const FLAGS = 77;

/**
 * The record seen as 20 little-endian u32 words, for per-packet loops in
 * TypeScript (statistics, micro-bursts): one typed-array read per word
 * instead of a DataView call per field.
 */
export const META_WORDS = META_SIZE / 4;
export const WORD_TS_LO = TS_NS / 4;
export const WORD_TS_HI = WORD_TS_LO + 1;
export const WORD_WIRELEN = WIRELEN / 4;

/**
 * A batch as u32 words. The records are little-endian, and so is every host
 * the native addon is built for; a big-endian host would read garbage, so it
 * is refused here rather than indexed wrongly.
 */
export function metaWords(batch: ArrayBuffer, count: number): Uint32Array {
  if (os.endianness() !== 'LE') throw new Error('packet metadata needs a little-endian host');
  if (batch.byteLength < count * META_SIZE) {
    throw new RangeError(`metadata batch of ${batch.byteLength} bytes cannot hold ${count} records`);
  }
  return new Uint32Array(batch, 0, count * META_WORDS);
}

const at = (i: number, field: number): number => i * META_SIZE + field;
const bytes = (v: DataView, i: number, field: number, n: number): Uint8Array =>
  new Uint8Array(v.buffer, v.byteOffset + at(i, field), n);

export const metaTsNs = (v: DataView, i: number): bigint => v.getBigUint64(at(i, TS_NS), true);
export const metaOffset = (v: DataView, i: number): number => Number(v.getBigUint64(at(i, OFFSET), true));
export const metaCaplen = (v: DataView, i: number): number => v.getUint32(at(i, CAPLEN), true);
export const metaWirelen = (v: DataView, i: number): number => v.getUint32(at(i, WIRELEN), true);
/** IPv4 addresses occupy the first 4 bytes. */
export const metaSrc = (v: DataView, i: number): Uint8Array => bytes(v, i, SRC, 16);
export const metaDst = (v: DataView, i: number): Uint8Array => bytes(v, i, DST, 16);
export const metaSport = (v: DataView, i: number): number => v.getUint16(at(i, SPORT), true);
export const metaDport = (v: DataView, i: number): number => v.getUint16(at(i, DPORT), true);
export const metaEthertype = (v: DataView, i: number): number => v.getUint16(at(i, ETHERTYPE), true);
export const metaVlan = (v: DataView, i: number): number => v.getUint16(at(i, VLAN), true);
export const metaSrcMac = (v: DataView, i: number): Uint8Array => bytes(v, i, SRC_MAC, 6);
export const metaDstMac = (v: DataView, i: number): Uint8Array => bytes(v, i, DST_MAC, 6);
export const metaIpproto = (v: DataView, i: number): number => v.getUint8(at(i, IPPROTO));
export const metaFlags = (v: DataView, i: number): number => v.getUint8(at(i, FLAGS));

/** One record's fields, for synthesizing batches (tests, benchmarks, imports). */
export interface PacketMetaInit {
  tsNs: bigint;
  offset: number;
  caplen: number;
  /** Defaults to caplen. */
  wirelen?: number;
  /** 4 bytes (IPv4) or 16 bytes (IPv6); omitted for non-IP packets. */
  src?: Uint8Array;
  dst?: Uint8Array;
  sport?: number;
  dport?: number;
  ethertype?: number;
  vlan?: number;
  srcMac?: Uint8Array;
  dstMac?: Uint8Array;
  ipproto?: number;
  flags: number;
}

/** Packs records into a batch laid out exactly as the native side hands it over. */
export function encodeMeta(records: readonly PacketMetaInit[]): ArrayBuffer {
  const buf = new ArrayBuffer(records.length * META_SIZE);
  const v = new DataView(buf);
  const u8 = new Uint8Array(buf);
  records.forEach((r, i) => {
    v.setBigUint64(at(i, TS_NS), r.tsNs, true);
    v.setBigUint64(at(i, OFFSET), BigInt(r.offset), true);
    v.setUint32(at(i, CAPLEN), r.caplen, true);
    v.setUint32(at(i, WIRELEN), r.wirelen ?? r.caplen, true);
    if (r.src) u8.set(r.src, at(i, SRC));
    if (r.dst) u8.set(r.dst, at(i, DST));
    v.setUint16(at(i, SPORT), r.sport ?? 0, true);
    v.setUint16(at(i, DPORT), r.dport ?? 0, true);
    v.setUint16(at(i, ETHERTYPE), r.ethertype ?? 0, true);
    v.setUint16(at(i, VLAN), r.vlan ?? 0, true);
    if (r.srcMac) u8.set(r.srcMac, at(i, SRC_MAC));
    if (r.dstMac) u8.set(r.dstMac, at(i, DST_MAC));
    v.setUint8(at(i, IPPROTO), r.ipproto ?? 0);
    v.setUint8(at(i, FLAGS), r.flags);
  });
  return buf;
}
