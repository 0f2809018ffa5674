// Which stretches of a file to read for a time range and a filter, decided
// from its index alone. Only reading decisions are made here: anything the
// index cannot rule out is read, and libpcap decides.
import { FlowView, IndexView } from '../recorder/index-file';
import { ByteRange } from './read';

/** Offsets closer than this are read together: one read beats two seeks. */
const COALESCE_GAP = 256 << 10;
/** Above this share of the in-range bytes, reading everything in range is cheaper than jumping. */
const SEQUENTIAL_SHARE = 0.5;

export interface FilePlan {
  ranges: ByteRange[];
  /** Bytes of the file the ranges cover. */
  bytes: number;
  /** Flows that may match, out of those in the time range. */
  flowsRead: number;
  flowsInRange: number;
  how: 'skip-time' | 'skip-index' | 'flows' | 'sequential';
}

/** Whether a flow may hold a matching packet (false only when it certainly does not). */
export type FlowTest = (flow: FlowView) => boolean;

function overlaps(a0: bigint, a1: bigint, beginNs: bigint, endNs: bigint): boolean {
  return a1 >= beginNs && a0 < endNs;
}

export function planFile(index: IndexView, beginNs: bigint, endNs: bigint, mayMatch: FlowTest | undefined): FilePlan {
  const empty = (how: FilePlan['how']): FilePlan => ({ ranges: [], bytes: 0, flowsRead: 0, flowsInRange: 0, how });
  if (index.firstNs === undefined || index.lastNs === undefined || !overlaps(index.firstNs, index.lastNs, beginNs, endNs)) return empty('skip-time');

  // The time table: blocks whose [min, max] meets the range, merged when adjacent.
  const timeRanges: ByteRange[] = [];
  for (const b of index.timeBlocks) {
    if (!overlaps(b.minNs, b.maxNs, beginNs, endNs)) continue;
    const last = timeRanges[timeRanges.length - 1];
    if (last && last.stop === b.offset) last.stop = b.end;
    else timeRanges.push({ start: b.offset, stop: b.end });
  }
  const timeBytes = timeRanges.reduce((n, r) => n + r.stop - r.start, 0);
  if (!mayMatch) return { ranges: timeRanges, bytes: timeBytes, flowsRead: 0, flowsInRange: 0, how: 'sequential' };

  let flowsInRange = 0;
  let flowsRead = 0;
  let flowBytes = 0;
  const offsets: number[] = [];
  for (const flow of index.flows()) {
    if (!overlaps(flow.firstNs, flow.lastNs, beginNs, endNs)) continue;
    flowsInRange++;
    if (!mayMatch(flow)) continue;
    flowsRead++;
    flowBytes += flow.bytes + 16 * flow.packets;
    for (const o of index.flowOffsets(flow.index)) offsets.push(o);
  }
  if (flowsRead === 0) return { ...empty('skip-index'), flowsInRange };
  if (flowBytes > SEQUENTIAL_SHARE * timeBytes) return { ranges: timeRanges, bytes: timeBytes, flowsRead, flowsInRange, how: 'sequential' };

  const ranges = coalesce(offsets, timeRanges);
  // What the reads really cover: coalescing can join sparse matches into
  // one long stretch, and then reading in sequence is the cheaper way.
  const record = index.packets ? 16 + index.bytes / index.packets : 0;
  const bytes = Math.round(ranges.reduce((n, r) => n + r.stop - r.start + record, 0));
  if (bytes > SEQUENTIAL_SHARE * timeBytes) return { ranges: timeRanges, bytes: timeBytes, flowsRead, flowsInRange, how: 'sequential' };
  return { ranges, bytes, flowsRead, flowsInRange, how: 'flows' };
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
