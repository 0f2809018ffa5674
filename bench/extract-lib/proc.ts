// Timed child processes and the clean-up every exit path must run: children
// still alive, namespaces created, scratch data.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';

export interface Timed {
  seconds: number;
  status: number;
  stdout: string;
  stderr: string;
  /** CPU seconds the command used (user + system, its children included). */
  cpu: number;
  /** CPU seconds the rest of the machine used meanwhile: other people's work disturbing the timing. */
  otherCpu: number;
}

const TICK = 100; // USER_HZ of /proc/stat

/** Runs to completion and measures wall time; throws when it fails unless allowFail. */
export function timed(argv: string[], allowFail = false): Timed {
  // bash's `times` gives the command's own CPU use, to tell it from other load.
  const wrapped = ['bash', '-c', '"$@"; s=$?; times >&2; exit $s', 'timed', ...argv];
  const c0 = cpuTimes();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(wrapped[0]!, wrapped.slice(1), { encoding: 'utf8', maxBuffer: 1 << 28 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const c1 = cpuTimes();
  const status = r.status ?? 128;
  let stderr = r.stderr ?? '';
  let cpu = 0;
  const m = /\n?(\d+)m([\d.]+)s (\d+)m([\d.]+)s\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s\n$/.exec(stderr);
  if (m) {
    stderr = stderr.slice(0, m.index);
    cpu = Number(m[5]) * 60 + Number(m[6]) + Number(m[7]) * 60 + Number(m[8]);
  }
  if (!allowFail && (status !== 0 || r.error)) {
    throw new Error(`${argv.join(' ')}: exit ${status}: ${r.error?.message ?? ''} ${stderr.trim().slice(-2000)}`);
  }
  const otherCpu = Math.max(0, (c1.busy - c0.busy) / TICK - cpu);
  return { seconds, status, stdout: r.stdout ?? '', stderr, cpu, otherCpu };
}

export const run = (argv: string[], allowFail = false): string => timed(argv, allowFail).stdout;

/** Empties the page cache: the next read of any file comes from the disk. */
export function dropCaches(): void {
  run(['sh', '-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
}

const cleanups: (() => void)[] = [];
const children = new Set<ChildProcess>();

/** Registers an action for every exit path (normal end, error, SIGINT/SIGTERM); last registered runs first. */
export function onCleanup(f: () => void): void {
  cleanups.push(f);
}

export function runCleanups(): void {
  for (const c of children) {
    // Own process group (detached): kill what the child forked too.
    try {
      if (c.pid) process.kill(-c.pid, 'SIGKILL');
    } catch { /* already gone */ }
  }
  children.clear();
  while (cleanups.length) {
    try {
      cleanups.pop()!();
    } catch (e) {
      process.stderr.write(`cleanup: ${(e as Error).message}\n`);
    }
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: cleaning up\n`);
    runCleanups();
    process.exit(130);
  });
}

/** A long-running child in its own process group, killed by runCleanups if still alive. */
export function background(argv: string[], logFile?: number): ChildProcess {
  const out = logFile ?? 'ignore';
  const c = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', out, out] });
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}

/** Stops a background child with SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(c: ChildProcess, graceMs = 10_000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise<void>((r) => c.once('exit', () => r()));
  try {
    process.kill(-c.pid!, 'SIGTERM');
  } catch { /* gone */ }
  const t = setTimeout(() => {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch { /* gone */ }
  }, graceMs);
  await gone;
  clearTimeout(t);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function cpuTimes(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + f[4]!; // idle + iowait
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/**
 * Other people's benchmarks share this machine: waits (up to maxMs) until
 * the CPUs are nearly idle over one second, so a timing measures our tool
 * and not theirs. Returns the busy share last seen (0..1).
 */
export function awaitQuiet(maxMs = 60_000, threshold = 0.1): number {
  const t0 = Date.now();
  let share = 1;
  while (Date.now() - t0 < maxMs) {
    const a = cpuTimes();
    spawnSync('sleep', ['1']);
    const b = cpuTimes();
    share = (b.busy - a.busy) / Math.max(1, b.total - a.total);
    if (share < threshold) return share;
    spawnSync('sleep', ['4']);
  }
  process.stderr.write(`  machine still ${(share * 100).toFixed(0)}% busy with other work after ${maxMs / 1000} s: timing anyway\n`);
  return share;
}
