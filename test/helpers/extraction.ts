// The reference answer for an extraction: tcpdump reads every file of the
// dump sets with the same filter; the records inside the time range, merged
// by timestamp with ties in timeline-then-file order.
import { PcapRecord, tcpdumpRead } from './pcap-compare';
import { publishedFiles } from './recorder';

export async function expectedExtraction(storages: readonly string[], filter: string, beginNs: bigint, endNs: bigint): Promise<PcapRecord[]> {
  const all: PcapRecord[] = [];
  for (const storage of storages) {
    for (const r of await tcpdumpRead(publishedFiles(storage), filter)) if (r.tsNs >= beginNs && r.tsNs < endNs) all.push(r);
  }
  // Array.prototype.sort is stable, which keeps the tie order.
  return all.sort((a, b) => (a.tsNs < b.tsNs ? -1 : a.tsNs > b.tsNs ? 1 : 0));
}
