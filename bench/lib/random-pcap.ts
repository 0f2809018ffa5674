// Small Ethernet/IPv4/UDP frames whose addresses, ports and IP id are all
// random: nearly every packet is a flow of its own, the worst case for a flow
// index. It is the traffic the capture bench has trafgen send (its drnd()
// fields, no IP checksum), written to a file, with deterministic contents.
import fs from 'node:fs';
import { MAX_CAPLEN, pcapHeader } from '../../recorder/pcap-file';
import { prng } from '../synthetic-flows';

export interface RandomPcapOptions {
  /** Stop once the file holds at least this many bytes. */
  bytes: number;
  frameSize: number;
  startSec: number;
  seed: number;
}

export interface RandomPcapResult {
  packets: number;
  bytes: number;
}

/** Packets are 1 µs apart, so a file of a few GB spans well under the recorder's 300 s file duration. */
export function generateRandomPcap(file: string, o: RandomPcapOptions): RandomPcapResult {
  if (o.frameSize < 60 || o.frameSize > 1514) throw new Error(`frame size ${o.frameSize} outside 60..1514`);
  const rnd = prng(o.seed);
  const u32 = (): number => Math.floor(rnd() * 2 ** 32);
  const len = o.frameSize;
  const frame = Buffer.alloc(len);
  frame.writeUInt32BE(0x02000000, 0); // dst 02:00:00:00:00:02
  frame.writeUInt16BE(2, 4);
  frame.writeUInt32BE(0x02000000, 6); // src 02:00:00:00:00:01
  frame.writeUInt16BE(1, 10);
  frame.writeUInt16BE(0x0800, 12);
  frame.writeUInt32BE(0x45000000 | (len - 14), 14);
  frame.writeUInt32BE((64 << 24) | (17 << 16), 22); // TTL, UDP, checksum 0
  frame.writeUInt16BE(len - 34, 38);

  const BUF = 8 << 20;
  const buf = Buffer.alloc(BUF);
  const fd = fs.openSync(file, 'w');
  let off = pcapHeader({ nano: false, snaplen: MAX_CAPLEN, linktype: 1 }).copy(buf, 0);
  let bytes = off;
  let packets = 0;
  try {
    while (bytes < o.bytes) {
      if (off + 16 + len > BUF) {
        for (let done = 0; done < off; ) done += fs.writeSync(fd, buf, done, off - done);
        off = 0;
      }
      buf.writeUInt32LE(o.startSec + Math.floor(packets / 1e6), off);
      buf.writeUInt32LE(packets % 1e6, off + 4);
      buf.writeUInt32LE(len, off + 8);
      buf.writeUInt32LE(len, off + 12);
      const p = off + 16;
      frame.copy(buf, p);
      buf.writeUInt16BE(u32() & 0xffff, p + 18); // IP id
      buf.writeUInt32BE(u32(), p + 26); // source address
      buf.writeUInt32BE(u32(), p + 30); // destination address
      buf.writeUInt32BE(u32(), p + 34); // both ports
      off += 16 + len;
      bytes += 16 + len;
      packets++;
    }
    for (let done = 0; done < off; ) done += fs.writeSync(fd, buf, done, off - done);
  } finally {
    fs.closeSync(fd);
  }
  return { packets, bytes };
}
