// Configuration files in n2disk's format: good ones record as the same flags
// would; each kind of wrong line stops the recorder with FILE:LINE and exit 2.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fixture, repoRoot } from './helpers/corpus';
import { readPcap } from './helpers/pcap-compare';
import { publishedFiles, runTool, tempDir } from './helpers/recorder';

const work = tempDir('config');
after(() => fs.rmSync(work, { recursive: true, force: true }));
const pcap = fixture('dns_exfiltration.pcap');
let n = 0;

function writeConfig(lines: string[]): string {
  const file = path.join(work, `n2disk-${n++}.conf`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

test('a config file with both n2disk forms, comments and quotes records like the flags it holds', async () => {
  const dir = path.join(work, 'good');
  const conf = writeConfig([
    '# n2disk-ts test configuration',
    '',
    `-i=${pcap.path}`,
    `  -o ${dir}`,
    `--timeline="${dir}/tl"`,
    '-N=100   ',
    '-d',
    '--disk-limit=50%',
  ]);
  const r = await runTool('n2disk-ts', ['--config', conf]);
  assert.equal(r.code, 0, r.stderr);
  const files = publishedFiles(dir);
  assert.equal(files.length, Math.ceil(pcap.packets / 100), '-N=100 rotated every 100 packets');
  assert.ok(readPcap(files[0]!).header.nano, '-d took effect');
  assert.ok(fs.existsSync(path.join(dir, 'tl')), '--timeline with a quoted value');
});

test("n2disk's positional config file; flags given on the command line win over the file", async () => {
  const fromFile = path.join(work, 'from-file');
  const fromFlags = path.join(work, 'from-flags');
  const conf = writeConfig([`-i=${pcap.path}`, `-o=${fromFile}`, '-N=1000']);
  const r = await runTool('n2disk-ts', [conf, '-o', fromFlags]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(publishedFiles(fromFlags).length, 1);
  assert.ok(!fs.existsSync(fromFile), 'the file\'s -o was overridden');
});

test('the sample configuration is valid (its interface and directories overridden)', async () => {
  const dir = path.join(work, 'sample');
  const sample = path.join(repoRoot, 'systemd', 'n2disk-ts.conf.example');
  const r = await runTool('n2disk-ts', ['--config', sample, '-i', pcap.path, '-o', dir, '-A', path.join(dir, 'timeline')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(publishedFiles(dir).length, 1);
});

const bad: [string, string, RegExp][] = [
  ['a line that is not an option', 'eth1', /expected an option such as -i=eth1/],
  ['an unknown option', '--frobnicate=1', /unknown option '--frobnicate'/],
  ['an option without its value', '-o', /option '-o, --dump-dir <dir>' needs a value/],
  ['a value for a flag that takes none', '-d=yes', /option '-d, --nano' takes no value/],
  ['a value that does not parse', '-p=big', /option '-p, --max-file-size <MB>': 'big' is not a whole number/],
  ['a value out of range', '--uburst-threshold=150', /150 is out of range/],
  ['a bad metrics address', '--metrics-port=localhost', /is not PORT or ADDRESS:PORT/],
  ['a config file naming another', '--config=/etc/other.conf', /--config cannot be used inside a configuration file/],
];

for (const [what, line, message] of bad) {
  test(`${what} is reported as FILE:LINE, exit 2`, async () => {
    const conf = writeConfig(['# comment', `-i=${pcap.path}`, '', line, `-o=${path.join(work, 'never')}`]);
    const r = await runTool('n2disk-ts', ['--config', conf]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(r.stderr.startsWith(`n2disk-ts: ${conf}:4: `), r.stderr);
    assert.match(r.stderr, message);
    assert.ok(!fs.existsSync(path.join(work, 'never')), 'nothing was recorded');
  });
}

test('a config file that cannot be read: exit 2, with the reason', async () => {
  const r = await runTool('n2disk-ts', ['--config', path.join(work, 'missing.conf')]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^n2disk-ts: cannot read configuration file .*missing\.conf: ENOENT/);
});
