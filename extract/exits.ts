// npcapextract's exit codes beyond the shared ones (recorder/cli.ts Exit):
// the command line, the extraction service, npcapmanage and the README all use these.
import { CliError } from '../recorder/cli';
import { EmptyRangeError, parseRange, TimeError } from './time';

export const ExtractExit = {
  /** Bad arguments, or a filter libpcap rejects. */
  filter: 2,
  /** A timeline missing, unreadable, or not served by the extraction service. */
  timeline: 3,
  output: 4,
  time: 5,
  /** An empty or reversed range. */
  range: 6,
  /** Wrong password, unknown user or a user not authorized: one answer for all. */
  auth: 7,
  /** --verify: the bundle cannot be read or does not match its manifest. */
  verify: 8,
  /** The extraction service cannot be reached. */
  service: 9,
} as const;

/** -b and -e as a range in ns, or the one-line error and exit code for what is wrong with them. */
export function rangeOf(begin: string, end: string, localTime: boolean): { beginNs: bigint; endNs: bigint } {
  try {
    return parseRange(begin, end, localTime);
  } catch (err) {
    if (err instanceof TimeError) throw new CliError(err.message, ExtractExit.time);
    if (err instanceof EmptyRangeError) throw new CliError(err.message, ExtractExit.range);
    throw err;
  }
}
