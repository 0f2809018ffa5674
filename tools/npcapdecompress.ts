// npcapdecompress: restores the pcap of a file compressed by n2disk-ts -M
// (NAME.pcap.lz4), byte for byte, to a file or to stdout.
import fs from 'node:fs';
import { CliError, Exit, newProgram, run } from '../recorder/cli';
import { decompressFile } from '../recorder/compressed-file';

const NAME = 'npcapdecompress';

async function main(): Promise<number> {
  const program = newProgram(NAME, 'Restore the pcap of a file compressed by n2disk-ts -M.')
    .requiredOption('-i, --input <file.pcap.lz4>', 'compressed file')
    .requiredOption('-o, --output <file|->', "pcap to write, or '-' for stdout")
    .addHelpText(
      'after',
      `
Every frame is checked (sizes, XXH32 checksums) before a byte of it is
written. A file output appears only when the whole input is good; stdout
gets the frames before a bad one.
Exit codes: 0 restored, 1 the input is truncated or corrupt (one line says
where), 2 bad arguments, 3 the input cannot be opened, 4 the output cannot
be written.`,
    );
  program.parse(process.argv);
  const opts = program.opts<{ input: string; output: string }>();
  try {
    fs.accessSync(opts.input, fs.constants.R_OK);
  } catch (e) {
    throw new CliError(`cannot open ${opts.input}: ${(e as Error).message}`, Exit.input);
  }
  const toStdout = opts.output === '-';
  // A file is written beside its final name and renamed once complete: never a wrong or partial pcap under it.
  const tmp = `${opts.output}.tmp-${process.pid}`;
  let fd: number;
  try {
    fd = toStdout ? 1 : fs.openSync(tmp, 'w', 0o640);
  } catch (e) {
    throw new CliError(`cannot write ${opts.output}: ${(e as Error).message}`, Exit.output);
  }
  let result;
  try {
    result = decompressFile(opts.input, (b) => {
      for (let done = 0; done < b.length;) done += fs.writeSync(fd, b, done);
    });
  } catch (e) {
    if (!toStdout) fs.rmSync(tmp, { force: true });
    // A reader gone from the pipe (| head) is not an error.
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') return Exit.ok;
    const code = (e as NodeJS.ErrnoException).syscall === 'write' ? Exit.output : Exit.input;
    throw new CliError(`${code === Exit.output ? `cannot write ${opts.output}` : `cannot read ${opts.input}`}: ${(e as Error).message}`, code);
  } finally {
    if (!toStdout) fs.closeSync(fd);
  }
  if (result.defect) {
    if (!toStdout) fs.rmSync(tmp, { force: true });
    throw new CliError(result.defect.message, Exit.failure);
  }
  if (!toStdout) fs.renameSync(tmp, opts.output);
  return Exit.ok;
}

run(NAME, main);
