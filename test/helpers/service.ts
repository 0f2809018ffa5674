// The extraction service under a real PAM stack without touching system
// accounts: libpam-wrapper redirects pam_start() to a service directory of
// our own whose `npcapextract` file uses pam_matrix with a password file.
//
// Usage (cleanup must run even when the test fails):
//   const svc = await startService({ dir, conf, pamDir });
//   t.after(() => svc.stop());
// stop() is idempotent; services still running at exit are killed by a handler installed here.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { bin } from './recorder';
import { waitForFile } from './recorder';

/** pam_matrix.so of the installed libpam-wrapper. */
export function pamMatrixModule(): string {
  const files = execFileSync('dpkg', ['-L', 'libpam-wrapper'], { encoding: 'utf8' }).split('\n');
  const found = files.find((f) => f.endsWith('/pam_matrix.so'));
  if (!found) throw new Error('libpam-wrapper has no pam_matrix.so (apt-get install libpam-wrapper)');
  return found;
}

/** A PAM service directory for libpam-wrapper: `npcapextract` checks passwords against `users` with pam_matrix. */
export function writePamService(dir: string, users: Record<string, string>): string {
  const passdb = path.join(dir, 'passdb');
  fs.writeFileSync(passdb, Object.entries(users).map(([u, p]) => `${u}:${p}:npcapextract\n`).join(''), { mode: 0o644 });
  const services = path.join(dir, 'pam.d');
  fs.mkdirSync(services, { mode: 0o755 });
  const module = pamMatrixModule();
  fs.writeFileSync(path.join(services, 'npcapextract'), `auth required ${module} passdb=${passdb}\naccount required ${module} passdb=${passdb}\n`, { mode: 0o644 });
  return services;
}

export interface ExtractConf {
  socket: string;
  audit: string;
  timelines: string[];
  users?: string[];
  groups?: string[];
}

export function writeConf(file: string, c: ExtractConf): void {
  const lines = [
    'auth = on',
    `socket = ${c.socket}`,
    `audit = ${c.audit}`,
    `timeline = ${c.timelines.join(', ')}`,
    `users = ${(c.users ?? []).join(' ')}`,
    `groups = ${(c.groups ?? []).join(' ')}`,
    // Fast tests; the default second is for real use.
    'fail_delay_ms = 50',
  ];
  fs.writeFileSync(file, lines.join('\n') + '\n', { mode: 0o644 });
}

export interface ServiceOptions {
  conf: string;
  socket: string;
  pamServices: string;
  /** Run as this user (root tests). */
  uid?: number;
  gid?: number;
  /** Trace the service's file opens into this file (strace -f -e trace=open,openat). */
  straceLog?: string;
}

export interface RunningService {
  child: ChildProcess;
  stderr(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) signalGroup(c, 'SIGKILL');
});

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    /* already gone */
  }
}

export async function startService(o: ServiceOptions): Promise<RunningService> {
  const env = { ...process.env, PAM_WRAPPER: '1', PAM_WRAPPER_SERVICE_DIR: o.pamServices, NPCAPEXTRACT_CONF: o.conf };
  const node = [process.execPath, bin('npcapextractd')];
  // LD_PRELOAD goes to the service only (strace -E), not to strace.
  const [cmd, ...args] = o.straceLog
    ? ['strace', '-f', '-qq', '-e', 'trace=open,openat', '-o', o.straceLog, '-E', 'LD_PRELOAD=libpam_wrapper.so', ...node]
    : node;
  const child = spawn(cmd!, args, {
    env: o.straceLog ? env : { ...env, LD_PRELOAD: 'libpam_wrapper.so' },
    stdio: ['ignore', 'ignore', 'pipe'],
    uid: o.uid,
    gid: o.gid,
    // Its own process group: signals reach the service under strace too (strace alone would detach and leave it running).
    detached: true,
  });
  running.add(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      signalGroup(child, 'SIGTERM');
      const killer = setTimeout(() => signalGroup(child, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    running.delete(child);
  };
  try {
    await Promise.race([
      waitForFile(o.socket, 15_000),
      exited.then(() => {
        throw new Error(`npcapextractd exited: ${stderr}`);
      }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, stderr: () => stderr, stop };
}

export interface ExtractRun {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export interface ExtractRunOptions {
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, then closed. */
  stdin?: string | Buffer;
  uid?: number;
  gid?: number;
}

/** Runs npcapextract to completion with its own environment and stdin. */
export function runExtract(args: readonly string[], o: ExtractRunOptions = {}): Promise<ExtractRun> {
  return new Promise((resolve, reject) => {
    // A session of its own: no controlling terminal to ask a password on.
    const child = spawn(process.execPath, [bin('npcapextract'), ...args], { env: { ...process.env, ...o.env }, uid: o.uid, gid: o.gid, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // The client stops reading a password after a few KB: a long input may meet a closed pipe.
    child.stdin.on('error', () => undefined);
    child.stdin.end(o.stdin ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

/** The audit log as records. */
export function auditRecords(file: string): Record<string, unknown>[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
