// One event a line on stderr, readable on a terminal and in journald.
// Under systemd, stderr is a journal stream (JOURNAL_STREAM names it): each
// line then starts with a syslog priority such as "<4>", which journald turns
// into the entry's level, and the tool's name is left out because journald
// tags every entry with it already.
import fs from 'node:fs';

export type Level = 'error' | 'warning' | 'notice' | 'info';

const PRIORITY: Record<Level, number> = { error: 3, warning: 4, notice: 5, info: 6 };


/** True when stderr is the journal stream systemd connected, not a terminal or a file it was redirected to. */
function stderrIsJournal(): boolean {
  const stream = process.env.JOURNAL_STREAM;
  if (!stream) return false;
  try {
    const st = fs.fstatSync(2);
    return stream === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

const journal = stderrIsJournal();

/** One log line as written: a multi-line message (libpcap's, a system error) is folded so it stays one event. */
export function formatLine(name: string, level: Level, message: string): string {
  const text = message.replace(/\s*\n\s*/g, '; ').trimEnd();
  if (journal) return `<${PRIORITY[level]}>${text}\n`;
  // On a terminal an error needs no label (it is the last line before the exit); a warning does.
  return `${name}: ${level === 'warning' ? 'warning: ' : ''}${text}\n`;
}

export class Logger {
  private readonly threshold: number;

  constructor(
    private readonly name: string,
    verbosity: number,
  ) {
    // Notices and above by default; -v adds info (per-second figures, each file).
    this.threshold = PRIORITY[verbosity > 0 ? 'info' : 'notice'];
  }

  log(level: Level, message: string): void {
    if (PRIORITY[level] <= this.threshold) process.stderr.write(formatLine(this.name, level, message));
  }

  error(message: string): void {
    this.log('error', message);
  }
  warning(message: string): void {
    this.log('warning', message);
  }
  notice(message: string): void {
    this.log('notice', message);
  }
  info(message: string): void {
    this.log('info', message);
  }
}
