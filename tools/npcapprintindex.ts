// npcapprintindex: print (-i), print as JSON (-j) or check (-c) a pcap file's index.
// Exit status: 0 fine, 1 the index is invalid, 2 usage or I/O error.
import fs from 'node:fs';
import { Command, CommanderError } from 'commander';
import { checkCompressedIndex } from '../recorder/compressed-file';
import { COMPRESSED_SUFFIX, isCompressedPath } from '../recorder/dumpset';
import {
  FlowView, IndexError, IndexView, checkIndex, isPartialIndexPath, readIndexFile,
} from '../recorder/index-file';
import {
  META_FRAGMENT, META_IPV4, META_IPV6, META_MAC, META_PLAIN, META_PORTS, META_VLAN,
} from '../recorder/packet-meta';

const NAME = 'npcapprintindex';
const EXIT_INVALID = 1;
const EXIT_USAGE = 2;

const LINKTYPES: Record<number, string> = {
  0: 'NULL', 1: 'EN10MB', 12: 'RAW', 101: 'RAW', 105: 'IEEE802_11', 113: 'LINUX_SLL', 127: 'IEEE802_11_RADIO',
  228: 'IPV4', 229: 'IPV6', 276: 'LINUX_SLL2',
};
const IP_PROTOS: Record<number, string> = {
  1: 'icmp', 2: 'igmp', 6: 'tcp', 17: 'udp', 41: 'ipv6-encap', 47: 'gre', 50: 'esp', 51: 'ah', 58: 'icmp6', 89: 'ospf', 132: 'sctp',
};
const ETHERTYPES: Record<number, string> = { 0x0806: 'arp', 0x8035: 'rarp', 0x86dd: 'ip6', 0x0800: 'ip', 0x88cc: 'lldp', 0x8863: 'pppoed', 0x8864: 'pppoes' };
const FLAG_NAMES: [number, string][] = [
  [META_IPV4, 'ipv4'], [META_IPV6, 'ipv6'], [META_PORTS, 'ports'], [META_FRAGMENT, 'fragment'],
  [META_VLAN, 'vlan'], [META_PLAIN, 'plain'], [META_MAC, 'mac'],
];

/** UTC ISO 8601 with the file's precision (6 or 9 decimals). */
function iso(ns: bigint | undefined, nano: boolean): string | null {
  if (ns === undefined) return null;
  const date = new Date(Number(ns / 1_000_000_000n) * 1000).toISOString().slice(0, 19);
  const frac = ns % 1_000_000_000n;
  return `${date}.${nano ? frac.toString().padStart(9, '0') : (frac / 1000n).toString().padStart(6, '0')}Z`;
}

function protoName(f: FlowView): string {
  if (f.ipVersion === undefined) return ETHERTYPES[f.ethertype] ?? `ether 0x${f.ethertype.toString(16).padStart(4, '0')}`;
  return IP_PROTOS[f.ipproto] ?? `proto ${f.ipproto}`;
}

function endpoint(f: FlowView, side: 'A' | 'B'): string {
  const addr = side === 'A' ? f.addrA : f.addrB;
  const port = side === 'A' ? f.portA : f.portB;
  if (addr === undefined) return (side === 'A' ? f.macA : f.macB) ?? '-';
  if (port === undefined) return addr;
  return f.ipVersion === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** Thrown when the reader of stdout went away (| head): the output just ends. */
class ReaderGone extends Error {}

/**
 * Writes lines in large pieces (an index may describe a million flows) with
 * synchronous writes, so a closed pipe stops the work at once.
 */
class Output {
  private buf: string[] = [];
  private size = 0;

  line(s: string): void {
    this.buf.push(s);
    this.size += s.length + 1;
    if (this.size >= 1 << 16) this.flush();
  }

  flush(): void {
    const bytes = Buffer.from(this.buf.length ? `${this.buf.join('\n')}\n` : '');
    this.buf = [];
    this.size = 0;
    for (let done = 0; done < bytes.length;) {
      try {
        done += fs.writeSync(1, bytes, done);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') throw new ReaderGone();
        if (code !== 'EAGAIN') throw e;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); // stdout is non-blocking and full
      }
    }
  }
}

function printText(v: IndexView, out: Output): void {
  const lt = LINKTYPES[v.linktype];
  out.line(`version    ${v.version}`);
  out.line(`linktype   ${v.linktype}${lt ? ` (${lt})` : ''}`);
  out.line(`precision  ${v.nano ? 'nanosecond' : 'microsecond'}`);
  out.line(`snaplen    ${v.snaplen}`);
  out.line(`time       ${iso(v.firstNs, v.nano) ?? '-'} - ${iso(v.lastNs, v.nano) ?? '-'}`);
  out.line(`packets    ${v.packets}`);
  out.line(`bytes      ${v.bytes} captured, ${v.wireBytes} on the wire`);
  out.line(`flows      ${v.flowCount}`);
  out.line(`covered    ${v.covered.start}-${v.covered.end}`);
  out.line(`segments   ${v.segments}`);
  out.line(`timeblocks ${v.timeBlocks.length}`);
  const chunks = v.chunks;
  if (chunks) out.line(`chunks     ${chunks.plain.length - 1} LZ4 frames, ${chunks.packed[chunks.packed.length - 1]} bytes compressed`);
  for (const f of v.flows()) {
    const vlan = f.vlan === undefined ? '' : ` vlan ${f.vlan}`;
    const frag = f.flags & META_FRAGMENT ? ' fragments' : '';
    out.line(`${protoName(f)} ${endpoint(f, 'A')} <-> ${endpoint(f, 'B')}${vlan}${frag} packets ${f.packets} bytes ${f.bytes} ` +
      `${iso(f.firstNs, v.nano)} - ${iso(f.lastNs, v.nano)}`);
  }
}

function printJson(v: IndexView, out: Output): void {
  const head = {
    version: v.version,
    linktype: v.linktype,
    nano: v.nano,
    snaplen: v.snaplen,
    first: iso(v.firstNs, v.nano),
    last: iso(v.lastNs, v.nano),
    firstNs: v.firstNs?.toString() ?? null,
    lastNs: v.lastNs?.toString() ?? null,
    packets: v.packets,
    bytes: v.bytes,
    wireBytes: v.wireBytes,
    flowCount: v.flowCount,
    covered: v.covered,
    segments: v.segments,
    timeBlocks: v.timeBlocks.map((b) => ({ ...b, minNs: b.minNs.toString(), maxNs: b.maxNs.toString() })),
    // Frame k: pcap bytes [plain[k], plain[k + 1]) at [packed[k], packed[k + 1]) of NAME.pcap.lz4.
    chunks: v.chunks ?? null,
  };
  // The flows array is written piece by piece rather than built as one string.
  out.line(`${JSON.stringify(head).slice(0, -1)},"flows":[`);
  let i = 0;
  for (const f of v.flows()) {
    const flow = {
      proto: protoName(f),
      ipVersion: f.ipVersion ?? null,
      a: { addr: f.addrA ?? null, port: f.portA ?? null, mac: f.macA ?? null },
      b: { addr: f.addrB ?? null, port: f.portB ?? null, mac: f.macB ?? null },
      ipproto: f.ipproto,
      ethertype: f.ethertype,
      vlan: f.vlan ?? null,
      flags: FLAG_NAMES.filter(([bit]) => f.flags & bit).map(([, name]) => name),
      packets: f.packets,
      bytes: f.bytes,
      wireBytes: f.wireBytes,
      first: iso(f.firstNs, v.nano),
      last: iso(f.lastNs, v.nano),
      firstNs: f.firstNs.toString(),
      lastNs: f.lastNs.toString(),
    };
    out.line(`${i++ ? ',' : ''}${JSON.stringify(flow)}`);
  }
  out.line(']}');
}

/** "ENOENT: no such file or directory, open 'x'" -> "no such file or directory". */
function reason(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/^[A-Z]+: /, '').replace(/, \w+( '.*')?$/, '');
}

function main(argv: string[]): number {
  const program = new Command()
    .name(NAME)
    .description('Print or check the index of a pcap file recorded by n2disk-ts')
    .requiredOption('-i, --index <file>', 'index file (FILE.pcap.idx)')
    .option('-j, --json', 'print the index as one JSON object')
    .option('-c, --check', 'check the index (and the pcap beside it); print only problems')
    .option('-p, --pcap <file>', 'with -c: pcap file to check against (default: the index path without .idx)')
    .showSuggestionAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(`${NAME}: ${s.replace(/^error: /, '')}`) });
  try {
    program.parse(argv);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : EXIT_USAGE;
    throw e;
  }
  const opts = program.opts<{ index: string; json?: boolean; check?: boolean; pcap?: string }>();
  const file = opts.index;
  if (opts.json && opts.check) {
    process.stderr.write(`${NAME}: -j and -c cannot be used together\n`);
    return EXIT_USAGE;
  }
  if (opts.pcap !== undefined && !opts.check) {
    process.stderr.write(`${NAME}: -p needs -c\n`);
    return EXIT_USAGE;
  }
  try {
    if (opts.check) {
      // A compressed file (-M) is checked through its frames.
      const plain = opts.pcap ?? file.replace(/\.idx$/, '');
      const lz4 = plain + COMPRESSED_SUFFIX;
      const compressed = isCompressedPath(plain) ? plain : opts.pcap === undefined && !fs.existsSync(plain) && fs.existsSync(lz4) ? lz4 : undefined;
      const problems = compressed ? checkCompressedIndex(file, compressed) : checkIndex(file, opts.pcap);
      for (const p of problems) process.stderr.write(`${p}\n`);
      return problems.length ? EXIT_INVALID : 0;
    }
    const view = readIndexFile(file, { partial: isPartialIndexPath(file) });
    const out = new Output();
    (opts.json ? printJson : printText)(view, out);
    out.flush();
    return 0;
  } catch (e) {
    if (e instanceof ReaderGone) return 0;
    if (e instanceof IndexError) {
      process.stderr.write(`${NAME}: ${e.message}\n`);
      return EXIT_INVALID;
    }
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code !== 'string' || typeof err.syscall !== 'string') throw e; // a bug, not an I/O error
    process.stderr.write(`${NAME}: ${err.path ?? file}: ${reason(e)}\n`);
    return EXIT_USAGE;
  }
}

process.exitCode = main(process.argv);
