// npcaprepair: makes a dump set whole again after a crash or a change by
// hand, and says what it did, one line each.
import fs from 'node:fs';
import path from 'node:path';
import { CliError, Exit, newProgram, run } from '../recorder/cli';
import { DumpSet, openTimeline } from '../recorder/dumpset';
import { repairDumpSet } from '../recorder/repair';

const NAME = 'npcaprepair';

interface Flags {
  deep: boolean;
  localTime: boolean;
  filesPerDir: number;
}

async function main(): Promise<number> {
  const program = newProgram(NAME, 'Repair a dump set: files left unfinished, missing or damaged indexes, timeline links.')
    .argument('<storage>', 'storage directory (n2disk-ts -o)')
    .argument('<timeline>', 'timeline directory (n2disk-ts -A)')
    .option('-d, --deep', 'check every index against its pcap records (reads every pcap)', false)
    .option('--local-time', 'the timeline uses local time (when it has lost its description)', false)
    .addHelpText(
      'after',
      `
What it does: a NAME.pcap.part left by a recorder that died is cut at its last
whole record, indexed and published; a missing or damaged index is rebuilt
from its pcap (a pcap ending in a partial record is cut first); missing
timeline links are created; links that are dangling or point outside the
dump set are removed. A second run finds nothing to do and prints nothing.
It refuses to run while a recorder is using the storage directory.
Exit codes: 0 repaired or nothing to do, 1 problems left (listed), 2 bad
arguments, 3 the dump set cannot be opened or is in use.`,
    );
  program.parse(process.argv);
  const [storageArg, timelineArg] = program.args as [string, string];
  const flags = program.opts<Flags>();
  const storage = path.resolve(storageArg);
  const timeline = path.resolve(timelineArg);
  if (!fs.existsSync(storage)) throw new CliError(`${storage}: no such directory`, Exit.input);
  let localTime = flags.localTime;
  try {
    localTime = openTimeline(timeline).localTime;
  } catch {
    // A timeline that lost its description is described again by init().
  }
  const dumpSet = new DumpSet(storage, timeline, 100, localTime);
  try {
    dumpSet.lock();
  } catch (e) {
    throw new CliError((e as Error).message, Exit.input);
  }
  try {
    dumpSet.init();
    const result = repairDumpSet(dumpSet, { scope: 'full', deep: flags.deep }, (line) => process.stdout.write(line + '\n'));
    return result.left ? Exit.failure : Exit.ok;
  } finally {
    dumpSet.unlock();
  }
}

run(NAME, main);
