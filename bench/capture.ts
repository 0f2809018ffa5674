// Capture benchmark: n2disk-ts against tcpdump, netsniff-ng and stenotype on
// a veth pair, trafgen sending on CPU 0 and the tool under test on CPU 1.
//
//   node dist/bench/capture.js [--seconds N] [--sizes 100,1500] [--rates 0.5,1,max]
//                              [--tools n2disk-ts,tcpdump,netsniff-ng,stenotype]
//                              [--json FILE] [--quiet-wait SECONDS]
//
// Rates are in Mpps ("max": no limit). Every row is measured afresh: new
// namespaces, new output directory, the tool started and stopped.
//
// Needs root, trafgen, the tools, and /usr/bin/time (GNU). See bench/README.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { StoredCount, countPcapDir, countStenotypeDir } from './lib/count';
import { VethPair, destroyAllNamespaces } from './lib/netns';
import {
  Child, childrenOf, commitOf, cpuTimes, deviceMBps, foreignLoad, gnuTime, killAll, loadSnapshot, machine, processCpu, readGnuTime, run,
  signal, sleep, start, treeRss, waitQuiet, within,
} from './lib/sys';
import { formatRow } from './lib/table';

const REPO = path.resolve(__dirname, '..', '..');
const WORK_ROOT = '/var/tmp'; // the real disk, not tmpfs
const RING_MB = 256; // the same capture buffer for every tool
/** Memory is steady when it does not grow after this far into the traffic (issue 7). */
const STEADY_AFTER_S = 60;
/** Directories to delete however the bench ends. */
const scratch = new Set<string>();

function scratchDir(parent: string): string {
  const d = fs.mkdtempSync(path.join(parent, 'n2dtb-'));
  scratch.add(d);
  return d;
}

function removeScratch(): void {
  for (const d of scratch) fs.rmSync(d, { recursive: true, force: true });
  scratch.clear();
}

interface ToolSpec {
  name: string;
  argv(iface: string, dir: string): string[];
  /** Makes the output directory usable by the tool. */
  prepare?(dir: string): void;
  stopSignal: NodeJS.Signals;
  /** Quiet time after the traffic so the tool can hand over its last packets before it is stopped. */
  settleMs: number;
  /** How long the tool may take to exit once stopped. */
  stopTimeoutMs: number;
  count(dir: string, frameSize: number): StoredCount;
  /** What the tool says it stored and dropped, from its own output. */
  reported(output: string): { stored?: number; dropped?: number };
}

const num = (s: string | undefined): number | undefined => (s === undefined ? undefined : Number(s.replace(/,/g, '')));

const TOOLS: ToolSpec[] = [
  {
    name: 'n2disk-ts',
    argv: (iface, dir) => ['node', path.join(REPO, 'bin', 'n2disk-ts.js'), '-i', iface, '-o', dir, '-b', String(RING_MB), '-v'],
    stopSignal: 'SIGTERM',
    settleMs: 1000,
    stopTimeoutMs: 120_000,
    count: (dir, size) => countPcapDir(dir, size),
    reported: (out) => {
      const m = /n2disk-ts: ([\d,]+) packets in \d+ files, ([\d,]+) dropped by kernel/.exec(out);
      return { stored: num(m?.[1]), dropped: num(m?.[2]) };
    },
  },
  {
    name: 'tcpdump',
    argv: (iface, dir) => ['tcpdump', '-i', iface, '-w', path.join(dir, 'out.pcap'), '-B', String(RING_MB * 1024), '-n', '-Z', 'root'],
    stopSignal: 'SIGINT',
    settleMs: 1000,
    stopTimeoutMs: 60_000,
    count: (dir, size) => countPcapDir(dir, size),
    reported: (out) => ({
      stored: num(/(\d+) packets? captured/.exec(out)?.[1]),
      dropped: num(/(\d+) packets? dropped by kernel/.exec(out)?.[1]),
    }),
  },
  {
    name: 'netsniff-ng',
    // -s: no per-packet printing; --no-sock-mem: it would try to raise
    // machine-wide sysctls, which it cannot from inside a namespace anyway.
    argv: (iface, dir) => ['netsniff-ng', '--in', iface, '--out', path.join(dir, 'out.pcap'), '-s', '-S', `${RING_MB}MiB`, '--no-sock-mem'],
    stopSignal: 'SIGINT',
    settleMs: 1000,
    stopTimeoutMs: 60_000,
    count: (dir, size) => countPcapDir(dir, size),
    reported: (out) => {
      const inc = num(/(\d+)\s+packets incoming/.exec(out)?.[1]);
      const passed = num(/(\d+)\s+packets passed filter/.exec(out)?.[1]);
      const failed = num(/(\d+)\s+packets failed filter/.exec(out)?.[1]);
      return { stored: passed, dropped: failed !== undefined ? failed : inc !== undefined && passed !== undefined ? inc - passed : undefined };
    },
  },
  {
    name: 'stenotype',
    argv: (iface, dir) => [
      'stenotype', `--iface=${iface}`, `--dir=${dir}`, '--threads=1', `--blocks=${RING_MB}`, '--seccomp=none', '-v',
    ],
    // It does not create its PKT0/IDX0 directories, and it drops to nobody
    // once its socket is open.
    prepare: (dir) => {
      for (const d of ['PKT0', 'IDX0']) fs.mkdirSync(path.join(dir, d));
      run(['chown', '-R', 'nobody:nogroup', dir]);
    },
    stopSignal: 'SIGINT',
    // Its ring blocks are retired after 10 s when not full, and it exits
    // without waiting for the block in progress: give the last one time.
    settleMs: 11_500,
    // Its shutdown waits forever when no write is outstanding (until its
    // 2-minute watchdog aborts it); by then everything is on disk.
    stopTimeoutMs: 8_000,
    count: (dir, size) => countStenotypeDir(dir, size),
    // Its drop figure is cumulative: the last one logged is the total so far.
    reported: (out) => ({ dropped: num([...out.matchAll(/stats: .* drops=(\d+)/g)].pop()?.[1]) }),
  },
];

interface Result {
  traffic: Traffic;
  size: number;
  rate: string;
  tool: string;
  sent: number;
  /** Frames that came out of the wire on the capture side (veth rx), kept in the JSON. */
  arrived: number;
  seconds: number;
  stored: number;
  toolStored?: number;
  toolDropped?: number;
  /** CPU seconds from the start of the traffic to the tool's exit: capture, drain, final indexing. */
  cpuSec: number;
  /** CPU seconds before the traffic: start-up and ring allocation, a fixed cost left out of cpuSec. */
  startCpuSec: number;
  /** Tool CPU while the traffic ran, as a fraction of one core: near 1 means the core was the limit. */
  busy: number;
  rssMB: number;
  /** The tool's resident memory (with its children), sampled every second until it exits. */
  rss: RssSummary;
  diskMB: number;
  stopSec: number;
  /** Other people's processes, in cores, while the traffic ran. */
  foreignLoad: number;
  /** What the disk took while the traffic ran, whoever wrote it, in MB/s. */
  deviceMBps: number;
  count: StoredCount;
  notes: string[];
  /** The end of the tool's own output, for a look at what happened. */
  outputTail: string;
}

/** One sample a second of a process tree's RSS, timed from the start of the traffic (negative before it). */
class RssSampler {
  readonly samples: { t: number; mb: number }[] = [];
  private readonly timer: NodeJS.Timeout;
  private t0 = process.hrtime.bigint();

  constructor(private readonly pid: number) {
    this.timer = setInterval(() => this.sample(), 1000);
  }

  /** From now on samples are timed from the traffic's start. */
  trafficStarts(): void {
    this.t0 = process.hrtime.bigint();
    this.samples.length = 0;
    this.sample();
  }

  sample(): void {
    const mb = treeRss(this.pid) / 2 ** 20;
    if (mb > 0) this.samples.push({ t: Number(process.hrtime.bigint() - this.t0) / 1e9, mb });
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

interface RssSummary {
  /** At STEADY_AFTER_S into the traffic (the nearest sample); undefined in shorter runs. */
  atSteadyMB?: number;
  peakMB: number;
  /** The last sample before the stop signal: the tool's steady state, before the final file is indexed. */
  endMB: number;
  /**
   * The highest sample after STEADY_AFTER_S until the stop signal, less the highest before it:
   * above 0, memory still grew after the first minute. Undefined in runs shorter than two minutes.
   */
  growthMB?: number;
  samples: { t: number; mb: number }[];
}

function summarizeRss(samples: { t: number; mb: number }[], stopT: number): RssSummary {
  const running = samples.filter((s) => s.t <= stopT);
  const steady = running.filter((s) => s.t >= STEADY_AFTER_S - 1);
  const peak = (list: { mb: number }[]): number => list.reduce((m, s) => Math.max(m, s.mb), 0);
  // A trend needs at least a minute after the first one; a shorter tail only shows where the saw tooth stopped.
  const later = stopT >= 2 * STEADY_AFTER_S ? running.filter((s) => s.t > STEADY_AFTER_S) : [];
  return {
    atSteadyMB: steady.length ? steady[0].mb : undefined,
    peakMB: peak(samples),
    endMB: running.length ? running[running.length - 1].mb : 0,
    growthMB: later.length ? peak(later) - peak(running.filter((s) => s.t <= STEADY_AFTER_S)) : undefined,
    samples,
  };
}

/**
 * What trafgen sends. `random`: random addresses and ports, nearly every
 * packet a flow of its own, the flow index's worst case. `flows`: 52,961
 * clients (10.1.a.b, where a counts through 251 values and b through 211,
 * one step a packet) sending to one server port, each flow coming back every
 * 52,961 packets: at 0.48 Mpps, about 9 packets a flow each second.
 */
const TRAFFIC = ['random', 'flows'] as const;
type Traffic = (typeof TRAFFIC)[number];

/** A trafgen packet: Ethernet, IPv4, UDP, with a random IP id. */
function trafgenConfig(traffic: Traffic, size: number): string {
  if (size < 60 || size > 1514) throw new Error(`frame size ${size} outside 60..1514`);
  const endpoints = traffic === 'random'
    ? 'drnd(4), drnd(4),\n  drnd(2), drnd(2),'
    : '10, 1, dinc(0, 250), dinc(0, 210), 10, 2, 0, 1,\n  c16(40000), c16(4789),';
  return `{
  0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
  0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
  c16(0x0800),
  0x45, 0x00, c16(${size - 14}), drnd(2), c16(0x4000), 64, 17, c16(0),
  ${endpoints} c16(${size - 34}), c16(0),
  fill(0x00, ${size - 42})
}
`;
}

/** Waits for the tool's packet socket to be bound and running on the interface (/proc/PID/net/packet, column R). */
async function waitBound(toolPid: number, ifindex: number, child: Child, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !child.done) {
    try {
      for (const line of fs.readFileSync(`/proc/${toolPid}/net/packet`, 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length >= 9 && Number(f[4]) === ifindex && f[5] === '1') return;
      }
    } catch {
      /* not there yet */
    }
    await sleep(50);
  }
  throw new Error(child.done ? `exited early:\n${child.output().slice(-2000)}` : 'did not open its capture socket in time');
}

/** The process GNU time started, once it exists. */
async function childOf(pid: number, child: Child): Promise<number> {
  for (let i = 0; i < 200 && !child.done; i++) {
    const kids = childrenOf(pid);
    if (kids.length) return kids[0];
    await sleep(25);
  }
  throw new Error(`no child process under ${pid}:\n${child.output().slice(-2000)}`);
}

async function measure(tool: ToolSpec, traffic: Traffic, size: number, rate: string, seconds: number, tag: string, cfgFile: string): Promise<Result> {
  const notes: string[] = [];
  const veth = new VethPair(tag);
  const dir = scratchDir(WORK_ROOT);
  const timeFile = path.join(scratchDir(os.tmpdir()), 'time');
  let rss: RssSampler | undefined;
  try {
    veth.create();
    tool.prepare?.(dir);
    run(['sync']); // the previous run's dirty pages are not this run's disk load
    const wrapped = ['ip', 'netns', 'exec', veth.nsB, 'taskset', '-c', '1', ...gnuTime(timeFile), ...tool.argv(veth.ifB, dir)];
    // ip netns exec and taskset exec in place: the child's pid is GNU time's.
    const toolChild = start(wrapped);
    const toolPid = await childOf(toolChild.pid, toolChild);
    rss = new RssSampler(toolPid);
    await waitBound(toolPid, veth.ifindexB(), toolChild, 30_000);
    await sleep(1000);

    const c0 = veth.counters();
    const cpu0 = processCpu(toolPid);
    const load0 = loadSnapshot(WORK_ROOT);
    const rateArgs = rate === 'max' ? [] : ['-b', `${Math.round(Number(rate) * 1e6)}pps`];
    const t0 = process.hrtime.bigint();
    rss.trafficStarts();
    const gen = start([
      'ip', 'netns', 'exec', veth.nsA, 'taskset', '-c', '0',
      'trafgen', '-i', cfgFile, '-o', veth.ifA, '-P', '1', '--no-sock-mem', '-Q', ...rateArgs,
    ]);
    // The window closes while trafgen still runs, so its CPU is seen and
    // counted as ours. trafgen stops and prints its summary on SIGINT; its
    // worker is in its group.
    let cpu1 = NaN;
    let load1 = load0;
    let wall = seconds;
    const timer = setTimeout(() => {
      cpu1 = processCpu(toolPid);
      load1 = loadSnapshot(WORK_ROOT);
      wall = Number(process.hrtime.bigint() - t0) / 1e9;
      signal(-gen.pid, 'SIGINT');
    }, seconds * 1000);
    const genCode = await gen.exited;
    clearTimeout(timer);
    if (Number.isNaN(cpu1)) throw new Error(`trafgen ended early (exit ${genCode}):\n${gen.output().slice(-2000)}`);
    const c1 = veth.counters();
    if (genCode !== 0 && genCode !== 130) notes.push(`trafgen exit ${genCode}`);

    const out = gen.output();
    const genSent = num(/(\d+) packets outgoing/.exec(out)?.[1]);
    const m = /(\d+) sec, (\d+) usec on CPU/.exec(out);
    const genSec = m ? Number(m[1]) + Number(m[2]) / 1e6 : wall;
    const sent = c1.a.txPackets - c0.a.txPackets;
    if (genSent !== undefined && genSent !== sent) notes.push(`trafgen says ${genSent} sent`);
    if (rate !== 'max' && sent / genSec < 0.9 * Number(rate) * 1e6) notes.push(`rate not reached: trafgen managed ${(sent / genSec / 1e6).toFixed(3)} Mpps`);
    const arrived = c1.b.rxPackets - c0.b.rxPackets;
    const wireDrops = c1.a.txDropped - c0.a.txDropped + (c1.b.rxDropped - c0.b.rxDropped);
    if (wireDrops) notes.push(`${wireDrops} dropped by veth`);

    await sleep(tool.settleMs);
    rss.sample();
    const stopT = Number(process.hrtime.bigint() - t0) / 1e9;
    const stopAt = Date.now();
    signal(toolPid, tool.stopSignal);
    const exitedInTime = await within(toolChild.exited, tool.stopTimeoutMs);
    const stopSec = (Date.now() - stopAt) / 1000;
    if (!exitedInTime) {
      notes.push(`did not exit ${tool.stopTimeoutMs / 1000} s after ${tool.stopSignal}: killed`);
      signal(toolPid, 'SIGKILL'); // not GNU time: it still has to write the figures
      await toolChild.exited;
    }
    rss.stop();
    const { user, sys, maxRssKB: rssKB, note } = readGnuTime(timeFile);
    if (exitedInTime && note) notes.push(note);

    const toolOut = toolChild.output();
    const rep = tool.reported(toolOut);
    const count = tool.count(dir, size);
    if (rep.stored !== undefined && rep.stored !== count.packets) notes.push(`says ${rep.stored} stored, files hold ${count.packets}`);
    if (count.badLength) notes.push(`${count.badLength} records of wrong length`);
    if (count.outOfOrder) notes.push(`${count.outOfOrder} records out of time order`);
    if (count.truncated) notes.push(`${count.truncated} files end mid-record`);
    if (count.unfinished) notes.push(`${count.unfinished} files left unfinished`);
    if (tool.name === 'n2disk-ts') {
      const pcaps = fs.readdirSync(dir, { recursive: true }).map(String);
      const missingIdx = pcaps.filter((f) => f.endsWith('.pcap') && !pcaps.includes(`${f}.idx`)).length;
      if (missingIdx) notes.push(`${missingIdx} pcap files without index`);
      if (/internal error|warning:/.test(toolOut)) notes.push(toolOut.split('\n').find((l) => /internal error|warning:/.test(l)) ?? '');
    }
    return {
      traffic, size, rate, tool: tool.name, sent, arrived, seconds: genSec, stored: count.packets,
      toolStored: rep.stored, toolDropped: rep.dropped,
      cpuSec: user + sys - cpu0, startCpuSec: cpu0, busy: (cpu1 - cpu0) / wall, rssMB: rssKB / 1024,
      rss: summarizeRss(rss.samples, stopT),
      diskMB: count.diskBytes / 2 ** 20, stopSec, foreignLoad: foreignLoad(load0, load1),
      deviceMBps: deviceMBps(load0, load1), count, notes,
      outputTail: toolOut.slice(-3000),
    };
  } finally {
    rss?.stop();
    killAll();
    veth.destroy();
    run(['sync']);
    removeScratch();
  }
}

const pct = (a: number, b: number): number => (b > 0 ? (100 * a) / b : 0);
/** Two decimals, except that a loss too small for them still shows. */
const fmtPct = (p: number): string => (p > 0 && p < 0.01 ? p.toExponential(0) : p.toFixed(2));

function printTable(results: Result[]): void {
  const head = ['traffic', 'size', 'rate', 'tool', 'sent', 'Mpps', 'Gbit/s', 'stored', 'lost', 'lost%', 'ns/pkt', 'busy%', 'start s', 'RSS MB', `RSS@${STEADY_AFTER_S}`, 'RSS pk', 'RSS end', 'growth', 'disk MB/s', 'dev MB/s', 'stop s', 'other%'];
  const w = [7, 5, 5, 12, 10, 6, 6, 10, 10, 6, 7, 6, 7, 7, 7, 7, 7, 7, 9, 8, 6, 6];
  console.log(formatRow(head, w, 3));
  for (const r of results) {
    const lost = r.sent - r.stored;
    console.log(formatRow([
      r.traffic, r.size, r.rate, r.tool, r.sent, (r.sent / r.seconds / 1e6).toFixed(3),
      ((r.sent * r.size * 8) / r.seconds / 1e9).toFixed(2),
      r.stored, lost, fmtPct(pct(lost, r.sent)), r.stored ? ((r.cpuSec / r.stored) * 1e9).toFixed(0) : '-',
      (r.busy * 100).toFixed(0), r.startCpuSec.toFixed(2), r.rssMB.toFixed(0),
      r.rss.atSteadyMB?.toFixed(0) ?? '-', r.rss.peakMB.toFixed(0), r.rss.endMB.toFixed(0),
      r.rss.growthMB?.toFixed(0) ?? '-', (r.diskMB / r.seconds).toFixed(0), r.deviceMBps.toFixed(0), r.stopSec.toFixed(1),
      (r.foreignLoad * 100).toFixed(0),
    ], w, 3));
  }
  const notes = results.filter((r) => r.notes.length || r.toolDropped);
  if (notes.length) console.log('\nnotes:');
  for (const r of notes) {
    const said = r.toolDropped ? [`tool reports ${r.toolDropped} kernel drops`] : [];
    const unaccounted = r.toolDropped !== undefined ? r.sent - r.stored - r.toolDropped : 0;
    if (unaccounted) said.push(`${unaccounted} lost without a drop count`);
    console.log(`  ${r.traffic} ${r.size} B ${r.rate} ${r.tool}: ${[...said, ...r.notes].join('; ')}`);
  }
}

function printRatios(results: Result[]): void {
  console.log('\nn2disk-ts against each peer, same size and rate (loss and CPU per stored packet; < 1 is better):');
  const groups = new Map<string, Result[]>();
  for (const r of results) {
    const key = `${r.traffic} ${r.size} B ${r.rate}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  for (const [key, rs] of groups) {
    const n = rs.find((r) => r.tool === 'n2disk-ts');
    if (!n) continue;
    const lossN = pct(n.sent - n.stored, n.sent);
    const nsN = n.cpuSec / Math.max(1, n.stored);
    for (const p of rs.filter((r) => r !== n)) {
      const lossP = pct(p.sent - p.stored, p.sent);
      const ratio = lossP > 0 ? (lossN / lossP).toFixed(2) : lossN > 0 ? 'inf' : '- (both 0)';
      const nsP = p.cpuSec / Math.max(1, p.stored);
      console.log(`  ${key.padEnd(12)} vs ${p.tool.padEnd(12)} loss ${fmtPct(lossN)}% / ${fmtPct(lossP)}% = ${ratio.padEnd(10)} CPU/pkt ${(nsN * 1e9).toFixed(0)} / ${(nsP * 1e9).toFixed(0)} ns = ${(nsN / nsP).toFixed(2)}`);
    }
  }
}

function cleanupAndExit(code: number): never {
  killAll();
  destroyAllNamespaces();
  removeScratch();
  process.exit(code);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '15' },
      sizes: { type: 'string', default: '100,1500' },
      rates: { type: 'string', default: '0.5,1,max' },
      traffic: { type: 'string', default: 'random' },
      tools: { type: 'string', default: TOOLS.map((t) => t.name).join(',') },
      json: { type: 'string' },
      'quiet-wait': { type: 'string', default: '30' },
    },
  });
  const seconds = Number(values.seconds);
  const sizes = values.sizes.split(',').map(Number);
  const rates = values.rates.split(',');
  const traffics = values.traffic.split(',').map((t) => {
    const known = TRAFFIC.find((x) => x === t);
    if (!known) throw new Error(`unknown --traffic ${t} (have ${TRAFFIC.join(', ')})`);
    return known;
  });
  const tools = values.tools.split(',').map((n) => {
    const t = TOOLS.find((x) => x.name === n);
    if (!t) throw new Error(`unknown tool ${n} (have ${TOOLS.map((x) => x.name).join(', ')})`);
    return t;
  });
  if (!(seconds > 0) || sizes.some((s) => !Number.isInteger(s)) || rates.some((r) => r !== 'max' && !(Number(r) > 0))) {
    throw new Error('bad --seconds, --sizes or --rates');
  }
  if (process.getuid?.() !== 0) throw new Error('needs root (namespaces, packet sockets)');
  if (cpuTimes().length < 2) throw new Error('needs two CPUs');

  console.log(`n2disk-ts capture benchmark, ${new Date().toISOString()}`);
  console.log(`machine: ${machine()}`);
  console.log(`n2disk-ts: ${REPO} at ${commitOf(REPO)}`);
  console.log(`trafgen on CPU 0, tool on CPU 1, ${RING_MB} MB ring each, ${seconds} s per run\n`);

  const cfgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'n2dtb-'));
  process.on('exit', () => fs.rmSync(cfgDir, { recursive: true, force: true }));
  const results: Result[] = [];
  let k = 0;
  for (const [traffic, size] of traffics.flatMap((t) => sizes.map((s) => [t, s] as const))) {
    const cfgFile = path.join(cfgDir, `${traffic}-${size}.cfg`);
    fs.writeFileSync(cfgFile, trafgenConfig(traffic, size));
    for (const rate of rates) {
      for (const tool of tools) {
        // Other work on a 2-core machine moves the figures more than anything measured here.
        const load = await waitQuiet(0.15, Number(values['quiet-wait']) * 1000);
        process.stderr.write(`${traffic}, ${size} B, ${rate === 'max' ? 'max' : `${rate} Mpps`}, ${tool.name}${load >= 0.15 ? ` (machine busy: ${(load * 100).toFixed(0)}% of a core)` : ''}...\n`);
        try {
          const r = await measure(tool, traffic, size, rate, seconds, String(k++ % 100), cfgFile);
          results.push(r);
          process.stderr.write(`  sent ${r.sent}, stored ${r.stored}, ${(r.cpuSec * 1e9 / Math.max(1, r.stored)).toFixed(0)} ns/pkt, RSS peak ${r.rss.peakMB.toFixed(0)} MB${r.notes.length ? `; ${r.notes.join('; ')}` : ''}\n`);
        } catch (err) {
          process.stderr.write(`  failed: ${(err as Error).message}\n`);
        }
      }
    }
  }
  console.log();
  printTable(results);
  printRatios(results);
  if (values.json) fs.writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), machine: machine(), seconds, results }, null, 2));
}

process.on('SIGINT', () => cleanupAndExit(130));
process.on('SIGTERM', () => cleanupAndExit(143));
process.on('exit', () => {
  killAll();
  destroyAllNamespaces();
  removeScratch();
});
main().then(
  () => cleanupAndExit(0),
  (err: unknown) => {
    process.stderr.write(`capture: ${err instanceof Error ? err.message : String(err)}\n`);
    cleanupAndExit(1);
  },
);
