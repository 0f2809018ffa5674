// Micro-bursts: a dense burst inside sparse traffic is reported with its
// start and duration, from an import of a crafted capture; smooth traffic
// just under the threshold is not; the detector keeps exact times across
// long recordings.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { encodeMeta } from '../recorder/packet-meta';
import { Burst, BurstDetector } from '../recorder/uburst';
import { Packet, writePcap } from './helpers/pcap-write';
import { runTool, tempDir } from './helpers/recorder';

const work = tempDir('uburst');
after(() => fs.rmSync(work, { recursive: true, force: true }));

const T0 = 1_795_255_200_000_000_000n; // 2026-11-21T10:00:00Z
const US = 1000n;
const MS = 1_000_000n;
/** Frames are stored cut to 60 bytes; the rate counts their length on the wire. */
const frame = (tsNs: bigint, wirelen: number): Packet => ({ tsNs, caplen: Math.min(60, wirelen), wirelen, flags: 0 });

/** 100-byte packets every 10 ms for a second (80 kbit/s). */
function sparse(): Packet[] {
  return Array.from({ length: 100 }, (_, i) => frame(T0 + BigInt(i) * 10n * MS, 100));
}

/** n 1500-byte packets every `gapUs` µs from `start`. */
function train(start: bigint, n: number, gapUs: bigint): Packet[] {
  return Array.from({ length: n }, (_, i) => frame(start + BigInt(i) * gapUs * US, 1500));
}

const byTime = (a: Packet, b: Packet): number => (a.tsNs < b.tsNs ? -1 : a.tsNs > b.tsNs ? 1 : 0);

interface BurstLine {
  event: string;
  start: string;
  startEpochUs: number;
  durationUs: number;
  peakMbps: number;
  peakPercent: number;
}

/** Imports `packets` with detection on a 1 Gbit/s link, 1 ms windows, threshold 50%; returns the burst lines. */
async function importBursts(name: string, packets: Packet[]): Promise<BurstLine[]> {
  const pcap = path.join(work, `${name}.pcap`);
  writePcap(pcap, packets.sort(byTime), false);
  const r = await runTool('n2disk-ts', [
    '-i', pcap, '-o', path.join(work, name), '--uburst-detection',
    '--uburst-link-speed', '1000', '--uburst-win-size', '1000', '--uburst-threshold', '50',
  ]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as BurstLine);
}

test('a 1 Gbit/s burst of 12 ms inside sparse traffic: one line with its start, duration and peak', async () => {
  const burstStart = T0 + 505n * MS; // 5 ms after a sparse packet, so the window holds only the burst
  const lines = await importBursts('burst', [...sparse(), ...train(burstStart, 1000, 12n)]);
  assert.equal(lines.length, 1, JSON.stringify(lines));
  const b = lines[0]!;
  assert.equal(b.event, 'uburst');
  assert.equal(b.start, '2026-11-21T10:00:00.505000Z');
  assert.equal(b.startEpochUs, Number(burstStart / US));
  // From its first packet to its last: 999 gaps of 12 µs.
  assert.equal(b.durationUs, 999 * 12);
  // 83 or 84 packets of 1500 bytes in any 1 ms window, and at most one sparse packet.
  assert.ok(b.peakMbps >= 990 && b.peakMbps <= 1010, `peak ${b.peakMbps} Mbit/s`);
  assert.ok(Math.abs(b.peakPercent - b.peakMbps / 10) < 0.1);
});

test('smooth traffic at 40% of the link: no burst', async () => {
  // 1500 bytes every 30 µs is 400 Mbit/s; a 1 ms window never holds more than 34 packets (408 Mbit/s).
  const lines = await importBursts('smooth', [...sparse(), ...train(T0 + 100n * MS, 20_000, 30n)]);
  assert.deepEqual(lines, []);
});

test('the detector keeps exact times past 2^50 ns from its first packet, and reports a burst still open at the end', () => {
  const bursts: Burst[] = [];
  const d = new BurstDetector({ windowUs: 100, linkMbps: 1000, thresholdPct: 50 }, (b) => bursts.push(b));
  const late = T0 + 20n * 86_400_000_000_000n + 123n; // 20 days later, in ns that no double holds exactly
  const meta = (packets: Packet[]): ArrayBuffer => encodeMeta(packets.map((p) => ({ ...p, offset: 0 })));
  d.add(meta([frame(T0, 100)]), 1);
  d.add(meta(train(late, 50, 1n)), 50);
  assert.equal(bursts.length, 0, 'still in progress');
  d.finish();
  assert.equal(bursts.length, 1);
  assert.equal(bursts[0]!.startNs, late);
  assert.equal(bursts[0]!.endNs, late + 49n * US);
});
