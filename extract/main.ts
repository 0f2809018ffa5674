// npcapextract: the exact packets of a time range and a tcpdump filter, out
// of one or more dump sets, found through their indexes.
import fs from 'node:fs';
import path from 'node:path';
import { PacketFilter } from '../native/addon';
import { CliError, Exit, newProgram, run } from '../recorder/cli';
import { DumpFile, filesInRange, openDumpFile, openTimeline } from '../recorder/dumpset';
import { FlowView, IndexError, IndexView, readIndexFile } from '../recorder/index-file';
import { PcapFormatError, readPcapHeader } from '../recorder/pcap-file';
import { mergeByTime, Source, sortedPackets } from './merge';
import { Origin, Output } from './output';
import { Progress } from './progress';
import { parseFilter } from './expression';
import { FlowTable, formatJsonLines, formatTable } from './flows';
import { columnPlanner, describePlan, flowsToJudge, planFlow, Tri } from './planner';
import { coalesce, FilePlan, FlowFilter, planFile } from './plan';
import { Batch, batchOf, ByteRange, packetsOf, readRanges, ReadStats } from './read';
import { EmptyRangeError, formatNs, formatsHelp, parseRange, TimeError } from './time';

const NAME = 'npcapextract';

/** npcapextract's exit codes, beyond the shared ones. */
const ExtractExit = { filter: 2, timeline: 3, output: 4, time: 5, range: 6 } as const;

interface Flags {
  timeline: string[];
  begin: string;
  end: string;
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
}

function wholeNumber(flag: string): (v: string) => number {
  return (v: string) => {
    if (!/^\d+$/.test(v)) throw new CliError(`${flag}: '${v}' is not a whole number`, Exit.usage);
    return Number(v);
  };
}

function parseArgs(argv: string[]): Flags {
  const program = newProgram(NAME, 'Extract the exact packets of a time range and a tcpdump filter from n2disk-ts dump sets.')
    .requiredOption('-t, --timeline <dir>', 'timeline directory (repeat for several, merged by time)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .requiredOption('-b, --begin <time>', 'first instant, inclusive')
    .requiredOption('-e, --end <time>', 'last instant, exclusive')
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
    .addHelpText(
      'after',
      `
Times: ${formatsHelp}.
The range is [BEGIN, END): BEGIN inclusive, END exclusive.
Output: the packets tcpdump would keep from the same files with the same
filter, restricted to the range, byte for byte, in timestamp order.
Exit codes: 0 done (also when nothing matched), 1 failed while reading,
2 bad arguments or a filter libpcap rejects, 3 timeline missing or unreadable,
4 output not writable, 5 a time that cannot be read, 6 an empty or reversed range.`,
    );
  program.parse(argv);
  return program.opts<Flags>();
}

interface OpenedFile {
  file: DumpFile;
  timeline: number;
  index: IndexView | undefined;
  /** Read once: link type, precision and where reading stops. */
  info: FileInfo;
}

function openIndex(file: DumpFile, warn: (m: string) => void): IndexView | undefined {
  try {
    return readIndexFile(file.index, { partial: file.partial });
  } catch (err) {
    if (file.partial && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    warn(`${(err as Error).message}; scanning ${file.pcap} instead`);
    return undefined;
  }
}

async function main(): Promise<number> {
  const flags = parseArgs(process.argv);
  const warn = (m: string): void => void process.stderr.write(`${NAME}: warning: ${m}\n`);

  let beginNs: bigint;
  let endNs: bigint;
  try {
    ({ beginNs, endNs } = parseRange(flags.begin, flags.end, flags.localTime));
  } catch (err) {
    if (err instanceof TimeError) throw new CliError(err.message, ExtractExit.time);
    if (err instanceof EmptyRangeError) throw new CliError(err.message, ExtractExit.range);
    throw err;
  }

  const target = flags.stdout ? '-' : flags.output;
  if (!target && !flags.list && !flags.flows) throw new CliError('no output: give -o FILE, -o - or -O', Exit.usage);
  if (target && target !== '-') {
    try {
      fs.accessSync(path.dirname(path.resolve(target)), fs.constants.W_OK);
    } catch {
      throw new CliError(`cannot write ${target}: its directory is missing or not writable`, ExtractExit.output);
    }
  }
  if (target === '-' && process.stdout.isTTY) throw new CliError('refusing to write pcap to a terminal; redirect stdout or use -o FILE', Exit.usage);

  const filterText = flags.filter ?? '';
  // libpcap judges the expression once up front, so that a bad one fails
  // even when no file is in range.
  const filters = new Map<number, PacketFilter>();
  const filterFor = (linktype: number, snaplen: number): PacketFilter => {
    let f = filters.get(linktype);
    if (!f) {
      try {
        f = new PacketFilter(filterText, linktype, snaplen);
      } catch (err) {
        throw new CliError(`bad filter '${filterText}': ${(err as Error).message}`, ExtractExit.filter);
      }
      filters.set(linktype, f);
    }
    return f;
  };
  filterFor(1, 262144);

  const opened: OpenedFile[] = [];
  flags.timeline.forEach((dir, t) => {
    let files: DumpFile[];
    try {
      files = filesInRange(openTimeline(dir), beginNs, endNs, warn);
    } catch (err) {
      throw new CliError((err as Error).message, ExtractExit.timeline);
    }
    for (const file of files) {
      const index = openIndex(file, warn);
      opened.push({ file, timeline: t, index, info: fileInfo(file, index) });
    }
  });

  // The index narrows where to read; a flow is passed over only when the
  // planner is certain that libpcap would reject every packet of it.
  const expr = parseFilter(filterText);
  const described = describePlan(expr);
  const mayMatch = (index: IndexView): FlowFilter | undefined =>
    described.canSkip
      ? {
          candidates: (seg) => flowsToJudge(expr, seg, index.linktype),
          test: (cols) => {
            const judge = columnPlanner(expr, cols, index.linktype);
            return (j) => judge(j) !== 'false';
          },
        }
      : undefined;
  const stats: ReadStats = { bytesRead: 0, reads: 0 };
  // Flows are decoded only now, so a defect there (a checksum cannot catch a
  // writer's bug) still turns the file into a scan.
  const planOf = (o: OpenedFile): FilePlan | undefined => {
    if (!o.index) return undefined;
    try {
      return planFile(o.index, beginNs, endNs, mayMatch(o.index));
    } catch (err) {
      if (!(err instanceof IndexError)) throw err;
      warn(`${err.message}; scanning ${o.file.pcap} instead`);
      o.index = undefined;
      return undefined;
    }
  };
  const planned: { o: OpenedFile; plan: FilePlan | undefined }[] = opened.map((o) => ({ o, plan: planOf(o) }));
  const toRead = planned.filter((p) => !p.plan || p.plan.ranges.length > 0);

  if (flags.explain) {
    const by = (how: FilePlan['how']): number => planned.filter((p) => p.plan?.how === how).length;
    const sum = (f: (p: FilePlan) => number): number => planned.reduce((n, p) => n + (p.plan ? f(p.plan) : 0), 0);
    const fileBytes = planned.reduce((n, p) => n + p.o.info.end, 0);
    const toReadBytes = toRead.reduce((n, p) => n + (p.plan ? p.plan.bytes : p.o.info.end), 0);
    process.stderr.write(
      `${NAME}: range ${formatNs(beginNs)} - ${formatNs(endNs)}, filter '${filterText}'\n` +
        described.lines.map((l) => `${NAME}: ${l}\n`).join('') +
        `${NAME}: files considered ${planned.length}, skipped by time ${by('skip-time')}, skipped by index ${by('skip-index')}, ` +
        `read by flows ${by('flows')}, read in sequence ${by('sequential')}, scanned without index ${planned.filter((p) => !p.plan).length}\n` +
        `${NAME}: flows judged ${sum((p) => p.flowsJudged)} (in range; only those the key tables name where indexes have them), flows that may match ${sum((p) => p.flowsRead)}; ` +
        `bytes to read ${toReadBytes} of ${fileBytes} (${fileBytes ? ((100 * toReadBytes) / fileBytes).toFixed(1) : '0'}%)\n`,
    );
  }
  if (flags.list) {
    for (const p of toRead) process.stdout.write(`${p.o.file.pcap}\n`);
    return Exit.ok;
  }
  if (flags.flows) return listFlows(toRead.map((p) => p.o), filterFor, (f, linktype) => planFlow(expr, f, linktype), beginNs, endNs, flags.json, warn);

  if (target === '-' && (flags.maxSize || flags.maxPackets)) throw new CliError('-P and -N split files: give -o FILE, not stdout', Exit.usage);
  const headers = toRead.map((p) => p.o.info);
  // One origin per timeline and link type: a pcapng interface each; a pcap
  // holds only one link type.
  const origins: Origin[] = [];
  const originOf = (timeline: number, linktype: number): number => {
    const name = flags.timeline[timeline]!;
    let i = origins.findIndex((o) => o.name === name && o.linktype === linktype);
    if (i < 0) i = origins.push({ name, linktype, filter: filterText }) - 1;
    return i;
  };
  const fileOrigins = toRead.map((p, i) => originOf(p.o.timeline, headers[i]!.linktype));
  if (!flags.pcapng && new Set(origins.map((o) => o.linktype)).size > 1) {
    throw new CliError(`the files in range have different link types (${[...new Set(origins.map((o) => o.linktype))].join(', ')}); use --pcapng`, Exit.usage);
  }
  if (!origins.length) origins.push({ name: flags.timeline[0]!, linktype: 1, filter: filterText });
  const output = new Output(target!, origins, {
    format: flags.pcapng ? 'pcapng' : 'pcap',
    nano: headers.some((h) => h.nano),
    snaplen: flags.snaplen,
    maxBytes: flags.maxSize * 2 ** 20,
    maxPackets: flags.maxPackets,
  });

  const sources: Source[] = [];
  let filesOpened = 0;
  for (const [i, p] of toRead.entries()) {
    const { file, index } = p.o;
    const header = headers[i]!;
    const filter = filterFor(header.linktype, header.snaplen);
    const end = header.end;
    const ranges: ByteRange[] = p.plan ? p.plan.ranges : [{ start: 24, stop: end }];
    const read = (): Iterator<Batch> => {
      // Opened only when the merge reaches the file: the files not needed are never opened.
      const fd = openDumpFile(file);
      filesOpened++;
      const gen = readRanges({ fd, end, filter, beginNs, endNs, nano: header.nano, origin: fileOrigins[i]! }, ranges, stats);
      return closeAfter(gen, fd);
    };
    if (index?.ordered) {
      sources.push({ firstNs: index.firstNs!, lastNs: index.lastNs!, batches: read });
    } else {
      const all = sortedPackets({ [Symbol.iterator]: read });
      if (all.length) sources.push({ firstNs: all[0]!.tsNs, lastNs: all[all.length - 1]!.tsNs, batches: () => all.map(batchOf)[Symbol.iterator]() });
    }
  }

  const totalBytes = toRead.reduce((n, p, i) => n + (p.plan ? p.plan.bytes : headers[i]!.end), 0);
  const progress = new Progress(stats, totalBytes, toRead.length);
  for (const batch of mergeByTime(sources)) {
    await output.writeBatch(batch);
    progress.tick(filesOpened);
  }
  progress.done();
  await output.close(flags.empty);
  if (flags.explain) {
    process.stderr.write(`${NAME}: read ${stats.bytesRead} bytes in ${stats.reads} reads; wrote ${output.packets} packets\n`);
  }
  return Exit.ok;
}

/** --flows: connections from the indexes, with packets read only where the index cannot be exact. */
function listFlows(
  files: OpenedFile[],
  filterFor: (linktype: number, snaplen: number) => PacketFilter,
  verdict: (flow: FlowView, linktype: number) => Tri,
  beginNs: bigint,
  endNs: bigint,
  json: boolean,
  warn: (m: string) => void,
): number {
  const table = new FlowTable();
  const stats: ReadStats = { bytesRead: 0, reads: 0 };
  for (const { file, index, info } of files) {
    if (!index) {
      warn(`${file.pcap} has no usable index: its connections are not listed (npcaprepair rebuilds it)`);
      continue;
    }
    const toRead = table.addIndex(index, beginNs, endNs, (flow) => verdict(flow, index.linktype));
    if (!toRead.size) continue;
    const fd = openDumpFile(file);
    const reading = { fd, end: info.end, filter: filterFor(info.linktype, info.snaplen), beginNs, endNs, nano: info.nano, origin: 0 };
    for (const b of closeAfter(readRanges(reading, coalesce([...toRead.keys()]), stats), fd)) {
      for (const p of packetsOf(b)) table.countPacket(p, toRead);
    }
  }
  const conns = table.connections();
  process.stdout.write(json ? formatJsonLines(conns) : formatTable(conns));
  if (table.flowsRead) process.stderr.write(`${NAME}: read the packets of ${table.flowsRead} flows the index could not decide (${stats.bytesRead} bytes)\n`);
  return Exit.ok;
}

function* closeAfter(gen: Generator<Batch>, fd: number): Generator<Batch> {
  try {
    yield* gen;
  } finally {
    fs.closeSync(fd);
  }
}

interface FileInfo {
  linktype: number;
  snaplen: number;
  nano: boolean;
  /** Where reading stops: the end of the file, or of what the index of a file being written covers. */
  end: number;
}

/** What reading a file needs: from its index, or else from the pcap header. */
function fileInfo(file: DumpFile, index: IndexView | undefined): FileInfo {
  if (index) return { linktype: index.linktype, snaplen: index.snaplen, nano: index.nano, end: index.covered.end };
  const fd = openDumpFile(file);
  try {
    const h = readPcapHeader(fd, file.pcap);
    if (!h.littleEndian) throw new PcapFormatError(file.pcap, 'byte-swapped pcap, not written by n2disk-ts');
    return { linktype: h.linktype, snaplen: h.snaplen, nano: h.nano, end: fs.fstatSync(fd).size };
  } catch (e) {
    throw e instanceof PcapFormatError ? new CliError(e.message, Exit.failure) : e;
  } finally {
    fs.closeSync(fd);
  }
}

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  // A reader that went away (| head) is not a failure.
  if (err.code === 'EPIPE') process.exit(Exit.ok);
  process.stderr.write(`${NAME}: cannot write output: ${err.message}\n`);
  process.exit(ExtractExit.output);
});

run(NAME, main);
