// npcapextract: the exact packets of a time range and a tcpdump filter, out
// of one or more dump sets, found through their indexes. It reads a dump set
// itself, or, when extract.conf turns authentication on, asks the extraction
// service (npcapextractd) to read it for a user proven through PAM.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { CliError, Exit, newProgram, run } from '../recorder/cli';
import { askService } from './client';
import { ConfigError, configPath, ExtractConfig, loadConfig } from './config';
import { ExtractExit, rangeOf } from './exits';
import { perform } from './perform';
import { passwordFromFd, passwordFromFile, passwordFromTerminal } from './password';
import { ExtractRequest, Mode, requestToJson } from './request';
import { formatsHelp } from './time';

const NAME = 'npcapextract';

interface Flags {
  timeline?: string[];
  begin?: string;
  end?: string;
  filter?: string;
  output?: string;
  stdout: boolean;
  snaplen: number;
  maxSize: number;
  maxPackets: number;
  pcapng: boolean;
  list: boolean;
  explain: boolean;
  flows: boolean;
  json: boolean;
  empty: boolean;
  localTime: boolean;
  bundle?: string;
  verify?: string;
  user?: string;
  passwordFd?: number;
  passwordFile?: string;
}

function wholeNumber(flag: string): (v: string) => number {
  return (v: string) => {
    if (!/^\d+$/.test(v)) throw new CliError(`${flag}: '${v}' is not a whole number`, Exit.usage);
    return Number(v);
  };
}

function parseArgs(argv: string[]): Flags {
  const program = newProgram(NAME, 'Extract the exact packets of a time range and a tcpdump filter from n2disk-ts dump sets.')
    .option('-t, --timeline <dir>', 'timeline directory (repeat for several, merged by time)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('-b, --begin <time>', 'first instant, inclusive')
    .option('-e, --end <time>', 'last instant, exclusive')
    .option('-f, --filter <expr>', 'tcpdump filter expression (pcap-filter(7))')
    .option('-o, --output <file>', "output pcap file, or '-' for stdout")
    .option('-O, --stdout', 'write to stdout (same as -o -)', false)
    .option('-s, --snaplen <bytes>', 'cut packets to this many bytes', wholeNumber('-s'), 0)
    .option('-P, --max-size <MB>', 'start a new numbered output file after this many MB', wholeNumber('-P'), 0)
    .option('-N, --max-packets <n>', 'start a new numbered output file after this many packets', wholeNumber('-N'), 0)
    .option('--pcapng', 'write pcapng, one interface per timeline and link type', false)
    .option('-l, --list', 'list the files that would be read, and stop', false)
    .option('--explain', 'print on stderr what the index saved', false)
    .option('--flows', 'list the matching connections instead of writing packets', false)
    .option('-j, --json', 'with --flows: JSON lines instead of a table', false)
    .option('-0, --empty', 'write an empty pcap when nothing matches', false)
    .option('--local-time', 'times without a zone are local time (default UTC)', false)
    .option('--bundle <file>', "evidence bundle: a tar with one capture per timeline, manifest.json and SHA256SUMS ('-' for stdout)")
    .option('--verify <file>', 'check an evidence bundle against its manifest, and stop')
    .option('--user <name>', 'with authentication on: who you are (default your login name)')
    .option('--password-fd <n>', 'with authentication on: read the password from this descriptor', wholeNumber('--password-fd'))
    .option('--password-file <file>', 'with authentication on: read the password from a file only you can read')
    .addHelpText(
      'after',
      `
Times: ${formatsHelp}.
The range is [BEGIN, END): BEGIN inclusive, END exclusive.
Output: the packets tcpdump would keep from the same files with the same
filter, restricted to the range, byte for byte, in timestamp order.
Authentication: when ${configPath()} (or $NPCAPEXTRACT_CONF) says
'auth = on', the extraction service reads the dump set for you once PAM
has proven who you are; the password is asked on the terminal, or read with
--password-fd or --password-file, never taken from the command line.
Exit codes: 0 done (also when nothing matched), 1 failed while reading,
2 bad arguments or a filter libpcap rejects, 3 timeline missing, unreadable
or not served, 4 output not writable, 5 a time that cannot be read, 6 an empty
or reversed range, 7 authentication failed (wrong password, unknown or
unauthorized user), 8 --verify: the bundle does not match its manifest,
9 the extraction service cannot be reached.`,
    );
  program.parse(argv);
  return program.opts<Flags>();
}

function modeOf(flags: Flags): Mode {
  const chosen = [flags.bundle !== undefined && '--bundle', flags.list && '-l', flags.flows && '--flows'].filter(Boolean);
  if (chosen.length > 1) throw new CliError(`${chosen.join(' and ')} do not go together`, Exit.usage);
  if (flags.bundle !== undefined) {
    if (flags.output || flags.stdout) throw new CliError('--bundle names its own output: drop -o/-O', Exit.usage);
    return 'bundle';
  }
  return flags.list ? 'list' : flags.flows ? 'flows' : 'packets';
}

function buildRequest(flags: Flags, mode: Mode): ExtractRequest {
  // Required unless --verify, so not commander's required options; said in commander's words.
  const missing = (option: string): CliError => new CliError(`required option '${option}' not specified`, Exit.usage);
  const { timeline, begin, end } = flags;
  if (!timeline?.length) throw missing('-t, --timeline <dir>');
  if (begin === undefined) throw missing('-b, --begin <time>');
  if (end === undefined) throw missing('-e, --end <time>');
  const { beginNs, endNs } = rangeOf(begin, end, flags.localTime);
  return {
    // Absolute: the service does not share the caller's working directory.
    timelines: timeline.map((t) => path.resolve(t)),
    beginNs,
    endNs,
    filter: flags.filter ?? '',
    mode,
    pcapng: flags.pcapng,
    snaplen: flags.snaplen,
    empty: flags.empty,
    json: flags.json,
    explain: flags.explain,
  };
}

/** Where packets or the bundle go: a file name, '-' for stdout, or none (-l, --flows). */
function outputTarget(flags: Flags, mode: Mode): string | undefined {
  if (mode === 'list' || mode === 'flows') return undefined;
  const target = mode === 'bundle' ? flags.bundle : flags.stdout ? '-' : flags.output;
  if (!target) throw new CliError('no output: give -o FILE, -o - or -O', Exit.usage);
  if (target === '-') {
    if (process.stdout.isTTY) throw new CliError(`refusing to write ${mode === 'bundle' ? 'a tar' : 'pcap'} to a terminal; redirect stdout or give a file`, Exit.usage);
    if (flags.maxSize || flags.maxPackets) throw new CliError('-P and -N split files: give -o FILE, not stdout', Exit.usage);
    return target;
  }
  try {
    fs.accessSync(path.dirname(path.resolve(target)), fs.constants.W_OK);
  } catch {
    throw new CliError(`cannot write ${target}: its directory is missing or not writable`, ExtractExit.output);
  }
  return target;
}

function openOutput(target: string): Writable {
  return target === '-' ? process.stdout : fs.createWriteStream(target, { mode: 0o640 });
}

async function closeOutput(out: Writable): Promise<void> {
  if (out !== process.stdout) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

/** The dump set read by this process: authentication is off. */
async function extractDirectly(req: ExtractRequest, flags: Flags, target: string | undefined): Promise<number> {
  const note = (line: string): void => void process.stderr.write(`${NAME}: ${line}\n`);
  // Packets to a named file are written (and split) by the output itself; a bundle is one stream.
  const streamed = req.mode === 'bundle' || target === '-';
  const data = target && streamed ? openOutput(target) : (target ?? process.stdout);
  try {
    await perform(req, {
      data,
      text: process.stdout,
      note,
      split: { maxBytes: flags.maxSize * 2 ** 20, maxPackets: flags.maxPackets },
      progress: process.stderr.isTTY === true,
      user: os.userInfo().username,
    });
  } catch (err) {
    // A bundle file is opened before the query runs: no half bundle is left behind.
    if (req.mode === 'bundle' && target && target !== '-') fs.rmSync(target, { force: true });
    throw err;
  }
  if (typeof data !== 'string') await closeOutput(data);
  return Exit.ok;
}

async function extractThroughService(req: ExtractRequest, flags: Flags, target: string | undefined, config: ExtractConfig): Promise<number> {
  if (flags.maxSize || flags.maxPackets) throw new CliError('-P and -N are not available through the extraction service: split the output afterwards (editcap -c)', Exit.usage);
  const user = flags.user ?? os.userInfo().username;
  const password =
    flags.passwordFd !== undefined ? passwordFromFd(flags.passwordFd) : flags.passwordFile !== undefined ? passwordFromFile(flags.passwordFile) : await passwordFromTerminal(user);
  return askService(config.socket, { user, password, request: requestToJson(req) }, () => openOutput(target ?? '-'));
}

async function verify(file: string): Promise<number> {
  const input = file === '-' ? process.stdin : fs.createReadStream(file);
  const { verifyBundle } = await import('./bundle');
  const verdict = await verifyBundle(input);
  if (verdict.problems.length) {
    for (const p of verdict.problems) process.stderr.write(`${NAME}: ${file}: ${p}\n`);
    throw new CliError(`${file}: the bundle does not match its manifest`, ExtractExit.verify);
  }
  process.stdout.write(`${file}: bundle verified: ${verdict.files} captures, ${verdict.packets} packets, every sha256 as in the manifest\n`);
  return Exit.ok;
}

async function main(): Promise<number> {
  const flags = parseArgs(process.argv);
  if (flags.verify !== undefined) return verify(flags.verify);
  const mode = modeOf(flags);
  const req = buildRequest(flags, mode);
  const target = outputTarget(flags, mode);
  let config: ExtractConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, Exit.usage);
    throw err;
  }
  return config.auth ? extractThroughService(req, flags, target, config) : extractDirectly(req, flags, target);
}

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  // A reader that went away (| head) is not a failure.
  if (err.code === 'EPIPE') process.exit(Exit.ok);
  process.stderr.write(`${NAME}: cannot write output: ${err.message}\n`);
  process.exit(ExtractExit.output);
});

run(NAME, main);
