// Tests of the test helpers themselves: the pcap reader against tcpdump, the fixture table against the
// files, and (as root) that a veth pair between two namespaces delivers replayed frames unchanged.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { FIXTURES, Fixture, fixture, fixturesWith, linktypeOf, listNdpiFiles, sharedCorpus } from './helpers/corpus';
import { createNetnsPair, exitOf, listTestNamespaces, NetnsEnv, replay, skipUnlessRoot, waitForOutput } from './helpers/netns';
import { compareRecords, parsePcap, PcapFormatError, PcapRecord, readPcap, tcpdumpRead, tcpdumpReadFile } from './helpers/pcap-compare';

const NS_PER_YEAR = 365n * 86_400n * 1_000_000_000n;
const Y2030_NS = 1_893_456_000n * 1_000_000_000n;

function vlanTags(frame: Buffer): number {
  let n = 0;
  for (let off = 12; off + 2 <= frame.length; off += 4) {
    const type = frame.readUInt16BE(off);
    if (type !== 0x8100 && type !== 0x88a8) break;
    n++;
  }
  return n;
}

/** Records of a fixture: our reader for classic pcap, tcpdump's conversion for pcapng. */
async function recordsOf(f: Fixture): Promise<PcapRecord[]> {
  return f.format === 'pcap' ? readPcap(f.path).records : tcpdumpRead([f.path]);
}

describe('fixtures', () => {
  test('table matches the files (format, link type, packet count)', async () => {
    for (const f of FIXTURES) {
      const magic = readFileSync(f.path).readUInt32BE(0);
      assert.equal(magic === 0x0a0d0d0a ? 'pcapng' : 'pcap', f.format, f.name);
      assert.equal(linktypeOf(f.path), f.linktype, `${f.name} link type`);
      if (f.tags.includes('truncated-file')) continue; // checked below
      assert.equal((await recordsOf(f)).length, f.packets, `${f.name} packet count`);
    }
    assert.ok(FIXTURES.length > 20);
  });

  test('tagged properties hold', async () => {
    for (const f of FIXTURES.filter((x) => !x.tags.includes('truncated-file'))) {
      const recs = await recordsOf(f);
      const has = (pred: (r: PcapRecord, i: number) => boolean): boolean => recs.some(pred);
      const msg = (tag: string): string => `${f.name}: ${tag}`;
      for (const tag of f.tags) {
        switch (tag) {
          case 'replayable':
            assert.equal(linktypeOf(f.path), 1, msg(tag));
            for (const r of recs) {
              // veth accepts mtu + 14 bytes, plus 4 for one VLAN tag (the kernel's is_skb_forwardable / packet_snd limits)
              const max = 1514 + (vlanTags(r.data) > 0 ? 4 : 0);
              assert.ok(r.caplen === r.wirelen && r.caplen >= 14 && r.caplen <= max, `${msg(tag)}: frame of ${r.caplen}/${r.wirelen}`);
            }
            break;
          case 'vlan':
            assert.ok(has((r) => vlanTags(r.data) >= 1), msg(tag));
            break;
          case 'qinq':
            assert.ok(has((r) => vlanTags(r.data) >= 2), msg(tag));
            break;
          case 'out-of-order':
            assert.ok(has((r, i) => i > 0 && r.tsNs < recs[i - 1]!.tsNs), msg(tag));
            break;
          case 'ts-1970':
            assert.ok(has((r) => r.tsNs < NS_PER_YEAR), msg(tag));
            break;
          case 'ts-after-2030':
            assert.ok(has((r) => r.tsNs >= Y2030_NS), msg(tag));
            break;
          case 'caplen-4':
            assert.ok(has((r) => r.caplen === 4), msg(tag));
            break;
          case 'caplen-below-wirelen':
            assert.ok(has((r) => r.caplen < r.wirelen), msg(tag));
            break;
          case 'offload-sized':
            assert.ok(has((r) => r.wirelen > 9000), msg(tag));
            break;
          case 'nanosecond':
            if (f.format === 'pcap') assert.ok(readPcap(f.path).header.nano, msg(tag));
            else assert.ok(has((r) => r.tsNs % 1000n !== 0n), msg(tag)); // sub-microsecond digits survive
            break;
          case 'big-endian':
            assert.ok(readPcap(f.path).header.bigEndian, msg(tag));
            break;
          default:
            break; // protocol and link-type tags: covered by the table check and the README
        }
      }
    }
  });

  test('truncated file: reader and tcpdump both reject it', async () => {
    for (const f of fixturesWith('truncated-file')) {
      assert.throws(() => readPcap(f.path), (e: unknown) => e instanceof PcapFormatError && /truncated/.test(e.message));
      await assert.rejects(tcpdumpReadFile(f.path), /truncated/);
    }
  });
});

describe('pcap reader', () => {
  test('agrees with tcpdump -r byte for byte on every classic pcap fixture', async () => {
    for (const f of FIXTURES.filter((x) => x.format === 'pcap' && !x.tags.includes('truncated-file'))) {
      const ours = readPcap(f.path);
      const ref = await tcpdumpReadFile(f.path);
      assert.equal(ref.header.linktype, ours.header.linktype, f.name);
      assert.ok(ref.header.nano, 'tcpdump output is nanosecond');
      // Bad-input files hold fractions out of range. libpcap reads the fraction as a signed 32-bit number and
      // tcpdump -w stores fraction*1000 cut to 32 bits, so for those only lengths and bytes must agree.
      const precision = f.tags.includes('bad-input') ? 'none' : 'ns';
      const diff = compareRecords(ours.records, ref.records, { precision });
      assert.equal(diff, undefined, `${f.name}: ${diff}`);
    }
  });

  test('libpcap quirks: snaplen cut, swapped lengths of old files; raw mode shows what is stored', () => {
    const mob = fixture('mobility_opt_asan.pcap').path; // snaplen 70, records of caplen 100
    assert.equal(readPcap(mob).records[0]!.caplen, 70);
    assert.equal(readPcap(mob, { libpcap: false }).records[0]!.caplen, 100);
    const old = fixture('fuzz-2021-10-13.pcap').path; // version 2.0: len stored before caplen
    assert.throws(() => readPcap(old), /truncated record header of packet #1/);
    assert.throws(() => readPcap(old, { libpcap: false }), /truncated data of packet #0 at offset 24: caplen 524501/);
  });

  test('tcpdumpRead applies the filter and concatenates files in order', async () => {
    const a = fixture('android.pcap').path;
    const b = fixture('dns_exfiltration.pcap').path;
    const all = await tcpdumpRead([a, b]);
    assert.equal(all.length, 500 + 300);
    const dns = await tcpdumpRead([a, b], 'udp port 53');
    assert.ok(dns.length > 300 && dns.length < 800, `udp port 53 kept ${dns.length}`);
    // Filtered output is a subsequence of the unfiltered one.
    let j = 0;
    for (const r of dns) {
      while (j < all.length && !all[j]!.data.equals(r.data)) j++;
      assert.ok(j < all.length, 'filtered packet not found in order');
      j++;
    }
    await assert.rejects(tcpdumpRead([a], 'no such primitive'), /tcpdump/);
  });

  test('reports truncation with a clear error', () => {
    const buf = readFileSync(fixture('android.pcap').path);
    assert.throws(() => parsePcap(buf.subarray(0, 10), 'x'), /x: truncated file header/);
    assert.throws(() => parsePcap(buf.subarray(0, 24 + 10), 'x'), /x: truncated record header of packet #0/);
    assert.throws(() => parsePcap(buf.subarray(0, buf.length - 1), 'x'), /x: truncated data of packet #499/);
    assert.throws(() => parsePcap(Buffer.alloc(24), 'x'), /not a classic pcap/);
    assert.equal(parsePcap(buf.subarray(0, 24)).records.length, 0);
  });

  test('compareRecords names the first difference', () => {
    const recs = readPcap(fixture('cassandra.pcap').path).records;
    assert.equal(compareRecords(recs, recs), undefined);
    const changed = recs.map((r) => ({ ...r, data: Buffer.from(r.data) }));
    changed[3]!.data[20] ^= 0xff;
    assert.match(compareRecords(changed, recs) ?? '', /^packet #3: data differs at byte 20/);
    const shifted = recs.map((r, i) => (i === 5 ? { ...r, tsNs: r.tsNs + 400n } : r));
    assert.equal(compareRecords(shifted, recs, { precision: 'us' }), undefined);
    assert.match(compareRecords(shifted, recs, { precision: 'ns' }) ?? '', /^packet #5: timestamp differs/);
    assert.equal(compareRecords(shifted, recs, { precision: 'none' }), undefined);
    assert.match(compareRecords(recs.slice(0, -1), recs) ?? '', /packet count differs: actual 19, expected 20/);
  });
});

describe('shared corpus', () => {
  test('lists the nDPI files with link types when ../shared/corpus exists', async (t) => {
    if (sharedCorpus() === undefined) {
      t.skip('shared corpus not present (../shared/corpus)');
      return;
    }
    const files = await listNdpiFiles();
    assert.ok(files.length > 500, `${files.length} files`);
    const ether = files.filter((f) => f.linktype === 1);
    assert.ok(ether.length > 400);
    assert.ok(ether.every((f) => f.encapsulation === 'ether'));
    assert.ok(files.some((f) => f.linktype === 113) && files.some((f) => f.linktype === 101) && files.some((f) => f.linktype === 0));
    assert.equal(files.find((f) => f.name === 'android.pcap')?.packets, 500);
  });
});

// What the veth path does (kernel 6.18, libpcap 1.10.3, tcpreplay 4.4.3), observed with these fixtures:
// - Every replayable frame arrives unchanged and in order, 802.1Q, QinQ and 802.1ad (0x88a8) tags and their
//   priority bits included. That is libpcap's doing: the receiving kernel always takes the outer tag off the
//   frame (skb_vlan_untag) and reports it beside it (PACKET_AUXDATA / tpacket3_hdr: tp_vlan_tci, tp_vlan_tpid,
//   TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID); a raw AF_PACKET reader sees 0x8100/0x0800 where the
//   wire had 0x88a8/0x8100 or 0x8100/0x0800, so the recorder must put the tag back the same way.
// - Short frames are not padded (a 60-byte untagged ARP stays 60 after the tag is taken off a 64-byte frame).
// - Not transparent, by construction: tcpreplay sends caplen bytes, so snaplen-cut records arrive as short
//   whole frames (wirelen == caplen); frames under 14 bytes are refused (EINVAL) and frames over MTU + 14
//   (+ 4 with one tag) are refused (EMSGSIZE); tcpreplay counts both as "Failed packets" and exits 0.
// - With no addresses and IPv6 disabled before link up, the kernel sends nothing on the link.
describe('netns helper', () => {
  test('veth pair delivers replayed frames unchanged, VLAN tags included (root)', async (t) => {
    if (skipUnlessRoot(t)) return;
    const env = await createNetnsPair();
    t.after(() => env.cleanup());
    const dir = mkdtempSync(path.join(tmpdir(), 'n2dts-cap-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));

    // With no addresses and IPv6 off, nothing at all crosses the link while idle.
    const idle = await capture(env, path.join(dir, 'idle.pcap'), () => new Promise((r) => setTimeout(r, 1000)));
    assert.equal(idle.length, 0, 'kernel sent frames on an idle link');

    for (const f of fixturesWith('replayable')) {
      await t.test(f.name, async () => {
        const expected = await tcpdumpRead([f.path]);
        let sent = -1;
        const got = await capture(env, path.join(dir, `${f.name}.pcap`), async () => {
          sent = await replay(env, f.path);
        });
        assert.equal(sent, expected.length, 'tcpreplay sent count');
        const diff = compareRecords(got, expected, { precision: 'none' });
        assert.equal(diff, undefined, diff);
      });
    }
  });

  test('cleanup kills spawned processes, removes namespaces, and is idempotent (root)', async (t) => {
    if (skipUnlessRoot(t)) return;
    const env = await createNetnsPair({ mtu: 9000 });
    t.after(() => env.cleanup());
    const { stdout } = await env.exec(env.nsB, 'ip', ['-o', 'link', 'show', 'dev', env.ifB]);
    assert.match(stdout, /mtu 9000 .*state UP/);
    assert.ok(env.ifA.length <= 15 && env.ifB.length <= 15);
    assert.ok((await listTestNamespaces()).includes(env.nsA));
    const sleeper = env.spawn(env.nsA, 'sleep', ['60']);
    await Promise.all([env.cleanup(), env.cleanup()]);
    await env.cleanup();
    assert.notEqual(await exitOf(sleeper, 1000), 0);
    const left = (await listTestNamespaces()).filter((n) => n === env.nsA || n === env.nsB);
    assert.deepEqual(left, []);
  });

  test('no n2dts- namespaces of this process remain (root)', async (t) => {
    if (skipUnlessRoot(t)) return;
    const mine = (await listTestNamespaces()).filter((n) => n.startsWith(`n2dts-${process.pid}-`));
    assert.deepEqual(mine, []);
  });
});

/** Captures on ifB inside nsB while action() runs; returns the frames tcpdump wrote. */
async function capture(env: NetnsEnv, file: string, action: () => Promise<void>): Promise<PcapRecord[]> {
  // --immediate-mode: otherwise frames can sit in a TPACKET_V3 block that is not yet handed over when we stop.
  const td = env.spawn(env.nsB, 'tcpdump', ['-i', env.ifB, '-n', '-s', '0', '-U', '--immediate-mode', '--time-stamp-precision=nano', '-w', file]);
  let stderr = '';
  td.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  await waitForOutput(td, /listening on/);
  try {
    await action();
    await new Promise((r) => setTimeout(r, 300)); // let the last frames reach the capture
  } finally {
    td.kill('SIGINT');
    await exitOf(td);
  }
  assert.match(stderr, /^0 packets dropped by kernel$/m);
  return readPcap(file).records;
}
