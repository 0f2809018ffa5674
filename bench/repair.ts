// How long npcaprepair takes per GB, for each kind of work it does: checking
// a healthy dump set, checking it against every pcap (--deep), rebuilding
// every index, and recovering a file left unfinished by a crash. Beside it,
// `tcpdump -r` reading the same files, the floor for anything that reads them.
//
//   node dist/bench/repair.js [--gb 2]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generatePcap } from './extract-lib/pcapgen';
import { dropCaches, onCleanup, runCleanups, timed, Timed } from './extract-lib/proc';

const ROOT = path.join(__dirname, '..', '..');
const GiB = 2 ** 30;

function log(m: string): void {
  process.stderr.write(`${m}\n`);
}

function pcaps(dump: string): string[] {
  return fs
    .readdirSync(dump)
    .filter((d) => /^\d+$/.test(d))
    .flatMap((d) => fs.readdirSync(path.join(dump, d)).filter((f) => f.endsWith('.pcap')).map((f) => path.join(dump, d, f)));
}

function main(): void {
  const i = process.argv.indexOf('--gb');
  const gib = i > 0 ? Number(process.argv[i + 1]) : 2;
  if (!(gib > 0)) throw new Error('usage: repair.js [--gb N]');
  const work = fs.mkdtempSync(path.join('/var/tmp', 'n2dts-repair-'));
  onCleanup(() => fs.rmSync(work, { recursive: true, force: true }));
  const src = path.join(work, 'source.pcap');
  const dump = path.join(work, 'dump');
  log(`generating ${gib} GiB of synthetic traffic`);
  const gen = generatePcap(src, { bytes: gib * GiB, seconds: 3600, startSec: 1_700_000_000, rareHost: '192.0.2.1', rarePackets: 20, seed: 7 });
  timed(['node', path.join(ROOT, 'bin/n2disk-ts.js'), '-i', src, '-o', dump]);
  fs.rmSync(src);
  const files = pcaps(dump);
  const bytes = files.reduce((n, f) => n + fs.statSync(f).size, 0);
  const gb = bytes / 1e9;
  const repair = (...extra: string[]): Timed => {
    dropCaches();
    return timed(['node', path.join(ROOT, 'bin/npcaprepair.js'), ...extra, dump, path.join(dump, 'timeline')]);
  };

  const rows: [string, Timed][] = [];
  rows.push(['check a healthy dump set', repair()]);
  rows.push(['check it against every pcap (--deep)', repair('--deep')]);
  for (const f of files) fs.rmSync(f + '.idx');
  const rebuilt = repair();
  if (rebuilt.stdout.split('\n').filter((l) => l.startsWith('rebuilt index')).length !== files.length) throw new Error('not every index was rebuilt');
  rows.push(['rebuild every index', rebuilt]);
  dropCaches();
  rows.push(['tcpdump -r of the same files (reference)', timed(['sh', '-c', `for f in ${files.join(' ')}; do tcpdump -r $f -w /dev/null 2>/dev/null; done`])]);

  // A crash leaves the file being written as a .part ending in a partial record.
  const biggest = files.sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0]!;
  const partBytes = fs.statSync(biggest).size;
  const part = path.join(dump, `${path.basename(biggest)}.part`);
  fs.renameSync(biggest, part);
  fs.rmSync(biggest + '.idx');
  fs.truncateSync(part, partBytes - 100);
  const recovered = repair();
  if (!/recovered /.test(recovered.stdout)) throw new Error(`the part file was not recovered: ${recovered.stdout}`);

  log('');
  console.log(`npcaprepair on ${files.length} files, ${gb.toFixed(2)} GB, ${gen.packets} packets, ${gen.flows} flows; page cache dropped before each run; ${os.cpus().length} CPUs`);
  console.log('| work | seconds | s/GB | CPU s |');
  console.log('|---|---:|---:|---:|');
  for (const [what, t] of rows) console.log(`| ${what} | ${t.seconds.toFixed(2)} | ${(t.seconds / gb).toFixed(2)} | ${t.cpu.toFixed(2)} |`);
  console.log(`| a whole run that also recovers one unfinished file of ${(partBytes / 1e6).toFixed(0)} MB | ${recovered.seconds.toFixed(2)} | - | ${recovered.cpu.toFixed(2)} |`);
  const ratio = rows[2]![1].seconds / rows[3]![1].seconds;
  console.log(`rebuilding every index takes ${ratio.toFixed(2)}x the time tcpdump takes to read the files`);
}

try {
  main();
} finally {
  runCleanups();
}
