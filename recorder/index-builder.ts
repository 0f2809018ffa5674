// Builds the flow index of one pcap file from the batches of PacketMeta
// records the native side hands over, one batch per written chunk.
//
// Per record, add() only finds the record's flow (an open-addressing hash
// table over fixed-width u32 keys, no strings, no per-packet objects), updates
// that flow's counters for the current segment and remembers (flow, offset).
// Everything else happens once per segment or per file, in encode().
// Memory: about 8 bytes per packet and 150 bytes per flow of the whole file,
// and as much again for a while during finish().
import { Builder } from 'flatbuffers';
import { FlowCheckpoint, FlowClass, KeyCheckpoint, KeyTable as KeyTableFb, Segment } from './index_generated/index_generated';
import { INDEX_FORMAT_VERSION } from './index-file';
import {
  META_FRAGMENT, META_IPV4, META_IPV6, META_MAC, META_PLAIN, META_PORTS, META_VLAN, META_WORDS,
  WORD_CAPLEN, WORD_DST, WORD_DST_MAC_TAIL, WORD_ETHERTYPE_VLAN, WORD_MACS, WORD_OFFSET_HI,
  WORD_OFFSET_LO, WORD_PORTS, WORD_PROTO_FLAGS, WORD_SRC, WORD_SRC_MAC, WORD_TS_HI, WORD_TS_LO,
  WORD_WIRELEN, metaWords,
} from './packet-meta';

export interface IndexInfo {
  linktype: number;
  nano: boolean;
  snaplen: number;
}

/** Time table granularity: a block ends after this many packets or bytes. */
const BLOCK_PACKETS = 1024;
const BLOCK_BYTES = 1 << 20;

/**
 * A flow checkpoint every this many flows, a key checkpoint every this many
 * keys: finding one flow or one key then decodes at most this many entries,
 * for about 0.4 B a flow and 0.13 B a key.
 */
const FLOW_CHECKPOINT_EVERY = 128;
const KEY_CHECKPOINT_EVERY = 64;

/** Flags that split flows (all of them today; named so that a new one is a decision). */
const KEY_FLAGS = META_IPV4 | META_IPV6 | META_PORTS | META_FRAGMENT | META_VLAN | META_PLAIN | META_MAC;

// Flow key: the canonical (smaller first) endpoint pair, so both directions
// share a flow. Layout in u32 words:
const K_ADDR_A = 0; //      4 words, IPv4 in the first
const K_ADDR_B = 4; //      4 words
const K_PORTS = 8; //       port A | port B << 16
const K_ETHER_VLAN = 9; //  ethertype | vlan << 16
const K_PROTO_FLAGS = 10; // ipproto | flags << 8
const K_MAC_A = 11; //      MAC A bytes 0-3
const K_MAC_TAILS = 12; //  MAC A bytes 4-5 | MAC B bytes 4-5 << 16
const K_MAC_B = 13; //      MAC B bytes 0-3
const KEY_WORDS = 14;

type NumArray = Uint8Array | Uint32Array | Int32Array | Float64Array;

function grown<T extends NumArray>(a: T, need: number): T {
  if (need <= a.length) return a;
  let n = Math.max(a.length * 2, 16);
  while (n < need) n *= 2;
  const b = new (a.constructor as new (length: number) => T)(n);
  b.set(a);
  return b;
}

/**
 * Interns fixed-width keys of u32 words, numbering them 0, 1, ... in order of
 * first sight. Linear probing over a power-of-two table kept at most half
 * full, grown on insertion (the rare path). A slot holds (id + 1, hash) side
 * by side so that a probe reads one cache line before it compares keys.
 */
class KeyTable {
  size = 0;
  keys: Uint32Array;
  private slots: Uint32Array; // 0 is empty

  constructor(private readonly width: number) {
    this.keys = new Uint32Array(16 * width);
    this.slots = new Uint32Array(64);
  }

  /** Id of the key at key[base..base+width), added if new. */
  intern(key: Uint32Array, base: number, hash: number): number {
    const { width, keys, slots } = this;
    const mask = slots.length / 2 - 1;
    for (let s = hash & mask; ; s = (s + 1) & mask) {
      const v = slots[2 * s];
      if (v === 0) return this.insert(key, base, hash, s);
      if (slots[2 * s + 1] !== hash) continue;
      const at = (v - 1) * width;
      let k = 0;
      while (k < width && keys[at + k] === key[base + k]) k++;
      if (k === width) return v - 1;
    }
  }

  private insert(key: Uint32Array, base: number, hash: number, slot: number): number {
    const id = this.size++;
    const { width } = this;
    if (this.size * 4 > this.slots.length) {
      this.rehash();
      const mask = this.slots.length / 2 - 1;
      for (slot = hash & mask; this.slots[2 * slot] !== 0;) slot = (slot + 1) & mask;
    }
    this.keys = grown(this.keys, this.size * width);
    for (let k = 0; k < width; k++) this.keys[id * width + k] = key[base + k];
    this.slots[2 * slot] = id + 1;
    this.slots[2 * slot + 1] = hash;
    return id;
  }

  private rehash(): void {
    const old = this.slots;
    const slots = new Uint32Array(old.length * 2);
    const mask = slots.length / 2 - 1;
    for (let o = 0; o < old.length; o += 2) {
      if (old[o] === 0) continue;
      let s = old[o + 1] & mask;
      while (slots[2 * s] !== 0) s = (s + 1) & mask;
      slots[2 * s] = old[o];
      slots[2 * s + 1] = old[o + 1];
    }
    this.slots = slots;
  }
}

function hashWords(key: Uint32Array, base: number, width: number): number {
  let h = 0x2545f491;
  for (let k = 0; k < width; k++) {
    h = Math.imul(h ^ key[base + k], 0x9e3779b1);
    h = (h << 15) | (h >>> 17);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  return (h ^ (h >>> 13)) >>> 0;
}

/**
 * Per-flow counters, interleaved so that updating a flow touches two cache
 * lines. Times are ticks of the file's precision as (hi, lo) u32 pairs:
 * nanosecond timestamps pass 2^53, so plain numbers would round them.
 */
class FlowStats {
  count = 0;
  /** Per flow: min hi, min lo, max hi, max lo. */
  times = new Uint32Array(4 * 64);
  /** Per flow: packets, captured bytes, wire bytes. */
  sums = new Float64Array(3 * 64);

  reserve(more: number): void {
    const n = this.count + more;
    this.times = grown(this.times, 4 * n);
    this.sums = grown(this.sums, 3 * n);
  }
}

/** Little-endian base-128 varints into a growing buffer. */
class ByteSink {
  length = 0;
  private buf: Uint8Array;

  constructor(capacity: number) {
    this.buf = new Uint8Array(Math.max(capacity, 16));
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** 0 <= n < 2^53. */
  uv(n: number): void {
    if (n >= 0x80000000) {
      this.uv64(Math.floor(n / 4294967296), n >>> 0);
      return;
    }
    if (this.length + 5 > this.buf.length) this.buf = grown(this.buf, this.length + 5);
    const buf = this.buf;
    let len = this.length;
    while (n > 0x7f) {
      buf[len++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[len++] = n;
    this.length = len;
  }

  uv64(hi: number, lo: number): void {
    if (this.length + 10 > this.buf.length) this.buf = grown(this.buf, this.length + 10);
    const buf = this.buf;
    let len = this.length;
    while (hi !== 0 || lo > 0x7f) {
      buf[len++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[len++] = lo;
    this.length = len;
  }

  /** -2^31 <= n < 2^31, zigzag-encoded. */
  zz(n: number): void {
    this.uv(((n << 1) ^ (n >> 31)) >>> 0);
  }

  /** a - b of two (hi, lo) tick values, unsigned (a >= b). */
  uvDiff(aHi: number, aLo: number, bHi: number, bLo: number): void {
    const lo = aLo - bLo;
    this.uv64((aHi - bHi - (lo < 0 ? 1 : 0)) >>> 0, lo >>> 0);
  }

  /** a - b of two (hi, lo) tick values, signed, zigzag-encoded. */
  zzDiff(aHi: number, aLo: number, bHi: number, bLo: number): void {
    const dLo = aLo - bLo;
    const hi = (aHi - bHi - (dLo < 0 ? 1 : 0)) | 0;
    const lo = dLo >>> 0;
    const sign = hi >> 31;
    this.uv64((((hi << 1) | (lo >>> 31)) ^ sign) >>> 0, ((lo << 1) ^ sign) >>> 0);
  }
}

const lessThan = (aHi: number, aLo: number, bHi: number, bLo: number): boolean =>
  aHi < bHi || (aHi === bHi && aLo < bLo);

/** Dictionary ids renumbered by use, most used first, ties in order of first sight. */
function rankByUse(uses: Uint32Array, size: number): Uint32Array {
  const rank = new Uint32Array(size);
  const ID = 2 ** 26;
  let most = 0;
  for (let id = 0; id < size; id++) most = Math.max(most, uses[id]);
  if (size >= ID || most >= 2 ** 27) {
    // Too many entries for the packed sort below; first-sight order is still correct.
    for (let id = 0; id < size; id++) rank[id] = id;
    return rank;
  }
  // Pack (uses, reversed id) into one exact double so a native numeric sort does it.
  const packed = new Float64Array(size);
  for (let id = 0; id < size; id++) packed[id] = uses[id] * ID + (ID - 1 - id);
  packed.sort();
  for (let r = 0; r < size; r++) rank[ID - 1 - (packed[size - 1 - r] % ID)] = r;
  return rank;
}

/**
 * (key, flow) pairs, added in increasing flow order, written as a KeyTable
 * (recorder/index.fbs): a stable counting sort groups them by key and keeps
 * each key's flows increasing.
 */
class Postings {
  private n = 0;
  private keys: Uint32Array;
  private flows: Uint32Array;

  /** Keys are below `keyLimit`; `dense` tables (dictionaries) have a flow for every key below it and write no key. */
  constructor(private readonly keyLimit: number, private readonly dense: boolean, capacity: number) {
    this.keys = new Uint32Array(capacity);
    this.flows = new Uint32Array(capacity);
  }

  add(key: number, flow: number): void {
    this.keys[this.n] = key;
    this.flows[this.n++] = flow;
  }

  /** The table's offset in `fb`, 0 when it has no pair. */
  write(fb: Builder): number {
    const { n, keys, flows, keyLimit, dense } = this;
    if (n === 0) return 0;
    const start = new Uint32Array(keyLimit + 1);
    for (let i = 0; i < n; i++) start[keys[i] + 1]++;
    for (let k = 0; k < keyLimit; k++) start[k + 1] += start[k];
    const fill = start.slice(0, keyLimit);
    const sorted = new Uint32Array(n);
    for (let i = 0; i < n; i++) sorted[fill[keys[i]]++] = flows[i];

    const sink = new ByteSink(2 * n + 16);
    const cpKey: number[] = [];
    const cpAt: number[] = [];
    let count = 0, prevKey = 0, prevFirst = 0;
    for (let key = 0; key < keyLimit; key++) {
      const from = start[key], to = start[key + 1];
      if (from === to) {
        if (dense) throw new Error(`dictionary entry ${key} has no flow`);
        continue;
      }
      if (count++ % KEY_CHECKPOINT_EVERY === 0) {
        cpKey.push(key);
        cpAt.push(sink.length);
        prevKey = prevFirst = 0;
      }
      if (!dense) sink.uv(key - prevKey);
      prevKey = key;
      sink.uv(to - from);
      sink.zz(sorted[from] - prevFirst);
      prevFirst = sorted[from];
      for (let q = from + 1; q < to; q++) sink.uv(sorted[q] - sorted[q - 1]);
    }
    const vEntries = byteVector(fb, sink.bytes());
    KeyTableFb.startCheckpointsVector(fb, cpKey.length);
    for (let c = cpKey.length - 1; c >= 0; c--) KeyCheckpoint.createKeyCheckpoint(fb, cpKey[c], cpAt[c]);
    return KeyTableFb.createKeyTable(fb, count, KEY_CHECKPOINT_EVERY, vEntries, fb.endVector());
  }
}

/** Where a flow checkpoint's flow starts in each column (recorder/index.fbs FlowCheckpoint). */
interface CheckpointAt {
  cls: number[];
  addrs: number[];
  ports: number[];
  macs: number[];
  times: number[];
  counts: number[];
  wire: number[];
  prevFirstTs: bigint[];
}

/** The flows and packets one encode() call writes: a segment, or the whole file. */
interface EncodeInput {
  start: number;
  end: number;
  stats: FlowStats;
  /** Flow number in `stats` -> global flow id; null when they are the same. */
  globalOf: Uint32Array | null;
  /** Global flow id -> flow number in `stats`; null when they are the same. */
  localOf: Int32Array | null;
  firstPacket: number;
  endPacket: number;
  /** High word of the first packet's offset (only low words are kept per packet). */
  firstOffsetHi: number;
  firstBlock: number;
  endBlock: number;
}

export class IndexBuilder {
  private readonly info: IndexInfo;
  private readonly flows = new KeyTable(KEY_WORDS);
  private readonly key = new Uint32Array(KEY_WORDS);
  /** Per global flow: its first packet went from canonical endpoint B to A. */
  private swapped = new Uint8Array(1024);

  /** Whole-file counters, brought up to date at each segment boundary. */
  private readonly global = new FlowStats();
  /** Counters of the current segment, numbered by first sight in it. */
  private readonly local = new FlowStats();
  private localGlobal = new Uint32Array(1024);
  private localOf = new Int32Array(1024).fill(-1);

  // Per packet, in file order: its global flow and the low word of its offset.
  private packets = 0;
  private pktFlow = new Uint32Array(4096);
  private pktOffLo = new Uint32Array(4096);
  private lastOffHi = 0;
  private lastOffLo = -1;

  // Closed time blocks, and the open one.
  private blocks = 0;
  private blkOff = new Float64Array(64);
  private blkPackets = new Uint32Array(64);
  private blkMinHi = new Uint32Array(64);
  private blkMinLo = new Uint32Array(64);
  private blkMaxHi = new Uint32Array(64);
  private blkMaxLo = new Uint32Array(64);
  private curOff = 0;
  private curPackets = 0;
  private curMinHi = 0;
  private curMinLo = 0;
  private curMaxHi = 0;
  // Whether packet times never went back, from the file's start.
  private ordered = true;
  private packetsSeen = 0;
  private prevHi = 0;
  private prevLo = 0;
  private curMaxLo = 0;

  // The segment being accumulated.
  private segStart = 0;
  private segPacket = 0;
  private segBlock = 0;
  private segOffHi = 0;
  private fileOffHi = 0;
  private finished = false;

  constructor(info: IndexInfo) {
    this.info = { ...info };
  }

  /** Distinct flows of the file so far. */
  get flowCount(): number {
    return this.flows.size;
  }

  /** Earliest packet time so far, in ns at the file's precision (0n before any packet). */
  get minNs(): bigint {
    return this.timeBound(this.blkMinHi, this.blkMinLo, this.curMinHi, this.curMinLo, lessThan);
  }

  /** Latest packet time so far, in ns at the file's precision (0n before any packet). */
  get maxNs(): bigint {
    return this.timeBound(this.blkMaxHi, this.blkMaxLo, this.curMaxHi, this.curMaxLo,
      (aHi, aLo, bHi, bLo) => lessThan(bHi, bLo, aHi, aLo));
  }

  /** Indexes one batch of PacketMeta records, in file order. */
  add(meta: ArrayBuffer, count: number): void {
    if (this.finished) throw new Error('IndexBuilder.add() after finish()');
    if (count === 0) return;
    const w = metaWords(meta, count);
    this.checkOffsets(w, count);
    this.reserve(count);

    const { flows, key, local } = this;
    const nano = this.info.nano;
    const swapped = this.swapped;
    const localOf = this.localOf;
    const localGlobal = this.localGlobal;
    const pktFlow = this.pktFlow;
    const pktOffLo = this.pktOffLo;
    const { times, sums } = local;
    let nLocal = local.count;
    let n = this.packets;

    for (let i = 0; i < count; i++) {
      const r = i * META_WORDS;
      const protoFlags = w[r + WORD_PROTO_FLAGS];
      const flags = (protoFlags >>> 8) & KEY_FLAGS;
      const ip = (flags & (META_IPV4 | META_IPV6)) !== 0;
      const ip6 = (flags & META_IPV6) !== 0;

      // Endpoints as (addr[4], port) and MACs as (bytes 0-3, bytes 4-5), zero when absent.
      const s0 = ip ? w[r + WORD_SRC] : 0;
      const s1 = ip6 ? w[r + WORD_SRC + 1] : 0;
      const s2 = ip6 ? w[r + WORD_SRC + 2] : 0;
      const s3 = ip6 ? w[r + WORD_SRC + 3] : 0;
      const d0 = ip ? w[r + WORD_DST] : 0;
      const d1 = ip6 ? w[r + WORD_DST + 1] : 0;
      const d2 = ip6 ? w[r + WORD_DST + 2] : 0;
      const d3 = ip6 ? w[r + WORD_DST + 3] : 0;
      const ports = ip && (flags & META_PORTS) !== 0 ? w[r + WORD_PORTS] : 0;
      const sp = ports & 0xffff;
      const dp = ports >>> 16;
      let sm0 = 0, sm1 = 0, dm0 = 0, dm1 = 0;
      if (flags & META_MAC) {
        const mix = w[r + WORD_MACS];
        const tail = w[r + WORD_DST_MAC_TAIL];
        sm0 = w[r + WORD_SRC_MAC];
        sm1 = mix & 0xffff;
        dm0 = ((mix >>> 16) | (tail << 16)) >>> 0;
        dm1 = tail >>> 16;
      }

      // Canonical order: smaller endpoint first; MACs break ties (and order non-IP).
      let cmp = s0 - d0 || s1 - d1 || s2 - d2 || s3 - d3 || sp - dp;
      if (cmp === 0) cmp = sm0 - dm0 || sm1 - dm1;
      const swap = cmp > 0;
      if (swap) {
        key[K_ADDR_A] = d0; key[K_ADDR_A + 1] = d1; key[K_ADDR_A + 2] = d2; key[K_ADDR_A + 3] = d3;
        key[K_ADDR_B] = s0; key[K_ADDR_B + 1] = s1; key[K_ADDR_B + 2] = s2; key[K_ADDR_B + 3] = s3;
        key[K_PORTS] = dp | (sp << 16);
        key[K_MAC_A] = dm0; key[K_MAC_B] = sm0; key[K_MAC_TAILS] = dm1 | (sm1 << 16);
      } else {
        key[K_ADDR_A] = s0; key[K_ADDR_A + 1] = s1; key[K_ADDR_A + 2] = s2; key[K_ADDR_A + 3] = s3;
        key[K_ADDR_B] = d0; key[K_ADDR_B + 1] = d1; key[K_ADDR_B + 2] = d2; key[K_ADDR_B + 3] = d3;
        key[K_PORTS] = ports;
        key[K_MAC_A] = sm0; key[K_MAC_B] = dm0; key[K_MAC_TAILS] = sm1 | (dm1 << 16);
      }
      const ev = w[r + WORD_ETHERTYPE_VLAN];
      key[K_ETHER_VLAN] = flags & META_VLAN ? ev : ev & 0xffff;
      key[K_PROTO_FLAGS] = (ip ? protoFlags & 0xff : 0) | (flags << 8);

      const before = flows.size;
      const g = flows.intern(key, 0, hashWords(key, 0, KEY_WORDS));
      if (g === before) swapped[g] = swap ? 1 : 0;

      const offLo = w[r + WORD_OFFSET_LO];
      const offHi = w[r + WORD_OFFSET_HI];
      if (n === this.segPacket) this.segOffHi = offHi;
      if (n === 0) this.fileOffHi = offHi;

      // Ticks: ns, or us (floor, as the pcap file stores them) when not nano.
      let tHi = w[r + WORD_TS_HI];
      let tLo = w[r + WORD_TS_LO];
      if (!nano) {
        const qHi = Math.floor(tHi / 1000);
        tLo = Math.floor(((tHi - qHi * 1000) * 4294967296 + tLo) / 1000);
        tHi = qHi;
      }

      let l = localOf[g];
      const t = 4 * (l < 0 ? nLocal : l);
      const c = 3 * (l < 0 ? nLocal : l);
      if (l < 0) {
        l = nLocal++;
        localOf[g] = l;
        localGlobal[l] = g;
        times[t] = times[t + 2] = tHi;
        times[t + 1] = times[t + 3] = tLo;
        sums[c] = sums[c + 1] = sums[c + 2] = 0;
      } else if (lessThan(tHi, tLo, times[t], times[t + 1])) {
        times[t] = tHi;
        times[t + 1] = tLo;
      } else if (lessThan(times[t + 2], times[t + 3], tHi, tLo)) {
        times[t + 2] = tHi;
        times[t + 3] = tLo;
      }
      sums[c]++;
      sums[c + 1] += w[r + WORD_CAPLEN];
      sums[c + 2] += w[r + WORD_WIRELEN];

      pktFlow[n] = g;
      pktOffLo[n] = offLo;
      n++;
      this.toBlock(offHi * 4294967296 + offLo, tHi, tLo);
    }

    local.count = nLocal;
    this.packets = n;
  }

  /**
   * Offsets must increase by less than 4 GiB from record to record (only
   * their low words are kept per packet) and not fall before the open segment. Checked before anything changes, so a
   * refused batch leaves the builder as it was.
   */
  private checkOffsets(w: Uint32Array, count: number): void {
    let hi = this.lastOffHi;
    let lo = this.lastOffLo;
    if (this.packets === this.segPacket && w[WORD_OFFSET_HI] * 4294967296 + w[WORD_OFFSET_LO] < this.segStart) {
      throw new Error('packet offset before the end of the previous segment');
    }
    for (let i = 0; i < count; i++) {
      const offLo = w[i * META_WORDS + WORD_OFFSET_LO];
      const offHi = w[i * META_WORDS + WORD_OFFSET_HI];
      if (offHi < hi || (offHi === hi && offLo <= lo)) {
        throw new Error(`packet offsets must increase (record ${i} of the batch)`);
      }
      if (this.packets + i > 0 && (offHi - hi) * 4294967296 + offLo - lo >= 4294967296) {
        throw new Error(`consecutive records 4 GiB apart or more (record ${i} of the batch)`);
      }
      hi = offHi;
      lo = offLo;
    }
    this.lastOffHi = hi;
    this.lastOffLo = lo;
  }

  /**
   * The index segment of the packets added since the previous segment() call,
   * covering the file's bytes from the previous `committed` (0 at first) to this one.
   */
  segment(committed: number): Uint8Array {
    if (this.finished) throw new Error('IndexBuilder.segment() after finish()');
    this.checkEnd(committed);
    this.closeBlock();
    const bytes = this.encode({
      start: this.segStart,
      end: committed,
      stats: this.local,
      globalOf: this.localGlobal,
      localOf: this.localOf,
      firstPacket: this.segPacket,
      endPacket: this.packets,
      firstOffsetHi: this.segOffHi,
      firstBlock: this.segBlock,
      endBlock: this.blocks,
    });
    this.mergeLocal();
    this.segStart = committed;
    this.segPacket = this.packets;
    this.segBlock = this.blocks;
    return bytes;
  }

  /** The index of the whole file, one segment covering [0, fileBytes). Ends the builder. */
  finish(fileBytes: number): Uint8Array {
    if (this.finished) throw new Error('IndexBuilder.finish() called twice');
    this.checkEnd(fileBytes);
    this.finished = true;
    this.closeBlock();
    this.mergeLocal();
    return this.encode({
      start: 0,
      end: fileBytes,
      stats: this.global,
      globalOf: null,
      localOf: null,
      firstPacket: 0,
      endPacket: this.packets,
      firstOffsetHi: this.fileOffHi,
      firstBlock: 0,
      endBlock: this.blocks,
    });
  }

  /** The block (or open block) time that wins `better`, in ns. */
  private timeBound(his: Uint32Array, los: Uint32Array, curHi: number, curLo: number,
    better: (aHi: number, aLo: number, bHi: number, bLo: number) => boolean): bigint {
    let found = this.curPackets > 0;
    let hi = curHi, lo = curLo;
    for (let b = 0; b < this.blocks; b++) {
      if (!found || better(his[b], los[b], hi, lo)) {
        hi = his[b];
        lo = los[b];
        found = true;
      }
    }
    if (!found) return 0n;
    return ((BigInt(hi) << 32n) | BigInt(lo)) * (this.info.nano ? 1n : 1000n);
  }

  /** The covered range must hold the segment's packets. */
  private checkEnd(end: number): void {
    const last = this.lastOffHi * 4294967296 + this.lastOffLo;
    if (end < this.segStart || (this.packets > this.segPacket && end <= last)) {
      throw new Error(`index end ${end} does not cover the packets added (last record at ${last})`);
    }
  }

  /** Grows every per-packet and per-flow array for `count` more records, up front. */
  private reserve(count: number): void {
    const flows = this.flows.size + count;
    this.swapped = grown(this.swapped, flows);
    if (flows > this.localOf.length) {
      const old = this.localOf.length;
      this.localOf = grown(this.localOf, flows);
      this.localOf.fill(-1, old);
    }
    this.local.reserve(count);
    this.localGlobal = grown(this.localGlobal, this.local.count + count);
    this.global.reserve(flows - this.global.count);
    this.pktFlow = grown(this.pktFlow, this.packets + count);
    this.pktOffLo = grown(this.pktOffLo, this.packets + count);
    const blocks = this.blocks + count;
    this.blkOff = grown(this.blkOff, blocks);
    this.blkPackets = grown(this.blkPackets, blocks);
    this.blkMinHi = grown(this.blkMinHi, blocks);
    this.blkMinLo = grown(this.blkMinLo, blocks);
    this.blkMaxHi = grown(this.blkMaxHi, blocks);
    this.blkMaxLo = grown(this.blkMaxLo, blocks);
  }

  private toBlock(offset: number, tHi: number, tLo: number): void {
    if (this.packetsSeen++ > 0 && lessThan(tHi, tLo, this.prevHi, this.prevLo)) this.ordered = false;
    this.prevHi = tHi;
    this.prevLo = tLo;
    if (this.curPackets === BLOCK_PACKETS || (this.curPackets > 0 && offset - this.curOff >= BLOCK_BYTES)) {
      this.closeBlock();
    }
    if (this.curPackets++ === 0) {
      this.curOff = offset;
      this.curMinHi = this.curMaxHi = tHi;
      this.curMinLo = this.curMaxLo = tLo;
    } else if (lessThan(tHi, tLo, this.curMinHi, this.curMinLo)) {
      this.curMinHi = tHi;
      this.curMinLo = tLo;
    } else if (lessThan(this.curMaxHi, this.curMaxLo, tHi, tLo)) {
      this.curMaxHi = tHi;
      this.curMaxLo = tLo;
    }
  }

  private closeBlock(): void {
    if (this.curPackets === 0) return;
    const b = this.blocks++;
    this.blkOff[b] = this.curOff;
    this.blkPackets[b] = this.curPackets;
    this.blkMinHi[b] = this.curMinHi;
    this.blkMinLo[b] = this.curMinLo;
    this.blkMaxHi[b] = this.curMaxHi;
    this.blkMaxLo[b] = this.curMaxLo;
    this.curPackets = 0;
  }

  /** Folds the segment's counters into the whole-file ones and empties them. */
  private mergeLocal(): void {
    const { local: l, global: g, localGlobal, localOf } = this;
    const lt = l.times, ls = l.sums, gt = g.times, gs = g.sums;
    for (let j = 0; j < l.count; j++) {
      const f = localGlobal[j];
      localOf[f] = -1;
      if (f >= g.count) {
        // New in this segment (flows are numbered in first-sight order).
        g.count = f + 1;
        gt.set(lt.subarray(4 * j, 4 * j + 4), 4 * f);
        gs.set(ls.subarray(3 * j, 3 * j + 3), 3 * f);
        continue;
      }
      if (lessThan(lt[4 * j], lt[4 * j + 1], gt[4 * f], gt[4 * f + 1])) {
        gt[4 * f] = lt[4 * j];
        gt[4 * f + 1] = lt[4 * j + 1];
      }
      if (lessThan(gt[4 * f + 2], gt[4 * f + 3], lt[4 * j + 2], lt[4 * j + 3])) {
        gt[4 * f + 2] = lt[4 * j + 2];
        gt[4 * f + 3] = lt[4 * j + 3];
      }
      gs[3 * f] += ls[3 * j];
      gs[3 * f + 1] += ls[3 * j + 1];
      gs[3 * f + 2] += ls[3 * j + 2];
    }
    l.count = 0;
  }

  private encode(input: EncodeInput): Uint8Array {
    const { stats, globalOf } = input;
    const nFlows = stats.count;
    const keys = this.flows.keys;
    const nPackets = input.endPacket - input.firstPacket;

    // Pass 1: dictionaries and their use counts.
    const classes = new KeyTable(2);
    const ipv4 = new KeyTable(1);
    const ipv6 = new KeyTable(4);
    const macs = new KeyTable(3);
    const classUses = new Uint32Array(nFlows);
    const v4Uses = new Uint32Array(2 * nFlows);
    const v6Uses = new Uint32Array(2 * nFlows);
    const macUses = new Uint32Array(nFlows);
    const flowClass = new Uint32Array(nFlows);
    const flowAddrA = new Uint32Array(nFlows);
    const flowAddrB = new Uint32Array(nFlows);
    const flowMac = new Uint32Array(nFlows);
    const pair = new Uint32Array(3);
    const intern = (t: KeyTable, src: Uint32Array, base: number, width: number): number =>
      t.intern(src, base, hashWords(src, base, width));

    for (let j = 0; j < nFlows; j++) {
      const g = globalOf ? globalOf[j] : j;
      const k = g * KEY_WORDS;
      const flags = keys[k + K_PROTO_FLAGS] >>> 8;
      const c = intern(classes, keys, k + K_ETHER_VLAN, 2);
      flowClass[j] = c;
      classUses[c]++;
      // Endpoint A of the index is the source of the flow's first packet.
      const a = this.swapped[g] ? K_ADDR_B : K_ADDR_A;
      const b = this.swapped[g] ? K_ADDR_A : K_ADDR_B;
      if (flags & META_IPV4) {
        flowAddrA[j] = intern(ipv4, keys, k + a, 1);
        flowAddrB[j] = intern(ipv4, keys, k + b, 1);
        v4Uses[flowAddrA[j]]++;
        v4Uses[flowAddrB[j]]++;
      } else if (flags & META_IPV6) {
        flowAddrA[j] = intern(ipv6, keys, k + a, 4);
        flowAddrB[j] = intern(ipv6, keys, k + b, 4);
        v6Uses[flowAddrA[j]]++;
        v6Uses[flowAddrB[j]]++;
      }
      if (flags & META_MAC) {
        const tails = keys[k + K_MAC_TAILS];
        if (this.swapped[g]) {
          pair[0] = keys[k + K_MAC_B]; pair[1] = keys[k + K_MAC_A]; pair[2] = (tails >>> 16) | (tails << 16);
        } else {
          pair[0] = keys[k + K_MAC_A]; pair[1] = keys[k + K_MAC_B]; pair[2] = tails;
        }
        flowMac[j] = intern(macs, pair, 0, 3);
        macUses[flowMac[j]]++;
      }
    }
    const classRank = rankByUse(classUses, classes.size);
    const v4Rank = rankByUse(v4Uses, ipv4.size);
    const v6Rank = rankByUse(v6Uses, ipv6.size);
    const macRank = rankByUse(macUses, macs.size);

    // Header times: the blocks hold every packet's time.
    let minHi = 0, minLo = 0, maxHi = 0, maxLo = 0;
    for (let b = input.firstBlock; b < input.endBlock; b++) {
      if (b === input.firstBlock || lessThan(this.blkMinHi[b], this.blkMinLo[b], minHi, minLo)) {
        minHi = this.blkMinHi[b];
        minLo = this.blkMinLo[b];
      }
      if (b === input.firstBlock || lessThan(maxHi, maxLo, this.blkMaxHi[b], this.blkMaxLo[b])) {
        maxHi = this.blkMaxHi[b];
        maxLo = this.blkMaxLo[b];
      }
    }

    // Pass 2: per-flow streams.
    const sClass = new ByteSink(nFlows);
    const sAddrs = new ByteSink(nFlows * 4);
    const ports = new Uint16Array(2 * nFlows);
    let nPorts = 0;
    const sMacs = new ByteSink(nFlows);
    const sTimes = new ByteSink(nFlows * 4);
    const sCounts = new ByteSink(nFlows * 3);
    const sWire = new ByteSink(nFlows);
    let anyWire = false;
    let capBytes = 0, wireBytes = 0;
    let prevHi = minHi, prevLo = minLo;
    const at: CheckpointAt = { cls: [], addrs: [], ports: [], macs: [], times: [], counts: [], wire: [], prevFirstTs: [] };
    const v4Flows = new Postings(ipv4.size, true, 2 * nFlows);
    const v6Flows = new Postings(ipv6.size, true, 2 * nFlows);
    const portFlows = new Postings(65536, false, 2 * nFlows);
    for (let j = 0; j < nFlows; j++) {
      const g = globalOf ? globalOf[j] : j;
      const k = g * KEY_WORDS;
      const flags = keys[k + K_PROTO_FLAGS] >>> 8;
      if (j % FLOW_CHECKPOINT_EVERY === 0) {
        at.cls.push(sClass.length);
        at.addrs.push(sAddrs.length);
        at.ports.push(nPorts);
        at.macs.push(sMacs.length);
        at.times.push(sTimes.length);
        at.counts.push(sCounts.length);
        at.wire.push(sWire.length);
        at.prevFirstTs.push((BigInt(prevHi) << 32n) | BigInt(prevLo));
      }
      sClass.uv(classRank[flowClass[j]]);
      if (flags & (META_IPV4 | META_IPV6)) {
        const rank = flags & META_IPV4 ? v4Rank : v6Rank;
        const a = rank[flowAddrA[j]], b = rank[flowAddrB[j]];
        sAddrs.uv(a);
        sAddrs.uv(b);
        const table = flags & META_IPV4 ? v4Flows : v6Flows;
        table.add(a, j);
        if (b !== a) table.add(b, j);
      }
      if (flags & META_PORTS) {
        const p = keys[k + K_PORTS];
        const a = this.swapped[g] ? p >>> 16 : p & 0xffff;
        const b = this.swapped[g] ? p & 0xffff : p >>> 16;
        ports[nPorts++] = a;
        ports[nPorts++] = b;
        portFlows.add(a, j);
        if (b !== a) portFlows.add(b, j);
      }
      if (flags & META_MAC) sMacs.uv(macRank[flowMac[j]]);
      const t = stats.times, c = stats.sums;
      sTimes.zzDiff(t[4 * j], t[4 * j + 1], prevHi, prevLo);
      sTimes.uvDiff(t[4 * j + 2], t[4 * j + 3], t[4 * j], t[4 * j + 1]);
      prevHi = t[4 * j];
      prevLo = t[4 * j + 1];
      sCounts.uv(c[3 * j]);
      sCounts.uv(c[3 * j + 1]);
      const extra = c[3 * j + 2] - c[3 * j + 1];
      sWire.uv(extra);
      anyWire ||= extra !== 0;
      capBytes += c[3 * j + 1];
      wireBytes += c[3 * j + 2];
    }

    const { sink: sOffsets, at: offsetsAt, prevFirst: prevFirstOffset } = this.encodeOffsets(input, nPackets);

    const sBlocks = new ByteSink((input.endBlock - input.firstBlock) * 8);
    let prevOff = input.start;
    prevHi = minHi;
    prevLo = minLo;
    for (let b = input.firstBlock; b < input.endBlock; b++) {
      sBlocks.uv(this.blkOff[b] - prevOff);
      sBlocks.uv(this.blkPackets[b]);
      sBlocks.zzDiff(this.blkMinHi[b], this.blkMinLo[b], prevHi, prevLo);
      sBlocks.uvDiff(this.blkMaxHi[b], this.blkMaxLo[b], this.blkMinHi[b], this.blkMinLo[b]);
      prevOff = this.blkOff[b];
      prevHi = this.blkMinHi[b];
      prevLo = this.blkMinLo[b];
    }

    // Flatbuffers are built back to front: vectors first, then the table.
    const fb = new Builder(
      1024 + sClass.length + sAddrs.length + 2 * nPorts + sMacs.length + sTimes.length + sCounts.length +
      (anyWire ? sWire.length : 0) + sOffsets.length + sBlocks.length + 6 * classes.size +
      4 * ipv4.size + 16 * ipv6.size + 12 * macs.size,
    );
    const vClasses = classes.size > 0 ? this.classVector(fb, classes, classRank) : 0;
    const vIpv4 = ipv4.size > 0 ? Segment.createIpv4Vector(fb, ipv4Values(ipv4, v4Rank)) : 0;
    const vIpv6 = ipv6.size > 0 ? byteVector(fb, dictBytes(ipv6, v6Rank, 16)) : 0;
    const vMacs = macs.size > 0 ? byteVector(fb, macPairBytes(macs, macRank)) : 0;
    const vFlowClass = optionalBytes(fb, sClass);
    const vAddrs = optionalBytes(fb, sAddrs);
    const vPorts = nPorts > 0 ? Segment.createFlowPortsVector(fb, ports.subarray(0, nPorts)) : 0;
    const vFlowMacs = optionalBytes(fb, sMacs);
    const vTimes = optionalBytes(fb, sTimes);
    const vCounts = optionalBytes(fb, sCounts);
    const vWire = anyWire ? optionalBytes(fb, sWire) : 0;
    const vOffsets = optionalBytes(fb, sOffsets);
    const vBlocks = optionalBytes(fb, sBlocks);
    const vV4Flows = v4Flows.write(fb);
    const vV6Flows = v6Flows.write(fb);
    const vPortFlows = portFlows.write(fb);
    let vCheckpoints = 0;
    if (nFlows > 0) {
      Segment.startFlowCheckpointsVector(fb, at.cls.length);
      for (let c = at.cls.length - 1; c >= 0; c--) {
        FlowCheckpoint.createFlowCheckpoint(fb, at.cls[c], at.addrs[c], at.ports[c], at.macs[c], at.times[c], at.counts[c],
          anyWire ? at.wire[c] : 0, offsetsAt[c], at.prevFirstTs[c], BigInt(prevFirstOffset[c]));
      }
      vCheckpoints = fb.endVector();
    }

    const ticks = (hi: number, lo: number): bigint => (BigInt(hi) << 32n) | BigInt(lo);
    Segment.startSegment(fb);
    Segment.addVersion(fb, INDEX_FORMAT_VERSION);
    Segment.addLinktype(fb, this.info.linktype);
    Segment.addNano(fb, this.info.nano);
    Segment.addSnaplen(fb, this.info.snaplen);
    Segment.addStart(fb, BigInt(input.start));
    Segment.addEnd(fb, BigInt(input.end));
    Segment.addPackets(fb, BigInt(nPackets));
    Segment.addCapBytes(fb, BigInt(capBytes));
    Segment.addWireBytes(fb, BigInt(wireBytes));
    Segment.addMinTs(fb, ticks(minHi, minLo));
    Segment.addMaxTs(fb, ticks(maxHi, maxLo));
    Segment.addFlowCount(fb, nFlows);
    if (vClasses) Segment.addClasses(fb, vClasses);
    if (vIpv4) Segment.addIpv4(fb, vIpv4);
    if (vIpv6) Segment.addIpv6(fb, vIpv6);
    if (vMacs) Segment.addMacPairs(fb, vMacs);
    if (vFlowClass) Segment.addFlowClass(fb, vFlowClass);
    if (vAddrs) Segment.addFlowAddrs(fb, vAddrs);
    if (vPorts) Segment.addFlowPorts(fb, vPorts);
    if (vFlowMacs) Segment.addFlowMacs(fb, vFlowMacs);
    if (vTimes) Segment.addFlowTimes(fb, vTimes);
    if (vCounts) Segment.addFlowCounts(fb, vCounts);
    if (vWire) Segment.addFlowWire(fb, vWire);
    if (vOffsets) Segment.addFlowOffsets(fb, vOffsets);
    Segment.addBlockCount(fb, input.endBlock - input.firstBlock);
    if (vBlocks) Segment.addBlocks(fb, vBlocks);
    Segment.addOrdered(fb, this.ordered);
    if (vV4Flows) Segment.addIpv4Flows(fb, vV4Flows);
    if (vV6Flows) Segment.addIpv6Flows(fb, vV6Flows);
    if (vPortFlows) Segment.addPortFlows(fb, vPortFlows);
    Segment.addFlowCheckpointEvery(fb, FLOW_CHECKPOINT_EVERY);
    if (vCheckpoints) Segment.addFlowCheckpoints(fb, vCheckpoints);
    Segment.finishSegmentBuffer(fb, Segment.endSegment(fb));
    return fb.asUint8Array().slice();
  }

  /**
   * Each flow's record offsets, grouped by flow (a counting sort of the
   * packets), with where each checkpointed flow starts and the first offset
   * of the flow before it.
   */
  private encodeOffsets(input: EncodeInput, nPackets: number): { sink: ByteSink; at: number[]; prevFirst: number[] } {
    const { stats, localOf } = input;
    const nFlows = stats.count;
    const first = new Float64Array(nFlows + 1);
    for (let j = 0; j < nFlows; j++) first[j + 1] = first[j] + stats.sums[3 * j];
    const fill = first.slice(0, nFlows);
    const sorted = new Float64Array(nPackets);
    let hi = input.firstOffsetHi;
    let prevLo = -1;
    for (let p = input.firstPacket; p < input.endPacket; p++) {
      const lo = this.pktOffLo[p];
      if (lo < prevLo) hi++; // consecutive records are less than 4 GiB apart (checkOffsets)
      prevLo = lo;
      const g = this.pktFlow[p];
      sorted[fill[localOf ? localOf[g] : g]++] = hi * 4294967296 + lo;
    }
    const sink = new ByteSink(nPackets * 3 + 16);
    let prevFirst = input.start;
    const at: number[] = [];
    const prevFirsts: number[] = [];
    for (let j = 0; j < nFlows; j++) {
      if (j % FLOW_CHECKPOINT_EVERY === 0) {
        at.push(sink.length);
        prevFirsts.push(prevFirst);
      }
      let prev = sorted[first[j]];
      sink.uv(prev - prevFirst);
      prevFirst = prev;
      for (let q = first[j] + 1; q < first[j + 1]; q++) {
        sink.uv(sorted[q] - prev);
        prev = sorted[q];
      }
    }
    return { sink, at, prevFirst: prevFirsts };
  }

  private classVector(fb: Builder, classes: KeyTable, rank: Uint32Array): number {
    const byRank = new Uint32Array(classes.size);
    for (let id = 0; id < classes.size; id++) byRank[rank[id]] = id;
    Segment.startClassesVector(fb, classes.size);
    for (let r = classes.size - 1; r >= 0; r--) {
      const ev = classes.keys[2 * byRank[r]];
      const pf = classes.keys[2 * byRank[r] + 1];
      FlowClass.createFlowClass(fb, pf >>> 8, pf & 0xff, ev & 0xffff, ev >>> 16);
    }
    return fb.endVector();
  }
}

/**
 * A [ubyte] vector. createString() has the same wire format plus a NUL after
 * the bytes, and copies in one loop instead of one builder call per byte.
 */
function byteVector(fb: Builder, bytes: Uint8Array): number {
  return fb.createString(bytes);
}

const optionalBytes = (fb: Builder, sink: ByteSink): number =>
  sink.length > 0 ? byteVector(fb, sink.bytes()) : 0;

/** IPv4 keys hold the address bytes as read little-endian; the index stores a.b.c.d as a number. */
function ipv4Values(t: KeyTable, rank: Uint32Array): Uint32Array {
  const out = new Uint32Array(t.size);
  for (let id = 0; id < t.size; id++) {
    const v = t.keys[id];
    out[rank[id]] = ((v & 0xff) << 24 | (v & 0xff00) << 8 | (v >>> 8) & 0xff00 | v >>> 24) >>> 0;
  }
  return out;
}

/** Keys whose words are raw little-endian bytes, in rank order. */
function dictBytes(t: KeyTable, rank: Uint32Array, size: number): Uint8Array {
  const words = size / 4;
  const out = new Uint32Array(t.size * words);
  for (let id = 0; id < t.size; id++) out.set(t.keys.subarray(id * words, (id + 1) * words), rank[id] * words);
  return new Uint8Array(out.buffer);
}

/** MAC pair keys are (A bytes 0-3, B bytes 0-3, A bytes 4-5 | B bytes 4-5 << 16). */
function macPairBytes(t: KeyTable, rank: Uint32Array): Uint8Array {
  const out = new Uint8Array(t.size * 12);
  const v = new DataView(out.buffer);
  for (let id = 0; id < t.size; id++) {
    const at = rank[id] * 12;
    const tails = t.keys[id * 3 + 2];
    v.setUint32(at, t.keys[id * 3], true);
    v.setUint16(at + 4, tails & 0xffff, true);
    v.setUint32(at + 6, t.keys[id * 3 + 1], true);
    v.setUint16(at + 10, tails >>> 16, true);
  }
  return out;
}
