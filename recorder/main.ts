// n2disk-ts: records an interface, or imports a capture file, into a
// rotating, indexed, time-lined pcap dump set.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RecorderOptions } from '../native/addon';
import { CliError, Exit, integer, newProgram, run } from './cli';
import { Compressor } from './compressor';
import { CONFIG_FLAG, expandConfig } from './config-file';
import { DiskBudget, parseDiskLimit } from './disk-budget';
import { DumpSet } from './dumpset';
import { Logger } from './log';
import { ListenAddress, parseListenAddress } from './metrics';
import { Monitor } from './monitor';
import { MAX_CAPLEN } from './pcap-file';
import { dropPrivileges, resolveUser } from './privileges';
import { repairDumpSet } from './repair';
import { Session, SessionBudget } from './session';
import { interfaceSpeedMbps } from './uburst';

const NAME = 'n2disk-ts';
/** Stopped at the disk limit, as -4 asks. */
const EXIT_LIMIT = 5;

interface Flags {
  interface: string;
  dumpDir: string;
  timeline?: string;
  maxFileSize: number;
  maxFileDuration: number;
  maxFilePackets: number;
  filesPerDir: number;
  buffer: number;
  chunk: number;
  snaplen: number;
  filter?: string;
  nano: boolean;
  user?: string;
  promisc: boolean;
  localTime: boolean;
  pidFile?: string;
  diskLimit: string;
  overwrite: boolean;
  execCmd?: string;
  compress: boolean;
  verbose: number;
  statsFile?: string;
  metricsPort?: ListenAddress;
  uburstDetection: boolean;
  uburstWinSize: number;
  uburstLinkSpeed?: number;
  uburstThreshold: number;
}

function parseArgs(argv: string[]): Flags {
  const program = newProgram(NAME, 'Record an interface, or import a pcap/pcapng file, into an indexed pcap dump set.')
    .requiredOption('-i, --interface <iface|file>', 'interface to capture, or a pcap/pcapng file to import')
    .option('-o, --dump-dir <dir>', 'storage directory', './n2disk-data')
    .option('-A, --timeline <dir>', 'timeline directory (default: DUMP-DIR/timeline)')
    .option('-p, --max-file-size <MB>', 'rotate files at this size', integer(1, 1 << 20), 256)
    .option('-t, --max-file-duration <s>', 'rotate files after this many seconds (0: never)', integer(0), 300)
    .option('-N, --max-file-packets <n>', 'rotate files after this many packets (0: never)', integer(0), 0)
    .option('-m, --files-per-dir <n>', 'files per storage subdirectory', integer(1), 100)
    .option('-b, --buffer <MB>', 'capture buffer: the kernel ring, and as much again for the disk writes queued behind it', integer(1, 1 << 16), 64)
    .option('-C, --chunk <KB>', 'size of each disk write, a multiple of 4', integer(4, 1 << 18), 1024)
    .option('-s, --snaplen <bytes>', 'bytes kept of each packet (0: whole packets)', integer(0, 262144), 0)
    .option('-f, --filter <expr>', 'capture filter, tcpdump syntax')
    .option('-d, --nano', 'write nanosecond pcap', false)
    .option('-u, --user <user>', 'drop privileges to this user once capture is open')
    .option('-3, --no-promisc', 'do not put the interface in promiscuous mode')
    .option('--local-time', 'timeline slots in local time instead of UTC', false)
    .option('--disk-limit <MB|N%>', 'most the dump set may take on disk: megabytes, or a percentage of its file system', '80%')
    .option('-4, --no-overwrite', 'stop when the disk limit is reached, instead of deleting the oldest files')
    .option('--exec-cmd <cmd>', 'run this shell command on each finished file (its path is the last argument)')
    .option('-M, --compress', 'compress each finished file (LZ4, NAME.pcap.lz4) in worker threads', false)
    .option('-P, --pid-file <file>', 'write the process id to this file')
    .option('-v, --verbose', 'log per-second statistics and each file published or deleted', (_v: string, n: number) => n + 1, 0)
    .option(`${CONFIG_FLAG} <file>`, 'read options from this file, one a line (-i=eth1); options given here win')
    .option('--stats-file <file>', 'write the statistics as JSON to this file every second')
    .option('--metrics-port <[addr:]port>', 'serve the statistics to Prometheus at http://ADDR:PORT/metrics', parseListenAddress)
    .option('--uburst-detection', 'report micro-bursts as JSON lines on stdout', false)
    .option('--uburst-win-size <us>', 'micro-burst window, microseconds', integer(1, 10_000_000), 1000)
    .option('--uburst-link-speed <Mbit/s>', "link speed (default: the interface's, else 1000)", integer(1))
    .option('--uburst-threshold <percent>', 'a window above this share of the link speed is a burst', integer(1, 100), 50)
    .addHelpText(
      'after',
      `
Signals: USR1 closes and publishes the current file; TERM and INT drain the
ring, publish everything and exit 0.
On start, a file left unfinished by a crash is cut at its last whole record,
indexed and published; the disk limit counts what is already there.
Exit codes: 0 done, 1 failed while running, 2 bad arguments, 3 input cannot be
opened (interface, file or filter), 4 dump directory not writable or in use,
5 stopped at the disk limit (-4).`,
    );
  program.parse(expandConfig(program, argv));
  const flags = program.opts<Flags>();
  if (flags.chunk % 4 !== 0) program.error(`option '-C, --chunk <KB>': ${flags.chunk} is not a multiple of 4.`);
  return flags;
}

function isCaptureFile(name: string): boolean {
  try {
    return fs.statSync(name).isFile();
  } catch {
    return name.includes('/') || /\.(pcap|pcapng|cap)$/i.test(name);
  }
}

/** A file claims its largest size (plus one record past it, and the block padding) and room for its index. */
function fileClaim(maxFileBytes: number, blockSize: number): number {
  const pcap = Math.ceil((maxFileBytes + MAX_CAPLEN + 16) / blockSize) * blockSize;
  return pcap + Math.max(64 * 1024, Math.ceil(maxFileBytes * 0.02));
}

/**
 * Chunks of the pool between the capture thread and the disk: as many
 * bytes as the ring (-b). They absorb a slow write, and a JS thread busy
 * finishing a file (the writer then waits to hand over its batches); a
 * chunk becomes resident only once such a backlog reaches it. At least 8,
 * so that a few writes can queue behind a full chunk even with a small -b.
 */
function chunkCount(bufferMB: number, chunkKB: number): number {
  return Math.max(8, Math.ceil((bufferMB * 1024) / chunkKB));
}

/** --exec-cmd: the command line as given, with the file's path appended as one argument. */
function execOnFile(cmd: string, file: string): void {
  const child = spawn('/bin/sh', ['-c', `${cmd} "$1"`, 'sh', file], { stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('exit', (code, signal) => {
    if (code !== 0) process.stderr.write(`${NAME}: warning: --exec-cmd on ${file} ended with ${signal ?? `status ${code}`}\n`);
  });
}

function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

async function main(): Promise<number> {
  const flags = parseArgs(process.argv);
  const storage = path.resolve(flags.dumpDir);
  const timeline = path.resolve(flags.timeline ?? path.join(storage, 'timeline'));
  const dumpSet = new DumpSet(storage, timeline, flags.filesPerDir, flags.localTime);
  const user = flags.user ? resolveUser(flags.user) : undefined;
  try {
    dumpSet.init();
    dumpSet.lock();
    if (user) for (const d of dumpSet.directories()) fs.chownSync(d, user.uid, user.gid);
  } catch (err) {
    throw new CliError(`cannot use dump directory: ${(err as Error).message}`, Exit.output);
  }
  // The lock goes with the process however it ends; a crash leaves it to be taken over.
  process.on('exit', () => dumpSet.unlock());
  const log = new Logger(NAME, flags.verbose);
  let limit: SessionBudget;
  try {
    const budget = new DiskBudget(dumpSet, parseDiskLimit(flags.diskLimit, storage), !flags.overwrite, {
      deleted: (file) => log.info(`deleted ${file} (disk limit)`),
    });
    limit = { budget, fileClaim: fileClaim(flags.maxFileSize * 2 ** 20, budget.blockSize) };
  } catch (err) {
    throw new CliError((err as Error).message, Exit.usage);
  }

  const importing = isCaptureFile(flags.interface);
  const opts: RecorderOptions = {
    source: importing
      ? { kind: 'file', path: flags.interface }
      : { kind: 'iface', name: flags.interface, bufferBytes: flags.buffer * 2 ** 20, promisc: flags.promisc, filter: flags.filter },
    dir: storage,
    snaplen: flags.snaplen,
    chunkBytes: flags.chunk * 1024,
    chunkCount: chunkCount(flags.buffer, flags.chunk),
    nano: flags.nano,
    maxFileBytes: flags.maxFileSize * 2 ** 20,
    maxFileSeconds: flags.maxFileDuration,
    maxFilePackets: flags.maxFilePackets,
    flushMs: 500,
  };
  if (importing && flags.filter) throw new CliError('-f applies to live capture only', Exit.usage);
  const monitor = await Monitor.create({
    log,
    source: flags.interface,
    timeline,
    live: !importing,
    statsFile: flags.statsFile ? path.resolve(flags.statsFile) : undefined,
    metrics: flags.metricsPort,
    uburst: flags.uburstDetection
      ? {
          windowUs: flags.uburstWinSize,
          linkMbps: flags.uburstLinkSpeed ?? (importing ? undefined : interfaceSpeedMbps(flags.interface)) ?? 1000,
          thresholdPct: flags.uburstThreshold,
        }
      : undefined,
    bytesOnDisk: () => limit.budget.onDisk,
  });

  // With -M a file's life goes on after publication: --exec-cmd sees its final form.
  let compressor: Compressor | undefined;
  const finished = (file: string): void => {
    if (flags.execCmd) execOnFile(flags.execCmd, file);
  };
  let session: Session;
  try {
    session = new Session(opts, dumpSet, {
      error: (message, fatal) => (fatal ? log.error(message) : log.warning(message)),
      notice: (message) => log.notice(message),
      batch: monitor.onBatch,
      // An import can wait for compression (a live capture never does): the
      // plain files waiting for it would otherwise crowd the disk limit.
      holdFiles: () => importing && compressor !== undefined && compressor.backlog > compressor.threads,
      published: (file, packets, bytes) => {
        log.info(`published ${file} (${formatCount(packets)} packets, ${formatCount(bytes)} bytes)`);
        if (compressor) compressor.add(file);
        else finished(file);
      },
    }, limit);
  } catch (err) {
    throw new CliError((err as Error).message, Exit.input);
  }
  // The socket is bound by now, so packets are being kept: the pid file says
  // so, and is written while we may still write where root can.
  if (flags.pidFile) fs.writeFileSync(flags.pidFile, `${process.pid}\n`);
  if (user) {
    dropPrivileges(user);
    for (const d of dumpSet.directories()) {
      try {
        fs.accessSync(d, fs.constants.W_OK | fs.constants.X_OK);
      } catch {
        throw new CliError(`user ${user.name} cannot write to ${d} (check the modes of its parents)`, Exit.output);
      }
    }
  }

  // The socket is already keeping packets while what a crash left is put
  // right, as the user the files belong to, and the budget counts the result.
  repairDumpSet(dumpSet, { scope: 'start' }, (line) => log.notice(line));
  limit.budget.init();
  if (flags.compress) {
    compressor = new Compressor(dumpSet, limit.budget, {
      compressed: (plain, lz4, plainBytes, lz4Bytes) => {
        log.info(`compressed ${plain} to ${lz4} (${formatCount(plainBytes)} to ${formatCount(lz4Bytes)} bytes on disk)`);
        finished(lz4);
      },
      leftPlain: (plain, why) => {
        log.warning(`${plain} left uncompressed: ${why}`);
        finished(plain);
      },
    });
  }
  try {
    session.start();
  } catch (err) {
    throw new CliError((err as Error).message, Exit.usage);
  }
  process.on('SIGUSR1', () => session.rotate());
  process.on('SIGTERM', () => session.stop());
  process.on('SIGINT', () => session.stop());

  monitor.start(session);

  const ok = await session.finished;
  await compressor?.close();
  monitor.stop();
  const s = session.stats();
  const t = session.totals;
  if (flags.verbose || !importing) {
    log.notice(`${formatCount(t.packets)} packets in ${t.files} files, ${formatCount(s.dropped)} dropped by kernel`);
  }
  if (s.unstored) log.warning(`${formatCount(s.unstored)} packets captured but not stored (no room for their file)`);
  if (flags.pidFile) fs.rm(flags.pidFile, () => undefined); // may belong to root after -u
  if (!ok) return Exit.failure;
  return session.limitReached ? EXIT_LIMIT : Exit.ok;
}

run(NAME, main);
