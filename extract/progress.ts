// Progress of a long extraction on stderr, only when stderr is a terminal:
// scripts and pipes get nothing.
import { ReadStats } from './read';

const EVERY_MS = 250;

export class Progress {
  private readonly started = Date.now();
  private last = 0;
  private shown = false;

  constructor(
    private readonly stats: ReadStats,
    private readonly totalBytes: number,
    private readonly totalFiles: number,
    private readonly enabled = process.stderr.isTTY === true,
  ) {}

  /** Called per batch written (a read's worth, or one merged packet): cheap, a clock read. */
  tick(filesDone: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < EVERY_MS) return;
    this.last = now;
    const done = this.stats.bytesRead;
    const rate = done / Math.max(1, now - this.started); // bytes per ms
    const left = rate > 0 ? Math.max(0, (this.totalBytes - done) / rate / 1000) : 0;
    const pct = this.totalBytes ? Math.min(100, (100 * done) / this.totalBytes) : 100;
    process.stderr.write(`\r${filesDone}/${this.totalFiles} files, ${(done / 2 ** 20).toFixed(1)} of ${(this.totalBytes / 2 ** 20).toFixed(1)} MB (${pct.toFixed(0)}%), ~${left.toFixed(0)} s left `);
    this.shown = true;
  }

  done(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
  }
}
