// make demo: records real traffic with built-in defaults into ./n2disk-data
// and shows what the dump set holds. Traffic comes from captures shipped in
// test/fixtures, imported with their own timestamps, so no network is needed.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { INDEX_SUFFIX, listStorageFiles } from '../recorder/dumpset';
import { readIndexFile } from '../recorder/index-file';

const root = path.resolve(__dirname, '..', '..');
const fixtures = path.join(root, 'test', 'fixtures');
const dumpDir = path.resolve('n2disk-data');
const DEMO_CAPTURES = ['android.pcap', 'dns_exfiltration.pcap', 'log4j-webapp-exploit.pcap', 'psiphon3.pcap', 'quic-mvfst-exp.pcap'];

function human(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) {
    bytes /= 1024;
    i++;
  }
  return `${bytes.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function main(): void {
  fs.rmSync(dumpDir, { recursive: true, force: true });
  const recorder = path.join(root, 'bin', 'n2disk-ts.js');
  for (const capture of DEMO_CAPTURES) {
    execFileSync(process.execPath, [recorder, '-i', path.join(fixtures, capture), '-o', dumpDir, '-N', '500'], { stdio: 'inherit' });
  }

  const files = listStorageFiles(dumpDir);
  let packets = 0;
  let bytes = 0;
  let flows = 0;
  let indexBytes = 0;
  const talkers = new Map<string, number>();
  for (const file of files) {
    const index = readIndexFile(file + INDEX_SUFFIX);
    packets += index.packets;
    bytes += fs.statSync(file).size;
    indexBytes += fs.statSync(file + INDEX_SUFFIX).size;
    flows += index.flowCount;
    for (const flow of index.flows()) {
      for (const addr of [flow.addrA, flow.addrB]) {
        if (addr) talkers.set(addr, (talkers.get(addr) ?? 0) + flow.bytes);
      }
    }
  }
  console.log(`Recorded ${DEMO_CAPTURES.length} captures into ${dumpDir}`);
  console.log(`  files    ${files.length} pcap files (each with its index), timeline in ${path.join(dumpDir, 'timeline')}`);
  console.log(`  packets  ${packets}`);
  console.log(`  bytes    ${human(bytes)} of pcap, ${human(indexBytes)} of index (${((100 * indexBytes) / bytes).toFixed(2)}%)`);
  console.log(`  flows    ${flows}`);
  console.log('  top talkers by bytes:');
  for (const [addr, b] of [...talkers].sort((x, y) => y[1] - x[1]).slice(0, 10)) {
    console.log(`    ${addr.padEnd(40)} ${human(b)}`);
  }
  const top = [...talkers].sort((x, y) => y[1] - x[1])[0]?.[0];
  if (top) {
    const args = ['-t', path.join(dumpDir, 'timeline'), '-b', '0', '-e', 'now', '-f', `host ${top}`, '--flows'];
    console.log(`\nWhat ${top} talked to (npcapextract ${args.join(' ')}):`);
    const flows = execFileSync(process.execPath, [path.join(root, 'bin', 'npcapextract.js'), ...args], { encoding: 'utf8' });
    console.log(flows.split('\n').slice(0, 8).join('\n'));
  }
  console.log(`Try: npx npcapprintindex -i ${files[0]}${INDEX_SUFFIX}`);
}

main();
