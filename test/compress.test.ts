// Compressed dump sets (-M): every recording restores byte for byte, every
// extraction equals the one from the same recording uncompressed (itself
// equal to tcpdump's), a crash at any step of a compression loses nothing,
// and a damaged .lz4 is reported, never read as something else.
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generatePcap } from '../bench/extract-lib/pcapgen';
import { compressPcap, decompressFile, frameBoundaries } from '../recorder/compressed-file';
import { treeBytes } from '../recorder/disk-budget';
import { COMPRESSING_SUFFIX, DumpSet, indexPathOf, listStorageFiles } from '../recorder/dumpset';
import { readIndexFile, spanOf, writeIndexWithChunks } from '../recorder/index-file';
import { FIXTURES, fixture, listNdpiFiles, sharedCorpus } from './helpers/corpus';
import { EXTRACT_FILTERS, expectedExtraction, SET_A, testRanges, timeArg } from './helpers/extraction';
import { assertSameRecords, parsePcap, readPcap } from './helpers/pcap-compare';
import { bin, dumpSetRecords, publishedFiles, runTool, tempDir } from './helpers/recorder';

const work = tempDir('compress');
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
});

let seq = 0;
const fresh = (tag: string): string => path.join(work, `${tag}-${seq++}`);

/** Imports `captures` into `dir`, one recorder run each; returns the exit codes. */
async function record(dir: string, captures: string[], args: string[]): Promise<number[]> {
  const codes: number[] = [];
  for (const c of captures) codes.push((await runTool('n2disk-ts', ['-i', c, '-o', dir, ...args])).code);
  return codes;
}

/** npcapdecompress -i FILE -o OUT: the restored bytes. */
async function decompress(lz4: string): Promise<Buffer> {
  const out = fresh('restored');
  const r = await runTool('npcapdecompress', ['-i', lz4, '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  return fs.readFileSync(out);
}

/** What decompressFile (npcapdecompress's reader, in this process) restores. */
function decompressHere(lz4: string): Buffer {
  const parts: Buffer[] = [];
  const r = decompressFile(lz4, (b) => parts.push(Buffer.from(b)));
  assert.equal(r.defect, undefined);
  return Buffer.concat(parts);
}

/**
 * A compressed recording holds the same files as the plain one, each
 * restoring to the same bytes: through the tools (npcapdecompress, lz4 -dc),
 * or in this process where there are too many files to start a tool for each.
 */
async function assertRestores(plainDir: string, lz4Dir: string, viaTools: boolean): Promise<number> {
  const plain = publishedFiles(plainDir);
  const packed = publishedFiles(lz4Dir);
  assert.deepEqual(packed.map((f) => path.relative(lz4Dir, f)), plain.map((f) => path.relative(plainDir, f) + '.lz4'));
  for (const [i, p] of packed.entries()) {
    const want = fs.readFileSync(plain[i]!);
    assert.ok(want.equals(viaTools ? await decompress(p) : decompressHere(p)), `${p}: npcapdecompress differs from ${plain[i]}`);
    if (viaTools) assert.ok(want.equals(execFileSync('lz4', ['-dc', p], { maxBuffer: 1 << 30 })), `${p}: lz4 -dc differs`);
    assert.equal(fs.statSync(p).mode & 0o777, 0o640);
  }
  return packed.length;
}

describe('a compressed recording restores to the plain one, byte for byte', () => {
  test('every fixture: npcapdecompress and lz4 -dc', async () => {
    let files = 0;
    for (const f of FIXTURES) {
      const plainDir = fresh('plain');
      const lz4Dir = fresh('lz4');
      const codes = await record(plainDir, [f.path], ['-N', '200']);
      assert.deepEqual(await record(lz4Dir, [f.path], ['-N', '200', '-M']), codes, f.name);
      files += await assertRestores(plainDir, lz4Dir, true);
    }
    assert.ok(files > FIXTURES.length / 2, `${files} files compared`);
  });

  test('the ndpi corpus', { skip: sharedCorpus() === undefined && 'no shared corpus (../shared/corpus/ndpi): skipped' }, async () => {
    const corpus = (await listNdpiFiles()).filter((f) => f.fileType !== 'unreadable');
    let files = 0;
    // Two at a time: a recorder run is mostly start-up. One file per capture (-t 0), several frames for the larger ones.
    for (let i = 0; i < corpus.length; i += 2) {
      const pair = corpus.slice(i, i + 2);
      await Promise.all(pair.map(async (f) => {
        const plainDir = fresh('ndpi-plain');
        const lz4Dir = fresh('ndpi-lz4');
        const codes = await record(plainDir, [f.path], ['-t', '0']);
        assert.deepEqual(await record(lz4Dir, [f.path], ['-t', '0', '-M']), codes, f.name);
        files += await assertRestores(plainDir, lz4Dir, false);
        fs.rmSync(plainDir, { recursive: true });
        fs.rmSync(lz4Dir, { recursive: true });
      }));
    }
    assert.ok(files > corpus.length / 2, `${files} files of ${corpus.length}`);
  });
});

/** npcapextract to a file; its bytes (empty when nothing was written). */
async function extractBytes(args: string[]): Promise<{ code: number; stderr: string; bytes: Buffer }> {
  const out = fresh('out');
  const r = await runTool('npcapextract', [...args, '-o', out]);
  return { code: r.code, stderr: r.stderr, bytes: fs.existsSync(out) ? fs.readFileSync(out) : Buffer.alloc(0) };
}

describe('extraction from a compressed dump set equals extraction from the plain one', () => {
  let plainA: string, lz4A: string, times: bigint[];
  let plainBig: string, lz4Big: string, bigTimes: bigint[];
  const RARE = '10.99.99.99';
  before(async () => {
    plainA = fresh('a-plain');
    lz4A = fresh('a-lz4');
    const captures = SET_A.map((c) => fixture(c).path);
    assert.ok((await record(plainA, captures, ['-N', '150'])).every((c) => c === 0));
    assert.ok((await record(lz4A, captures, ['-N', '150', '-M'])).every((c) => c === 0));
    times = dumpSetRecords(plainA).map((r) => r.tsNs).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    // Files of several frames each, a rare host among them.
    const big = path.join(work, 'big.pcap');
    generatePcap(big, { bytes: 24 << 20, seconds: 60, startSec: 1_790_000_000, rareHost: RARE, rarePackets: 12, seed: 6 });
    plainBig = fresh('big-plain');
    lz4Big = fresh('big-lz4');
    assert.deepEqual(await record(plainBig, [big], ['-p', '8']), [0]);
    assert.deepEqual(await record(lz4Big, [big], ['-p', '8', '-M']), [0]);
    bigTimes = dumpSetRecords(plainBig).map((r) => r.tsNs);
  });
  const tl = (dir: string): string => path.join(dir, 'timeline');

  for (const filter of EXTRACT_FILTERS) {
    test(`filter '${filter}' over several time ranges`, async () => {
      for (const [what, b, e] of testRanges(times)) {
        const args = ['-b', timeArg(b), '-e', timeArg(e), '-f', filter];
        const plain = await extractBytes(['-t', tl(plainA), ...args]);
        const packed = await extractBytes(['-t', tl(lz4A), ...args]);
        assert.equal(packed.code, 0, `${what}: ${packed.stderr}`);
        assert.equal(packed.stderr, '', what);
        assert.ok(packed.bytes.equals(plain.bytes), `${what}: differs from the plain dump set's`);
        const records = packed.bytes.length ? parsePcap(packed.bytes).records : [];
        assertSameRecords(records, await expectedExtraction([plainA], filter, b, e));
      }
    });
  }

  test('a rare host decodes only the frames that hold it; a time slice only those in range', async () => {
    const frames = listStorageFiles(lz4Big).reduce((n, f) => n + readIndexFile(indexPathOf(f)).chunks!.plain.length - 1, 0);
    assert.ok(frames >= 12, `${frames} frames`);
    const q = (f: number): bigint => bigTimes[Math.floor(f * (bigTimes.length - 1))]!;
    for (const [filter, b, e] of [[`host ${RARE}`, 0n, q(1) + 1n], ['', q(0.4), q(0.45)], ['tcp port 443', q(0.2), q(0.3)]] as const) {
      const args = ['-b', timeArg(b), '-e', timeArg(e), '-f', filter, '--explain'];
      const plain = await extractBytes(['-t', tl(plainBig), ...args]);
      const packed = await extractBytes(['-t', tl(lz4Big), ...args]);
      assert.equal(packed.code, 0, packed.stderr);
      assert.ok(packed.bytes.length > 24 && packed.bytes.equals(plain.bytes), filter);
      const m = /frames to decompress (\d+) of (\d+)/.exec(packed.stderr);
      const done = /decompressed (\d+) frames/.exec(packed.stderr);
      assert.ok(m && done, packed.stderr);
      assert.equal(Number(m[2]), frames);
      assert.ok(Number(done[1]) <= Number(m[1]) && Number(m[1]) < frames / 2, `${filter}: ${m[0]}, ${done[0]}`);
    }
  });

  test('--flows, -l, --bundle and -s give what they give on the plain dump set', async () => {
    const all = ['-b', '0', '-e', 'now'];
    for (const extra of [['--flows', '-j', '-f', 'udp port 53'], ['--flows', '-f', 'tcp[tcpflags] & tcp-syn != 0']]) {
      const plain = await runTool('npcapextract', ['-t', tl(plainA), ...all, ...extra]);
      const packed = await runTool('npcapextract', ['-t', tl(lz4A), ...all, ...extra]);
      assert.equal(packed.code, 0, packed.stderr);
      assert.ok(packed.stdout.length > 0);
      assert.equal(packed.stdout, plain.stdout);
    }
    const listed = await runTool('npcapextract', ['-t', tl(lz4A), ...all, '-l']);
    assert.deepEqual(listed.stdout.trim().split('\n').sort(), publishedFiles(lz4A).map((f) => fs.realpathSync(f)).sort());
    assert.ok(listed.stdout.trim().split('\n').every((f) => f.endsWith('.pcap.lz4')));
    const cut = await extractBytes(['-t', tl(lz4A), ...all, '-s', '60', '-f', 'tcp']);
    assert.ok(cut.bytes.equals((await extractBytes(['-t', tl(plainA), ...all, '-s', '60', '-f', 'tcp'])).bytes));
    const bundles = await Promise.all([plainA, lz4A].map(async (dir) => {
      const tar = fresh('bundle') + '.tar';
      const r = await runTool('npcapextract', ['-t', tl(dir), ...all, '-f', 'udp', '--bundle', tar]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await runTool('npcapextract', ['--verify', tar])).code, 0);
      // The captures are named after their timelines: their digests must agree.
      return execFileSync('tar', ['-xOf', tar, 'SHA256SUMS'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]);
    }));
    assert.deepEqual(bundles[1], bundles[0]);
  });

  test('without its index a compressed file is scanned frame after frame, with a warning', async () => {
    const dir = fresh('noindex');
    fs.cpSync(lz4A, dir, { recursive: true, verbatimSymlinks: true });
    const victim = publishedFiles(dir)[1]!;
    fs.rmSync(indexPathOf(victim));
    for (const filter of ['', 'host 192.168.2.17']) {
      const plain = await extractBytes(['-t', tl(plainA), '-b', '0', '-e', 'now', '-f', filter]);
      const packed = await extractBytes(['-t', tl(dir), '-b', '0', '-e', 'now', '-f', filter]);
      assert.equal(packed.code, 0, packed.stderr);
      assert.match(packed.stderr, /warning: .*scanning/);
      assert.ok(packed.bytes.equals(plain.bytes), filter);
    }
  });

  test('a corrupt or truncated .lz4: one line and exit 1 from npcapdecompress and npcapextract, nothing wrong written', async () => {
    const file = publishedFiles(lz4Big)[0]!;
    const bytes = fs.readFileSync(file);
    const chunks = readIndexFile(indexPathOf(file)).chunks!;
    const flipped = Buffer.from(bytes);
    flipped[chunks.packed[2]! + 100] ^= 0xff;
    const damaged: [string, Buffer][] = [
      ['a flipped byte in a frame', flipped],
      ['cut short', bytes.subarray(0, chunks.packed[3]! + 50)],
      ['not LZ4', Buffer.alloc(4096, 7)],
    ];
    for (const [what, b] of damaged) {
      const dir = fresh('damaged');
      fs.cpSync(lz4Big, dir, { recursive: true, verbatimSymlinks: true });
      const victim = path.join(dir, path.relative(lz4Big, file));
      fs.writeFileSync(victim, b);
      const out = fresh('restored');
      const r = await runTool('npcapdecompress', ['-i', victim, '-o', out]);
      assert.equal(r.code, 1, `${what}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^npcapdecompress: .*frame at byte \d+/);
      assert.equal(fs.existsSync(out), false, what);
      assert.deepEqual(fs.readdirSync(path.dirname(out)).filter((n) => n.startsWith(path.basename(out))), []);
      // Everything: the damaged frame is needed, so extraction stops with one line.
      const x = await extractBytes(['-t', tl(dir), '-b', '0', '-e', 'now']);
      assert.equal(x.code, 1, `${what}: ${x.stderr}`);
      assert.match(x.stderr, /^npcapextract: .*\.pcap\.lz4: frame at byte \d+: /);
      assert.equal(x.stderr.trim().split('\n').length, 1, x.stderr);
      // The packets it did write are the plain dump set's, in order: never a damaged one.
      const good = (await extractBytes(['-t', tl(plainBig), '-b', '0', '-e', 'now'])).bytes;
      assert.ok(good.subarray(0, x.bytes.length).equals(x.bytes), `${what}: wrote bytes the plain dump set does not hold`);
    }
  });
});

describe('the disk limit counts compressed files', () => {
  test('what does not fit plain fits compressed, and the limit holds while both forms exist', async () => {
    const source = path.join(work, 'limit.pcap');
    generatePcap(source, { bytes: 24 << 20, seconds: 60, startSec: 1_790_200_000, rareHost: '10.77.77.77', rarePackets: 4, seed: 11 });
    const LIMIT = 16 * 2 ** 20;
    const runs: Record<string, { stderr: string; peak: number; kept: number }> = {};
    for (const [kind, extra] of [['plain', []], ['lz4', ['-M']]] as const) {
      const dir = fresh(`limit-${kind}`);
      const child = spawn(process.execPath, [bin('n2disk-ts'), '-i', source, '-o', dir, '-p', '2', '--disk-limit', '16', '-v', ...extra]);
      children.push(child);
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      let peak = 0;
      const timer = setInterval(() => (peak = Math.max(peak, fs.existsSync(dir) ? treeBytes(dir) : 0)), 5);
      const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
      clearInterval(timer);
      assert.equal(code, 0, stderr);
      peak = Math.max(peak, treeBytes(dir));
      const got = await extractBytes(['-t', path.join(dir, 'timeline'), '-b', '0', '-e', 'now']);
      runs[kind] = { stderr, peak, kept: parsePcap(got.bytes).records.length };
    }
    const all = readPcap(source).records.length;
    assert.match(runs.plain!.stderr, /deleted .* \(disk limit\)/);
    assert.ok(runs.plain!.kept < all, 'plain: the oldest files went');
    assert.doesNotMatch(runs.lz4!.stderr, /deleted|left uncompressed/);
    assert.equal(runs.lz4!.kept, all, 'compressed: every packet kept');
    for (const [kind, r] of Object.entries(runs)) assert.ok(r.peak <= LIMIT, `${kind}: peak ${r.peak} > limit ${LIMIT}`);
  });
});

describe('a crash at any step of a compression loses nothing', () => {
  /** The steps of recorder/compressor.ts, stopped after `steps` of them (4: done). */
  function compressUpTo(dumpSet: DumpSet, plain: string, steps: number): void {
    const index = readIndexFile(indexPathOf(plain));
    const tmp = plain + COMPRESSING_SUFFIX;
    const chunks = compressPcap(plain, tmp, frameBoundaries(index));
    if (steps < 2) return;
    writeIndexWithChunks(indexPathOf(plain), chunks);
    if (steps < 3) return;
    fs.renameSync(tmp, plain + '.lz4');
    if (steps < 4) return;
    dumpSet.link(plain + '.lz4', spanOf(index)!.minNs, spanOf(index)!.maxNs);
  }

  for (const steps of [1, 2, 3, 4]) {
    test(`stopped after step ${steps}: npcaprepair leaves one whole file of each, every packet extractable`, async () => {
      const dir = fresh(`steps${steps}`);
      assert.deepEqual(await record(dir, SET_A.slice(0, 3).map((c) => fixture(c).path), ['-N', '150']), [0, 0, 0]);
      const expected = await expectedExtraction([dir], '', 0n, 1n << 62n);
      const dumpSet = new DumpSet(dir, path.join(dir, 'timeline'), 100, false);
      for (const f of publishedFiles(dir)) compressUpTo(dumpSet, f, steps);
      const repair = await runTool('npcaprepair', [dir, path.join(dir, 'timeline')]);
      assert.equal(repair.code, 0, repair.stdout + repair.stderr);
      assert.match(repair.stdout, steps < 3 ? /removed .*\.lz4\.tmp \(unfinished compression/ : /finished compressing/);
      assert.equal((await runTool('npcaprepair', [dir, path.join(dir, 'timeline'), '-d'])).stdout, '', 'a second run finds nothing');
      const files = publishedFiles(dir);
      assert.ok(files.every((f) => f.endsWith(steps < 3 ? '.pcap' : '.pcap.lz4')), files.join(' '));
      for (const f of files) {
        const check = await runTool('npcapprintindex', ['-i', indexPathOf(f), '-c']);
        assert.equal(check.code, 0, check.stderr);
      }
      const got = await extractBytes(['-t', path.join(dir, 'timeline'), '-b', '0', '-e', 'now']);
      assertSameRecords(parsePcap(got.bytes).records, expected);
    });
  }

  test('kill -9 while the recorder compresses, a restart and npcaprepair: every packet published before is there', async () => {
    const big = path.join(work, 'kill.pcap');
    generatePcap(big, { bytes: 48 << 20, seconds: 120, startSec: 1_790_100_000, rareHost: '10.88.88.88', rarePackets: 5, seed: 9 });
    const input = readPcap(big).records;
    let caught = 0;
    for (let attempt = 0; attempt < 6 && caught < 2; attempt++) {
      const dir = fresh('kill');
      const child = spawn(process.execPath, [bin('n2disk-ts'), '-i', big, '-o', dir, '-p', '2', '-M'], { stdio: 'ignore' });
      children.push(child);
      const exited = new Promise((r) => child.once('exit', r));
      // Killed at the first moment a compressed file is being written.
      let during = false;
      for (const until = Date.now() + 20_000; Date.now() < until && child.exitCode === null;) {
        const d = path.join(dir, '0');
        if (fs.existsSync(d) && fs.readdirSync(d).some((n) => n.endsWith(COMPRESSING_SUFFIX))) {
          if (attempt % 2) await new Promise((r) => setTimeout(r, 3 + attempt));
          child.kill('SIGKILL');
          during = true;
          break;
        }
        await new Promise((r) => setImmediate(r));
      }
      await exited;
      if (!during) continue;
      // What was published when it died: every file whose index was in place.
      const published = fs.readdirSync(path.join(dir, '0')).filter((n) => n.endsWith('.pcap.idx'));
      const before = published.reduce((n, idx) => n + readIndexFile(path.join(dir, '0', idx)).packets, 0);
      const left = fs.readdirSync(path.join(dir, '0')).filter((n) => n.endsWith(COMPRESSING_SUFFIX));
      if (left.length) caught++;
      // The restart recovers at start-up, then npcaprepair finds the rest.
      const restart = await runTool('n2disk-ts', ['-i', fixture('WebattackRCE.pcap').path, '-o', dir, '-M']);
      assert.equal(restart.code, 0, restart.stderr);
      const repair = await runTool('npcaprepair', [dir, path.join(dir, 'timeline'), '-d']);
      assert.equal(repair.code, 0, repair.stdout);
      for (const f of publishedFiles(dir)) {
        const check = await runTool('npcapprintindex', ['-i', indexPathOf(f), '-c']);
        assert.equal(check.code, 0, `${f}: ${check.stderr}`);
      }
      const range = ['-b', timeArg(input[0]!.tsNs), '-e', timeArg(input[input.length - 1]!.tsNs + 1n)];
      const got = parsePcap((await extractBytes(['-t', path.join(dir, 'timeline'), ...range])).bytes).records;
      assert.ok(got.length >= before, `${got.length} packets extractable, ${before} were published`);
      assertSameRecords(got, input.slice(0, got.length));
      fs.rmSync(dir, { recursive: true });
    }
    assert.ok(caught >= 1, 'no kill landed while a compressed file was being written');
  });
});
