// npcapindex: writes the n2disk-ts index of any classic pcap file, so that
// npcapextract can use files recorded by other tools.
import { CliError, Exit, newProgram, run } from '../recorder/cli';
import { INDEX_SUFFIX } from '../recorder/dumpset';
import { writeIndexFile } from '../recorder/index-file';
import { PcapFormatError } from '../recorder/pcap-file';
import { indexPcapFile, PcapIndex } from '../recorder/pcap-index';

const NAME = 'npcapindex';

async function main(): Promise<number> {
  const program = newProgram(NAME, 'Write the index of a pcap file.')
    .requiredOption('-i, --input <file.pcap>', 'pcap file to index (little-endian classic pcap)')
    .option('-o, --output <file.idx>', 'index to write (default: INPUT.idx, the name npcapextract looks for)')
    .addHelpText(
      'after',
      `
Exit codes: 0 indexed, 1 indexed up to a record that is cut short or invalid
(the rest of the file is not indexed, and npcapextract does not read it),
2 bad arguments, 3 the input is not a usable pcap, 4 the index cannot be written.`,
    );
  program.parse(process.argv);
  const opts = program.opts<{ input: string; output?: string }>();
  const output = opts.output ?? opts.input + INDEX_SUFFIX;

  let result: PcapIndex;
  try {
    result = indexPcapFile(opts.input);
  } catch (e) {
    if (e instanceof PcapFormatError) throw new CliError(e.message, Exit.input);
    throw new CliError(`cannot read ${opts.input}: ${(e as Error).message}`, Exit.input);
  }
  try {
    writeIndexFile(output, result.index);
  } catch (e) {
    throw new CliError(`cannot write ${output}: ${(e as Error).message}`, Exit.output);
  }
  if (result.tail) {
    process.stderr.write(`${NAME}: ${opts.input}: ${result.tail} at byte ${result.goodBytes} of ${result.fileBytes}; indexed the ${result.packets} packets before it\n`);
    return Exit.failure;
  }
  return Exit.ok;
}

run(NAME, main);
