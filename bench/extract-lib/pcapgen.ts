// Synthetic Ethernet/IPv4 traffic written straight to a pcap file: many TCP
// and UDP flows between random 10.0.0.0/8 hosts, ~5% of packets DNS (UDP
// port 53), and one rare host with a few packets spread over the capture.
// Packets are written in strictly increasing timestamp order, so tcpdump's
// file order equals npcapextract's timestamp order and outputs compare byte
// for byte.
import fs from 'node:fs';
import { MAX_CAPLEN, pcapHeader } from '../../recorder/pcap-file';
import { prng } from '../synthetic-flows';

export interface GenOptions {
  /** Stop once the file holds at least this many bytes. */
  bytes: number;
  /** Timestamp span of the capture, seconds. */
  seconds: number;
  startSec: number;
  rareHost: string;
  rarePackets: number;
  seed: number;
}

export interface GenResult {
  packets: number;
  bytes: number;
  flows: number;
  dnsPackets: number;
  rarePackets: number;
  firstUs: number;
  lastUs: number;
}


// One slot of a pool of concurrently active flows. Picking a random slot per
// packet interleaves flows the way a busy link does.
interface Flow {
  a: number; // client address
  b: number; // server address
  pa: number;
  pb: number;
  proto: number;
  left: number; // packets still to send
  seq: number;
}

const ACTIVE_FLOWS = 8192;
const SERVER_PORTS = [443, 443, 443, 80, 80, 22, 8080, 3306, 25, 993];
const UDP_PORTS = [443, 123, 5060, 1194, 4500];

function ip(s: string): number {
  return s.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

export function generatePcap(file: string, o: GenOptions): GenResult {
  const rnd = prng(o.seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const host10 = (): number => 0x0a000000 + 1 + int(0xfffffe);
  const ephemeral = (): number => 1024 + int(64512); // never 53: only DNS is on port 53

  // Average record ~716 B (700 B frame + 16 B header): fixes the clock step so
  // the capture spans about `seconds`.
  const estPackets = Math.ceil(o.bytes / 716);
  const stepUs = (o.seconds * 1e6) / estPackets;
  let flows = 0;
  const newFlow = (f: Flow): void => {
    flows++;
    f.a = host10();
    f.b = host10();
    f.pa = ephemeral();
    if (rnd() < 0.88) {
      f.proto = 6;
      f.pb = rnd() < 0.85 ? SERVER_PORTS[int(SERVER_PORTS.length)]! : ephemeral();
      f.left = 3 + int(22); // avg 14 packets
    } else {
      f.proto = 17;
      f.pb = UDP_PORTS[int(UDP_PORTS.length)]!;
      f.left = 1 + int(10);
    }
    f.seq = int(2 ** 32);
  };
  const pool: Flow[] = Array.from({ length: ACTIVE_FLOWS }, () => {
    const f: Flow = { a: 0, b: 0, pa: 0, pb: 0, proto: 0, left: 0, seq: 0 };
    newFlow(f);
    return f;
  });
  // DNS: a query and its answer, each a flow of its own (2 packets).
  const dns: Flow[] = Array.from({ length: 256 }, () => ({ a: 0, b: 0, pa: 0, pb: 53, proto: 17, left: 0, seq: 0 }));
  // The rare host: two TCP connections to 10.x servers, its packets at evenly
  // spaced packet numbers so they land in different files of the dump set.
  const rare = [0, 1].map((): Flow => ({ a: ip(o.rareHost), b: host10(), pa: ephemeral(), pb: 443, proto: 6, left: 1e9, seq: 1 }));
  flows += 2;
  const rareEvery = Math.floor(estPackets / o.rarePackets);

  const template = Buffer.alloc(1514);
  for (let i = 0; i < template.length; i++) template[i] = int(256);
  const BUF = 8 << 20;
  const buf = Buffer.alloc(BUF);
  let off = 0;
  const fd = fs.openSync(file, 'w');
  const flush = (): void => {
    let done = 0;
    while (done < off) done += fs.writeSync(fd, buf, done, off - done);
    off = 0;
  };

  // Microseconds, Ethernet.
  off = pcapHeader({ nano: false, snaplen: MAX_CAPLEN, linktype: 1 }).copy(buf, 0);

  const startUs = o.startSec * 1e6;
  let bytes = 24, packets = 0, dnsPackets = 0, rarePackets = 0, ipId = 0, lastUs = startUs;
  const emit = (f: Flow, fromA: boolean, len: number, tcpFlags: number): void => {
    if (off + 16 + len > BUF) flush();
    // Strictly increasing: one microsecond at least after the previous one.
    const us = Math.max(lastUs + 1, Math.floor(startUs + packets * stepUs));
    lastUs = us;
    buf.writeUInt32LE(Math.floor(us / 1e6), off);
    buf.writeUInt32LE(us % 1e6, off + 4);
    buf.writeUInt32LE(len, off + 8);
    buf.writeUInt32LE(len, off + 12);
    const p = off + 16;
    template.copy(buf, p + 54, 54, len); // payload (past the largest header)
    // Ethernet: fixed MACs, as on one monitored uplink.
    buf.writeUInt32BE(0x02000000, p);
    buf.writeUInt16BE(fromA ? 1 : 2, p + 4);
    buf.writeUInt32BE(0x02000000, p + 6);
    buf.writeUInt16BE(fromA ? 2 : 1, p + 10);
    buf.writeUInt16BE(0x0800, p + 12);
    // IPv4 with a valid checksum, so tcpdump -v shows no noise.
    const h = p + 14;
    buf.writeUInt32BE(0x45000000 | (len - 14), h);
    buf.writeUInt32BE((((ipId++ & 0xffff) << 16) | 0x4000) >>> 0, h + 4);
    buf.writeUInt32BE((64 << 24) | (f.proto << 16), h + 8);
    buf.writeUInt32BE(fromA ? f.a : f.b, h + 12);
    buf.writeUInt32BE(fromA ? f.b : f.a, h + 16);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += buf.readUInt16BE(h + i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    buf.writeUInt16BE(~sum & 0xffff, h + 10);
    const t = h + 20;
    buf.writeUInt16BE(fromA ? f.pa : f.pb, t);
    buf.writeUInt16BE(fromA ? f.pb : f.pa, t + 2);
    if (f.proto === 6) {
      buf.writeUInt32BE(f.seq >>> 0, t + 4);
      buf.writeUInt32BE((f.seq + 7) >>> 0, t + 8);
      buf.writeUInt16BE((5 << 12) | tcpFlags, t + 12);
      buf.writeUInt32BE(0xfaf00000, t + 14); // window, checksum 0
      buf.writeUInt16BE(0, t + 18);
      f.seq += len;
    } else {
      buf.writeUInt16BE(len - 34, t + 4);
      buf.writeUInt16BE(0, t + 6);
    }
    off += 16 + len;
    bytes += 16 + len;
    packets++;
  };
  // Frame sizes: ~42% small (ACKs), ~16% medium, ~42% near-MTU: ~720 B average.
  const frameLen = (): number => {
    const r = rnd();
    return r < 0.42 ? 64 + int(57) : r < 0.58 ? 121 + int(880) : 1300 + int(215);
  };

  while (bytes < o.bytes) {
    if (packets % rareEvery === rareEvery >> 1 && rarePackets < o.rarePackets) {
      const f = rare[rarePackets & 1]!;
      emit(f, (rarePackets >> 1) % 2 === 0, 66 + int(400), 0x18);
      rarePackets++;
    } else if (rnd() < 0.05) {
      const f = dns[int(dns.length)]!;
      if (f.left === 0) {
        flows++; // a query and its answer: one connection
        f.a = host10();
        f.b = 0x0a000000 + 1 + int(64); // a few resolvers
        f.pa = ephemeral();
        f.left = 2;
      }
      emit(f, f.left === 2, f.left === 2 ? 70 + int(40) : 100 + int(400), 0);
      f.left--;
      dnsPackets++;
    } else {
      const f = pool[int(ACTIVE_FLOWS)]!;
      emit(f, rnd() < 0.5, frameLen(), 0x10);
      if (--f.left === 0) newFlow(f);
    }
  }
  flush();
  fs.closeSync(fd);
  return { packets, bytes, flows, dnsPackets, rarePackets, firstUs: startUs, lastUs };
}
