// Two network namespaces joined by a veth pair, for root-only capture tests.
//
// Usage (cleanup must run even when the test fails):
//   test('... (root)', async (t) => {
//     if (skipUnlessRoot(t)) return;
//     const env = await createNetnsPair();
//     t.after(() => env.cleanup());        // or try { ... } finally { await env.cleanup(); }
//     ...
//   });
// cleanup() is idempotent; environments still alive at process exit or on SIGINT/SIGTERM/SIGHUP are
// torn down synchronously by a handler installed here. A SIGKILLed run leaves namespaces behind:
// sweepStaleNamespaces() removes those whose owning pid is gone.
import { ChildProcess, execFile, execFileSync, spawn as cpSpawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';

export const NS_PREFIX = 'n2dts-';

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface NetnsEnv {
  nsA: string;
  nsB: string;
  ifA: string; // veth end inside nsA
  ifB: string; // veth end inside nsB
  mtu: number;
  /** Runs cmd inside namespace ns; rejects with its stderr on a non-zero exit. */
  exec(ns: string, cmd: string, args: readonly string[]): Promise<ExecResult>;
  /** Starts cmd inside namespace ns (stdout/stderr piped); cleanup() kills it if still running. */
  spawn(ns: string, cmd: string, args: readonly string[]): ChildProcess;
  /** Kills spawned processes, deletes both namespaces (which deletes the veth). Safe to call twice. */
  cleanup(): Promise<void>;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Skips the test (and returns true) unless running as root; the skip message says why. */
export function skipUnlessRoot(t: TestContext): boolean {
  if (isRoot()) return false;
  t.skip('needs root (network namespaces, veth, packet capture)');
  return true;
}

export function run(cmd: string, args: readonly string[]): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve({ stdout, stderr });
    });
  });
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Names of all namespaces of this helper (any process), from `ip netns list`. */
export async function listTestNamespaces(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(NS_PREFIX));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Deletes n2dts- namespaces left by runs that died without cleanup (their pid no longer exists),
 * killing what those runs left running inside them.
 */
export async function sweepStaleNamespaces(): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of await listTestNamespaces()) {
    const pid = Number(ns.slice(NS_PREFIX.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid)) {
      const { stdout } = await run('ip', ['netns', 'pids', ns]).catch(() => ({ stdout: '' }));
      for (const p of stdout.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await run('ip', ['netns', 'del', ns]).catch(() => undefined);
      removed.push(ns);
    }
  }
  return removed;
}

// Environments not yet cleaned up, for the exit/signal handler.
const live = new Set<{ syncCleanup(): void }>();
let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const all = (): void => {
    for (const e of [...live]) e.syncCleanup();
  };
  process.on('exit', all);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    // A listener replaces node's default "terminate" action, so exit explicitly after cleaning up.
    process.once(sig, () => {
      all();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal); // its own process group (detached): children of the command die too
  } catch {
    /* already gone */
  }
}

export interface NetnsOptions {
  mtu?: number; // default 1500
}

export async function createNetnsPair(opts: NetnsOptions = {}): Promise<NetnsEnv> {
  const mtu = opts.mtu ?? 1500;
  const suffix = randomBytes(3).toString('hex');
  const nsA = `${NS_PREFIX}${process.pid}-${suffix}-a`;
  const nsB = `${NS_PREFIX}${process.pid}-${suffix}-b`;
  // Interface names live in their own namespaces, but keep them unique anyway to ease debugging (<= 15 chars).
  const ifA = `n2a-${suffix}`;
  const ifB = `n2b-${suffix}`;
  const children = new Set<ChildProcess>();
  let cleaning: Promise<void> | undefined;

  const entry = {
    syncCleanup(): void {
      for (const c of children) killGroup(c, 'SIGKILL');
      for (const ns of [nsA, nsB]) {
        try {
          execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
        } catch {
          /* not there */
        }
      }
      live.delete(entry);
    },
  };
  installExitHandlers();
  live.add(entry);

  const exec = (ns: string, cmd: string, args: readonly string[]): Promise<ExecResult> =>
    run('ip', ['netns', 'exec', ns, cmd, ...args]);

  const spawn = (ns: string, cmd: string, args: readonly string[]): ChildProcess => {
    // `ip netns exec` execs the command in place, so the child's pid is the command's pid.
    const child = cpSpawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    children.add(child);
    child.on('exit', () => children.delete(child));
    return child;
  };

  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      const waits = [...children].map((c) => exitOf(c, 2000).catch(() => undefined));
      for (const c of children) killGroup(c, 'SIGTERM');
      const t = setTimeout(() => {
        for (const c of children) killGroup(c, 'SIGKILL');
      }, 1000);
      await Promise.all(waits);
      clearTimeout(t);
      // Processes left inside would keep the namespace alive after `ip netns del`; they are gone by now.
      for (const ns of [nsA, nsB]) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
      live.delete(entry);
    })();
    return cleaning;
  };

  const env: NetnsEnv = { nsA, nsB, ifA, ifB, mtu, exec, spawn, cleanup };
  try {
    await run('ip', ['netns', 'add', nsA]);
    await run('ip', ['netns', 'add', nsB]);
    await run('ip', ['link', 'add', ifA, 'netns', nsA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
    // ethtool is not installed on every test machine and is not installed by this helper: without it
    // the kernel's defaults stay (veth: GRO off unless enabled, TSO/GSO only matter for locally sent traffic).
    const ethtool = hasCommand('ethtool');
    for (const [ns, ifname] of [[nsA, ifA], [nsB, ifB]] as const) {
      // Before link up, so the kernel never sends router solicitations, DAD or MLD reports on it.
      await exec(ns, 'sysctl', ['-q', '-w', `net.ipv6.conf.${ifname}.disable_ipv6=1`]).catch((e: Error) => {
        if (!/No such file|cannot stat/i.test(e.message)) throw e; // kernel without IPv6: nothing to disable
      });
      if (ethtool) {
        // One feature per call: ethtool fails the whole call if any one feature is fixed on this kernel.
        for (const f of ['gro', 'lro', 'tso', 'gso', 'rx-gro-list', 'rx-udp-gro-forwarding']) {
          await exec(ns, 'ethtool', ['-K', ifname, f, 'off']).catch(() => undefined);
        }
      }
      // No addresses are assigned: with no IPv4/IPv6 address the kernel sends nothing by itself.
      await exec(ns, 'ip', ['link', 'set', 'dev', ifname, 'mtu', String(mtu), 'up']);
    }
  } catch (e) {
    await cleanup();
    throw e;
  }
  return env;
}

/** Resolves with the exit code (or the signal name) once the child has exited; rejects after timeoutMs. */
export function exitOf(child: ChildProcess, timeoutMs = 10_000): Promise<number | NodeJS.Signals> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`process ${child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal ?? -1);
    });
  });
}

/** Resolves once the child's stdout or stderr has matched pattern (e.g. tcpdump's "listening on"). */
export function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (d: Buffer): void => {
      seen += d.toString();
      if (pattern.test(seen)) done(undefined);
    };
    const onExit = (): void => done(new Error(`process exited before printing ${pattern}; output: ${seen.trim()}`));
    const timer = setTimeout(() => done(new Error(`no ${pattern} within ${timeoutMs} ms; output: ${seen.trim()}`)), timeoutMs);
    const done = (err: Error | undefined): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(seen);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}

export interface ReplayOptions {
  pps?: number; // packets per second; default 2000 when mbps is not given
  mbps?: number;
  ns?: string; // default env.nsA
  iface?: string; // default env.ifA
  limit?: number; // send only the first N packets
}

/** Sends a capture file with tcpreplay from inside a namespace; resolves with the packets tcpreplay reports sent. */
export async function replay(env: NetnsEnv, pcapPath: string, opts: ReplayOptions = {}): Promise<number> {
  const args = ['-i', opts.iface ?? env.ifA];
  if (opts.mbps !== undefined) args.push(`--mbps=${opts.mbps}`);
  else args.push(`--pps=${opts.pps ?? 2000}`);
  if (opts.limit !== undefined) args.push(`--limit=${opts.limit}`);
  args.push(pcapPath);
  const { stdout, stderr } = await env.exec(opts.ns ?? env.nsA, 'tcpreplay', args);
  // tcpreplay 4.x: "Actual: 500 packets (141554 bytes) sent in ..." then "Successful packets: 500".
  const ok = /Successful packets:\s+(\d+)/.exec(stdout) ?? /Actual:\s+(\d+) packets/.exec(stdout);
  if (!ok) throw new Error(`cannot parse tcpreplay output: ${stdout}${stderr}`);
  return Number(ok[1]);
}
