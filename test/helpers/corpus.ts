// The capture files shipped in test/fixtures (see test/fixtures/README.md for provenance), and access
// to the larger shared corpus when a checkout has it beside the repository.
import { execFile } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readSync } from 'node:fs';
import * as path from 'node:path';

/** Repository root: the nearest ancestor holding test/fixtures (works from test/helpers and dist/test/helpers). */
export const repoRoot: string = (() => {
  let dir = __dirname;
  for (;;) {
    if (existsSync(path.join(dir, 'test', 'fixtures')) && existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find the repository root above ${__dirname}`);
    dir = up;
  }
})();

export const fixturesDir = path.join(repoRoot, 'test', 'fixtures');

export type FixtureTag =
  | 'replayable' // Ethernet, every frame 14..1514 bytes (1518 with one tag) and caplen == len: tcpreplay-able into MTU 1500 veth
  | 'dns'
  | 'tls'
  | 'http'
  | 'quic'
  | 'ipv6'
  | 'vlan' // 802.1Q tagged frames
  | 'qinq' // two stacked tags
  | 'raw-ip'
  | 'sll'
  | 'sll2'
  | 'null-loopback'
  | 'pcapng'
  | 'nanosecond'
  | 'big-endian'
  | 'out-of-order' // timestamps go backwards within the file
  | 'ts-1970'
  | 'ts-after-2030'
  | 'caplen-4' // packets cut to 4 bytes
  | 'caplen-below-wirelen'
  | 'offload-sized' // frames larger than any MTU (GRO/TSO sized), or wire length of that size
  | 'bad-input' // must be read or rejected with a clear error, never crash or hang
  | 'truncated-file'
  | 'exotic-linktype';

export type FixtureSource = 'ndpi' | 'tcpdump' | 'generated';

export interface Fixture {
  name: string; // file name in test/fixtures, same as the original corpus name
  path: string; // absolute
  source: FixtureSource;
  format: 'pcap' | 'pcapng';
  linktype: number; // LINKTYPE_ number of the file (first interface for pcapng)
  packets: number; // records in the file (complete ones, for a truncated file)
  tags: readonly FixtureTag[];
}

type Row = [name: string, source: FixtureSource, format: 'pcap' | 'pcapng', linktype: number, packets: number, tags: FixtureTag[]];

// Link types used below.
const EN10MB = 1;
const NULL = 0;
const RAW = 101;
const IPV4 = 228;
const IPV6 = 229;
const SLL = 113;
const SLL2 = 276;
const RADIOTAP = 127;
const FRELAY = 107;

const ROWS: Row[] = [
  // (a) ordinary Ethernet traffic for tcpreplay
  ['android.pcap', 'ndpi', 'pcap', EN10MB, 500, ['replayable', 'dns', 'tls', 'http', 'ipv6']],
  ['anyconnect-vpn.pcap', 'ndpi', 'pcap', EN10MB, 589, ['replayable', 'dns', 'tls', 'http', 'ipv6']],
  ['tls_certificate_too_long.pcap', 'ndpi', 'pcap', EN10MB, 315, ['replayable', 'dns', 'tls', 'http']],
  ['WebattackRCE.pcap', 'ndpi', 'pcap', EN10MB, 797, ['replayable', 'http']],
  ['dns_exfiltration.pcap', 'ndpi', 'pcap', EN10MB, 300, ['replayable', 'dns']],
  ['quic-mvfst-exp.pcap', 'ndpi', 'pcap', EN10MB, 30, ['replayable', 'quic', 'ipv6']],
  // (d) pcapng
  ['doq_adguard.pcapng', 'ndpi', 'pcapng', EN10MB, 296, ['replayable', 'quic', 'pcapng', 'nanosecond']],
  ['nano.pcapng', 'ndpi', 'pcapng', EN10MB, 6, ['replayable', 'pcapng', 'nanosecond']],
  // (b) VLAN
  ['mongodb.pcap', 'ndpi', 'pcap', EN10MB, 27, ['replayable', 'vlan']],
  ['tls_change_cipher.pcap', 'ndpi', 'pcap', EN10MB, 14, ['replayable', 'vlan', 'qinq', 'tls']],
  ['false_positives.pcapng', 'ndpi', 'pcapng', EN10MB, 120, ['replayable', 'vlan', 'qinq', 'pcapng']],
  ['802.1ad_QinQ.pcap', 'tcpdump', 'pcap', EN10MB, 2, ['replayable', 'vlan', 'qinq']],
  // (c) other link types
  ['psiphon3.pcap', 'ndpi', 'pcap', RAW, 62, ['raw-ip']],
  ['LINKTYPE_IPV4.pcap', 'tcpdump', 'pcap', IPV4, 1, ['raw-ip']],
  ['LINKTYPE_IPV6.pcap', 'tcpdump', 'pcap', IPV6, 1, ['raw-ip', 'ipv6']],
  ['log4j-webapp-exploit.pcap', 'ndpi', 'pcap', SLL, 426, ['sll', 'http']],
  ['tcp-handshake-nano.pcap', 'tcpdump', 'pcap', SLL, 3, ['sll', 'nanosecond']],
  ['sll2-android.pcap', 'generated', 'pcap', SLL2, 200, ['sll2', 'dns', 'tls', 'http', 'ipv6']],
  ['nats.pcap', 'ndpi', 'pcap', NULL, 27, ['null-loopback']],
  ['isup.pcap', 'tcpdump', 'pcap', EN10MB, 6, ['big-endian']],
  // (e) awkward timestamps and lengths
  ['cassandra.pcap', 'ndpi', 'pcap', EN10MB, 20, ['out-of-order', 'ts-1970']],
  ['resp.pcap', 'ndpi', 'pcap', EN10MB, 39, ['out-of-order', 'offload-sized']],
  ['gnutella.pcap', 'ndpi', 'pcap', EN10MB, 3905, ['ts-1970', 'caplen-4', 'caplen-below-wirelen', 'ipv6']],
  ['time_2039.pcap', 'tcpdump', 'pcap', EN10MB, 1, ['ts-after-2030', 'dns']],
  ['time_2106_max.pcap', 'tcpdump', 'pcap', EN10MB, 1, ['ts-after-2030', 'dns']],
  ['msnlb.pcap', 'tcpdump', 'pcap', EN10MB, 2, ['caplen-below-wirelen']],
  ['mobility_opt_asan.pcap', 'tcpdump', 'pcap', EN10MB, 2, ['caplen-below-wirelen', 'offload-sized', 'ipv6']],
  // (f) bad input
  ['fuzz-2021-06-07-c6c72a0a56.pcap', 'ndpi', 'pcap', EN10MB, 1, ['bad-input', 'ts-after-2030', 'caplen-below-wirelen']],
  ['fuzz-2021-10-13.pcap', 'ndpi', 'pcap', NULL, 1, ['bad-input', 'truncated-file', 'nanosecond', 'null-loopback']],
  ['timestamp_invalid_micro.pcap', 'tcpdump', 'pcap', SLL, 3, ['bad-input']],
  ['timestamp_invalid_nano.pcap', 'tcpdump', 'pcap', SLL, 3, ['bad-input', 'nanosecond']],
  ['icmp-icmp_print-oobr-2.pcap', 'tcpdump', 'pcap', FRELAY, 3, ['bad-input', 'exotic-linktype']],
  ['ieee802.11_exthdr.pcap', 'tcpdump', 'pcap', RADIOTAP, 26, ['exotic-linktype']],
];

export const FIXTURES: readonly Fixture[] = ROWS.map(([name, source, format, linktype, packets, tags]) => ({
  name,
  path: path.join(fixturesDir, name),
  source,
  format,
  linktype,
  packets,
  tags,
}));

export function fixture(name: string): Fixture {
  const f = FIXTURES.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture named ${name}`);
  return f;
}

export function fixturesWith(...tags: FixtureTag[]): Fixture[] {
  return FIXTURES.filter((f) => tags.every((t) => f.tags.includes(t)));
}

/** The shared corpus beside the repository (../shared/corpus), or undefined in a fresh clone without it. */
export function sharedCorpus(): string | undefined {
  const dir = path.resolve(repoRoot, '..', 'shared', 'corpus');
  return existsSync(path.join(dir, 'ndpi')) ? dir : undefined;
}

/**
 * LINKTYPE_ number from a file's own header: classic pcap (either byte order) or the first
 * Interface Description Block of a pcapng file. Undefined when the header is not recognised.
 */
export function linktypeOf(file: string): number | undefined {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(64);
    const n = readSync(fd, b, 0, b.length, 0);
    if (n < 24) return undefined;
    const m = b.readUInt32LE(0);
    if (m === 0xa1b2c3d4 || m === 0xa1b23c4d) return b.readUInt32LE(20) & 0x03ffffff;
    if (m === 0xd4c3b2a1 || m === 0x4d3cb2a1) return b.readUInt32BE(20) & 0x03ffffff;
    if (m !== 0x0a0d0d0a) return undefined;
    // pcapng: the section header's byte-order magic decides endianness; the IDB follows the SHB.
    const le = b.readUInt32LE(8) === 0x1a2b3c4d;
    const u32 = (o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    let off = u32(4); // SHB total length
    const idb = Buffer.alloc(12);
    while (readSync(fd, idb, 0, 12, off) === 12) {
      const type = le ? idb.readUInt32LE(0) : idb.readUInt32BE(0);
      const len = le ? idb.readUInt32LE(4) : idb.readUInt32BE(4);
      if (type === 1) return le ? idb.readUInt16LE(8) : idb.readUInt16BE(8);
      if (len < 12) return undefined;
      off += len;
    }
    return undefined;
  } finally {
    closeSync(fd);
  }
}

export interface CorpusFileInfo {
  name: string;
  path: string;
  fileType: string; // capinfos: pcap, nsecpcap, pcapng, or 'unreadable'
  encapsulation: string; // capinfos short name: ether, rawip, linux-sll, null, ...
  linktype: number | undefined; // from the file header
  packets: number | undefined; // undefined when capinfos could not read the file
}

/** Every capture file of the shared corpus folder `sub` ('ndpi' by default), with capinfos' view of it. Nothing is cached. */
export async function listCorpusFiles(sub: 'ndpi' | 'tcpdump' = 'ndpi'): Promise<CorpusFileInfo[]> {
  const root = sharedCorpus();
  if (root === undefined) return [];
  const dir = path.join(root, sub);
  const names = readdirSync(dir)
    .filter((n) => /\.(pcap|pcapng|cap)$/.test(n))
    .sort();
  // -T table, -r no header row, -M exact numbers; -t type, -E encapsulation, -c packets. Without -C capinfos
  // goes on past a file it cannot read (it reports those on stderr and exits non-zero), so ignore the exit code.
  const stdout = await new Promise<string>((resolve) => {
    execFile('capinfos', ['-T', '-r', '-M', '-t', '-E', '-c', ...names], { cwd: dir, maxBuffer: 64 << 20 }, (_err, out) =>
      resolve(out),
    );
  });
  const rows = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    const cols = line.split('\t');
    if (cols.length >= 4) rows.set(cols[0]!, cols);
  }
  return names.map((name) => {
    const cols = rows.get(name);
    const p = path.join(dir, name);
    const packets = cols ? Number(cols[3]) : NaN;
    return {
      name,
      path: p,
      fileType: cols?.[1] ?? 'unreadable',
      encapsulation: cols?.[2] ?? 'unknown',
      linktype: linktypeOf(p),
      packets: Number.isFinite(packets) ? packets : undefined,
    };
  });
}

/** Shorthand for the nDPI folder: all its files with their link types. */
export function listNdpiFiles(): Promise<CorpusFileInfo[]> {
  return listCorpusFiles('ndpi');
}
