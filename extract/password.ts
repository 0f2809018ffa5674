// Where npcapextract gets the password: the terminal without echo, or for
// scripts a file descriptor or a file only its owner can read. Never the
// command line, which every user sees in ps. Only the first line counts,
// and reading stops after MAX_SECRET_READ bytes: the service refuses
// anything that long, and says so in the same words as any other failure.
import fs from 'node:fs';
import tty from 'node:tty';
import { CliError, Exit } from '../recorder/cli';

const MAX_SECRET_READ = 4096;

function firstLine(buf: Buffer): string {
  const nl = buf.indexOf(0x0a);
  return buf.subarray(0, nl < 0 ? buf.length : nl).toString('utf8').replace(/\r$/, '');
}

/**
 * Reads up to the first newline, synchronously: an asynchronous read still in
 * flight after we stop could land on whatever reuses the descriptor next
 * (the service's socket) and swallow its answer.
 */
function readFirstLine(fd: number): string {
  const buf = Buffer.alloc(MAX_SECRET_READ + 1);
  let size = 0;
  while (size < buf.length) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, size, buf.length - size, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      // A non-blocking pipe with nothing yet: wait a little, without spinning.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      continue;
    }
    if (n === 0) break;
    const newline = buf.subarray(size, size + n).includes(0x0a);
    size += n;
    if (newline) break;
  }
  return firstLine(buf.subarray(0, size));
}

/** --password-fd N: the first line read from descriptor N (a pipe, a here-document). */
export function passwordFromFd(fd: number): string {
  try {
    return readFirstLine(fd);
  } catch (err) {
    throw new CliError(`--password-fd ${fd}: ${(err as Error).message}`, Exit.usage);
  }
}

/** --password-file FILE: a regular file of the caller's, readable by nobody else. */
export function passwordFromFile(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    throw new CliError(`--password-file ${file}: ${(err as Error).message}`, Exit.usage);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile() || st.uid !== process.getuid!() || (st.mode & 0o077) !== 0) {
    fs.closeSync(fd);
    throw new CliError(`--password-file ${file}: must be a regular file of yours that only you can read (chmod 600)`, Exit.usage);
  }
  try {
    return readFirstLine(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Asks on the controlling terminal, echo off. */
export function passwordFromTerminal(user: string): Promise<string> {
  let fd: number;
  try {
    fd = fs.openSync('/dev/tty', 'r+');
  } catch {
    throw new CliError('no terminal to ask for the password: give --password-fd N or --password-file FILE', Exit.usage);
  }
  const input = new tty.ReadStream(fd);
  fs.writeSync(fd, `Password for ${user}: `);
  input.setRawMode(true);
  return new Promise<string>((resolve, reject) => {
    let typed = '';
    const finish = (err: CliError | undefined): void => {
      input.setRawMode(false);
      input.removeAllListeners('data');
      fs.writeSync(fd, '\n');
      input.destroy();
      if (err) reject(err);
      else resolve(typed);
    };
    input.on('data', (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || (ch === '\x04' && !typed)) return finish(undefined);
        if (ch === '\x03') return finish(new CliError('interrupted', 130));
        if (ch === '\x7f' || ch === '\b') typed = [...typed].slice(0, -1).join('');
        else if (Buffer.byteLength(typed) <= MAX_SECRET_READ) typed += ch;
      }
    });
  });
}
