// The index file: the one module that reads and writes it. extract/ and
// tools/ see indexes only through readIndexFile() and checkIndex().
//
// Container: "N2IX", u32 container version, then segments, each
//   [u32 length][u32 crc32 of the bytes][flatbuffer Segment (recorder/index.fbs)]
// all little-endian. A published file's index holds one segment (the whole
// file); the index of a file being written (NAME.pcap.part.idx) grows by one
// segment per commit, so a crash can tear only its last segment.
import fs from 'node:fs';
import zlib from 'node:zlib';
import { ByteBuffer } from 'flatbuffers';
import { FlowClass, Segment } from './index_generated/index_generated';
import { META_IPV4, META_IPV6, META_MAC, META_PORTS, META_VLAN } from './packet-meta';
import { PCAP_HEADER_BYTES, PcapFormatError, PcapHeader, RECORD_HEADER_BYTES, readPcapHeader } from './pcap-file';

/** Version of the Segment schema's meaning (Segment.version). */
export const INDEX_FORMAT_VERSION = 1;
const CONTAINER_VERSION = 1;
const MAGIC = Buffer.from('N2IX', 'latin1');
const HEADER_BYTES = 8;
const FRAME_BYTES = 8;
const FILE_MODE = 0o640;

export class IndexError extends Error {
  constructor(readonly file: string, readonly defect: string) {
    super(`${file}: ${defect}`);
    this.name = 'IndexError';
  }
}

/** The index of a file still being written is named after it: NAME.pcap.part.idx. */
export const isPartialIndexPath = (path: string): boolean => path.endsWith('.part.idx');

// ---------------------------------------------------------------- writing

export interface SegmentedIndex {
  /** Appends one segment (IndexBuilder.segment()) in a single write. */
  append(segment: Uint8Array): void;
  close(): void;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += fs.writeSync(fd, bytes, done);
}

function header(): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(b, 0);
  b.writeUInt32LE(CONTAINER_VERSION, 4);
  return b;
}

function frame(segment: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(FRAME_BYTES + segment.length);
  b.writeUInt32LE(segment.length, 0);
  b.writeUInt32LE(zlib.crc32(segment), 4);
  b.set(segment, FRAME_BYTES);
  return b;
}

/** Creates (or truncates) the index of a file being written. No fsync: a torn tail is expected. */
export function createSegmentedIndex(path: string): SegmentedIndex {
  const fd = fs.openSync(path, 'w', FILE_MODE);
  try {
    fs.fchmodSync(fd, FILE_MODE);
    writeAll(fd, header());
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  let open = true;
  return {
    append(segment: Uint8Array): void {
      if (!open) throw new Error(`${path}: append after close`);
      writeAll(fd, frame(segment));
    },
    close(): void {
      if (!open) return;
      open = false;
      fs.closeSync(fd);
    },
  };
}

/** Writes a one-segment index so that readers see either the old file or the whole new one. */
export function writeIndexFile(path: string, segment: Uint8Array): void {
  const tmp = `${path}.tmp`;
  const fd = fs.openSync(tmp, 'w', FILE_MODE);
  try {
    fs.fchmodSync(fd, FILE_MODE);
    writeAll(fd, Buffer.concat([header(), frame(segment)]));
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, path);
}

// ---------------------------------------------------------------- reading

export interface TimeBlock {
  /** Offset of the block's first record; the block runs up to `end`. */
  offset: number;
  end: number;
  packets: number;
  minNs: bigint;
  maxNs: bigint;
}

export interface FlowView {
  index: number;
  ipVersion: 4 | 6 | undefined;
  /** Endpoint A sent the flow's first packet (in its segment). */
  addrA: string | undefined;
  addrB: string | undefined;
  addrABytes: Uint8Array | undefined;
  addrBBytes: Uint8Array | undefined;
  portA: number | undefined;
  portB: number | undefined;
  ipproto: number;
  ethertype: number;
  vlan: number | undefined;
  macA: string | undefined;
  macB: string | undefined;
  /** MetaFlags (recorder/packet-meta.ts). */
  flags: number;
  /** Earliest and latest packet, at the file's precision. */
  firstNs: bigint;
  lastNs: bigint;
  packets: number;
  /** Captured bytes (sum of caplen, record headers excluded). */
  bytes: number;
  /** Bytes on the wire (sum of wirelen). */
  wireBytes: number;
}

export interface IndexView {
  readonly path: string;
  /** Linktype, precision and snaplen are 0/false in a partial index with no segment yet. */
  readonly version: number;
  readonly linktype: number;
  readonly nano: boolean;
  readonly snaplen: number;
  readonly segments: number;
  /** The bytes of the pcap file described: every record in [start, end) is indexed. */
  readonly covered: { start: number; end: number };
  readonly packets: number;
  readonly bytes: number;
  readonly wireBytes: number;
  /** Earliest and latest packet; undefined when there is none. */
  readonly firstNs: bigint | undefined;
  readonly lastNs: bigint | undefined;
  /** No packet is earlier than the one before it: the file can be streamed in time order. */
  readonly ordered: boolean;
  readonly timeBlocks: readonly TimeBlock[];
  /**
   * Flows are numbered across segments in order; a connection that spans
   * several segments of a partial index is one flow per segment, which only
   * costs the planner a few more candidates.
   */
  readonly flowCount: number;
  flow(index: number): FlowView;
  flows(): IterableIterator<FlowView>;
  /** The same flows as columns, one entry per segment in order. */
  readonly flowColumns: readonly FlowColumns[];
  /** Absolute file offsets of the flow's records, increasing. */
  flowOffsets(index: number): number[];
}

export interface ReadOptions {
  /** The index of a file being written: a torn last segment is ignored, not an error. */
  partial?: boolean;
}

export function readIndexFile(path: string, opts: ReadOptions = {}): IndexView {
  return decodeIndex(fs.readFileSync(path), path, opts.partial ?? false);
}

/** The first and last packet times an index records; undefined when it has no packet or cannot be read. */
export function readIndexSpan(path: string): { minNs: bigint; maxNs: bigint } | undefined {
  try {
    const ix = readIndexFile(path);
    return ix.firstNs === undefined || ix.lastNs === undefined ? undefined : { minNs: ix.firstNs, maxNs: ix.lastNs };
  } catch {
    return undefined;
  }
}

function decodeIndex(buf: Uint8Array, path: string, partial: boolean): DecodedIndex {
  const segments = splitSegments(buf, path, partial).map((s, k) => decodeSegment(s, path, k));
  return new DecodedIndex(path, segments, partial);
}

/** Validates the container and returns each segment's flatbuffer, copied so typed views align. */
function splitSegments(buf: Uint8Array, path: string, partial: boolean): Uint8Array[] {
  const fail = (defect: string): never => {
    throw new IndexError(path, defect);
  };
  const head = header();
  if (buf.length < HEADER_BYTES) {
    // A partial index's header may not have reached the disk yet.
    if (partial && head.subarray(0, buf.length).equals(buf)) return [];
    fail(`truncated header (${buf.length} bytes)`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  if (!MAGIC.equals(buf.subarray(0, 4))) fail('not an n2disk-ts index (bad magic)');
  const version = view.getUint32(4, true);
  if (version !== CONTAINER_VERSION) fail(`unsupported index container version ${version}`);

  const segments: Uint8Array[] = [];
  for (let at = HEADER_BYTES; at < buf.length;) {
    const k = segments.length;
    const left = buf.length - at;
    if (left < FRAME_BYTES) {
      if (partial) break;
      fail(`segment ${k}: truncated frame header at byte ${at}`);
    }
    const length = view.getUint32(at, true);
    const crc = view.getUint32(at + 4, true);
    if (length > left - FRAME_BYTES) {
      if (partial) break;
      fail(`segment ${k}: length ${length} runs past the end of the file (byte ${at})`);
    }
    const bytes = buf.slice(at + FRAME_BYTES, at + FRAME_BYTES + length);
    at += FRAME_BYTES + length;
    if (zlib.crc32(bytes) !== crc) {
      // A torn write ends the file; a bad segment followed by more data is corruption.
      if (partial && at === buf.length) break;
      fail(`segment ${k}: checksum mismatch (byte ${at - length - FRAME_BYTES})`);
    }
    segments.push(bytes);
  }
  if (segments.length === 0 && !partial) fail('no segment');
  return segments;
}

/**
 * The flows of one segment as decoded columns (flow j of the segment is flow
 * `base + j` of the index), for readers that walk every flow and cannot
 * afford an object per flow. Times are ticks of the file's precision as
 * (hi, lo) u32 pairs; `addrA`/`addrB` index `ipv4` or `ipv6` (16 bytes an
 * entry) by the class's flags, `mac` indexes `macPairs` (12 bytes an entry).
 */
export interface FlowColumns {
  readonly base: number;
  readonly flowCount: number;
  readonly classFlags: Uint8Array;
  readonly classProto: Uint8Array;
  readonly classEther: Uint16Array;
  readonly classVlan: Uint16Array;
  readonly ipv4: Uint32Array;
  readonly ipv6: Uint8Array;
  readonly macPairs: Uint8Array;
  readonly flowClass: Uint32Array;
  readonly addrA: Uint32Array;
  readonly addrB: Uint32Array;
  readonly portA: Uint16Array;
  readonly portB: Uint16Array;
  readonly mac: Uint32Array;
  readonly minHi: Uint32Array;
  readonly minLo: Uint32Array;
  readonly maxHi: Uint32Array;
  readonly maxLo: Uint32Array;
  readonly flowPackets: Float64Array;
  readonly flowCap: Float64Array;
  readonly flowWire: Float64Array;
}

/** One segment, decoded into columns. Times are ticks as (hi, lo) u32 pairs. */
interface SegmentData extends Omit<FlowColumns, 'base'> {
  version: number;
  linktype: number;
  nano: boolean;
  snaplen: number;
  start: number;
  end: number;
  packets: number;
  capBytes: number;
  wireBytes: number;
  minTs: bigint;
  maxTs: bigint;
  ordered: boolean;
  /** Per flow: its first record's offset, and where its entries start in `offsets`. */
  firstOffset: Float64Array;
  offsetPos: Float64Array;
  offsets: Uint8Array;
  blocks: TimeBlock[];
}

const EMPTY = new Uint8Array(0);

/** LEB128 varints, failing with the segment's name on any overrun. */
class VarintReader {
  pos = 0;
  hi = 0;
  lo = 0;

  constructor(private readonly bytes: Uint8Array, private readonly what: string, private readonly fail: (d: string) => never) {}

  private byte(): number {
    if (this.pos >= this.bytes.length) this.fail(`${this.what}: ends inside a value`);
    return this.bytes[this.pos++];
  }

  /** An unsigned value below 2^53. */
  uv(): number {
    // Most values fit one byte: planning decodes every flow of every file in range.
    const first = this.bytes[this.pos];
    if (first !== undefined && first < 0x80) {
      this.pos++;
      return first;
    }
    let value = 0;
    for (let mul = 1; ; mul *= 128) {
      const b = this.byte();
      value += (b & 0x7f) * mul;
      if (b < 0x80) break;
      if (mul >= 2 ** 49) this.fail(`${this.what}: value too large`);
    }
    if (value > Number.MAX_SAFE_INTEGER) this.fail(`${this.what}: value too large`);
    return value;
  }

  /** An unsigned 64-bit value into (hi, lo). */
  uv64(): void {
    const first = this.bytes[this.pos];
    if (first !== undefined && first < 0x80) {
      this.pos++;
      this.hi = 0;
      this.lo = first;
      return;
    }
    let lo = 0, hi = 0;
    for (let shift = 0; ; shift += 7) {
      if (shift > 63) this.fail(`${this.what}: value too large`);
      const b = this.byte();
      const v = b & 0x7f;
      if (shift < 28) lo |= v << shift;
      else if (shift === 28) {
        lo |= v << 28;
        hi |= v >>> 4;
      } else hi |= v << (shift - 32);
      if (b < 0x80) break;
    }
    this.hi = hi >>> 0;
    this.lo = lo >>> 0;
  }

  /** Reads an unsigned delta and sets (hi, lo) to base + delta (mod 2^64). */
  plusUv(baseHi: number, baseLo: number): void {
    this.uv64();
    this.add(baseHi, baseLo);
  }

  /** Reads a zigzag delta and sets (hi, lo) to base + delta (mod 2^64). */
  plusZz(baseHi: number, baseLo: number): void {
    this.uv64();
    const sign = -(this.lo & 1);
    const lo = (((this.lo >>> 1) | (this.hi << 31)) ^ sign) >>> 0;
    this.hi = ((this.hi >>> 1) ^ sign) >>> 0;
    this.lo = lo;
    this.add(baseHi, baseLo);
  }

  skip(values: number): void {
    // A tight loop: skipping the offsets of every flow is most of decoding an index.
    const bytes = this.bytes;
    let pos = this.pos;
    for (let left = values; left > 0; pos++) {
      if (pos >= bytes.length) {
        this.pos = pos;
        this.fail(`${this.what}: ends inside a value`);
      }
      if (bytes[pos]! < 0x80) left--;
    }
    this.pos = pos;
  }

  done(): void {
    if (this.pos !== this.bytes.length) this.fail(`${this.what}: ${this.bytes.length - this.pos} bytes left over`);
  }

  private add(baseHi: number, baseLo: number): void {
    const lo = baseLo + this.lo;
    this.hi = (baseHi + this.hi + (lo >= 4294967296 ? 1 : 0)) >>> 0;
    this.lo = lo >>> 0;
  }
}

const hiOf = (t: bigint): number => Number(t >> 32n);
const loOf = (t: bigint): number => Number(t & 0xffffffffn);
const ticks = (hi: number, lo: number): bigint => (BigInt(hi) << 32n) | BigInt(lo);

function decodeSegment(bytes: Uint8Array, path: string, k: number): SegmentData {
  const fail = (defect: string): never => {
    throw new IndexError(path, `segment ${k}: ${defect}`);
  };
  try {
    return decodeSegmentBody(bytes, fail);
  } catch (e) {
    // The flatbuffers reader does not verify; a bad offset shows up as a RangeError.
    if (e instanceof IndexError) throw e;
    return fail(`malformed (${(e as Error).message})`);
  }
}

function decodeSegmentBody(bytes: Uint8Array, fail: (defect: string) => never): SegmentData {
  if (bytes.length < 8) fail('too short for a flatbuffer');
  const root = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(0, true);
  if (root + 4 > bytes.length) fail('root table out of bounds');
  const seg = Segment.getRootAsSegment(new ByteBuffer(bytes));
  const version = seg.version();
  if (version !== INDEX_FORMAT_VERSION) fail(`unsupported format version ${version}`);
  const num = (v: bigint, what: string): number => {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} out of range`);
    return Number(v);
  };

  const nClasses = seg.classesLength();
  const classFlags = new Uint8Array(nClasses);
  const classProto = new Uint8Array(nClasses);
  const classEther = new Uint16Array(nClasses);
  const classVlan = new Uint16Array(nClasses);
  const fc = new FlowClass();
  for (let c = 0; c < nClasses; c++) {
    seg.classes(c, fc);
    classFlags[c] = fc.flags();
    classProto[c] = fc.ipproto();
    classEther[c] = fc.ethertype();
    classVlan[c] = fc.vlan();
  }
  const ipv4 = seg.ipv4Array() ?? new Uint32Array(0);
  const ipv6 = seg.ipv6Array() ?? EMPTY;
  const macPairs = seg.macPairsArray() ?? EMPTY;
  const ports = seg.flowPortsArray() ?? new Uint16Array(0);
  if (ipv6.length % 16 !== 0) fail('ipv6 dictionary is not a whole number of addresses');
  if (macPairs.length % 12 !== 0) fail('MAC dictionary is not a whole number of pairs');
  const start = num(seg.start(), 'start');
  const minTs = seg.minTs();

  const n = seg.flowCount();
  const cls = new VarintReader(seg.flowClassArray() ?? EMPTY, 'flow_class', fail);
  const addrs = new VarintReader(seg.flowAddrsArray() ?? EMPTY, 'flow_addrs', fail);
  const macs = new VarintReader(seg.flowMacsArray() ?? EMPTY, 'flow_macs', fail);
  const times = new VarintReader(seg.flowTimesArray() ?? EMPTY, 'flow_times', fail);
  const counts = new VarintReader(seg.flowCountsArray() ?? EMPTY, 'flow_counts', fail);
  const wireBytes = seg.flowWireArray();
  const wire = new VarintReader(wireBytes ?? EMPTY, 'flow_wire', fail);
  const offsets = seg.flowOffsetsArray() ?? EMPTY;
  const offs = new VarintReader(offsets, 'flow_offsets', fail);

  const d: SegmentData = {
    version,
    linktype: seg.linktype(),
    nano: seg.nano(),
    snaplen: seg.snaplen(),
    start,
    end: num(seg.end(), 'end'),
    packets: num(seg.packets(), 'packets'),
    capBytes: num(seg.capBytes(), 'cap_bytes'),
    wireBytes: num(seg.wireBytes(), 'wire_bytes'),
    minTs,
    maxTs: seg.maxTs(),
    ordered: seg.ordered(),
    flowCount: n,
    classFlags, classProto, classEther, classVlan, ipv4, ipv6, macPairs,
    flowClass: new Uint32Array(n),
    addrA: new Uint32Array(n),
    addrB: new Uint32Array(n),
    portA: new Uint16Array(n),
    portB: new Uint16Array(n),
    mac: new Uint32Array(n),
    minHi: new Uint32Array(n),
    minLo: new Uint32Array(n),
    maxHi: new Uint32Array(n),
    maxLo: new Uint32Array(n),
    flowPackets: new Float64Array(n),
    flowCap: new Float64Array(n),
    flowWire: new Float64Array(n),
    firstOffset: new Float64Array(n),
    offsetPos: new Float64Array(n),
    offsets,
    blocks: [],
  };
  const nAddr = (flags: number): number => (flags & META_IPV4 ? ipv4.length : ipv6.length / 16);
  let portAt = 0;
  let prevHi = hiOf(minTs), prevLo = loOf(minTs);
  let prevFirst = start;
  for (let j = 0; j < n; j++) {
    const c = cls.uv();
    if (c >= nClasses) fail(`flow ${j}: class ${c} out of range`);
    d.flowClass[j] = c;
    const flags = classFlags[c];
    if (flags & (META_IPV4 | META_IPV6)) {
      d.addrA[j] = addrs.uv();
      d.addrB[j] = addrs.uv();
      if (d.addrA[j] >= nAddr(flags) || d.addrB[j] >= nAddr(flags)) fail(`flow ${j}: address out of range`);
    }
    if (flags & META_PORTS) {
      if (portAt + 2 > ports.length) fail('flow_ports too short');
      d.portA[j] = ports[portAt++];
      d.portB[j] = ports[portAt++];
    }
    if (flags & META_MAC) {
      d.mac[j] = macs.uv();
      if (d.mac[j] * 12 >= macPairs.length) fail(`flow ${j}: MAC pair out of range`);
    }
    times.plusZz(prevHi, prevLo);
    prevHi = d.minHi[j] = times.hi;
    prevLo = d.minLo[j] = times.lo;
    times.plusUv(prevHi, prevLo);
    d.maxHi[j] = times.hi;
    d.maxLo[j] = times.lo;
    const packets = counts.uv();
    if (packets === 0) fail(`flow ${j}: no packet`);
    d.flowPackets[j] = packets;
    d.flowCap[j] = counts.uv();
    d.flowWire[j] = d.flowCap[j] + (wireBytes ? wire.uv() : 0);
    d.offsetPos[j] = offs.pos;
    prevFirst = d.firstOffset[j] = prevFirst + offs.uv();
    offs.skip(packets - 1);
  }
  if (portAt !== ports.length) fail('flow_ports has entries left over');
  for (const r of [cls, addrs, macs, times, counts, offs]) r.done();
  if (wireBytes) wire.done();

  const blocks = new VarintReader(seg.blocksArray() ?? EMPTY, 'blocks', fail);
  const unit = d.nano ? 1n : 1000n;
  let prevOff = start;
  prevHi = hiOf(minTs);
  prevLo = loOf(minTs);
  for (let b = 0; b < seg.blockCount(); b++) {
    const offset = prevOff + blocks.uv();
    const packets = blocks.uv();
    blocks.plusZz(prevHi, prevLo);
    prevHi = blocks.hi;
    prevLo = blocks.lo;
    blocks.plusUv(prevHi, prevLo);
    d.blocks.push({ offset, end: d.end, packets, minNs: ticks(prevHi, prevLo) * unit, maxNs: ticks(blocks.hi, blocks.lo) * unit });
    if (b > 0) d.blocks[b - 1].end = offset;
    prevOff = offset;
  }
  blocks.done();
  return d;
}

function formatIpv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** RFC 5952: lower case, no leading zeros, the longest run of two or more zero groups as "::". */
export function formatIpv6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

const formatMac = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');

class DecodedIndex implements IndexView {
  readonly version: number;
  readonly linktype: number;
  readonly nano: boolean;
  readonly snaplen: number;
  readonly segments: number;
  readonly covered: { start: number; end: number };
  readonly packets: number;
  readonly bytes: number;
  readonly wireBytes: number;
  readonly firstNs: bigint | undefined;
  readonly lastNs: bigint | undefined;
  /** No packet is earlier than the one before it: the file can be streamed in time order. */
  readonly ordered: boolean;
  readonly timeBlocks: readonly TimeBlock[];
  readonly flowCount: number;
  /** Index of each segment's first flow, plus the total. */
  readonly flowBase: number[];
  readonly flowColumns: readonly FlowColumns[];

  constructor(readonly path: string, readonly parts: readonly SegmentData[], partial: boolean) {
    const first: SegmentData | undefined = parts[0];
    const fail = (defect: string): never => {
      throw new IndexError(path, defect);
    };
    if (!first && !partial) fail('no segment');
    parts.forEach((s, k) => {
      const p = k > 0 ? parts[k - 1] : undefined;
      if (s.start !== (p?.end ?? 0)) fail(`segment ${k} starts at byte ${s.start}, not ${p?.end ?? 0}`);
      if (s.linktype !== parts[0].linktype || s.nano !== parts[0].nano || s.snaplen !== parts[0].snaplen) {
        fail(`segment ${k}: linktype, precision or snaplen differs from segment 0`);
      }
    });
    this.version = first?.version ?? INDEX_FORMAT_VERSION;
    this.linktype = first?.linktype ?? 0;
    this.nano = first?.nano ?? false;
    this.snaplen = first?.snaplen ?? 0;
    this.segments = parts.length;
    this.covered = { start: 0, end: parts.length ? parts[parts.length - 1].end : 0 };
    const sum = (f: (s: SegmentData) => number): number => parts.reduce((a, s) => a + f(s), 0);
    this.packets = sum((s) => s.packets);
    this.bytes = sum((s) => s.capBytes);
    this.wireBytes = sum((s) => s.wireBytes);
    const unit = this.nano ? 1n : 1000n;
    const timed = parts.filter((s) => s.packets > 0);
    this.firstNs = timed.length ? timed.reduce((m, s) => (s.minTs < m ? s.minTs : m), timed[0].minTs) * unit : undefined;
    this.lastNs = timed.length ? timed.reduce((m, s) => (s.maxTs > m ? s.maxTs : m), timed[0].maxTs) * unit : undefined;
    this.timeBlocks = parts.flatMap((s) => s.blocks);
    this.ordered = parts.length > 0 && parts[parts.length - 1]!.ordered;
    this.flowBase = [0];
    for (const s of parts) this.flowBase.push(this.flowBase[this.flowBase.length - 1] + s.flowCount);
    this.flowCount = this.flowBase[parts.length];
    this.flowColumns = parts.map((s, k) => ({ ...s, base: this.flowBase[k] }));
  }

  flow(index: number): FlowView {
    const [s, j] = this.locate(index);
    const c = s.flowClass[j];
    const flags = s.classFlags[c];
    const unit = s.nano ? 1n : 1000n;
    const v4 = (flags & META_IPV4) !== 0;
    const v6 = !v4 && (flags & META_IPV6) !== 0;
    const addrBytes = (a: number): Uint8Array | undefined => {
      if (v6) return s.ipv6.slice(a * 16, a * 16 + 16);
      if (!v4) return undefined;
      const v = s.ipv4[a];
      return Uint8Array.of(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
    };
    const addrText = (a: number): string | undefined =>
      v4 ? formatIpv4(s.ipv4[a]) : v6 ? formatIpv6(s.ipv6.subarray(a * 16, a * 16 + 16)) : undefined;
    const mac = (half: number): string | undefined =>
      flags & META_MAC ? formatMac(s.macPairs.subarray(s.mac[j] * 12 + half, s.mac[j] * 12 + half + 6)) : undefined;
    const ports = (flags & META_PORTS) !== 0;
    // Text and byte forms are made only when asked for: the planner walks
    // every flow of every file in range and most of it never looks at them.
    return {
      index,
      ipVersion: v4 ? 4 : v6 ? 6 : undefined,
      get addrA() { return addrText(s.addrA[j]); },
      get addrB() { return addrText(s.addrB[j]); },
      get addrABytes() { return addrBytes(s.addrA[j]); },
      get addrBBytes() { return addrBytes(s.addrB[j]); },
      portA: ports ? s.portA[j] : undefined,
      portB: ports ? s.portB[j] : undefined,
      ipproto: s.classProto[c],
      ethertype: s.classEther[c],
      vlan: flags & META_VLAN ? s.classVlan[c] : undefined,
      get macA() { return mac(0); },
      get macB() { return mac(6); },
      flags,
      firstNs: ticks(s.minHi[j], s.minLo[j]) * unit,
      lastNs: ticks(s.maxHi[j], s.maxLo[j]) * unit,
      packets: s.flowPackets[j],
      bytes: s.flowCap[j],
      wireBytes: s.flowWire[j],
    };
  }

  *flows(): IterableIterator<FlowView> {
    for (let i = 0; i < this.flowCount; i++) yield this.flow(i);
  }

  flowOffsets(index: number): number[] {
    const [s, j] = this.locate(index);
    const r = new VarintReader(s.offsets, 'flow_offsets', (d) => {
      throw new IndexError(this.path, d);
    });
    r.pos = s.offsetPos[j];
    r.uv();
    const out = [s.firstOffset[j]];
    for (let q = 1; q < s.flowPackets[j]; q++) out.push(out[q - 1] + r.uv());
    return out;
  }

  /** The segment holding flow `index`, and the flow's number in it. */
  private locate(index: number): [SegmentData, number] {
    if (!Number.isInteger(index) || index < 0 || index >= this.flowCount) {
      throw new RangeError(`flow ${index} out of range (${this.flowCount} flows)`);
    }
    let lo = 0, hi = this.parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.flowBase[mid] <= index) lo = mid;
      else hi = mid - 1;
    }
    return [this.parts[lo], index - this.flowBase[lo]];
  }
}

// ---------------------------------------------------------------- checking

const MAX_PROBLEMS = 100;

/** Collects problems, one line each, capped so a badly broken index stays readable. */
class Problems {
  readonly lines: string[] = [];
  private dropped = 0;

  constructor(private readonly path: string) {}

  add(line: string): void {
    if (this.lines.length < MAX_PROBLEMS) this.lines.push(`${this.path}: ${line}`);
    else this.dropped++;
  }

  result(): string[] {
    return this.dropped ? [...this.lines, `${this.path}: ... and ${this.dropped} more problems`] : this.lines;
  }
}

/** Every record of a pcap file in [from, to): offsets, times in ticks, lengths. */
interface PcapRecords {
  count: number;
  offset: Float64Array;
  ticks: BigUint64Array;
  caplen: Uint32Array;
  wirelen: Uint32Array;
}

/**
 * Deep validation (npcapprintindex -c): the container, the index's internal
 * consistency and, when the pcap file exists (default: the index path without
 * ".idx"), that the index lists exactly the file's records with their times
 * and lengths. Returns one line per problem; empty when valid. I/O errors on
 * the index (or on a pcap named explicitly) are thrown.
 */
export function checkIndex(path: string, pcapPath?: string): string[] {
  const problems = new Problems(path);
  const partial = isPartialIndexPath(path);
  let index: DecodedIndex;
  try {
    index = decodeIndex(fs.readFileSync(path), path, partial);
  } catch (e) {
    if (e instanceof IndexError) return [e.message];
    throw e;
  }
  const all = checkConsistency(index, problems);
  const pcap = pcapPath ?? path.replace(/\.idx$/, '');
  if (pcapPath !== undefined || (pcap !== path && fs.existsSync(pcap))) {
    checkAgainstPcap(index, all, pcap, partial, problems);
  }
  return problems.result();
}

/** Checks what the index says about itself; returns all its record offsets, sorted. */
function checkConsistency(index: DecodedIndex, problems: Problems): Float64Array {
  const all = new Float64Array(index.packets);
  let n = 0;
  index.parts.forEach((s, k) => {
    const where = `segment ${k}`;
    let packets = 0, cap = 0, wire = 0;
    let minTs: bigint | undefined, maxTs: bigint | undefined;
    for (let j = 0; j < s.flowCount; j++) {
      const lo = ticks(s.minHi[j], s.minLo[j]);
      const hi = ticks(s.maxHi[j], s.maxLo[j]);
      if (lo > hi) problems.add(`${where} flow ${j}: first time after last time`);
      if (minTs === undefined || lo < minTs) minTs = lo;
      if (maxTs === undefined || hi > maxTs) maxTs = hi;
      packets += s.flowPackets[j];
      cap += s.flowCap[j];
      wire += s.flowWire[j];
      if (s.flowCap[j] > s.flowWire[j]) problems.add(`${where} flow ${j}: more bytes captured than on the wire`);
      const offsets = index.flowOffsets(index.flowBase[k] + j);
      offsets.forEach((o, q) => {
        if (q > 0 && o <= offsets[q - 1]) problems.add(`${where} flow ${j}: offsets not increasing at ${o}`);
        if (o < s.start || o + RECORD_HEADER_BYTES > s.end) {
          problems.add(`${where} flow ${j}: offset ${o} outside the covered range [${s.start}, ${s.end})`);
        }
        if (n < all.length) all[n] = o;
        n++;
      });
    }
    if (packets !== s.packets) problems.add(`${where}: flows hold ${packets} packets, header says ${s.packets}`);
    if (cap !== s.capBytes) problems.add(`${where}: flows hold ${cap} captured bytes, header says ${s.capBytes}`);
    if (wire !== s.wireBytes) problems.add(`${where}: flows hold ${wire} wire bytes, header says ${s.wireBytes}`);
    if (s.packets > 0 && (minTs !== s.minTs || maxTs !== s.maxTs)) {
      problems.add(`${where}: header time range differs from the flows'`);
    }
    if (s.end < s.start) problems.add(`${where}: end ${s.end} before start ${s.start}`);

    const unit = s.nano ? 1n : 1000n;
    let blockPackets = 0;
    s.blocks.forEach((b, i) => {
      if (i > 0 && b.offset <= s.blocks[i - 1].offset) problems.add(`${where} block ${i}: offset not increasing`);
      if (b.offset < s.start || b.offset >= s.end) problems.add(`${where} block ${i}: offset ${b.offset} outside the covered range`);
      if (b.minNs > b.maxNs) problems.add(`${where} block ${i}: min time after max time`);
      if (b.minNs < s.minTs * unit || b.maxNs > s.maxTs * unit) problems.add(`${where} block ${i}: times outside the segment's`);
      blockPackets += b.packets;
    });
    if (blockPackets !== s.packets) problems.add(`${where}: time blocks hold ${blockPackets} packets, header says ${s.packets}`);
  });
  if (n !== index.packets) return new Float64Array(0);
  all.sort();
  for (let i = 1; i < all.length; i++) {
    if (all[i] === all[i - 1]) problems.add(`record at ${all[i]} listed by more than one flow`);
  }
  // Each block must start on a record and hold exactly the records up to its end.
  for (const b of index.timeBlocks) {
    const first = lowerBound(all, b.offset);
    if (all[first] !== b.offset) problems.add(`time block at ${b.offset}: not an indexed record`);
    else if (lowerBound(all, b.end) - first !== b.packets) problems.add(`time block at ${b.offset}: packet count mismatch`);
  }
  return all;
}

/** First index in a[0..n) whose value is >= v (a sorted). */
function lowerBound(a: Float64Array, v: number, n = a.length): number {
  let lo = 0, hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function checkAgainstPcap(index: DecodedIndex, all: Float64Array, pcap: string, partial: boolean, problems: Problems): void {
  const fd = fs.openSync(pcap, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    let header: PcapHeader;
    try {
      header = readPcapHeader(fd, pcap);
    } catch (e) {
      if (!(e instanceof PcapFormatError)) throw e;
      problems.add(e.message);
      return;
    }
    const { littleEndian: le, nano, linktype } = header;
    if (nano !== index.nano) problems.add(`${pcap}: precision differs from the index's`);
    if (linktype !== index.linktype) problems.add(`${pcap}: linktype ${linktype}, index says ${index.linktype}`);
    const end = index.covered.end;
    if (partial ? end > size : end !== size) problems.add(`covers ${end} bytes, ${pcap} has ${size}`);
    const recs = readRecords(fd, Math.min(end, size), le, nano ? 1_000_000_000n : 1_000_000n, pcap, problems);
    if (all.length !== index.packets) return; // the flows are already known to be broken

    // The index must list exactly the file's records.
    let missing = 0, extra = 0;
    for (let i = 0, r = 0; i < all.length || r < recs.count;) {
      if (r < recs.count && (i >= all.length || recs.offset[r] < all[i])) {
        if (missing++ < 5) problems.add(`record at ${recs.offset[r]} is in no flow`);
        r++;
      } else if (i < all.length && (r >= recs.count || all[i] < recs.offset[r])) {
        if (extra++ < 5) problems.add(`offset ${all[i]} is not a record of ${pcap}`);
        i++;
      } else {
        i++;
        r++;
      }
    }
    if (missing > 5) problems.add(`${missing} records in no flow in all`);
    if (extra > 5) problems.add(`${extra} offsets that are not records in all`);

    // Per flow: times within [first, last] and byte sums; per block: times within [min, max].
    const perTick = index.nano ? 1n : 1000n;
    index.parts.forEach((s, k) => {
      for (let j = 0; j < s.flowCount; j++) {
        const lo = ticks(s.minHi[j], s.minLo[j]);
        const hi = ticks(s.maxHi[j], s.maxLo[j]);
        let cap = 0, wire = 0, early = false, late = false;
        for (const o of index.flowOffsets(index.flowBase[k] + j)) {
          const r = lowerBound(recs.offset, o, recs.count);
          if (r >= recs.count || recs.offset[r] !== o) continue;
          cap += recs.caplen[r];
          wire += recs.wirelen[r];
          early ||= recs.ticks[r] < lo;
          late ||= recs.ticks[r] > hi;
        }
        const where = `segment ${k} flow ${j}`;
        if (early || late) problems.add(`${where}: a record's time is outside the flow's [first, last]`);
        if (cap !== s.flowCap[j] || wire !== s.flowWire[j]) {
          problems.add(`${where}: records hold ${cap}/${wire} captured/wire bytes, index says ${s.flowCap[j]}/${s.flowWire[j]}`);
        }
      }
    });
    for (const b of index.timeBlocks) {
      for (let r = lowerBound(recs.offset, b.offset, recs.count); r < recs.count && recs.offset[r] < b.end; r++) {
        const t = recs.ticks[r] * perTick;
        if (t < b.minNs || t > b.maxNs) {
          problems.add(`time block at ${b.offset}: record at ${recs.offset[r]} outside its time range`);
          break;
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Walks the records from the pcap header up to `end`, reading 1 MiB at a time. */
function readRecords(fd: number, end: number, le: boolean, perSecond: bigint, pcap: string, problems: Problems): PcapRecords {
  let cap = 1024;
  let recs: PcapRecords = {
    count: 0, offset: new Float64Array(cap), ticks: new BigUint64Array(cap), caplen: new Uint32Array(cap), wirelen: new Uint32Array(cap),
  };
  const buf = Buffer.alloc(1 << 20);
  let bufAt = 0, bufLen = 0;
  const u32 = (at: number): number => (le ? buf.readUInt32LE(at - bufAt) : buf.readUInt32BE(at - bufAt));
  for (let at = PCAP_HEADER_BYTES; at < end;) {
    if (at + RECORD_HEADER_BYTES > bufAt + bufLen) {
      bufAt = at;
      bufLen = fs.readSync(fd, buf, 0, buf.length, at);
    }
    if (at + RECORD_HEADER_BYTES > Math.min(end, bufAt + bufLen)) {
      problems.add(`${pcap}: truncated record header at ${at}`);
      break;
    }
    const caplen = u32(at + 8);
    if (at + RECORD_HEADER_BYTES + caplen > end) {
      problems.add(`${pcap}: record at ${at} runs past byte ${end}`);
      break;
    }
    if (recs.count === cap) {
      cap *= 2;
      const grow = <T extends Float64Array | BigUint64Array | Uint32Array>(a: T, make: (n: number) => T): T => {
        const b = make(cap);
        b.set(a as never);
        return b;
      };
      recs = {
        count: recs.count,
        offset: grow(recs.offset, (n) => new Float64Array(n)),
        ticks: grow(recs.ticks, (n) => new BigUint64Array(n)),
        caplen: grow(recs.caplen, (n) => new Uint32Array(n)),
        wirelen: grow(recs.wirelen, (n) => new Uint32Array(n)),
      };
    }
    const i = recs.count++;
    recs.offset[i] = at;
    recs.ticks[i] = BigInt(u32(at)) * perSecond + BigInt(u32(at + 4));
    recs.caplen[i] = caplen;
    recs.wirelen[i] = u32(at + 12);
    at += RECORD_HEADER_BYTES + caplen;
  }
  return recs;
}
