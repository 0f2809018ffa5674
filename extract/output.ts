// Writing the extracted packets as a pcap stream, to a file or stdout. The
// header goes out with the first packet, so that "nothing matched" can mean
// no output at all unless an empty pcap is asked for.
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { Packet } from './read';

const FLUSH_BYTES = 1 << 20;

export interface OutputOptions {
  linktype: number;
  /** Nanosecond pcap; records of microsecond files are converted. */
  nano: boolean;
  /** Cut every packet to this many bytes (0: as stored). */
  snaplen: number;
}

export class PcapOutput {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private headerWritten = false;
  packets = 0;
  bytes = 0;

  private out: Writable | undefined;

  /** `target` is a file name or '-' for stdout; a file is created only when something is written. */
  constructor(
    private readonly target: string,
    private readonly opts: OutputOptions,
  ) {}

  private stream(): Writable {
    this.out ??= this.target === '-' ? process.stdout : fs.createWriteStream(this.target, { mode: 0o640 });
    return this.out;
  }

  private header(): Buffer {
    const h = Buffer.alloc(24);
    h.writeUInt32LE(this.opts.nano ? 0xa1b23c4d : 0xa1b2c3d4, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(this.opts.snaplen || 262144, 16);
    h.writeUInt32LE(this.opts.linktype, 20);
    return h;
  }

  async write(p: Packet): Promise<void> {
    if (!this.headerWritten) this.queue(this.header());
    let rec = p.record;
    const cut = this.opts.snaplen && rec.length - 16 > this.opts.snaplen;
    if (p.nano !== this.opts.nano || cut) {
      // Only a conversion rewrites a header; otherwise the record goes out as stored.
      rec = Buffer.from(cut ? rec.subarray(0, 16 + this.opts.snaplen) : rec);
      if (cut) rec.writeUInt32LE(this.opts.snaplen, 8);
      if (p.nano !== this.opts.nano) {
        const frac = p.tsNs % 1_000_000_000n;
        rec.writeUInt32LE(Number(p.tsNs / 1_000_000_000n) >>> 0, 0);
        rec.writeUInt32LE(Number(this.opts.nano ? frac : frac / 1000n), 4);
      }
    }
    this.queue(rec);
    this.packets++;
    this.bytes += rec.length - 16;
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush();
  }

  private queue(b: Buffer): void {
    this.headerWritten = true;
    this.pending.push(b);
    this.pendingBytes += b.length;
  }

  private async flush(): Promise<void> {
    if (!this.pending.length) return;
    const data = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    const out = this.stream();
    if (!out.write(data)) await new Promise<void>((resolve) => out.once('drain', resolve));
  }

  /** Flushes; with `empty`, writes a header-only pcap when no packet was written. */
  async close(empty: boolean): Promise<void> {
    if (!this.headerWritten && empty) this.queue(this.header());
    await this.flush();
    const out = this.out;
    if (out && out !== process.stdout) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}
