// --metrics-port: the stats sample in Prometheus text format (prom-client),
// with micro-bursts counted as they are reported. Figures that only grow are
// counters, so Grafana's rate() applies; the rest are gauges. Each series
// carries the interface as a label, so one dashboard shows every instance.
import http from 'node:http';
import { AddressInfo } from 'node:net';
import { InvalidArgumentError } from 'commander';
import { Counter, Gauge, Registry } from 'prom-client';
import { InstanceStats } from './stats';
import { Burst } from './uburst';

export interface ListenAddress {
  /** Undefined: every address, IPv6 and IPv4 where the host has them. */
  host?: string;
  port: number;
}

/** `PORT`, `ADDR:PORT` or `[IPv6]:PORT`; a port alone listens on every address, as exporters do. */
export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]:|([^:[\]]+):)?(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`'${text}' is not PORT or ADDRESS:PORT.`);
  return { host: m[1] ?? m[2], port };
}

type NumericField = { [K in keyof InstanceStats]: InstanceStats[K] extends number | null ? K : never }[keyof InstanceStats];

/** Stats fields that only grow, as counters: [field, metric name, help]. */
const COUNTERS: readonly [NumericField, string, string][] = [
  ['Packets', 'n2disk_packets_total', 'Packets captured'],
  ['Bytes', 'n2disk_bytes_total', 'Bytes of the packets captured, as stored'],
  ['Dropped', 'n2disk_dropped_packets_total', 'Packets the kernel dropped'],
  ['DumpedBytes', 'n2disk_dumped_bytes_total', 'Bytes of pcap written'],
  ['DumpedFiles', 'n2disk_dumped_files_total', 'Files published'],
];

const GAUGES: readonly [NumericField, string, string][] = [
  ['Duration', 'n2disk_uptime_seconds', 'Seconds since the recorder started'],
  ['Throughput', 'n2disk_throughput_bits_per_second', 'Bits per second captured over the last interval'],
  ['DroppedLastInterval', 'n2disk_dropped_packets_last_interval', 'Packets the kernel dropped in the last interval'],
  ['FirstDumpedEpoch', 'n2disk_first_dumped_epoch_seconds', 'Time of the first packet stored since start'],
  ['LastDumpedEpoch', 'n2disk_last_dumped_epoch_seconds', 'Time of the latest packet stored'],
  ['BytesOnDisk', 'n2disk_bytes_on_disk', 'Bytes the dump set takes on disk, as the disk limit counts them'],
];

export class Metrics {
  private readonly registry = new Registry();
  private readonly counters: [NumericField, Counter][];
  private readonly gauges: [NumericField, Gauge][];
  private readonly info: Gauge<'timeline'>;
  private readonly bursts: Counter;
  private readonly burstSeconds: Counter;
  private readonly burstPeak: Gauge;
  private previous: Partial<Record<NumericField, number>> = {};
  private server: http.Server | undefined;

  constructor(iface: string) {
    this.registry.setDefaultLabels({ interface: iface });
    const registers = [this.registry];
    this.counters = COUNTERS.map(([field, name, help]) => [field, new Counter({ name, help, registers })]);
    this.gauges = GAUGES.map(([field, name, help]) => [field, new Gauge({ name, help, registers })]);
    this.info = new Gauge({ name: 'n2disk_info', help: 'Always 1; labels say where the dump set is', labelNames: ['timeline'], registers });
    this.bursts = new Counter({ name: 'n2disk_uburst_total', help: 'Micro-bursts detected', registers });
    this.burstSeconds = new Counter({ name: 'n2disk_uburst_seconds_total', help: 'Time spent in micro-bursts', registers });
    this.burstPeak = new Gauge({ name: 'n2disk_uburst_last_peak_bits_per_second', help: 'Peak rate of the latest micro-burst', registers });
  }

  /** Takes a new stats sample: counters grow by what the figures grew since the previous one. */
  update(stats: InstanceStats): void {
    for (const [field, counter] of this.counters) {
      const value = stats[field] ?? 0;
      const grown = value - (this.previous[field] ?? 0);
      if (grown > 0) counter.inc(grown);
      this.previous[field] = value;
    }
    for (const [field, gauge] of this.gauges) {
      const value = stats[field];
      if (value === null) gauge.reset();
      else gauge.set(value);
    }
    this.info.reset();
    this.info.set({ timeline: stats.TimelinePath }, 1);
  }

  burst(b: Burst): void {
    this.bursts.inc();
    this.burstSeconds.inc(Number(b.endNs - b.startNs) / 1e9);
    this.burstPeak.set(b.peakBps);
  }

  /** Serves GET /metrics; resolves with the address bound (port 0 picks a free one). */
  listen(at: ListenAddress): Promise<AddressInfo> {
    const server = http.createServer((req, res) => {
      if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(at.port, at.host, () => {
        server.off('error', reject);
        resolve(server.address() as AddressInfo);
      });
    });
  }

  close(): void {
    this.server?.close();
    this.server?.closeAllConnections();
  }
}
