// A parser for tcpdump filter expressions (pcap-filter(7)) that produces the
// small AST the planner evaluates on index flows. libpcap compiles the same
// text and decides every packet; this parser only has to agree with libpcap on
// the primitives it claims to understand. Everything else becomes an
// `unknown` leaf, and anything it cannot parse makes the whole expression one
// `unknown` leaf: it never rejects a filter, libpcap is the judge of validity.
//
// The lexer and the grammar follow libpcap 1.10's scanner.l and grammar.y so
// that tokens, precedence and qualifier inheritance come out the same:
//  - `and` and `or` have equal precedence and associate left to right; `not` binds tightest;
//  - a bare address after `and`/`or`/`not` inherits the qualifiers of the term
//    before it (`tcp port 80 or 443`), and after a parenthesised term it
//    inherits those in force BEFORE the parenthesis (`host a or (port 80) or 5`
//    means `... or host 0.0.0.5`);
//  - keywords are case-sensitive (`TCP` is a syntax error);
//  - numbers are C-like: `0x50` is hex, `010` is octal (8), `08` an error;
//  - a partial dotted address is a network: `host 1.2.3` is 1.2.3.0/24, `net 10` is 10.0.0.0/8, `host 10` is 0.0.0.10;
//  - `port NAME` is resolved in /etc/services like libpcap does: a name listed
//    only for tcp (`http` on Debian) means `tcp port 80`, not udp.
import fs from 'node:fs';

/** Which endpoints a primitive looks at. `either` is libpcap's default (`src or dst`), `both` is `src and dst`. */
export type Dir = 'src' | 'dst' | 'either' | 'both';

export type Expr =
  | { kind: 'and'; left: Expr; right: Expr }
  | { kind: 'or'; left: Expr; right: Expr }
  | { kind: 'not'; operand: Expr }
  | Leaf;

export type Leaf =
  /** The empty expression: tcpdump keeps every packet. */
  { kind: 'all' }
  /** `ip`, `ip6`, `arp`, `rarp`: the link layer's protocol field (or the version nibble on raw IP). */
  | { kind: 'link'; ethertype: number; text: string }
  /** IPv4 `host`/`net`: (address & mask) == addr. `any` is libpcap's default: IPv4, ARP and RARP addresses. */
  | { kind: 'ipv4'; proto: 'any' | 'ip' | 'arp' | 'rarp'; dir: Dir; addr: number; mask: number; text: string }
  /** IPv6 `host`/`net` (IPv6 only, whatever the qualifier). */
  | { kind: 'ipv6'; dir: Dir; addr: Uint8Array; prefix: number; text: string }
  /** `ether host|src|dst MAC`. */
  | { kind: 'mac'; dir: Dir; addr: Uint8Array; text: string }
  /** `port`/`portrange` over IPv4 and IPv6; `any` is tcp, udp and sctp. */
  | { kind: 'port'; proto: 'any' | 'tcp' | 'udp' | 'sctp'; dir: Dir; low: number; high: number; text: string }
  /** `proto N`, `ip proto N`, `ip6 proto N`, and `tcp`, `udp`, `icmp`... used alone. */
  | { kind: 'proto'; layer: 'any' | 'ip' | 'ip6'; proto: number; text: string }
  /** Anything the planner leaves to libpcap. */
  | { kind: 'unknown'; text: string; reason: string };

/** Service and protocol names, as libpcap resolves them (through the C library, i.e. /etc/services and /etc/protocols). */
export interface NameDb {
  /** Port of a service name, and which transport libpcap then tests ('any': tcp, udp and sctp). */
  port(name: string): { port: number; proto: 'tcp' | 'udp' | 'any' } | undefined;
  protocol(name: string): number | undefined;
}

export interface ParseOptions {
  names?: NameDb;
}

export const ETHERTYPE_IP = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_RARP = 0x8035;

/** Parses a filter; never throws. Unparsable text becomes a single `unknown` leaf. */
export function parseFilter(text: string, opts: ParseOptions = {}): Expr {
  const whole = (reason: string): Expr => ({ kind: 'unknown', text: text.trim(), reason });
  let toks: Tok[];
  try {
    toks = lex(text);
  } catch (e) {
    return whole(e instanceof LexError ? e.message : String(e));
  }
  if (toks.length === 0) return { kind: 'all' };
  // These shift the offsets every later primitive reads at (vlan, mpls, pppoes,
  // geneve, ...) or belong to link types the index never decides (ATM, MTP).
  for (const t of toks) {
    if (t.t === 'kw' && WHOLE_UNKNOWN.has(t.v)) return whole(`'${t.v}' changes how libpcap reads the rest of the expression`);
  }
  try {
    const r = new Parser(toks, text, opts.names ?? systemNames()).expr(0, QERR);
    if (r && r.end === toks.length) return r.node;
  } catch {
    // fall through: a parser defect must cost speed, never a wrong answer
  }
  return whole('not understood (libpcap decides)');
}

/** A compact prefix rendering, for tests and --explain: `(and (host 1.2.3.4) (not (tcp port 80)))`. */
export function formatExpr(e: Expr): string {
  switch (e.kind) {
    case 'and':
    case 'or':
      return `(${e.kind} ${formatExpr(e.left)} ${formatExpr(e.right)})`;
    case 'not':
      return `(not ${formatExpr(e.operand)})`;
    case 'all':
      return '(all)';
    case 'unknown':
      return `(? ${e.text})`;
    default:
      return `(${e.text})`;
  }
}

/** Every leaf, left to right. */
export function leaves(e: Expr): Leaf[] {
  if (e.kind === 'and' || e.kind === 'or') return [...leaves(e.left), ...leaves(e.right)];
  if (e.kind === 'not') return leaves(e.operand);
  return [e];
}

// ---------------------------------------------------------------- lexer

type Tok =
  | { t: 'kw'; v: string; at: number; end: number }
  | { t: 'num'; n: number; at: number; end: number }
  | { t: 'id' | 'hid' | 'hid6' | 'eid' | 'aid'; s: string; at: number; end: number }
  /** Operators and punctuation; `and`/`&&` are 'and', `or`/`||` 'or', `not`/`!` '!'. */
  | { t: 'op'; v: string; at: number; end: number };

/** A token before its position is known. */
type BareTok = Tok extends infer U ? (U extends Tok ? Omit<U, 'at' | 'end'> : never) : never;

class LexError extends Error {}

// scanner.l's keywords (libpcap 1.10 and later). A word that libpcap takes for
// a keyword but this list did not would be read as a name, which can only give
// an unknown leaf or a parse failure; listing extra words is equally harmless.
const KEYWORDS = new Set(`dst src link ether ppp slip fddi tr wlan arp rarp ip sctp tcp udp icmp igmp igrp pim vrrp
  carp radio ip6 icmp6 ah esp atalk aarp decnet lat sca moprc mopdl iso esis es-is isis is-is l1 l2 iih lsp snp
  csnp psnp clnp stp ipx netbeui host net mask port portrange proto protochain gateway type subtype direction dir
  address1 addr1 address2 addr2 address3 addr3 address4 addr4 ra ta less greater byte broadcast multicast and or
  not len length inbound outbound ifindex vlan mpls pppoed pppoes geneve vxlan batadv lane llc metac bcc oam oamf4
  oamf4ec oamf4sc sc ilmic vpi vci connectmsg metaconnect on ifname rset ruleset rnr rulenum srnr subrulenum reason
  action fisu lssu lsu msu hfisu hlssu hmsu sio opc dpc sls hsio hopc hdpc hsls`.split(/\s+/));

const WHOLE_UNKNOWN = new Set(`vlan mpls pppoes geneve vxlan batadv lane metac bcc oam oamf4 oamf4ec oamf4sc sc
  ilmic vpi vci connectmsg metaconnect fisu lssu lsu msu hfisu hlssu hmsu sio opc dpc sls hsio hopc hdpc hsls`.split(/\s+/));

// Names the scanner turns into numbers (only ever useful inside byte-offset expressions).
const NAMED_NUMBERS: ReadonlyMap<string, number> = new Map([
  ['icmptype', 0], ['icmpcode', 1], ['icmp-echoreply', 0], ['icmp-unreach', 3], ['icmp-sourcequench', 4],
  ['icmp-redirect', 5], ['icmp-echo', 8], ['icmp-routeradvert', 9], ['icmp-routersolicit', 10], ['icmp-timxceed', 11],
  ['icmp-paramprob', 12], ['icmp-tstamp', 13], ['icmp-tstampreply', 14], ['icmp-ireq', 15], ['icmp-ireqreply', 16],
  ['icmp-maskreq', 17], ['icmp-maskreply', 18], ['icmp6type', 0], ['icmp6code', 1], ['icmp6-destinationunreach', 1],
  ['icmp6-packettoobig', 2], ['icmp6-timeexceeded', 3], ['icmp6-parameterproblem', 4], ['icmp6-echo', 128],
  ['icmp6-echoreply', 129], ['icmp6-multicastlistenerquery', 130], ['icmp6-multicastlistenerreportv1', 131],
  ['icmp6-multicastlistenerdone', 132], ['icmp6-routersolicit', 133], ['icmp6-routeradvert', 134],
  ['icmp6-neighborsolicit', 135], ['icmp6-neighboradvert', 136], ['icmp6-redirect', 137], ['icmp6-routerrenum', 138],
  ['icmp6-nodeinformationquery', 139], ['icmp6-nodeinformationresponse', 140],
  ['icmp6-ineighbordiscoverysolicit', 141], ['icmp6-ineighbordiscoveryadvert', 142],
  ['icmp6-multicastlistenerreportv2', 143], ['icmp6-homeagentdiscoveryrequest', 144],
  ['icmp6-homeagentdiscoveryreply', 145], ['icmp6-mobileprefixsolicit', 146], ['icmp6-mobileprefixadvert', 147],
  ['icmp6-certpathsolicit', 148], ['icmp6-certpathadvert', 149], ['icmp6-multicastrouteradvert', 151],
  ['icmp6-multicastroutersolicit', 152], ['icmp6-multicastrouterterm', 153], ['tcpflags', 13], ['tcp-fin', 0x01],
  ['tcp-syn', 0x02], ['tcp-rst', 0x04], ['tcp-push', 0x08], ['tcp-ack', 0x10], ['tcp-urg', 0x20], ['tcp-ece', 0x40],
  ['tcp-cwr', 0x80],
]);

const N = '(?:0[xX][0-9A-Fa-f]+|[0-9]+)';
const B = '[0-9A-Fa-f]{1,2}';
const B2 = '[0-9A-Fa-f]{4}';
const sticky = (src: string): RegExp => new RegExp(src, 'y');
const RE_N = sticky(N);
const RE_HID = [4, 3, 2].map((k) => sticky(Array(k).fill(N).join('\\.')));
const RE_MAC = [
  `${B}:${B}:${B}:${B}:${B}:${B}`, `${B}-${B}-${B}-${B}-${B}-${B}`, `${B}\\.${B}\\.${B}\\.${B}\\.${B}\\.${B}`,
  `${B2}\\.${B2}\\.${B2}`, `(?:${B2}){3}`,
].map(sticky);
const RE_BOGUS_MAC = sticky(`${B}:+(?:${B}:+)+`);
const RE_AID = sticky(`\\$${B}`);
const RE_ID = sticky('[A-Za-z0-9](?:[-_.A-Za-z0-9]*[.A-Za-z0-9])?');
const RE_ESCAPED = sticky('\\\\[^ !()\\n\\t]+');
const RE_V6_CHARS = sticky('[0-9A-Fa-fxX:.]+');
const SINGLE = '+-*/%:[]!<>()&|^=';
const DOUBLE: ReadonlyMap<string, string> = new Map([['>=', '>='], ['<=', '<='], ['!=', '!='], ['==', '='], ['<<', '<<'], ['>>', '>>']]);

const matchLen = (re: RegExp, s: string, at: number): number => {
  re.lastIndex = at;
  const m = re.exec(s);
  return m ? m[0].length : 0;
};

/**
 * The scanner's V6 patterns (8 groups, or fewer around one `::`, optionally
 * ending in a dotted quad) as 8 group values; null when the text is not one.
 * Dotted quads are decimal without leading zeros, as getaddrinfo() wants them.
 */
function ipv6Groups(s: string): number[] | null {
  let head = s;
  const tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (lastColon < 0) return null;
  if (s.indexOf('.', lastColon) >= 0) {
    const quad = s.slice(lastColon + 1).split('.');
    if (quad.length !== 4 || !quad.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) return null;
    const v = quad.map(Number);
    tail.push((v[0] << 8) | v[1], (v[2] << 8) | v[3]);
    head = s.slice(0, lastColon + 1);
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const groups = (h: string): number[] | null => {
    if (h === '') return [];
    const g = h.split(':');
    return g.every((x) => /^[0-9A-Fa-f]{1,4}$/.test(x)) ? g.map((x) => parseInt(x, 16)) : null;
  };
  const left = groups(halves[0]);
  const right = halves.length === 2 ? groups(halves[1]) : [];
  if (!left || !right) return null;
  const fixed = left.length + right.length + tail.length;
  if (halves.length === 1) return fixed === 8 ? [...left, ...tail] : null;
  return fixed <= 7 ? [...left, ...new Array<number>(8 - fixed).fill(0), ...right, ...tail] : null;
}

/** An IPv6 literal as 16 bytes, or null. */
export function parseIpv6(s: string): Uint8Array | null {
  const g = ipv6Groups(s);
  if (!g) return null;
  const out = new Uint8Array(16);
  g.forEach((v, k) => {
    out[2 * k] = v >> 8;
    out[2 * k + 1] = v & 0xff;
  });
  return out;
}

/** Splits like flex: the longest match wins, ties go to the rule listed first in scanner.l. */
function lex(src: string): Tok[] {
  const out: Tok[] = [];
  for (let i = 0; i < src.length;) {
    const c = src[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    // [rule rank, length, token factory]
    let best: [number, number, () => Tok] = [99, 0, () => {
      throw new LexError(`unexpected character '${c}'`);
    }];
    const offer = (rank: number, len: number, make: (text: string) => Tok): void => {
      if (len > best[1] || (len === best[1] && len > 0 && rank < best[0])) {
        best = [rank, len, () => make(src.slice(i, i + len))];
      }
    };
    const tok = (t: BareTok, len: number): Tok => ({ ...t, at: i, end: i + len });
    let kwLen = 0;
    for (const k of KEYWORDS) if (k.length > kwLen && src.startsWith(k, i)) kwLen = k.length;
    if (src.startsWith('&&', i) || src.startsWith('||', i)) kwLen = Math.max(kwLen, 2);
    offer(0, kwLen, (w) => {
      if (w === 'and' || w === '&&') return tok({ t: 'op', v: 'and' }, w.length);
      if (w === 'or' || w === '||') return tok({ t: 'op', v: 'or' }, w.length);
      if (w === 'not') return tok({ t: 'op', v: '!' }, w.length);
      return tok({ t: 'kw', v: w === 'length' ? 'len' : w }, w.length);
    });
    if (SINGLE.includes(c)) offer(2, 1, (w) => tok({ t: 'op', v: w }, 1));
    const two = DOUBLE.get(src.slice(i, i + 2));
    if (two) offer(3, 2, () => tok({ t: 'op', v: two }, 2));
    offer(4, matchLen(RE_AID, src, i), (w) => tok({ t: 'aid', s: w }, w.length));
    offer(5, Math.max(...RE_MAC.map((re) => matchLen(re, src, i))), (w) => tok({ t: 'eid', s: w }, w.length));
    offer(6, matchLen(RE_N, src, i), (w) => tok({ t: 'num', n: cNumber(w) }, w.length));
    offer(7, Math.max(...RE_HID.map((re) => matchLen(re, src, i))), (w) => tok({ t: 'hid', s: w }, w.length));
    const run = matchLen(RE_V6_CHARS, src, i);
    for (let len = run; len > 1; len--) {
      if (ipv6Groups(src.slice(i, i + len))) {
        offer(8, len, (w) => tok({ t: 'hid6', s: w }, w.length));
        break;
      }
    }
    offer(9, matchLen(RE_BOGUS_MAC, src, i), (w) => {
      throw new LexError(`bogus ethernet address ${w}`);
    });
    let nameLen = 0;
    for (const k of NAMED_NUMBERS.keys()) if (k.length > nameLen && src.startsWith(k, i)) nameLen = k.length;
    offer(10, nameLen, (w) => tok({ t: 'num', n: NAMED_NUMBERS.get(w) ?? 0 }, w.length));
    offer(11, matchLen(RE_ID, src, i), (w) => tok({ t: 'id', s: w }, w.length));
    offer(12, matchLen(RE_ESCAPED, src, i), (w) => tok({ t: 'id', s: w.slice(1) }, w.length));
    const t = best[2]();
    out.push(t);
    i += best[1];
  }
  return out;
}

/** libpcap's stoulen(): 0x... hex, 0... octal, else decimal; 32 bits. */
function cNumber(s: string): number {
  let v: number;
  if (/^0[xX]/.test(s)) v = parseInt(s.slice(2), 16);
  else if (s.length > 1 && s[0] === '0') {
    if (!/^[0-7]+$/.test(s)) throw new LexError(`number ${s} contains non-octal digit`);
    v = parseInt(s, 8);
  } else v = parseInt(s, 10);
  if (!(v <= 0xffffffff)) throw new LexError(`number ${s} overflows 32 bits`);
  return v;
}

// ---------------------------------------------------------------- parser

/** A qualifier set (grammar.y's `struct qual`); null is `qerr`, after which a bare address is an error. */
interface Qual {
  proto: string; // 'default' or a protocol keyword ('link' for ether/fddi/...)
  dir: string; // 'default', 'src', 'dst', 'or', 'and', or an 802.11 address qualifier
  addr: string; // 'default', 'host', 'net', 'port', 'portrange', 'proto', 'protochain', 'gateway'
}
const QERR: Qual | null = null;

interface Res {
  node: Expr;
  /** The qualifiers a following bare address inherits. */
  q: Qual | null;
  end: number;
}

const LINK_WORDS = new Set(['link', 'ether', 'ppp', 'slip', 'fddi', 'tr', 'wlan']);
const PNAMES = new Set(`ip arp rarp sctp tcp udp icmp igmp igrp pim vrrp carp atalk aarp decnet lat sca moprc mopdl
  ip6 icmp6 ah esp iso esis es-is isis is-is l1 l2 iih lsp snp psnp csnp clnp stp ipx netbeui radio`.split(/\s+/));
const DIR_WORDS = new Set(['addr1', 'address1', 'addr2', 'address2', 'addr3', 'address3', 'addr4', 'address4', 'ra', 'ta']);
const DIRS: ReadonlyMap<string, Dir> = new Map<string, Dir>([
  ['default', 'either'], ['or', 'either'], ['and', 'both'], ['src', 'src'], ['dst', 'dst'],
]);
const AQUALS = new Set(['host', 'net', 'port', 'portrange']);
const RELOPS = new Set(['>', '>=', '=', '<', '<=', '!=']);
const BINOPS = new Set(['+', '-', '*', '/', '%', '&', '|', '^', '<<', '>>']);

/** gen_proto_abbrev() for the protocols the planner decides (as checked with tcpdump -d). */
function abbrev(w: string): Leaf | undefined {
  const link = (ethertype: number): Leaf => ({ kind: 'link', ethertype, text: w });
  const proto = (layer: 'any' | 'ip' | 'ip6', p: number): Leaf => ({ kind: 'proto', layer, proto: p, text: w });
  switch (w) {
    case 'ip': return link(ETHERTYPE_IP);
    case 'ip6': return link(ETHERTYPE_IPV6);
    case 'arp': return link(ETHERTYPE_ARP);
    case 'rarp': return link(ETHERTYPE_RARP);
    case 'tcp': return proto('any', 6);
    case 'udp': return proto('any', 17);
    case 'sctp': return proto('any', 132);
    case 'icmp': return proto('ip', 1);
    case 'igmp': return proto('ip', 2);
    case 'icmp6': return proto('ip6', 58);
    default: return undefined;
  }
}

/**
 * Recursive descent over grammar.y with backtracking where yacc's lookahead
 * decides (after `and`/`or` a term and a bare address can both start with `(`
 * or `not`); results are memoised per (rule, position, qualifiers) so nested
 * parentheses cost linear time.
 */
class Parser {
  private readonly memo = new Map<string, Res | null>();

  constructor(private readonly toks: Tok[], private readonly src: string, private readonly names: NameDb) {}

  private op(i: number, v: string): boolean {
    const t = this.toks[i];
    return t !== undefined && t.t === 'op' && t.v === v;
  }

  private kw(i: number): string | undefined {
    const t = this.toks[i];
    return t !== undefined && t.t === 'kw' ? t.v : undefined;
  }

  private num(i: number): boolean {
    return this.toks[i]?.t === 'num';
  }

  private text(from: number, to: number): string {
    return this.src.slice(this.toks[from].at, this.toks[to - 1].end);
  }

  private cached(rule: string, i: number, q: Qual | null, f: () => Res | null): Res | null {
    const key = `${rule}:${i}:${q ? `${q.proto}/${q.dir}/${q.addr}` : '-'}`;
    if (this.memo.has(key)) return this.memo.get(key) ?? null;
    const r = f();
    this.memo.set(key, r);
    return r;
  }

  /** expr: term | expr and term | expr and id | expr or term | expr or id */
  expr(i: number, q: Qual | null): Res | null {
    return this.cached('expr', i, q, () => {
      let r = this.term(i, q);
      while (r && (this.op(r.end, 'and') || this.op(r.end, 'or'))) {
        const kind = this.op(r.end, 'and') ? 'and' : 'or';
        const next = this.term(r.end + 1, r.q) ?? this.id(r.end + 1, r.q);
        if (!next) return null;
        r = { node: { kind, left: r.node, right: next.node }, q: next.q, end: next.end };
      }
      return r;
    });
  }

  /** term: not term | rterm */
  private term(i: number, q: Qual | null): Res | null {
    return this.cached('term', i, q, () => {
      if (this.op(i, '!')) {
        const t = this.term(i + 1, q);
        return t && { node: { kind: 'not', operand: t.node }, q: t.q, end: t.end };
      }
      const rel = this.relation(i);
      if (rel !== null) return { node: this.unknown(i, rel, 'byte offsets and arithmetic'), q: QERR, end: rel };
      if (this.op(i, '(')) {
        // `paren expr ')'`: the term's qualifiers are those before the parenthesis.
        const e = this.expr(i + 1, q);
        if (e && this.op(e.end, ')')) return { node: e.node, q, end: e.end + 1 };
      }
      const other = this.other(i);
      if (other) return other;
      const head = this.head(i);
      if (head) {
        const r = this.id(head.end, head.q);
        return r && { node: r.node, q: head.q, end: r.end };
      }
      const w = this.kw(i);
      if (w !== undefined && (PNAMES.has(w) || LINK_WORDS.has(w))) {
        const node = abbrev(w) ?? this.unknown(i, i + 1, `protocol '${w}'`);
        return { node, q: QERR, end: i + 1 };
      }
      return null;
    });
  }

  /** head: pqual dqual aqual | pqual dqual | pqual aqual | pqual PROTO | pqual PROTOCHAIN | pqual GATEWAY */
  private head(i: number): { q: Qual; end: number } | null {
    let j = i;
    let proto = 'default';
    const p = this.kw(j);
    if (p !== undefined && (PNAMES.has(p) || LINK_WORDS.has(p))) {
      proto = LINK_WORDS.has(p) ? 'link' : p;
      j++;
    }
    let dir = 'default';
    const d = this.kw(j);
    if (d === 'src' || d === 'dst') {
      const other = d === 'src' ? 'dst' : 'src';
      if (this.op(j + 1, 'or') || this.op(j + 1, 'and')) {
        // `src or dst` / `src and dst`; `src or <anything else>` is a syntax error in yacc too.
        if (this.kw(j + 2) !== other) return null;
        dir = this.op(j + 1, 'or') ? 'or' : 'and';
        j += 3;
      } else {
        dir = d;
        j++;
      }
    } else if (d !== undefined && DIR_WORDS.has(d)) {
      dir = d;
      j++;
    }
    const a = this.kw(j);
    if (a !== undefined && AQUALS.has(a)) return { q: { proto, dir, addr: a }, end: j + 1 };
    if (dir === 'default' && (a === 'proto' || a === 'protochain' || a === 'gateway')) {
      return { q: { proto, dir, addr: a }, end: j + 1 };
    }
    return dir === 'default' ? null : { q: { proto, dir, addr: 'default' }, end: j };
  }

  /** The `other` rule and friends: primitives the planner never decides. Returns null when none starts at i. */
  private other(i: number): Res | null {
    let j = i;
    const first = this.kw(j);
    if (first !== undefined && (PNAMES.has(first) || LINK_WORDS.has(first))) j++;
    const w = this.kw(j);
    const done = (end: number, why: string): Res => ({ node: this.unknown(i, end, why), q: QERR, end });
    const word = (k: number): boolean => this.toks[k]?.t === 'id' || this.num(k);
    switch (w) {
      case 'broadcast':
      case 'multicast':
        return done(j + 1, w);
      case 'type':
        if (!word(j + 1)) return null;
        if (this.kw(j + 2) === 'subtype' && word(j + 3)) return done(j + 4, '802.11 type');
        return done(j + 2, '802.11 type');
      case 'subtype':
      case 'dir':
      case 'direction':
        return word(j + 1) ? done(j + 2, '802.11 frame fields') : null;
    }
    if (j !== i) return null; // the rest take no protocol qualifier
    switch (w) {
      case 'less':
      case 'greater':
        return this.num(j + 1) ? done(j + 2, 'packet length') : null;
      case 'byte':
        return this.num(j + 1) && ['&', '|', '<', '>', '='].some((o) => this.op(j + 2, o)) && this.num(j + 3)
          ? done(j + 4, 'byte test')
          : null;
      case 'inbound':
      case 'outbound':
      case 'pppoed':
        return done(j + 1, w);
      case 'ifindex':
        return this.num(j + 1) ? done(j + 2, 'interface index') : null;
      case 'llc':
        if (this.toks[j + 1]?.t === 'id' || this.kw(j + 1) === 'rnr' || this.kw(j + 1) === 'rulenum') return done(j + 2, 'LLC');
        return done(j + 1, 'LLC');
      case 'on':
      case 'ifname':
      case 'rset':
      case 'ruleset':
      case 'action':
        return this.toks[j + 1]?.t === 'id' ? done(j + 2, 'pflog field') : null;
      case 'rnr':
      case 'rulenum':
      case 'srnr':
      case 'subrulenum':
        return this.num(j + 1) ? done(j + 2, 'pflog field') : null;
      case 'reason':
        return word(j + 1) ? done(j + 2, 'pflog field') : null;
      default:
        return null;
    }
  }

  /** `arth relop arth`; returns the end position, or null. Only its extent matters: it is always unknown. */
  private relation(i: number): number | null {
    const l = this.arth(i);
    if (l === null) return null;
    const t = this.toks[l];
    if (t === undefined || t.t !== 'op' || !RELOPS.has(t.v)) return null;
    return this.arth(l + 1);
  }

  private arth(i: number): number | null {
    let j = i;
    for (;;) {
      while (this.op(j, '-')) j++;
      const p = this.primary(j);
      if (p === null) return null;
      j = p;
      const t = this.toks[j];
      if (t === undefined || t.t !== 'op' || !BINOPS.has(t.v)) return j;
      j++;
    }
  }

  private primary(i: number): number | null {
    if (this.num(i) || this.kw(i) === 'len') return i + 1;
    if (this.op(i, '(')) {
      const a = this.arth(i + 1);
      return a !== null && this.op(a, ')') ? a + 1 : null;
    }
    const w = this.kw(i);
    if (w !== undefined && (PNAMES.has(w) || LINK_WORDS.has(w)) && this.op(i + 1, '[')) {
      const a = this.arth(i + 2);
      if (a === null) return null;
      if (this.op(a, ']')) return a + 1;
      if (this.op(a, ':') && this.num(a + 1) && this.op(a + 2, ']')) return a + 3;
    }
    return null;
  }

  /** id: nid | pnum | paren pid ')'; nid includes `not id`. Every part inherits q. */
  private id(i: number, q: Qual | null): Res | null {
    return this.cached('id', i, q, () => {
      if (q === null) return null; // a bare address after `tcp`, `len > 5`...: a syntax error for libpcap
      if (this.op(i, '!')) {
        const r = this.id(i + 1, q);
        return r && { node: { kind: 'not', operand: r.node }, q, end: r.end };
      }
      if (this.op(i, '(')) {
        // pid: a list of ids joined by and/or, all with the qualifiers before the parenthesis.
        let r = this.id(i + 1, q);
        while (r && (this.op(r.end, 'and') || this.op(r.end, 'or'))) {
          const kind = this.op(r.end, 'and') ? 'and' : 'or';
          const next = this.id(r.end + 1, q);
          if (!next) return null;
          r = { node: { kind, left: r.node, right: next.node }, q, end: next.end };
        }
        return r && this.op(r.end, ')') ? { node: r.node, q, end: r.end + 1 } : null;
      }
      const t = this.toks[i];
      if (t === undefined) return null;
      const leaf = (node: Expr | null, end: number): Res | null => node && { node, q, end };
      switch (t.t) {
        case 'num':
          return leaf(this.number(t.n, q, i), i + 1);
        case 'id':
          return leaf(this.name(t.s, q, i), i + 1);
        case 'hid': {
          if (this.op(i + 1, '/') && this.toks[i + 2]?.t === 'num') {
            const len = (this.toks[i + 2] as { n: number }).n;
            return leaf(this.masked4(t.s, len > 32 ? null : len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0, q, i, i + 3), i + 3);
          }
          if (this.kw(i + 1) === 'mask' && this.toks[i + 2]?.t === 'hid') {
            const m = dotted((this.toks[i + 2] as { s: string }).s);
            return leaf(this.masked4(t.s, m && m.value, q, i, i + 3), i + 3);
          }
          return leaf(this.dotted4(t.s, q, i), i + 1);
        }
        case 'hid6': {
          if (this.op(i + 1, '/') && this.toks[i + 2]?.t === 'num') {
            return leaf(this.ip6(t.s, (this.toks[i + 2] as { n: number }).n, q, i, i + 3), i + 3);
          }
          return leaf(this.ip6(t.s, 128, q, i, i + 1), i + 1);
        }
        case 'eid':
          return leaf(this.mac(t.s, q, i), i + 1);
        case 'aid':
          return leaf(this.unknown(i, i + 1, 'ARCnet address'), i + 1);
        default:
          return null;
      }
    });
  }

  private unknown(from: number, to: number, reason: string): Expr {
    return { kind: 'unknown', text: this.text(from, to), reason };
  }

  /** Text of a primitive with its (possibly inherited) qualifiers spelled out. */
  private spelled(q: Qual, literal: string): string {
    const proto = q.proto === 'default' ? [] : [q.proto === 'link' ? 'ether' : q.proto];
    const dir = { default: [], src: ['src'], dst: ['dst'], or: ['src or dst'], and: ['src and dst'] }[q.dir] ?? [q.dir];
    const addr = q.addr === 'default' ? (q.dir === 'default' ? ['host'] : []) : [q.addr];
    return [...proto, ...dir, ...addr, literal].join(' ');
  }

  private unknownLeaf(q: Qual, literal: string, reason: string): Expr {
    return { kind: 'unknown', text: this.spelled(q, literal), reason };
  }

  private dir(q: Qual): Dir | undefined {
    return DIRS.get(q.dir);
  }

  private v4proto(q: Qual): 'any' | 'ip' | 'arp' | 'rarp' | undefined {
    if (q.proto === 'default') return 'any';
    return q.proto === 'ip' || q.proto === 'arp' || q.proto === 'rarp' ? q.proto : undefined;
  }

  private portProto(q: Qual): 'any' | 'tcp' | 'udp' | 'sctp' | undefined {
    if (q.proto === 'default') return 'any';
    return q.proto === 'tcp' || q.proto === 'udp' || q.proto === 'sctp' ? q.proto : undefined;
  }

  private ipv4Leaf(q: Qual, addr: number, mask: number, literal: string): Expr {
    const proto = this.v4proto(q);
    const dir = this.dir(q);
    if (!proto || !dir) return this.unknownLeaf(q, literal, 'qualifiers the index does not decide');
    return { kind: 'ipv4', proto, dir, addr: addr >>> 0, mask: mask >>> 0, text: this.spelled(q, literal) };
  }

  private portLeaf(q: Qual, proto: 'any' | 'tcp' | 'udp' | 'sctp' | undefined, low: number, high: number, literal: string): Expr {
    const dir = this.dir(q);
    if (!proto || !dir || high > 65535) return this.unknownLeaf(q, literal, 'not a port test the index decides');
    return { kind: 'port', proto, dir, low: Math.min(low, high), high: Math.max(low, high), text: this.spelled(q, literal) };
  }

  private protoLeaf(q: Qual, proto: number, literal: string): Expr {
    const layer = q.proto === 'default' ? 'any' : q.proto === 'ip' || q.proto === 'ip6' ? q.proto : undefined;
    if (!layer) return this.unknownLeaf(q, literal, `'${q.proto} proto'`);
    return { kind: 'proto', layer, proto, text: this.spelled(q, literal) };
  }

  /** gen_ncode() with a number. */
  private number(v: number, q: Qual, i: number): Expr | null {
    const literal = this.text(i, i + 1);
    switch (q.addr) {
      case 'default':
      case 'host':
      case 'net': {
        if (q.proto === 'link') return null;
        let addr = v, mask = 0xffffffff;
        if (q.addr === 'net') {
          // A short network number is promoted: `net 10` is 10.0.0.0/8.
          while (addr !== 0 && (addr & 0xff000000) === 0) {
            addr = (addr << 8) >>> 0;
            mask = (mask << 8) >>> 0;
          }
        }
        return this.ipv4Leaf(q, addr, mask, literal);
      }
      case 'port':
        return this.portLeaf(q, this.portProto(q), v, v, literal);
      case 'portrange':
        return this.portLeaf(q, this.portProto(q), v, v, literal);
      case 'proto':
        return this.protoLeaf(q, v, literal);
      default:
        return this.unknownLeaf(q, literal, `'${q.addr}'`);
    }
  }

  /** gen_scode(): a name. Host and network names are never resolved (no DNS). */
  private name(s: string, q: Qual, i: number): Expr | null {
    const literal = this.text(i, i + 1);
    switch (q.addr) {
      case 'port': {
        const found = this.names.port(s);
        if (!found) return this.unknownLeaf(q, literal, 'unknown service name');
        const want = this.portProto(q);
        // libpcap: a service listed for tcp only is tested on tcp only; `udp port <tcp-only>` is an error.
        let proto: 'any' | 'tcp' | 'udp' | 'sctp' | undefined = want;
        if (want === 'any') proto = found.proto;
        else if (found.proto !== 'any' && found.proto !== want) proto = undefined;
        // Spell out the resolution for --explain: `port http` is `tcp port 80`.
        const seen = `${literal} (= ${proto && proto !== 'any' ? `${proto} ` : ''}port ${found.port})`;
        return this.portLeaf(q, proto, found.port, found.port, seen);
      }
      case 'portrange': {
        const m = /^(0|[1-9][0-9]{0,5})-(0|[1-9][0-9]{0,5})$/.exec(s);
        if (!m) return this.unknownLeaf(q, literal, 'port range with service names');
        return this.portLeaf(q, this.portProto(q), Number(m[1]), Number(m[2]), literal);
      }
      case 'proto': {
        const n = this.names.protocol(s);
        return n === undefined ? this.unknownLeaf(q, literal, 'unknown protocol name') : this.protoLeaf(q, n, literal);
      }
      default:
        return this.unknownLeaf(q, literal, 'a name (never resolved by the planner)');
    }
  }

  /** gen_ncode() with a dotted address: a partial one is a network (`host 1.2.3` is 1.2.3.0/24). */
  private dotted4(s: string, q: Qual, i: number): Expr | null {
    if (!['default', 'host', 'net', 'gateway'].includes(q.addr)) return null;
    const d = dotted(s);
    if (!d || q.proto === 'link') return null;
    if (q.addr === 'gateway') return this.unknownLeaf(q, s, 'gateway');
    const shift = 32 - d.bits;
    const mask = shift === 0 ? 0xffffffff : (0xffffffff << shift) >>> 0;
    return this.ipv4Leaf(q, shift === 0 ? d.value : (d.value << shift) >>> 0, mask, this.text(i, i + 1));
  }

  /** gen_mcode(): `net A/len` and `net A mask M`; only `net` takes a mask. */
  private masked4(s: string, mask: number | null, q: Qual, from: number, to: number): Expr | null {
    const d = dotted(s);
    if (!d || mask === null || q.addr !== 'net') return null;
    const addr = d.bits === 32 ? d.value : (d.value << (32 - d.bits)) >>> 0;
    const literal = this.text(from, to);
    if ((addr & ~mask) !== 0) return this.unknownLeaf(q, literal, 'non-network bits set (libpcap rejects it)');
    return this.ipv4Leaf(q, addr, mask, literal);
  }

  /** gen_mcode6(): IPv6 host or network, always `ip6` whatever the qualifier (others are errors). */
  private ip6(s: string, prefix: number, q: Qual, from: number, to: number): Expr | null {
    const addr = parseIpv6(s);
    if (!addr || prefix > 128) return null;
    const literal = this.text(from, to);
    if (q.addr !== 'net' && q.addr !== 'host' && q.addr !== 'default') return null;
    if (q.addr !== 'net' && prefix !== 128) return null;
    const dir = this.dir(q);
    if ((q.proto !== 'default' && q.proto !== 'ip6') || !dir) return this.unknownLeaf(q, literal, 'qualifiers the index does not decide');
    for (let b = 0; b < 16; b++) {
      const bits = Math.max(0, Math.min(8, prefix - 8 * b));
      if ((addr[b] & ~(0xff << (8 - bits)) & 0xff) !== 0) return this.unknownLeaf(q, literal, 'non-network bits set');
    }
    return { kind: 'ipv6', dir, addr, prefix, text: this.spelled(q, literal) };
  }

  /** gen_ecode(): only `ether host|src|dst MAC`. */
  private mac(s: string, q: Qual, i: number): Expr | null {
    if (q.proto !== 'link' || (q.addr !== 'host' && q.addr !== 'default')) return null;
    const digits = s.includes(':') || s.includes('-') || s.split('.').length === 6
      ? s.split(/[:.-]/).map((b) => b.padStart(2, '0')).join('')
      : s.replace(/\./g, '');
    const dir = this.dir(q);
    const literal = this.text(i, i + 1);
    if (!dir || !/^[0-9A-Fa-f]{12}$/.test(digits)) return this.unknownLeaf(q, literal, 'MAC address form');
    const addr = Uint8Array.from({ length: 6 }, (_, k) => parseInt(digits.slice(2 * k, 2 * k + 2), 16));
    return { kind: 'mac', dir, addr, text: this.spelled(q, literal) };
  }
}

/** __pcap_atoin(): decimal octets (leading zeros are decimal); bits = 8 per octet given. */
function dotted(s: string): { value: number; bits: number } | null {
  const parts = s.split('.');
  if (parts.length > 4 || !parts.every((p) => /^[0-9]+$/.test(p) && Number(p) <= 255)) return null;
  let value = 0;
  for (const p of parts) value = (value * 256 + Number(p)) >>> 0;
  return { value, bits: 8 * parts.length };
}

// ---------------------------------------------------------------- names

/**
 * /etc/services and /etc/protocols read the way the C library's "files"
 * backend does (first entry wins, names and aliases, case-sensitive), with
 * libpcap's rule on top: a service found for tcp is tcp-only unless udp has
 * the same port, in which case it is tested on tcp, udp and sctp.
 */
export function namesFromFiles(servicesText: string, protocolsText: string): NameDb {
  const tcp = new Map<string, number>();
  const udp = new Map<string, number>();
  for (const line of servicesText.split('\n')) {
    const f = line.replace(/#.*/, '').trim().split(/\s+/);
    const m = /^([0-9]+)\/(tcp|udp)$/.exec(f[1] ?? '');
    if (!m) continue;
    const table = m[2] === 'tcp' ? tcp : udp;
    for (const n of [f[0], ...f.slice(2)]) if (!table.has(n)) table.set(n, Number(m[1]));
  }
  const protos = new Map<string, number>();
  for (const line of protocolsText.split('\n')) {
    const f = line.replace(/#.*/, '').trim().split(/\s+/);
    if (f.length < 2 || !/^[0-9]+$/.test(f[1])) continue;
    for (const n of [f[0], ...f.slice(2)]) if (!protos.has(n)) protos.set(n, Number(f[1]));
  }
  return {
    port(name) {
      const t = tcp.get(name);
      const u = udp.get(name);
      if (t !== undefined) return { port: t, proto: u === t ? 'any' : 'tcp' };
      if (u !== undefined) return { port: u, proto: 'udp' };
      return undefined;
    },
    protocol: (name) => protos.get(name),
  };
}

let system: NameDb | undefined;
function systemNames(): NameDb {
  const read = (p: string): string => {
    try {
      return fs.readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  };
  system ??= namesFromFiles(read('/etc/services'), read('/etc/protocols'));
  return system;
}
