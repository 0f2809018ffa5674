// Output order: by timestamp, ties in file order. Files that do not overlap
// in time are streamed one after the other, batch by batch as read;
// overlapping ones (several timelines, or imports) are merged packet by
// packet with a heap, never all held in memory.
import { Batch, batchOf, Packet, packetsOf } from './read';

export interface Source {
  /** Earliest and latest packet time the source may yield. */
  firstNs: bigint;
  lastNs: bigint;
  /** Yields batches whose packets are in timestamp order. */
  batches: () => Iterator<Batch>;
}

interface Head {
  packet: Packet;
  rank: number;
  it: Iterator<Packet>;
}

const before = (a: Head, b: Head): boolean => a.packet.tsNs < b.packet.tsNs || (a.packet.tsNs === b.packet.tsNs && a.rank < b.rank);

function* packets(batches: Iterator<Batch>): Generator<Packet> {
  for (let r = batches.next(); !r.done; r = batches.next()) yield* packetsOf(r.value);
}

function* mergeGroup(group: Source[]): Generator<Batch> {
  if (group.length === 1) {
    const it = group[0]!.batches();
    for (let r = it.next(); !r.done; r = it.next()) yield r.value;
    return;
  }
  const heap: Head[] = [];
  const push = (h: Head): void => {
    heap.push(h);
    for (let i = heap.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!before(heap[i]!, heap[p]!)) break;
      [heap[i], heap[p]] = [heap[p]!, heap[i]!];
      i = p;
    }
  };
  const pop = (): Head => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  };
  group.forEach((s, rank) => {
    const it = packets(s.batches());
    const r = it.next();
    if (!r.done) push({ packet: r.value, rank, it });
  });
  while (heap.length) {
    const h = pop();
    yield batchOf(h.packet);
    const r = h.it.next();
    if (!r.done) push({ packet: r.value, rank: h.rank, it: h.it });
  }
}

/** Sources in file order (the tie order); yields all their packets by time. */
export function* mergeByTime(sources: readonly Source[]): Generator<Batch> {
  // Stable sort by start keeps file order among equal starts.
  const order = sources.map((s, i) => ({ s, i })).sort((a, b) => (a.s.firstNs < b.s.firstNs ? -1 : a.s.firstNs > b.s.firstNs ? 1 : a.i - b.i));
  let group: { s: Source; i: number }[] = [];
  let groupEnd = -1n;
  for (const entry of order) {
    if (group.length && entry.s.firstNs > groupEnd) {
      yield* mergeGroup(group.sort((a, b) => a.i - b.i).map((g) => g.s));
      group = [];
    }
    group.push(entry);
    if (entry.s.lastNs > groupEnd) groupEnd = entry.s.lastNs;
  }
  if (group.length) yield* mergeGroup(group.sort((a, b) => a.i - b.i).map((g) => g.s));
}

/** For a file whose packets are out of time order: all of them, sorted (stable). */
export function sortedPackets(batches: Iterable<Batch>): Packet[] {
  const all = [...batches].flatMap((b) => [...packetsOf(b)]);
  return all.map((p, i) => ({ p, i })).sort((a, b) => (a.p.tsNs < b.p.tsNs ? -1 : a.p.tsNs > b.p.tsNs ? 1 : a.i - b.i)).map((x) => x.p);
}
