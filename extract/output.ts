// Writing extracted packets, to a file or stdout, as pcap or pcapng, in one
// file or numbered parts. Headers go out with the first packet, so that
// "nothing matched" means no output at all unless an empty file is asked for.
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { MAX_CAPLEN, pcapHeader } from '../recorder/pcap-file';
import { Batch, Packet, packetsOf } from './read';

const FLUSH_BYTES = 1 << 20;
/** Pending buffers this large on average are written as they are (writev) rather than copied into one. */
const GATHER_BYTES = 64 << 10;

/** Where packets came from, for pcapng's interface blocks. */
export interface Origin {
  name: string;
  linktype: number;
  /** The filter, recorded in the interface's comment. */
  filter: string;
}

export interface OutputOptions {
  format: 'pcap' | 'pcapng';
  /** Nanosecond timestamps; packets from microsecond files are converted. */
  nano: boolean;
  /** Cut every packet to this many bytes (0: as stored). */
  snaplen: number;
  /** Start a new numbered file after this many bytes / packets (0: never). */
  maxBytes: number;
  maxPackets: number;
}

/** Record of `p` cut to the snaplen and converted to the output precision (pcap layout). */
function outputRecord(p: Packet, opts: OutputOptions): Buffer {
  const cut = opts.snaplen > 0 && p.record.length - 16 > opts.snaplen;
  if (p.nano === opts.nano && !cut) return p.record; // as stored, byte for byte
  const rec = Buffer.from(cut ? p.record.subarray(0, 16 + opts.snaplen) : p.record);
  if (cut) rec.writeUInt32LE(opts.snaplen, 8);
  if (p.nano !== opts.nano) {
    const frac = p.tsNs % 1_000_000_000n;
    rec.writeUInt32LE(Number(p.tsNs / 1_000_000_000n) >>> 0, 0);
    rec.writeUInt32LE(Number(opts.nano ? frac : frac / 1000n), 4);
  }
  return rec;
}

const pad4 = (n: number): number => (n + 3) & ~3;

/** A pcapng block: type, length, body (padded), length again. */
function block(type: number, body: Buffer): Buffer {
  const len = 12 + pad4(body.length);
  const b = Buffer.alloc(len);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(len, 4);
  body.copy(b, 8);
  b.writeUInt32LE(len, len - 4);
  return b;
}

function option(code: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + pad4(value.length));
  b.writeUInt16LE(code, 0);
  b.writeUInt16LE(value.length, 2);
  value.copy(b, 4);
  return b;
}

function sectionHeader(): Buffer {
  const body = Buffer.alloc(16);
  body.writeUInt32LE(0x1a2b3c4d, 0);
  body.writeUInt16LE(1, 4);
  body.writeUInt16LE(0, 6);
  body.writeBigInt64LE(-1n, 8); // section length not given
  return block(0x0a0d0d0a, body);
}

function interfaceBlock(origin: Origin, opts: OutputOptions): Buffer {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt16LE(origin.linktype, 0);
  fixed.writeUInt32LE(opts.snaplen, 4);
  const opt = [
    option(2, Buffer.from(origin.name)), // if_name
    option(9, Buffer.from([opts.nano ? 9 : 6])), // if_tsresol: 10^-9 or 10^-6
  ];
  if (origin.filter) opt.push(option(1, Buffer.from(`filter: ${origin.filter}`))); // opt_comment
  opt.push(Buffer.alloc(4)); // opt_endofopt
  return block(1, Buffer.concat([fixed, ...opt]));
}

function packetBlock(iface: number, p: Packet, opts: OutputOptions): Buffer {
  const rec = outputRecord(p, opts);
  const caplen = rec.readUInt32LE(8);
  const body = Buffer.alloc(20 + pad4(caplen));
  const ticks = opts.nano ? p.tsNs : p.tsNs / 1000n;
  body.writeUInt32LE(iface, 0);
  body.writeUInt32LE(Number(ticks >> 32n), 4);
  body.writeUInt32LE(Number(ticks & 0xffffffffn), 8);
  body.writeUInt32LE(caplen, 12);
  body.writeUInt32LE(rec.readUInt32LE(12), 16);
  rec.copy(body, 20, 16);
  return block(6, body);
}

/**
 * The output of one extraction. `target` is a file name, or a stream
 * (stdout, the extraction service's connection) that is written but left
 * open; with maxBytes/maxPackets, files are TARGET-0001.EXT, TARGET-0002.EXT, ...
 */
export class Output {
  private out: Writable | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private started = false;
  private part = 0;
  private partBytes = 0;
  private partPackets = 0;
  /** pcapng interface id of each origin in the current file. */
  private ifaces = new Map<number, number>();
  packets = 0;
  bytes = 0;
  readonly files: string[] = [];

  constructor(
    private readonly target: string | Writable,
    private readonly origins: readonly Origin[],
    private readonly opts: OutputOptions,
  ) {}

  private get split(): boolean {
    return this.opts.maxBytes > 0 || this.opts.maxPackets > 0;
  }

  private fileName(target: string): string {
    if (!this.split) return target;
    const ext = path.extname(target);
    const base = ext ? target.slice(0, -ext.length) : target;
    return `${base}-${String(this.part).padStart(4, '0')}${ext || '.' + this.opts.format}`;
  }

  private stream(): Writable {
    if (!this.out) {
      if (typeof this.target === 'string') {
        const name = this.fileName(this.target);
        this.out = fs.createWriteStream(name, { mode: 0o640 });
        this.files.push(name);
      } else {
        this.out = this.target;
      }
    }
    return this.out;
  }

  /** Opens the next part: its header, and (pcapng) interfaces as they are needed. */
  private async startPart(origin: number): Promise<void> {
    if (this.started) {
      await this.flush();
      await this.endStream();
    }
    this.started = true;
    this.part++;
    this.partBytes = 0;
    this.partPackets = 0;
    this.ifaces.clear();
    this.queue(this.opts.format === 'pcap' ? pcapHeader({ nano: this.opts.nano, snaplen: this.opts.snaplen || MAX_CAPLEN, linktype: this.origins[origin]!.linktype }) : sectionHeader());
  }

  /** Writes a batch's packets: as they are, in one piece, when nothing about them changes. */
  async writeBatch(b: Batch): Promise<void> {
    const asStored = this.opts.format === 'pcap' && b.nano === this.opts.nano && this.opts.snaplen === 0 && !this.split;
    if (!asStored) {
      for (const p of packetsOf(b)) await this.write(p);
      return;
    }
    if (!this.started) await this.startPart(b.origin);
    const n = b.offsets.length;
    this.queue(b.records);
    this.packets += n;
    this.partPackets += n;
    this.bytes += b.records.length - 16 * n;
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush();
  }

  async write(p: Packet): Promise<void> {
    const full = this.split && ((this.opts.maxPackets > 0 && this.partPackets >= this.opts.maxPackets) || (this.opts.maxBytes > 0 && this.partBytes >= this.opts.maxBytes));
    if (!this.started || full) await this.startPart(p.origin);
    let data: Buffer;
    if (this.opts.format === 'pcap') {
      data = outputRecord(p, this.opts);
    } else {
      let id = this.ifaces.get(p.origin);
      if (id === undefined) {
        id = this.ifaces.size;
        this.ifaces.set(p.origin, id);
        this.queue(interfaceBlock(this.origins[p.origin]!, this.opts));
      }
      data = packetBlock(id, p, this.opts);
    }
    this.queue(data);
    this.packets++;
    this.partPackets++;
    this.bytes += p.record.length - 16;
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush();
  }

  private queue(b: Buffer): void {
    this.pending.push(b);
    this.pendingBytes += b.length;
    this.partBytes += b.length;
  }

  private async flush(): Promise<void> {
    if (!this.pending.length) return;
    const pending = this.pending;
    const average = this.pendingBytes / pending.length;
    this.pending = [];
    this.pendingBytes = 0;
    const out = this.stream();
    let ready: boolean;
    if (average >= GATHER_BYTES) {
      // Whole batches of records: handed over as they are, in one writev,
      // since copying them together would cost as much as writing them.
      out.cork();
      ready = pending.map((b) => out.write(b)).every(Boolean);
      out.uncork();
    } else {
      ready = out.write(Buffer.concat(pending));
    }
    // once() rejects if the stream fails instead (a client of the service that went away).
    if (!ready) await once(out, 'drain');
  }

  private async endStream(): Promise<void> {
    const out = this.out;
    this.out = undefined;
    if (out && out !== this.target) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }

  /** Flushes and closes; with `empty`, writes a file with headers only when no packet was written. */
  async close(empty: boolean): Promise<void> {
    if (!this.started && empty) {
      await this.startPart(0);
      if (this.opts.format === 'pcapng') {
        for (const [i, o] of this.origins.entries()) {
          this.ifaces.set(i, i);
          this.queue(interfaceBlock(o, this.opts));
        }
      }
    }
    await this.flush();
    await this.endStream();
  }
}
