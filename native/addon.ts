// The typed surface of the native addon (native/*.cc). The addon does the
// per-packet work (capture, parse, chunking, O_DIRECT writes, libpcap
// filtering, flow indexing) and nothing else; file naming policy, the index
// container, planning and the dump set lifecycle live in TypeScript.
import path from 'node:path';
import { INDEX_FORMAT_VERSION } from '../recorder/index-file';

export interface RingSource {
  kind: 'iface';
  name: string;
  /** TPACKET_V3 ring size in bytes. */
  bufferBytes: number;
  promisc: boolean;
  /** tcpdump expression compiled by libpcap and attached to the socket. */
  filter?: string;
}

export interface FileSource {
  kind: 'file';
  /** pcap or pcapng file, read with libpcap. */
  path: string;
}

export interface RecorderOptions {
  source: RingSource | FileSource;
  /** Directory in which files being written are created (as NAME.pcap.part). */
  dir: string;
  /** Bytes kept of each packet; 0 keeps whole packets. */
  snaplen: number;
  /** Size of one O_DIRECT write, a multiple of 4096. */
  chunkBytes: number;
  /** Number of chunk buffers between the capture thread and the writer. */
  chunkCount: number;
  /** Nanosecond pcap. Imports of nanosecond or pcapng files are nanosecond regardless. */
  nano: boolean;
  /** Rotation: a file is closed before it would pass any of these (0 = no limit). */
  maxFileBytes: number;
  maxFileSeconds: number;
  maxFilePackets: number;
  /** A partial chunk is written (and its metadata handed over) at least this often. */
  flushMs: number;
  /**
   * Files are created only as Recorder.grantFiles() allows, so a disk budget
   * can make room for a whole file before it exists. Off: no limit.
   */
  meteredFiles?: boolean;
}

export interface FileOpenEvent {
  type: 'open';
  /** Sequence number of the file in this recorder's life, from 0. */
  file: number;
  path: string;
  linktype: number;
  nano: boolean;
  snaplen: number;
}

export interface BatchEvent {
  type: 'batch';
  file: number;
  /**
   * PacketMeta records (recorder/packet-meta.ts), in file order. Readable
   * during the event's callback only: it is detached (empty) afterwards.
   */
  meta: ArrayBuffer;
  count: number;
  /** Bytes of the file that are written and hold only complete records. */
  committed: number;
}

export interface FileDoneEvent {
  type: 'done';
  file: number;
  path: string;
  /** Exact length of the file, which is truncated to it. */
  bytes: number;
  packets: number;
}

export interface ErrorEvent {
  type: 'error';
  message: string;
  /** A fatal error ends the recorder (an 'end' event follows). */
  fatal: boolean;
}

export interface EndEvent {
  type: 'end';
}

/**
 * The file system refused a write (ENOSPC, EDQUOT). The writer retries every
 * 100 ms until it succeeds (full: false follows) or refuseFiles() is called.
 */
export interface NoSpaceEvent {
  type: 'nospace';
  path: string;
  full: boolean;
  /** The system's message, when full. */
  message: string;
}

export type RecorderEvent = FileOpenEvent | BatchEvent | FileDoneEvent | ErrorEvent | EndEvent | NoSpaceEvent;

export interface RecorderStats {
  /** Packets seen by the capture thread. */
  packets: number;
  bytes: number;
  /** Packets the kernel dropped since start (ring full). */
  dropped: number;
  /** Packets captured but not stored, because refuseFiles() refused their file. */
  unstored: number;
  /** Each second with drops since the previous stats() call: when it ended, and how many. */
  dropIntervals: { endMs: number; dropped: number }[];
  /** Packets dropped by the kernel filter are not counted anywhere, as in tcpdump. */
  filesDone: number;
}

interface NativeRecorder {
  start(): void;
  rotate(): void;
  stop(): void;
  stats(): RecorderStats;
  grantFiles(n: number): void;
  refuseFiles(): void;
}

interface NativeRecordsMeta {
  meta: ArrayBuffer;
  count: number;
  next: number;
  stop: 0 | 1 | 2;
}

interface NativeFilter {
  collect(buf: Uint8Array, start: number, last: number, beginNs: bigint, endNs: bigint, nano: boolean): [Buffer, Uint32Array];
}

interface NativeIndexBuilder {
  add(meta: ArrayBuffer, count: number): void;
  segment(committed: number): Uint8Array;
  segmentWritten(): void;
  finish(fileBytes: number): Uint8Array;
  finishFromSegments(fileBytes: number): Uint8Array | undefined;
  timeBounds(): [bigint, bigint] | null;
}

interface Addon {
  IndexBuilder: {
    new (version: number, linktype: number, nano: boolean, snaplen: number): NativeIndexBuilder;
    release(bytes: Uint8Array): void;
  };
  Recorder: new (opts: RecorderOptions, onEvent: (ev: RecorderEvent) => void) => NativeRecorder;
  Filter: new (expression: string, linktype: number, snaplen: number) => NativeFilter;
  recordsMeta(buf: Uint8Array, fileOffset: number, linktype: number, nano: boolean, maxCaplen: number): NativeRecordsMeta;
  libpcapVersion(): string;
  prefetch(fd: number, position: number, length: number): void;
  writeDirect(fd: number, position: number, parts: Uint8Array[]): number;
  crc32(data: Uint8Array, crc: number): number;
  peerCredentials(fd: number): PeerCredentials | null;
  userName(uid: number): string | null;
  userGroups(name: string): string[] | null;
}

// eslint-disable-next-line @typescript-eslint/no-var-requires
const addon: Addon = require(path.join(__dirname, '..', '..', 'build', 'Release', 'n2disk.node'));

/**
 * A capture (or import) in progress. The constructor opens the source (the
 * socket and its ring, or the file) synchronously so that privileges can be
 * dropped before start(); start() launches the capture and writer threads.
 * Events arrive on the JS thread in order: open, batch..., done, per file.
 */
export class Recorder {
  private readonly native: NativeRecorder;

  constructor(opts: RecorderOptions, onEvent: (ev: RecorderEvent) => void) {
    this.native = new addon.Recorder(opts, onEvent);
  }

  start(): void { this.native.start(); }
  /** Close the current file at the next packet boundary and open a new one. */
  rotate(): void { this.native.rotate(); }
  /** Drain the ring, close the current file; 'end' follows once all is written. */
  stop(): void { this.native.stop(); }
  stats(): RecorderStats { return this.native.stats(); }
  /** With meteredFiles: lets the writer create `n` more files. */
  grantFiles(n: number): void { this.native.grantFiles(n); }
  /**
   * Creates no more files and stops waiting for disk space: packets that
   * cannot be stored are counted (stats().unstored) and let go.
   */
  refuseFiles(): void { this.native.refuseFiles(); }
}

export const libpcapVersion = (): string => addon.libpcapVersion();

/** Asks the kernel to start reading bytes [position, position + length) of `fd` into the page cache (advice only). */
export const prefetch = (fd: number, position: number, length: number): void => addon.prefetch(fd, position, length);

/** Bytes a position given to writeDirect() is a multiple of. */
export const DIRECT_ALIGN = 4096;

/**
 * Writes `parts` back to back into `fd`, a file opened with O_DIRECT, from
 * `position` (a multiple of DIRECT_ALIGN), bypassing the page cache, and
 * cuts the file where they end; returns 0, or a negative errno.
 */
export const writeDirect = (fd: number, position: number, parts: Uint8Array[]): number => addon.writeDirect(fd, position, parts);

/** zlib's CRC-32 of `data` (as zlib.crc32), continuing `crc`, a dozen times faster. */
export const crc32 = (data: Uint8Array, crc = 0): number => addon.crc32(data, crc);

/** Where and why a walk of pcap records stopped. */
export type RecordsStop = 'more' | 'zeros' | 'invalid';

export interface RecordsMeta {
  /** One PacketMeta (recorder/packet-meta.ts) per whole record, in file order. */
  meta: ArrayBuffer;
  count: number;
  /** Position in the buffer just after the last whole record. */
  next: number;
  /**
   * 'more': the buffer ended (mid-record or not); 'zeros': an all-zero record
   * header, where the data of a file cut short ends; 'invalid': a record
   * longer than maxCaplen, which no pcap reader accepts.
   */
  stop: RecordsStop;
}

const STOPS: RecordsStop[] = ['more', 'zeros', 'invalid'];

/**
 * The index metadata of the pcap records in buf, which starts at file offset
 * `fileOffset`: what the capture thread makes for the packets it stores.
 */
export function recordsMeta(buf: Uint8Array, fileOffset: number, linktype: number, nano: boolean, maxCaplen: number): RecordsMeta {
  const r = addon.recordsMeta(buf, fileOffset, linktype, nano, maxCaplen);
  return { meta: r.meta, count: r.count, next: r.next, stop: STOPS[r.stop]! };
}

/** The process at the other end of a Unix socket, as the kernel saw it connect (SO_PEERCRED). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** SO_PEERCRED of a connected Unix socket's descriptor; null when it has none. */
export const peerCredentials = (fd: number): PeerCredentials | null => addon.peerCredentials(fd);

/** The name of a uid (through NSS), or null. */
export const userName = (uid: number): string | null => addon.userName(uid);

/** Names of every group of a user, primary and supplementary (through NSS), or null for an unknown user. */
export const userGroups = (name: string): string[] | null => addon.userGroups(name);

/** The records of one scan. */
export interface ScanResult {
  /** The kept records (16-byte header and data each), copied back to back. */
  records: Buffer;
  /** Where each kept record started in the scanned buffer, in buffer order. */
  kept: Uint32Array;
  /** Position just after the last whole record walked. */
  next: number;
}

/**
 * A tcpdump expression compiled by libpcap for one link type. Extraction
 * gives it buffers of pcap records; it keeps those inside the time range
 * that the compiled program accepts, so libpcap decides every packet.
 * The constructor throws libpcap's own message for a bad expression.
 */
export class PacketFilter {
  private readonly native: NativeFilter;

  constructor(expression: string, linktype: number, snaplen: number) {
    this.native = new addon.Filter(expression, linktype, snaplen);
  }

  /**
   * Walks whole records of buf from `start` up to and including the one that
   * starts at `last`, or until the buffer holds no whole record more.
   * `nano` is the file's precision; the range is [beginNs, endNs).
   */
  scan(buf: Uint8Array, start: number, last: number, beginNs: bigint, endNs: bigint, nano: boolean): ScanResult {
    const [records, out] = this.native.collect(buf, start, last, beginNs, endNs, nano);
    return { records, kept: out.subarray(0, out.length - 1), next: out[out.length - 1]! };
  }
}

/** What an index says about its pcap file as a whole. */
export interface IndexInfo {
  linktype: number;
  nano: boolean;
  snaplen: number;
}

/**
 * Builds the flow index of one pcap file (recorder/index.fbs; framed and
 * written by recorder/index-file.ts) from the PacketMeta batches of its
 * packets, in file order. The work is native (native/index_builder.h): per
 * packet it finds the flow and updates counters, per segment or file it
 * encodes. Memory: about 8 bytes a packet and 100 bytes a flow and segment
 * (a flow is counted in each segment it has packets in), kept after
 * finish() for the next builder to fill (one file's worth per process). A
 * call that throws changes nothing.
 */
export class IndexBuilder {
  private readonly native: NativeIndexBuilder;

  constructor(info: IndexInfo) {
    this.native = new addon.IndexBuilder(INDEX_FORMAT_VERSION, info.linktype, info.nano, info.snaplen);
  }

  /**
   * Indexes `count` PacketMeta records (recorder/packet-meta.ts). Their
   * offsets must increase, by less than 4 GiB from record to record, and not
   * fall before the end of the last segment.
   */
  add(meta: ArrayBuffer, count: number): void { this.native.add(meta, count); }

  /**
   * The index segment of the packets added since the last written segment,
   * covering the file's bytes from where it ended (0 at first) to `committed`.
   * Call segmentWritten() once it is on disk; one that could not be written
   * is covered again by the next.
   */
  segment(committed: number): Uint8Array { return this.native.segment(committed); }

  /** The segment() just before, with no add() since, is on disk: the next segment starts where it ends. */
  segmentWritten(): void { this.native.segmentWritten(); }

  /** The index of the whole file, one segment covering [0, fileBytes). Ends the builder. */
  finish(fileBytes: number): Uint8Array { return this.native.finish(fileBytes); }

  /**
   * The last segment, covering [end of the last written segment, fileBytes),
   * when the written segments followed by it make a good index of the file:
   * at most 16, holding no more than 5/4 of the file's distinct flows (a
   * flow is in every segment it has packets in; the distinct ones are
   * estimated, within a few percent), and at most 16384 of them in segments
   * without key tables (those of under 4096 flows, which readers decode
   * whole). It then ends the builder as finish() does; appended to the
   * written segments, it completes the file's index without encoding its
   * flows again, the largest cost where nearly every packet is a flow of its
   * own. Undefined otherwise, changing nothing: call finish().
   */
  finishFromSegments(fileBytes: number): Uint8Array | undefined { return this.native.finishFromSegments(fileBytes); }

  /** Frees the bytes of a segment() or finish...() result now instead of at a garbage collection; `bytes` is empty afterwards. */
  static release(bytes: Uint8Array): void { addon.IndexBuilder.release(bytes); }

  /** Earliest packet time so far, in ns at the file's precision (0n before any packet). */
  get minNs(): bigint { return this.native.timeBounds()?.[0] ?? 0n; }

  /** Latest packet time so far, in ns at the file's precision (0n before any packet). */
  get maxNs(): bigint { return this.native.timeBounds()?.[1] ?? 0n; }
}
