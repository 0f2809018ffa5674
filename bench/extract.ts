// Extraction benchmark: npcapextract against a full `tcpdump -r` scan of the
// same dump set files (and Stenographer when it can run here), on a synthetic
// capture of --gb GiB with over a million flows, page cache warm and cold.
// Every answer is checked: npcapextract's packets must be tcpdump's, byte for
// byte (DESIGN.md, "the one rule").
//
//   node dist/bench/extract.js [--gb 10] [--keep DIR] [--no-steno]
//
// --keep DIR: work in DIR, keep the source pcap and everything at the end,
// and reuse the dump set found there on the next run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generatePcap, GenResult } from './extract-lib/pcapgen';
import { scanPcaps } from './extract-lib/pcapscan';
import { dumpFiles } from './lib/count';
import { awaitQuiet, dropCaches, onCleanup, run, runCleanups, timed, Timed } from './extract-lib/proc';
import { stenographerBench, StenoReport } from './extract-lib/steno';

const ROOT = path.resolve(__dirname, '../..');
const GiB = 2 ** 30;
const RARE_HOST = '192.0.2.77';
const START_SEC = 1_795_255_200; // 2026-11-21 10:00:00 UTC
const SPAN_SEC = 1800;

interface Args {
  gb: number;
  keep: string | undefined;
  steno: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { gb: 10, keep: undefined, steno: true };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--gb') a.gb = Number(argv[++i]);
    else if (v === '--keep') a.keep = argv[++i];
    else if (v === '--no-steno') a.steno = false;
    else throw new Error(`unknown argument ${v}; usage: extract.js [--gb N] [--keep DIR] [--no-steno]`);
  }
  if (!(a.gb > 0)) throw new Error('--gb needs a positive number');
  return a;
}

interface Meta {
  gen: GenResult;
  genSeconds: number;
  importSeconds: number;
  gib: number;
}

export interface Query {
  name: string;
  filter: string;
  beginUs: number;
  endUs: number;
}

interface ToolTimes {
  warm: number;
  cold: number;
  /** CPU cores other processes used during the reported runs (0: undisturbed). */
  others: number;
}

/** Builds the dump set (or reuses the one a previous --keep run left). */
function build(work: string, dump: string, gib: number, keep: boolean): Meta {
  const metaFile = path.join(work, 'meta.json');
  if (fs.existsSync(metaFile) && fs.existsSync(dump)) {
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as Meta;
    if (meta.gib === gib) {
      log(`reusing the dump set in ${dump}`);
      return meta;
    }
  }
  fs.rmSync(dump, { recursive: true, force: true });
  const src = path.join(work, 'source.pcap');
  log(`generating ${gib} GiB of synthetic traffic into ${src}`);
  const t0 = process.hrtime.bigint();
  const gen = generatePcap(src, {
    bytes: gib * GiB, seconds: SPAN_SEC, startSec: START_SEC, rareHost: RARE_HOST, rarePackets: 20, seed: 7,
  });
  const genSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  log(`  ${gen.packets} packets, ${gen.flows} flows, ${(gen.bytes / 1e6).toFixed(0)} MB in ${genSeconds.toFixed(1)} s`);
  // Import from a cold cache: the recorder reads the source from disk, as it would a capture file.
  dropCaches();
  log('importing it with n2disk-ts');
  const imp = timed(['node', path.join(ROOT, 'bin/n2disk-ts.js'), '-i', src, '-o', dump]);
  log(`  ${imp.seconds.toFixed(1)} s, ${(gen.bytes / 1e6 / imp.seconds).toFixed(0)} MB/s`);
  if (!keep) fs.rmSync(src);
  const meta: Meta = { gen, genSeconds, importSeconds: imp.seconds, gib };
  fs.writeFileSync(metaFile, JSON.stringify(meta));
  return meta;
}

function log(m: string): void {
  process.stderr.write(`${m}\n`);
}

interface Explain {
  filesConsidered: number;
  filesRead: number;
  bytesToRead: number;
  bytesRead: number;
  reads: number;
  text: string;
}

function parseExplain(stderr: string): Explain {
  const num = (re: RegExp, i: number): number => Number(re.exec(stderr)?.[i] ?? NaN);
  const files = /files considered (\d+), skipped by time (\d+), skipped by index (\d+)/;
  return {
    filesConsidered: num(files, 1),
    filesRead: num(files, 1) - num(files, 2) - num(files, 3),
    bytesToRead: num(/bytes to read (\d+)/, 1),
    bytesRead: num(/read (\d+) bytes in (\d+) reads/, 1),
    reads: num(/read (\d+) bytes in (\d+) reads/, 2),
    text: stderr.trim(),
  };
}

/** Above this many cores used by other processes during a run, the run is repeated. */
const DISTURBED = 0.3;
const load = (t: Timed): number => t.otherCpu / t.seconds;

/**
 * Cold (caches dropped), then twice warm: reports the cold run and the last
 * warm one, with the CPU others used meanwhile (cores) as a disturbance mark.
 * Other people's benchmarks share the machine: a disturbed run is repeated
 * (up to 3 times) and the least disturbed one is kept.
 * The cold run is the faster of two: on this VM the same cold tcpdump scan
 * took 22.9 s and then 7.5 s, the difference all kernel time (likely the
 * host giving back guest memory that drop_caches had freed), which would
 * penalize whichever tool happens to come first.
 */
function measure(argv: string[], out: string): { t: ToolTimes; last: Timed } {
  const once = (cold: boolean): Timed => {
    let best: Timed | undefined;
    for (let attempt = 0; attempt < 3 && (!best || load(best) > DISTURBED); attempt++) {
      fs.rmSync(out, { force: true });
      awaitQuiet();
      if (cold) dropCaches();
      const t = timed(argv);
      if (!best || load(t) < load(best)) best = t;
    }
    return best!;
  };
  const cold1 = once(true);
  const cold2 = once(true);
  const cold = cold2.seconds < cold1.seconds ? cold2 : cold1;
  once(false);
  const last = once(false);
  return { t: { warm: last.seconds, cold: cold.seconds, others: Math.max(load(cold), load(last)) }, last };
}

const secToArg = (us: number): string => (us / 1e6).toFixed(6);
const f2 = (s: number): string => (s < 10 ? s.toFixed(2) : s.toFixed(1));

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const work = args.keep ? path.resolve(args.keep) : fs.mkdtempSync('/var/tmp/n2dtx-extract-');
  fs.mkdirSync(work, { recursive: true });
  if (!args.keep) onCleanup(() => fs.rmSync(work, { recursive: true, force: true }));
  const dump = path.join(work, 'dump');
  const timeline = path.join(dump, 'timeline');
  const outDir = path.join(work, 'out');
  fs.mkdirSync(outDir, { recursive: true });

  // Room for the source pcap and the dump set side by side, plus outputs.
  let gib = args.gb;
  const st = fs.statfsSync(work);
  const freeGiB = (st.bavail * st.bsize) / GiB;
  const haveMeta = fs.existsSync(path.join(work, 'meta.json'));
  if (!haveMeta && freeGiB < 2 * gib + 3) {
    gib = Math.floor((freeGiB - 3) / 2);
    if (gib < 1) throw new Error(`only ${freeGiB.toFixed(1)} GiB free under ${work}`);
    log(`only ${freeGiB.toFixed(1)} GiB free: building ${gib} GiB instead of ${args.gb}`);
  }

  const meta = build(work, dump, gib, !!args.keep);
  const files = dumpFiles(dump);
  const pcapBytes = files.reduce((n, f) => n + fs.statSync(f.file).size, 0);
  const idxBytes = files.reduce((n, f) => n + (fs.existsSync(`${f.file}.idx`) ? fs.statSync(`${f.file}.idx`).size : 0), 0);
  const { gen } = meta;

  const wholeB = Math.floor(gen.firstUs / 1e6) * 1e6;
  const wholeE = (Math.floor(gen.lastUs / 1e6) + 1) * 1e6;
  const mid = Math.floor((gen.firstUs + gen.lastUs) / 2e6) * 1e6;
  const queries: Query[] = [
    { name: `rare host (host ${RARE_HOST})`, filter: `host ${RARE_HOST}`, beginUs: wholeB, endUs: wholeE },
    { name: 'common port (port 53)', filter: 'port 53', beginUs: wholeB, endUs: wholeE },
    { name: '1-minute slice, no filter', filter: '', beginUs: mid, endUs: mid + 60e6 },
  ];

  interface Row {
    q: Query;
    npc: ToolTimes;
    tcpdump: ToolTimes;
    tcpdumpFiles: number;
    packets: number;
    refPackets: number;
    identical: boolean;
    explain: Explain;
  }
  const rows: Row[] = [];
  const problems: string[] = [];
  for (const [qi, q] of queries.entries()) {
    log(`query: ${q.name}`);
    const npcOut = path.join(outDir, `npc-${qi}.pcap`);
    const npcArgv = ['node', path.join(ROOT, 'bin/npcapextract.js'), '-t', timeline, '-b', secToArg(q.beginUs), '-e', secToArg(q.endUs),
      ...(q.filter ? ['-f', q.filter] : []), '-o', npcOut, '--explain'];
    const npc = measure(npcArgv, npcOut);
    const explain = parseExplain(npc.last.stderr);

    // tcpdump has no time filter: it scans the files that overlap the range,
    // and the referee below keeps the packets inside the range. -Z root: as root
    // tcpdump drops to user tcpdump after the first file and could not open the next.
    const overlap = files.filter((f, i) => f.startUs < q.endUs && (i + 1 === files.length || files[i + 1]!.startUs > q.beginUs));
    const list = path.join(outDir, `files-${qi}.txt`);
    fs.writeFileSync(list, overlap.map((f) => f.file).join('\n') + '\n');
    const tdOut = path.join(outDir, `tcpdump-${qi}.pcap`);
    const td = measure(['tcpdump', '-Z', 'root', '-V', list, '-w', tdOut, ...(q.filter ? [q.filter] : [])], tdOut);

    const ref = scanPcaps([tdOut], q.beginUs, q.endUs);
    const got = scanPcaps([npcOut]);
    const identical = ref.packets === got.packets && ref.sha256 === got.sha256 && ref.linktype === got.linktype && ref.nano === got.nano;
    if (!identical) {
      problems.push(`${q.name}: npcapextract wrote ${got.packets} packets (sha256 ${got.sha256.slice(0, 16)}), ` +
        `tcpdump ${ref.packets} in range (sha256 ${ref.sha256.slice(0, 16)})\n  ${npcArgv.join(' ')}\n  ${explain.text.replace(/\n/g, '\n  ')}`);
    }
    // The generator knows the true answer of the two filter queries.
    const expected = qi === 0 ? gen.rarePackets : qi === 1 ? gen.dnsPackets : undefined;
    if (expected !== undefined && expected !== ref.packets) problems.push(`${q.name}: tcpdump found ${ref.packets}, generated ${expected}`);
    // 10% slack: a run-to-run noise margin on this shared machine.
    if (td.t.warm * 1.1 < npc.t.warm || td.t.cold * 1.1 < npc.t.cold) {
      problems.push(`${q.name}: npcapextract slower than the tcpdump scan (warm ${f2(npc.t.warm)} vs ${f2(td.t.warm)} s, ` +
        `cold ${f2(npc.t.cold)} vs ${f2(td.t.cold)} s)\n  ${npcArgv.join(' ')}\n  ${explain.text.replace(/\n/g, '\n  ')}`);
    }
    rows.push({ q, npc: npc.t, tcpdump: td.t, tcpdumpFiles: overlap.length, packets: got.packets, refPackets: ref.packets, identical, explain });
    log(`  npcapextract ${f2(npc.t.warm)}/${f2(npc.t.cold)} s, tcpdump ${f2(td.t.warm)}/${f2(td.t.cold)} s, ` +
      `${got.packets} packets, ${identical ? 'identical' : 'DIFFERENT'}`);
    fs.rmSync(npcOut, { force: true });
    fs.rmSync(tdOut, { force: true });
  }

  let steno: StenoReport | undefined;
  if (args.steno) {
    log('stenographer');
    steno = await stenographerBench(files.map((f) => f.file), queries, work);
    if (!steno.ok) log(`  not measured: ${steno.reason}`);
  }

  // Report, as markdown for bench/README.md.
  const cpu = os.cpus()[0]?.model ?? '?';
  const disk = run(['sh', '-c', `df -h --output=source,fstype,size ${work} | tail -1; lsblk -dno NAME,ROTA,SIZE,MODEL 2>/dev/null | head -3`], true).trim();
  const L: string[] = [];
  L.push(`date ${new Date().toISOString()}, ${os.cpus().length} CPUs (${cpu}), ${(os.totalmem() / GiB).toFixed(0)} GiB RAM, disk: ${disk.replace(/\n/g, '; ')}`);
  L.push(`capture: ${gen.packets} packets, ${gen.flows} flows, ${(gen.bytes / 1e9).toFixed(2)} GB over ${((gen.lastUs - gen.firstUs) / 1e6).toFixed(0)} s; ` +
    `generated in ${meta.genSeconds.toFixed(0)} s; imported by n2disk-ts in ${meta.importSeconds.toFixed(1)} s (${(gen.bytes / 1e6 / meta.importSeconds).toFixed(0)} MB/s)`);
  L.push(`dump set: ${files.length} files, pcap ${pcapBytes} B, index ${idxBytes} B = ${(idxBytes / gen.packets).toFixed(1)} B/packet, ` +
    `${((100 * idxBytes) / pcapBytes).toFixed(2)}% of the pcap bytes`);
  L.push('');
  const stenoCols = steno?.ok ? ' Stenographer s warm / cold | ratio steno / npc warm |' : '';
  L.push(`| query | packets | npcapextract s warm / cold | tcpdump -r s warm / cold | tcpdump / npc warm | tcpdump / npc cold |${stenoCols} files read (of) | bytes read | same bytes as tcpdump | others' CPU, cores (npc / tcpdump) |`);
  L.push(`|---|---|---|---|---|---|${steno?.ok ? '---|---|' : ''}---|---|---|---|`);
  for (const [i, r] of rows.entries()) {
    const s = steno?.ok ? steno.rows[i] : undefined;
    const sc = steno?.ok ? (s ? ` ${f2(s.warm)} / ${f2(s.cold)} (${s.packets} pkts) | ${(s.warm / r.npc.warm).toFixed(2)} |` : ' n/a | |') : '';
    L.push(`| ${r.q.name} | ${r.packets} | ${f2(r.npc.warm)} / ${f2(r.npc.cold)} | ${f2(r.tcpdump.warm)} / ${f2(r.tcpdump.cold)} (${r.tcpdumpFiles} files) | ` +
      `${(r.tcpdump.warm / r.npc.warm).toFixed(1)} | ${(r.tcpdump.cold / r.npc.cold).toFixed(1)} |${sc} ` +
      `${r.explain.filesRead} (${r.explain.filesConsidered}) | ${r.explain.bytesRead} (${((100 * r.explain.bytesRead) / pcapBytes).toFixed(2)}%) | ` +
      `${r.identical ? 'yes' : `NO (tcpdump ${r.refPackets})`} | ${r.npc.others.toFixed(2)} / ${r.tcpdump.others.toFixed(2)} |`);
  }
  if (steno) L.push('', steno.ok ? `Stenographer: ${steno.note}` : `Stenographer not measured: ${steno.reason}`);
  if (problems.length) L.push('', 'Problems:', ...problems.map((p) => `- ${p}`));
  process.stdout.write(`${L.join('\n')}\n`);
  return problems.some((p) => p.includes('sha256') || p.includes('generated')) ? 1 : 0;
}

main().then(
  (code) => {
    runCleanups();
    process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(`extract bench: ${(e as Error).stack ?? String(e)}\n`);
    runCleanups();
    process.exit(1);
  },
);
