// The index file: the one module that reads and writes it. extract/ and
// tools/ see indexes only through readIndexFile() and checkIndex().
//
// An index is a container (recorder/index-container.ts) of flatbuffer
// segments (recorder/index.fbs). The index of a file being written
// (NAME.pcap.part.idx) grows by one segment per commit, so a crash can tear
// only its last segment. A published file's index holds either one segment
// (the whole file), or, where nearly every packet is a flow of its own and
// encoding the flows again would cost most, the segments written while the
// file was, up to 16 of them (IndexBuilder.finishFromSegments).
// A published index is read lazily: only the blocks a query touches are
// fetched and checked.
import fs from 'node:fs';
import { Builder, ByteBuffer } from 'flatbuffers';
import { ByteReader, openPlain } from './byte-reader';
import { ChunkTable as ChunkTableFb, ChunkTableT, FlowCheckpoint, FlowClass, KeyCheckpoint, KeyTable, Segment } from './index_generated/index_generated';
import { IndexError, LazyIndexFile, SegmentBytes, segmentsInMemory, writeIndexFile } from './index-container';
import { META_IPV4, META_IPV6, META_MAC, META_PORTS, META_VLAN } from './packet-meta';
import { PCAP_HEADER_BYTES, PcapFormatError, PcapHeader, RECORD_HEADER_BYTES, readPcapHeader } from './pcap-file';

export { IndexError, createSegmentedIndex, writeIndexFile } from './index-container';
export type { SegmentedIndex } from './index-container';

/** Version of the Segment schema's meaning (Segment.version). */
export const INDEX_FORMAT_VERSION = 2;

/** The index of a file still being written is named after it: NAME.pcap.part.idx. */
export const isPartialIndexPath = (path: string): boolean => path.endsWith('.part.idx');

// ---------------------------------------------------------------- chunk table

/**
 * Where the frames of a compressed file (recorder/compressed-file.ts) are:
 * frame k holds the pcap's bytes [plain[k], plain[k + 1]) and is stored at
 * [packed[k], packed[k + 1]) of the compressed file. The last entry holds
 * both files' lengths.
 */
export interface ChunkTable {
  plain: number[];
  packed: number[];
}

/**
 * Rewrites a published index with `chunks` as the chunk table of its last
 * segment, atomically; everything else it says is unchanged, so it
 * describes the plain file as well as the compressed one.
 */
export function writeIndexWithChunks(path: string, chunks: ChunkTable): void {
  const segments = segmentsInMemory(fs.readFileSync(path), path, false);
  const fail = (defect: string): never => {
    throw new IndexError(path, `chunk table: ${defect}`);
  };
  // segmentsInMemory() has checked every block: the last segment is copied whole into the new one.
  const last = segments[segments.length - 1]!;
  const seg = decodeSegment(last, path, 0, 0);
  if (chunks.plain[0] !== 0 || chunks.plain[chunks.plain.length - 1] !== seg.end) fail(`does not cover the indexed ${seg.end} bytes`);
  const t = seg.seg.unpack();
  t.chunks = new ChunkTableT(encodeChunks(chunks, fail));
  const b = new Builder(last.length + 64);
  b.finish(t.pack(b));
  writeIndexFile(path, ...segments.slice(0, -1).map((s) => s.bytes), b.asUint8Array());
}

function encodeChunks(chunks: ChunkTable, fail: Fail): number[] {
  const out: number[] = [];
  const uv = (v: number): void => {
    for (; v >= 0x80; v = Math.floor(v / 0x80)) out.push((v % 0x80) | 0x80);
    out.push(v);
  };
  if (chunks.plain.length !== chunks.packed.length || chunks.plain.length < 2) fail('needs a start and an end for every frame');
  chunks.plain.forEach((p, k) => {
    const dp = p - (k ? chunks.plain[k - 1]! : 0);
    const dc = chunks.packed[k]! - (k ? chunks.packed[k - 1]! : 0);
    if (dp < 0 || dc < 0 || (k > 0 && (dp === 0 || dc === 0))) fail(`entry ${k} does not increase`);
    uv(dp);
    uv(dc);
  });
  return out;
}

function decodeChunks(table: ChunkTableFb | null, src: SegmentBytes, end: number, fail: Fail): ChunkTable | undefined {
  const bytes = table?.entriesArray();
  if (!bytes) return undefined;
  src.ensureView(bytes);
  const r = new VarintReader(bytes, 'chunk table', fail);
  const chunks: ChunkTable = { plain: [], packed: [] };
  for (let p = 0, c = 0; r.pos < bytes.length;) {
    const dp = r.uv();
    const dc = r.uv();
    if (chunks.plain.length && (dp === 0 || dc === 0)) fail('chunk table: entries do not increase');
    chunks.plain.push((p += dp));
    chunks.packed.push((c += dc));
  }
  if (chunks.plain.length < 2 || chunks.plain[0] !== 0 || chunks.packed[0] !== 0 || chunks.plain[chunks.plain.length - 1] !== end) {
    fail('chunk table: does not cover the segment from its start to its end');
  }
  return chunks;
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

/** A flow as an index lists it, with where its packets are. */
export interface IndexedFlow extends FlowView {
  /** Absolute file offsets of the flow's records, increasing. */
  offsets(): number[];
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
  /** The time table: runs of records with their time span, in file order. */
  readonly timeBlocks: readonly TimeBlock[];
  /** Offset of the first record (the end of what is covered when there is none). */
  readonly firstRecord: number;
  /**
   * Flows are numbered across segments in order; a connection that spans
   * several segments of a partial index is one flow per segment, which only
   * costs the planner a few more candidates.
   */
  readonly flowCount: number;
  flow(index: number): FlowView;
  /**
   * The flows in order, with their record offsets; with `pick`, only those
   * it names in each segment (undefined: every flow of that segment), found
   * through the key tables, so that the other flows are never decoded.
   */
  flows(pick?: (seg: SegmentFlows) => Uint32Array | undefined): IterableIterator<IndexedFlow>;
  /** The same flows by segment, in order: as columns, and through the key tables. */
  readonly segmentFlows: readonly SegmentFlows[];
  /** Absolute file offsets of the flow's records, increasing. */
  flowOffsets(index: number): number[];
  /** Closes a file read with `hold`; what is read after that opens it again. */
  release(): void;
  /** How much of the index file has been read: a published index is read only where it is used. */
  readonly bytesRead: { bytes: number; of: number };
  /** Where the frames of the compressed file are; undefined unless the file was compressed. */
  readonly chunks: ChunkTable | undefined;
}

export interface ReadOptions {
  /** The index of a file being written: a torn last segment is ignored, not an error. */
  partial?: boolean;
  /**
   * Keep a published index open until release(), for the reads that
   * planning does next. Otherwise each later read opens the file again.
   */
  hold?: boolean;
  /** Read the whole file now and check every block, as npcaprepair does, instead of reading it where it is used. */
  whole?: boolean;
}

export function readIndexFile(path: string, opts: ReadOptions = {}): IndexView {
  // A file being written has a small index with a torn tail to tolerate: read whole.
  if (opts.partial || opts.whole) {
    const partial = opts.partial ?? false;
    return readWhole(path, partial);
  }
  const file = new LazyIndexFile(path);
  try {
    const view = decodeIndex(file.segments, path, false, file);
    if (!opts.hold) file.release();
    return view;
  } catch (e) {
    file.release();
    throw e;
  }
}

/** First and last packet time of a file, in ns. */
export type TimeSpan = { minNs: bigint; maxNs: bigint };

/** The first and last packet times an index records; undefined when it has no packet. */
export const spanOf = (ix: IndexView): TimeSpan | undefined =>
  ix.firstNs === undefined || ix.lastNs === undefined ? undefined : { minNs: ix.firstNs, maxNs: ix.lastNs };

/** The first and last packet times an index records; undefined when it has no packet or cannot be read. */
export function readIndexSpan(path: string): TimeSpan | undefined {
  try {
    return spanOf(readIndexFile(path));
  } catch {
    return undefined;
  }
}

/** An index read whole, every block checked. */
function readWhole(path: string, partial: boolean): DecodedIndex {
  const buf = fs.readFileSync(path);
  const file: IndexSource = { bytesRead: buf.length, size: buf.length, release: () => undefined };
  return decodeIndex(segmentsInMemory(buf, path, partial), path, partial, file);
}

/** Where a decoded index came from: a file read lazily (LazyIndexFile) or whole. */
interface IndexSource {
  readonly bytesRead: number;
  readonly size: number;
  release(): void;
}

function decodeIndex(parts: readonly SegmentBytes[], path: string, partial: boolean, file: IndexSource): DecodedIndex {
  let base = 0;
  const segments = parts.map((bytes, k) => {
    const s = decodeSegment(bytes, path, k, base);
    base += s.flowCount;
    return s;
  });
  return new DecodedIndex(path, segments, partial, file);
}

/**
 * What the flows of a segment index into: flow classes, and the address and
 * MAC dictionaries. In an index read lazily, a dictionary entry is readable
 * once a flow that uses it has been decoded (FlowColumns), not before.
 */
export interface SegmentDictionaries {
  readonly classFlags: Uint8Array;
  readonly classProto: Uint8Array;
  readonly classEther: Uint16Array;
  readonly classVlan: Uint16Array;
  readonly ipv4: Uint32Array;
  /** 16 bytes an entry. */
  readonly ipv6: Uint8Array;
  /** 12 bytes an entry: MAC A, then MAC B. */
  readonly macPairs: Uint8Array;
}

/**
 * Flows of one segment as decoded columns, for readers that walk many flows
 * and cannot afford an object per flow. Row r is the segment's flow
 * `flowIds[r]`, or flow r when `flowIds` is undefined (every flow); segment
 * flow j is flow `base + j` of the index. Times are ticks of the file's
 * precision as (hi, lo) u32 pairs; `addrA`/`addrB` index `ipv4` or `ipv6` by
 * the class's flags, `mac` indexes `macPairs`.
 */
export interface FlowColumns extends SegmentDictionaries {
  readonly base: number;
  /** Rows. */
  readonly flowCount: number;
  readonly flowIds: Uint32Array | undefined;
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
  /** Absolute file offsets of row r's records, increasing. */
  offsets(row: number): number[];
}

/**
 * The key tables of a segment (recorder/index.fbs): which flows hold an
 * address or a port, and the columns of just those flows. Every result is a
 * list of segment flow numbers, increasing and distinct.
 */
export interface KeyLookup {
  /** Flows with an IPv4 address in [low, high] (a.b.c.d as a << 24 | ... | d) as endpoint A or B. */
  ipv4(low: number, high: number): Uint32Array;
  /** Flows with an IPv6 address for which `matches` is true as endpoint A or B. */
  ipv6(matches: (addr: Uint8Array) => boolean): Uint32Array;
  /** Flows with port A or B in [low, high]. */
  ports(low: number, high: number): Uint32Array;
  /** Flows whose class is marked (non-zero) in `classes`, one entry per class. */
  ofClasses(classes: Uint8Array): Uint32Array;
  /** These flows (increasing), each decoded from its checkpoint, not from the segment's first flow. */
  columns(flows: Uint32Array): FlowColumns;
}

/** One segment's flows, for planning. */
export interface SegmentFlows {
  readonly dictionaries: SegmentDictionaries;
  readonly base: number;
  readonly flowCount: number;
  /** Undefined for an index written before key tables: then only all() can say what its flows are. */
  readonly keys: KeyLookup | undefined;
  /** Every flow, decoded once on first use. */
  all(): FlowColumns;
}

const EMPTY = new Uint8Array(0);

/** LEB128 varints, failing with the segment's name on any overrun. */
class VarintReader {
  pos = 0;
  hi = 0;
  lo = 0;
  /** Where reading must stop: the end of what has been fetched of a lazily read segment. */
  limit: number;

  constructor(readonly bytes: Uint8Array, private readonly what: string, private readonly fail: (d: string) => never) {
    this.limit = bytes.length;
  }

  private byte(): number {
    if (this.pos >= this.limit) this.fail(`${this.what}: ends inside a value`);
    return this.bytes[this.pos++];
  }

  /** An unsigned value below 2^53. */
  uv(): number {
    // Most values fit one byte: planning decodes every flow of every file in range.
    const first = this.bytes[this.pos];
    if (first < 0x80 && this.pos < this.limit) {
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
    if (first < 0x80 && this.pos < this.limit) {
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
    const limit = this.limit;
    let pos = this.pos;
    for (let left = values; left > 0; pos++) {
      if (pos >= limit) {
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

type Fail = (defect: string) => never;

/**
 * Runs `body` on a segment's flatbuffer, turning any overrun into an
 * IndexError naming the segment: the flatbuffers reader does not verify, so
 * a bad offset shows up as a RangeError.
 */
function guarded<T>(fail: Fail, body: () => T): T {
  try {
    return body();
  } catch (e) {
    if (e instanceof IndexError) throw e;
    return fail(`malformed (${(e as Error).message})`);
  }
}

/** Decoded rows of a segment's flows (see FlowColumns), with where each row's offsets are. */
/** A segment's per-flow columns and address dictionaries as views over its bytes, fetched or not. */
interface SegmentViews {
  readonly classColumn: Uint8Array;
  readonly addrsColumn: Uint8Array;
  readonly macsColumn: Uint8Array;
  readonly timesColumn: Uint8Array;
  readonly countsColumn: Uint8Array;
  readonly ports: Uint16Array;
  readonly wireColumn: Uint8Array | null;
  readonly offsets: Uint8Array;
  readonly ipv4: Uint32Array;
  /** 16 bytes an entry. */
  readonly ipv6: Uint8Array;
  /** 12 bytes an entry. */
  readonly macPairs: Uint8Array;
}

interface Columns extends FlowColumns {
  /** Per row: its first record's offset, and where its entries start in the segment's flow_offsets. */
  readonly firstOffset: Float64Array;
  readonly offsetPos: Float64Array;
}

/** Room for `rows` flows of segment `s`, filled in by FlowReader.read(). */
function newColumns(s: SegmentData, rows: number, flowIds: Uint32Array | undefined): Columns {
  const dict = s.dictionaries;
  const d: Columns = {
    classFlags: dict.classFlags,
    classProto: dict.classProto,
    classEther: dict.classEther,
    classVlan: dict.classVlan,
    get ipv4() {
      return dict.ipv4;
    },
    get ipv6() {
      return dict.ipv6;
    },
    get macPairs() {
      return dict.macPairs;
    },
    base: s.base,
    flowCount: rows,
    flowIds,
    flowClass: new Uint32Array(rows),
    addrA: new Uint32Array(rows),
    addrB: new Uint32Array(rows),
    portA: new Uint16Array(rows),
    portB: new Uint16Array(rows),
    mac: new Uint32Array(rows),
    minHi: new Uint32Array(rows),
    minLo: new Uint32Array(rows),
    maxHi: new Uint32Array(rows),
    maxLo: new Uint32Array(rows),
    flowPackets: new Float64Array(rows),
    flowCap: new Float64Array(rows),
    flowWire: new Float64Array(rows),
    firstOffset: new Float64Array(rows),
    offsetPos: new Float64Array(rows),
    offsets(row: number): number[] {
      const r = new VarintReader(s.views.offsets, 'flow_offsets', s.fail);
      r.pos = d.offsetPos[row];
      r.uv();
      const out = [d.firstOffset[row]];
      for (let q = 1; q < d.flowPackets[row]; q++) out.push(out[q - 1] + r.uv());
      return out;
    },
  };
  return d;
}

/**
 * Reads a segment's per-flow columns forward, flow after flow, from flow 0
 * or from a checkpoint: every delta is taken from the flow before.
 */
class FlowReader {
  private readonly cls: VarintReader;
  private readonly addrs: VarintReader;
  private readonly macs: VarintReader;
  private readonly times: VarintReader;
  private readonly counts: VarintReader;
  private readonly wire: VarintReader;
  readonly offs: VarintReader;
  private portAt = 0;
  private portLimit: number;
  private prevHi: number;
  private prevLo: number;
  private prevFirst: number;
  private readonly nextCp = new FlowCheckpoint();
  private readonly v: SegmentViews;
  /** The segment's flow number read next. */
  next = 0;

  /**
   * `whole`: the columns have been fetched entirely (SegmentData.all()).
   * Otherwise reading starts with seek(), and each run of flows between two
   * checkpoints is fetched as reading enters it.
   */
  constructor(private readonly s: SegmentData, private readonly whole: boolean) {
    const { fail } = s;
    const v = (this.v = s.views);
    this.cls = new VarintReader(v.classColumn, 'flow_class', fail);
    this.addrs = new VarintReader(v.addrsColumn, 'flow_addrs', fail);
    this.macs = new VarintReader(v.macsColumn, 'flow_macs', fail);
    this.times = new VarintReader(v.timesColumn, 'flow_times', fail);
    this.counts = new VarintReader(v.countsColumn, 'flow_counts', fail);
    this.wire = new VarintReader(v.wireColumn ?? EMPTY, 'flow_wire', fail);
    this.offs = new VarintReader(v.offsets, 'flow_offsets', fail);
    this.portLimit = v.ports.length;
    this.prevHi = hiOf(s.minTs);
    this.prevLo = loOf(s.minTs);
    this.prevFirst = s.start;
  }

  /**
   * Fetches the column bytes from where reading stands up to checkpoint
   * k + 1 (or the end), and stops the readers there: a read past what was
   * fetched fails instead of seeing zeros.
   */
  private enter(k: number): void {
    const { s } = this;
    const next = k + 1 < s.checkpointCount ? s.seg.flowCheckpoints(k + 1, this.nextCp) : null;
    const upTo = (r: VarintReader, at: number | undefined): void => {
      r.limit = Math.min(at ?? r.bytes.length, r.bytes.length);
      s.src.ensureView(r.bytes, Math.min(r.pos, r.limit), r.limit);
    };
    upTo(this.cls, next?.classAt());
    upTo(this.addrs, next?.addrsAt());
    upTo(this.macs, next?.macsAt());
    upTo(this.times, next?.timesAt());
    upTo(this.counts, next?.countsAt());
    upTo(this.wire, next?.wireAt());
    upTo(this.offs, next?.offsetsAt());
    const { ports } = this.v;
    this.portLimit = Math.min(next?.portsAt() ?? ports.length, ports.length);
    s.src.ensureView(ports, 2 * Math.min(this.portAt, this.portLimit), 2 * this.portLimit);
  }

  /** Moves to flow number k * every, from its checkpoint. */
  seek(k: number, cp: FlowCheckpoint): void {
    const s = this.s;
    this.cls.pos = cp.classAt();
    this.addrs.pos = cp.addrsAt();
    this.portAt = cp.portsAt();
    this.macs.pos = cp.macsAt();
    this.times.pos = cp.timesAt();
    this.counts.pos = cp.countsAt();
    this.wire.pos = cp.wireAt();
    this.offs.pos = cp.offsetsAt();
    const ts = cp.prevFirstTs();
    this.prevHi = hiOf(ts);
    this.prevLo = loOf(ts);
    this.prevFirst = s.num(cp.prevFirstOffset(), 'checkpoint offset');
    this.next = k * s.checkpointEvery;
  }

  /** Reads the next flow into row `row` of `d`, overwriting all of it (a flow skipped on the way may have used the row). */
  read(d: Columns, row: number): void {
    const { fail } = this.s;
    const { classFlags } = this.s.dictionaries;
    const s = this.v;
    const j = this.next++;
    if (!this.whole && j % this.s.checkpointEvery === 0) this.enter(j / this.s.checkpointEvery);
    const c = this.cls.uv();
    if (c >= classFlags.length) fail(`flow ${j}: class ${c} out of range`);
    d.flowClass[row] = c;
    const flags = classFlags[c];
    if (flags & (META_IPV4 | META_IPV6)) {
      d.addrA[row] = this.addrs.uv();
      d.addrB[row] = this.addrs.uv();
      const v4 = flags & META_IPV4;
      const n = v4 ? s.ipv4.length : s.ipv6.length / 16;
      if (d.addrA[row] >= n || d.addrB[row] >= n) fail(`flow ${j}: address out of range`);
      if (!this.whole) {
        const dict = v4 ? s.ipv4 : s.ipv6, size = v4 ? 4 : 16;
        this.s.src.ensureView(dict, d.addrA[row] * size, d.addrA[row] * size + size);
        this.s.src.ensureView(dict, d.addrB[row] * size, d.addrB[row] * size + size);
      }
    } else d.addrA[row] = d.addrB[row] = 0;
    if (flags & META_PORTS) {
      if (this.portAt + 2 > this.portLimit) fail('flow_ports too short');
      d.portA[row] = s.ports[this.portAt++];
      d.portB[row] = s.ports[this.portAt++];
    } else d.portA[row] = d.portB[row] = 0;
    if (flags & META_MAC) {
      d.mac[row] = this.macs.uv();
      if (d.mac[row] * 12 >= s.macPairs.length) fail(`flow ${j}: MAC pair out of range`);
      if (!this.whole) this.s.src.ensureView(s.macPairs, d.mac[row] * 12, d.mac[row] * 12 + 12);
    } else d.mac[row] = 0;
    const times = this.times;
    times.plusZz(this.prevHi, this.prevLo);
    this.prevHi = d.minHi[row] = times.hi;
    this.prevLo = d.minLo[row] = times.lo;
    times.plusUv(this.prevHi, this.prevLo);
    d.maxHi[row] = times.hi;
    d.maxLo[row] = times.lo;
    const packets = this.counts.uv();
    if (packets === 0) fail(`flow ${j}: no packet`);
    d.flowPackets[row] = packets;
    d.flowCap[row] = this.counts.uv();
    d.flowWire[row] = d.flowCap[row] + (s.wireColumn ? this.wire.uv() : 0);
    d.offsetPos[row] = this.offs.pos;
    this.prevFirst = d.firstOffset[row] = this.prevFirst + this.offs.uv();
    this.offs.skip(packets - 1);
  }

  /** After the last flow: every column must be used up exactly. */
  done(): void {
    if (this.portAt !== this.v.ports.length) this.s.fail('flow_ports has entries left over');
    for (const r of [this.cls, this.addrs, this.macs, this.times, this.counts, this.offs]) r.done();
    if (this.v.wireColumn) this.wire.done();
  }
}

/**
 * One KeyTable (recorder/index.fbs), read forward from where the previous
 * lookup stopped, or from the nearest checkpoint when that is further on.
 */
class KeyReader {
  private readonly count: number;
  private readonly every: number;
  private readonly checkpoints: number;
  private readonly r: VarintReader;
  private readonly cp = new KeyCheckpoint();
  private readonly nextCp = new KeyCheckpoint();
  /** Ordinal of the entry at r.pos (count when at the end), and the values deltas are taken from. */
  private i: number;
  private prevKey = 0;
  private prevFirst = 0;

  /** `dense`: the keys are the dictionary entries 0..count-1 and are not written. */
  constructor(
    private readonly table: KeyTable | null,
    private readonly dense: boolean,
    private readonly flowCount: number,
    private readonly src: SegmentBytes,
    private readonly fail: Fail,
  ) {
    this.count = table?.count() ?? 0;
    this.every = table?.every() ?? 1;
    this.checkpoints = table?.checkpointsLength() ?? 0;
    if (this.every === 0 || this.checkpoints !== Math.ceil(this.count / this.every)) fail('key table checkpoints do not match its keys');
    this.r = new VarintReader(table?.entriesArray() ?? EMPTY, 'key table', fail);
    this.i = this.count;
  }

  /** Appends to `out` the flows of the keys in [low, high]; calls must come in increasing order of keys. */
  flows(low: number, high: number, out: number[]): void {
    this.toward(low);
    const r = this.r;
    while (this.i < this.count) {
      const at = r.pos;
      if (this.i % this.every === 0) this.enter(this.i / this.every);
      const key = this.dense ? this.i : this.prevKey + r.uv();
      if (key > high) {
        r.pos = at;
        return;
      }
      const n = r.uv();
      const z = r.uv();
      const first = this.prevFirst + (z % 2 ? -(z + 1) / 2 : z / 2);
      if (n === 0 || first < 0) this.fail(`key ${key}: bad entry`);
      if (key >= low) {
        let f = first;
        out.push(f);
        for (let q = 1; q < n; q++) out.push((f += r.uv()));
        if (f >= this.flowCount) this.fail(`key ${key}: flow ${f} out of range`);
      } else r.skip(n - 1);
      this.prevKey = key;
      this.prevFirst = first;
      this.i++;
    }
  }

  /**
   * At checkpoint k: deltas start again from 0, and the entries up to the
   * next checkpoint are fetched; reading stops there until it enters that one.
   */
  private enter(k: number): void {
    this.prevKey = this.prevFirst = 0;
    const r = this.r;
    const next = k + 1 < this.checkpoints ? this.table!.checkpoints(k + 1, this.nextCp)!.at() : r.bytes.length;
    r.limit = Math.min(next, r.bytes.length);
    this.src.ensureView(r.bytes, Math.min(r.pos, r.limit), r.limit);
  }

  /** Moves to the last checkpoint at or before `key` unless reading on from here is shorter. */
  private toward(key: number): void {
    const { cp, table } = this;
    if (!table || this.checkpoints === 0) return;
    let k: number;
    if (this.dense) k = Math.min(Math.floor(key / this.every), this.checkpoints - 1);
    else {
      let lo = 0, hi = this.checkpoints - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (table.checkpoints(mid, cp)!.key() <= key) lo = mid;
        else hi = mid - 1;
      }
      k = lo;
    }
    if (k * this.every <= this.i && this.i < this.count && this.prevKey < key) return;
    this.i = k * this.every;
    this.r.pos = table.checkpoints(k, cp)!.at();
  }
}

/** A segment's key tables and flow checkpoints; see KeyLookup. */
class SegmentKeys implements KeyLookup {
  constructor(private readonly s: SegmentData) {}

  ipv4(low: number, high: number): Uint32Array {
    return this.lookup(this.s.seg.ipv4Flows(), false, [[low, high]]);
  }

  /** The IPv6 table is keyed by dictionary entry: the dictionary is fetched and scanned. */
  ipv6(matches: (addr: Uint8Array) => boolean): Uint32Array {
    const { ipv6 } = this.s.dictionaries;
    guarded(this.s.fail, () => this.s.src.ensureView(ipv6));
    const entries: number[] = [];
    for (let e = 0; e < ipv6.length / 16; e++) if (matches(ipv6.subarray(16 * e, 16 * e + 16))) entries.push(e);
    return this.ipv6Entries(entries);
  }

  /** Flows with one of these ipv6 dictionary entries (increasing) as endpoint A or B. */
  ipv6Entries(entries: readonly number[]): Uint32Array {
    return this.lookup(this.s.seg.ipv6Flows(), true, entries.map((e) => [e, e]));
  }

  ports(low: number, high: number): Uint32Array {
    return this.lookup(this.s.seg.portFlows(), false, [[low, high]]);
  }

  ofClasses(classes: Uint8Array): Uint32Array {
    const { s } = this;
    return guarded(s.fail, () => {
      const { classColumn } = s.views;
      s.src.ensureView(classColumn);
      const r = new VarintReader(classColumn, 'flow_class', s.fail);
      const out: number[] = [];
      for (let j = 0; j < s.flowCount; j++) if (classes[r.uv()]) out.push(j);
      return Uint32Array.from(out);
    });
  }

  columns(flows: Uint32Array): FlowColumns {
    const { s } = this;
    return guarded(s.fail, () => {
      const d = newColumns(s, flows.length, flows);
      if (flows.length === 0) return d;
      const reader = new FlowReader(s, false);
      const cp = new FlowCheckpoint();
      let positioned = false;
      for (let row = 0; row < flows.length; row++) {
        const j = flows[row];
        if (j >= s.flowCount || (positioned && j < reader.next)) s.fail(`flow ${j} asked out of order or range`);
        // Jump when the checkpoint is past where reading stands; each flow in between costs a decode.
        const k = Math.floor(j / s.checkpointEvery);
        if (!positioned || k * s.checkpointEvery > reader.next) {
          const at = s.seg.flowCheckpoints(k, cp);
          if (!at) s.fail(`flow ${j}: no checkpoint`);
          reader.seek(k, at!);
          positioned = true;
        }
        while (reader.next < j) reader.read(d, row);
        reader.read(d, row);
      }
      return d;
    });
  }

  private lookup(table: KeyTable | null, dense: boolean, ranges: readonly (readonly [number, number])[]): Uint32Array {
    const { s } = this;
    return guarded(s.fail, () => {
      const reader = new KeyReader(table, dense, s.flowCount, s.src, s.fail);
      const out: number[] = [];
      for (const [low, high] of ranges) reader.flows(low, high, out);
      const flows = Uint32Array.from(out).sort();
      let n = 0;
      for (let q = 0; q < flows.length; q++) if (q === 0 || flows[q] !== flows[n - 1]) flows[n++] = flows[q];
      return flows.subarray(0, n);
    });
  }
}

/**
 * One segment: its header, dictionaries and time table decoded when read;
 * its flows decoded when asked for, all of them (all()) or, through the key
 * tables, a few.
 */
class SegmentData implements SegmentFlows {
  readonly version: number;
  readonly linktype: number;
  readonly nano: boolean;
  readonly snaplen: number;
  readonly start: number;
  readonly end: number;
  readonly packets: number;
  readonly capBytes: number;
  readonly wireBytes: number;
  readonly minTs: bigint;
  readonly maxTs: bigint;
  readonly ordered: boolean;
  readonly flowCount: number;
  readonly dictionaries: SegmentDictionaries;
  readonly checkpointEvery: number;
  readonly checkpointCount: number;
  readonly keys: SegmentKeys | undefined;
  private chunkTable: ChunkTable | undefined | null = null;
  private viewsMade: SegmentViews | undefined;
  private decoded: Columns | undefined;
  private timeTable: TimeBlock[] | undefined;

  /** `src`: the segment's bytes; the columns are fetched only as flows are decoded. */
  constructor(readonly seg: Segment, readonly src: SegmentBytes, readonly base: number, readonly fail: Fail) {
    const version = seg.version();
    if (version !== INDEX_FORMAT_VERSION) fail(`unsupported format version ${version}`);
    this.version = version;
    const nClasses = seg.classesLength();
    const views = (): SegmentViews => this.views;
    const d: SegmentDictionaries = {
      classFlags: new Uint8Array(nClasses),
      classProto: new Uint8Array(nClasses),
      classEther: new Uint16Array(nClasses),
      classVlan: new Uint16Array(nClasses),
      get ipv4() {
        return views().ipv4;
      },
      get ipv6() {
        return views().ipv6;
      },
      get macPairs() {
        return views().macPairs;
      },
    };
    const fc = new FlowClass();
    for (let c = 0; c < nClasses; c++) {
      seg.classes(c, fc);
      d.classFlags[c] = fc.flags();
      d.classProto[c] = fc.ipproto();
      d.classEther[c] = fc.ethertype();
      d.classVlan[c] = fc.vlan();
    }
    this.dictionaries = d;
    this.linktype = seg.linktype();
    this.nano = seg.nano();
    this.snaplen = seg.snaplen();
    this.start = this.num(seg.start(), 'start');
    this.end = this.num(seg.end(), 'end');
    this.packets = this.num(seg.packets(), 'packets');
    this.capBytes = this.num(seg.capBytes(), 'cap_bytes');
    this.wireBytes = this.num(seg.wireBytes(), 'wire_bytes');
    this.minTs = seg.minTs();
    this.maxTs = seg.maxTs();
    this.ordered = seg.ordered();
    this.flowCount = seg.flowCount();
    this.checkpointEvery = seg.flowCheckpointEvery();
    this.checkpointCount = seg.flowCheckpointsLength();
    if (this.checkpointEvery > 0 && this.checkpointCount !== Math.ceil(this.flowCount / this.checkpointEvery)) {
      fail('flow checkpoints do not match the flows');
    }
    // An index written before key tables has no checkpoints either (0 = absent).
    this.keys = this.checkpointEvery > 0 ? new SegmentKeys(this) : undefined;
  }

  /** The chunk table, decoded on first use (null: not yet). */
  get chunks(): ChunkTable | undefined {
    if (this.chunkTable === null) this.chunkTable = guarded(this.fail, () => decodeChunks(this.seg.chunks(), this.src, this.end, this.fail));
    return this.chunkTable;
  }

  num(v: bigint, what: string): number {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} out of range`);
    return Number(v);
  }

  /**
   * The columns and dictionaries, located on first use: a lookup that names
   * no flow of this segment then reads none of their (scattered) length words.
   * Their bytes are fetched whole by all(), by checkpoint runs and by entry
   * for the flows the key tables name.
   */
  get views(): SegmentViews {
    this.viewsMade ??= guarded(this.fail, () => {
      const { seg } = this;
      const v: SegmentViews = {
        classColumn: seg.flowClassArray() ?? EMPTY,
        addrsColumn: seg.flowAddrsArray() ?? EMPTY,
        macsColumn: seg.flowMacsArray() ?? EMPTY,
        timesColumn: seg.flowTimesArray() ?? EMPTY,
        countsColumn: seg.flowCountsArray() ?? EMPTY,
        ports: seg.flowPortsArray() ?? new Uint16Array(0),
        // Empty is absent too: re-encoding an index (writeIndexWithChunks) writes every vector.
        wireColumn: seg.flowWireLength() ? seg.flowWireArray() : null,
        offsets: seg.flowOffsetsArray() ?? EMPTY,
        ipv4: seg.ipv4Array() ?? new Uint32Array(0),
        ipv6: seg.ipv6Array() ?? EMPTY,
        macPairs: seg.macPairsArray() ?? EMPTY,
      };
      if (v.ipv6.length % 16 !== 0) this.fail('ipv6 dictionary is not a whole number of addresses');
      if (v.macPairs.length % 12 !== 0) this.fail('MAC dictionary is not a whole number of pairs');
      return v;
    });
    return this.viewsMade;
  }

  all(): Columns {
    this.decoded ??= guarded(this.fail, () => {
      const d = newColumns(this, this.flowCount, undefined);
      const v = this.views;
      for (const column of [v.classColumn, v.addrsColumn, v.macsColumn, v.timesColumn, v.countsColumn,
        v.wireColumn ?? EMPTY, v.offsets, v.ports, v.ipv4, v.ipv6, v.macPairs]) this.src.ensureView(column);
      const reader = new FlowReader(this, true);
      for (let j = 0; j < this.flowCount; j++) reader.read(d, j);
      reader.done();
      return d;
    });
    return this.decoded;
  }

  /** The time table, decoded on first use: a query whose range holds the whole file never needs it. */
  get blocks(): TimeBlock[] {
    this.timeTable ??= guarded(this.fail, () => this.decodeBlocks());
    return this.timeTable;
  }

  /** Offset of the first record: where the first block starts, the segment's end when it has none. */
  get firstRecord(): number {
    if (this.seg.blockCount() === 0) return this.end;
    return guarded(this.fail, () => {
      const column = this.seg.blocksArray() ?? EMPTY;
      this.src.ensureView(column, 0, Math.min(column.length, 10));
      return this.start + new VarintReader(column.subarray(0, 10), 'blocks', this.fail).uv();
    });
  }

  private decodeBlocks(): TimeBlock[] {
    const out: TimeBlock[] = [];
    const column = this.seg.blocksArray() ?? EMPTY;
    this.src.ensureView(column);
    const blocks = new VarintReader(column, 'blocks', this.fail);
    const unit = this.nano ? 1n : 1000n;
    let prevOff = this.start;
    let prevHi = hiOf(this.minTs), prevLo = loOf(this.minTs);
    for (let b = 0; b < this.seg.blockCount(); b++) {
      const offset = prevOff + blocks.uv();
      const packets = blocks.uv();
      blocks.plusZz(prevHi, prevLo);
      prevHi = blocks.hi;
      prevLo = blocks.lo;
      blocks.plusUv(prevHi, prevLo);
      out.push({ offset, end: this.end, packets, minNs: ticks(prevHi, prevLo) * unit, maxNs: ticks(blocks.hi, blocks.lo) * unit });
      if (b > 0) out[b - 1].end = offset;
      prevOff = offset;
    }
    blocks.done();
    return out;
  }
}

function decodeSegment(src: SegmentBytes, path: string, k: number, base: number): SegmentData {
  const fail = (defect: string): never => {
    throw new IndexError(path, `segment ${k}: ${defect}`);
  };
  return guarded(fail, () => {
    if (src.length < 8) fail('too short for a flatbuffer');
    src.ensure(0, 4);
    const root = new DataView(src.bytes.buffer, src.bytes.byteOffset, 4).getUint32(0, true);
    if (root + 4 > src.length) fail('root table out of bounds');
    const bb = src.complete ? new ByteBuffer(src.bytes) : new FetchingByteBuffer(src);
    return new SegmentData(Segment.getRootAsSegment(bb), src, base, fail);
  });
}

/**
 * A ByteBuffer over a segment read lazily: every flatbuffers accessor reads
 * through these three, so each read first fetches the blocks it touches.
 * Typed-array views (the columns) are fetched explicitly, by range.
 */
class FetchingByteBuffer extends ByteBuffer {
  constructor(private readonly src: SegmentBytes) {
    super(src.bytes);
  }

  override readUint8(offset: number): number {
    this.src.ensure(offset, offset + 1);
    return super.readUint8(offset);
  }

  override readUint16(offset: number): number {
    this.src.ensure(offset, offset + 2);
    return super.readUint16(offset);
  }

  override readInt32(offset: number): number {
    this.src.ensure(offset, offset + 4);
    return super.readInt32(offset);
  }
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

/** Row `j` of decoded columns as flow number `index` of its index. */
function flowView(s: FlowColumns, j: number, index: number, nano: boolean): IndexedFlow {
  const c = s.flowClass[j];
  const flags = s.classFlags[c];
  const unit = nano ? 1n : 1000n;
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
    offsets: () => s.offsets(j),
  };
}

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
  readonly flowCount: number;
  /** Index of each segment's first flow, plus the total. */
  readonly flowBase: number[];
  readonly segmentFlows: readonly SegmentFlows[];
  private allBlocks: TimeBlock[] | undefined;

  constructor(readonly path: string, readonly parts: readonly SegmentData[], partial: boolean, private readonly file: IndexSource) {
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
    this.ordered = parts.length > 0 && parts[parts.length - 1]!.ordered;
    this.flowBase = [0];
    for (const s of parts) this.flowBase.push(this.flowBase[this.flowBase.length - 1] + s.flowCount);
    this.flowCount = this.flowBase[parts.length];
    this.segmentFlows = parts;
  }

  /** Only a published file is compressed, and the chunk table is in its index's last segment. */
  get chunks(): ChunkTable | undefined {
    return this.parts[this.parts.length - 1]?.chunks;
  }

  release(): void {
    this.file.release();
  }

  get bytesRead(): { bytes: number; of: number } {
    return { bytes: this.file.bytesRead, of: this.file.size };
  }

  get timeBlocks(): readonly TimeBlock[] {
    this.allBlocks ??= this.parts.flatMap((s) => s.blocks);
    return this.allBlocks;
  }

  get firstRecord(): number {
    return this.parts.find((s) => s.packets > 0)?.firstRecord ?? this.covered.end;
  }

  flow(index: number): FlowView {
    const [seg, j] = this.locate(index);
    return flowView(seg.all(), j, index, seg.nano);
  }

  *flows(pick?: (seg: SegmentFlows) => Uint32Array | undefined): IterableIterator<IndexedFlow> {
    for (const [k, seg] of this.parts.entries()) {
      const picked = pick && seg.keys ? pick(seg) : undefined;
      const cols = picked ? seg.keys!.columns(picked) : seg.all();
      for (let row = 0; row < cols.flowCount; row++) {
        yield flowView(cols, row, this.flowBase[k]! + (cols.flowIds ? cols.flowIds[row]! : row), seg.nano);
      }
    }
  }

  flowOffsets(index: number): number[] {
    const [s, j] = this.locate(index);
    return s.all().offsets(j);
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
export function checkIndex(path: string, pcapPath?: string, open: (pcap: string) => ByteReader = openPlain): string[] {
  const problems = new Problems(path);
  const partial = isPartialIndexPath(path);
  let index: DecodedIndex;
  let all: Float64Array;
  try {
    index = readWhole(path, partial);
    // Decoding the flows can find more defects.
    all = checkConsistency(index, problems);
  } catch (e) {
    if (e instanceof IndexError) return [...problems.result(), e.message];
    throw e;
  }
  const pcap = pcapPath ?? path.replace(/\.idx$/, '');
  if (pcapPath !== undefined || (pcap !== path && fs.existsSync(pcap))) {
    checkAgainstPcap(index, all, pcap, open, partial, problems);
  }
  return problems.result();
}

/** Checks what the index says about itself; returns all its record offsets, sorted. */
function checkConsistency(index: DecodedIndex, problems: Problems): Float64Array {
  const all = new Float64Array(index.packets);
  let n = 0;
  index.parts.forEach((s, k) => {
    const where = `segment ${k}`;
    const f = s.all();
    let packets = 0, cap = 0, wire = 0;
    let minTs: bigint | undefined, maxTs: bigint | undefined;
    for (let j = 0; j < s.flowCount; j++) {
      const lo = ticks(f.minHi[j], f.minLo[j]);
      const hi = ticks(f.maxHi[j], f.maxLo[j]);
      if (lo > hi) problems.add(`${where} flow ${j}: first time after last time`);
      if (minTs === undefined || lo < minTs) minTs = lo;
      if (maxTs === undefined || hi > maxTs) maxTs = hi;
      packets += f.flowPackets[j];
      cap += f.flowCap[j];
      wire += f.flowWire[j];
      if (f.flowCap[j] > f.flowWire[j]) problems.add(`${where} flow ${j}: more bytes captured than on the wire`);
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
    checkKeys(s, f, where, problems);
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

/**
 * The key tables must name exactly the flows that hold each key, and each
 * flow decoded from its checkpoint must equal the same flow decoded from the
 * segment's start.
 */
function checkKeys(s: SegmentData, f: Columns, where: string, problems: Problems): void {
  const keys = s.keys;
  if (!keys) return;
  const v4 = new Map<number, number[]>();
  const v6 = new Map<number, number[]>();
  const ports = new Map<number, number[]>();
  const withPorts: number[] = [];
  const add = (lists: Map<number, number[]>, a: number, b: number, j: number): void => {
    for (const key of a === b ? [a] : [a, b]) {
      const list = lists.get(key);
      if (list) list.push(j);
      else lists.set(key, [j]);
    }
  };
  for (let j = 0; j < s.flowCount; j++) {
    const flags = f.classFlags[f.flowClass[j]];
    if (flags & META_IPV4) add(v4, f.addrA[j], f.addrB[j], j);
    else if (flags & META_IPV6) add(v6, f.addrA[j], f.addrB[j], j);
    if (flags & META_PORTS) {
      withPorts.push(j);
      add(ports, f.portA[j], f.portB[j], j);
    }
  }
  const same = (what: string, got: () => Uint32Array, want: readonly number[]): void => {
    try {
      const g = got();
      if (g.length !== want.length || g.some((v, i) => v !== want[i])) {
        problems.add(`${where}: key table says ${what} is in flows [${g.join(', ')}], the flows say [${want.join(', ')}]`);
      }
    } catch (e) {
      if (!(e instanceof IndexError)) throw e;
      problems.add(e.defect);
    }
  };
  for (let e = 0; e < f.ipv4.length; e++) same(`ipv4 entry ${e}`, () => keys.ipv4(f.ipv4[e], f.ipv4[e]), v4.get(e) ?? []);
  same('any ipv4', () => keys.ipv4(0, 0xffffffff), [...new Set([...v4.values()].flat())].sort((a, b) => a - b));
  for (let e = 0; e < f.ipv6.length / 16; e++) same(`ipv6 entry ${e}`, () => keys.ipv6Entries([e]), v6.get(e) ?? []);
  for (const [p, want] of ports) same(`port ${p}`, () => keys.ports(p, p), want);
  same('any port', () => keys.ports(0, 65535), withPorts);

  // The last flow before each checkpoint is the furthest from it.
  const fields = ['flowClass', 'addrA', 'addrB', 'portA', 'portB', 'mac', 'minHi', 'minLo', 'maxHi', 'maxLo',
    'flowPackets', 'flowCap', 'flowWire'] as const;
  for (let j = s.checkpointEvery - 1; j < s.flowCount + s.checkpointEvery - 1; j += s.checkpointEvery) {
    const last = Math.min(j, s.flowCount - 1);
    try {
      const one = keys.columns(Uint32Array.of(last));
      const differs: string[] = fields.filter((name) => one[name][0] !== f[name][last]);
      if (one.offsets(0).join() !== f.offsets(last).join()) differs.push('offsets');
      if (differs.length) problems.add(`${where} flow ${last}: decoded from its checkpoint, ${differs.join(', ')} differ`);
    } catch (e) {
      if (!(e instanceof IndexError)) throw e;
      problems.add(e.defect);
    }
  }
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

function checkAgainstPcap(index: DecodedIndex, all: Float64Array, pcap: string, open: (pcap: string) => ByteReader, partial: boolean, problems: Problems): void {
  const fd = open(pcap);
  try {
    const size = fd.size;
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
      const f = s.all();
      for (let j = 0; j < s.flowCount; j++) {
        const lo = ticks(f.minHi[j], f.minLo[j]);
        const hi = ticks(f.maxHi[j], f.maxLo[j]);
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
        if (cap !== f.flowCap[j] || wire !== f.flowWire[j]) {
          problems.add(`${where}: records hold ${cap}/${wire} captured/wire bytes, index says ${f.flowCap[j]}/${f.flowWire[j]}`);
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
    fd.close();
  }
}

/** Walks the records from the pcap header up to `end`, reading 1 MiB at a time. */
function readRecords(fd: ByteReader, end: number, le: boolean, perSecond: bigint, pcap: string, problems: Problems): PcapRecords {
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
      bufLen = fd.read(buf, 0, buf.length, at);
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
