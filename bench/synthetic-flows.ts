// Synthetic recorder traffic for index size and speed measurements: many
// short TCP/UDP/ICMP connections between a client network and a skewed set
// of servers behind one gateway, about 700 bytes a packet on average.
import {
  META_IPV4, META_IPV6, META_MAC, META_PLAIN, META_PORTS, PacketMetaInit, encodeMeta,
} from '../recorder/packet-meta';

export interface SyntheticOptions {
  packets: number;
  flows: number;
  /**
   * 'local': each connection lasts ~50 ms, so its packets are near each other
   * in the file (real traffic); 'uniform': its packets are spread over the
   * whole capture, the worst case for offset deltas.
   */
  spread: 'local' | 'uniform';
  /** Capture length; packets per second = packets / seconds. */
  seconds: number;
  nano: boolean;
  /** Records per batch handed to the callback (one written chunk). */
  batch: number;
  seed?: number;
}

export interface SyntheticResult {
  packets: number;
  flows: number;
  /** Size of the pcap file the records describe. */
  fileBytes: number;
}

const START_NS = 1_795_255_200_000_000_000n; // 2026-11-21T10:00:00Z
const GATEWAY_MAC = Uint8Array.of(0x00, 0x1b, 0x21, 0x3a, 0x4b, 0x5c);
const HOST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);

/** Small deterministic PRNG (mulberry32), so runs are comparable. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Calls onBatch with each batch and the file size once its records are written. */
export function generateTraffic(
  opts: SyntheticOptions, onBatch: (meta: ArrayBuffer, count: number, committed: number) => void,
): SyntheticResult {
  const rnd = prng(opts.seed ?? 1);
  const int = (n: number): number => Math.floor(rnd() * n);
  const { packets: P, flows: F } = opts;
  if (P < F || P >= 2 ** 23) throw new RangeError('need flows <= packets < 2^23');

  // Per flow: endpoints, protocol, timing.
  const v6 = new Uint8Array(F);
  const client = new Uint32Array(F);
  const server = new Uint32Array(F);
  const cport = new Uint16Array(F);
  const sport = new Uint16Array(F);
  const proto = new Uint8Array(F);
  const startUs = new Float64Array(F);
  const durUs = new Float64Array(F);
  const totalUs = opts.seconds * 1e6;
  const servers4 = Uint32Array.from({ length: 100_000 }, () => (int(223) + 1) * 2 ** 24 + int(2 ** 24));
  for (let f = 0; f < F; f++) {
    v6[f] = rnd() < 0.1 ? 1 : 0;
    client[f] = int(65536);
    server[f] = Math.floor(100_000 * rnd() ** 3); // a few popular servers, a long tail
    const kind = rnd();
    if (kind < 0.02) proto[f] = v6[f] ? 58 : 1;
    else if (kind < 0.15) {
      proto[f] = 17;
      sport[f] = kind < 0.12 ? 53 : 443;
    } else {
      proto[f] = 6;
      sport[f] = kind < 0.75 ? 443 : kind < 0.9 ? 80 : 1024 + int(64000);
    }
    cport[f] = 32768 + int(28232);
    startUs[f] = rnd() * totalUs;
    durUs[f] = opts.spread === 'local' ? -50_000 * Math.log(1 - rnd()) : totalUs;
  }

  // Every flow has one packet, the others go to random flows; then all are
  // put in time order (time in us, packed with the packet number to sort).
  const flowOf = new Uint32Array(P);
  for (let p = 0; p < P; p++) flowOf[p] = p < F ? p : int(F);
  const order = new Float64Array(P);
  for (let p = 0; p < P; p++) {
    const f = flowOf[p];
    let t = p < F ? startUs[f] : startUs[f] + rnd() * durUs[f];
    if (opts.spread === 'uniform' && p >= F) t = rnd() * totalUs;
    order[p] = Math.floor(t) * 2 ** 23 + p;
  }
  order.sort();

  let offset = 24;
  const records: PacketMetaInit[] = [];
  const flush = (): void => {
    onBatch(encodeMeta(records), records.length, offset);
    records.length = 0;
  };
  const addr = (f: number, isClient: boolean): Uint8Array => {
    if (!v6[f]) {
      const v = isClient ? 0x0a000000 + client[f] : servers4[server[f]];
      return Uint8Array.of(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
    }
    const b = new Uint8Array(16);
    b.set(isClient ? [0x20, 0x01, 0x0d, 0xb8] : [0x2a, 0x00, 0x14, 0x50]);
    new DataView(b.buffer).setUint32(12, isClient ? client[f] % 8192 : server[f]);
    return b;
  };
  for (let i = 0; i < P; i++) {
    const p = order[i] % 2 ** 23;
    const f = flowOf[p];
    const us = Math.floor(order[i] / 2 ** 23);
    const fromClient = p < F || rnd() < 0.5;
    const caplen = rnd() < 0.45 ? 1400 + int(115) : 60 + int(40);
    const ports = proto[f] === 6 || proto[f] === 17;
    records.push({
      tsNs: START_NS + BigInt(us) * 1000n + (opts.nano ? BigInt(int(1000)) : 0n),
      offset,
      caplen,
      src: addr(f, fromClient),
      dst: addr(f, !fromClient),
      sport: ports ? (fromClient ? cport[f] : sport[f]) : 0,
      dport: ports ? (fromClient ? sport[f] : cport[f]) : 0,
      ethertype: v6[f] ? 0x86dd : 0x0800,
      srcMac: fromClient ? HOST_MAC : GATEWAY_MAC,
      dstMac: fromClient ? GATEWAY_MAC : HOST_MAC,
      ipproto: proto[f],
      flags: (v6[f] ? META_IPV6 : META_IPV4) | (ports ? META_PORTS : 0) | META_PLAIN | META_MAC,
    });
    offset += 16 + caplen;
    if (records.length === opts.batch) flush();
  }
  if (records.length) flush();
  return { packets: P, flows: F, fileBytes: offset };
}
