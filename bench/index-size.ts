// Index size and builder speed.
//   node dist/bench/index-size.js                      synthetic: 3 M packets in 1 M flows
//   node dist/bench/index-size.js --random                 100 B random flows: the builder's worst case
//   node dist/bench/index-size.js --corpus DIR [--out DIR]
//        every pcap/pcapng file in DIR, as the recorder would import it; with
//        --out, the converted pcap files and their indexes are kept there
//        (check them with npcapprintindex -c).
// The corpus parser below is a stand-in for native/parse.cc, good enough to
// measure sizes: Ethernet (with VLAN tags), Linux cooked v1/v2, raw IP, BSD
// loopback; IPv4/IPv6 with extension headers and fragments; TCP/UDP/SCTP ports.
import { ByteBuffer } from 'flatbuffers';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IndexBuilder, recordsMeta } from '../native/addon';
import { containerBytes, frameHeaderBytes } from '../recorder/index-container';
import { writeIndexFile } from '../recorder/index-file';
import { Segment } from '../recorder/index_generated/index_generated';
import { MAX_CAPLEN, pcapFormatOf, pcapHeader } from '../recorder/pcap-file';
import {
  META_FRAGMENT, META_IPV4, META_IPV6, META_MAC, META_PLAIN, META_PORTS, META_VLAN, PacketMetaInit, encodeMeta,
} from '../recorder/packet-meta';
import { generateRandomPcap } from './lib/random-pcap';
import { generateTraffic } from './synthetic-flows';

/** Synthetic packets per second. */
const RATE = 300_000;

function synthetic(): void {
  const P = 3_000_000;
  const F = 1_000_000;
  console.log(`synthetic traffic: ${P} packets, ${F} flows, ${RATE} packets/s`);
  for (const [spread, nano] of [['local', false], ['local', true], ['uniform', false]] as const) {
    const b = new IndexBuilder({ linktype: 1, nano, snaplen: 0 });
    let addNs = 0n;
    let pending = 0;
    let segments = 0, segmentNs = 0n, segmentBytes = 0;
    // As the recorder does: one segment per second of traffic.
    const r = generateTraffic({ packets: P, flows: F, spread, seconds: P / RATE, nano, batch: 6000 }, (meta, count, committed) => {
      let t = process.hrtime.bigint();
      b.add(meta, count);
      addNs += process.hrtime.bigint() - t;
      pending += count;
      if (pending < RATE) return;
      pending = 0;
      t = process.hrtime.bigint();
      const segment = b.segment(committed).length;
      b.segmentWritten();
      segmentBytes += segment + frameHeaderBytes(segment);
      segmentNs += process.hrtime.bigint() - t;
      segments++;
    });
    const t = process.hrtime.bigint();
    const index = b.finish(r.fileBytes);
    const finishMs = Number(process.hrtime.bigint() - t) / 1e6;
    const bytes = index.length + containerBytes(index.length);
    console.log(`  ${spread.padEnd(7)} ${nano ? 'ns' : 'us'}: ${(bytes / P).toFixed(2)} bytes/packet, ` +
      `${((100 * bytes) / r.fileBytes).toFixed(2)}% of ${(r.fileBytes / 1e9).toFixed(2)} GB, ` +
      `add() ${(P / (Number(addNs) / 1e9) / 1e6).toFixed(2)} M records/s, ` +
      `segment() ${(Number(segmentNs) / 1e6 / segments).toFixed(0)} ms a second ` +
      `(${(segmentBytes / (P - pending)).toFixed(2)} bytes/packet), finish() ${finishMs.toFixed(0)} ms`);
  }
}

// ---------------------------------------------------------------- corpus

interface Capture {
  linktype: number;
  nano: boolean;
  packets: { tsNs: bigint; data: Uint8Array; wirelen: number; linktype: number }[];
}

function readCapture(buf: Buffer): Capture | undefined {
  const magic = buf.length >= 24 ? buf.readUInt32LE(0) : 0;
  if (magic === 0x0a0d0d0a) return readPcapng(buf);
  const format = pcapFormatOf(magic);
  if (!format) return undefined;
  const { littleEndian: le, nano } = format;
  const u32 = (at: number): number => (le ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
  const linktype = u32(20) & 0xffff;
  const cap: Capture = { linktype, nano, packets: [] };
  for (let at = 24; at + 16 <= buf.length;) {
    const caplen = u32(at + 8);
    if (at + 16 + caplen > buf.length) break;
    const tsNs = BigInt(u32(at)) * 1_000_000_000n + BigInt(u32(at + 4)) * (nano ? 1n : 1000n);
    cap.packets.push({ tsNs, data: buf.subarray(at + 16, at + 16 + caplen), wirelen: u32(at + 12), linktype });
    at += 16 + caplen;
  }
  return cap;
}

function readPcapng(buf: Buffer): Capture | undefined {
  const cap: Capture = { linktype: -1, nano: true, packets: [] };
  let le = true;
  let ifaces: { linktype: number; perSecond: bigint }[] = [];
  for (let at = 0; at + 12 <= buf.length;) {
    const type = buf.readUInt32LE(at);
    if (type === 0x0a0d0d0a) {
      le = buf.readUInt32LE(at + 8) === 0x1a2b3c4d;
      ifaces = [];
    }
    const u32 = (o: number): number => (le ? buf.readUInt32LE(at + o) : buf.readUInt32BE(at + o));
    const u16 = (o: number): number => (le ? buf.readUInt16LE(at + o) : buf.readUInt16BE(at + o));
    const len = u32(4);
    if (len < 12 || at + len > buf.length) break;
    const kind = u32(0);
    if (kind === 1) {
      let perSecond = 1_000_000n;
      for (let o = 16; o + 4 <= len - 4;) {
        const code = u16(o);
        const olen = u16(o + 2);
        if (code === 0) break;
        if (code === 9 && olen >= 1) {
          const v = buf[at + o + 4];
          perSecond = v & 0x80 ? 1n << BigInt(v & 0x7f) : 10n ** BigInt(v);
        }
        o += 4 + Math.ceil(olen / 4) * 4;
      }
      ifaces.push({ linktype: u16(8), perSecond });
      if (cap.linktype < 0) cap.linktype = u16(8);
    } else if (kind === 6 || kind === 2) {
      const iface = ifaces[kind === 6 ? u32(8) : u16(8)];
      const caplen = u32(20);
      if (iface && 28 + caplen <= len) {
        const ticks = (BigInt(u32(12)) << 32n) | BigInt(u32(16));
        cap.packets.push({
          tsNs: (ticks * 1_000_000_000n) / iface.perSecond, data: buf.subarray(at + 28, at + 28 + caplen),
          wirelen: u32(24), linktype: iface.linktype,
        });
      }
    } else if (kind === 3 && ifaces[0]) {
      const wirelen = u32(8);
      const caplen = Math.min(wirelen, len - 16);
      cap.packets.push({ tsNs: 0n, data: buf.subarray(at + 12, at + 12 + caplen), wirelen, linktype: ifaces[0].linktype });
    }
    at += len;
  }
  return cap.linktype < 0 ? undefined : cap;
}

/** What native/parse.cc would put in a PacketMeta record, short of the time and offset. */
function parsePacket(d: Uint8Array, linktype: number): Omit<PacketMetaInit, 'tsNs' | 'offset' | 'caplen'> {
  const v = new DataView(d.buffer, d.byteOffset, d.length);
  const m: Omit<PacketMetaInit, 'tsNs' | 'offset' | 'caplen'> = { flags: 0 };
  let at = 0;
  let ethertype = -1;
  let plain = true;
  if (linktype === 1 && d.length >= 14) {
    m.dstMac = d.subarray(0, 6);
    m.srcMac = d.subarray(6, 12);
    m.flags |= META_MAC;
    ethertype = v.getUint16(12);
    at = 14;
    while ((ethertype === 0x8100 || ethertype === 0x88a8 || ethertype === 0x9100) && at + 4 <= d.length) {
      if (!(m.flags & META_VLAN)) m.vlan = v.getUint16(at) & 0xfff;
      m.flags |= META_VLAN;
      plain = false;
      ethertype = v.getUint16(at + 2);
      at += 4;
    }
    if (ethertype === 0x8847 || ethertype === 0x8848) plain = false;
  } else if (linktype === 113 && d.length >= 16) {
    ethertype = v.getUint16(14);
    at = 16;
  } else if (linktype === 276 && d.length >= 20) {
    ethertype = v.getUint16(0);
    at = 20;
  } else if ((linktype === 101 || linktype === 12 || linktype === 228 || linktype === 229) && d.length >= 1) {
    ethertype = d[0] >> 4 === 6 ? 0x86dd : 0x0800;
  } else if (linktype === 0 && d.length >= 4) {
    const family = v.getUint32(0, true);
    ethertype = family === 2 ? 0x0800 : family === 24 || family === 28 || family === 30 ? 0x86dd : 0;
    at = 4;
  } else {
    plain = false;
  }
  if (ethertype >= 0) m.ethertype = ethertype;
  if (plain) m.flags |= META_PLAIN;
  let proto = -1;
  let l4 = -1;
  if (ethertype === 0x0800 && at + 20 <= d.length && d[at] >> 4 === 4) {
    m.src = d.subarray(at + 12, at + 16);
    m.dst = d.subarray(at + 16, at + 20);
    m.flags |= META_IPV4;
    proto = d[at + 9];
    if (v.getUint16(at + 6) & 0x1fff) m.flags |= META_FRAGMENT;
    else l4 = at + (d[at] & 15) * 4;
  } else if (ethertype === 0x86dd && at + 40 <= d.length && d[at] >> 4 === 6) {
    m.src = d.subarray(at + 8, at + 24);
    m.dst = d.subarray(at + 24, at + 40);
    m.flags |= META_IPV6;
    proto = d[at + 6];
    l4 = at + 40;
    while ([0, 43, 44, 51, 60].includes(proto) && l4 + 8 <= d.length) {
      if (proto === 44) {
        const later = (v.getUint16(l4 + 2) & 0xfff8) !== 0;
        proto = d[l4];
        l4 += 8;
        if (later) {
          m.flags |= META_FRAGMENT;
          l4 = -1;
          break;
        }
      } else {
        const next = d[l4];
        l4 += proto === 51 ? (d[l4 + 1] + 2) * 4 : (d[l4 + 1] + 1) * 8;
        proto = next;
      }
    }
  }
  if (proto >= 0) m.ipproto = proto;
  if ((proto === 6 || proto === 17 || proto === 132) && l4 >= 0 && l4 + 4 <= d.length) {
    m.sport = v.getUint16(l4);
    m.dport = v.getUint16(l4 + 2);
    m.flags |= META_PORTS;
  }
  return m;
}

function corpus(dir: string, out: string | undefined): void {
  let files = 0, packets = 0, flows = 0, pcapBytes = 0, indexBytes = 0, sourceBytes = 0;
  if (out) fs.mkdirSync(out, { recursive: true });
  for (const name of fs.readdirSync(dir).sort()) {
    const buf = fs.readFileSync(path.join(dir, name));
    const cap = readCapture(buf);
    if (!cap) continue;
    const builder = new IndexBuilder({ linktype: cap.linktype, nano: cap.nano, snaplen: 262144 });
    let offset = 24;
    const records = cap.packets.map((p) => {
      const r: PacketMetaInit = { ...parsePacket(p.data, p.linktype), tsNs: p.tsNs, offset, caplen: p.data.length, wirelen: p.wirelen };
      offset += 16 + p.data.length;
      return r;
    });
    if (records.length) builder.add(encodeMeta(records), records.length);
    const index = builder.finish(offset);
    files++;
    packets += records.length;
    flows += Segment.getRootAsSegment(new ByteBuffer(index)).flowCount();
    pcapBytes += offset;
    sourceBytes += buf.length;
    indexBytes += index.length + containerBytes(index.length);
    if (out) {
      const file = path.join(out, `${name.replace(/\.pcapng$|\.pcap$/, '')}.pcap`);
      writePcap(file, cap, records);
      writeIndexFile(`${file}.idx`, index);
    }
  }
  const emptySegment = new IndexBuilder({ linktype: 1, nano: false, snaplen: 262144 }).finish(24).length;
  const empty = emptySegment + containerBytes(emptySegment);
  console.log(`corpus ${dir}: ${files} files, ${packets} packets, ${flows} flows, ${pcapBytes} pcap bytes ` +
    `(${sourceBytes} as found)`);
  console.log(`  index: ${indexBytes} bytes = ${((100 * indexBytes) / pcapBytes).toFixed(2)}% of the pcap bytes, ` +
    `${(indexBytes / packets).toFixed(2)} bytes/packet, ${(indexBytes / flows).toFixed(1)} bytes/flow, ` +
    `${empty} bytes for an empty file`);
}

function writePcap(file: string, cap: Capture, records: PacketMetaInit[]): void {
  const parts = [pcapHeader({ nano: cap.nano, snaplen: MAX_CAPLEN, linktype: cap.linktype })];
  cap.packets.forEach((p, i) => {
    const h = Buffer.alloc(16);
    const perSec = cap.nano ? 1_000_000_000n : 1_000_000n;
    const ticks = cap.nano ? p.tsNs : p.tsNs / 1000n;
    h.writeUInt32LE(Number(ticks / perSec), 0);
    h.writeUInt32LE(Number(ticks % perSec), 4);
    h.writeUInt32LE(p.data.length, 8);
    h.writeUInt32LE(records[i].wirelen ?? p.data.length, 12);
    parts.push(h, Buffer.from(p.data));
  });
  fs.writeFileSync(file, Buffer.concat(parts));
}

/**
 * The capture bench's worst case without the capture: one 256 MB file of
 * its 100 B random flows (bench/lib/random-pcap, nearly one flow a packet),
 * parsed by the recorder's own parser into 1 MiB batches as chunks are, and
 * a segment every 440 k packets as the recorder makes them about once a
 * second at trafgen's maximum here. Only the builder is timed; three rounds,
 * the builder's memory kept from one to the next as from file to file.
 */
function random(): void {
  const SEGMENT = 440_000, CHUNK = 1 << 20;
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'n2d-index-size-')), 'random.pcap');
  generateRandomPcap(file, { bytes: 256 << 20, frameSize: 100, startSec: 1_795_255_200, seed: 7 });
  const pcap = fs.readFileSync(file);
  fs.rmSync(path.dirname(file), { recursive: true });
  const batches: { meta: ArrayBuffer; count: number; committed: number }[] = [];
  let packets = 0;
  for (let at = 24; at < pcap.length;) {
    const r = recordsMeta(pcap.subarray(at, at + CHUNK), at, 1, false, MAX_CAPLEN);
    at += r.next;
    packets += r.count;
    batches.push({ meta: r.meta, count: r.count, committed: at });
  }
  console.log(`random 100 B flows: ${packets} packets in one file, a segment every ${SEGMENT} packets; ns a packet`);
  // The recorder's two ways to end a file: its segments and a last one, or the whole file encoded again.
  for (const mode of ['segments', 'whole'] as const) {
    for (let round = 1; round <= 3; round++) {
      const b = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
      let add = 0n, segments = 0n, pending = 0, segmentBytes = 0;
      for (const { meta, count, committed } of batches) {
        let t = process.hrtime.bigint();
        b.add(meta, count);
        add += process.hrtime.bigint() - t;
        if ((pending += count) < SEGMENT) continue;
        pending = 0;
        t = process.hrtime.bigint();
        segmentBytes += b.segment(committed).length;
        b.segmentWritten();
        segments += process.hrtime.bigint() - t;
      }
      const t = process.hrtime.bigint();
      const last = mode === 'segments' ? b.finishFromSegments(pcap.length) : b.finish(pcap.length);
      if (!last) throw new Error('the segments were refused as the index');
      const end = process.hrtime.bigint() - t;
      const ns = (v: bigint): string => (Number(v) / packets).toFixed(0).padStart(4);
      const index = mode === 'segments' ? segmentBytes + last.length : last.length;
      console.log(`  ${mode === 'segments' ? 'segments + last' : 'whole file     '} round ${round}: add ${ns(add)}, segments ${ns(segments)}, ` +
        `${mode === 'segments' ? 'last  ' : 'finish'} ${ns(end)}, total ${ns(add + segments + end)} ` +
        `(segments ${(segmentBytes / packets).toFixed(1)} B a packet, index ${(index / packets).toFixed(1)} B)`);
    }
  }
}

const args = process.argv.slice(2);
const at = (flag: string): string | undefined => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
const dir = at('--corpus');
if (dir) corpus(dir, at('--out'));
else if (args.includes('--random')) random();
else synthetic();
