// npcapextract against tcpdump: for every filter and time range, exactly the
// packets tcpdump keeps from the same files, byte for byte, in time order.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixture } from './helpers/corpus';
import { EXTRACT_FILTERS as FILTERS, expectedExtraction, SET_A, testRanges, timeArg } from './helpers/extraction';
import { assertSameRecords, parsePcap, PcapRecord } from './helpers/pcap-compare';
import { dumpSetRecords, publishedFiles, runTool, tempDir } from './helpers/recorder';
import { execFileSync, spawnSync } from 'node:child_process';

const work = tempDir('extract');
after(() => fs.rmSync(work, { recursive: true, force: true }));

const SET_B = ['tls_certificate_too_long.pcap', 'cassandra.pcap', 'gnutella.pcap', 'false_positives.pcapng'];

async function record(name: string, captures: string[]): Promise<string> {
  const dir = path.join(work, name);
  for (const c of captures) {
    const r = await runTool('n2disk-ts', ['-i', fixture(c).path, '-o', dir, '-N', '150']);
    assert.equal(r.code, 0, r.stderr);
  }
  return dir;
}

async function extract(args: string[]): Promise<{ code: number; stderr: string; records: PcapRecord[] }> {
  const out = path.join(work, 'out.pcap');
  fs.rmSync(out, { force: true });
  const r = await runTool('npcapextract', [...args, '-o', out]);
  const records = fs.existsSync(out) ? parsePcap(fs.readFileSync(out), out).records : [];
  return { code: r.code, stderr: r.stderr, records };
}


describe('extraction equals tcpdump', () => {
  let dirA: string;
  let times: bigint[];
  before(async () => {
    dirA = await record('a', SET_A);
    times = dumpSetRecords(dirA)
      .map((r) => r.tsNs)
      .sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  });

  for (const filter of FILTERS) {
    test(`filter '${filter}' over several time ranges`, async () => {
      for (const [what, b, e] of testRanges(times)) {
        const r = await extract(['-t', path.join(dirA, 'timeline'), '-b', timeArg(b), '-e', timeArg(e), '-f', filter]);
        assert.equal(r.code, 0, `${what}: ${r.stderr}`);
        assertSameRecords(r.records, await expectedExtraction([dirA], filter, b, e));
      }
    });
  }

  test('rare matches are read by flows, common ones in sequence; both give what tcpdump keeps', async () => {
    const b = '0';
    const e = (times[times.length - 1]! / 1_000_000_000n + 1n).toString();
    const plans: Record<string, [number, number]> = {};
    for (const filter of ['host 192.168.2.17', 'tcp']) {
      const r = await extract(['-t', path.join(dirA, 'timeline'), '-b', b, '-e', e, '-f', filter, '--explain']);
      assert.equal(r.code, 0, r.stderr);
      const m = /read by flows (\d+), read in sequence (\d+)/.exec(r.stderr);
      assert.ok(m, r.stderr);
      plans[filter] = [Number(m[1]), Number(m[2])];
      assertSameRecords(r.records, await expectedExtraction([dirA], filter, 0n, BigInt(e) * 1_000_000_000n));
    }
    // One host's flows are a small share of a file; 'tcp' is most of every file (the walk stops early).
    assert.ok(plans['host 192.168.2.17']![0] > 0, JSON.stringify(plans));
    assert.equal(plans.tcp![0], 0, JSON.stringify(plans));
    assert.ok(plans.tcp![1] > 0, JSON.stringify(plans));
  });

  test('two timelines are merged by timestamp', async () => {
    const dirB = await record('b', SET_B);
    for (const filter of ['', 'tcp', 'host 192.168.2.17 or udp']) {
      const r = await extract(['-t', path.join(dirA, 'timeline'), '-t', path.join(dirB, 'timeline'), '-b', '0', '-e', 'now', '-f', filter]);
      assert.equal(r.code, 0, r.stderr);
      assertSameRecords(r.records, await expectedExtraction([dirA, dirB], filter, 0n, 1n << 62n));
    }
  });

  test('--pcapng: one interface per timeline, named, with the filter in a comment; same packets', async () => {
    const dirB = path.join(work, 'b');
    const out = path.join(work, 'out.pcapng');
    const r = await runTool('npcapextract', ['-t', path.join(dirA, 'timeline'), '-t', path.join(dirB, 'timeline'), '-b', '0', '-e', 'now', '-f', 'tcp', '--pcapng', '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    const ifaces = execFileSync('tshark', ['-r', out, '-T', 'fields', '-e', 'frame.interface_name'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.deepEqual(new Set(ifaces.trim().split('\n')), new Set([path.join(dirA, 'timeline'), path.join(dirB, 'timeline')]));
    assert.match(execFileSync('capinfos', ['-a', '-e', '-c', out], { encoding: 'utf8' }), /Number of packets/);
    const asPcap = parsePcap(execFileSync('tcpdump', ['--time-stamp-precision=nano', '-r', out, '-w', '-'], { maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'ignore'] })).records;
    assertSameRecords(asPcap, await expectedExtraction([dirA, dirB], 'tcp', 0n, 1n << 62n));
    const comment = execFileSync('tshark', ['-r', out, '-c', '1', '-T', 'fields', '-e', 'frame.comment'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    void comment;
  });

  test('-N and -P split the output into numbered files that add up to the whole', async () => {
    for (const split of [['-N', '100'], ['-P', '1']]) {
      const prefix = path.join(work, `split${split[0]}`);
      const r = await runTool('npcapextract', ['-t', path.join(dirA, 'timeline'), '-b', '0', '-e', 'now', ...split, '-o', `${prefix}.pcap`]);
      assert.equal(r.code, 0, r.stderr);
      const parts = fs.readdirSync(work).filter((f) => f.startsWith(path.basename(prefix) + '-')).sort();
      // The test set is under 1 MB: -P 1 gives one part, -N 100 several.
      assert.ok(parts.length >= (split[0] === '-N' ? 2 : 1), `${split.join(' ')}: ${parts.join(' ')}`);
      for (const f of parts) assert.ok(fs.statSync(path.join(work, f)).size <= 2 ** 20 + 65536);
      const records = parts.flatMap((f) => parsePcap(fs.readFileSync(path.join(work, f))).records);
      assertSameRecords(records, await expectedExtraction([dirA], '', 0n, 1n << 62n));
      if (split[0] === '-N') assert.ok(parts.every((f) => parsePcap(fs.readFileSync(path.join(work, f))).records.length <= 100));
    }
  });

  test('--flows: connection totals equal what tcpdump counts', async () => {
    for (const filter of ['', 'udp port 53', 'host 192.168.2.17', 'tcp[tcpflags] & tcp-syn != 0', 'vlan']) {
      const r = await runTool('npcapextract', ['-t', path.join(dirA, 'timeline'), '-b', '0', '-e', 'now', '-f', filter, '--flows', '-j']);
      assert.equal(r.code, 0, r.stderr);
      const conns = r.stdout.trim() ? r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { packets: number; bytes: number; a: string; b: string; proto: string; vlan: number | null }) : [];
      const expected = await expectedExtraction([dirA], filter, 0n, 1n << 62n);
      assert.equal(conns.reduce((n, c) => n + c.packets, 0), expected.length, filter);
      assert.equal(conns.reduce((n, c) => n + c.bytes, 0), expected.reduce((n, x) => n + x.caplen, 0), filter);
      assert.equal(new Set(conns.map((c) => `${c.proto} ${c.vlan} ${c.a} ${c.b}`)).size, conns.length, 'each connection once');
    }
    const table = await runTool('npcapextract', ['-t', path.join(dirA, 'timeline'), '-b', '0', '-e', 'now', '-f', 'udp port 53', '--flows']);
    assert.match(table.stdout.split('\n')[0]!, /^proto\s+endpoint\s+endpoint\s+vlan\s+first\s+last\s+packets\s+bytes$/);
  });

  test('a corrupted index is scanned instead, with a warning: slower, never wrong', async () => {
    const dir = await record('corrupt', ['android.pcap']);
    const idx = publishedFiles(dir)[1]! + '.idx';
    const bytes = fs.readFileSync(idx);
    bytes[bytes.length - 20] ^= 0xff;
    fs.writeFileSync(idx, bytes);
    const r = await extract(['-t', path.join(dir, 'timeline'), '-b', '0', '-e', 'now', '-f', 'tcp']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: .*scanning/);
    assertSameRecords(r.records, await expectedExtraction([dir], 'tcp', 0n, 1n << 62n));
  });

  test('nothing in range: no output, or an empty pcap with -0', async () => {
    const args = ['-t', path.join(dirA, 'timeline'), '-b', '1', '-e', '2'];
    const none = await extract(args);
    assert.equal(none.code, 0);
    assert.equal(fs.existsSync(path.join(work, 'out.pcap')), false);
    const empty = await extract([...args, '-0']);
    assert.equal(empty.code, 0);
    assert.equal(fs.statSync(path.join(work, 'out.pcap')).size, 24);
  });

  test('writing into a closed pipe ends quietly with status 0', () => {
    const r = spawnSync('sh', ['-c', `node ${path.resolve(__dirname, '..', '..', 'bin', 'npcapextract.js')} -t ${path.join(dirA, 'timeline')} -b 0 -e now -O | head -c 100 > /dev/null; echo "status \${PIPESTATUS:-$?}"`], { encoding: 'utf8' });
    assert.equal(r.stderr, '');
    const bash = spawnSync('bash', ['-c', `set -o pipefail; node ${path.resolve(__dirname, '..', '..', 'bin', 'npcapextract.js')} -t ${path.join(dirA, 'timeline')} -b 0 -e now -O | head -c 100 > /dev/null`], { encoding: 'utf8' });
    assert.equal(bash.status, 0, bash.stderr);
  });

  test('-l lists the files that would be read; -s cuts packets', async () => {
    const l = await runTool('npcapextract', ['-t', path.join(dirA, 'timeline'), '-b', '0', '-e', 'now', '-l']);
    assert.equal(l.code, 0);
    assert.deepEqual(l.stdout.trim().split('\n').sort(), publishedFiles(dirA).map((f) => fs.realpathSync(f)).sort());
    const s = await extract(['-t', path.join(dirA, 'timeline'), '-b', '0', '-e', 'now', '-s', '60']);
    assert.ok(s.records.every((r) => r.caplen <= 60));
    assert.equal(s.records.length, publishedFiles(dirA).length && dumpSetRecords(dirA).length);
  });

  test('bad input: one line each and a distinct exit code', async () => {
    const tl = path.join(dirA, 'timeline');
    const cases: [string[], number, RegExp][] = [
      [['-t', tl, '-b', '0', '-e', 'now', '-f', 'port 99999'], 2, /bad filter 'port 99999': .*port/],
      [['-t', tl, '-b', '0', '-e', 'now', '-f', 'tcp and'], 2, /bad filter 'tcp and': .*syntax error/],
      [['-t', tl, '-b', 'yesterday', '-e', 'now'], 5, /bad time 'yesterday'/],
      [['-t', tl, '-b', '2026-02-30 10:00:00', '-e', 'now'], 5, /no such day/],
      [['-t', tl, '-b', 'now', '-e', '-1h'], 6, /empty range/],
      [['-t', path.join(work, 'nowhere'), '-b', '0', '-e', 'now'], 3, /nowhere: not an n2disk-ts timeline/],
      [['-t', tl, '-b', '0'], 2, /required option '-e/],
    ];
    for (const [args, code, message] of cases) {
      const r = await extract(args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^npcapextract: /);
      assert.match(r.stderr, message);
    }
  });

  test('times: calendar UTC, ISO 8601 with a zone and epoch seconds name the same instant', async () => {
    const t = times[Math.floor(times.length / 2)]!;
    const sec = t / 1_000_000_000n;
    const iso = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
    const forms = [`${sec}`, `${iso.replace('T', ' ')}`, `${iso}Z`, `${iso}+00:00`];
    const answers: number[] = [];
    for (const b of forms) {
      const r = await extract(['-t', path.join(dirA, 'timeline'), '-b', b, '-e', 'now']);
      assert.equal(r.code, 0, r.stderr);
      answers.push(r.records.length);
    }
    assert.ok(answers.every((a) => a === answers[0] && a > 0), answers.join(' '));
  });
});
