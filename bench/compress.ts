// Compression benchmark (-M): ratio and MB/s per core of the recorder's own
// compression (frames cut at the index's time blocks, as recorder/compressor.ts
// does) on the ndpi corpus and on synthetic traffic, the same bytes through
// the lz4 and zstd commands for reference, and rare-host and time-slice
// extraction from a compressed dump set against the same set uncompressed,
// interleaved in one run. Every extraction is checked: both give the same bytes.
//
//   node dist/bench/compress.js [--mb 1024] [--rounds 5] [--keep DIR]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CompressedReader, compressPcap, FRAME_TARGET, frameBoundaries } from '../recorder/compressed-file';
import { decodeFrame, encodeFrame } from '../recorder/lz4-frame';
import { listStorageFiles } from '../recorder/dumpset';
import { readIndexFile, writeIndexFile, writeIndexWithChunks } from '../recorder/index-file';
import { PcapFormatError } from '../recorder/pcap-file';
import { indexPcapFile } from '../recorder/pcap-index';
import { generatePcap } from './extract-lib/pcapgen';
import { onCleanup, runCleanups, timed } from './extract-lib/proc';

const ROOT = path.resolve(__dirname, '../..');
const NDPI = path.resolve(ROOT, '..', 'shared', 'corpus', 'ndpi');
const RARE_HOST = '192.0.2.77';
const START_SEC = 1_795_255_200;
const SPAN_SEC = 600;
const MB = 1e6;

interface Args {
  mb: number;
  rounds: number;
  keep: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { mb: 1024, rounds: 5, keep: undefined };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    if (argv[i] === '--mb') a.mb = Number(v), i++;
    else if (argv[i] === '--rounds') a.rounds = Number(v), i++;
    else if (argv[i] === '--keep') a.keep = v, i++;
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return a;
}

const cpuSeconds = (since: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
};

interface Measured {
  files: number;
  plain: number;
  packed: number;
  frames: number;
  compressCpu: number;
  decompressCpu: number;
  /** The index rewritten with its chunk table: the part done on the recorder's own thread. */
  indexCpu: number;
}

/** The recorder's compression of each pcap (one thread), then reading every byte back. */
function measureOwn(pcaps: string[], scratch: string): Measured {
  const m: Measured = { files: 0, plain: 0, packed: 0, frames: 0, compressCpu: 0, decompressCpu: 0, indexCpu: 0 };
  const buf = Buffer.allocUnsafe(4 << 20);
  for (const pcap of pcaps) {
    let ix;
    try {
      ix = indexPcapFile(pcap);
    } catch (e) {
      if (e instanceof PcapFormatError) continue; // pcapng or big-endian: the recorder converts those on import
      throw e;
    }
    if (ix.tail) continue;
    const idx = path.join(scratch, 'bench.idx');
    writeIndexFile(idx, ix.index);
    const lz4 = path.join(scratch, 'bench.pcap.lz4');
    const c0 = process.cpuUsage();
    const chunks = compressPcap(pcap, lz4, frameBoundaries(readIndexFile(idx)));
    m.compressCpu += cpuSeconds(c0);
    const i0 = process.cpuUsage();
    writeIndexWithChunks(idx, chunks);
    m.indexCpu += cpuSeconds(i0);
    const d0 = process.cpuUsage();
    const reader = new CompressedReader(fs.openSync(lz4, 'r'), lz4, chunks);
    for (let at = 0; at < reader.size; at += buf.length) reader.read(buf, 0, buf.length, at);
    reader.close();
    m.decompressCpu += cpuSeconds(d0);
    m.files++;
    m.plain += ix.goodBytes;
    m.packed += fs.statSync(lz4).size;
    m.frames += chunks.plain.length - 1;
  }
  return m;
}

interface CliFigure {
  tool: string;
  ratio: number;
  compressMBs: number;
  decompressMBs: number;
}

/** The same bytes (one file) through a command-line compressor: ratio and MB/s of its CPU time. */
function measureCli(file: string, tool: string, level: string): CliFigure {
  const packed = `${file}.${tool}`;
  const c = timed(['sh', '-c', `${tool} ${level} -q -c "$1" > "$2"`, 'sh', file, packed]);
  const d = timed(['sh', '-c', `${tool} -d -q -c "$1" > /dev/null`, 'sh', packed]);
  const plain = fs.statSync(file).size;
  const figure = { tool: `${tool} ${level}`, ratio: plain / fs.statSync(packed).size, compressMBs: plain / MB / c.cpu, decompressMBs: plain / MB / d.cpu };
  fs.rmSync(packed);
  return figure;
}

/** The codec alone, in memory: `bytes` cut into FRAME_TARGET frames, encoded, then decoded. */
function measureCodec(bytes: Buffer): string {
  const frames: Buffer[] = [];
  const c0 = process.cpuUsage();
  for (let at = 0; at < bytes.length; at += FRAME_TARGET) frames.push(encodeFrame(bytes.subarray(at, at + FRAME_TARGET)));
  const c = cpuSeconds(c0);
  const d0 = process.cpuUsage();
  for (const f of frames) decodeFrame(f);
  const d = cpuSeconds(d0);
  return `  codec alone    (in memory, ${FRAME_TARGET >> 10} KiB frames, no file I/O) compress ${(bytes.length / MB / c).toFixed(0)} MB/s per core  decompress ${(bytes.length / MB / d).toFixed(0)} MB/s per core`;
}

function report(what: string, m: Measured, clis: CliFigure[]): string[] {
  return [
    `${what}: ${m.files} files, ${(m.plain / MB).toFixed(1)} MB in ${m.frames} frames`,
    `  n2disk-ts -M   ratio ${(m.plain / m.packed).toFixed(3)}  compress ${(m.plain / MB / m.compressCpu).toFixed(0)} MB/s per core  decompress ${(m.plain / MB / m.decompressCpu).toFixed(0)} MB/s per core` +
      `  (index rewrite on the recorder's thread: ${((1000 * m.indexCpu) / m.files).toFixed(1)} ms a file, ${((1000 * m.indexCpu) / (m.plain / MB)).toFixed(2)} ms per MB)`,
    ...clis.map((c) => `  ${c.tool.padEnd(13)} ratio ${c.ratio.toFixed(3)}  compress ${c.compressMBs.toFixed(0)} MB/s per core  decompress ${c.decompressMBs.toFixed(0)} MB/s per core`),
  ];
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const work = args.keep ?? fs.mkdtempSync(path.join(fs.existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir(), 'n2dts-compress-'));
  fs.mkdirSync(work, { recursive: true });
  if (!args.keep) onCleanup(() => fs.rmSync(work, { recursive: true, force: true }));
  const lines: string[] = [`load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} CPUs; others' work disturbs every figure)`];
  const clis = (file: string): CliFigure[] => [measureCli(file, 'lz4', '-1'), measureCli(file, 'zstd', '-1'), measureCli(file, 'zstd', '-3')];

  if (fs.existsSync(NDPI)) {
    const pcaps = fs.readdirSync(NDPI).filter((n) => /\.(pcap|cap)$/.test(n)).sort().map((n) => path.join(NDPI, n));
    const own = measureOwn(pcaps, work);
    const all = path.join(work, 'ndpi-all.pcap');
    fs.writeFileSync(all, Buffer.concat(pcaps.map((p) => fs.readFileSync(p))));
    lines.push(...report('ndpi corpus (classic pcaps; the CLI tools get them concatenated)', own, clis(all)), measureCodec(fs.readFileSync(all)));
    fs.rmSync(all);
  } else lines.push(`ndpi corpus: ${NDPI} absent, skipped`);

  const source = path.join(work, 'synthetic.pcap');
  if (!fs.existsSync(source)) {
    generatePcap(source, { bytes: args.mb * MB, seconds: SPAN_SEC, startSec: START_SEC, rareHost: RARE_HOST, rarePackets: 20, seed: 7 });
  }
  lines.push(...report('synthetic (bench/extract-lib/pcapgen.ts: one random payload repeated, so it compresses better than real traffic)', measureOwn([source], work), clis(source)));
  const sample = Buffer.alloc(Math.min(fs.statSync(source).size, 256 << 20));
  const fd = fs.openSync(source, 'r');
  fs.readSync(fd, sample, 0, sample.length, 0);
  fs.closeSync(fd);
  lines.push(measureCodec(sample));

  // Dump sets, recorded by the real recorder with and without -M.
  const sets = { plain: path.join(work, 'plain'), lz4: path.join(work, 'lz4') };
  for (const [kind, dir] of Object.entries(sets)) {
    if (fs.existsSync(dir)) continue;
    const t = timed([process.execPath, path.join(ROOT, 'bin', 'n2disk-ts.js'), '-i', source, '-o', dir, ...(kind === 'lz4' ? ['-M'] : [])]);
    const bytes = listStorageFiles(dir).reduce((n, f) => n + fs.statSync(f).size, 0);
    lines.push(`import ${kind}: ${t.seconds.toFixed(1)} s wall, ${t.cpu.toFixed(1)} s CPU, ${(bytes / MB).toFixed(0)} MB of packet files`);
  }
  const queries: [string, string[]][] = [
    ['rare host', ['-b', String(START_SEC), '-e', String(START_SEC + SPAN_SEC + 1), '-f', `host ${RARE_HOST}`]],
    ['time slice (10 s of 600)', ['-b', String(START_SEC + 300), '-e', String(START_SEC + 310)]],
    ['time slice + port 53', ['-b', String(START_SEC + 300), '-e', String(START_SEC + 310), '-f', 'port 53']],
  ];
  const samples = new Map<string, { wall: number[]; cpu: number[] }>();
  for (let round = 0; round < args.rounds; round++) {
    for (const [name, q] of queries) {
      const outs: Buffer[] = [];
      for (const [kind, dir] of Object.entries(sets)) {
        const out = path.join(work, `out-${kind}.pcap`);
        fs.rmSync(out, { force: true });
        const t = timed([process.execPath, path.join(ROOT, 'bin', 'npcapextract.js'), '-t', path.join(dir, 'timeline'), ...q, '-0', '-o', out]);
        outs.push(fs.readFileSync(out));
        const s = samples.get(`${name}|${kind}`) ?? { wall: [], cpu: [] };
        s.wall.push(t.seconds);
        s.cpu.push(t.cpu);
        samples.set(`${name}|${kind}`, s);
      }
      if (!outs[0]!.equals(outs[1]!)) throw new Error(`${name}: compressed and plain extractions differ`);
    }
  }
  lines.push(`extraction, page cache warm, median of ${args.rounds} interleaved rounds (wall s / CPU s):`);
  for (const [name] of queries) {
    const p = samples.get(`${name}|plain`)!;
    const c = samples.get(`${name}|lz4`)!;
    lines.push(`  ${name.padEnd(26)} plain ${median(p.wall).toFixed(3)} / ${median(p.cpu).toFixed(3)}   compressed ${median(c.wall).toFixed(3)} / ${median(c.cpu).toFixed(3)}`);
  }
  lines.push(`load average at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(lines.join('\n'));
}

main().then(runCleanups, (e: unknown) => {
  runCleanups();
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
