// Configuration files in n2disk's format: one option a line, written
// `-i=eth1`, `--disk-limit=80%` or `-i eth1`, with blank lines and `#`
// comments. Each line is checked against the command's own option table, so a
// mistake is reported as FILE:LINE before anything runs; the lines then become
// command-line arguments placed before the real ones, which therefore win.
import fs from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { CliError, Exit } from './cli';

/** The flag that names a configuration file on the command line. */
export const CONFIG_FLAG = '--config';

const LINE = /^(--[A-Za-z0-9][A-Za-z0-9-]*|-[A-Za-z0-9])(?:(?:=|\s+)(.*))?$/;

/** A value written in quotes (`--exec-cmd="gzip -9"`) stands for what is inside them. */
function unquote(value: string): string {
  const m = /^(["'])(.*)\1$/.exec(value);
  return m ? m[2]! : value;
}

function findOption(program: Command, flag: string): Option | undefined {
  return program.options.find((o) => o.short === flag || o.long === flag);
}

/** Arguments for one line, or a message saying what is wrong with it. */
function lineArgs(program: Command, text: string): string[] | string {
  const m = LINE.exec(text);
  if (!m) return `expected an option such as -i=eth1 or --disk-limit=80%, not '${text}'`;
  const flag = m[1]!;
  const value = m[2] === undefined ? undefined : unquote(m[2].trim());
  if (flag === CONFIG_FLAG) return `${CONFIG_FLAG} cannot be used inside a configuration file`;
  const opt = findOption(program, flag);
  if (!opt) return `unknown option '${flag}'`;
  const takesValue = opt.required || opt.optional;
  if (!takesValue) return value === undefined ? [flag] : `option '${opt.flags}' takes no value`;
  if (value === undefined || value === '') {
    return opt.optional ? [flag] : `option '${opt.flags}' needs a value`;
  }
  if (opt.parseArg) {
    try {
      opt.parseArg(value, opt.defaultValue);
    } catch (err) {
      if (err instanceof InvalidArgumentError) return `option '${opt.flags}': ${err.message}`;
      throw err;
    }
  }
  // The joined form keeps a value that starts with '-' attached to its option.
  return [opt.long ? `${opt.long}=${value}` : `${flag}${value}`];
}

/** The arguments a configuration file stands for; a wrong line is a usage error naming FILE:LINE. */
export function readConfigFile(program: Command, file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read configuration file ${file}: ${(err as Error).message}`, Exit.usage);
  }
  const args: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const result = lineArgs(program, line);
    if (typeof result === 'string') throw new CliError(`${file}:${i + 1}: ${result}`, Exit.usage);
    args.push(...result);
  });
  return args;
}

/**
 * The command line with its configuration file, if any, expanded in place of
 * `--config FILE` (or `--config=FILE`), or of a first argument that is not
 * an option, as n2disk takes its configuration file. argv is process.argv.
 */
export function expandConfig(program: Command, argv: readonly string[]): string[] {
  const [node, script, ...args] = argv;
  let file: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (i === 0 && !arg.startsWith('-')) file = arg;
    else if (arg === CONFIG_FLAG && i + 1 < args.length) file = args[++i];
    else if (arg.startsWith(`${CONFIG_FLAG}=`)) file = arg.slice(CONFIG_FLAG.length + 1);
    else rest.push(arg);
  }
  return [node!, script!, ...(file === undefined ? [] : readConfigFile(program, file)), ...rest];
}
