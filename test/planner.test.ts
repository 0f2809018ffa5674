// The filter parser and the flow planner: unit tests, then an oracle test that
// proves the planner sound against tcpdump on real captures imported by the
// recorder (a flow judged 'false' has no packet tcpdump keeps, a flow judged
// 'true' has only packets tcpdump keeps).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Expr, formatExpr, namesFromFiles, parseFilter } from '../extract/expression';
import { Tri, columnPlanner, describePlan, flowsToJudge, planFlow } from '../extract/planner';
import { FlowView, SegmentFlows, readIndexFile } from '../recorder/index-file';
import {
  META_FRAGMENT, META_IPV4, META_IPV6, META_MAC, META_PLAIN, META_PORTS, META_VLAN,
} from '../recorder/packet-meta';
import { fixture } from './helpers/corpus';
import { PcapRecord, readPcap, tcpdumpReadFile } from './helpers/pcap-compare';
import { publishedFiles, runTool, tempDir } from './helpers/recorder';

// ---------------------------------------------------------------- parser

const NAMES = namesFromFiles(
  ['http 80/tcp www', 'domain 53/tcp', 'domain 53/udp', 'ntp 123/udp', 'odd 100/tcp', 'odd 101/udp'].join('\n'),
  ['tcp 6 TCP', 'udp 17 UDP', 'icmp 1 ICMP'].join('\n'),
);
const parse = (s: string): Expr => parseFilter(s, { names: NAMES });
const shape = (s: string): string => formatExpr(parse(s));

test('parser: qualifiers carry over to bare addresses, ports and numbers', () => {
  assert.equal(shape('host 1.2.3.4 or 5.6.7.8'), '(or (host 1.2.3.4) (host 5.6.7.8))');
  assert.equal(shape('tcp port 80 or 443'), '(or (tcp port 80) (tcp port 443))');
  assert.equal(shape('src net 10.0.0.0/8 and not 10.1.0.0/16'), '(and (src net 10.0.0.0/8) (not (src net 10.1.0.0/16)))');
  assert.equal(shape('host 1.2.3.4 and (5.6.7.8 or 9.9.9.9)'), '(and (host 1.2.3.4) (or (host 5.6.7.8) (host 9.9.9.9)))');
  // After a parenthesised term, a bare address takes the qualifiers in force before the parenthesis (grammar.y).
  assert.equal(shape('host 1.2.3.4 or (port 80) or 5'), '(or (or (host 1.2.3.4) (port 80)) (host 5))');
  const five = parse('host 1.2.3.4 or (port 80) or 5');
  assert.ok(five.kind === 'or' && five.right.kind === 'ipv4' && five.right.addr === 5);
  // After a protocol or a relation there is nothing to inherit: libpcap rejects it, so do we (whole unknown).
  assert.equal(parse('tcp and 5').kind, 'unknown');
});

test('parser: not binds tightest, and/or are equal and left-associative', () => {
  assert.equal(shape('host 1.1.1.1 or host 2.2.2.2 and port 80'), '(and (or (host 1.1.1.1) (host 2.2.2.2)) (port 80))');
  assert.equal(shape('port 80 and host 1.1.1.1 or host 2.2.2.2'), '(or (and (port 80) (host 1.1.1.1)) (host 2.2.2.2))');
  assert.equal(shape('not host 1.1.1.1 and port 80'), '(and (not (host 1.1.1.1)) (port 80))');
  assert.equal(shape('! tcp || udp && icmp'), '(and (or (not (tcp)) (udp)) (icmp))');
  assert.equal(shape('port 80 and not 53'), '(and (port 80) (not (port 53)))');
  assert.equal(shape('not (tcp or udp)'), '(not (or (tcp) (udp)))');
});

test('parser: addresses, masks and numbers as libpcap reads them', () => {
  const v4 = (s: string): [number, number] => {
    const e = parse(s);
    assert.ok(e.kind === 'ipv4', `${s}: ${formatExpr(e)}`);
    return [e.addr, e.mask];
  };
  assert.deepEqual(v4('net 10'), [0x0a000000, 0xff000000]);
  assert.deepEqual(v4('host 1.2.3'), [0x01020300, 0xffffff00]); // a partial host address is a network
  assert.deepEqual(v4('host 10'), [10, 0xffffffff]);
  assert.deepEqual(v4('net 192.168.0.0/16'), [0xc0a80000, 0xffff0000]);
  assert.deepEqual(v4('net 10.0.0.0 mask 255.0.0.0'), [0x0a000000, 0xff000000]);
  assert.deepEqual(v4('host 010.1.2.3'), [0x0a010203, 0xffffffff]); // octets are decimal
  const port = (s: string): unknown => {
    const e = parse(s);
    return e.kind === 'port' ? [e.proto, e.dir, e.low, e.high] : formatExpr(e);
  };
  assert.deepEqual(port('port 010'), ['any', 'either', 8, 8]); // a plain number with a leading 0 is octal
  assert.deepEqual(port('port 0x50'), ['any', 'either', 80, 80]);
  assert.deepEqual(port('src port 53'), ['any', 'src', 53, 53]);
  assert.deepEqual(port('src and dst port 53'), ['any', 'both', 53, 53]);
  assert.deepEqual(port('portrange 90-80'), ['any', 'either', 80, 90]);
  assert.deepEqual(port('portrange 80'), ['any', 'either', 80, 80]);
  assert.deepEqual(port('port http'), ['tcp', 'either', 80, 80]); // listed for tcp only: libpcap tests tcp only
  assert.deepEqual(port('port www'), ['tcp', 'either', 80, 80]);
  assert.deepEqual(port('port domain'), ['any', 'either', 53, 53]);
  assert.deepEqual(port('port ntp'), ['udp', 'either', 123, 123]);
  assert.deepEqual(port('port odd'), ['tcp', 'either', 100, 100]);
  assert.equal(parse('udp port http').kind, 'unknown');
  assert.equal(parse('port nosuchservice').kind, 'unknown');
  assert.equal(parse('port 08').kind, 'unknown'); // libpcap: non-octal digit
  assert.equal(parse('port 70000').kind, 'unknown');
  const p = parse('ip6 proto \\udp');
  assert.ok(p.kind === 'proto' && p.layer === 'ip6' && p.proto === 17);
  const h6 = parse('net 2001:db8::/32');
  assert.ok(h6.kind === 'ipv6' && h6.prefix === 32 && h6.addr[1] === 0x01 && h6.addr[3] === 0xb8);
  const mapped = parse('host ::ffff:1.2.3.4');
  assert.ok(mapped.kind === 'ipv6' && mapped.addr[10] === 0xff && mapped.addr[15] === 4);
  for (const m of ['ether host 00:11:22:33:44:55', 'ether host 0011.2233.4455', 'ether host 001122334455', 'ether host 0-11-22-33-44-55']) {
    const e = parse(m);
    assert.ok(e.kind === 'mac' && e.addr[1] === 0x11 && e.addr[5] === 0x55, m);
  }
  assert.equal(shape('ether src 00:11:22:33:44:55'), '(ether src 00:11:22:33:44:55)');
});

test('parser: what it does not decide stays in the tree as unknown leaves', () => {
  assert.equal(shape('tcp[tcpflags] & tcp-syn != 0 and host 1.2.3.4'), '(and (? tcp[tcpflags] & tcp-syn != 0) (host 1.2.3.4))');
  assert.equal(shape('(ip[2:2] + 4) > 100 or port 80'), '(or (? (ip[2:2] + 4) > 100) (port 80))');
  assert.equal(shape('greater 100 or less 50'), '(or (? greater 100) (? less 50))');
  assert.equal(shape('ether broadcast and not ip multicast'), '(and (? ether broadcast) (not (? ip multicast)))');
  assert.equal(shape('icmp[icmptype] = icmp-echo'), '(? icmp[icmptype] = icmp-echo)');
  assert.equal(shape('host example.com and port 80'), '(and (? host example.com) (port 80))');
  assert.equal(shape('ether proto \\arp or pim'), '(or (? ether proto \\arp) (? pim))');
  assert.equal(shape(''), '(all)');
});

test('parser: whole expression unknown when offsets shift or it cannot be parsed', () => {
  for (const s of ['vlan and host 1.2.3.4', 'host 1.2.3.4 and vlan 10', 'mpls', 'pppoes and tcp', 'geneve', 'TCP',
    'HOST 1.2.3.4', 'host (', '1.2.3.4', 'host 1.2.3.4 or', 'port 80 80', ')', 'host 1.2.3.4.5.6.7']) {
    const e = parse(s);
    assert.equal(e.kind, 'unknown', `${s}: ${formatExpr(e)}`);
  }
  // Deep nesting stays cheap (memoised backtracking).
  const deep = `${'('.repeat(40)}host 1.2.3.4${')'.repeat(40)}`;
  assert.equal(shape(deep), '(host 1.2.3.4)');
});

test('describePlan says what the index decides', () => {
  const d = describePlan(parse('host 1.2.3.4 and tcp[13] & 2 != 0'));
  assert.equal(d.canSkip, true);
  assert.deepEqual(d.parts.map((p) => p.decided), [true, false]);
  assert.equal(describePlan(parse('host 1.2.3.4 or tcp[13] & 2 != 0')).canSkip, false);
  assert.equal(describePlan(parse('vlan and host 1.2.3.4')).canSkip, false);
  assert.match(describePlan(parse('port 80')).lines.join('\n'), /index +port 80/);
});

// ---------------------------------------------------------------- planner on synthetic flows

const ETH = 1;
function flow(over: Partial<FlowView>): FlowView {
  const ip4 = (s: string | undefined): Uint8Array | undefined => (s ? Uint8Array.from(s.split('.').map(Number)) : undefined);
  const base: FlowView = {
    index: 0, ipVersion: 4, addrA: '10.0.0.1', addrB: '10.0.0.2', addrABytes: undefined, addrBBytes: undefined,
    portA: 40000, portB: 80, ipproto: 6, ethertype: 0x0800, vlan: undefined, macA: '02:00:00:00:00:0a',
    macB: '02:00:00:00:00:0b', flags: META_IPV4 | META_PORTS | META_PLAIN | META_MAC, firstNs: 0n, lastNs: 0n,
    packets: 1, bytes: 60, wireBytes: 60,
  };
  const f = { ...base, ...over };
  if (f.ipVersion === 4) {
    f.addrABytes ??= ip4(f.addrA);
    f.addrBBytes ??= ip4(f.addrB);
  }
  return f;
}
const plan = (filter: string, f: FlowView, linktype = ETH): Tri => planFlow(parse(filter), f, linktype);

test('planner: bidirectional flows and src/dst', () => {
  const tcp = flow({});
  const cases: [string, Tri][] = [
    ['host 10.0.0.1', 'true'], ['host 10.0.0.3', 'false'], ['src host 10.0.0.1', 'unknown'], ['dst host 10.0.0.9', 'false'],
    ['src host 10.0.0.1 or src host 10.0.0.2', 'true'], ['src host 10.0.0.1 and dst host 10.0.0.2', 'unknown'],
    ['src and dst host 10.0.0.1', 'false'], ['net 10.0.0.0/24', 'true'], ['src net 10.0.0.0/24', 'true'], ['net 10.1', 'false'],
    ['port 80', 'true'], ['src port 80', 'unknown'], ['udp port 80', 'false'], ['tcp port 80 or 443', 'true'],
    ['portrange 1-80', 'true'], ['src portrange 1-80', 'unknown'], ['portrange 81-1000', 'false'], ['tcp', 'true'], ['udp', 'false'], ['ip', 'true'],
    ['ip6', 'false'], ['arp', 'false'], ['icmp', 'false'], ['proto 6', 'true'], ['ip6 proto 6', 'false'],
    ['not host 10.0.0.3', 'true'], ['ether host 02:00:00:00:00:0a', 'true'], ['ether src 02:00:00:00:00:0a', 'unknown'],
    ['host 10.0.0.1 and tcp[13] & 2 != 0', 'unknown'], ['host 10.0.0.3 and tcp[13] & 2 != 0', 'false'],
    // 'true' needs every leaf decided: an undecided one might read past a short packet.
    ['host 10.0.0.1 or tcp[13] & 2 != 0', 'unknown'], ['host foo', 'unknown'], ['', 'true'],
  ];
  for (const [f, want] of cases) assert.equal(plan(f, tcp), want, f);
  // A flow between an address and itself: both directions have it as source.
  assert.equal(plan('src host 10.0.0.1', flow({ addrB: '10.0.0.1' })), 'true');
});

test('planner: what the index cannot see stays unknown, what libpcap cannot match is false', () => {
  // VLAN-tagged: libpcap sees the TPID where it expects the ethertype.
  const tagged = flow({ flags: META_IPV4 | META_PORTS | META_MAC | META_VLAN, vlan: 5 });
  assert.equal(plan('host 10.0.0.1', tagged), 'false');
  assert.equal(plan('not tcp', tagged), 'true');
  assert.equal(plan('ether host 02:00:00:00:00:0b', tagged), 'true');
  // Cut short before the ports: libpcap's port load fails and rejects the packet whatever the rest says.
  const short = flow({ flags: META_IPV4 | META_PLAIN | META_MAC, portA: undefined, portB: undefined });
  assert.equal(plan('port 80', short), 'unknown');
  assert.equal(plan('not port 80', short), 'unknown');
  assert.equal(plan('port 80 and host 10.0.0.9', short), 'false');
  assert.equal(plan('tcp', short), 'true');
  // Non-first fragments: no ports, so libpcap's port test is false; the protocol is still tcp.
  const frag = flow({ flags: META_IPV4 | META_PLAIN | META_MAC | META_FRAGMENT, portA: undefined, portB: undefined });
  assert.equal(plan('port 80', frag), 'false');
  assert.equal(plan('tcp', frag), 'true');
  // ARP: `host` also tests ARP addresses, which the index does not hold.
  const arp = flow({ ipVersion: undefined, addrA: undefined, addrB: undefined, ethertype: 0x0806, ipproto: 0, flags: META_MAC, portA: undefined, portB: undefined });
  assert.equal(plan('host 10.0.0.1', arp), 'unknown');
  assert.equal(plan('ip host 10.0.0.1', arp), 'false');
  assert.equal(plan('arp', arp), 'true');
  assert.equal(plan('port 80', arp), 'false');
  // IPv6 with extension headers: addresses are decided, the next header is not.
  const a6 = Uint8Array.from({ length: 16 }, (_, k) => (k === 0 ? 0x20 : k === 15 ? 1 : 0));
  const b6 = Uint8Array.from({ length: 16 }, (_, k) => (k === 0 ? 0x20 : k === 15 ? 2 : 0));
  const ext6 = flow({ ipVersion: 6, addrA: '2000::1', addrB: '2000::2', addrABytes: a6, addrBBytes: b6, ethertype: 0x86dd, flags: META_IPV6 | META_PORTS | META_MAC });
  assert.equal(plan('host 2000::1', ext6), 'true');
  assert.equal(plan('ip6 net 2000::/16', ext6), 'true');
  assert.equal(plan('host 2000::3', ext6), 'false');
  assert.equal(plan('tcp', ext6), 'unknown');
  assert.equal(plan('port 80', ext6), 'unknown');
  assert.equal(plan('host 10.0.0.1', ext6), 'false');
  const plain6 = { ...ext6, flags: META_IPV6 | META_PORTS | META_MAC | META_PLAIN };
  assert.equal(plan('tcp port 80', plain6), 'true');
  assert.equal(plan('icmp6', plain6), 'false');
  // A plain IPv6 flow whose fixed next header is a fragment header (packet too short to follow it):
  // libpcap's protocol test looks behind it.
  assert.equal(plan('tcp', { ...plain6, ipproto: 44, flags: META_IPV6 | META_MAC | META_PLAIN }), 'unknown');
  // Link types: BSD loopback never decided; raw IPv4 files hold nothing but IPv4 for libpcap.
  assert.equal(plan('host 10.0.0.1', flow({ flags: META_IPV4 | META_PORTS, macA: undefined, macB: undefined }), 0), 'unknown');
  assert.equal(plan('host 10.0.0.1', flow({ macA: undefined, macB: undefined, flags: META_IPV4 | META_PORTS | META_PLAIN }), 228), 'true');
  assert.equal(plan('host 2000::1', { ...plain6, macA: undefined, macB: undefined, flags: META_IPV6 | META_PLAIN }, 228), 'unknown');
  assert.equal(plan('ether host 02:00:00:00:00:0a', flow({ macA: undefined, macB: undefined }), 113), 'unknown');
  // Vlan anywhere makes everything unknown.
  assert.equal(plan('host 10.0.0.3 and vlan', flow({})), 'unknown');
});

// ---------------------------------------------------------------- oracle: tcpdump on real captures

const ORACLE_FIXTURES = [
  'android.pcap', 'anyconnect-vpn.pcap', 'WebattackRCE.pcap', 'quic-mvfst-exp.pcap', 'dns_exfiltration.pcap', // Ethernet
  'mongodb.pcap', 'false_positives.pcapng', 'tls_change_cipher.pcap', '802.1ad_QinQ.pcap', // VLAN, QinQ
  'psiphon3.pcap', 'LINKTYPE_IPV4.pcap', 'LINKTYPE_IPV6.pcap', // raw IP
  'log4j-webapp-exploit.pcap', 'tcp-handshake-nano.pcap', 'sll2-android.pcap', // SLL, SLL2
  'nats.pcap', // BSD null
  'gnutella.pcap', 'mobility_opt_asan.pcap', 'resp.pcap', // 4-byte packets, IPv6 extension headers, offload-sized
];

/** Templates; {x} are filled per file with addresses and ports that occur in it. */
const FILTERS = [
  'host {v4a}', 'src host {v4a}', 'dst host {v4a}', 'src and dst host {v4a}', 'src or dst host {v4b}',
  'host {v4a} or {v4b}', 'host {v4a} and not {v4b}', 'host {v4a} and ({v4b} or {v4c})', 'ip host {v4a}', 'arp host {v4a}',
  'net {net16}', 'src net {net24}', 'dst net {net16}', 'net {net16base} mask 255.255.0.0', 'net {octet}', 'host {v4a3}',
  'port {port}', 'src port {port}', 'dst port {port}', 'tcp port {port}', 'udp port {port}', 'port {port} or {port2}',
  'tcp port {port} or {port2}', 'portrange 1-1023', 'tcp portrange 1024-65535', 'udp dst portrange 50-60', 'port 53',
  'port domain', 'port http', 'port https', 'port 0x1bb', 'port 0120',
  'tcp', 'udp', 'icmp', 'icmp6', 'sctp', 'igmp', 'ip', 'ip6', 'arp', 'not ip', 'ip6 and not tcp', 'proto 17',
  'ip proto 6', 'ip6 proto 17', 'ip6 proto 58', 'proto \\udp', 'ip proto \\icmp',
  'host {v6a}', 'src host {v6a}', 'dst host {v6b}', 'ip6 net {v6net}/64', 'host {v6a} or {v6b}',
  'ether host {mac}', 'ether src {mac}', 'ether dst {mac}', 'ether host {mac} and not ip',
  'host {v4a} and port {port}', '(host {v4a} and port {port}) or icmp', 'not (host {v4a} or host {v4b})', 'not port {port}',
  'host {v4a} or (port {port}) or {v4b}', 'dst host {v4a} and src port {port}', 'tcp and not port {port}', 'udp or icmp6',
  'src host {v4a} or src host {v4b}', 'ip6 proto 6', 'not udp', 'sctp port {port}', 'rarp', 'not ip6 and not arp',
  'ip6 host {v6a} and port {port}', 'ip and not tcp',
  // the index cannot decide these (alone), libpcap does
  'tcp[tcpflags] & tcp-syn != 0', 'host {v4a} and tcp[tcpflags] & tcp-syn != 0', 'greater 100', 'less 80 and host {v4a}',
  'vlan', 'vlan and host {v4a}', 'ip[8] < 64', 'ip[8] < 64 or port {port}', 'len > 100 and not port {port}',
  'ether broadcast', 'ether multicast or host {v4a}', 'not tcp[13] = 2', 'host {v4a} or tcp[13] = 2',
];

interface Imported {
  name: string;
  pcap: string;
  linktype: number;
  flows: FlowView[];
  /** The same flows by segment: as columns, and through the key tables. */
  segments: readonly SegmentFlows[];
  offsets: number[][];
  records: PcapRecord[];
  recordOffsets: number[];
  vars: Record<string, string>;
}

function ranked(counts: Map<string, number>): string[] {
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([k]) => k);
}

/** Placeholder values: the busiest addresses, ports and MACs of the file, or documentation values. */
function variables(flows: FlowView[]): Record<string, string> {
  const v4 = new Map<string, number>(), v6 = new Map<string, number>(), ports = new Map<string, number>(), macs = new Map<string, number>();
  const add = (m: Map<string, number>, k: string | number | undefined, n: number): void => {
    if (k !== undefined) m.set(String(k), (m.get(String(k)) ?? 0) + n);
  };
  for (const f of flows) {
    const m = f.ipVersion === 4 ? v4 : f.ipVersion === 6 ? v6 : undefined;
    if (m) {
      add(m, f.addrA, f.packets);
      if (f.addrB !== f.addrA) add(m, f.addrB, f.packets);
    }
    if (f.flags & META_PORTS) {
      add(ports, f.portA, f.packets);
      add(ports, f.portB, f.packets);
    }
    add(macs, f.macA, f.packets);
    add(macs, f.macB, f.packets);
  }
  const a4 = [...ranked(v4), '192.0.2.1', '192.0.2.2', '192.0.2.3'];
  const a6 = [...ranked(v6), '2001:db8::1', '2001:db8::2'].filter((a) => !a.includes('.'));
  const p = [...ranked(ports), '80', '443'];
  const o = a4[0].split('.');
  const g = a6[0].includes('::') ? a6[0].split('::')[0].split(':') : a6[0].split(':').slice(0, 4);
  while (g.length < 4) g.push('0');
  return {
    v4a: a4[0], v4b: a4[1], v4c: a4[2], v4a3: o.slice(0, 3).join('.'), octet: o[0],
    net16: `${o[0]}.${o[1]}.0.0/16`, net16base: `${o[0]}.${o[1]}.0.0`, net24: `${o[0]}.${o[1]}.${o[2]}.0/24`,
    v6a: a6[0], v6b: a6[1], v6net: `${g.slice(0, 4).join(':')}::`,
    port: p[0], port2: p[1], mac: [...ranked(macs), '02:00:00:00:00:01'][0],
  };
}

// A capture of the frames the planner must be most careful with, built per link type.
interface Frame { l3: number; bytes: Buffer; caplen?: number; ethernetOnly?: boolean }

const be16 = (v: number): Buffer => Buffer.from([v >> 8, v & 0xff]);
const ipv4b = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
const ipv6b = (s: string): Buffer => {
  const [h, t] = s.split('::');
  const g = (x: string | undefined): number[] => (x ? x.split(':').map((v) => parseInt(v, 16)) : []);
  const groups = t === undefined ? g(h) : [...g(h), ...new Array<number>(8 - g(h).length - g(t).length).fill(0), ...g(t)];
  return Buffer.concat(groups.map(be16));
};
const ports = (sp: number, dp: number, rest = 16): Buffer => Buffer.concat([be16(sp), be16(dp), Buffer.alloc(rest)]);
function ip4(src: string, dst: string, proto: number, payload: Buffer, o: { frag?: number; options?: number; version?: number } = {}): Buffer {
  const ihl = 5 + (o.options ?? 0);
  const h = Buffer.alloc(ihl * 4);
  h[0] = ((o.version ?? 4) << 4) | ihl;
  h.writeUInt16BE(h.length + payload.length, 2);
  h.writeUInt16BE(o.frag ?? 0, 6);
  h[8] = 64;
  h[9] = proto;
  ipv4b(src).copy(h, 12);
  ipv4b(dst).copy(h, 16);
  return Buffer.concat([h, payload]);
}
function ip6(src: string, dst: string, nh: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(payload.length, 4);
  h[6] = nh;
  h[7] = 64;
  ipv6b(src).copy(h, 8);
  ipv6b(dst).copy(h, 24);
  return Buffer.concat([h, payload]);
}
const ext6 = (nh: number): Buffer => Buffer.from([nh, 0, 1, 4, 0, 0, 0, 0]); // 8-byte option header
const frag6 = (nh: number, offset: number): Buffer => Buffer.concat([Buffer.from([nh, 0]), be16(offset << 3), Buffer.alloc(4)]);

function trickyFrames(): Frame[] {
  const A = '10.0.0.1', B = '10.0.0.2', C = '192.168.1.1', A6 = '2001:db8::1', B6 = '2001:db8::2';
  const arp = Buffer.concat([Buffer.from([0, 1, 8, 0, 6, 4, 0, 1]), Buffer.alloc(6, 0xaa), ipv4b(A), Buffer.alloc(6), ipv4b(B)]);
  const tcp = ip4(A, B, 6, ports(1234, 80));
  return [
    { l3: 0x0800, bytes: tcp },
    { l3: 0x0800, bytes: ip4(B, A, 6, ports(80, 1234)) },
    { l3: 0x0800, bytes: ip4(A, C, 17, ports(5353, 53, 4)) },
    { l3: 0x0800, bytes: ip4(A, B, 17, ports(7000, 53), { frag: 0x2000 }) }, // first fragment: ports present
    { l3: 0x0800, bytes: ip4(A, B, 17, Buffer.from([0, 80, 0, 53, 1, 2, 3, 4]), { frag: 185 }) }, // later fragment
    { l3: 0x0800, bytes: ip4(A, B, 6, ports(1234, 80)), caplen: 22 }, // cut inside the ports
    { l3: 0x0800, bytes: ip4(A, B, 6, ports(1234, 80)), caplen: 10 }, // cut inside the IPv4 header
    { l3: 0x0800, bytes: ip4(A, B, 6, ports(22, 2222), { options: 1 }) },
    { l3: 0x0800, bytes: ip4(A, B, 6, ports(22, 2222), { version: 6 }) }, // ethertype IPv4, version 6
    { l3: 0x0800, bytes: ip4(B, C, 132, ports(5000, 80)) },
    { l3: 0x0800, bytes: ip4(C, A, 1, Buffer.from([8, 0, 0, 0, 0, 0, 0, 0])) },
    { l3: 0x0800, bytes: ip4(C, '224.0.0.1', 2, Buffer.alloc(8)) },
    { l3: 0x86dd, bytes: ip6(A6, B6, 6, ports(1000, 80)) },
    { l3: 0x86dd, bytes: ip6(B6, A6, 6, ports(80, 1000)) },
    { l3: 0x86dd, bytes: ip6(A6, B6, 0, Buffer.concat([ext6(17), ports(53, 5353, 4)])) }, // hop-by-hop first
    { l3: 0x86dd, bytes: ip6(A6, B6, 44, Buffer.concat([frag6(17, 0), ports(53, 5353, 4)])) },
    { l3: 0x86dd, bytes: ip6(A6, B6, 44, Buffer.concat([frag6(6, 100), Buffer.alloc(8)])) },
    { l3: 0x86dd, bytes: ip6(B6, A6, 44, Buffer.concat([frag6(6, 0), ports(80, 1000)])), caplen: 44 }, // fragment header cut short
    { l3: 0x86dd, bytes: ip6(A6, B6, 17, ports(53, 5353)), caplen: 42 }, // cut inside the ports
    { l3: 0x86dd, bytes: ip6(B6, A6, 58, Buffer.from([128, 0, 0, 0, 0, 0, 0, 0])) },
    { l3: 0x0806, bytes: arp },
    { l3: 0x8035, bytes: arp },
    { l3: 0x0026, bytes: Buffer.from([0x42, 0x42, 0x03, ...new Array<number>(35).fill(0)]), ethernetOnly: true }, // 802.3 + LLC
    { l3: 0x8100, bytes: Buffer.concat([be16(5), be16(0x0800), tcp]), ethernetOnly: true },
    { l3: 0x88a8, bytes: Buffer.concat([be16(6), be16(0x8100), be16(7), be16(0x0800), tcp]), ethernetOnly: true },
    { l3: 0x8100, bytes: Buffer.from([0, 5]), ethernetOnly: true }, // tag cut short
    { l3: 0x0800, bytes: tcp, caplen: -4 }, // shorter than the link header (not on raw IP)
  ];
}

/** A pcap of trickyFrames() framed for one link type (Ethernet, raw IP, Linux SLL or SLL2). */
function writeTricky(file: string, linktype: number): void {
  const macA = Buffer.from([2, 0, 0, 0, 0, 0x0a]), macB = Buffer.from([2, 0, 0, 0, 0, 0x0b]);
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(linktype, 20);
  const out = [head];
  trickyFrames().forEach((f, k) => {
    let link: Buffer;
    if (linktype === 1) link = Buffer.concat([k % 2 ? macA : macB, k % 2 ? macB : macA, be16(f.l3)]);
    else if (f.ethernetOnly || (linktype === 101 && ((f.l3 !== 0x0800 && f.l3 !== 0x86dd) || (f.caplen ?? 0) < 0))) return;
    else if (linktype === 101) link = Buffer.alloc(0);
    else if (linktype === 113) link = Buffer.concat([be16(0), be16(1), be16(6), macA, Buffer.alloc(2), be16(f.l3)]);
    else link = Buffer.concat([be16(f.l3), Buffer.alloc(6), be16(1), Buffer.from([0, 6]), macA, Buffer.alloc(2)]);
    const frame = Buffer.concat([link, f.bytes]);
    const caplen = f.caplen === undefined ? frame.length : link.length + f.caplen; // caplen counts from the L3 header
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(1_700_000_000 + k, 0);
    rec.writeUInt32LE(caplen, 8);
    rec.writeUInt32LE(frame.length, 12);
    out.push(rec, frame.subarray(0, caplen));
  });
  fs.writeFileSync(file, Buffer.concat(out));
}

/** Temporary directories of the oracle test, removed when it ends (pass or fail). */
const scratch: string[] = [];

async function importFixture(name: string, file = fixture(name).path): Promise<Imported> {
  const dir = tempDir('planner');
  scratch.push(dir);
  const r = await runTool('n2disk-ts', ['-i', file, '-o', dir, '-t', '0']);
  assert.equal(r.code, 0, `${name}: import failed: ${r.stderr}`);
  const pcaps = publishedFiles(dir);
  assert.equal(pcaps.length, 1, `${name}: expected one file, got ${pcaps.length}`);
  const pcap = pcaps[0];
  const index = readIndexFile(`${pcap}.idx`);
  const flows = [...index.flows()];
  const offsets = flows.map((f) => index.flowOffsets(f.index));
  // Records as stored: their offsets are 24 + the sizes of the records before them.
  const records = readPcap(pcap, { libpcap: false }).records;
  const recordOffsets: number[] = [];
  let at = 24;
  for (const rec of records) {
    recordOffsets.push(at);
    at += 16 + rec.caplen;
  }
  return { name, pcap, linktype: index.linktype, flows, segments: index.segmentFlows, offsets, records, recordOffsets, vars: variables(flows) };
}

/** Offsets of the records tcpdump keeps: its output is a subsequence of the file, in order. */
function keptOffsets(file: Imported, kept: readonly PcapRecord[]): Set<number> {
  const out = new Set<number>();
  let j = 0;
  for (const k of kept) {
    while (j < file.records.length) {
      const r = file.records[j];
      const same = r.tsNs === k.tsNs && r.wirelen === k.wirelen && r.data.subarray(0, k.caplen).equals(k.data);
      j++;
      if (same) {
        out.add(file.recordOffsets[j - 1]);
        break;
      }
      if (j === file.records.length) throw new Error(`${file.name}: a record tcpdump kept is not in the file`);
    }
  }
  return out;
}

async function pool<T>(items: readonly T[], width: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await run(items[next++]);
  }));
}

test('oracle: planner verdicts agree with tcpdump on every flow of real captures', { timeout: 600_000 }, async (t) => {
  t.after(() => {
    for (const d of scratch) fs.rmSync(d, { recursive: true, force: true });
  });
  const files: Imported[] = [];
  for (const name of ORACLE_FIXTURES) files.push(await importFixture(name));
  const synth = tempDir('planner-synth');
  scratch.push(synth);
  for (const linktype of [1, 101, 113, 276]) {
    const file = path.join(synth, `tricky-${linktype}.pcap`);
    writeTricky(file, linktype);
    files.push(await importFixture(path.basename(file), file));
  }
  for (const f of files) {
    t.diagnostic(`${f.name}: linktype ${f.linktype}, ${f.flows.length} flows, ${f.records.length} packets`);
  }

  interface Row { filter: string; file: string; verdicts: Record<Tri, number>; rejected: boolean }
  const rows: Row[] = [];
  const failures: string[] = [];
  const jobs = FILTERS.flatMap((template) => files.map((file) => ({ template, file })));
  await pool(jobs, 8, async ({ template, file }) => {
    const filter = template.replace(/\{(\w+)\}/g, (_, k: string) => file.vars[k] ?? `{${k}}`);
    const row: Row = { filter: template, file: file.name, verdicts: { true: 0, false: 0, unknown: 0 }, rejected: false };
    rows.push(row);
    let kept: PcapRecord[];
    try {
      kept = (await tcpdumpReadFile(file.pcap, filter)).records;
    } catch {
      row.rejected = true; // e.g. `ether host` on raw IP, `arp` where it can never match
      return;
    }
    const matched = keptOffsets(file, kept);
    const expr = parseFilter(filter);
    // Extraction plans on the columns: their verdict must be the FlowView's, flow for flow.
    const onColumns = file.segments.flatMap((seg) => {
      const cols = seg.all();
      const judge = columnPlanner(expr, cols, file.linktype);
      return Array.from({ length: cols.flowCount }, (_, j) => judge(j));
    });
    // The key tables may leave out only flows that are certainly false, and
    // the flows they name, decoded from checkpoints, get the same verdicts.
    const judged = new Set<number>();
    for (const seg of file.segments) {
      assert.ok(seg.keys, `${file.name}: no key tables`);
      const pick = flowsToJudge(expr, seg, file.linktype);
      const cols = pick ? seg.keys.columns(pick) : seg.all();
      const judge = columnPlanner(expr, cols, file.linktype);
      for (let r = 0; r < cols.flowCount; r++) {
        const i = cols.base + (cols.flowIds ? cols.flowIds[r]! : r);
        judged.add(i);
        if (judge(r) !== onColumns[i]) failures.push(`${file.name} '${filter}': flow ${i} is ${judge(r)} from the key tables but ${onColumns[i]} on all columns`);
      }
    }
    onColumns.forEach((v, i) => {
      if (v !== 'false' && !judged.has(i)) failures.push(`${file.name} '${filter}': flow ${i} is ${v} but the key tables leave it out`);
    });
    file.flows.forEach((flow, i) => {
      const v = planFlow(expr, flow, file.linktype);
      if (onColumns[i] !== v) failures.push(`${file.name} '${filter}': flow ${i} is ${v} as a FlowView but ${onColumns[i]} on the columns`);
      row.verdicts[v]++;
      if (v === 'unknown') return;
      const offs = file.offsets[i];
      const hits = offs.filter((o) => matched.has(o)).length;
      if ((v === 'false' && hits > 0) || (v === 'true' && hits < offs.length)) {
        const { addrABytes: _a, addrBBytes: _b, firstNs: _f, lastNs: _l, ...shown } = flow;
        failures.push(`${file.name} '${filter}': planner says ${v}, tcpdump keeps ${hits} of ${offs.length} packets of ${JSON.stringify(shown)}`);
      }
    });
  });

  // Per filter, summed over files: flows decided true / false / unknown, and files where tcpdump rejects the filter.
  let decided = 0, total = 0;
  for (const template of FILTERS) {
    const mine = rows.filter((r) => r.filter === template && !r.rejected);
    const sum = (k: Tri): number => mine.reduce((s, r) => s + r.verdicts[k], 0);
    const rejected = rows.filter((r) => r.filter === template && r.rejected).length;
    decided += sum('true') + sum('false');
    total += sum('true') + sum('false') + sum('unknown');
    t.diagnostic(`${template.padEnd(46)} true ${String(sum('true')).padStart(5)}  false ${String(sum('false')).padStart(5)}  ` +
      `unknown ${String(sum('unknown')).padStart(5)}${rejected ? `  (tcpdump rejects it on ${rejected} files)` : ''}`);
  }
  t.diagnostic(`${rows.filter((r) => !r.rejected).length} filter x file runs, ${decided} of ${total} flow verdicts decided`);
  // Per file, for two everyday filters: true/false/unknown flows (- when tcpdump rejects the filter there).
  for (const f of files) {
    const cell = (template: string): string => {
      const r = rows.find((x) => x.file === f.name && x.filter === template);
      return !r || r.rejected ? '-' : `${r.verdicts.true}/${r.verdicts.false}/${r.verdicts.unknown}`;
    };
    t.diagnostic(`${f.name.padEnd(28)} host {v4a}: ${cell('host {v4a}').padEnd(12)} port {port}: ${cell('port {port}').padEnd(12)} tcp: ${cell('tcp')}`);
  }
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length} unsound verdicts`);

  // Usefulness: on plain Ethernet traffic, host and port filters decide nearly every flow.
  for (const name of ['android.pcap', 'anyconnect-vpn.pcap', 'WebattackRCE.pcap', 'quic-mvfst-exp.pcap']) {
    for (const template of ['host {v4a}', 'port {port}', 'not (host {v4a} or host {v4b})']) {
      const r = rows.find((x) => x.file === name && x.filter === template);
      assert.ok(r && !r.rejected);
      const all = r.verdicts.true + r.verdicts.false + r.verdicts.unknown;
      assert.ok(r.verdicts.unknown <= all * 0.1, `${name} '${template}': ${r.verdicts.unknown} of ${all} flows unknown`);
    }
  }
});
