// Three-valued evaluation of a filter expression (extract/expression.ts) on
// the flows of an index, so that extraction can skip flows, and whole files,
// for which libpcap would certainly reject every packet.
//
// The rule: 'false' only if libpcap rejects EVERY packet of the flow, 'true'
// only if it accepts every one, otherwise 'unknown'. A wrong 'false' loses
// packets; 'unknown' only costs reading them.
//
// How a flow is judged. All packets of an index flow share the fields the
// index keeps (flags, ethertype, VLAN, protocol, addresses, ports and MACs);
// they differ only in direction, A->B or B->A. So the expression is evaluated
// twice, once per direction, with Kleene logic on the leaves, and the flow's
// verdict is the common value of the two ('unknown' if they differ).
//
// Why a decided leaf is exact: each leaf mirrors the BPF code libpcap 1.10
// generates for it (checked with tcpdump -d) and reads only fields the native
// parser (native/parse.cc) saw at the same offsets libpcap loads from:
//  - the link layer's protocol value: Ethernet type at offset 12 when the
//    frame carries no VLAN tag (a tagged frame shows libpcap 0x8100/0x88a8/
//    0x9100 there, so `ip`, `host`, `port`... are false on it unless the
//    filter says `vlan`, and `vlan` makes the whole filter unknown), the SLL
//    and SLL2 protocol field, the version nibble on raw IP;
//  - the outer IPv4 header only when META_PLAIN says it sits right after
//    that link header; the IPv6 addresses likewise, and the IPv6 next header
//    only when PLAIN says no extension header came before the transport;
//  - ports only with META_PORTS, i.e. the frame holds them.
// BSD null/loop framing, other link types and anything unusual are 'unknown'.
//
// 'false' is robust to truncated packets: a load past the captured bytes makes
// libpcap reject the packet, which only adds rejections. 'true' is not, since
// the filter might read bytes a short packet lacks; so 'true' is given only
// when every leaf of the expression was decided for the flow (a decided leaf
// reads only bytes the index proves present).
import { Dir, ETHERTYPE_ARP, ETHERTYPE_IP, ETHERTYPE_IPV6, ETHERTYPE_RARP, Expr, Leaf, leaves } from './expression';
import type { FlowColumns, FlowView, SegmentDictionaries, SegmentFlows } from '../recorder/index-file';
import { META_FRAGMENT, META_IPV4, META_IPV6, META_MAC, META_PLAIN, META_PORTS, META_VLAN } from '../recorder/packet-meta';

export type Tri = 'true' | 'false' | 'unknown';

const LINKTYPE_NULL = 0;
const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW_OLD = 12; // DLT_RAW on Linux; tcpdump reads it as raw IP
const LINKTYPE_RAW = 101;
const LINKTYPE_LOOP = 108;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_IPV4 = 228;
const LINKTYPE_IPV6 = 229;
const LINKTYPE_LINUX_SLL2 = 276;

/** Stand-in for a tag's TPID at the Ethernet type offset: equal to none of the values a leaf compares with. */
const TAGGED = -1;

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_SCTP = 132;
const IPPROTO_FRAGMENT = 44;

/** What libpcap would see in every packet of a flow, as far as the index can tell. */
interface Facts {
  /** The value libpcap's link-type test compares (ethertype-like), or undefined when not certain. */
  llProto: number | undefined;
  /** The outer IPv4 header is where libpcap reads it: addresses, protocol and fragment offset are exact. */
  v4: boolean;
  /** The IPv6 addresses are where libpcap reads them. */
  v6: boolean;
  /** IPv4 protocol, or the IPv6 fixed header's next header (plain IPv6 only). */
  proto: number | undefined;
  /** IPv4 fragment with a non-zero offset. */
  fragment: boolean;
  ports: boolean;
  macs: boolean;
  /** Endpoint A then B: IPv4 as a number, IPv6 bytes, port, MAC as a number. */
  ip4: [number, number];
  ip6: [Uint8Array | undefined, Uint8Array | undefined];
  port: [number, number];
  mac: [number | undefined, number | undefined];
}

/** A MAC as a 48-bit number (exact in a double), from the index's text or the filter's bytes. */
function macNumber(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const hex = s.replace(/:/g, '');
  return /^[0-9a-fA-F]{12}$/.test(hex) ? parseInt(hex, 16) : undefined;
}
const macOf = (b: Uint8Array): number => b.reduce((v, x) => v * 256 + x, 0);

/**
 * The facts shared by every flow of one class (flags, ethertype, IP
 * protocol) in a file of this linktype, with the endpoint values zeroed:
 * the caller fills those in per flow. `addrLength` is the byte length of
 * both endpoint addresses (undefined when they differ or are absent).
 */
function classFacts(linktype: number, flags: number, ethertype: number, ipproto: number, addrLength: number | undefined, hasPorts: boolean): Facts {
  const fl = flags;
  let ll: number | undefined;
  switch (linktype) {
    case LINKTYPE_ETHERNET:
      // MAC: the frame holds the 14-byte header. Untagged, the flow's ethertype is the type field itself.
      if (fl & META_MAC) ll = fl & META_VLAN ? TAGGED : ethertype;
      break;
    case LINKTYPE_LINUX_SLL:
    case LINKTYPE_LINUX_SLL2:
      // Set from the protocol field when the header is complete; 0 also stands for "too short".
      if (ethertype !== 0) ll = ethertype;
      break;
    case LINKTYPE_RAW:
    case LINKTYPE_RAW_OLD:
      // libpcap tests the version nibble, which the parser checked.
      if (fl & META_IPV4) ll = ETHERTYPE_IP;
      else if (fl & META_IPV6) ll = ETHERTYPE_IPV6;
      break;
    case LINKTYPE_IPV4:
      // Every packet is IPv4 to libpcap; one that parsed as IPv6 is left unknown.
      if (fl & META_IPV4) ll = ETHERTYPE_IP;
      break;
    case LINKTYPE_IPV6:
      if (fl & META_IPV6) ll = ETHERTYPE_IPV6;
      break;
    case LINKTYPE_NULL:
    case LINKTYPE_LOOP:
    default:
      break; // the family field differs between systems; never decided
  }
  const v4 = ll === ETHERTYPE_IP && (fl & META_IPV4) !== 0 && (fl & META_PLAIN) !== 0 && addrLength === 4;
  const v6 = ll === ETHERTYPE_IPV6 && (fl & META_IPV6) !== 0 && addrLength === 16;
  const plain6 = v6 && (fl & META_PLAIN) !== 0;
  return {
    llProto: ll,
    v4,
    v6,
    proto: v4 || plain6 ? ipproto : undefined,
    fragment: (fl & META_FRAGMENT) !== 0,
    ports: (fl & META_PORTS) !== 0 && hasPorts,
    // The MAC flag means the index holds both MACs; the caller reads them only when a filter tests them.
    macs: linktype === LINKTYPE_ETHERNET && (fl & META_MAC) !== 0,
    ip4: [0, 0],
    ip6: [undefined, undefined],
    port: [0, 0],
    mac: [undefined, undefined],
  };
}

const ip4Of = (b: Uint8Array): number => ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;

function facts(flow: FlowView, linktype: number, needMacs: boolean): Facts {
  // Each view field is decoded on access: read the addresses once.
  const addrA = flow.addrABytes;
  const addrB = flow.addrBBytes;
  const addrLength = addrA?.length === addrB?.length ? addrA?.length : undefined;
  const f = classFacts(linktype, flow.flags, flow.ethertype, flow.ipproto, addrLength, flow.portA !== undefined && flow.portB !== undefined);
  if (f.v4) f.ip4 = [ip4Of(addrA!), ip4Of(addrB!)];
  if (f.v6) f.ip6 = [addrA, addrB];
  f.port = [flow.portA ?? 0, flow.portB ?? 0];
  if (needMacs) f.mac = [macNumber(flow.macA), macNumber(flow.macB)];
  return f;
}

const T: Tri = 'true';
const F: Tri = 'false';
const U: Tri = 'unknown';
const tri = (b: boolean): Tri => (b ? T : F);

function and(a: Tri, b: Tri): Tri {
  if (a === F || b === F) return F;
  return a === T && b === T ? T : U;
}
function or(a: Tri, b: Tri): Tri {
  if (a === T || b === T) return T;
  return a === F && b === F ? F : U;
}
function not(a: Tri): Tri {
  return a === T ? F : a === F ? T : U;
}

/** The packet's source is endpoint `s` (0 = A, 1 = B), its destination the other. */
function direction(dir: Dir, s: number, test: (endpoint: number) => boolean): boolean {
  switch (dir) {
    case 'src': return test(s);
    case 'dst': return test(1 - s);
    case 'either': return test(s) || test(1 - s);
    case 'both': return test(s) && test(1 - s);
  }
}

const inNet4 = (e: Leaf & { kind: 'ipv4' }, addr: number): boolean => ((addr & e.mask) >>> 0) === e.addr;

function sameMasked6(a: Uint8Array | undefined, want: Uint8Array, prefix: number): boolean {
  if (!a) return false;
  for (let b = 0; b < 16; b++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * b));
    const m = (0xff << (8 - bits)) & 0xff;
    if ((a[b] & m) !== want[b]) return false;
  }
  return true;
}

/**
 * A leaf's value for every flow of a class (the facts without endpoint
 * values), or 'endpoints' when it depends on the flow's addresses, ports or
 * MACs, which the facts then hold exactly.
 */
function classLeaf(e: Leaf, f: Facts): Tri | 'endpoints' {
  const ll = f.llProto;
  switch (e.kind) {
    case 'all':
      return T;
    case 'unknown':
      return U;
    case 'link':
      return ll === undefined ? U : tri(ll === e.ethertype);
    case 'ipv4': {
      // libpcap: `host`/`net` test IPv4, ARP and RARP addresses; `ip host` IPv4 only.
      if (ll === undefined) return U;
      const arpLike = ll === ETHERTYPE_ARP || ll === ETHERTYPE_RARP;
      const wanted =
        e.proto === 'any' ? ll === ETHERTYPE_IP || arpLike
        : e.proto === 'ip' ? ll === ETHERTYPE_IP
        : e.proto === 'arp' ? ll === ETHERTYPE_ARP
        : ll === ETHERTYPE_RARP;
      if (!wanted) return F;
      if (arpLike || !f.v4) return U; // ARP addresses are not in the index
      return 'endpoints';
    }
    case 'ipv6':
      if (ll === undefined) return U;
      if (ll !== ETHERTYPE_IPV6) return F;
      return f.v6 ? 'endpoints' : U;
    case 'mac':
      return f.macs ? 'endpoints' : U;
    case 'port': {
      // libpcap: (IPv4, protocol in the set, fragment offset 0, port) or (IPv6, fixed next header in the set, port).
      if (ll === undefined) return U;
      if (ll !== ETHERTYPE_IP && ll !== ETHERTYPE_IPV6) return F;
      if (f.proto === undefined) return U;
      const p = f.proto;
      const inSet = e.proto === 'tcp' ? p === IPPROTO_TCP : e.proto === 'udp' ? p === IPPROTO_UDP
        : e.proto === 'sctp' ? p === IPPROTO_SCTP : p === IPPROTO_TCP || p === IPPROTO_UDP || p === IPPROTO_SCTP;
      if (!inSet) return F;
      if (ll === ETHERTYPE_IP && f.fragment) return F;
      return f.ports ? 'endpoints' : U; // without ports the header is cut short: libpcap's load fails
    }
    case 'proto': {
      const v4 = (): Tri => (ll === undefined ? U : ll !== ETHERTYPE_IP ? F : f.v4 ? tri(f.proto === e.proto) : U);
      const v6 = (): Tri => {
        if (ll === undefined) return U;
        if (ll !== ETHERTYPE_IPV6) return F;
        // libpcap also looks behind a fragment header (next header 44); a plain
        // flow has one only when the packet was too short to follow it.
        if (f.proto === undefined || f.proto === IPPROTO_FRAGMENT) return U;
        return tri(f.proto === e.proto);
      };
      return e.layer === 'ip' ? v4() : e.layer === 'ip6' ? v6() : or(v4(), v6());
    }
  }
}

/** A leaf that classLeaf() left to the endpoints, for packets whose source is endpoint `s` (0 = A, 1 = B). */
function endpointLeaf(e: Leaf, f: Facts, s: number): Tri {
  switch (e.kind) {
    case 'ipv4':
      return tri(direction(e.dir, s, (k) => inNet4(e, f.ip4[k])));
    case 'ipv6':
      return tri(direction(e.dir, s, (k) => sameMasked6(f.ip6[k], e.addr, e.prefix)));
    case 'mac': {
      if (f.mac[0] === undefined || f.mac[1] === undefined) return U;
      const want = macOf(e.addr);
      return tri(direction(e.dir, s, (k) => f.mac[k] === want));
    }
    case 'port':
      return tri(direction(e.dir, s, (k) => f.port[k] >= e.low && f.port[k] <= e.high));
    default:
      return U; // classLeaf() decides every other leaf
  }
}

/**
 * One leaf for packets whose source is endpoint `s`; with `s` undefined, for
 * every flow of the class, endpoint values unknown.
 */
function leaf(e: Leaf, f: Facts, s: number | undefined): Tri {
  const v = classLeaf(e, f);
  if (v !== 'endpoints') return v;
  return s === undefined ? U : endpointLeaf(e, f, s);
}

function evaluate(e: Expr, f: Facts, s: number | undefined, seen: { unknown: boolean }): Tri {
  switch (e.kind) {
    case 'and':
      return and(evaluate(e.left, f, s, seen), evaluate(e.right, f, s, seen));
    case 'or':
      return or(evaluate(e.left, f, s, seen), evaluate(e.right, f, s, seen));
    case 'not':
      return not(evaluate(e.operand, f, s, seen));
    default: {
      const v = leaf(e, f, s);
      if (v === U) seen.unknown = true;
      return v;
    }
  }
}

/** Whether an expression tests MACs (parsing them per flow is the costliest part of facts()). */
const macUse = new WeakMap<Expr, boolean>();
function testsMacs(expr: Expr): boolean {
  let needMacs = macUse.get(expr);
  if (needMacs === undefined) macUse.set(expr, (needMacs = leaves(expr).some((l) => l.kind === 'mac')));
  return needMacs;
}

/** The verdict over both directions of a flow: their common value, and 'true' only when every leaf was decided. */
function verdict(expr: Expr, f: Facts): Tri {
  const seen = { unknown: false };
  const ab = evaluate(expr, f, 0, seen);
  if (ab === U) return U;
  const ba = evaluate(expr, f, 1, seen);
  if (ab !== ba) return U;
  return ab === T && seen.unknown ? U : ab;
}

/** The verdict for every packet of `flow` in a file of this linktype (the index header's). */
export function planFlow(expr: Expr, flow: FlowView, linktype: number): Tri {
  return verdict(expr, facts(flow, linktype, testsMacs(expr)));
}

/**
 * The verdict on flow j of a segment's columns: planFlow without building a
 * FlowView. The facts of each class are made once (the returned function
 * keeps them) and only the endpoint values are set per flow.
 */
export function columnPlanner(expr: Expr, cols: FlowColumns, linktype: number): (j: number) => Tri {
  const needMacs = testsMacs(expr);
  const byClass = segmentClassFacts(cols, linktype);
  const { ipv4, ipv6, macPairs } = cols;
  const mac = (at: number): number => macOf(macPairs.subarray(at, at + 6));
  return (j) => {
    const c = cols.flowClass[j]!;
    const flags = cols.classFlags[c]!;
    const f = byClass[c]!;
    const a = cols.addrA[j]!, b = cols.addrB[j]!;
    if (f.v4) {
      f.ip4[0] = ipv4[a]!;
      f.ip4[1] = ipv4[b]!;
    } else if (f.v6) {
      f.ip6[0] = ipv6.subarray(16 * a, 16 * a + 16);
      f.ip6[1] = ipv6.subarray(16 * b, 16 * b + 16);
    }
    // As FlowView: a flow without the PORTS flag has no ports (and 0 stands in).
    const ports = (flags & META_PORTS) !== 0;
    f.port[0] = ports ? cols.portA[j]! : 0;
    f.port[1] = ports ? cols.portB[j]! : 0;
    if (needMacs && f.macs) {
      f.mac[0] = mac(12 * cols.mac[j]!);
      f.mac[1] = mac(12 * cols.mac[j]! + 6);
    }
    return verdict(expr, f);
  };
}

/** The facts of each flow class of a segment, endpoint values zeroed. */
function segmentClassFacts(seg: SegmentDictionaries, linktype: number): Facts[] {
  return Array.from(seg.classFlags, (flags, c) => {
    const addrLength = flags & META_IPV4 ? 4 : flags & META_IPV6 ? 16 : undefined;
    return classFacts(linktype, flags, seg.classEther[c]!, seg.classProto[c]!, addrLength, true);
  });
}

/** Flows of a segment (increasing, distinct), or all of them. */
type Flows = Uint32Array | 'all';
const NONE = new Uint32Array(0);

/** Sorted distinct lists: their union, or their intersection. */
function merge(a: Uint32Array, b: Uint32Array, union: boolean): Uint32Array {
  const out = new Uint32Array(union ? a.length + b.length : Math.min(a.length, b.length));
  let i = 0, j = 0, n = 0;
  while (i < a.length && j < b.length) {
    if (a[i]! === b[j]!) {
      out[n++] = a[i++]!;
      j++;
    } else if (a[i]! < b[j]!) {
      if (union) out[n++] = a[i]!;
      i++;
    } else {
      if (union) out[n++] = b[j]!;
      j++;
    }
  }
  if (union) {
    while (i < a.length) out[n++] = a[i++]!;
    while (j < b.length) out[n++] = b[j++]!;
  }
  return out.subarray(0, n);
}

/**
 * The flows of a segment that planning must judge for `expr` (increasing),
 * or undefined for every flow: when the index has key tables, only those
 * that can make it anything but false, as the tables find them. Per flow class, the expression narrows
 * to a set of flows that holds every flow of the class for which it is not
 * certainly false: a host, net or port leaf that depends on the endpoints to
 * the flows the key table lists for it, a leaf false for the whole class to
 * none, any other leaf (and `not`, unless its operand is true for the whole
 * class) to the whole class; `and` intersects, `or` unites. What comes out is
 * a superset, and each of its flows is then judged by columnPlanner() like
 * any other; a file where the host is in no dictionary entry has none.
 */
export function flowsToJudge(expr: Expr, seg: SegmentFlows, linktype: number): Uint32Array | undefined {
  const { keys, dictionaries: dict } = seg;
  if (!keys) return undefined;
  const looked = new Map<Leaf, Flows>();
  const lookup = (e: Leaf): Flows => {
    let flows = looked.get(e);
    if (flows) return flows;
    switch (e.kind) {
      case 'ipv4':
        flows = keys.ipv4(e.addr, (e.addr | ~e.mask) >>> 0);
        break;
      case 'ipv6':
        flows = keys.ipv6((addr) => sameMasked6(addr, e.addr, e.prefix));
        break;
      case 'port':
        flows = keys.ports(e.low, e.high);
        break;
      default:
        flows = 'all'; // no key table for MACs
    }
    looked.set(e, flows);
    return flows;
  };
  const narrow = (e: Expr, f: Facts): Flows => {
    switch (e.kind) {
      case 'and': {
        const l = narrow(e.left, f), r = narrow(e.right, f);
        return l === 'all' ? r : r === 'all' ? l : merge(l, r, false);
      }
      case 'or': {
        const l = narrow(e.left, f), r = narrow(e.right, f);
        return l === 'all' || r === 'all' ? 'all' : merge(l, r, true);
      }
      case 'not':
        return evaluate(e.operand, f, undefined, { unknown: false }) === T ? NONE : 'all';
      default: {
        const v = classLeaf(e, f);
        return v === F ? NONE : v === 'endpoints' ? lookup(e) : 'all';
      }
    }
  };
  const whole = new Uint8Array(dict.classFlags.length);
  let flows: Uint32Array = NONE;
  let wholeClasses = 0;
  segmentClassFacts(dict, linktype).forEach((f, c) => {
    const n = narrow(expr, f);
    if (n !== 'all') flows = merge(flows, n, true);
    else {
      whole[c] = 1;
      wholeClasses++;
    }
  });
  if (wholeClasses === whole.length) return undefined;
  return wholeClasses ? merge(flows, keys.ofClasses(whole), true) : flows;
}

export interface PlanPart {
  text: string;
  /** The index can decide this primitive (on flows with plain headers). */
  decided: boolean;
  note: string;
}

export interface PlanDescription {
  parts: PlanPart[];
  /** Some flows can be skipped (false) using the index alone; if not, planning is pointless. */
  canSkip: boolean;
  /** Human-readable lines for --explain. */
  lines: string[];
}

const NOTES: Record<Exclude<Leaf['kind'], 'unknown'>, string> = {
  all: 'empty filter: every packet',
  link: 'link-layer protocol',
  ipv4: 'IPv4 address (ARP/RARP flows left to libpcap)',
  ipv6: 'IPv6 address',
  mac: 'Ethernet address (Ethernet link type only)',
  port: 'transport port',
  proto: 'IP protocol',
};

/** What the index can decide in `expr`, for --explain. */
export function describePlan(expr: Expr): PlanDescription {
  const parts = leaves(expr).map((l): PlanPart =>
    l.kind === 'unknown'
      ? { text: l.text, decided: false, note: `libpcap only: ${l.reason}` }
      : { text: l.kind === 'all' ? '(empty)' : l.text, decided: true, note: NOTES[l.kind] });
  // Could the expression come out 'false' with its decided leaves free and the others unknown?
  const reach = (e: Expr): { f: boolean; t: boolean } => {
    switch (e.kind) {
      case 'and': {
        const l = reach(e.left), r = reach(e.right);
        return { f: l.f || r.f, t: l.t && r.t };
      }
      case 'or': {
        const l = reach(e.left), r = reach(e.right);
        return { f: l.f && r.f, t: l.t || r.t };
      }
      case 'not': {
        const o = reach(e.operand);
        return { f: o.t, t: o.f };
      }
      case 'unknown':
        return { f: false, t: false };
      case 'all':
        return { f: false, t: true };
      default:
        return { f: true, t: true };
    }
  };
  const canSkip = reach(expr).f;
  const lines = [
    canSkip
      ? 'index: skips the flows for which the filter is certainly false; libpcap decides every packet read'
      : 'index: cannot rule out any flow for this filter; every packet in the time range is read and libpcap decides',
    ...parts.map((p) => `  ${p.decided ? 'index  ' : 'libpcap'}  ${p.text}  (${p.note})`),
  ];
  return { parts, canSkip, lines };
}
