// The audit trail of the extraction service: one JSON line per attempt and
// one per extraction, appended to a file that only the service's user may
// write. Each line is one write(2) on an O_APPEND descriptor, so lines of
// concurrent requests never interleave.
import fs from 'node:fs';
import { Mode } from './request';

/** The process at the other end of the socket, from the kernel (SO_PEERCRED). */
export interface Peer {
  pid: number;
  uid: number;
  gid: number;
  /** The uid's name, when the system knows it. */
  user: string | null;
}

export interface AttemptRecord {
  event: 'auth';
  user: string;
  peer: Peer | null;
  outcome: 'ok' | 'denied';
  /** Why it was denied; never shown to the caller. */
  reason?: string;
}

export interface ExtractionRecord {
  event: 'extract';
  user: string;
  peer: Peer | null;
  outcome: 'ok' | 'failed';
  exit: number;
  error?: string;
  mode: Mode;
  timelines: string[];
  range: { begin: string; end: string };
  filter: string;
  /** Packet files opened. */
  files: string[];
  packets: number;
  /** Captured bytes of the packets extracted. */
  bytes: number;
  /** Bytes sent to the caller, and their sha256. */
  sent: number;
  sha256: string;
}

export class AuditError extends Error {}

/** Longest user name written as is; a longer one is cut and its length noted. */
const MAX_LOGGED_NAME = 256;

function loggedName(name: string): string {
  return name.length <= MAX_LOGGED_NAME ? name : `${name.slice(0, MAX_LOGGED_NAME)}... (${name.length} characters)`;
}

export class AuditLog {
  private readonly fd: number;

  constructor(readonly file: string) {
    try {
      this.fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o640);
    } catch (err) {
      throw new AuditError(`cannot open the audit log ${file}: ${(err as Error).message}`);
    }
    const st = fs.fstatSync(this.fd);
    // A log others can write proves nothing.
    if (!st.isFile() || (st.mode & 0o022) !== 0) {
      fs.closeSync(this.fd);
      throw new AuditError(`the audit log ${file} must be a regular file writable only by its owner (mode ${(st.mode & 0o777).toString(8)})`);
    }
  }

  /** Throws when the line cannot be written: the service then does not extract. */
  write(record: AttemptRecord | ExtractionRecord): void {
    const line = JSON.stringify({ time: new Date().toISOString(), ...record, user: loggedName(record.user) }) + '\n';
    fs.writeSync(this.fd, line);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
