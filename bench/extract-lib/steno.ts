// Stenographer on the same traffic: it only records from an interface, so the
// dump set's files are replayed by tcpreplay into a veth pair between two
// namespaces of our own, stenographer (and its stenotype) capturing the far
// end, then the three queries go to its HTTPS server as stenoread/stenocurl
// send them. Everything it creates goes on every exit path.
import fs from 'node:fs';
import path from 'node:path';
import type { Query } from '../extract';
import { scanPcaps } from './pcapscan';
import { background, dropCaches, onCleanup, run, sleep, stop, timed } from './proc';

export type StenoReport =
  | { ok: true; rows: ({ warm: number; cold: number; packets: number } | undefined)[]; note: string }
  | { ok: false; reason: string };

const CERTS = '/etc/stenographer/certs';
const PORT = 1234;

function log(m: string): void {
  process.stderr.write(`  steno: ${m}\n`);
}

export async function stenographerBench(files: string[], queries: Query[], work: string, mbps = 1000): Promise<StenoReport> {
  for (const bin of ['/usr/sbin/stenographer', '/usr/sbin/stenotype', '/usr/bin/tcpreplay', '/usr/bin/curl']) {
    if (!fs.existsSync(bin)) return { ok: false, reason: `${bin} is not installed` };
  }
  if (!fs.existsSync(`${CERTS}/client_key.pem`)) return { ok: false, reason: `no client certificate in ${CERTS} (stenokeys.sh not run)` };

  const tag = `${process.pid % 100000}`;
  const nsA = `n2dtx-${tag}-a`, nsB = `n2dtx-${tag}-b`;
  const ifA = `n2dtx${tag}a`, ifB = `n2dtx${tag}b`;
  const dir = path.join(work, 'steno');
  const killNs = (): void => {
    for (const ns of [nsB, nsA]) {
      // Whatever still runs in our namespace is ours (stenotype outlives a killed stenographer).
      for (const pid of run(['ip', 'netns', 'pids', ns], true).split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch { /* gone */ }
      }
      run(['ip', 'netns', 'del', ns], true);
    }
  };
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  onCleanup(killNs);

  fs.rmSync(dir, { recursive: true, force: true });
  // The stenographer user must reach its directory (mkdtemp made `work` 0700).
  fs.chmodSync(work, 0o755);
  for (const d of ['pkt', 'idx', 'tmp']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  // stenotype drops to the stenographer user; it must write there.
  run(['chown', '-R', 'stenographer:stenographer', dir]);
  for (const ns of [nsA, nsB]) {
    run(['ip', 'netns', 'add', ns]);
    // No IPv6 on the link: the kernel sends nothing of its own into the capture.
    run(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  }
  run(['ip', 'link', 'add', ifA, 'netns', nsA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
  run(['ip', '-n', nsA, 'link', 'set', ifA, 'up']);
  run(['ip', '-n', nsB, 'link', 'set', ifB, 'up']);
  run(['ip', '-n', nsB, 'link', 'set', 'lo', 'up']); // its HTTPS server listens on 127.0.0.1 in there

  // Stenotype rotates files every 60 s of capture and Stenographer filters
  // time per file only. The replay squeezes the capture's span into a few
  // minutes, so files are aged in proportion to keep the same granularity
  // (a file per minute of original traffic).
  const fileBytes = files.reduce((n, f) => n + fs.statSync(f).size, 0);
  const replaySeconds = (fileBytes * 8) / (mbps * 1e6);
  const spanSeconds = (queries[0]!.endUs - queries[0]!.beginUs) / 1e6;
  const fileAge = Math.max(1, Math.round((60 * replaySeconds) / spanSeconds));
  const config = path.join(dir, 'config');
  fs.writeFileSync(config, JSON.stringify({
    Threads: [{ PacketsDirectory: path.join(dir, 'pkt'), IndexDirectory: path.join(dir, 'idx'), DiskFreePercentage: 1 }],
    StenotypePath: '/usr/sbin/stenotype',
    Interface: ifB,
    Port: PORT,
    Host: '127.0.0.1',
    // As in bench/capture.ts: seccomp can hang in VMs (its man page), and 512
    // MB of ring is plenty at the replay's rate.
    Flags: ['--seccomp=none', '--blocks=512', `--fileage_sec=${fileAge}`, '--blockage_sec=1', '--no_watchdogs', '-v'],
    // blockage <= fileage or it aborts; its watchdog aborts it when a file is shorter than its timeout;
    // -v: its per-100 MB statistics (packets, drops) in the log.
    CertPath: CERTS,
  }, null, 1));
  const logFd = fs.openSync(path.join(dir, 'stenographer.log'), 'w');
  run(['chown', '-R', 'stenographer:stenographer', dir]);
  // As its systemd unit does: run as user stenographer. As root, stenotype
  // drops to nobody and cannot write into the root-owned scratch directory
  // stenographer made (it aborts on open). TMPDIR: that scratch directory
  // goes under ours, so it is removed with it.
  const steno = background(['ip', 'netns', 'exec', nsB, 'env', `TMPDIR=${path.join(dir, 'tmp')}`,
    'setpriv', '--reuid', 'stenographer', '--regid', 'stenographer', '--init-groups',
    '/usr/sbin/stenographer', '-config', config, '-syslog=false'], logFd);
  const stenoLog = (): string => fs.readFileSync(path.join(dir, 'stenographer.log'), 'utf8').slice(-3000);

  // The query, as stenocurl sends it (curl with the client certificate), from inside the namespace.
  const query = (q: string, out: string): ReturnType<typeof timed> =>
    timed(['ip', 'netns', 'exec', nsB, 'curl', '--silent', '--show-error', '--max-time', '890',
      '--cert', `${CERTS}/client_cert.pem`, '--key', `${CERTS}/client_key.pem`, '--cacert', `${CERTS}/ca_cert.pem`,
      '-d', q, '-o', out, `https://127.0.0.1:${PORT}/query`], true);

  try {
    // Up when it answers a query.
    const probe = path.join(dir, 'probe.pcap');
    for (let i = 0; ; i++) {
      if (steno.exitCode !== null) return { ok: false, reason: `stenographer exited ${steno.exitCode}: ${stenoLog()}` };
      if (query('host 192.0.2.1', probe).status === 0) break;
      if (i > 60) return { ok: false, reason: `stenographer did not answer within 60 s: ${stenoLog()}` };
      await sleep(1000);
    }
    log(`up; replaying ${files.length} files at ${mbps} Mbit/s`);
    const t0 = Date.now() / 1000;
    const rep = timed(['ip', 'netns', 'exec', nsA, 'tcpreplay', '-q', '-i', ifA, `--mbps=${mbps}`, ...files], true);
    const t1 = Date.now() / 1000;
    if (rep.status !== 0) return { ok: false, reason: `tcpreplay failed: ${rep.stderr.slice(-500)}` };
    const sent = /Successful packets:\s+(\d+)/.exec(rep.stdout + rep.stderr)?.[1];
    log(`replayed ${sent ?? '?'} packets in ${(t1 - t0).toFixed(0)} s`);

    // Searchable once stenotype has moved on to a file started after the
    // replay ended and every finished packet file has its index.
    const settled = async (): Promise<boolean> => {
      for (let waited = 0; waited < 300; waited += 5) {
        const pk = fs.readdirSync(path.join(dir, 'pkt'));
        const ix = new Set(fs.readdirSync(path.join(dir, 'idx')));
        const current = pk.filter((f) => f.startsWith('.')).map((f) => Number(f.slice(1)) / 1e6);
        const done = pk.filter((f) => !f.startsWith('.'));
        if (current.length && current.every((t) => t > t1) && done.length && done.every((f) => ix.has(f))) return true;
        await sleep(5000);
      }
      return false;
    };
    if (!(await settled())) return { ok: false, reason: `stenographer had not indexed the replay 300 s after it ended: ${stenoLog()}` };
    // Its server picks up new index files on its own schedule: poll until the
    // rare host's count stops moving (three equal answers 10 s apart).
    const probeQ = queries[0]!.filter;
    let seen: number[] = [];
    for (let i = 0; i < 30 && !(seen.length >= 3 && seen.slice(-3).every((n) => n === seen[seen.length - 1] && n > 0)); i++) {
      await sleep(10_000);
      query(probeQ, probe);
      seen = [...seen, scanPcaps([probe]).packets];
    }
    log(`'${probeQ}' answered ${seen.join(', ')} packets while it loaded its indexes`);
    // Its own count of what the kernel handed it and what it dropped.
    const stats = [...fs.readFileSync(path.join(dir, 'stenographer.log'), 'utf8').matchAll(/packets=(\d+) .*drops=(\d+)/g)].pop();
    const pktFiles = fs.readdirSync(path.join(dir, 'pkt')).filter((f) => !f.startsWith('.')).length;
    const pktBytes = fs.readdirSync(path.join(dir, 'pkt')).reduce((n, f) => n + fs.statSync(path.join(dir, 'pkt', f)).size, 0);
    const idxBytes = Number(run(['du', '-sb', path.join(dir, 'idx')]).split('\t')[0]);

    // Its clock is capture time: map each query's range linearly from the
    // capture's timestamps onto the replay's wall-clock span.
    const firstUs = queries[0]!.beginUs, lastUs = queries[0]!.endUs;
    const toWall = (us: number): string => new Date(1000 * (t0 + ((us - firstUs) / (lastUs - firstUs)) * (t1 - t0))).toISOString();
    const rows: ({ warm: number; cold: number; packets: number } | undefined)[] = [];
    for (const q of queries) {
      const whole = q.beginUs === firstUs && q.endUs === lastUs;
      const sq = [q.filter, whole ? '' : `after ${toWall(q.beginUs)} and before ${toWall(q.endUs)}`].filter(Boolean).join(' and ');
      const out = path.join(dir, 'q.pcap');
      const once = (): number => {
        fs.rmSync(out, { force: true });
        const r = query(sq, out);
        if (r.status !== 0) throw new Error(`stenographer query '${sq}' failed: ${r.stderr}; its log: ${stenoLog()}`);
        return r.seconds;
      };
      // As for the other tools: the faster of two cold runs, then the second warm one.
      dropCaches();
      const cold1 = once();
      dropCaches();
      const cold = Math.min(cold1, once());
      once();
      const warm = once();
      const packets = scanPcaps([out]).packets;
      log(`'${sq}': ${packets} packets, ${warm.toFixed(2)} / ${cold.toFixed(2)} s`);
      rows.push({ warm, cold, packets });
    }
    const note = `stenotype --fileage_sec=${fileAge} (60 s of the original capture), replayed with tcpreplay --mbps=${mbps} (${sent ?? '?'} packets sent, ${(t1 - t0).toFixed(0)} s) into a veth pair; ` +
      `stenotype stored ${pktFiles} files, ${pktBytes} B of packet files and ${idxBytes} B of index` +
      (sent ? ` (${(idxBytes / Number(sent)).toFixed(1)} B/packet sent)` : '') +
      (stats ? `; stenotype's last statistics: packets=${stats[1]} drops=${stats[2]}` : '') +
      '; queries timed as stenocurl sends them (curl over HTTPS, pcap to a file); the slice is `after/before` on capture time, ' +
      'mapped linearly from the original timestamps onto the replay; Stenographer keeps or drops whole files by their start time, ' +
      'with a minute of slack, so on this squeezed replay the slice returns (nearly) everything.';
    return { ok: true, rows, note };
  } finally {
    await stop(steno);
    fs.closeSync(logFd);
    killNs();
  }
}
