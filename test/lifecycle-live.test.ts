// Dump set lifecycle under live capture (root): kill -9 at random moments,
// a small file system wrapped several times under --disk-limit 50%, and a
// file system filled by someone else. Traffic is a fixture replayed in a
// loop, so what is stored can be checked frame by frame against it.
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { treeBytes } from '../recorder/disk-budget';
import { fixture } from './helpers/corpus';
import { expectedExtraction } from './helpers/extraction';
import { createNetnsPair, exitOf, NetnsEnv } from './helpers/netns';
import { assertSameRecords, PcapRecord, readPcap } from './helpers/pcap-compare';
import { bin, collectStderr, dumpSetRecords, publishedFiles, runTool, tempDir, waitForFile } from './helpers/recorder';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'skipped: needs root (network namespaces, veth, packet capture, mounts)';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// 797 frames, all different: a stored frame says where in the loop it was sent.
const SOURCE = fixture('WebattackRCE.pcap').path;

describe('dump set lifecycle under live capture (root)', { skip }, () => {
  let env: NetnsEnv;
  const work = tempDir('lifecycle-live');
  const mounts: string[] = [];
  const sourceFrames = new Map<string, number>();

  before(async () => {
    env = await createNetnsPair();
    readPcap(SOURCE).records.forEach((r, i) => sourceFrames.set(r.data.toString('hex'), i));
  });
  after(async () => {
    await env?.cleanup();
    for (const m of mounts.reverse()) execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    fs.rmSync(work, { recursive: true, force: true });
  });

  /** Replays the fixture in a loop until the returned process is killed. */
  function loopReplay(mbps: number): ChildProcess {
    return env.spawn(env.nsA, 'tcpreplay', ['-i', env.ifA, `--mbps=${mbps}`, '--loop=0', SOURCE]);
  }

  async function stopReplay(p: ChildProcess): Promise<void> {
    p.kill('SIGINT');
    await exitOf(p);
    await sleep(300); // the ring's last block
  }

  let runs = 0;
  async function startRecorder(storage: string, extra: string[]) {
    const pidFile = path.join(work, `${runs++}.pid`);
    const started = Date.now();
    const child = env.spawn(env.nsB, process.execPath, [bin('n2disk-ts'), '-i', env.ifB, '-o', storage, '-P', pidFile, ...extra]);
    const stderr = collectStderr(child);
    await waitForFile(pidFile, 20_000);
    return { child, stderr, pidFile, startMs: Date.now() - started };
  }

  /** A file system of a fixed size: ext4 on a loop device, or tmpfs where loop devices are missing. */
  function smallFs(mb: number): string {
    const dir = fs.mkdtempSync(path.join(work, 'fs-'));
    const image = `${dir}.img`;
    try {
      execFileSync('truncate', ['-s', `${mb}M`, image]);
      execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', image], { stdio: 'pipe' });
      execFileSync('mount', ['-o', 'loop', image, dir], { stdio: 'pipe' });
    } catch {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir]);
    }
    mounts.push(dir);
    return dir;
  }

  /** Stored frames must be the source's frames, one after the other, as sent: nothing lost in what is kept. */
  function assertContiguous(records: PcapRecord[]): void {
    let prev = -1;
    records.forEach((r, i) => {
      const at = sourceFrames.get(r.data.toString('hex'));
      assert.ok(at !== undefined, `stored frame ${i} was never sent`);
      if (prev >= 0) assert.equal(at, (prev + 1) % sourceFrames.size, `frame ${i} does not follow frame ${i - 1}: a gap`);
      prev = at;
    });
  }

  /** A command-line time for an instant in ns, without float rounding. */
  const timeArg = (ns: bigint): string => `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}`;
  const sha = (f: string): string => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

  test('20 kill -9 at random moments lose nothing that was published', async (t) => {
    const storage = path.join(work, 'killed');
    const replayer = loopReplay(8);
    const published = new Map<string, string>();
    const starts: number[] = [];
    let recovered = 0;
    try {
      const parts = (): string[] => (fs.existsSync(storage) ? fs.readdirSync(storage).filter((n) => n.endsWith('.pcap.part')) : []);
      for (let i = 0; i < 20; i++) {
        const stale = new Set(parts()); // left by the previous kill, for this start to recover
        const rec = await startRecorder(storage, ['-p', '1', '-t', '1']);
        starts.push(rec.startMs);
        // Killed while writing: once recovery is done and a file is open, at a random moment.
        const writing = Date.now();
        while (!parts().some((n) => !stale.has(n)) && Date.now() - writing < 10_000) await sleep(10);
        await sleep(100 + Math.random() * 1200);
        // Everything published before any earlier kill is still there, unchanged.
        for (const [file, digest] of published) assert.equal(sha(file), digest, `${file} changed after a kill and a restart`);
        for (const f of publishedFiles(storage)) {
          if (fs.existsSync(f + '.idx') && !published.has(f)) published.set(f, sha(f));
        }
        rec.child.kill('SIGKILL');
        await exitOf(rec.child);
        recovered += parts().length;
      }
      const last = await startRecorder(storage, ['-p', '1', '-t', '1']);
      await sleep(1000);
      last.child.kill('SIGTERM');
      assert.equal(await exitOf(last.child), 0, last.stderr());
    } finally {
      replayer.kill('SIGINT');
    }
    for (const [file, digest] of published) assert.equal(sha(file), digest, `${file} changed`);
    // A file exists on disk from its first write (a full chunk, or the 500 ms
    // flush) to its publication; with -t 1 that is most of each second.
    assert.ok(recovered >= 8, `only ${recovered} kills left a file unfinished`);
    assert.deepEqual(fs.readdirSync(storage).filter((f) => f.includes('.part')), []);
    for (const f of publishedFiles(storage)) {
      const check = await runTool('npcapprintindex', ['-c', '-i', f + '.idx']);
      assert.equal(check.code, 0, `${f}: ${check.stdout}`);
      for (const r of readPcap(f).records) assert.ok(sourceFrames.has(r.data.toString('hex')), `${f}: a frame that was never sent`);
    }
    const timeline = path.join(storage, 'timeline');
    await runTool('npcaprepair', [storage, timeline]);
    const second = await runTool('npcaprepair', [storage, timeline]);
    assert.deepEqual([second.code, second.stdout], [0, ''], 'a second repair finds nothing');
    starts.sort((a, b) => a - b);
    t.diagnostic(`${recovered} files left unfinished by the kills, all recovered; start to capturing: median ${starts[10]} ms, max ${starts[starts.length - 1]} ms`);
  });

  test('a 64 MB file system wrapped several times never holds more than --disk-limit 50%', async (t) => {
    const mnt = smallFs(64);
    const storage = path.join(mnt, 'dump');
    const st = fs.statfsSync(mnt);
    const limit = Math.floor((st.blocks * st.bsize) / 2);
    const rec = await startRecorder(storage, ['-p', '2', '--disk-limit', '50%', '-v']);
    const replayer = loopReplay(40);
    let peak = 0;
    let samples = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, treeBytes(storage));
      samples++;
    }, 100);
    const seen = new Set<string>();
    const watcher = setInterval(() => publishedFiles(storage).forEach((f) => seen.add(f)), 200);
    try {
      await sleep(25_000);
    } finally {
      await stopReplay(replayer);
      clearInterval(sampler);
      clearInterval(watcher);
    }
    rec.child.kill('SIGTERM');
    assert.equal(await exitOf(rec.child), 0, rec.stderr());
    const kept = publishedFiles(storage);
    const written = seen.size * 2 * 2 ** 20;
    t.diagnostic(`limit ${limit} bytes; peak ${peak} bytes over ${samples} samples (overshoot ${Math.max(0, peak - limit)}); ${seen.size} files published, ${kept.length} kept`);
    assert.ok(peak <= limit, `peak ${peak} > limit ${limit}`);
    assert.ok(written > 3 * limit, `the file system was wrapped (${seen.size} files of about 2 MB)`);
    assert.doesNotMatch(rec.stderr(), /kernel dropped/);
    const records = dumpSetRecords(storage);
    assertContiguous(records);
    // The newest seconds, extracted, are exactly what tcpdump reads from the files.
    const lastNs = records[records.length - 1]!.tsNs;
    const beginNs = lastNs - 5_000_000_000n;
    const out = path.join(work, 'newest.pcap');
    const r = await runTool('npcapextract', ['-t', path.join(storage, 'timeline'), '-b', timeArg(beginNs), '-e', timeArg(lastNs + 1n), '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    const extracted = readPcap(out).records;
    assertSameRecords(extracted, await expectedExtraction([storage], '', beginNs, lastNs + 1n));
    assert.ok(extracted.length > 10_000, `${extracted.length} packets in the newest 5 s`);
  });

  test('a file system filled by someone else: our oldest files go, recording goes on, and a restart copes', async () => {
    const mnt = smallFs(48);
    const storage = path.join(mnt, 'dump');
    let rec = await startRecorder(storage, ['-p', '1', '--disk-limit', '90%']);
    let replayer = loopReplay(16);
    await sleep(3000);
    // Leave about 4 MB free: far less than the limit allows us.
    const free = fs.statfsSync(mnt).bavail * fs.statfsSync(mnt).bsize;
    const foreign = path.join(mnt, 'foreign.bin');
    execFileSync('fallocate', ['-l', String(free - 4 * 2 ** 20), foreign]);
    await sleep(6000);
    // The writer, or the index written beside it, meets the full disk first.
    assert.match(rec.stderr(), /file system full writing .*: deleting the oldest files/);
    assert.equal(rec.child.exitCode, null, 'still running');
    // A restart while the disk is still full of someone else's data.
    rec.child.kill('SIGTERM');
    assert.equal(await exitOf(rec.child), 0, rec.stderr());
    const whileFull = publishedFiles(storage);
    rec = await startRecorder(storage, ['-p', '1', '--disk-limit', '90%']);
    await sleep(3000);
    assert.equal(rec.child.exitCode, null, 'running after a restart on a full disk');
    fs.rmSync(foreign);
    await sleep(3000);
    await stopReplay(replayer);
    replayer = loopReplay(16); // a second burst once space is back
    await sleep(1500);
    await stopReplay(replayer);
    rec.child.kill('SIGTERM');
    assert.equal(await exitOf(rec.child).catch((e: Error) => e.message + rec.stderr()), 0, rec.stderr());
    const after = publishedFiles(storage);
    assert.ok(after.some((f) => !whileFull.includes(f)), 'files are published after the restart');
    assert.deepEqual(fs.readdirSync(storage).filter((f) => f.includes('.part')), []);
    for (const f of after) {
      const check = await runTool('npcapprintindex', ['-c', '-i', f + '.idx']);
      assert.equal(check.code, 0, `${f}: ${check.stdout}`);
      for (const r of readPcap(f).records) assert.ok(sourceFrames.has(r.data.toString('hex')));
    }
  });
});
