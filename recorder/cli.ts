// Command-line conventions shared by every tool: commander for parsing,
// one-line errors on stderr prefixed with the tool's name, and exit codes
// scripts can rely on.
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { formatLine } from './log';

/** Exit codes; each kind of failure has its own. */
export const Exit = {
  ok: 0,
  /** Something failed while running (a write, a broken input file). */
  failure: 1,
  /** Bad flags or arguments. */
  usage: 2,
  /** The input cannot be opened: no such interface or file, a bad filter. */
  input: 3,
  /** The output cannot be written: a directory that is missing or not writable. */
  output: 4,
} as const;

/** An expected error: reported as one line, never with a stack trace. */
export class CliError extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
  }
}

export function newProgram(name: string, description: string): Command {
  const program = new Command(name);
  program
    .description(description)
    .configureOutput({
      outputError: (str, write) => write(formatLine(name, 'error', str.replace(/^error: /, ''))),
    })
    .exitOverride((err: CommanderError) => {
      const helpOrVersion = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
      process.exit(helpOrVersion ? Exit.ok : Exit.usage);
    });
  return program;
}

/** Parser for commander options taking a whole number within bounds. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`'${value}' is not a whole number.`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`${n} is out of range (${min} to ${max}).`);
    return n;
  };
}

/** Runs a tool's main function, turning expected errors into one line and an exit code. */
export function run(name: string, main: () => Promise<number | void>): void {
  main().then(
    (code) => {
      process.exitCode = code ?? Exit.ok;
    },
    (err: unknown) => {
      if (err instanceof CliError) {
        process.stderr.write(formatLine(name, 'error', err.message));
        process.exit(err.code);
      }
      // Unexpected, so the stack is worth having; folded into one line, it stays one journal entry.
      process.stderr.write(formatLine(name, 'error', `internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`));
      process.exit(Exit.failure);
    },
  );
}
