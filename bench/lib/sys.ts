// Process and /proc helpers for the benchmarks: children that are always
// cleaned up, CPU accounting, and the machine description.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs a short command to completion; throws with its stderr when it fails. */
export function run(argv: string[], allowFail = false): string {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  if (!allowFail && (r.status !== 0 || r.error)) {
    throw new Error(`${argv.join(' ')}: ${r.error?.message ?? r.stderr.trim() ?? `exit ${r.status}`}`);
  }
  return r.stdout ?? '';
}

/** A long-running child in its own process group, with its output kept in memory. */
export interface Child {
  proc: ChildProcess;
  pid: number;
  output: () => string;
  /** Resolves with the exit code (or 128 + signal) once the child has exited. */
  exited: Promise<number>;
  done: boolean;
}

const live = new Set<Child>();
const KEEP_OUTPUT = 1 << 20;

export function start(argv: string[]): Child {
  // detached: a group of its own, so that a Ctrl-C on the bench does not reach
  // the tools before the bench decides what to do, and killAll() can take
  // down whatever the child forked (trafgen's workers).
  const proc = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer): void => {
    out += b.toString();
    if (out.length > KEEP_OUTPUT) out = out.slice(-KEEP_OUTPUT / 2);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const child: Child = { proc, pid: proc.pid ?? -1, output: () => out, exited: Promise.resolve(0), done: false };
  child.exited = new Promise((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code, sig) => {
      child.done = true;
      live.delete(child);
      resolve(code ?? 128 + (sig ? os.constants.signals[sig] : 0));
    });
  });
  if (child.pid < 0) throw new Error(`cannot start ${argv[0]}`);
  live.add(child);
  return child;
}

/** Kills every child still running, group and all; safe to call from an exit handler. */
export function killAll(): void {
  for (const c of live) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** Resolves true if the promise settled within ms. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  const ok = await Promise.race([p.then(() => true as const), t]);
  clearTimeout(timer);
  return ok;
}

/** Direct children of a process (the kernel lists them per thread; the main thread suffices here). */
export function childrenOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A process and every descendant, children of any of its threads included (node forks from several). */
export function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) {
    let tasks: string[] = [];
    try {
      tasks = fs.readdirSync(`/proc/${all[i]}/task`);
    } catch {
      continue; // gone
    }
    for (const t of tasks) {
      try {
        all.push(...fs.readFileSync(`/proc/${all[i]}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
      } catch {
        /* the thread ended */
      }
    }
  }
  return all;
}

/** Resident set of a process and its descendants, in bytes (VmRSS; 0 for those gone). */
export function treeRss(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      kb += Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      /* gone */
    }
  }
  return kb * 1024;
}

const CLK_TCK = 100; // USER_HZ on every Linux architecture this runs on

interface ProcStat {
  ppid: number;
  start: number;
  /** utime + stime + cutime + cstime, in seconds: reaped children count towards their parent. */
  cpu: number;
  /** utime + stime only. */
  self: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name can hold spaces and parentheses: fields start after the last ')'.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const n = (i: number): number => Number(f[i - 3]);
    return { ppid: n(4), start: n(22), cpu: (n(14) + n(15) + n(16) + n(17)) / CLK_TCK, self: (n(14) + n(15)) / CLK_TCK };
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far, all its threads included. */
export function processCpu(pid: number): number {
  const s = readStat(pid);
  return s ? s.cpu : NaN;
}

export type ProcSnapshot = Map<number, ProcStat>;

export function snapshotProcesses(): ProcSnapshot {
  const m: ProcSnapshot = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = readStat(Number(d));
    if (s) m.set(Number(d), s);
  }
  return m;
}

/**
 * CPU seconds used between two snapshots by this bench and its descendants
 * (trafgen, the tool) and by kernel threads (softirq, I/O): the work under
 * test. The rest of the machine's busy time is other people's work, which
 * competes for the two cores. Own times only for those still alive: a reaped
 * child's whole life lands in its parent's cutime at once and would count
 * twice. Children the bench reaps inside the window are counted whole, so
 * they must have started inside it.
 */
export function ownCpu(before: ProcSnapshot, after: ProcSnapshot): number {
  const ours = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
      if (p === process.pid || p === 2) return true;
      p = after.get(p)?.ppid ?? 0;
    }
    return false;
  };
  let total = 0;
  for (const [pid, s] of after) {
    if (!ours(pid)) continue;
    const b = before.get(pid);
    total += b && b.start === s.start ? s.self - b.self : s.self;
  }
  // A child the bench started and reaped inside the window is in neither
  // snapshot: its whole life is in the bench's cutime + cstime.
  const me0 = before.get(process.pid);
  const me1 = after.get(process.pid);
  if (me0 && me1) total += me1.cpu - me1.self - (me0.cpu - me0.self);
  return total;
}

/**
 * Per-CPU cumulative jiffies from /proc/stat. busy is user + nice + system:
 * time charged to tasks, comparable with their own utime + stime (interrupt
 * and steal time are charged to none).
 */
export function cpuTimes(): { busy: number; total: number }[] {
  const out: { busy: number; total: number }[] = [];
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)/.exec(line);
    if (!m) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    out[Number(m[1])] = { busy: v[0] + v[1] + v[2], total };
  }
  return out;
}

/** Waits until the machine is nearly idle (< maxLoad cores busy for two seconds), up to maxWaitMs. Returns the last load seen. */
export async function waitQuiet(maxLoad: number, maxWaitMs: number): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  let calm = 0;
  let load = 0;
  for (;;) {
    const a = cpuTimes();
    await sleep(1000);
    const b = cpuTimes();
    load = b.reduce((sum, t, i) => sum + (t.busy - a[i].busy) / Math.max(1, t.total - a[i].total), 0);
    calm = load < maxLoad ? calm + 1 : 0;
    if (calm >= 2 || Date.now() > deadline) return load;
  }
}

/** Bytes written so far to the block device holding path (/proc/diskstats), to tell the tool's writes from other people's. */
export function deviceWrittenBytes(file: string): number {
  const dev = fs.statSync(file).dev;
  // glibc's major()/minor() for the 32-bit encodings Node reports.
  const major = ((dev >>> 8) & 0xfff) >>> 0;
  const minor = ((dev & 0xff) | ((dev >>> 12) & 0xfff00)) >>> 0;
  for (const line of fs.readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (Number(f[0]) === major && Number(f[1]) === minor) return Number(f[9]) * 512;
  }
  return NaN;
}

export function machine(): string {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown CPU';
  const mem = (os.totalmem() / 2 ** 30).toFixed(1);
  return `${os.availableParallelism()} CPUs (${model}), ${mem} GiB RAM, Linux ${os.release()}, Node ${process.version}`;
}

/** Machine-wide CPU, processes and disk writes at one moment: two of them bound a measured window. */
export interface LoadSnapshot {
  cpus: ReturnType<typeof cpuTimes>;
  procs: ProcSnapshot;
  /** Bytes written so far to the block device holding the directory the snapshot was taken for. */
  diskBytes: number;
  at: number;
}

export function loadSnapshot(diskOf: string): LoadSnapshot {
  return { cpus: cpuTimes(), procs: snapshotProcesses(), diskBytes: deviceWrittenBytes(diskOf), at: Date.now() };
}

/** Cores used by other people's work between two snapshots (see ownCpu). */
export function foreignLoad(a: LoadSnapshot, b: LoadSnapshot): number {
  const busy = b.cpus.reduce((n, t, i) => n + t.busy - a.cpus[i].busy, 0) / 100;
  return Math.max(0, busy - ownCpu(a.procs, b.procs)) / Math.max(0.001, (b.at - a.at) / 1000);
}

/** What the disk took between two snapshots, whoever wrote it, in MB/s (2^20). */
export function deviceMBps(a: LoadSnapshot, b: LoadSnapshot): number {
  return (b.diskBytes - a.diskBytes) / 2 ** 20 / ((b.at - a.at) / 1000);
}

/** Prefix for a command's argv: GNU time writes its CPU and peak RSS to file (see readGnuTime). */
export function gnuTime(file: string): string[] {
  return ['/usr/bin/time', '-f', '%U %S %M', '-o', file];
}

export interface GnuTimes {
  user: number;
  sys: number;
  maxRssKB: number;
  /** GNU time's line before the figures when the command failed ("Command exited with non-zero status N"). */
  note?: string;
}

export function readGnuTime(file: string): GnuTimes {
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  const [user, sys, maxRssKB] = lines[lines.length - 1].split(' ').map(Number);
  return { user, sys, maxRssKB, note: lines.length > 1 ? lines[0].trim() : undefined };
}

/** The commit the benchmarked code is at, "-dirty" when it has uncommitted changes. */
export function commitOf(repo: string): string {
  return run(['git', '-C', repo, 'describe', '--always', '--dirty'], true).trim() || 'unknown commit';
}
