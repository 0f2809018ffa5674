// Micro-burst detection (n2disk's --uburst-* options) on the packets' own
// timestamps and wire lengths, so an import finds the bursts its capture
// holds just as live capture does. The rate is measured over a window that
// slides with every packet: (t - window, t]. A burst begins at the first
// packet that takes the window over the threshold, and is dated from the
// oldest packet then in the window (where the dense traffic began); it lasts
// until the last packet that keeps the window over the threshold.
//
// Per packet this is a few typed-array reads and writes, on the JS thread
// that also indexes, so it stays cheap: a FIFO of (time, length) in growable
// typed arrays and a running sum.
import fs from 'node:fs';
import { metaWords, META_WORDS, WORD_TS_HI, WORD_TS_LO, WORD_WIRELEN } from './packet-meta';

export interface BurstOptions {
  windowUs: number;
  linkMbps: number;
  /** Percentage of the link speed the window's rate must exceed. */
  thresholdPct: number;
}

export interface Burst {
  startNs: bigint;
  /** Time of the last packet of the burst. */
  endNs: bigint;
  /** Highest rate of the window during the burst, bits per second. */
  peakBps: number;
}

const TWO32 = 2 ** 32;
/** Times are kept in ns relative to a base so they stay exact doubles; past this the base moves up. */
const REBASE_NS = 2 ** 50;

export class BurstDetector {
  private readonly windowNs: number;
  private readonly thresholdBytes: number;
  // FIFO of the packets in the window: relative ns and wire length.
  private times = new Float64Array(4096);
  private lengths = new Uint32Array(4096);
  private head = 0;
  private tail = 0;
  private windowBytes = 0;
  private baseNs: bigint | undefined;
  private baseHi = 0;
  private baseLo = 0;
  private lastT = 0;
  // The burst in progress, if any (relative ns, peak window bytes).
  private open = false;
  private startT = 0;
  private endT = 0;
  private peakBytes = 0;

  constructor(
    private readonly opts: BurstOptions,
    private readonly onBurst: (b: Burst) => void,
  ) {
    this.windowNs = opts.windowUs * 1000;
    this.thresholdBytes = (opts.linkMbps * 1e6 * (opts.thresholdPct / 100) * (opts.windowUs / 1e6)) / 8;
  }

  add(meta: ArrayBuffer, count: number): void {
    const w = metaWords(meta, count);
    for (let i = 0, at = 0; i < count; i++, at += META_WORDS) {
      const hi = w[at + WORD_TS_HI]!;
      const lo = w[at + WORD_TS_LO]!;
      if (this.baseNs === undefined) this.rebase(hi, lo);
      let t = (hi - this.baseHi) * TWO32 + (lo - this.baseLo);
      if (t > REBASE_NS) t -= this.rebase(hi, lo);
      // An import may go back in time; the window only moves forward.
      if (t < this.lastT) t = this.lastT;
      this.lastT = t;
      this.packet(t, w[at + WORD_WIRELEN]!);
    }
  }

  /** Live capture: a burst whose window has passed with no packet since is over. */
  expire(nowNs: bigint): void {
    if (this.open && this.baseNs !== undefined && nowNs - this.baseNs > BigInt(Math.ceil(this.lastT + this.windowNs))) this.close();
  }

  /** The end of the input: a burst still in progress is reported. */
  finish(): void {
    if (this.open) this.close();
  }

  /** A rate in bits per second as a percentage of the link speed. */
  percentOfLink(bps: number): number {
    return (bps / (this.opts.linkMbps * 1e6)) * 100;
  }

  private packet(t: number, length: number): void {
    if (this.tail === this.times.length) this.compact();
    this.times[this.tail] = t;
    this.lengths[this.tail++] = length;
    this.windowBytes += length;
    const from = t - this.windowNs;
    while (this.times[this.head]! <= from) this.windowBytes -= this.lengths[this.head++]!;
    if (this.windowBytes > this.thresholdBytes) {
      if (!this.open) {
        this.open = true;
        this.startT = this.times[this.head]!;
        this.peakBytes = 0;
      }
      this.endT = t;
      if (this.windowBytes > this.peakBytes) this.peakBytes = this.windowBytes;
    } else if (this.open) {
      this.close();
    }
  }

  private close(): void {
    this.open = false;
    const base = this.baseNs!;
    this.onBurst({
      startNs: base + BigInt(this.startT),
      endNs: base + BigInt(this.endT),
      peakBps: (this.peakBytes * 8) / (this.windowNs / 1e9),
    });
  }

  /** Moves the FIFO to the front of its arrays, growing them when the window fills more than half. */
  private compact(): void {
    const n = this.tail - this.head;
    if (n * 2 > this.times.length) {
      const times = new Float64Array(this.times.length * 2);
      const lengths = new Uint32Array(this.times.length * 2);
      times.set(this.times.subarray(this.head, this.tail));
      lengths.set(this.lengths.subarray(this.head, this.tail));
      this.times = times;
      this.lengths = lengths;
    } else {
      this.times.copyWithin(0, this.head, this.tail);
      this.lengths.copyWithin(0, this.head, this.tail);
    }
    this.head = 0;
    this.tail = n;
  }

  /** Makes (hi, lo) the new zero; returns by how much every kept time moved back. */
  private rebase(hi: number, lo: number): number {
    const newBase = (BigInt(hi) << 32n) | BigInt(lo);
    const shift = this.baseNs === undefined ? 0 : Number(newBase - this.baseNs);
    for (let i = this.head; i < this.tail; i++) this.times[i]! -= shift;
    this.startT -= shift;
    this.endT -= shift;
    this.lastT -= shift;
    this.baseNs = newBase;
    this.baseHi = hi;
    this.baseLo = lo;
    return shift;
  }
}

/** One burst as the JSON line that reports it: start (UTC, µs), duration and peak rate. */
export function burstLine(b: Burst, percentOfLink: number): string {
  const startUs = b.startNs / 1000n;
  const iso = new Date(Number(startUs / 1000n)).toISOString().replace(/\.\d{3}Z$/, `.${String(startUs % 1_000_000n).padStart(6, '0')}Z`);
  return `${JSON.stringify({
    event: 'uburst',
    start: iso,
    startEpochUs: Number(startUs),
    durationUs: Number((b.endNs - b.startNs) / 1000n),
    peakMbps: Math.round(b.peakBps / 1e4) / 100,
    peakPercent: Math.round(percentOfLink * 10) / 10,
  })}\n`;
}

/** The speed the kernel reports for an interface, in Mbit/s; undefined when it has none (veth reports one, tun does not). */
export function interfaceSpeedMbps(iface: string): number | undefined {
  try {
    const speed = Number(fs.readFileSync(`/sys/class/net/${iface}/speed`, 'utf8').trim());
    return speed > 0 ? speed : undefined;
  } catch {
    return undefined;
  }
}
