// Running as a service: systemd accepts the units without a single warning,
// the recorder's unit is confined, and the install works into a temporary root.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fixture, repoRoot } from './helpers/corpus';
import { bin, tempDir } from './helpers/recorder';

const work = tempDir('service');
after(() => fs.rmSync(work, { recursive: true, force: true }));
const unitsDir = path.join(repoRoot, 'systemd');
const units = fs.readdirSync(unitsDir).filter((f) => f.endsWith('.service'));
const isRoot = process.getuid?.() === 0;

/** systemd-analyze verify says nothing about a unit it fully accepts (it only warns, with status 0, about bad keys). */
function verify(unitFile: string): void {
  const r = spawnSync('systemd-analyze', ['verify', unitFile], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', `${path.basename(unitFile)}: ${r.stderr}`);
}

for (const unit of units) {
  test(`systemd-analyze verify accepts ${unit}`, () => verify(path.join(unitsDir, unit)));
}

test('the recorder runs as n2disk with only the three capabilities capture needs, and is confined', () => {
  const text = fs.readFileSync(path.join(unitsDir, 'n2disk-ts@.service'), 'utf8');
  const setting = (key: string): string | undefined => new RegExp(`^${key}=(.*)$`, 'm').exec(text)?.[1];
  assert.equal(setting('User'), 'n2disk');
  assert.equal(setting('CapabilityBoundingSet'), 'CAP_NET_RAW CAP_NET_ADMIN CAP_IPC_LOCK');
  assert.equal(setting('AmbientCapabilities'), 'CAP_NET_RAW CAP_NET_ADMIN CAP_IPC_LOCK');
  assert.equal(setting('ProtectSystem'), 'strict');
  assert.equal(setting('NoNewPrivileges'), 'yes');
  assert.equal(setting('Restart'), 'on-failure');
  assert.match(setting('ExecStart') ?? '', /--config \/etc\/n2disk-ts\/n2disk-%i\.conf/);
  // An instance, as systemd would run it, scored by systemd's own review (0 best, 10 worst).
  const instance = path.join(work, 'n2disk-ts@eth1.service');
  fs.copyFileSync(path.join(unitsDir, 'n2disk-ts@.service'), instance);
  const out = execFileSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', instance], { encoding: 'utf8' });
  const score = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(out)?.[1]);
  assert.ok(score <= 2.5, `exposure ${score}:\n${out}`);
});

test('make install DESTDIR=...: the program, units, user, group and directories in a temporary root (root)', { skip: isRoot ? false : 'skipped: needs root (chown to the new user)' }, () => {
  const root = path.join(work, 'root');
  const realAccounts = ['/etc/passwd', '/etc/group'].map((f) => fs.readFileSync(f, 'utf8'));
  execFileSync('make', ['-s', 'install', `DESTDIR=${root}`], { cwd: repoRoot, stdio: 'pipe' });
  const passwd = fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8');
  const user = /^n2disk:x:(\d+):(\d+):[^:]*:\/var\/lib\/n2disk-ts:\/usr\/sbin\/nologin$/m.exec(passwd);
  assert.ok(user, passwd);
  assert.match(fs.readFileSync(path.join(root, 'etc/group'), 'utf8'), new RegExp(`^n2disk:x:${user[2]}:`, 'm'));
  const owner = (p: string): [number, number, number] => {
    const st = fs.statSync(path.join(root, p));
    return [st.uid, st.gid, st.mode & 0o777];
  };
  assert.deepEqual(owner('var/lib/n2disk-ts'), [Number(user[1]), Number(user[2]), 0o750]);
  // npcapextract, run by any user, reads extract.conf there.
  assert.deepEqual(owner('etc/n2disk-ts'), [0, 0, 0o755]);
  for (const f of ['etc/n2disk-ts/n2disk-ts.conf.example', 'etc/n2disk-ts/extract.conf', 'etc/pam.d/npcapextract']) {
    assert.ok(fs.existsSync(path.join(root, f)), f);
  }
  for (const unit of units) verify(path.join(root, 'etc/systemd/system', unit));
  assert.deepEqual(['/etc/passwd', '/etc/group'].map((f) => fs.readFileSync(f, 'utf8')), realAccounts, "the real system's accounts are untouched");
  // The installed copy runs on its own: an import from a fixture, with its runtime dependencies only.
  const app = path.join(root, 'opt/n2disk-ts');
  assert.ok(!fs.existsSync(path.join(app, 'node_modules/typescript')), 'no development dependencies');
  const out = path.join(work, 'installed-run');
  const run = spawnSync(process.execPath, [path.join(app, 'bin/n2disk-ts.js'), '-i', fixture('dns_exfiltration.pcap').path, '-o', out], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
});

/** Runs the recorder with stderr going to a file that JOURNAL_STREAM names, as systemd connects it to the journal. */
function runUnderJournal(args: string[]): { status: number | null; lines: string[] } {
  const logFile = path.join(work, `journal-${args.length}.log`);
  const fd = fs.openSync(logFile, 'w');
  try {
    const st = fs.fstatSync(fd);
    const r = spawnSync(process.execPath, [bin('n2disk-ts'), ...args], { stdio: ['ignore', 'ignore', fd], env: { ...process.env, JOURNAL_STREAM: `${st.dev}:${st.ino}` } });
    return { status: r.status, lines: fs.readFileSync(logFile, 'utf8').split('\n').filter(Boolean) };
  } finally {
    fs.closeSync(fd);
  }
}

test('under journald every line carries its syslog level; an expected error is one line without a stack', () => {
  const failed = runUnderJournal(['-i', path.join(work, 'missing.pcap'), '-o', path.join(work, 'j1')]);
  assert.equal(failed.status, 3);
  assert.equal(failed.lines.length, 1, failed.lines.join('\n'));
  assert.match(failed.lines[0]!, /^<3>\S.*missing\.pcap/);
  const verbose = runUnderJournal(['-i', fixture('dns_exfiltration.pcap').path, '-o', path.join(work, 'j2'), '-v']);
  assert.equal(verbose.status, 0, verbose.lines.join('\n'));
  for (const line of verbose.lines) assert.match(line, /^<[3-6]>[^<]/);
  assert.ok(verbose.lines.some((l) => /^<6>published /.test(l)), verbose.lines.join('\n'));
});
