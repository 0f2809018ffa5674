// Which stretches of a file to read for a time range and a filter, decided
// from its index alone. Only reading decisions are made here: anything the
// index cannot rule out is read, and libpcap decides.
import { FlowColumns, IndexView, SegmentFlows } from '../recorder/index-file';
import { ByteRange } from './read';

/** Offsets closer than this are read together: one read beats two seeks. */
const COALESCE_GAP = 256 << 10;
/** Above this share of the in-range bytes, reading everything in range is cheaper than jumping. */
const SEQUENTIAL_SHARE = 0.5;
/** Candidate flows from the key tables that, spread evenly, cover nearly all of what they span (15/16). */
const MANY_FLOWS = 16;

export interface FilePlan {
  ranges: ByteRange[];
  /** Bytes of the file the ranges cover. */
  bytes: number;
  /**
   * Flows that may match, out of those in the time range that were judged
   * (all of them, or those the key tables named), as far as the walk went:
   * it stops once the matches alone make reading in sequence cheaper.
   */
  flowsRead: number;
  flowsJudged: number;
  how: 'skip-time' | 'skip-index' | 'flows' | 'sequential';
}

/** How planning judges the flows of a segment. */
export interface FlowFilter {
  /** The flows that may match (increasing), as the key tables name them; undefined: every flow may. */
  candidates(seg: SegmentFlows): Uint32Array | undefined;
  /** Whether row r may hold a matching packet (false only when it certainly does not). */
  test(cols: FlowColumns): (row: number) => boolean;
}

function overlaps(a0: bigint, a1: bigint, beginNs: bigint, endNs: bigint): boolean {
  return a1 >= beginNs && a0 < endNs;
}

/** (hi, lo) < (hi2, lo2) for ticks held as u32 pairs. */
const below = (hi: number, lo: number, hi2: number, lo2: number): boolean => hi < hi2 || (hi === hi2 && lo < lo2);

/** The first tick at or after `ns`, as a (hi, lo) pair. */
function tickAtOrAfter(ns: bigint, unit: bigint): [number, number] {
  const t = (ns + unit - 1n) / unit;
  return [Number(t >> 32n), Number(t & 0xffffffffn)];
}

export function planFile(index: IndexView, beginNs: bigint, endNs: bigint, mayMatch: FlowFilter | undefined): FilePlan {
  const empty = (how: FilePlan['how']): FilePlan => ({ ranges: [], bytes: 0, flowsRead: 0, flowsJudged: 0, how });
  if (index.firstNs === undefined || index.lastNs === undefined || !overlaps(index.firstNs, index.lastNs, beginNs, endNs)) return empty('skip-time');

  // The time table: blocks whose [min, max] meets the range, merged when
  // adjacent; all of them when the range holds the whole file.
  const timeRanges: ByteRange[] = [];
  if (beginNs <= index.firstNs && index.lastNs < endNs) timeRanges.push({ start: index.firstRecord, stop: index.covered.end });
  else {
    for (const b of index.timeBlocks) {
      if (!overlaps(b.minNs, b.maxNs, beginNs, endNs)) continue;
      const last = timeRanges[timeRanges.length - 1];
      if (last && last.stop === b.offset) last.stop = b.end;
      else timeRanges.push({ start: b.offset, stop: b.end });
    }
  }
  const timeBytes = timeRanges.reduce((n, r) => n + r.stop - r.start, 0);
  if (!mayMatch) return { ranges: timeRanges, bytes: timeBytes, flowsRead: 0, flowsJudged: 0, how: 'sequential' };

  let flowsJudged = 0;
  let flowsRead = 0;
  let flowBytes = 0;
  const sequential = (): FilePlan => ({ ranges: timeRanges, bytes: timeBytes, flowsRead, flowsJudged, how: 'sequential' });
  // Flow times against the range, in ticks: last >= begin and first < end.
  const unit = index.nano ? 1n : 1000n;
  const [bHi, bLo] = tickAtOrAfter(beginNs, unit);
  const [eHi, eLo] = tickAtOrAfter(endNs, unit);
  const picks = index.segmentFlows.map((seg) => mayMatch.candidates(seg));
  // n candidate flows hold n records or more. Spread evenly, they are less
  // than COALESCE_GAP apart once n * COALESCE_GAP > timeBytes, and coalescing
  // joins them into reads of (n - 1) / n of the range: past MANY_FLOWS
  // candidates, read in sequence without decoding them. (When they are
  // bunched up, that reads more than needed, never more than a scan.)
  const named = picks.reduce((n, p) => n + (p ? p.length : 0), 0);
  if (named >= MANY_FLOWS && named * COALESCE_GAP > timeBytes) return sequential();
  const candidates: [FlowColumns, number][] = [];
  for (const [k, seg] of index.segmentFlows.entries()) {
    const pick = picks[k];
    const cols = pick && seg.keys ? seg.keys.columns(pick) : seg.all();
    // A segment whose key tables name no flow: nothing of its columns is read.
    if (cols.flowCount === 0) continue;
    const test = mayMatch.test(cols);
    const { minHi, minLo, maxHi, maxLo } = cols;
    for (let j = 0; j < cols.flowCount; j++) {
      if (below(maxHi[j]!, maxLo[j]!, bHi, bLo) || !below(minHi[j]!, minLo[j]!, eHi, eLo)) continue;
      flowsJudged++;
      if (!test(j)) continue;
      flowsRead++;
      flowBytes += cols.flowCap[j]! + 16 * cols.flowPackets[j]!;
      // Past this share the answer is to read in sequence, whatever the remaining flows say.
      if (flowBytes > SEQUENTIAL_SHARE * timeBytes) return sequential();
      candidates.push([cols, j]);
    }
  }
  if (flowsRead === 0) return { ...empty('skip-index'), flowsJudged };
  const offsets: number[] = [];
  for (const [cols, j] of candidates) for (const o of cols.offsets(j)) offsets.push(o);

  const ranges = coalesce(offsets, timeRanges);
  // What the reads really cover: coalescing can join sparse matches into
  // one long stretch, and then reading in sequence is the cheaper way.
  const record = index.packets ? 16 + index.bytes / index.packets : 0;
  const bytes = Math.round(ranges.reduce((n, r) => n + r.stop - r.start + record, 0));
  if (bytes > SEQUENTIAL_SHARE * timeBytes) return sequential();
  return { ranges, bytes, flowsRead, flowsJudged, how: 'flows' };
}

/**
 * Record offsets (any order) as ranges to read: neighbours closer than
 * COALESCE_GAP share one read; with `within`, offsets outside those sorted
 * ranges (the time table's) are dropped.
 */
export function coalesce(offsets: number[], within?: readonly ByteRange[]): ByteRange[] {
  offsets.sort((a, b) => a - b);
  const ranges: ByteRange[] = [];
  let ti = 0;
  for (const o of offsets) {
    if (within) {
      while (ti < within.length && within[ti]!.stop <= o) ti++;
      if (ti === within.length) break;
      if (o < within[ti]!.start) continue;
    }
    const last = ranges[ranges.length - 1];
    if (last && o - last.stop < COALESCE_GAP) last.stop = o + 1;
    else ranges.push({ start: o, stop: o + 1 });
  }
  return ranges;
}
