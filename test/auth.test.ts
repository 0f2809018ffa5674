// Authenticated extraction through npcapextractd, with a real PAM stack
// (libpam-wrapper and pam_matrix: no system account is touched): who gets
// packets, that every failure looks the same and reads nothing, the audit
// trail, and that an ordinary user gets through the service exactly what a
// direct extraction gives while the dump set's files stay closed to them.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../extract/config';
import { fixture, repoRoot } from './helpers/corpus';
import { expectedExtraction } from './helpers/extraction';
import { isRoot, skipUnlessRoot } from './helpers/netns';
import { assertSameRecords, parsePcap } from './helpers/pcap-compare';
import { bin, publishedFiles, runTool, tempDir } from './helpers/recorder';
import { auditRecords, RunningService, runExtract, startService, writeConf, writePamService } from './helpers/service';

const FAILED = 'npcapextract: authentication failed\n';
const NO_CONF = { NPCAPEXTRACT_CONF: '/nonexistent/extract.conf' };
/** The longest password the service accepts (authenticate-pam's buffers hold 127 bytes). */
const P127 = 'p'.repeat(120) + 'q'.repeat(7);
const me = os.userInfo().username;
const myGroup = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function recordDumpSet(dir: string, capture: string): Promise<string> {
  const r = await runTool('n2disk-ts', ['-i', fixture(capture).path, '-o', dir, '-N', '150']);
  assert.equal(r.code, 0, r.stderr);
  return path.join(dir, 'timeline');
}

describe('authenticated extraction (PAM through libpam-wrapper)', () => {
  const work = tempDir('auth');
  const conf = path.join(work, 'extract.conf');
  const socket = path.join(work, 'npcapextractd.sock');
  const audit = path.join(work, 'audit.log');
  let storage: string;
  let timeline: string;
  let service: RunningService;
  let pamServices: string;
  const users = { alice: 'secret', bob: 'hunter2', carol: P127, [me]: 'groupmate' };

  before(async () => {
    storage = path.join(work, 'eth1');
    timeline = await recordDumpSet(storage, 'android.pcap');
    pamServices = writePamService(work, users);
    writeConf(conf, { socket, audit, timelines: [timeline], users: ['alice', 'carol'], groups: [myGroup] });
    service = await startService({ conf, socket, pamServices });
  });
  after(async () => {
    await service?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const viaService = (user: string, password: string, args: string[]): ReturnType<typeof runExtract> =>
    runExtract(['--user', user, '--password-fd', '0', ...args], { env: { NPCAPEXTRACT_CONF: conf }, stdin: password });

  test('a listed user gets exactly what a direct extraction gives, and both lines are in the audit log', async () => {
    const query = ['-t', timeline, '-b', '0', '-e', 'now', '-f', 'tcp or udp port 53'];
    const direct = path.join(work, 'direct.pcap');
    const d = await runExtract([...query, '-o', direct], { env: NO_CONF });
    assert.equal(d.code, 0, d.stderr);
    const before = auditRecords(audit).length;
    const r = await viaService('alice', 'secret\n', [...query, '-o', '-']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.length > 24);
    assert.ok(r.stdout.equals(fs.readFileSync(direct)), 'same bytes as the direct extraction');
    assertSameRecords(parsePcap(r.stdout).records, await expectedExtraction([storage], 'tcp or udp port 53', 0n, 1n << 62n));

    const [attempt, extraction, ...rest] = auditRecords(audit).slice(before);
    assert.equal(rest.length, 0);
    assert.equal(attempt!.event, 'auth');
    assert.equal(attempt!.outcome, 'ok');
    assert.equal(attempt!.user, 'alice');
    assert.deepEqual((attempt!.peer as { uid: number }).uid, process.getuid!());
    assert.ok(typeof attempt!.time === 'string' && !Number.isNaN(Date.parse(attempt!.time)));
    assert.equal(extraction!.event, 'extract');
    assert.equal(extraction!.outcome, 'ok');
    assert.equal(extraction!.filter, 'tcp or udp port 53');
    assert.deepEqual(extraction!.timelines, [timeline]);
    assert.equal(extraction!.packets, parsePcap(r.stdout).records.length);
    assert.equal(extraction!.sent, r.stdout.length);
    assert.equal(extraction!.sha256, sha256(r.stdout));
    assert.ok((extraction!.files as string[]).length > 0);
    assert.ok((extraction!.files as string[]).every((f) => publishedFiles(storage).includes(f)));
    assert.ok(typeof (extraction!.range as { begin: string }).begin === 'string');
  });

  test('a member of a configured group is authorized; the longest accepted password works', async () => {
    for (const [user, password] of [[me, 'groupmate'], ['carol', P127]] as const) {
      const r = await viaService(user, `${password}\n`, ['-t', timeline, '-b', '0', '-e', 'now', '-l']);
      assert.equal(r.code, 0, `${user}: ${r.stderr}`);
      assert.ok(r.stdout.toString().trim().split('\n').length > 0);
    }
  });

  test('every failure: the same one line, exit 7, no data, no packet file opened, each attempt audited', async (t) => {
    // A service of its own under strace, so that every file it opens is on record.
    const traced = path.join(work, 'traced');
    fs.mkdirSync(traced);
    const tSocket = path.join(traced, 'sock');
    const tConf = path.join(traced, 'extract.conf');
    const tAudit = path.join(traced, 'audit.log');
    const trace = path.join(traced, 'strace.log');
    writeConf(tConf, { socket: tSocket, audit: tAudit, timelines: [timeline], users: ['alice', 'carol'], groups: [myGroup] });
    const svc = await startService({ conf: tConf, socket: tSocket, pamServices, straceLog: trace });
    t.after(() => svc.stop());

    const cases: [string, string, string][] = [
      ['wrong password', 'alice', 'wrong\n'],
      ['unknown user', 'mallory', 'secret\n'],
      ['user in no configured group and not listed', 'bob', 'hunter2\n'],
      ['empty password', 'alice', '\n'],
      ['nothing on the descriptor', 'alice', ''],
      ['100 KB password that starts with the right one', 'alice', 'secret' + 'x'.repeat(100_000) + '\n'],
      ['the right 127-byte password and more after it', 'carol', P127 + 'extra\n'],
      ['the right password, a NUL, and more', 'alice', 'secret\0more\n'],
      ['10 KB user name', 'a'.repeat(10_000), 'secret\n'],
      ['user name with a newline', 'alice\nroot', 'secret\n'],
    ];
    const out = path.join(traced, 'out.pcap');
    for (const [what, user, password] of cases) {
      const r = await runExtract(['--user', user, '--password-fd', '0', '-t', timeline, '-b', '0', '-e', 'now', '-o', out], { env: { NPCAPEXTRACT_CONF: tConf }, stdin: password });
      assert.equal(r.code, 7, `${what}: ${r.stderr}`);
      assert.equal(r.stderr, FAILED, what);
      assert.equal(r.stdout.length, 0, what);
      assert.equal(fs.existsSync(out), false, `${what}: no output file`);
    }
    // Requests that are not even well formed are refused alike: not JSON, and a frame announcing 2 GB.
    const rawAttempts = [Buffer.concat([Buffer.from([0x51, 0, 0, 0, 8]), Buffer.from('not json')]), Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff])];
    for (const bytes of rawAttempts) {
      const answer = await new Promise<Buffer>((resolve, reject) => {
        const c = net.createConnection(tSocket, () => c.end(bytes));
        const parts: Buffer[] = [];
        c.on('data', (d: Buffer) => parts.push(d)).on('end', () => resolve(Buffer.concat(parts))).on('error', reject);
      });
      assert.ok(answer.includes(Buffer.from(FAILED)));
    }
    await svc.stop();

    const records = auditRecords(tAudit);
    assert.equal(records.length, cases.length + rawAttempts.length, 'one line per attempt, no extraction');
    assert.ok(records.every((r) => r.event === 'auth' && r.outcome === 'denied' && typeof r.reason === 'string' && r.peer !== null));
    assert.equal(records[1]!.user, 'mallory');
    assert.match(records.at(-2)!.reason as string, /malformed request: request is not JSON/);
    assert.match(records.at(-1)!.reason as string, /malformed request: frame of 2147483647 bytes/);
    const logged = fs.readFileSync(tAudit, 'utf8') + svc.stderr();
    for (const secret of ['secret', 'hunter2', 'wrong', P127]) assert.ok(!logged.includes(secret), `'${secret.slice(0, 10)}' is not logged`);

    const opens = fs.readFileSync(trace, 'utf8');
    assert.ok(opens.includes(tAudit), 'strace saw the service open its audit log');
    assert.ok(!/\.pcap/.test(opens), 'no packet file (nor index) was opened');
  });

  test('a password file must be the caller\'s and closed to others; a group-readable one is refused before asking', async () => {
    const file = path.join(work, 'password');
    fs.writeFileSync(file, 'secret\n', { mode: 0o600 });
    const args = ['--user', 'alice', '--password-file', file, '-t', timeline, '-b', '0', '-e', 'now', '-l'];
    const ok = await runExtract(args, { env: { NPCAPEXTRACT_CONF: conf } });
    assert.equal(ok.code, 0, ok.stderr + ok.signal);
    fs.chmodSync(file, 0o640);
    const before = auditRecords(audit).length;
    const refused = await runExtract(args, { env: { NPCAPEXTRACT_CONF: conf } });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /^npcapextract: --password-file .*chmod 600/);
    assert.equal(auditRecords(audit).length, before, 'nothing was sent');
  });

  test('without a terminal or a password source the client says how to give one', async () => {
    const r = await runExtract(['--user', 'alice', '-t', timeline, '-b', '0', '-e', 'now', '-l'], { env: { NPCAPEXTRACT_CONF: conf } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^npcapextract: no terminal to ask for the password: give --password-fd N or --password-file FILE\n$/);
  });

  test('a timeline the service does not serve is refused after authentication, and audited', async () => {
    const other = await recordDumpSet(path.join(work, 'other'), 'dns_exfiltration.pcap');
    const r = await viaService('alice', 'secret\n', ['-t', other, '-b', '0', '-e', 'now', '-o', '-']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /not a timeline this extraction service serves/);
    assert.equal(r.stdout.length, 0);
    const last = auditRecords(audit).at(-1)!;
    assert.equal(last.event, 'extract');
    assert.equal(last.outcome, 'failed');
    assert.deepEqual(last.files, []);
  });

  test('no service listening: exit 9', async () => {
    const c = path.join(work, 'nowhere.conf');
    writeConf(c, { socket: path.join(work, 'nowhere.sock'), audit, timelines: [timeline], users: ['alice'] });
    const r = await runExtract(['--user', 'alice', '--password-fd', '0', '-t', timeline, '-b', '0', '-e', 'now', '-l'], { env: { NPCAPEXTRACT_CONF: c }, stdin: 'secret\n' });
    assert.equal(r.code, 9);
    assert.match(r.stderr, /^npcapextract: cannot reach the extraction service/);
  });

  test('a bundle through the service names the authenticated user and verifies', async () => {
    const r = await viaService('alice', 'secret\n', ['-t', timeline, '-b', '0', '-e', 'now', '-f', 'udp', '--bundle', '-']);
    assert.equal(r.code, 0, r.stderr);
    const file = path.join(work, 'service-bundle.tar');
    fs.writeFileSync(file, r.stdout);
    const dir = path.join(work, 'service-bundle');
    fs.mkdirSync(dir);
    execFileSync('tar', ['-xf', file, '-C', dir]);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { user: string };
    assert.equal(manifest.user, 'alice');
    assert.equal((await runTool('npcapextract', ['--verify', file])).code, 0);
    assert.equal(auditRecords(audit).at(-1)!.sha256, sha256(r.stdout));
  });
});

test('the shipped extract.conf turns authentication on and names what the service needs; --help lists the new exit codes', async () => {
  const c = loadConfig(path.join(repoRoot, 'systemd', 'extract.conf'));
  assert.equal(c.auth, true);
  assert.equal(c.socket, '/run/n2disk-ts/npcapextractd.sock');
  assert.deepEqual(c.groups, ['pcap-readers']);
  assert.ok(c.timelines.length > 0 && c.audit.startsWith('/var/log/n2disk-ts/'));
  const help = await runTool('npcapextract', ['--help']);
  for (const code of ['7 authentication failed', '8 --verify', '9 the extraction service']) assert.match(help.stdout.replace(/\s+/g, ' '), new RegExp(code));
});

describe('evidence bundles', () => {
  const work = tempDir('bundle');
  let a: string;
  let b: string;
  before(async () => {
    a = path.join(work, 'eth1');
    b = path.join(work, 'tun0');
    await recordDumpSet(a, 'android.pcap');
    await recordDumpSet(b, 'dns_exfiltration.pcap');
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  interface Manifest {
    tool: string;
    version: string;
    host: string;
    user: string;
    query: { timelines: string[]; filter: string; beginNs: string; endNs: string };
    files: { name: string; timeline: string; packets: number; bytes: number; sha256: string }[];
  }

  test('round trip: tar -x, sha256sum -c, --verify; one changed byte fails --verify', async () => {
    const tarFile = path.join(work, 'evidence.tar');
    const query = ['-t', path.join(a, 'timeline'), '-t', path.join(b, 'timeline'), '-b', '0', '-e', 'now', '-f', 'udp'];
    const r = await runExtract([...query, '--bundle', tarFile], { env: NO_CONF });
    assert.equal(r.code, 0, r.stderr);

    const dir = path.join(work, 'x');
    fs.mkdirSync(dir);
    execFileSync('tar', ['-xf', tarFile, '-C', dir]);
    const sums = spawnSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dir, encoding: 'utf8' });
    assert.equal(sums.status, 0, sums.stdout + sums.stderr);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
    assert.equal(manifest.tool, 'npcapextract');
    assert.equal(manifest.version, (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version);
    assert.equal(manifest.host, os.hostname());
    assert.equal(manifest.user, me);
    assert.equal(manifest.query.filter, 'udp');
    assert.deepEqual(manifest.query.timelines, [path.join(a, 'timeline'), path.join(b, 'timeline')]);
    assert.deepEqual(manifest.files.map((f) => f.name), ['01-eth1.pcap', '02-tun0.pcap']);
    for (const [i, storage] of [a, b].entries()) {
      const f = manifest.files[i]!;
      const bytes = fs.readFileSync(path.join(dir, f.name));
      assert.equal(f.bytes, bytes.length);
      assert.equal(f.sha256, sha256(bytes));
      const records = parsePcap(bytes).records;
      assert.equal(f.packets, records.length);
      assertSameRecords(records, await expectedExtraction([storage], 'udp', 0n, BigInt(manifest.query.endNs)));
    }

    const ok = await runTool('npcapextract', ['--verify', tarFile]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /bundle verified: 2 captures/);

    // One byte of a packet of the second capture changed.
    const tarBytes = fs.readFileSync(tarFile);
    const second = tarBytes.indexOf(Buffer.from([0xd4, 0xc3, 0xb2, 0xa1]), tarBytes.indexOf(Buffer.from([0xd4, 0xc3, 0xb2, 0xa1])) + 1);
    assert.ok(second > 0);
    tarBytes[second + 24 + 16 + 30]! ^= 0x01;
    const bad = path.join(work, 'tampered.tar');
    fs.writeFileSync(bad, tarBytes);
    const v = await runTool('npcapextract', ['--verify', bad]);
    assert.equal(v.code, 8);
    assert.match(v.stderr, /02-tun0\.pcap: sha256/);
    assert.match(v.stderr, /the bundle does not match its manifest\n$/);
  });

  test('--bundle - writes the tar to stdout; --verify - reads one from stdin', async () => {
    const r = await runExtract(['-t', path.join(a, 'timeline'), '-b', '0', '-e', 'now', '--pcapng', '--bundle', '-'], { env: NO_CONF });
    assert.equal(r.code, 0, r.stderr);
    const v = spawnSync(process.execPath, [bin('npcapextract'), '--verify', '-'], { input: r.stdout, encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    assert.match(v.stdout, /1 captures/);
    const garbage = spawnSync(process.execPath, [bin('npcapextract'), '--verify', '-'], { input: Buffer.alloc(1024, 7), encoding: 'utf8' });
    assert.equal(garbage.status, 8);
  });
});

describe('an ordinary user extracts through the service (root)', () => {
  const OWNER = 'n2dts-recorder';

  test('the same bytes as root\'s direct extraction, while the dump set stays closed to that user', async (t) => {
    if (skipUnlessRoot(t)) return;
    assert.ok(isRoot());
    // Undone last first: the service stops before its user is removed.
    const cleanups: (() => unknown)[] = [];
    t.after(async () => {
      for (const undo of cleanups.reverse()) await undo();
    });
    const work = tempDir('peer');
    cleanups.push(() => fs.rmSync(work, { recursive: true, force: true }));
    fs.chmodSync(work, 0o755);
    // The recorder's own user, created for this test and removed after it.
    spawnSync('userdel', [OWNER], { stdio: 'ignore' });
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', OWNER]);
    cleanups.push(() => execFileSync('userdel', [OWNER]));
    const uid = Number(execFileSync('id', ['-u', OWNER], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', OWNER], { encoding: 'utf8' }));
    const nobody = { uid: Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' })) };

    const storage = path.join(work, 'eth1');
    const timeline = await recordDumpSet(storage, 'android.pcap');
    execFileSync('chown', ['-R', `${OWNER}:${OWNER}`, storage]);
    const run = path.join(work, 'run');
    fs.mkdirSync(run, { mode: 0o755 });
    fs.chownSync(run, uid, gid);
    const socket = path.join(run, 'npcapextractd.sock');
    const audit = path.join(run, 'audit.log');
    const conf = path.join(work, 'extract.conf');
    writeConf(conf, { socket, audit, timelines: [timeline], users: ['nobody'] });
    const pamServices = writePamService(work, { nobody: 'nobody-pw' });

    const svc = await startService({ conf, socket, pamServices, uid, gid });
    cleanups.push(() => svc.stop());

    const query = ['-t', timeline, '-b', '0', '-e', 'now', '-f', 'tcp'];
    const rootOut = path.join(work, 'root.pcap');
    const direct = await runExtract([...query, '-o', rootOut], { env: NO_CONF });
    assert.equal(direct.code, 0, direct.stderr);

    const r = await runExtract(['--user', 'nobody', '--password-fd', '0', ...query, '-o', '-'], { env: { NPCAPEXTRACT_CONF: conf }, stdin: 'nobody-pw\n', ...nobody });
    assert.equal(r.code, 0, r.stderr + svc.stderr());
    assert.ok(r.stdout.equals(fs.readFileSync(rootOut)), 'the service returns exactly what root extracts');

    // The same user reading the files: refused by the file system.
    const file = publishedFiles(storage)[0]!;
    const open = spawnSync(process.execPath, ['-e', `require('fs').openSync(${JSON.stringify(file)}, 'r')`], { ...nobody, encoding: 'utf8' });
    assert.notEqual(open.status, 0);
    assert.match(open.stderr, /EACCES/);
    const mine = await runExtract([...query, '-o', '-'], { env: NO_CONF, ...nobody });
    assert.notEqual(mine.code, 0);
    assert.equal(mine.stdout.length, 0);

    const last = auditRecords(audit).at(-1)!;
    assert.equal(last.event, 'extract');
    assert.deepEqual(last.peer && { uid: (last.peer as { uid: number }).uid, user: (last.peer as { user: string }).user }, { uid: nobody.uid, user: 'nobody' });
    assert.equal(fs.statSync(audit).uid, uid);
    assert.equal(fs.statSync(audit).mode & 0o022, 0, 'only the service may write the audit log');
  });
});
