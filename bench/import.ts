// Import benchmark: `n2disk-ts -i FILE` against the sequential copy that
// bounds it (dd, through the page cache and with O_DIRECT as n2disk-ts
// writes) and against `tcpdump -r FILE -w` (a peer that writes no index), all
// on one source pcap on the real disk, rounds interleaved tool by tool.
//
//   node dist/bench/import.js [--gb 4] [--traffic mixed|random100] [--runs 3] [--cold]
//                             [--tools dd,dd-direct,tcpdump,n2disk-ts] [--keep DIR]
//                             [--json FILE] [--quiet-wait 30]
//
// Every output is read back and compared with the source record by record
// (count and sha256) before it is deleted. See bench/README.md.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { generatePcap } from './extract-lib/pcapgen';
import { ScanResult, scanPcaps } from './extract-lib/pcapscan';
import { dropCaches, onCleanup, runCleanups } from './extract-lib/proc';
import { diskBytes, dumpFiles, listFiles } from './lib/count';
import { generateRandomPcap } from './lib/random-pcap';
import {
  commitOf, deviceMBps, foreignLoad, gnuTime, killAll, loadSnapshot, machine, readGnuTime, run, start, waitQuiet,
} from './lib/sys';
import { formatRow } from './lib/table';

const REPO = path.resolve(__dirname, '..', '..');
const WORK_ROOT = '/var/tmp'; // the real disk, not tmpfs
const GiB = 2 ** 30;
const MB = 1e6;
const TRAFFIC = ['mixed', 'random100'] as const;
type Traffic = (typeof TRAFFIC)[number];

interface ToolSpec {
  name: string;
  argv(src: string, dir: string): string[];
  /** The pcap files it wrote, in the order of the source's records. */
  outputs(dir: string): string[];
  /** What else its output directory must hold; each string is a problem. */
  check?(dir: string): string[];
}

const single = (dir: string): string => path.join(dir, 'out.pcap');
const asRoot = process.getuid?.() === 0;

const TOOLS: ToolSpec[] = [
  { name: 'dd', argv: (src, dir) => ['dd', `if=${src}`, `of=${single(dir)}`, 'bs=1M'], outputs: (dir) => [single(dir)] },
  {
    name: 'dd-direct',
    // GNU dd writes the last, partial block without O_DIRECT.
    argv: (src, dir) => ['dd', `if=${src}`, `of=${single(dir)}`, 'bs=1M', 'oflag=direct'],
    outputs: (dir) => [single(dir)],
  },
  {
    name: 'tcpdump',
    // As root tcpdump drops to user tcpdump, who cannot write here.
    argv: (src, dir) => ['tcpdump', '-r', src, '-w', single(dir), ...(asRoot ? ['-Z', 'root'] : [])],
    outputs: (dir) => [single(dir)],
  },
  {
    name: 'n2disk-ts',
    argv: (src, dir) => ['node', path.join(REPO, 'bin', 'n2disk-ts.js'), '-i', src, '-o', dir],
    outputs: (dir) => dumpFiles(dir).map((f) => f.file),
    check: (dir) => {
      const files = listFiles(dir);
      const pcaps = files.filter((f) => f.endsWith('.pcap'));
      const problems: string[] = [];
      const noIndex = pcaps.filter((f) => !files.includes(`${f}.idx`));
      if (noIndex.length) problems.push(`${noIndex.length} of ${pcaps.length} pcap files without .pcap.idx`);
      const unfinished = files.filter((f) => f.endsWith('.part')).length;
      if (unfinished) problems.push(`${unfinished} files left unfinished (.part)`);
      const named = dumpFiles(dir).length;
      if (named !== pcaps.length) problems.push(`${pcaps.length - named} pcap files not named <epoch>.<usec>.pcap`);
      return problems;
    },
  },
];

interface Source {
  file: string;
  bytes: number;
  /** The bench's own reading of it: what every output must hold. */
  ref: ScanResult;
}

interface Run {
  round: number;
  tool: string;
  /** From the start of the tool to its exit. */
  exitSec: number;
  /** fsync of every file it wrote, after its exit. */
  syncSec: number;
  user: number;
  sys: number;
  rssMB: number;
  /** Share of the source in the page cache when the tool started. */
  cached: number;
  /** Cores other people's work used during the tool and its sync. */
  otherLoad: number;
  /** What the disk took during the tool and its sync, whoever wrote it. */
  devMBps: number;
  /** Everything in its output directory (data and index). */
  outBytes: number;
  files: number;
  packets: number;
  problems: string[];
}

function log(m: string): void {
  process.stderr.write(`${m}\n`);
}

/** Share of a file's bytes in the page cache. */
function cachedShare(file: string): number {
  const res = Number(run(['fincore', '--bytes', '--noheadings', '--output', 'RES', file]).trim());
  return res / fs.statSync(file).size;
}

function readThrough(file: string): void {
  run(['dd', `if=${file}`, 'of=/dev/null', 'bs=1M', 'status=none']);
}

function fsyncTree(dir: string): void {
  for (const f of listFiles(dir)) {
    const fd = fs.openSync(f, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Generates the source, or reuses the complete one a previous --keep run left. */
function source(dir: string, traffic: Traffic, gib: number): Source {
  const file = path.join(dir, `import-${traffic}-${gib}g.pcap`);
  if (fs.existsSync(file)) {
    log(`reusing ${file}`);
  } else {
    const tmp = `${file}.tmp`;
    log(`generating ${gib} GiB of ${traffic} traffic into ${file}`);
    const t0 = Date.now();
    const bytes = gib * GiB;
    // The same traffic (seed and span) as the hand-measured imports in bench/README.md.
    if (traffic === 'mixed') generatePcap(tmp, { bytes, seconds: 1800, startSec: 1_700_000_000, rareHost: '192.0.2.77', rarePackets: 20, seed: 11 });
    else generateRandomPcap(tmp, { bytes, frameSize: 100, startSec: 1_700_000_000, seed: 11 });
    fs.renameSync(tmp, file);
    log(`  ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  // Reading it whole also leaves it in the page cache for the warm runs.
  const t0 = Date.now();
  const ref = scanPcaps([file]);
  log(`  ${ref.packets} packets, ${fs.statSync(file).size} B, read and hashed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { file, bytes: fs.statSync(file).size, ref };
}

async function measure(tool: ToolSpec, src: Source, round: number, scratch: string, cold: boolean, quietWaitMs: number): Promise<Run> {
  const dir = fs.mkdtempSync(path.join(scratch, `${tool.name}-`));
  const timeFile = path.join(scratch, 'time');
  try {
    run(['sync']); // the previous run's dirty pages are not this run's disk load
    await waitQuiet(0.15, quietWaitMs);
    if (cold) {
      dropCaches();
    } else {
      const share = cachedShare(src.file);
      if (share < 0.999) {
        log(`  only ${(share * 100).toFixed(1)}% of the source in the page cache: reading it again`);
        readThrough(src.file);
      }
    }
    const cached = cachedShare(src.file);
    const a = loadSnapshot(dir);
    const t0 = process.hrtime.bigint();
    const child = start([...gnuTime(timeFile), ...tool.argv(src.file, dir)]);
    const code = await child.exited;
    const t1 = process.hrtime.bigint();
    if (code !== 0) throw new Error(`${tool.name} exit ${code}:\n${child.output().slice(-2000)}`);
    fsyncTree(dir);
    const t2 = process.hrtime.bigint();
    const b = loadSnapshot(dir);
    const { user, sys, maxRssKB } = readGnuTime(timeFile);

    const outputs = tool.outputs(dir);
    const problems = tool.check?.(dir) ?? [];
    const got = scanPcaps(outputs);
    if (got.packets !== src.ref.packets) problems.push(`${got.packets} packets, source has ${src.ref.packets}`);
    else if (got.sha256 !== src.ref.sha256) problems.push('records differ from the source (sha256)');
    if (got.linktype !== src.ref.linktype || got.nano !== src.ref.nano) problems.push('link type or time unit differs from the source');
    return {
      round, tool: tool.name, exitSec: Number(t1 - t0) / 1e9, syncSec: Number(t2 - t1) / 1e9, user, sys, rssMB: maxRssKB / 1024, cached,
      otherLoad: foreignLoad(a, b), devMBps: deviceMBps(a, b), outBytes: diskBytes(dir), files: outputs.length, packets: got.packets, problems,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const total = (r: Run): number => r.exitSec + r.syncSec;
const mbps = (src: Source, sec: number): number => src.bytes / MB / sec;

function printRuns(src: Source, runs: Run[]): void {
  const head = ['round', 'tool', 'exit s', 'sync s', 'MB/s exit', 'MB/s sync', 'Mpps sync', 'CPU s', 'ns/pkt', 'RSS MB', 'out MB', 'files', 'dev MB/s', 'cached%', 'other%', 'check'];
  const w = [5, 10, 7, 7, 9, 9, 9, 6, 6, 7, 7, 5, 8, 7, 6, 5];
  console.log(formatRow(head, w, 2));
  for (const r of runs) {
    const cpu = r.user + r.sys;
    console.log(formatRow([
      r.round, r.tool, r.exitSec.toFixed(2), r.syncSec.toFixed(2), mbps(src, r.exitSec).toFixed(0), mbps(src, total(r)).toFixed(0),
      (src.ref.packets / total(r) / 1e6).toFixed(2), cpu.toFixed(2), ((cpu / src.ref.packets) * 1e9).toFixed(0), r.rssMB.toFixed(0),
      (r.outBytes / MB).toFixed(0), r.files, r.devMBps.toFixed(0), (r.cached * 100).toFixed(0), (r.otherLoad * 100).toFixed(0),
      r.problems.length ? 'BAD' : 'ok',
    ], w, 2));
  }
  for (const r of runs.filter((x) => x.problems.length)) console.log(`  round ${r.round} ${r.tool}: ${r.problems.join('; ')}`);
}

interface Summary {
  tool: string;
  runs: number;
  exitSec: number;
  totalSec: number;
  mbpsExit: number;
  mbpsSync: number;
  nsPerPacket: number;
  rssMB: number;
}

function summarize(src: Source, tools: ToolSpec[], runs: Run[]): Summary[] {
  const out: Summary[] = [];
  for (const t of tools) {
    const rs = runs.filter((r) => r.tool === t.name && !r.problems.length);
    if (!rs.length) continue;
    const exitSec = median(rs.map((r) => r.exitSec));
    const totalSec = median(rs.map(total));
    out.push({
      tool: t.name, runs: rs.length, exitSec, totalSec, mbpsExit: mbps(src, exitSec), mbpsSync: mbps(src, totalSec),
      nsPerPacket: median(rs.map((r) => ((r.user + r.sys) / src.ref.packets) * 1e9)), rssMB: median(rs.map((r) => r.rssMB)),
    });
  }
  return out;
}

function printSummary(src: Source, sums: Summary[], runs: Run[]): void {
  console.log('\nmedians over the rounds whose output checked out (range in brackets):');
  const range = (tool: string, f: (r: Run) => number): string => {
    const xs = runs.filter((r) => r.tool === tool && !r.problems.length).map(f);
    return `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
  };
  const head = ['tool', 'runs', 'exit s', '', 'exit+sync s', '', 'MB/s exit', 'MB/s sync', 'Mpps sync', 'ns/pkt', 'RSS MB'];
  const w = [10, 4, 6, 11, 11, 11, 9, 9, 9, 6, 6];
  console.log(formatRow(head, w, 1));
  for (const s of sums) {
    console.log(formatRow([
      s.tool, s.runs, s.exitSec.toFixed(2), `(${range(s.tool, (r) => r.exitSec)})`, s.totalSec.toFixed(2), `(${range(s.tool, total)})`,
      s.mbpsExit.toFixed(0), s.mbpsSync.toFixed(0), (src.ref.packets / s.totalSec / 1e6).toFixed(2), s.nsPerPacket.toFixed(0), s.rssMB.toFixed(0),
    ], w, 1));
  }
  const n = sums.find((s) => s.tool === 'n2disk-ts');
  if (!n) return;
  console.log('\nn2disk-ts MB/s against each peer (medians; above 1 means n2disk-ts is faster):');
  for (const p of sums.filter((s) => s !== n)) {
    console.log(`  vs ${p.tool.padEnd(10)} to exit ${(n.mbpsExit / p.mbpsExit).toFixed(2)}, with sync ${(n.mbpsSync / p.mbpsSync).toFixed(2)}`);
  }
  const met = n.mbpsSync >= 1000;
  console.log(`target 1 GB/s: ${n.mbpsSync.toFixed(0)} MB/s with sync (${n.mbpsExit.toFixed(0)} to exit): ${met ? 'met' : 'not met'}`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      gb: { type: 'string', default: '4' },
      traffic: { type: 'string', default: 'mixed' },
      runs: { type: 'string', default: '3' },
      cold: { type: 'boolean', default: false },
      tools: { type: 'string', default: TOOLS.map((t) => t.name).join(',') },
      keep: { type: 'string' },
      json: { type: 'string' },
      'quiet-wait': { type: 'string', default: '30' },
    },
  });
  const gib = Number(values.gb);
  const rounds = Number(values.runs);
  const traffic = TRAFFIC.find((t) => t === values.traffic);
  if (!(gib > 0) || !(Number.isInteger(rounds) && rounds > 0) || !traffic) throw new Error('bad --gb, --runs or --traffic (mixed|random100)');
  const tools = values.tools.split(',').map((n) => {
    const t = TOOLS.find((x) => x.name === n);
    if (!t) throw new Error(`unknown tool ${n} (have ${TOOLS.map((x) => x.name).join(', ')})`);
    return t;
  });
  if (values.cold && !asRoot) throw new Error('--cold needs root (drop_caches)');

  const scratch = fs.mkdtempSync(path.join(WORK_ROOT, 'n2dti-'));
  onCleanup(() => fs.rmSync(scratch, { recursive: true, force: true }));
  onCleanup(killAll);
  const srcDir = values.keep ? path.resolve(values.keep) : scratch;
  fs.mkdirSync(srcDir, { recursive: true });
  // Room for the source and one output at a time (an index is at most a third of its pcap).
  const st = fs.statfsSync(scratch);
  const needGiB = (fs.existsSync(path.join(srcDir, `import-${traffic}-${gib}g.pcap`)) ? 0 : gib) + gib * 1.4 + 1;
  if ((st.bavail * st.bsize) / GiB < needGiB) throw new Error(`${needGiB.toFixed(0)} GiB needed under ${WORK_ROOT}`);

  const date = new Date().toISOString();
  const src = source(srcDir, traffic, gib);
  const fsInfo = run(['df', '--output=source,fstype', scratch]).trim().split('\n').pop()?.trim().replace(/\s+/, ' (') ?? '?';
  const commit = commitOf(REPO);
  console.log(`n2disk-ts import benchmark, ${date}`);
  console.log(`machine: ${machine()}`);
  console.log(`n2disk-ts: ${REPO} at ${commit}`);
  console.log(`source: ${src.file} on ${fsInfo}), ${traffic} traffic, ${src.bytes} B, ${src.ref.packets} packets ` +
    `(${((src.bytes - 24) / src.ref.packets - 16).toFixed(0)} B a frame on average)`);
  console.log(`${values.cold ? 'cold: page cache dropped before each run' : 'warm: source in the page cache'}; ${rounds} round${rounds > 1 ? 's' : ''}, ` +
    'tools interleaved, the order rotated each round; sync = fsync of every file the tool wrote, after its exit\n');

  const runs: Run[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (let i = 0; i < tools.length; i++) {
      const tool = tools[(i + round - 1) % tools.length];
      log(`round ${round}, ${tool.name}`);
      try {
        const r = await measure(tool, src, round, scratch, values.cold, Number(values['quiet-wait']) * 1000);
        runs.push(r);
        log(`  ${r.exitSec.toFixed(2)} s + ${r.syncSec.toFixed(2)} s sync, ${mbps(src, total(r)).toFixed(0)} MB/s, ${(r.user + r.sys).toFixed(2)} CPU s` +
          `${r.problems.length ? `; ${r.problems.join('; ')}` : ''}`);
      } catch (err) {
        log(`  failed: ${(err as Error).message}`);
        runs.push({
          round, tool: tool.name, exitSec: NaN, syncSec: NaN, user: NaN, sys: NaN, rssMB: NaN, cached: NaN, otherLoad: NaN, devMBps: NaN,
          outBytes: 0, files: 0, packets: 0, problems: [`failed: ${(err as Error).message.split('\n')[0]}`],
        });
      }
    }
  }
  printRuns(src, runs);
  const sums = summarize(src, tools, runs);
  printSummary(src, sums, runs);
  if (values.json) {
    fs.writeFileSync(values.json, JSON.stringify({
      date, machine: machine(), commit, cold: values.cold, source: { traffic, bytes: src.bytes, packets: src.ref.packets }, runs, summary: sums,
    }, null, 2));
  }
  return runs.some((r) => r.problems.length) ? 1 : 0;
}

main().then(
  (code) => {
    runCleanups();
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`import bench: ${err instanceof Error ? err.message : String(err)}\n`);
    runCleanups();
    process.exit(1);
  },
);
