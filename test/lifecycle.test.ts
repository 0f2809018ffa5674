// Dump set lifecycle without root: npcapindex, npcaprepair, recovery of a
// file left unfinished, the disk limit and -4 on imports, the storage lock.
// The live versions (kill -9 during capture, a small file system wrapped
// several times, a disk filled by someone else) are in lifecycle-live.test.ts.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { treeBytes } from '../recorder/disk-budget';
import { fixture } from './helpers/corpus';
import { expectedExtraction } from './helpers/extraction';
import { assertSameRecords, parsePcap, PcapRecord, readPcap } from './helpers/pcap-compare';
import { bin, collectStderr, dumpSetRecords, publishedFiles, runTool, tempDir } from './helpers/recorder';

const work = tempDir('lifecycle');
after(() => fs.rmSync(work, { recursive: true, force: true }));
let n = 0;
const newDir = (): string => path.join(work, `d${n++}`);

async function importInto(storage: string, file: string, extra: string[] = []): Promise<void> {
  const r = await runTool('n2disk-ts', ['-i', file, '-o', storage, ...extra]);
  assert.equal(r.code, 0, r.stderr);
}

async function checkAll(storage: string): Promise<void> {
  for (const f of publishedFiles(storage)) {
    const r = await runTool('npcapprintindex', ['-c', '-i', f + '.idx']);
    assert.equal(r.code, 0, `${f}: ${r.stdout}${r.stderr}`);
  }
}

/** A large capture: one fixture repeated, each copy 1000 s after the one before, so time only goes forward. */
function repeated(name: string, times: number): string {
  const out = path.join(work, `${name}-x${times}.pcap`);
  if (fs.existsSync(out)) return out;
  const copies = Array.from({ length: times }, (_, i) => {
    const copy = path.join(work, `copy${i}.pcap`);
    execFileSync('editcap', ['-F', 'pcap', '-t', String(i * 1000), fixture(name).path, copy]);
    return copy;
  });
  execFileSync('mergecap', ['-a', '-F', 'pcap', '-w', out, ...copies]);
  for (const c of copies) fs.rmSync(c);
  return out;
}

describe('npcapindex', () => {
  test('rebuilds byte for byte the index the recorder wrote', async () => {
    const storage = newDir();
    for (const name of ['android.pcap', '802.1ad_QinQ.pcap', 'sll2-android.pcap', 'timestamp_invalid_nano.pcap', 'nano.pcapng']) {
      await importInto(storage, fixture(name).path);
    }
    const files = publishedFiles(storage);
    assert.equal(files.length, 5);
    for (const f of files) {
      const out = path.join(work, 'rebuilt.idx');
      const r = await runTool('npcapindex', ['-i', f, '-o', out]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(fs.readFileSync(out).equals(fs.readFileSync(f + '.idx')), `${f}: rebuilt index differs`);
    }
  });

  test('indexes a foreign pcap beside it, and says where a cut file stops', async () => {
    const copy = path.join(work, 'foreign.pcap');
    fs.copyFileSync(fixture('WebattackRCE.pcap').path, copy);
    let r = await runTool('npcapindex', ['-i', copy]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await runTool('npcapprintindex', ['-c', '-i', copy + '.idx'])).code, 0);

    fs.truncateSync(copy, fs.statSync(copy).size - 5);
    r = await runTool('npcapindex', ['-i', copy]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^npcapindex: .*foreign\.pcap: partial record at byte \d+ of \d+; indexed the 796 packets before it\n$/);

    r = await runTool('npcapindex', ['-i', fixture('nano.pcapng').path, '-o', path.join(work, 'x.idx')]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /is pcapng, not pcap/);
    r = await runTool('npcapindex', ['-i', path.join(work, 'missing.pcap')]);
    assert.equal(r.code, 3);
    assert.equal(r.stderr.split('\n').length, 2, 'one line');
  });
});

describe('npcaprepair', () => {
  test('repairs every kind of damage, and a second run finds nothing', async () => {
    const storage = newDir();
    const timeline = path.join(storage, 'timeline');
    for (const name of ['android.pcap', 'anyconnect-vpn.pcap', 'WebattackRCE.pcap', 'gnutella.pcap']) {
      await importInto(storage, fixture(name).path, ['-N', '200']);
    }
    const files = publishedFiles(storage);
    assert.ok(files.length >= 12);
    const [missingIdx, corruptIdx, cutPcap, unlinked, crashed] = [files[1]!, files[3]!, files[5]!, files[7]!, files[9]!];
    const before = dumpSetRecords(storage).length;

    fs.rmSync(missingIdx + '.idx');
    const idx = fs.readFileSync(corruptIdx + '.idx');
    idx[Math.floor(idx.length / 2)]! ^= 0x40;
    fs.writeFileSync(corruptIdx + '.idx', idx);
    assert.equal((await runTool('npcapprintindex', ['-c', '-i', corruptIdx + '.idx'])).code, 1, '-c catches the flipped bit');
    fs.truncateSync(cutPcap, fs.statSync(cutPcap).size - 7);
    const links = fs.readdirSync(timeline, { recursive: true, encoding: 'utf8' }).map((l) => path.join(timeline, l));
    const slot = path.dirname(links.find((l) => l.endsWith(path.basename(unlinked)))!);
    fs.rmSync(path.join(slot, path.basename(unlinked)));
    fs.symlinkSync('../../../../../../0/1.000000.pcap', path.join(slot, '1.000000.pcap'));
    fs.symlinkSync('/etc/passwd', path.join(slot, 'outside.pcap'));
    // A recorder killed mid-file: its last block zero-padded, no index.
    const part = path.join(storage, `${path.basename(crashed)}.part`);
    const body = fs.readFileSync(crashed);
    fs.writeFileSync(part, Buffer.concat([body, Buffer.alloc(4096 - (body.length % 4096))]));
    fs.rmSync(crashed);
    fs.rmSync(crashed + '.idx');
    fs.writeFileSync(path.join(storage, '0', 'x.pcap.idx.tmp'), 'half');

    const first = await runTool('npcaprepair', [storage, timeline]);
    assert.equal(first.code, 0, first.stderr);
    const said = first.stdout;
    assert.match(said, /recovered .*\.pcap\.part as .*\.pcap \(200 packets, cut at byte \d+ of \d+\)/);
    assert.match(said, new RegExp(`rebuilt index of ${missingIdx} \\(missing\\)`));
    assert.match(said, new RegExp(`rebuilt index of ${corruptIdx} \\(.*\\)`));
    assert.match(said, new RegExp(`cut ${cutPcap} at byte \\d+ of \\d+ \\(partial record\\)`));
    assert.match(said, new RegExp(`linked ${unlinked} into the timeline`));
    assert.match(said, /removed link .*1\.000000\.pcap: dangling/);
    assert.match(said, /removed link .*outside\.pcap: points outside the dump set \(\/etc\/passwd\)/);
    assert.match(said, /x\.pcap\.idx\.tmp \(unfinished index\)/);

    const second = await runTool('npcaprepair', [storage, timeline]);
    assert.deepEqual([second.code, second.stdout, second.stderr], [0, '', '']);
    await checkAll(storage);
    assert.equal(dumpSetRecords(storage).length, before - 1, 'the crashed file is back; the cut record is gone');
    execFileSync('tcpdump', ['-r', cutPcap, '-w', '/dev/null'], { stdio: 'pipe' });

  });

  test('refuses a dump set in use, and takes over a lock its owner left', async () => {
    const storage = newDir();
    await importInto(storage, fixture('android.pcap').path);
    const timeline = path.join(storage, 'timeline');
    const lock = path.join(storage, '.n2disk-ts.lock');
    fs.writeFileSync(lock, `${process.pid}\n`);
    let r = await runTool('npcaprepair', [storage, timeline]);
    assert.equal(r.code, 3);
    assert.equal(r.stderr, `npcaprepair: ${storage} is in use by process ${process.pid}\n`);
    r = await runTool('n2disk-ts', ['-i', fixture('android.pcap').path, '-o', storage]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /in use by process/);
    fs.writeFileSync(lock, '2147483646\n'); // no such process
    r = await runTool('npcaprepair', [storage, timeline]);
    assert.deepEqual([r.code, r.stdout], [0, '']);
    assert.ok(!fs.existsSync(lock), 'the lock goes with its owner');
  });
});

describe('recovery at start', () => {
  test('a file left unfinished is cut, indexed and published before recording resumes', async () => {
    const storage = newDir();
    await importInto(storage, fixture('android.pcap').path);
    const [file] = publishedFiles(storage);
    const body = fs.readFileSync(file!);
    // Killed with a chunk written that ends inside a record.
    const part = path.join(storage, `${path.basename(file!)}.part`);
    fs.writeFileSync(part, Buffer.concat([body, body.subarray(24, 24 + 30)]));
    fs.writeFileSync(part + '.idx', 'N2IX torn');
    fs.rmSync(file!);
    fs.rmSync(file! + '.idx');
    const r = await runTool('n2disk-ts', ['-i', fixture('WebattackRCE.pcap').path, '-o', storage]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /recovered .*\.pcap\.part as .*\.pcap \(500 packets, cut at byte \d+ of \d+\)/);
    assert.deepEqual(fs.readdirSync(storage).filter((f) => f.includes('.part')), []);
    assertSameRecords(readPcap(file!).records, readPcap(fixture('android.pcap').path).records);
    assert.equal(dumpSetRecords(storage).length, 500 + 797);
    await checkAll(storage);
  });
});

describe('disk limit on imports', () => {
  /** Runs an import while sampling the dump set's size on disk; returns the largest seen. */
  async function importSampled(storage: string, file: string, extra: string[]): Promise<{ code: number; stderr: string; peak: number }> {
    const child = spawn(process.execPath, [bin('n2disk-ts'), '-i', file, '-o', storage, ...extra]);
    const stderr = collectStderr(child);
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, fs.existsSync(storage) ? treeBytes(storage) : 0)), 5);
    const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
    clearInterval(timer);
    peak = Math.max(peak, treeBytes(storage));
    return { code, stderr: stderr(), peak };
  }

  const LIMIT = 6 * 2 ** 20;
  const source = (): string => repeated('gnutella.pcap', 30); // 21 MB, 3.5 times the limit
  const sourceRecords = (): PcapRecord[] => parsePcap(fs.readFileSync(source())).records;

  test('the oldest files go and the dump set never passes the limit', async () => {
    const storage = newDir();
    const r = await importSampled(storage, source(), ['-p', '1', '--disk-limit', '6', '-v']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.peak <= LIMIT, `peak ${r.peak} > limit ${LIMIT}`);
    assert.match(r.stderr, /deleted .* \(disk limit\)/);
    const kept = dumpSetRecords(storage);
    const all = sourceRecords();
    assert.ok(kept.length > 1000 && kept.length < all.length);
    assertSameRecords(kept, all.slice(all.length - kept.length), { precision: 'none' });
    await checkAll(storage);
    const repair = await runTool('npcaprepair', [storage, path.join(storage, 'timeline')]);
    assert.deepEqual([repair.code, repair.stdout], [0, ''], 'no dangling link is left behind');

    // A restart with a lower limit counts what is there and deletes down to it.
    fs.rmSync(publishedFiles(storage)[1]!); // and a file deleted by hand is no trouble
    const again = await importSampled(storage, fixture('android.pcap').path, ['-p', '1', '--disk-limit', '3']);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(treeBytes(storage) <= 3 * 2 ** 20, `${treeBytes(storage)} bytes after restart`);
  });

  test('-4 stops at the limit with status 5, keeping the oldest', async () => {
    const storage = newDir();
    const r = await importSampled(storage, source(), ['-p', '1', '--disk-limit', '6', '-4']);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /disk limit of \d+ bytes reached and -4 forbids deleting: stopping/);
    assert.ok(r.peak <= LIMIT, `peak ${r.peak} > limit ${LIMIT}`);
    const kept = dumpSetRecords(storage);
    assertSameRecords(kept, sourceRecords().slice(0, kept.length), { precision: 'none' });
    await checkAll(storage);
  });

  test('bad limits are refused in one line', async () => {
    for (const [limit, why] of [['lots', /neither megabytes nor a percentage/], ['150%', /not a percentage between 0 and 100/], ['1', /no room for a file/]] as const) {
      const r = await runTool('n2disk-ts', ['-i', fixture('android.pcap').path, '-o', newDir(), '--disk-limit', limit]);
      assert.equal(r.code, 2, `${limit}: ${r.stderr}`);
      assert.match(r.stderr, why);
      assert.equal(r.stderr.split('\n').length, 2);
    }
  });

  test('--exec-cmd runs on each finished file', async () => {
    const storage = newDir();
    const log = path.join(work, 'exec.log');
    await importInto(storage, fixture('android.pcap').path, ['-N', '200', '--exec-cmd', `echo >>${log}`]);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(fs.readFileSync(log, 'utf8').trim().split('\n').sort(), publishedFiles(storage).sort());
  });
});

// Whether the extraction of a repaired dump set is exact is checked against tcpdump here too.
test('extraction after a repair equals tcpdump on the same files', async () => {
  const storage = newDir();
  await importInto(storage, fixture('anyconnect-vpn.pcap').path, ['-N', '100']);
  const files = publishedFiles(storage);
  fs.rmSync(files[2]! + '.idx');
  fs.truncateSync(files[4]!, fs.statSync(files[4]!).size - 3);
  const repair = await runTool('npcaprepair', [storage, path.join(storage, 'timeline')]);
  assert.equal(repair.code, 0, repair.stderr);
  const out = path.join(work, 'repaired-extract.pcap');
  const r = await runTool('npcapextract', ['-t', path.join(storage, 'timeline'), '-b', '0', '-e', '4000000000', '-f', 'tcp', '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', 'every index is usable again: no file is scanned');
  assertSameRecords(readPcap(out).records, await expectedExtraction([storage], 'tcp', 0n, 4_000_000_000_000_000_000n));
});

describe('npcapmanage', () => {
  test('lists the files of a range, deletes them with their indexes and links, and refuses bad input', async () => {
    const storage = newDir();
    const timeline = path.join(storage, 'timeline');
    await importInto(storage, fixture('android.pcap').path, ['-N', '100']);
    const files = publishedFiles(storage);
    assert.equal(files.length, 5);
    const all = await runTool('npcapmanage', ['-t', timeline, '-b', '0', '-e', '4000000000']);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(all.stdout.trim().split('\n').map((l) => l.split(' ')[0]), files);
    assert.match(all.stderr, /^npcapmanage: 5 files, \d+ bytes with their indexes\n$/);

    // The first file ends at 10:47:47.723627; a range starting just after it leaves it alone.
    const r = await runTool('npcapmanage', ['-t', timeline, '-b', '2020-02-23 10:47:47.7237', '-e', '2020-02-23 10:47:51.5', '-d']);
    assert.equal(r.code, 0, r.stderr);
    const deleted = r.stdout.trim().split('\n').map((l) => l.split(' ')[1]);
    assert.deepEqual(deleted, files.slice(1, 4));
    assert.deepEqual(publishedFiles(storage), [files[0], files[4]]);
    for (const f of deleted) assert.ok(!fs.existsSync(f!) && !fs.existsSync(f + '.idx'));
    const repair = await runTool('npcaprepair', [storage, timeline]);
    assert.deepEqual([repair.code, repair.stdout], [0, ''], 'no link was left behind');

    for (const [args, code] of [
      [['-b', 'yesterday-ish', '-e', 'now'], 5],
      [['-b', '-1h', '-e', '-2h'], 6],
    ] as const) {
      const bad = await runTool('npcapmanage', ['-t', timeline, ...args]);
      assert.equal(bad.code, code, bad.stderr);
      assert.equal(bad.stderr.split('\n').length, 2);
    }
    const notTimeline = await runTool('npcapmanage', ['-t', work, '-b', '0', '-e', '1']);
    assert.equal(notTimeline.code, 3);
  });
});
