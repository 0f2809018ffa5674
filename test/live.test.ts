// Live capture (root): a veth pair between two network namespaces, captures
// replayed into one end with tcpreplay, n2disk-ts recording the other end.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixture, fixturesWith } from './helpers/corpus';
import { createNetnsPair, exitOf, NetnsEnv, replay } from './helpers/netns';
import { assertSameRecords, PcapRecord, readPcap } from './helpers/pcap-compare';
import { bin, collectStderr, dumpSetRecords, publishedFiles, runTool, tempDir, waitForFile } from './helpers/recorder';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'skipped: needs root (network namespaces, veth, packet capture)';

describe('live capture on a veth (root)', { skip }, () => {
  let env: NetnsEnv;
  const work = tempDir('live');
  let n = 0;

  before(async () => {
    env = await createNetnsPair();
  });
  after(async () => {
    await env?.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  });

  /** Starts the recorder on the capturing end and resolves once it captures. */
  async function startRecorder(extra: string[] = []) {
    const dir = path.join(work, String(n++));
    const pidFile = path.join(work, `${n}.pid`);
    const child = env.spawn(env.nsB, process.execPath, [bin('n2disk-ts'), '-i', env.ifB, '-o', dir, '-P', pidFile, ...extra]);
    const stderr = collectStderr(child);
    await waitForFile(pidFile);
    return { dir, child, stderr };
  }

  async function stop(rec: Awaited<ReturnType<typeof startRecorder>>): Promise<void> {
    rec.child.kill('SIGTERM');
    assert.equal(await exitOf(rec.child), 0, rec.stderr());
  }

  const expectedFrames = (names: string[]): PcapRecord[] => names.flatMap((name) => readPcap(fixture(name).path).records);

  test('every packet sent is stored byte for byte and in order, VLAN tags included', async () => {
    const names = fixturesWith('replayable')
      .filter((f) => f.format === 'pcap')
      .map((f) => f.name);
    assert.ok(names.some((x) => fixture(x).tags.includes('vlan')), 'the replayed set includes VLAN-tagged frames');
    const rec = await startRecorder();
    let sent = 0;
    for (const name of names) sent += await replay(env, fixture(name).path, { pps: 5000 });
    await stop(rec);
    const expected = expectedFrames(names);
    assert.equal(sent, expected.length);
    assertSameRecords(dumpSetRecords(rec.dir), expected, { precision: 'none' });
    for (const file of publishedFiles(rec.dir)) {
      execFileSync('tcpdump', ['-r', file, '-w', '/dev/null'], { stdio: 'pipe' });
      const info = execFileSync('capinfos', ['-c', '-M', file], { encoding: 'utf8' });
      assert.match(info, /Number of packets:\s+\d+/);
      const check = await runTool('npcapprintindex', ['-c', '-i', file + '.idx']);
      assert.equal(check.code, 0, check.stderr);
    }
  });

  test('USR1 publishes a complete, indexed file within a second; TERM loses nothing', async () => {
    const rec = await startRecorder();
    const first = ['dns_exfiltration.pcap'];
    await replay(env, fixture(first[0]!).path, { pps: 5000 });
    // Let the ring hand over its last block before asking for the file.
    await new Promise((r) => setTimeout(r, 150));
    const asked = Date.now();
    rec.child.kill('SIGUSR1');
    // Publication ends with the index beside the pcap (the pcap is renamed first).
    const published = (): string[] => publishedFiles(rec.dir).filter((f) => fs.existsSync(f + '.idx'));
    while (published().length === 0 && Date.now() - asked < 1000) await new Promise((r) => setTimeout(r, 10));
    const files = published();
    assert.equal(files.length, 1, 'a file and its index were published within a second of USR1');
    assertSameRecords(readPcap(files[0]!).records, expectedFrames(first), { precision: 'none' });

    // A burst right before TERM: everything that reached the ring is kept.
    const second = ['android.pcap', 'WebattackRCE.pcap'];
    for (const name of second) await replay(env, fixture(name).path, { pps: 50_000 });
    await stop(rec);
    assertSameRecords(dumpSetRecords(rec.dir), expectedFrames([...first, ...second]), { precision: 'none' });
  });

  test('a file being written is indexed in segments while it grows', async () => {
    const rec = await startRecorder();
    await replay(env, fixture('android.pcap').path, { pps: 2000 });
    await new Promise((r) => setTimeout(r, 1500));
    const parts = fs.readdirSync(rec.dir).filter((f) => f.endsWith('.pcap.part.idx'));
    assert.equal(parts.length, 1, `segmented index of the current file: ${fs.readdirSync(rec.dir).join(' ')}`);
    const r = await runTool('npcapprintindex', ['-j', '-i', path.join(rec.dir, parts[0]!)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { packets: number }).packets, fixture('android.pcap').packets);
    await stop(rec);
  });

  test('extraction sees the file being written, up to its last index segment, within about a second', async () => {
    const rec = await startRecorder();
    await replay(env, fixture('dns_exfiltration.pcap').path, { pps: 5000 });
    await new Promise((r) => setTimeout(r, 1600));
    assert.equal(publishedFiles(rec.dir).length, 0, 'nothing is published yet');
    const out = path.join(work, 'during.pcap');
    const x = await runTool('npcapextract', ['-t', path.join(rec.dir, 'timeline'), '-b', '-1h', '-e', 'now', '-f', 'udp', '-o', out]);
    assert.equal(x.code, 0, x.stderr);
    assertSameRecords(readPcap(out).records, expectedFrames(['dns_exfiltration.pcap']), { precision: 'none' });
    await stop(rec);
  });

  test('rotation by time (-t) closes files even when traffic stops', async () => {
    const rec = await startRecorder(['-t', '1']);
    await replay(env, fixture('dns_exfiltration.pcap').path, { pps: 1000 });
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(publishedFiles(rec.dir).length >= 1, 'the last file closed without a new packet');
    await stop(rec);
    assertSameRecords(dumpSetRecords(rec.dir), expectedFrames(['dns_exfiltration.pcap']), { precision: 'none' });
  });

  test('-f filters in the kernel with libpcap semantics; -u drops privileges', async () => {
    fs.chmodSync(work, 0o755); // mkdtemp's 0700 would keep the unprivileged user out
    const rec = await startRecorder(['-f', 'udp port 53', '-u', 'nobody']);
    await replay(env, fixture('android.pcap').path, { pps: 5000 });
    await stop(rec);
    const expected = execFileSync('tcpdump', ['-r', fixture('android.pcap').path, '-w', '-', 'udp port 53'], { maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'ignore'] });
    const want = readPcap(fixture('android.pcap').path).records.length;
    const got = dumpSetRecords(rec.dir);
    assert.ok(got.length > 0 && got.length < want);
    fs.writeFileSync(path.join(work, 'dns.pcap'), expected);
    assertSameRecords(got, readPcap(path.join(work, 'dns.pcap')).records, { precision: 'none' });
    const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }));
    for (const f of publishedFiles(rec.dir)) {
      const st = fs.statSync(f);
      assert.equal(st.uid, nobody);
      assert.equal(st.mode & 0o777, 0o640);
    }
  });

  test('a missing interface: one line, exit 3', async () => {
    const r = await runTool('n2disk-ts', ['-i', 'nosuchif0', '-o', path.join(work, 'x')]);
    assert.equal(r.code, 3);
    assert.equal(r.stderr, 'n2disk-ts: no such interface: nosuchif0\n');
  });
});
