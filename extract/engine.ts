// The extraction engine: from a query (timelines, range, filter) to the
// files to read, the plan for each, and the packets libpcap keeps, merged by
// time. The command line (direct reads) and the extraction service (reads on
// a caller's behalf) both run this one engine.
import { Writable } from 'node:stream';
import { PacketFilter } from '../native/addon';
import { CliError, Exit } from '../recorder/cli';
import { ByteReader } from '../recorder/byte-reader';
import { CompressedFileError, DecompressStats, openDumpBytes } from '../recorder/compressed-file';
import { DumpFile, filesInRange, openTimeline } from '../recorder/dumpset';
import { ChunkTable, FlowView, IndexError, IndexView, SegmentFlows, readIndexFile } from '../recorder/index-file';
import { PCAP_HEADER_BYTES, PcapFormatError, readPcapHeader } from '../recorder/pcap-file';
import { ExtractExit } from './exits';
import { FlowTable, formatJsonLines, formatTable } from './flows';
import { mergeByTime, Source, sortedPackets } from './merge';
import { Origin, Output } from './output';
import { columnPlanner, describePlan, flowsToJudge, planFlow, PlanDescription } from './planner';
import { Expr, parseFilter } from './expression';
import { coalesce, FilePlan, FlowFilter, planFile } from './plan';
import { Progress } from './progress';
import { Batch, batchOf, ByteRange, packetsOf, readRanges, ReadStats } from './read';
import { formatNs } from './time';

/** What to extract: the same for every kind of output. */
export interface Query {
  timelines: string[];
  beginNs: bigint;
  endNs: bigint;
  /** tcpdump expression; '' keeps every packet. */
  filter: string;
}

export interface PacketOptions {
  pcapng: boolean;
  /** Cut packets to this many bytes (0: as stored). */
  snaplen: number;
  /** Numbered output files of at most this many bytes / packets (0: one file). */
  maxBytes: number;
  maxPackets: number;
  /** Write headers even when nothing matches. */
  empty: boolean;
  /** Progress on stderr (a terminal only). */
  progress: boolean;
}

/** What an extraction wrote, for --explain and the audit log. */
export interface Written {
  packets: number;
  /** Captured bytes of the packets written. */
  bytes: number;
}

interface FileInfo {
  linktype: number;
  snaplen: number;
  nano: boolean;
  /** Where reading stops: the end of the file, or of what the index of a file being written covers. */
  end: number;
}

interface OpenedFile {
  file: DumpFile;
  timeline: number;
  index: IndexView | undefined;
  /** Read once: link type, precision and where reading stops. */
  info: FileInfo;
  plan: FilePlan | undefined;
  /** A compressed file's frames, from its index (read while it is open: -M rewrites it once the file is compressed). */
  chunks: ChunkTable | undefined;
}

function openIndex(file: DumpFile, warn: (m: string) => void): IndexView | undefined {
  try {
    return readIndexFile(file.index, { partial: file.partial, hold: true });
  } catch (err) {
    if (file.partial && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    warn(`${(err as Error).message}; scanning ${file.pcap} instead`);
    return undefined;
  }
}

/** What reading a file needs: from its index, or else from the pcap header. */
function fileInfo(file: DumpFile, index: IndexView | undefined, stats: DecompressStats): FileInfo {
  if (index) return { linktype: index.linktype, snaplen: index.snaplen, nano: index.nano, end: index.covered.end };
  let source: ByteReader | undefined;
  try {
    source = openDumpBytes(file, undefined, stats);
    const h = readPcapHeader(source, file.pcap);
    if (!h.littleEndian) throw new PcapFormatError(file.pcap, 'byte-swapped pcap, not written by n2disk-ts');
    return { linktype: h.linktype, snaplen: h.snaplen, nano: h.nano, end: source.size };
  } catch (e) {
    throw e instanceof PcapFormatError || e instanceof CompressedFileError ? new CliError(e.message, Exit.failure) : e;
  } finally {
    source?.close();
  }
}

/** Reads through a file's batches, closing it when done; a compressed frame that fails its checks is one line and exit 1. */
function* closeAfter(gen: Generator<Batch>, source: ByteReader): Generator<Batch> {
  try {
    yield* gen;
  } catch (e) {
    throw e instanceof CompressedFileError ? new CliError(e.message, Exit.failure) : e;
  } finally {
    source.close();
  }
}

/** How many frames starting at `starts` (then the end) the byte ranges meet. */
function framesTouched(starts: readonly number[], ranges: readonly ByteRange[]): number {
  let n = 0;
  for (let k = 0, r = 0; k + 1 < starts.length && r < ranges.length;) {
    const range = ranges[r]!;
    // A range meets a frame when it starts before the frame ends and its last record starts at or after the frame's start.
    if (range.stop <= starts[k]!) r++;
    else if (range.start >= starts[k + 1]!) k++;
    else {
      n++;
      k++;
    }
  }
  return n;
}

/** A planned query: the files in range, what to read of each, and the filter compiled per link type. */
export class Extraction {
  /** Every packet file opened so far, in the order opened (the audit log lists them). */
  readonly filesOpened: string[] = [];
  private readonly filters = new Map<number, PacketFilter>();
  private readonly expr: Expr;
  private readonly described: PlanDescription;
  private readonly files: OpenedFile[] = [];
  private readonly stats: ReadStats = { bytesRead: 0, reads: 0 };
  private readonly decompressed: DecompressStats = { frames: 0, packedBytes: 0 };

  constructor(
    readonly query: Query,
    private readonly warn: (m: string) => void,
  ) {
    // libpcap judges the expression once up front, so that a bad one fails
    // even when no file is in range.
    this.filterFor(1, 262144);
    // The index narrows where to read; a flow is passed over only when the
    // planner is certain that libpcap would reject every packet of it.
    this.expr = parseFilter(query.filter);
    this.described = describePlan(this.expr);
    query.timelines.forEach((dir, t) => {
      let files: DumpFile[];
      try {
        files = filesInRange(openTimeline(dir), query.beginNs, query.endNs, warn);
      } catch (err) {
        throw new CliError((err as Error).message, ExtractExit.timeline);
      }
      for (const file of files) {
        const index = openIndex(file, warn);
        const f: OpenedFile = { file, timeline: t, index, info: fileInfo(file, index, this.decompressed), plan: undefined, chunks: undefined };
        this.files.push(f);
        // Planned while its index is open: one open per index however many parts of it planning reads.
        this.plan(f);
        index?.release();
      }
    });
  }

  private plan(f: OpenedFile): void {
    if (!f.index) return;
    const index = f.index;
    const mayMatch: FlowFilter | undefined = this.described.canSkip
      ? {
          candidates: (seg) => flowsToJudge(this.expr, seg, index.linktype),
          test: (cols) => {
            const judge = columnPlanner(this.expr, cols, index.linktype);
            return (j) => judge(j) !== 'false';
          },
        }
      : undefined;
    // Flows are decoded only now, so a defect there (a checksum cannot catch a
    // writer's bug) still turns the file into a scan.
    try {
      f.plan = planFile(index, this.query.beginNs, this.query.endNs, mayMatch);
      f.chunks = index.chunks;
    } catch (err) {
      if (!(err instanceof IndexError)) throw err;
      this.warn(`${err.message}; scanning ${f.file.pcap} instead`);
      f.index = undefined;
    }
  }

  private filterFor(linktype: number, snaplen: number): PacketFilter {
    let f = this.filters.get(linktype);
    if (!f) {
      try {
        f = new PacketFilter(this.query.filter, linktype, snaplen);
      } catch (err) {
        throw new CliError(`bad filter '${this.query.filter}': ${(err as Error).message}`, ExtractExit.filter);
      }
      this.filters.set(linktype, f);
    }
    return f;
  }

  private open({ file, chunks }: OpenedFile): ByteReader {
    // Opened only when needed: the files not needed are never opened.
    let source: ByteReader;
    try {
      source = openDumpBytes(file, chunks, this.decompressed);
    } catch (e) {
      throw e instanceof CompressedFileError ? new CliError(e.message, Exit.failure) : e;
    }
    this.filesOpened.push(source.path);
    return source;
  }

  /** The files that will be read: those the index does not rule out. */
  private get toRead(): OpenedFile[] {
    return this.files.filter((f) => !f.plan || f.plan.ranges.length > 0);
  }

  /** Paths of the files that would be read (-l). */
  list(): string[] {
    return this.toRead.map((f) => f.file.pcap);
  }

  /** What the planner decided and what the index saves (--explain). */
  explain(): string[] {
    const planned = this.files;
    const by = (how: FilePlan['how']): number => planned.filter((p) => p.plan?.how === how).length;
    const sum = (f: (p: FilePlan) => number): number => planned.reduce((n, p) => n + (p.plan ? f(p.plan) : 0), 0);
    const fileBytes = planned.reduce((n, p) => n + p.info.end, 0);
    const toReadBytes = this.toReadBytes();
    const indexes = planned.reduce((n, p) => {
      const r = p.index?.bytesRead;
      return r ? { bytes: n.bytes + r.bytes, of: n.of + r.of } : n;
    }, { bytes: 0, of: 0 });
    const share = (part: number, whole: number): string => (whole ? ((100 * part) / whole).toFixed(1) : '0');
    return [
      `range ${formatNs(this.query.beginNs)} - ${formatNs(this.query.endNs)}, filter '${this.query.filter}'`,
      ...this.described.lines,
      `files considered ${planned.length}, skipped by time ${by('skip-time')}, skipped by index ${by('skip-index')}, ` +
        `read by flows ${by('flows')}, read in sequence ${by('sequential')}, scanned without index ${planned.filter((p) => !p.plan).length}`,
      `flows judged ${sum((p) => p.flowsJudged)} (in range; only those the key tables name where indexes have them), flows that may match ${sum((p) => p.flowsRead)}; ` +
        `bytes to read ${toReadBytes} of ${fileBytes} (${share(toReadBytes, fileBytes)}%)`,
      `index bytes read ${indexes.bytes} of ${indexes.of} (${share(indexes.bytes, indexes.of)}%)`,
      ...this.explainCompressed(),
    ];
  }

  /** Compressed files in range, and the frames the plans touch (a scan decodes every frame). */
  private explainCompressed(): string[] {
    const compressed = this.files.filter((f) => f.file.compressed);
    if (!compressed.length) return [];
    let frames = 0, touched = 0;
    for (const { chunks, plan } of compressed) {
      if (!chunks) continue;
      frames += chunks.plain.length - 1;
      if (plan) touched += framesTouched(chunks.plain, plan.ranges);
    }
    const unknown = compressed.filter((f) => !f.chunks).length;
    return [`compressed files ${compressed.length}: frames to decompress ${touched} of ${frames}` + (unknown ? `, and every frame of ${unknown} files without a chunk table` : '')];
  }

  /** After writing: bytes and reads done. */
  readSummary(written: Written): string {
    const { frames, packedBytes } = this.decompressed;
    const unpacked = frames ? ` (decompressed ${frames} frames from ${packedBytes} compressed bytes)` : '';
    return `read ${this.stats.bytesRead} bytes in ${this.stats.reads} reads${unpacked}; wrote ${written.packets} packets`;
  }

  private toReadBytes(): number {
    return this.toRead.reduce((n, p) => n + (p.plan ? p.plan.bytes : p.info.end), 0);
  }

  /** --flows: connections from the indexes, with packets read only where the index cannot be exact. */
  flows(json: boolean): { text: string; note: string | undefined } {
    const table = new FlowTable();
    for (const f of this.toRead) {
      const { file, info } = f;
      // Read again, and held while its flows are listed: since planning, -M
      // may have rewritten it (with a chunk table, describing the same packets).
      const index = f.index && openIndex(file, this.warn);
      if (!index) {
        this.warn(`${file.pcap} has no usable index: its connections are not listed (npcaprepair rebuilds it)`);
        continue;
      }
      let toRead: Map<number, FlowView>;
      try {
        // As planning does: the key tables name the flows worth judging.
        const pick = this.described.canSkip ? (seg: SegmentFlows) => flowsToJudge(this.expr, seg, index.linktype) : undefined;
        toRead = table.addIndex(index.flows(pick), this.query.beginNs, this.query.endNs, (flow) => planFlow(this.expr, flow, index.linktype));
      } finally {
        index.release();
      }
      if (!toRead.size) continue;
      const source = this.open(f);
      const { beginNs, endNs } = this.query;
      const reading = { source, end: info.end, filter: this.filterFor(info.linktype, info.snaplen), beginNs, endNs, nano: info.nano, origin: 0 };
      for (const b of closeAfter(readRanges(reading, coalesce([...toRead.keys()]), this.stats), source)) {
        for (const p of packetsOf(b)) table.countPacket(p, toRead);
      }
    }
    const conns = table.connections();
    return {
      text: json ? formatJsonLines(conns) : formatTable(conns),
      note: table.flowsRead ? `read the packets of ${table.flowsRead} flows the index could not decide (${this.stats.bytesRead} bytes)` : undefined,
    };
  }

  /**
   * Writes the matching packets, merged by time, to `target`: a file name
   * (numbered parts with maxBytes/maxPackets) or a stream left open.
   */
  async writePackets(target: string | Writable, opts: PacketOptions): Promise<Written> {
    const toRead = this.toRead;
    const { timelines, filter, beginNs, endNs } = this.query;
    // One origin per timeline and link type: a pcapng interface each; a pcap
    // holds only one link type.
    const origins: Origin[] = [];
    const originOf = (timeline: number, linktype: number): number => {
      const name = timelines[timeline]!;
      let i = origins.findIndex((o) => o.name === name && o.linktype === linktype);
      if (i < 0) i = origins.push({ name, linktype, filter }) - 1;
      return i;
    };
    const fileOrigins = toRead.map((p) => originOf(p.timeline, p.info.linktype));
    if (!opts.pcapng && new Set(origins.map((o) => o.linktype)).size > 1) {
      throw new CliError(`the files in range have different link types (${[...new Set(origins.map((o) => o.linktype))].join(', ')}); use --pcapng`, Exit.usage);
    }
    if (!origins.length) origins.push({ name: timelines[0]!, linktype: 1, filter });
    const output = new Output(target, origins, {
      format: opts.pcapng ? 'pcapng' : 'pcap',
      nano: toRead.some((p) => p.info.nano),
      snaplen: opts.snaplen,
      maxBytes: opts.maxBytes,
      maxPackets: opts.maxPackets,
    });

    const sources: Source[] = [];
    for (const [i, p] of toRead.entries()) {
      const { index, info } = p;
      const filter = this.filterFor(info.linktype, info.snaplen);
      const ranges: ByteRange[] = p.plan ? p.plan.ranges : [{ start: PCAP_HEADER_BYTES, stop: info.end }];
      const read = (): Iterator<Batch> => {
        const source = this.open(p);
        const gen = readRanges({ source, end: info.end, filter, beginNs, endNs, nano: info.nano, origin: fileOrigins[i]! }, ranges, this.stats);
        return closeAfter(gen, source);
      };
      if (index?.ordered) {
        sources.push({ firstNs: index.firstNs!, lastNs: index.lastNs!, batches: read });
      } else {
        const all = sortedPackets({ [Symbol.iterator]: read });
        if (all.length) sources.push({ firstNs: all[0]!.tsNs, lastNs: all[all.length - 1]!.tsNs, batches: () => all.map(batchOf)[Symbol.iterator]() });
      }
    }

    const progress = new Progress(this.stats, this.toReadBytes(), toRead.length, opts.progress);
    for (const batch of mergeByTime(sources)) {
      await output.writeBatch(batch);
      progress.tick(this.filesOpened.length);
    }
    progress.done();
    await output.close(opts.empty);
    return { packets: output.packets, bytes: output.bytes };
  }
}
