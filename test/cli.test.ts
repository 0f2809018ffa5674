// Command-line errors: one line on stderr naming the problem, a distinct exit code.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fixture } from './helpers/corpus';
import { runTool, tempDir } from './helpers/recorder';

const work = tempDir('cli');
after(() => fs.rmSync(work, { recursive: true, force: true }));
const pcap = fixture('dns_exfiltration.pcap').path;

const cases: [string, string[], number, RegExp][] = [
  ['an unknown flag', ['-i', pcap, '--frobnicate'], 2, /unknown option '--frobnicate'/],
  ['a chunk size that is not a multiple of 4 KB', ['-i', pcap, '-C', '6'], 2, /-C.*multiple of 4/],
  ['a negative file size', ['-i', pcap, '-p', '-1'], 2, /-p/],
  ['no -i', [], 2, /required option '-i/],
  ['a missing capture file', ['-i', '/nonexistent/x.pcap'], 3, /\/nonexistent\/x\.pcap/],
  ['a file that is not a capture', ['-i', '/etc/passwd'], 3, /\/etc\/passwd/],
  ['an unwritable dump directory', ['-i', pcap, '-o', '/etc/passwd/dump'], 4, /cannot use dump directory/],
  ['an unknown user', ['-i', pcap, '-u', 'no-such-user-n2d'], 2, /no such user: no-such-user-n2d/],
];

for (const [what, args, code, message] of cases) {
  test(`${what}: exit ${code} and one line`, async () => {
    const r = await runTool('n2disk-ts', [...args, ...(args.includes('-o') ? [] : ['-o', path.join(work, 'd')])]);
    assert.equal(r.code, code, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^n2disk-ts: /);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  });
}

test('a bad capture filter is refused with libpcap\'s message, exit 3 (root)', { skip: process.getuid?.() === 0 ? false : 'skipped: needs root' }, async () => {
  const r = await runTool('n2disk-ts', ['-i', 'lo', '-f', 'port 99999', '-o', path.join(work, 'f')]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /^n2disk-ts: bad capture filter: .*port/);
});
