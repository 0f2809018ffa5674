// What the recorder tells about itself while it runs: once a second one
// stats sample, which goes to the log (drops always, the rest with -v), the
// stats file and the metrics endpoint; and the micro-bursts found in each
// metadata batch, one JSON line each on stdout.
import { CliError, Exit } from './cli';
import { Logger } from './log';
import { ListenAddress, Metrics } from './metrics';
import { Session } from './session';
import { InstanceStats, StatsCollector, writeStatsFile } from './stats';
import { BurstDetector, BurstOptions, burstLine } from './uburst';

export interface MonitorOptions {
  log: Logger;
  /** The interface (or file) recorded: the metrics' label. */
  source: string;
  timeline: string;
  /** Live capture: packet times follow the clock, so a burst can be closed when its window has passed. */
  live: boolean;
  statsFile?: string;
  metrics?: ListenAddress;
  uburst?: BurstOptions;
  /** Bytes the dump set takes on disk, when a disk limit counts them. */
  bytesOnDisk?: () => number;
}

const count = (n: number): string => n.toLocaleString('en-US');

export class Monitor {
  private readonly collector: StatsCollector;
  private readonly metrics: Metrics | undefined;
  private readonly detector: BurstDetector | undefined;
  private session: Session | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastPackets = 0;
  /** The last failure to write the stats file, reported once rather than every second. */
  private statsFileError: string | undefined;

  private constructor(private readonly opts: MonitorOptions) {
    this.collector = new StatsCollector(opts.timeline);
    this.metrics = opts.metrics ? new Metrics(opts.source) : undefined;
    if (opts.uburst) {
      const detector = new BurstDetector(opts.uburst, (b) => {
        this.collector.countBurst();
        this.metrics?.burst(b);
        process.stdout.write(burstLine(b, detector.percentOfLink(b.peakBps)));
      });
      this.detector = detector;
    }
  }

  /** Opens the metrics endpoint, if asked for; a port that cannot be listened on is a usage error. */
  static async create(opts: MonitorOptions): Promise<Monitor> {
    const monitor = new Monitor(opts);
    if (monitor.metrics && opts.metrics) {
      try {
        const at = await monitor.metrics.listen(opts.metrics);
        opts.log.notice(`metrics on http://${at.family === 'IPv6' ? `[${at.address}]` : at.address}:${at.port}/metrics`);
      } catch (err) {
        throw new CliError(`cannot serve metrics on ${opts.metrics.host ?? '*'}:${opts.metrics.port}: ${(err as Error).message}`, Exit.usage);
      }
    }
    return monitor;
  }

  /** For SessionHooks.batch. */
  readonly onBatch = (meta: ArrayBuffer, count: number): void => {
    this.collector.observe(meta, count);
    this.detector?.add(meta, count);
  };

  /** Samples every second from now on. */
  start(session: Session): void {
    this.session = session;
    this.timer = setInterval(() => this.tick(), 1000);
  }

  /** A last sample, so the stats file and the endpoint end with the final figures, then the endpoint closes. */
  stop(): InstanceStats | undefined {
    clearInterval(this.timer);
    this.detector?.finish();
    const last = this.session ? this.tick() : undefined;
    this.metrics?.close();
    return last;
  }

  private tick(): InstanceStats {
    const session = this.session!;
    const { log } = this.opts;
    const recorder = session.stats();
    const stats = this.collector.sample({
      recorder,
      dumpedBytes: session.writtenBytes,
      dumpedFiles: session.totals.files,
      bytesOnDisk: this.opts.bytesOnDisk?.() ?? null,
    });
    // Drops are reported for the second in which they happened, always.
    for (const d of recorder.dropIntervals) {
      log.warning(`kernel dropped ${count(d.dropped)} packets in the second before ${new Date(d.endMs).toISOString()} (${count(recorder.dropped)} in all)`);
    }
    log.info(`${count(stats.Packets)} packets (${count(stats.Packets - this.lastPackets)}/s), ${count(stats.Dropped)} dropped, ${recorder.filesDone} files`);
    this.lastPackets = stats.Packets;
    if (this.opts.statsFile) {
      try {
        writeStatsFile(this.opts.statsFile, stats);
        this.statsFileError = undefined;
      } catch (err) {
        const message = `cannot write ${this.opts.statsFile}: ${(err as Error).message}`;
        if (message !== this.statsFileError) log.warning(message);
        this.statsFileError = message;
      }
    }
    this.metrics?.update(stats);
    if (this.opts.live) this.detector?.expire(BigInt(Date.now()) * 1_000_000n);
    return stats;
  }
}
