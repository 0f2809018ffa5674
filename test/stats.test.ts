// The stats file and the metrics endpoint give the figures of what was
// recorded: an import of a fixture, and (root) a live replay of one.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { Metrics } from '../recorder/metrics';
import { InstanceStats } from '../recorder/stats';
import { fixture, repoRoot } from './helpers/corpus';
import { createNetnsPair, exitOf, replay, waitForOutput } from './helpers/netns';
import { readPcap } from './helpers/pcap-compare';
import { bin, collectStderr, publishedFiles, runTool, tempDir, waitForFile } from './helpers/recorder';

const work = tempDir('stats');
after(() => fs.rmSync(work, { recursive: true, force: true }));

/** What a stats sample must say of a dump set holding exactly `pcapFile`'s packets. */
function expectedFigures(pcapFile: string, storage: string): Partial<InstanceStats> {
  const records = readPcap(pcapFile).records;
  const files = publishedFiles(storage);
  return {
    Packets: records.length,
    Bytes: records.reduce((sum, r) => sum + r.caplen, 0),
    Dropped: 0,
    DumpedFiles: files.length,
    DumpedBytes: files.reduce((sum, f) => sum + fs.statSync(f).size, 0),
  };
}

const readStats = (file: string): InstanceStats => JSON.parse(fs.readFileSync(file, 'utf8')) as InstanceStats;

test('an import: the stats file ends with the figures of the capture imported', async () => {
  const pcap = fixture('dns_exfiltration.pcap').path;
  const dir = path.join(work, 'import');
  const statsFile = path.join(work, 'import.json');
  const r = await runTool('n2disk-ts', ['-i', pcap, '-o', dir, '-N', '100', '--stats-file', statsFile]);
  assert.equal(r.code, 0, r.stderr);
  const stats = readStats(statsFile);
  const records = readPcap(pcap).records;
  assert.deepEqual({ ...stats, ...expectedFigures(pcap, dir) }, stats);
  assert.equal(stats.DumpedFiles, 3);
  assert.equal(stats.DroppedLastInterval, 0);
  assert.equal(stats.FirstDumpedEpoch, Number(records[0]!.tsNs / 1_000_000_000n));
  assert.equal(stats.LastDumpedEpoch, Number(records.at(-1)!.tsNs / 1_000_000_000n));
  assert.equal(stats.TimelinePath, path.join(dir, 'timeline'));
  assert.ok(stats.BytesOnDisk !== null && stats.BytesOnDisk >= stats.DumpedBytes, `${stats.BytesOnDisk} bytes on disk`);
  assert.equal(stats.MicroBursts, 0);
  assert.deepEqual(fs.readdirSync(work).filter((f) => f.endsWith('.tmp')), [], 'no temporary left beside it');
});

/** The value of a metric for one interface, from Prometheus text. */
function metric(text: string, name: string, iface: string): number {
  const m = new RegExp(`^${name}\\{interface="${iface}"\\} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${name} in\n${text}`);
  return Number(m[1]);
}

test('a live replay: the stats file and the metrics endpoint count every packet and byte sent (root)', { skip: process.getuid?.() === 0 ? false : 'skipped: needs root' }, async () => {
  const env = await createNetnsPair();
  try {
    // The endpoint listens on the loopback of the recorder's namespace.
    await env.exec(env.nsB, 'ip', ['link', 'set', 'lo', 'up']);
    const dir = path.join(work, 'live');
    const statsFile = path.join(work, 'live.json');
    const pidFile = path.join(work, 'live.pid');
    const child = env.spawn(env.nsB, process.execPath, [
      bin('n2disk-ts'), '-i', env.ifB, '-o', dir, '-P', pidFile, '--stats-file', statsFile, '--metrics-port', '127.0.0.1:0',
    ]);
    const stderr = collectStderr(child);
    const url = /metrics on (http:\/\/\S+)/.exec(await waitForOutput(child, /metrics on http:\/\/\S+/))![1]!;
    await waitForFile(pidFile);
    const pcap = fixture('dns_exfiltration.pcap').path;
    const sent = await replay(env, pcap, { pps: 5000 });
    const expected = readPcap(pcap).records;
    assert.equal(sent, expected.length);
    // A sample a second: wait for one that has them all.
    const until = Date.now() + 10_000;
    while (readStatsIfAny(statsFile)?.Packets !== sent && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    const stats = readStats(statsFile);
    assert.equal(stats.Packets, sent);
    assert.equal(stats.Bytes, expected.reduce((sum, r) => sum + r.caplen, 0));
    const scrape = `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => process.stdout.write(t))`;
    const { stdout: text } = await env.exec(env.nsB, process.execPath, ['-e', scrape]);
    assert.equal(metric(text, 'n2disk_packets_total', env.ifB), stats.Packets);
    assert.equal(metric(text, 'n2disk_bytes_total', env.ifB), stats.Bytes);
    assert.equal(metric(text, 'n2disk_dropped_packets_total', env.ifB), 0);
    assert.equal(metric(text, 'n2disk_dropped_packets_last_interval', env.ifB), 0);
    assert.equal(metric(text, 'n2disk_uburst_total', env.ifB), 0);
    assert.match(text, new RegExp(`^n2disk_info\\{timeline="${path.join(dir, 'timeline')}",interface="${env.ifB}"\\} 1$`, 'm'));
    child.kill('SIGTERM');
    assert.equal(await exitOf(child), 0, stderr());
    // The last sample, written on the way out, describes the published dump set.
    assert.deepEqual({ ...readStats(statsFile), ...expectedFigures(pcap, dir) }, readStats(statsFile));
  } finally {
    await env.cleanup();
  }
});

test('the Grafana dashboard reads only metrics the endpoint serves', async () => {
  const metrics = new Metrics('eth9');
  const at = await metrics.listen({ host: '127.0.0.1', port: 0 });
  try {
    const text = await (await fetch(`http://127.0.0.1:${at.port}/metrics`)).text();
    const served = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const dashboard = fs.readFileSync(path.join(repoRoot, 'tools', 'grafana-dashboard.json'), 'utf8');
    const used = new Set([...dashboard.matchAll(/\b(n2disk_[a-z_]+)\b/g)].map((m) => m[1]));
    assert.ok(used.size >= 10, [...used].join(' '));
    for (const name of used) assert.ok(served.has(name), `${name} is not served`);
  } finally {
    metrics.close();
  }
});

function readStatsIfAny(file: string): InstanceStats | undefined {
  try {
    return readStats(file);
  } catch {
    return undefined;
  }
}
