// Writing classic pcap files from packet descriptions, for tests that need a
// capture with exact timestamps and sizes (frames are zero bytes).
import fs from 'node:fs';
import { PacketMetaInit } from '../../recorder/packet-meta';
import { MAX_CAPLEN, pcapHeader } from '../../recorder/pcap-file';

export type Packet = Omit<PacketMetaInit, 'offset'>;

/** Lays packets out as pcap records and writes the file; returns the records with offsets. */
export function writePcap(file: string, packets: readonly Packet[], nano: boolean): { records: PacketMetaInit[]; bytes: number } {
  const parts: Buffer[] = [];
  parts.push(pcapHeader({ nano, snaplen: MAX_CAPLEN, linktype: 1 }));
  let offset = 24;
  const records = packets.map((p) => {
    const rec = Buffer.alloc(16 + p.caplen);
    const perSec = nano ? 1_000_000_000n : 1_000_000n;
    const ticks = nano ? p.tsNs : p.tsNs / 1000n;
    rec.writeUInt32LE(Number(ticks / perSec), 0);
    rec.writeUInt32LE(Number(ticks % perSec), 4);
    rec.writeUInt32LE(p.caplen, 8);
    rec.writeUInt32LE(p.wirelen ?? p.caplen, 12);
    parts.push(rec);
    const r = { ...p, offset };
    offset += rec.length;
    return r;
  });
  fs.writeFileSync(file, Buffer.concat(parts));
  return { records, bytes: offset };
}
