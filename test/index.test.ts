import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { ByteBuffer } from 'flatbuffers';
import { IndexBuilder, crc32 } from '../native/addon';
import { Segment } from '../recorder/index_generated/index_generated';
import {
  IndexError, checkIndex, createSegmentedIndex, formatIpv6, readIndexFile, writeIndexFile, writeIndexWithChunks,
} from '../recorder/index-file';
import {
  META_FRAGMENT, META_IPV4, META_IPV6, META_MAC, META_PLAIN, META_PORTS, META_VLAN, PacketMetaInit,
  encodeMeta, metaCaplen, metaDport, metaDst, metaDstMac, metaEthertype, metaFlags, metaIpproto,
  metaOffset, metaSport, metaSrc, metaSrcMac, metaTsNs, metaVlan, metaWirelen,
} from '../recorder/packet-meta';
import { generateTraffic } from '../bench/synthetic-flows';
import { Packet, writePcap } from './helpers/pcap-write';
import { parseFilter } from '../extract/expression';
import { flowsToJudge, planFlow } from '../extract/planner';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'n2disk-index-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const ip4 = (s: string): Uint8Array => Uint8Array.from(s.split('.').map(Number));
function ip6(s: string): Uint8Array {
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const groups = (part: string | undefined): number[] => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const h = groups(head);
  const t = groups(tail);
  const all = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  const b = new Uint8Array(16);
  all.forEach((g, i) => new DataView(b.buffer).setUint16(2 * i, g));
  return b;
}
const MAC_A = Uint8Array.of(0x02, 0, 0, 0, 0, 0x0a);
const MAC_B = Uint8Array.of(0x02, 0, 0, 0, 0, 0x0b);
const TCP4 = META_IPV4 | META_PORTS | META_PLAIN | META_MAC;

const T0 = 1_795_255_200_000_000_000n; // 2026-11-21T10:00:00Z
const FAR = 2_000_000_000_123_456_789n; // 2033, past 2^53 ns and past 2^32 us

/** A mixed capture: every kind of flow the index distinguishes. */
function mixedPackets(): Packet[] {
  const tcp = (src: string, dst: string, sport: number, dport: number, tsNs: bigint, caplen: number, macs = [MAC_A, MAC_B]): Packet => ({
    tsNs, caplen, wirelen: caplen + 10, src: ip4(src), dst: ip4(dst), sport, dport, ethertype: 0x0800,
    srcMac: macs[0], dstMac: macs[1], ipproto: 6, flags: TCP4,
  });
  return [
    tcp('10.0.0.1', '93.184.216.34', 51234, 443, T0 + 5_000n, 74), // flow 0, opened by 10.0.0.1
    tcp('93.184.216.34', '10.0.0.1', 443, 51234, T0 + 9_000n, 1514, [MAC_B, MAC_A]),
    { tsNs: T0 + 2_000n, caplen: 60, src: ip6('2001:db8::1'), dst: ip6('2a00:1450::200e'), sport: 5353, dport: 53,
      ethertype: 0x86dd, srcMac: MAC_A, dstMac: MAC_B, ipproto: 17, flags: META_IPV6 | META_PORTS | META_PLAIN | META_MAC },
    { tsNs: T0 + 7_000n, caplen: 42, ethertype: 0x0806, srcMac: MAC_B, dstMac: MAC_A, flags: META_PLAIN | META_MAC },
    { ...tcp('10.0.0.1', '93.184.216.34', 51234, 443, T0 + 6_000n, 90), vlan: 7, flags: TCP4 & ~META_PLAIN | META_VLAN },
    { ...tcp('10.0.0.1', '93.184.216.34', 0, 0, T0 + 6_500n, 4), sport: 0, dport: 0, flags: META_IPV4 | META_FRAGMENT | META_PLAIN | META_MAC },
    tcp('10.0.0.1', '93.184.216.34', 51234, 443, T0 + 1_000n, 66), // out of order: earlier than the flow's first
    tcp('10.0.0.2', '10.0.0.3', 1, 2, 0n, 4),
    tcp('10.0.0.3', '10.0.0.2', 2, 1, FAR, 4, [MAC_B, MAC_A]),
  ];
}

test('packet meta records round trip through the accessors', () => {
  const buf = encodeMeta([
    { tsNs: FAR, offset: 2 ** 40 + 24, caplen: 1514, wirelen: 9000, src: ip6('2001:db8::1'), dst: ip6('::1'), sport: 65535,
      dport: 443, ethertype: 0x86dd, vlan: 4095, srcMac: MAC_A, dstMac: MAC_B, ipproto: 6,
      flags: META_IPV6 | META_PORTS | META_VLAN | META_MAC },
  ]);
  assert.equal(buf.byteLength, 80);
  const v = new DataView(buf);
  assert.equal(metaTsNs(v, 0), FAR);
  assert.equal(metaOffset(v, 0), 2 ** 40 + 24);
  assert.equal(metaCaplen(v, 0), 1514);
  assert.equal(metaWirelen(v, 0), 9000);
  assert.deepEqual(metaSrc(v, 0), ip6('2001:db8::1'));
  assert.deepEqual(metaDst(v, 0), ip6('::1'));
  assert.equal(metaSport(v, 0), 65535);
  assert.equal(metaDport(v, 0), 443);
  assert.equal(metaEthertype(v, 0), 0x86dd);
  assert.equal(metaVlan(v, 0), 4095);
  assert.deepEqual(metaSrcMac(v, 0), MAC_A);
  assert.deepEqual(metaDstMac(v, 0), MAC_B);
  assert.equal(metaIpproto(v, 0), 6);
  assert.equal(metaFlags(v, 0), META_IPV6 | META_PORTS | META_VLAN | META_MAC);
});

test('IPv6 addresses print in RFC 5952 form', () => {
  assert.equal(formatIpv6(ip6('2001:db8:0:0:0:0:2:1')), '2001:db8::2:1');
  assert.equal(formatIpv6(ip6('2001:db8:0:1:1:1:1:1')), '2001:db8:0:1:1:1:1:1');
  assert.equal(formatIpv6(ip6('2001:0:0:1:0:0:0:1')), '2001:0:0:1::1');
  assert.equal(formatIpv6(ip6('2001:db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1');
  assert.equal(formatIpv6(ip6('::')), '::');
  assert.equal(formatIpv6(ip6('::1')), '::1');
  assert.equal(formatIpv6(ip6('fe80::')), 'fe80::');
  assert.equal(formatIpv6(ip6('::ffff:c000:280')), '::ffff:192.0.2.128');
});

for (const nano of [false, true]) {
  test(`builder round trip, ${nano ? 'nano' : 'micro'}second file`, () => {
    const pcap = path.join(tmp, `mixed-${nano ? 'ns' : 'us'}.pcap`);
    const { records, bytes } = writePcap(pcap, mixedPackets(), nano);
    const b = new IndexBuilder({ linktype: 1, nano, snaplen: 262144 });
    b.add(encodeMeta(records.slice(0, 4)), 4);
    b.add(encodeMeta(records.slice(4)), records.length - 4);
    const unit = nano ? 1n : 1000n;
    const trunc = (ns: bigint): bigint => (ns / unit) * unit;
    assert.equal(b.minNs, 0n);
    assert.equal(b.maxNs, trunc(FAR));
    writeIndexFile(`${pcap}.idx`, b.finish(bytes));
    assert.equal(fs.statSync(`${pcap}.idx`).mode & 0o777, 0o640);
    assert.equal(fs.existsSync(`${pcap}.idx.tmp`), false);

    const v = readIndexFile(`${pcap}.idx`);
    assert.equal(v.linktype, 1);
    assert.equal(v.nano, nano);
    assert.equal(v.snaplen, 262144);
    assert.deepEqual(v.covered, { start: 0, end: bytes });
    assert.equal(v.packets, records.length);
    assert.equal(v.bytes, records.reduce((a, r) => a + r.caplen, 0));
    assert.equal(v.wireBytes, records.reduce((a, r) => a + (r.wirelen ?? r.caplen), 0));
    assert.equal(v.firstNs, 0n);
    assert.equal(v.lastNs, trunc(FAR));
    assert.equal(v.flowCount, 6);
    const flows = [...v.flows()];

    const [tcp, udp6, arp, vlan, frag, edge] = flows;
    assert.equal(tcp.ipVersion, 4);
    assert.equal(tcp.addrA, '10.0.0.1');
    assert.equal(tcp.addrB, '93.184.216.34');
    assert.deepEqual(tcp.addrABytes, ip4('10.0.0.1'));
    assert.equal(tcp.portA, 51234);
    assert.equal(tcp.portB, 443);
    assert.equal(tcp.ipproto, 6);
    assert.equal(tcp.macA, '02:00:00:00:00:0a');
    assert.equal(tcp.macB, '02:00:00:00:00:0b');
    assert.equal(tcp.vlan, undefined);
    assert.equal(tcp.packets, 3);
    assert.equal(tcp.bytes, 74 + 1514 + 66);
    assert.equal(tcp.wireBytes, 74 + 1514 + 66 + 30);
    assert.equal(tcp.firstNs, trunc(T0 + 1_000n));
    assert.equal(tcp.lastNs, trunc(T0 + 9_000n));
    assert.deepEqual(v.flowOffsets(0), [records[0].offset, records[1].offset, records[6].offset]);

    assert.equal(udp6.ipVersion, 6);
    assert.equal(udp6.addrA, '2001:db8::1');
    assert.equal(udp6.addrB, '2a00:1450::200e');
    assert.deepEqual(udp6.addrBBytes, ip6('2a00:1450::200e'));
    assert.equal(udp6.portB, 53);
    assert.equal(udp6.ipproto, 17);

    assert.equal(arp.ipVersion, undefined);
    assert.equal(arp.addrA, undefined);
    assert.equal(arp.portA, undefined);
    assert.equal(arp.ethertype, 0x0806);
    assert.equal(arp.macA, '02:00:00:00:00:0b');

    assert.equal(vlan.vlan, 7);
    assert.equal(vlan.packets, 1);
    assert.equal(vlan.flags & META_PLAIN, 0);

    assert.equal(frag.flags & META_FRAGMENT, META_FRAGMENT);
    assert.equal(frag.portA, undefined);
    assert.equal(frag.bytes, 4);

    assert.equal(edge.packets, 2);
    assert.equal(edge.firstNs, 0n);
    assert.equal(edge.lastNs, trunc(FAR));
    assert.equal(edge.addrA, '10.0.0.2');

    assert.equal(v.timeBlocks.length, 1);
    assert.deepEqual(v.timeBlocks[0], { offset: 24, end: bytes, packets: records.length, minNs: 0n, maxNs: trunc(FAR) });
    assert.deepEqual(checkIndex(`${pcap}.idx`), []);
  });
}

test('time blocks split every 1024 packets and keep their own time ranges', () => {
  const pcap = path.join(tmp, 'blocks.pcap');
  const packets: Packet[] = Array.from({ length: 3000 }, (_, i) => ({
    // Timestamps run backwards in the second block (an import of unsorted traffic).
    tsNs: T0 + BigInt(i < 1024 || i >= 2048 ? i : 3072 - i) * 1_000_000n,
    caplen: 60, src: ip4('10.0.0.1'), dst: ip4(`10.1.${i % 7}.1`), sport: 1000, dport: 80, ipproto: 6,
    ethertype: 0x0800, flags: META_IPV4 | META_PORTS,
  }));
  const { records, bytes } = writePcap(pcap, packets, false);
  const b = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
  b.add(encodeMeta(records), records.length);
  writeIndexFile(`${pcap}.idx`, b.finish(bytes));
  const v = readIndexFile(`${pcap}.idx`);
  assert.deepEqual(v.timeBlocks.map((t) => [t.offset, t.packets]), [[24, 1024], [records[1024].offset, 1024], [records[2048].offset, 952]]);
  assert.equal(v.timeBlocks[0].end, records[1024].offset);
  assert.equal(v.timeBlocks[1].minNs, T0 + 1025n * 1_000_000n);
  assert.equal(v.timeBlocks[1].maxNs, T0 + 2048n * 1_000_000n);
  assert.equal(v.flowCount, 7);
  assert.deepEqual(checkIndex(`${pcap}.idx`), []);
});

/** Indexes a file being written as the recorder does: one segment for each stretch of records between `cuts`. */
function writeSegmented(pcap: string, records: PacketMetaInit[], bytes: number, cuts: number[]): IndexBuilder {
  const b = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
  const idx = createSegmentedIndex(`${pcap}.idx`);
  for (let k = 1; k < cuts.length; k++) {
    const batch = records.slice(cuts[k - 1], cuts[k]);
    b.add(encodeMeta(batch), batch.length);
    idx.append(b.segment(k === cuts.length - 1 ? bytes : records[cuts[k]].offset));
    b.segmentWritten();
  }
  idx.close();
  return b;
}

test('a file being written: segments append, a torn last one is ignored', () => {
  const pcap = path.join(tmp, 'live.pcap.part');
  const { records, bytes } = writePcap(pcap, mixedPackets(), false);
  const b = writeSegmented(pcap, records, bytes, [0, 3, 7, records.length]);
  const distinct = 6;

  const v = readIndexFile(`${pcap}.idx`, { partial: true });
  assert.equal(v.segments, 3);
  assert.equal(v.packets, records.length);
  assert.deepEqual(v.covered, { start: 0, end: bytes });
  // A connection seen in several segments is one flow per segment.
  assert.ok(v.flowCount > distinct);
  const offsets = [...Array(v.flowCount).keys()].flatMap((i) => v.flowOffsets(i)).sort((x, y) => x - y);
  assert.deepEqual(offsets, records.map((r) => r.offset));
  assert.deepEqual(checkIndex(`${pcap}.idx`), []);

  // The whole-file index of the same builder still sees each connection once.
  writeIndexFile(path.join(tmp, 'live.pcap.idx'), b.finish(bytes));
  assert.equal(readIndexFile(path.join(tmp, 'live.pcap.idx')).flowCount, distinct);
  assert.deepEqual(checkIndex(path.join(tmp, 'live.pcap.idx'), pcap), []);

  const full = fs.readFileSync(`${pcap}.idx`);
  const torn = path.join(tmp, 'torn.pcap.part.idx');
  fs.writeFileSync(torn, full.subarray(0, full.length - 5));
  const t = readIndexFile(torn, { partial: true });
  assert.equal(t.segments, 2);
  assert.equal(t.covered.end, records[7].offset);
  assert.throws(() => readIndexFile(torn), (e: unknown) => e instanceof IndexError && /segment 2: length \d+ runs past/.test(e.message));

  // Zeros where the last segment should be (a crash after the file grew): also a tear.
  const zeroed = Buffer.from(full);
  zeroed.fill(0, full.length - 20);
  fs.writeFileSync(torn, zeroed);
  assert.equal(readIndexFile(torn, { partial: true }).segments, 2);

  // Zeros after the last segment (blocks written whole, the file not yet cut to length): not a segment.
  fs.writeFileSync(torn, Buffer.concat([full, Buffer.alloc(5000)]));
  assert.equal(readIndexFile(torn, { partial: true }).segments, 3);

  // But damage before the last segment is corruption, partial or not.
  const bad = Buffer.from(full);
  bad[20] ^= 0xff;
  fs.writeFileSync(torn, bad);
  assert.throws(() => readIndexFile(torn, { partial: true }), /segment 0: checksum mismatch/);

  // An index created but not yet written to is empty, not broken.
  fs.writeFileSync(torn, full.subarray(0, 8));
  const empty = readIndexFile(torn, { partial: true });
  assert.equal(empty.segments, 0);
  assert.equal(empty.flowCount, 0);
  assert.equal(empty.firstNs, undefined);
});

/**
 * For each filter, the flows planning judges in each segment of `file`: a
 * superset of those the planner does not call false, and at most `most`
 * (the key tables narrowed the search).
 */
function checkJudged(file: string, partial: boolean, cases: readonly (readonly [string, number])[]): number[][] {
  const v = readIndexFile(file, { partial });
  return cases.map(([filter, most]) => {
    const expr = parseFilter(filter);
    const judged = new Set<number>();
    const perSegment = v.segmentFlows.map((seg) => {
      const pick = flowsToJudge(expr, seg, v.linktype);
      const cols = pick && seg.keys ? seg.keys.columns(pick) : seg.all();
      for (let r = 0; r < cols.flowCount; r++) judged.add(cols.base + (cols.flowIds ? cols.flowIds[r] : r));
      return cols.flowCount;
    });
    for (const flow of v.flows()) {
      const verdict = planFlow(expr, flow, v.linktype);
      assert.ok(verdict === 'false' || judged.has(flow.index), `'${filter}': flow ${flow.index} is ${verdict} but not judged`);
    }
    assert.ok(judged.size <= most, `'${filter}': ${judged.size} flows judged, expected at most ${most}`);
    return perSegment;
  });
}

test("key tables name the flows of a host or a port in a file's index, and planning judges only those; a file being written has none", () => {
  const pcap = path.join(tmp, 'keys.pcap.part');
  // Hundreds of flows a segment, so that flows are also decoded from checkpoints past the first.
  const many: Packet[] = Array.from({ length: 900 }, (_, i) => ({
    tsNs: T0 + 10_000n + BigInt(i), caplen: 60, src: ip4(`10.1.${i % 3}.${i % 250}`), dst: ip4('10.2.0.1'),
    sport: 20000 + i, dport: i % 5 ? 443 : 53, ipproto: i % 5 ? 6 : 17, ethertype: 0x0800, srcMac: MAC_A, dstMac: MAC_B, flags: TCP4,
  }));
  // Flows a key table cannot decide: IPv4 with options (not plain), a TCP header cut short (no ports).
  const odd: Packet[] = [
    { ...many[0], tsNs: T0 + 20_000n, src: ip4('10.9.9.9'), flags: TCP4 & ~META_PLAIN },
    { ...many[1], tsNs: T0 + 20_001n, src: ip4('10.9.9.8'), sport: 0, dport: 0, flags: TCP4 & ~META_PORTS },
  ];
  const { records, bytes } = writePcap(pcap, [...mixedPackets(), ...many, ...odd], false);
  const b = writeSegmented(pcap, records, bytes, [0, 300, 700, records.length]);
  assert.deepEqual(checkIndex(`${pcap}.idx`), []);
  // Every table lists exactly the flows that hold its key, every checkpoint decodes as the walk from flow 0.
  writeIndexFile(path.join(tmp, 'keys.pcap.idx'), b.finish(bytes));
  assert.deepEqual(checkIndex(path.join(tmp, 'keys.pcap.idx'), pcap), []);

  const cases = [
    // 10.1.2.17 is in flows 17 and 767; the ARP flow and the flow with IP options are judged whatever the host.
    ['host 10.1.2.17', 4],
    ['src host 10.1.2.17 and tcp port 443', 4],
    ['host 2001:db8::1', 1],
    // A table lists the port's flows of every class: IPv4 ones are judged too, and found false.
    ['ip6 and port 53', 183],
    // 180 DNS flows, the IPv6 one, the flow without ports and the one with options.
    ['port 53', 183],
    ['portrange 52-53 and not host 10.0.0.1', 183],
    ['net 10.1.1.0/24 or host 10.77.0.1', 302],
    ['host 10.77.0.1', 2],
    // A mask with holes is looked up as the addresses it spans (10.1.0.17-10.1.255.17: 877 of the 900
    // flows above, and the two odd ones), then judged flow by flow.
    ['net 10.1.0.17 mask 255.255.0.255', 879],
    ['ether host 02:00:00:00:00:0a', Infinity],
    ['not host 10.2.0.1', Infinity],
    ['vlan and host 10.0.0.1', Infinity],
  ] as const;
  const judged = checkJudged(path.join(tmp, 'keys.pcap.idx'), false, cases);
  assert.ok(judged.every((perSegment) => perSegment.length === 1));

  // The segments of a file being written carry no key tables (the recorder
  // writes one a second): planning decodes every flow of each and still
  // judges every flow that may match.
  assert.ok(readIndexFile(`${pcap}.idx`, { partial: true }).segmentFlows.every((seg) => seg.keys === undefined));
  const all = records.length;
  const everyFlow = checkJudged(`${pcap}.idx`, true, cases.map(([filter]) => [filter, all] as const));
  assert.ok(everyFlow.every((perSegment) => perSegment.length === 3));
});

/** `n` packets of as many flows: addresses and ports from a counter, as scattered as trafgen's random ones. */
function oneFlowEach(n: number, from = 0): Packet[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    const h = Math.imul(i + 1, 0x9e3779b1) >>> 0;
    return {
      tsNs: T0 + BigInt(i) * 1000n, caplen: 60, src: ip4(`10.${h >>> 24}.${(h >>> 16) & 255}.${(h >>> 8) & 255}`),
      dst: ip4(`172.16.${(i >>> 8) & 255}.${i & 255}`), sport: 1024 + (h & 0x7fff), dport: i % 7 ? 443 : 53,
      ipproto: i % 7 ? 6 : 17, ethertype: 0x0800, srcMac: MAC_A, dstMac: MAC_B, flags: TCP4,
    };
  });
}

test("where nearly every packet is a flow of its own, the file's segments become its index", () => {
  const pcap = path.join(tmp, 'kept.pcap.part');
  const { records, bytes } = writePcap(pcap, oneFlowEach(17_000), false);
  const cuts = [0, 5000, 10_000, 15_000];
  const b = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
  const idx = createSegmentedIndex(`${pcap}.idx`);
  for (let k = 1; k < cuts.length; k++) {
    const batch = records.slice(cuts[k - 1], cuts[k]);
    b.add(encodeMeta(batch), batch.length);
    idx.append(b.segment(records[cuts[k]].offset));
    b.segmentWritten();
  }
  const rest = records.slice(cuts[cuts.length - 1]);
  b.add(encodeMeta(rest), rest.length);
  const last = b.finishFromSegments(bytes);
  assert.ok(last, 'three segments of new flows and a last one make the index');
  assert.throws(() => b.finish(bytes), /called twice|after finish/);
  const published = path.join(tmp, 'kept.pcap.idx');
  idx.publish(last, published);
  assert.ok(!fs.existsSync(`${pcap}.idx`));
  assert.equal(fs.statSync(published).mode & 0o777, 0o640);

  const v = readIndexFile(published);
  assert.equal(v.segments, 4);
  assert.equal(v.packets, records.length);
  assert.equal(v.flowCount, records.length);
  assert.deepEqual(v.covered, { start: 0, end: bytes });
  // Segments of 4096 flows or more have key tables; the last one always has.
  assert.ok(v.segmentFlows.every((seg) => seg.keys !== undefined));
  assert.deepEqual(checkIndex(published, pcap), []);

  // The same flows, packets and times as the whole-file index of the same records.
  const whole = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
  whole.add(encodeMeta(records), records.length);
  const wholePath = path.join(tmp, 'kept-whole.pcap.idx');
  writeIndexFile(wholePath, whole.finish(bytes));
  const w = readIndexFile(wholePath);
  const flows = (x: typeof v): string[] => [...x.flows()].map((f) => JSON.stringify({ ...f, index: 0, offsets: f.offsets() }, (_, y) => typeof y === 'bigint' ? String(y) : y)).sort();
  assert.deepEqual(flows(v), flows(w));
  // Time blocks end at segment boundaries too; they still cover every record, in order.
  assert.equal(v.timeBlocks.reduce((n, blk) => n + blk.packets, 0), records.length);
  v.timeBlocks.forEach((blk, k) => assert.equal(blk.offset, k ? v.timeBlocks[k - 1].end : records[0].offset));

  // Lookups go through each segment's key tables: a host is judged in one flow, not in 17,000.
  const judged = checkJudged(published, false, [
    [`host ${[...records[12_345].src!].join('.')}`, 1],
    ['port 53 and host 172.16.0.7', 1],
    ['net 172.16.3.0/24', 256],
    ['udp port 53', Math.ceil(records.length / 7)],
  ]);
  assert.ok(judged.every((perSegment) => perSegment.length === 4));

  // Compressing the file (-M) gives the last segment the chunk table; the others are copied as they are.
  const chunks = { plain: [0, 100_000, bytes], packed: [0, 40_000, 70_000] };
  writeIndexWithChunks(published, chunks);
  const c = readIndexFile(published);
  assert.equal(c.segments, 4);
  assert.deepEqual(c.chunks, chunks);
  assert.deepEqual(flows(c), flows(w));
});

test('a segment that was not written is covered again by the next one, and the segments still become the index', () => {
  const pcap = path.join(tmp, 'unwritten.pcap.part');
  const { records, bytes } = writePcap(pcap, oneFlowEach(12_000), false);
  const b = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
  const idx = createSegmentedIndex(`${pcap}.idx`);
  const add = (from: number, to: number): void => b.add(encodeMeta(records.slice(from, to)), to - from);
  add(0, 5000);
  idx.append(b.segment(records[5000].offset));
  b.segmentWritten();
  add(5000, 9000);
  b.segment(records[9000].offset); // say the disk was full: never appended
  add(9000, 10_000);
  assert.throws(() => b.segmentWritten(), /without a segment\(\) since the last add\(\)/);
  idx.append(b.segment(records[10_000].offset));
  b.segmentWritten();
  // Readers of the file being written see it whole up to the last segment written.
  const part = readIndexFile(`${pcap}.idx`, { partial: true });
  assert.equal(part.segments, 2);
  assert.equal(part.packets, 10_000);
  assert.deepEqual(part.covered, { start: 0, end: records[10_000].offset });
  assert.deepEqual(checkIndex(`${pcap}.idx`), []);

  add(10_000, 12_000);
  const last = b.finishFromSegments(bytes);
  assert.ok(last);
  const published = path.join(tmp, 'unwritten.pcap.idx');
  idx.publish(last, published);
  const v = readIndexFile(published);
  assert.equal(v.segments, 3);
  assert.equal(v.packets, records.length);
  assert.equal(v.flowCount, records.length);
  assert.deepEqual(checkIndex(published, pcap), []);
});

test('a file whose segments would make a poor index gets one of the whole file', () => {
  const index = (packets: Packet[], cuts: number[]): { b: IndexBuilder; bytes: number } => {
    const pcap = path.join(tmp, 'poor.pcap');
    const { records, bytes } = writePcap(pcap, packets, false);
    const b = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
    for (let k = 1; k < cuts.length; k++) {
      const batch = records.slice(cuts[k - 1], cuts[k]);
      b.add(encodeMeta(batch), batch.length);
      if (k < cuts.length - 1) {
        b.segment(records[cuts[k]].offset);
        b.segmentWritten();
      }
    }
    return { b, bytes };
  };
  const refused = (b: IndexBuilder, bytes: number, flows: number): void => {
    assert.equal(b.finishFromSegments(bytes), undefined);
    // Nothing changed: the whole file's index is made as before.
    const path1 = path.join(tmp, 'poor.pcap.idx');
    writeIndexFile(path1, b.finish(bytes));
    const v = readIndexFile(path1);
    assert.equal(v.segments, 1);
    assert.equal(v.flowCount, flows);
    assert.deepEqual(checkIndex(path1, path.join(tmp, 'poor.pcap')), []);
  };
  // More than 16 segments.
  const many = index(oneFlowEach(1700), Array.from({ length: 18 }, (_, k) => Math.min(k * 100, 1700)));
  refused(many.b, many.bytes, 1700);
  // The same flows in every segment: 3 times as many entries as flows.
  const again = oneFlowEach(300);
  const repeated = [...again, ...again, ...again].map((p, i) => ({ ...p, tsNs: T0 + BigInt(i) * 1000n }));
  const rep = index(repeated, [0, 300, 600, 900]);
  refused(rep.b, rep.bytes, 300);
  // Both: 20 segments of the same 50 flows (merged into the whole file's flows after the 16th).
  const flows50 = oneFlowEach(50);
  const twenty = Array.from({ length: 1000 }, (_, i) => ({ ...flows50[i % 50], tsNs: T0 + BigInt(i) * 1000n }));
  const both = index(twenty, Array.from({ length: 21 }, (_, k) => k * 50));
  refused(both.b, both.bytes, 50);
  // More than 16384 flows in segments without key tables (each under 4096 flows).
  const small = index(oneFlowEach(24_000), [0, 4000, 8000, 12_000, 16_000, 20_000, 24_000]);
  refused(small.b, small.bytes, 24_000);
});

/** The same segment as an index written before key tables: its vtable cut before the first of them (field 28). */
function withoutKeyTables(segment: Uint8Array): Uint8Array {
  const out = Buffer.from(segment);
  const table = out.readUInt32LE(0);
  const vtable = table - out.readInt32LE(table);
  out.writeUInt16LE(Math.min(out.readUInt16LE(vtable), 4 + 2 * 28), vtable);
  return out;
}

test('an index written before key tables reads as before and is planned by walking every flow', () => {
  const pcap = path.join(tmp, 'old.pcap');
  const { records, bytes } = writePcap(pcap, mixedPackets(), false);
  const b = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
  b.add(encodeMeta(records), records.length);
  const segment = b.finish(bytes);
  writeIndexFile(`${pcap}.idx`, withoutKeyTables(segment));
  writeIndexFile(path.join(tmp, 'new.pcap.idx'), segment);
  const old = readIndexFile(`${pcap}.idx`);
  const now = readIndexFile(path.join(tmp, 'new.pcap.idx'));
  assert.equal(old.segmentFlows[0].keys, undefined);
  assert.ok(now.segmentFlows[0].keys);
  const listed = (v: typeof old): unknown[] => [...v.flows()].map(({ offsets, ...flow }) => ({ ...flow, offsets: offsets() }));
  assert.deepEqual(listed(old), listed(now));
  assert.deepEqual(checkIndex(`${pcap}.idx`, pcap), []);
  const judged = checkJudged(`${pcap}.idx`, false, [['host 10.0.0.2', Infinity], ['port 53', Infinity]]);
  assert.deepEqual(judged, [[old.flowCount], [old.flowCount]]);
});

test("the index's block checksums are zlib's CRC-32, on any length and alignment, continued or not", () => {
  const data = new Uint8Array(70_000);
  for (let i = 0, x = 7; i < data.length; i++) data[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  for (const len of [0, 1, 7, 63, 64, 65, 255, 4096, 4097, 65_537]) {
    for (const at of [0, 1, 3]) {
      const part = data.subarray(at, at + len);
      assert.equal(crc32(part), zlib.crc32(part), `length ${len} at ${at}`);
      assert.equal(crc32(part, 0xdeadbeef), zlib.crc32(part, 0xdeadbeef), `length ${len} at ${at}, continued`);
    }
  }
});

test('corruption is detected by readIndexFile and checkIndex', () => {
  const pcap = path.join(tmp, 'corrupt.pcap');
  const { records, bytes } = writePcap(pcap, mixedPackets(), true);
  const b = new IndexBuilder({ linktype: 1, nano: true, snaplen: 0 });
  b.add(encodeMeta(records), records.length);
  const segment = b.finish(bytes);
  writeIndexFile(`${pcap}.idx`, segment);
  const good = fs.readFileSync(`${pcap}.idx`);

  const flipped = Buffer.from(good);
  flipped[good.length - 30] ^= 0x01;
  fs.writeFileSync(`${pcap}.idx`, flipped);
  assert.throws(() => readIndexFile(`${pcap}.idx`), (e: unknown) =>
    e instanceof IndexError && e.file === `${pcap}.idx` && /checksum mismatch/.test(e.defect));
  const problems = checkIndex(`${pcap}.idx`);
  assert.equal(problems.length, 1);
  assert.match(problems[0], /corrupt\.pcap\.idx: segment 0: checksum mismatch/);

  // A wrong offset with a valid checksum (a builder bug, say) is caught against the pcap.
  const seg = Buffer.from(segment);
  // Flow 0's offsets as varints: 24 from the start, then the deltas to its next records.
  const d = records[6].offset - records[1].offset;
  const firstOffset = seg.indexOf(Buffer.from([24, records[1].offset - 24, (d & 0x7f) | 0x80, d >> 7]));
  assert.ok(firstOffset > 0);
  seg[firstOffset] = 25;
  writeIndexFile(`${pcap}.idx`, seg);
  const found = checkIndex(`${pcap}.idx`);
  assert.ok(found.some((p) => /offset 25 is not a record/.test(p)), found.join('\n'));
  assert.ok(found.some((p) => /record at 24 is in no flow/.test(p)), found.join('\n'));

  // A key table that names the wrong flow: caught by comparing it with the flows.
  const keyed = Uint8Array.from(segment);
  const portEntries = Segment.getRootAsSegment(new ByteBuffer(keyed)).portFlows()!.entriesArray()!;
  // The first port (1): key delta, number of flows, then its first flow zigzagged; one flow further on
  // (and so are the ports after it, whose flows are deltas from it).
  portEntries[2] += 2;
  writeIndexFile(`${pcap}.idx`, keyed);
  const wrong = checkIndex(`${pcap}.idx`).join('\n');
  assert.match(wrong, /: segment 0: key table says port 443 is in flows \[1, 4\], the flows say \[0, 3\]/);
  assert.match(wrong, /corrupt\.pcap\.idx: segment 0: key 1: flow \d+ out of range/);

  writeIndexFile(`${pcap}.idx`, segment);
  assert.deepEqual(checkIndex(`${pcap}.idx`), []);
  // The pcap itself changed under the index: a record's length.
  const file = fs.readFileSync(pcap);
  file.writeUInt32LE((records[2].wirelen ?? records[2].caplen) + 1, records[2].offset + 12);
  fs.writeFileSync(pcap, file);
  assert.match(checkIndex(`${pcap}.idx`).join('\n'), /records hold 60\/61 captured\/wire bytes, index says 60\/60/);
  fs.truncateSync(pcap, bytes - 1);
  assert.match(checkIndex(`${pcap}.idx`).join('\n'), new RegExp(`covers ${bytes} bytes`));

  const junk = path.join(tmp, 'junk.idx');
  fs.writeFileSync(junk, 'not an index at all');
  assert.throws(() => readIndexFile(junk), /junk\.idx: not an n2disk-ts index \(bad magic\)/);
  assert.throws(() => checkIndex(path.join(tmp, 'missing.idx')), { code: 'ENOENT' });
  // Zero-padded container with a valid checksum but garbage inside: a clear error, never a crash.
  const garbage = Buffer.alloc(64, 0x41);
  writeIndexFile(junk, garbage);
  assert.throws(() => readIndexFile(junk), IndexError);
});

test('offsets past 4 GiB survive segments and the whole-file index', () => {
  const G4 = 2 ** 32;
  const offsets = [24, G4 - 100, G4 + 50, G4 + 5000, 2 * G4 - 10, 2 * G4 + 2 ** 21];
  const rec = (offset: number, i: number): PacketMetaInit => ({
    tsNs: T0 + BigInt(i), offset, caplen: 40, src: ip4('10.0.0.1'), dst: ip4(`10.0.0.${2 + (i % 2)}`), flags: META_IPV4,
  });
  const b = new IndexBuilder({ linktype: 101, nano: true, snaplen: 0 });
  const file = path.join(tmp, 'huge.pcap.part.idx');
  const idx = createSegmentedIndex(file);
  b.add(encodeMeta(offsets.slice(0, 2).map(rec)), 2);
  idx.append(b.segment(G4));
  b.segmentWritten();
  b.add(encodeMeta(offsets.slice(2).map((o, i) => rec(o, i + 2))), 4);
  idx.append(b.segment(3 * G4));
  b.segmentWritten();
  idx.close();
  const whole = path.join(tmp, 'huge.pcap.idx');
  writeIndexFile(whole, b.finish(3 * G4));
  for (const v of [readIndexFile(file, { partial: true }), readIndexFile(whole)]) {
    const all = [...Array(v.flowCount).keys()].flatMap((i) => v.flowOffsets(i)).sort((x, y) => x - y);
    assert.deepEqual(all, offsets);
    // Blocks end at segment boundaries and once they span a MiB of file.
    assert.deepEqual(v.timeBlocks.map((t) => t.offset), [24, G4 - 100, G4 + 50, 2 * G4 - 10, 2 * G4 + 2 ** 21]);
  }
  assert.deepEqual(readIndexFile(whole).flowOffsets(0), [24, G4 + 50, 2 * G4 - 10]);
  assert.deepEqual(checkIndex(whole), []);
});

test('builder refuses offsets that do not increase', () => {
  const b = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
  const rec = (offset: number): PacketMetaInit => ({ tsNs: T0, offset, caplen: 60, flags: 0 });
  b.add(encodeMeta([rec(24), rec(100)]), 2);
  assert.throws(() => b.add(encodeMeta([rec(100)]), 1), /offsets must increase/);
  assert.throws(() => b.add(encodeMeta([rec(200), rec(2 ** 32 + 200)]), 2), /4 GiB apart/);
  b.add(encodeMeta([rec(200)]), 1); // a refused batch changed nothing
  assert.throws(() => b.segment(50), /does not cover/);
});

// At 3 packets a flow the per-flow parts dominate: the key tables alone add
// about 9 B a flow (each flow listed under its two addresses and two ports,
// about 2 B a listing), i.e. 3 B a packet, and the IPv4 table's keys, being
// the addresses themselves in address order, about 3.7 B an address more
// (13.6 B a packet when that table was keyed by dictionary entry).
// Stenographer took 22 B a packet.
/** 300,000 packets in 100,000 flows, indexed once for the tests that need an index of some size. */
const synthetic = (() => {
  let built: { index: Uint8Array; fileBytes: number; packets: number; addNs: bigint } | undefined;
  return () => {
    if (built) return built;
    const b = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
    let addNs = 0n;
    const r = generateTraffic({ packets: 300_000, flows: 100_000, spread: 'local', seconds: 1, nano: false, batch: 6000 }, (meta, count) => {
      const t = process.hrtime.bigint();
      b.add(meta, count);
      addNs += process.hrtime.bigint() - t;
    });
    built = { index: b.finish(r.fileBytes), fileBytes: r.fileBytes, packets: r.packets, addNs };
    return built;
  };
})();

test('index size on synthetic traffic: at most 15 bytes a packet at 3 packets a flow', () => {
  const { index, fileBytes, packets, addNs } = synthetic();
  const file = path.join(tmp, 'synthetic.pcap.idx');
  writeIndexFile(file, index);
  const v = readIndexFile(file);
  const perPacket = index.length / packets;
  console.log(`index: ${perPacket.toFixed(2)} bytes/packet, ${((100 * index.length) / fileBytes).toFixed(2)}% of the pcap, ` +
    `${v.flowCount} flows, add() ${Math.round(packets / (Number(addNs) / 1e9))} records/s`);
  assert.equal(v.flowCount, 100_000);
  assert.ok(perPacket <= 15, `${perPacket} bytes/packet`);
  assert.equal(v.packets, 300_000);
  assert.equal(v.flowCount, 100_000);
  let total = 0;
  for (let i = 0; i < v.flowCount; i++) total += v.flowOffsets(i).length;
  assert.equal(total, 300_000);
  assert.deepEqual(checkIndex(file), []);
});

test('a published index is read only where it is used, and what is read is checked', () => {
  const { index } = synthetic();
  const file = path.join(tmp, 'lazy.pcap.idx');
  writeIndexFile(file, index);
  const size = fs.statSync(file).size;

  // The oracle: every flow, decoded from the whole file.
  const whole = readIndexFile(file).segmentFlows[0].all();
  const flow = 54_321;
  const host = whole.ipv4[whole.addrA[flow]];
  const hostText = `${host >>> 24}.${(host >>> 16) & 255}.${(host >>> 8) & 255}.${host & 255}`;
  const want: number[] = [];
  for (let j = 0; j < whole.flowCount; j++) {
    const v4 = (whole.classFlags[whole.flowClass[j]] & META_IPV4) !== 0;
    if (v4 && (whole.ipv4[whole.addrA[j]] === host || whole.ipv4[whole.addrB[j]] === host)) want.push(j);
  }

  const lazy = readIndexFile(file);
  const seg = lazy.segmentFlows[0];
  const picked = flowsToJudge(parseFilter(`host ${hostText}`), seg, 1)!;
  assert.deepEqual([...picked], want);
  const cols = seg.keys!.columns(picked);
  for (let row = 0; row < picked.length; row++) {
    const j = picked[row];
    assert.deepEqual(
      [cols.addrA[row], cols.addrB[row], cols.portA[row], cols.minLo[row], cols.maxLo[row], cols.flowPackets[row], cols.flowCap[row], cols.offsets(row)],
      [whole.addrA[j], whole.addrB[j], whole.portA[j], whole.minLo[j], whole.maxLo[j], whole.flowPackets[j], whole.flowCap[j], whole.offsets(j)],
    );
  }
  const { bytes, of } = lazy.bytesRead;
  assert.equal(of, size);
  console.log(`one host: ${picked.length} flows, ${bytes} of ${size} index bytes read`);
  // About 5% here (18% when an IPv4 lookup scanned the whole dictionary).
  assert.ok(bytes < size / 10, `a one-host lookup read ${bytes} of ${size} bytes`);

  // A damaged block is found when a read reaches it, and by npcapprintindex -c.
  const damaged = path.join(tmp, 'damaged.pcap.idx');
  const copy = fs.readFileSync(file);
  const at = size - 100;
  copy[at] ^= 0x01;
  fs.writeFileSync(damaged, copy);
  assert.throws(() => readIndexFile(damaged).segmentFlows[0].all(), (e: unknown) => e instanceof IndexError && /checksum mismatch \(byte \d+\)/.test(e.message));
  assert.match(checkIndex(damaged).join('\n'), /checksum mismatch/);

  // A file replaced or removed under a reader is not read as if it were the same one.
  const moving = path.join(tmp, 'moving.pcap.idx');
  fs.copyFileSync(file, moving);
  const before = readIndexFile(moving);
  writeIndexFile(moving, index.slice());
  assert.throws(() => before.segmentFlows[0].all(), /moving\.pcap\.idx: replaced while being read/);
  const gone = readIndexFile(moving);
  fs.rmSync(moving);
  assert.throws(() => gone.segmentFlows[0].all(), /moving\.pcap\.idx: cannot be read again \(ENOENT\)/);
});

test('npcapprintindex prints, checks and fails with distinct exit codes', () => {
  const cli = path.join(__dirname, '..', 'tools', 'npcapprintindex.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const pcap = path.join(tmp, 'cli.pcap');
  const { records, bytes } = writePcap(pcap, mixedPackets(), false);
  const b = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
  b.add(encodeMeta(records), records.length);
  writeIndexFile(`${pcap}.idx`, b.finish(bytes));

  const text = run('-i', `${pcap}.idx`);
  assert.equal(text.status, 0);
  assert.equal(text.stderr, '');
  assert.match(text.stdout, /^precision +microsecond$/m);
  assert.match(text.stdout, /^time +1970-01-01T00:00:00\.000000Z - 2033-05-18T03:33:20\.123456Z$/m);
  assert.match(text.stdout, /^tcp 10\.0\.0\.1:51234 <-> 93\.184\.216\.34:443 packets 3 bytes 1654 2026-11-21T10:00:00\.000001Z - 2026-11-21T10:00:00\.000009Z$/m);
  assert.match(text.stdout, /^udp \[2001:db8::1\]:5353 <-> \[2a00:1450::200e\]:53 /m);
  assert.match(text.stdout, /^arp 02:00:00:00:00:0b <-> 02:00:00:00:00:0a /m);
  assert.match(text.stdout, /^tcp 10\.0\.0\.1:51234 <-> 93\.184\.216\.34:443 vlan 7 /m);
  assert.match(text.stdout, /^tcp 10\.0\.0\.1 <-> 93\.184\.216\.34 fragments /m);

  const json = run('-j', '-i', `${pcap}.idx`);
  assert.equal(json.status, 0);
  const doc = JSON.parse(json.stdout) as { packets: number; lastNs: string; flows: { a: { addr: string }; flags: string[] }[] };
  assert.equal(doc.packets, records.length);
  assert.equal(doc.lastNs, ((FAR / 1000n) * 1000n).toString());
  assert.equal(doc.flows.length, 6);
  assert.equal(doc.flows[1].a.addr, '2001:db8::1');
  assert.deepEqual(doc.flows[4].flags, ['ipv4', 'fragment', 'plain', 'mac']);

  const ok = run('-c', '-i', `${pcap}.idx`);
  assert.deepEqual([ok.status, ok.stdout, ok.stderr], [0, '', '']);

  const broken = fs.readFileSync(`${pcap}.idx`);
  broken[broken.length - 1] ^= 0xff;
  fs.writeFileSync(`${pcap}.idx`, broken);
  const bad = run('-c', '-i', `${pcap}.idx`);
  assert.equal(bad.status, 1);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /^\S+cli\.pcap\.idx: segment 0: checksum mismatch \(byte \d+\)\n$/);
  assert.equal(run('-i', `${pcap}.idx`).status, 1);

  const missing = run('-i', path.join(tmp, 'nope.idx'));
  assert.equal(missing.status, 2);
  assert.equal(missing.stderr, `npcapprintindex: ${path.join(tmp, 'nope.idx')}: no such file or directory\n`);
  const flag = run('--bogus', '-i', 'x');
  assert.equal(flag.status, 2);
  assert.equal(flag.stderr, "npcapprintindex: unknown option '--bogus'\n");
  assert.equal(run().status, 2);
  assert.equal(run('-c', '-j', '-i', `${pcap}.idx`).status, 2);
});

test('a published index that does not fit fails with ENOSPC and leaves the old one whole (root)', { skip: process.getuid?.() === 0 ? false : 'skipped: needs root' }, () => {
  // A 1 MiB file system: the new index (4 MB) cannot be written beside the old one.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n2disk-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
  try {
    const small = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
    small.add(encodeMeta([{ tsNs: 1n, offset: 24, caplen: 60, flags: 0 }]), 1);
    const idx = path.join(dir, 'f.pcap.idx');
    writeIndexFile(idx, small.finish(100));
    const before = fs.readFileSync(idx);
    const big = synthetic().index;
    assert.ok(big.length > 1 << 20, `${big.length} B should not fit in 1 MiB`);
    assert.throws(() => writeIndexFile(idx, big), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC' && e.message.includes(`${idx}.tmp`));
    assert.deepEqual(fs.readdirSync(dir), ['f.pcap.idx']);
    assert.ok(fs.readFileSync(idx).equals(before));
    assert.equal(readIndexFile(idx).packets, 1);
  } finally {
    execFileSync('umount', [dir]);
    fs.rmdirSync(dir);
  }
});

test('a segment that does not fit is not appended, and the next one that fits follows the last whole one (root)', { skip: process.getuid?.() === 0 ? false : 'skipped: needs root' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n2disk-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
  try {
    const idx = createSegmentedIndex(path.join(dir, 'f.pcap.part.idx'));
    const b = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
    const records = (from: number): PacketMetaInit[] =>
      Array.from({ length: 10 }, (_, k) => ({ tsNs: BigInt(from + k), offset: from + 100 * k, caplen: 84, flags: 0 }));
    b.add(encodeMeta(records(24)), 10);
    idx.append(b.segment(1024));
    b.segmentWritten();
    const big = synthetic().index;
    assert.throws(() => idx.append(big), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC');
    b.add(encodeMeta(records(1024)), 10);
    idx.append(b.segment(2024));
    b.segmentWritten();
    idx.close();
    const v = readIndexFile(path.join(dir, 'f.pcap.part.idx'), { partial: true });
    assert.equal(v.segments, 2);
    assert.equal(v.packets, 20);
    assert.deepEqual(v.covered, { start: 0, end: 2024 });
  } finally {
    execFileSync('umount', [dir]);
    fs.rmdirSync(dir);
  }
});

test('IndexBuilder.release frees a segment at once: the array is empty after, and a second release is harmless', () => {
  const b = new IndexBuilder({ linktype: 1, nano: false, snaplen: 0 });
  b.add(encodeMeta([{ tsNs: 1n, offset: 24, caplen: 60, flags: 0 }]), 1);
  const segment = b.segment(100);
  const copy = Buffer.from(segment);
  assert.ok(segment.length > 0);
  IndexBuilder.release(segment);
  assert.equal(segment.length, 0);
  IndexBuilder.release(segment);
  // The builder goes on; what was released was only the caller's bytes.
  b.add(encodeMeta([{ tsNs: 2n, offset: 100, caplen: 60, flags: 0 }]), 1);
  const index = b.finish(176);
  assert.equal(Segment.getRootAsSegment(new ByteBuffer(index)).packets(), 2n);
  assert.equal(Segment.getRootAsSegment(new ByteBuffer(copy)).packets(), 1n);
});
