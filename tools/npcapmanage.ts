// npcapmanage: lists, or with -d deletes, the files of a dump set that hold
// packets of a time range, each with its index and timeline links.
import fs from 'node:fs';
import path from 'node:path';
import { CliError, Exit, newProgram, run } from '../recorder/cli';
import { DumpSet, filesInRange, indexPathOf, openTimeline, TimelineInfo } from '../recorder/dumpset';
import { readIndexFile, spanOf, TimeSpan } from '../recorder/index-file';
import { ExtractExit, rangeOf } from '../extract/exits';
import { formatNs, formatsHelp } from '../extract/time';

const NAME = 'npcapmanage';

interface Flags {
  timeline: string;
  begin: string;
  end: string;
  delete: boolean;
  localTime: boolean;
}

interface Listed {
  pcap: string;
  /** From the index; unknown without one. */
  span?: TimeSpan;
  packets?: number;
  bytes: number;
}

async function main(): Promise<number> {
  const program = newProgram(NAME, 'List, or delete, the files of a dump set that hold packets of a time range.')
    .requiredOption('-t, --timeline <dir>', 'timeline directory (n2disk-ts -A)')
    .requiredOption('-b, --begin <time>', 'start of the range (inclusive)')
    .requiredOption('-e, --end <time>', 'end of the range (exclusive)')
    .option('-d, --delete', 'delete the files, with their indexes and timeline links', false)
    .option('--local-time', 'times without a zone are local time', false)
    .addHelpText(
      'after',
      `
Times: ${formatsHelp}.
Files are whole: a file is listed (and deleted) when any of its packets falls
in the range, so -d can remove packets just outside it; the list says which.
A file still being written is never deleted.
Exit codes: 0 done, 1 a file could not be deleted, 2 bad arguments,
3 not a timeline, 5 bad time, 6 empty range.`,
    );
  program.parse(process.argv);
  const flags = program.opts<Flags>();
  // The same mistakes end with the same exit codes as in npcapextract.
  const range = rangeOf(flags.begin, flags.end, flags.localTime);
  let info: TimelineInfo;
  try {
    info = openTimeline(path.resolve(flags.timeline));
  } catch (err) {
    throw new CliError((err as Error).message, ExtractExit.timeline);
  }
  const warn = (m: string): void => void process.stderr.write(`${NAME}: warning: ${m}\n`);
  const listed: Listed[] = [];
  for (const file of filesInRange(info, range.beginNs, range.endNs, warn)) {
    if (file.partial) {
      if (flags.delete) warn(`${file.pcap} is being written; not deleted`);
      continue;
    }
    const size = fs.statSync(file.pcap).size;
    try {
      const ix = readIndexFile(file.index);
      const span = spanOf(ix);
      // The timeline's slots are 10 minutes wide; the index says whether the file really has packets in the range.
      if (!span || span.maxNs < range.beginNs || span.minNs >= range.endNs) continue;
      listed.push({ pcap: file.pcap, span, packets: ix.packets, bytes: size });
    } catch {
      listed.push({ pcap: file.pcap, bytes: size }); // without an index, the slot is all we know
    }
  }

  const dumpSet = new DumpSet(info.storage, info.timeline, 100, info.localTime);
  let failed = 0;
  for (const f of listed) {
    const span = f.span ? `${formatNs(f.span.minNs)} ${formatNs(f.span.maxNs)}` : '(no index) (no index)';
    const outside = f.span && (f.span.minNs < range.beginNs || f.span.maxNs >= range.endNs) ? ' partly outside the range' : '';
    if (flags.delete) {
      try {
        dumpSet.remove(f.pcap, f.span);
      } catch (err) {
        warn(`cannot delete ${f.pcap}: ${(err as Error).message}`);
        failed++;
        continue;
      }
    }
    process.stdout.write(`${flags.delete ? 'deleted ' : ''}${f.pcap} ${span} ${f.packets ?? '-'} packets ${f.bytes} bytes${outside}\n`);
  }
  if (!flags.delete && listed.length) {
    const bytes = listed.reduce((n, f) => n + f.bytes + (fs.existsSync(indexPathOf(f.pcap)) ? fs.statSync(indexPathOf(f.pcap)).size : 0), 0);
    process.stderr.write(`${NAME}: ${listed.length} files, ${bytes} bytes with their indexes\n`);
  }
  return failed ? Exit.failure : Exit.ok;
}

run(NAME, main);
