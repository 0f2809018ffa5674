// Reference reader for classic pcap files and byte-exact comparison of packet lists.
// Pure TypeScript on purpose: the tests must not depend on the native addon they are testing.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface PcapHeader {
  linktype: number; // LINKTYPE_ value with the FCS bits (upper 6 bits) masked off
  linktypeRaw: number; // the 32-bit field as stored
  snaplen: number;
  nano: boolean;
  bigEndian: boolean;
  versionMajor: number;
  versionMinor: number;
}

export interface PcapRecord {
  tsNs: bigint; // seconds * 1e9 + fraction scaled to ns, as stored (no normalisation of invalid fractions)
  caplen: number;
  wirelen: number;
  data: Buffer;
}

export interface PcapFile {
  header: PcapHeader;
  records: PcapRecord[];
}

export class PcapFormatError extends Error {
  override name = 'PcapFormatError';
}

const MAGIC_US = 0xa1b2c3d4;
const MAGIC_NS = 0xa1b23c4d;
const FILE_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;

export interface ParseOptions {
  /**
   * Default true: read records the way libpcap (so tcpdump) does, so that results agree with tcpdump -r:
   * - files of version < 2.3 store len before caplen; 2.3 files may, and are taken as swapped when caplen > len;
   * - a caplen above libpcap's per-link-type maximum is an error ("invalid packet capture length");
   * - a caplen above the file's snaplen is cut to the snaplen (the rest of the record is skipped).
   * false: report every record header exactly as stored.
   */
  libpcap?: boolean;
}

// libpcap's max_snaplen_for_dlt(): 256 KB except for a few link types with larger packets.
function maxSnaplen(linktype: number): number {
  if (linktype === 231) return 128 * 1024 * 1024; // DBUS
  if (linktype === 279) return 8 * 1024 * 1024; // EBHSCR
  if (linktype === 249) return 1024 * 1024; // USBPCAP
  return 262144;
}

/** Parses a whole classic pcap file held in memory. Throws PcapFormatError on a bad magic or truncation. */
export function parsePcap(buf: Buffer, name = '<buffer>', opts: ParseOptions = {}): PcapFile {
  const compat = opts.libpcap ?? true;
  if (buf.length < FILE_HEADER_LEN) {
    throw new PcapFormatError(`${name}: truncated file header: ${buf.length} of ${FILE_HEADER_LEN} bytes`);
  }
  const le = buf.readUInt32LE(0);
  const be = buf.readUInt32BE(0);
  let bigEndian: boolean;
  let nano: boolean;
  if (le === MAGIC_US || le === MAGIC_NS) {
    bigEndian = false;
    nano = le === MAGIC_NS;
  } else if (be === MAGIC_US || be === MAGIC_NS) {
    bigEndian = true;
    nano = be === MAGIC_NS;
  } else {
    throw new PcapFormatError(`${name}: not a classic pcap file (magic 0x${be.toString(16).padStart(8, '0')})`);
  }
  const u16 = (o: number): number => (bigEndian ? buf.readUInt16BE(o) : buf.readUInt16LE(o));
  const u32 = (o: number): number => (bigEndian ? buf.readUInt32BE(o) : buf.readUInt32LE(o));
  const linktypeRaw = u32(20);
  const header: PcapHeader = {
    linktype: linktypeRaw & 0x03ffffff,
    linktypeRaw,
    snaplen: u32(16),
    nano,
    bigEndian,
    versionMajor: u16(4),
    versionMinor: u16(6),
  };
  const fracScale = nano ? 1n : 1000n;
  const maxCaplen = maxSnaplen(header.linktype);
  // libpcap replaces a zero or oversized snaplen by the link type's maximum.
  const snapshot = header.snaplen === 0 || header.snaplen > maxCaplen ? maxCaplen : header.snaplen;
  const lengthsSwapped = header.versionMajor < 2 || (header.versionMajor === 2 && header.versionMinor < 3);
  const maybeSwapped = header.versionMajor === 2 && header.versionMinor === 3;
  const records: PcapRecord[] = [];
  let off = FILE_HEADER_LEN;
  while (off < buf.length) {
    const n = records.length;
    if (off + RECORD_HEADER_LEN > buf.length) {
      throw new PcapFormatError(
        `${name}: truncated record header of packet #${n} at offset ${off}: ${buf.length - off} of ${RECORD_HEADER_LEN} bytes`,
      );
    }
    let caplen = u32(off + 8);
    let wirelen = u32(off + 12);
    if (compat && (lengthsSwapped || (maybeSwapped && caplen > wirelen))) [caplen, wirelen] = [wirelen, caplen];
    if (compat && caplen > maxCaplen) {
      throw new PcapFormatError(`${name}: invalid capture length ${caplen} of packet #${n} at offset ${off} (maximum ${maxCaplen})`);
    }
    const start = off + RECORD_HEADER_LEN;
    if (start + caplen > buf.length) {
      throw new PcapFormatError(
        `${name}: truncated data of packet #${n} at offset ${off}: caplen ${caplen}, only ${buf.length - start} bytes left`,
      );
    }
    const kept = compat ? Math.min(caplen, snapshot) : caplen;
    records.push({
      tsNs: BigInt(u32(off)) * 1_000_000_000n + BigInt(u32(off + 4)) * fracScale,
      caplen: kept,
      wirelen,
      data: buf.subarray(start, start + kept),
    });
    off = start + caplen;
  }
  return { header, records };
}

export function readPcap(path: string, opts: ParseOptions = {}): PcapFile {
  return parsePcap(readFileSync(path), path, opts);
}

export type TsPrecision = 'ns' | 'us' | 'ms' | 's' | 'none';

export interface CompareOptions {
  /** Timestamps are compared after truncation to this unit; 'none' ignores them (e.g. live captures). Default 'ns'. */
  precision?: TsPrecision;
  /** Compare wire lengths too. Default true. */
  wirelen?: boolean;
}

const UNIT_NS: Record<Exclude<TsPrecision, 'none'>, bigint> = { ns: 1n, us: 1000n, ms: 1_000_000n, s: 1_000_000_000n };

/** Formats ns since the epoch as "seconds.nnnnnnnnn" (exact, no float). */
export function formatTs(tsNs: bigint): string {
  const s = tsNs / 1_000_000_000n;
  const f = tsNs % 1_000_000_000n;
  return `${s}.${f.toString().padStart(9, '0')}`;
}

function describe(r: PcapRecord): string {
  return `ts ${formatTs(r.tsNs)} caplen ${r.caplen} wirelen ${r.wirelen}`;
}

function hexAround(b: Buffer, at: number): string {
  const from = Math.max(0, at - 8);
  const to = Math.min(b.length, at + 8);
  const hex = b.subarray(from, to).toString('hex').replace(/(..)/g, '$1 ').trim();
  return `[${from}..${to}) ${hex}`;
}

/** Returns undefined when equal, else a readable description of the first difference. */
export function compareRecords(actual: readonly PcapRecord[], expected: readonly PcapRecord[], opts: CompareOptions = {}): string | undefined {
  const precision = opts.precision ?? 'ns';
  const checkWirelen = opts.wirelen ?? true;
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (precision !== 'none') {
      const unit = UNIT_NS[precision];
      if (a.tsNs / unit !== e.tsNs / unit) {
        return `packet #${i}: timestamp differs at ${precision} precision: actual ${formatTs(a.tsNs)}, expected ${formatTs(e.tsNs)}`;
      }
    }
    if (checkWirelen && a.wirelen !== e.wirelen) {
      return `packet #${i}: wirelen differs: actual ${describe(a)}, expected ${describe(e)}`;
    }
    if (!a.data.equals(e.data)) {
      let at = 0;
      while (at < a.data.length && at < e.data.length && a.data[at] === e.data[at]) at++;
      return (
        `packet #${i}: data differs at byte ${at} (actual ${describe(a)}, expected ${describe(e)})\n` +
        `  actual   ${hexAround(a.data, at)}\n  expected ${hexAround(e.data, at)}`
      );
    }
  }
  if (actual.length !== expected.length) {
    const longer = actual.length > expected.length ? 'actual' : 'expected';
    const extra = (actual.length > expected.length ? actual : expected)[n]!;
    return `packet count differs: actual ${actual.length}, expected ${expected.length}; first ${longer}-only packet #${n}: ${describe(extra)}`;
  }
  return undefined;
}

/** Throws an Error carrying compareRecords' description when the lists differ. */
export function assertSameRecords(actual: readonly PcapRecord[], expected: readonly PcapRecord[], opts: CompareOptions = {}): void {
  const diff = compareRecords(actual, expected, opts);
  if (diff !== undefined) throw new Error(diff);
}

/**
 * Runs `tcpdump -r FILE -w - [filter]` with nanosecond output for one file and parses what it writes.
 * Rejects with tcpdump's stderr when it exits non-zero (bad filter, unreadable or truncated file).
 */
export function tcpdumpReadFile(file: string, filter?: string): Promise<PcapFile> {
  const args = ['--time-stamp-precision=nano', '-r', file, '-w', '-'];
  if (filter !== undefined && filter.trim() !== '') args.push(filter);
  return new Promise((resolve, reject) => {
    execFile('tcpdump', args, { encoding: 'buffer', maxBuffer: 1 << 30 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`tcpdump ${args.join(' ')} failed: ${stderr.toString().trim() || err.message}`));
        return;
      }
      try {
        resolve(parsePcap(stdout, `tcpdump -r ${file}`));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** The reference packet list: each file through tcpdump (one by one, in the given order), records concatenated. */
export async function tcpdumpRead(files: readonly string[], filter?: string): Promise<PcapRecord[]> {
  const out: PcapRecord[] = [];
  for (const f of files) {
    // a loop, not push(...records): spreading very large lists overflows the call stack
    for (const r of (await tcpdumpReadFile(f, filter)).records) out.push(r);
  }
  return out;
}
