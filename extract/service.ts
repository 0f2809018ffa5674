// npcapextractd: the extraction service. It runs as the dump set's owner
// and listens on a Unix socket anyone may connect to. For each connection it
// proves the user through PAM and checks that they are authorized, before any
// packet file is opened; then it runs the extraction engine with the caller's
// query on timelines it is configured to serve, and streams the result back.
// Every attempt and every extraction is appended to the audit log.
import { createHash, Hash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { peerCredentials, userName } from '../native/addon';
import { CliError, Exit, newProgram, run } from '../recorder/cli';
import { AuditError, AuditLog, ExtractionRecord, Peer } from './audit';
import { checkUser } from './auth';
import { ConfigError, configPath, ExtractConfig, loadConfig } from './config';
import { ExtractExit } from './exits';
import { perform } from './perform';
import { encodeFrame, FrameReader, FrameType, Hello, MAX_REQUEST_BYTES } from './protocol';
import { ExtractRequest, requestFromJson } from './request';
import { formatNs } from './time';

const NAME = 'npcapextractd';
/** The answer to every failed attempt, whatever failed. */
const AUTH_FAILED = 'npcapextract: authentication failed\n';
/** A client that has not sent its request by then is dropped. */
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_CONNECTIONS = 16;

function peerOf(conn: net.Socket): Peer | null {
  // net.Socket does not expose its descriptor; its libuv handle does, on Unix.
  const fd = (conn as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const cred = fd !== undefined && fd >= 0 ? peerCredentials(fd) : null;
  return cred && { ...cred, user: userName(cred.uid) };
}

/** Output frames to the client, counted and hashed: the audit log records the sha256 of exactly what was sent. */
class ClientStream extends Writable {
  sent = 0;
  private readonly hash: Hash = createHash('sha256');

  constructor(private readonly conn: net.Socket) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.conn.destroyed) return done(new Error('the client went away'));
    this.hash.update(chunk);
    this.sent += chunk.length;
    if (this.conn.write(encodeFrame(FrameType.data, chunk))) done();
    else {
      const onDrain = (): void => {
        this.conn.off('close', onClose);
        done();
      };
      const onClose = (): void => {
        this.conn.off('drain', onDrain);
        done(new Error('the client went away'));
      };
      this.conn.once('drain', onDrain);
      this.conn.once('close', onClose);
    }
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

/**
 * The first frame of a connection: the request; or why there is none
 * (too large, not a request, cut short); or undefined when the client sent
 * nothing at all, which is no attempt.
 */
function readHello(conn: net.Socket): Promise<Buffer | { problem: string } | undefined> {
  return new Promise((resolve) => {
    const reader = new FrameReader(MAX_REQUEST_BYTES);
    let received = 0;
    const done = (result: Buffer | { problem: string } | undefined): void => {
      conn.off('data', onData);
      conn.setTimeout(0);
      resolve(result);
    };
    const cutShort = (): void => done(received ? { problem: 'request cut short' } : undefined);
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      try {
        const [first] = reader.push(chunk);
        if (first) done(first.type === FrameType.request ? first.payload : { problem: 'first frame is not a request' });
      } catch (err) {
        done({ problem: (err as Error).message });
      }
    };
    conn.on('data', onData);
    conn.setTimeout(REQUEST_TIMEOUT_MS, cutShort);
    conn.once('end', cutShort);
  });
}

function parseHello(payload: Buffer): { user: string; password: string; request: ExtractRequest } | { user: string; malformed: string } {
  let hello: Partial<Hello>;
  try {
    hello = JSON.parse(payload.toString('utf8')) as Partial<Hello>;
  } catch {
    return { user: '', malformed: 'request is not JSON' };
  }
  const user = typeof hello.user === 'string' ? hello.user : '';
  if (typeof hello.password !== 'string') return { user, malformed: 'request has no password' };
  try {
    return { user, password: hello.password, request: requestFromJson(hello.request) };
  } catch (err) {
    return { user, malformed: (err as Error).message };
  }
}

/** Refuses timelines the configuration does not list (compared by real path: no link leads elsewhere). */
function checkTimelines(req: ExtractRequest, config: ExtractConfig): void {
  const real = (p: string): string | undefined => {
    try {
      return fs.realpathSync(p);
    } catch {
      return undefined;
    }
  };
  const served = new Set(config.timelines.map(real).filter((p): p is string => p !== undefined));
  for (const t of req.timelines) {
    const r = real(t);
    if (r === undefined || !served.has(r)) throw new CliError(`${t}: not a timeline this extraction service serves`, ExtractExit.timeline);
  }
}

class Service {
  constructor(
    private readonly config: ExtractConfig,
    private readonly audit: AuditLog,
  ) {}

  private send(conn: net.Socket, type: typeof FrameType.message | typeof FrameType.end, text: string): void {
    if (!conn.destroyed) conn.write(encodeFrame(type, Buffer.from(text)));
  }

  private finish(conn: net.Socket, code: number): void {
    this.send(conn, FrameType.end, JSON.stringify({ code }));
    conn.end();
  }

  async handle(conn: net.Socket): Promise<void> {
    conn.on('error', () => undefined); // a client that goes away is noted by the extraction, if one runs
    const started = Date.now();
    const peer = peerOf(conn);
    const payload = await readHello(conn);
    if (!payload) {
      conn.destroy();
      return;
    }
    const hello = Buffer.isBuffer(payload) ? parseHello(payload) : { user: '', malformed: payload.problem };
    const verdict = 'malformed' in hello ? { ok: false as const, reason: `malformed request: ${hello.malformed}` } : await checkUser(hello.user, hello.password, this.config);
    this.audit.write({ event: 'auth', user: hello.user, peer, outcome: verdict.ok ? 'ok' : 'denied', ...(verdict.ok ? {} : { reason: verdict.reason }) });
    if (!verdict.ok || 'malformed' in hello) {
      await sleep(Math.max(0, started + this.config.failDelayMs - Date.now()));
      this.send(conn, FrameType.message, AUTH_FAILED);
      this.finish(conn, ExtractExit.auth);
      return;
    }
    await this.extract(conn, hello.user, peer, hello.request);
  }

  private async extract(conn: net.Socket, user: string, peer: Peer | null, req: ExtractRequest): Promise<void> {
    const sink = new ClientStream(conn);
    // A failed write reaches the extraction as a rejected write; the event itself needs no handling.
    sink.on('error', () => undefined);
    const record: ExtractionRecord = {
      event: 'extract',
      user,
      peer,
      outcome: 'ok',
      exit: Exit.ok,
      mode: req.mode,
      timelines: req.timelines,
      range: { begin: formatNs(req.beginNs), end: formatNs(req.endNs) },
      filter: req.filter,
      files: [],
      packets: 0,
      bytes: 0,
      sent: 0,
      sha256: '',
    };
    try {
      checkTimelines(req, this.config);
      const outcome = await perform(req, {
        data: sink,
        text: sink,
        note: (line) => this.send(conn, FrameType.message, `npcapextract: ${line}\n`),
        split: { maxBytes: 0, maxPackets: 0 },
        progress: false,
        user,
      });
      Object.assign(record, { files: outcome.files, packets: outcome.packets, bytes: outcome.bytes });
    } catch (err) {
      const expected = err instanceof CliError;
      record.outcome = 'failed';
      record.exit = expected ? err.code : Exit.failure;
      record.error = (err as Error).message;
      if (!expected) process.stderr.write(`${NAME}: extraction for ${user} failed: ${(err as Error).stack ?? String(err)}\n`);
      this.send(conn, FrameType.message, `npcapextract: ${expected ? err.message : 'the extraction failed on the service (its log says why)'}\n`);
    }
    record.sent = sink.sent;
    record.sha256 = sink.digest();
    try {
      this.audit.write(record);
    } catch (err) {
      process.stderr.write(`${NAME}: cannot write the audit log: ${(err as Error).message}\n`);
    }
    this.finish(conn, record.exit);
  }
}

async function main(): Promise<number> {
  const opts = newProgram(NAME, 'The extraction service: authenticated, audited extraction for users who cannot read the dump set.')
    .option('-c, --config <file>', `configuration file (default $NPCAPEXTRACT_CONF or ${configPath()})`)
    .parse(process.argv)
    .opts<{ config?: string }>();
  let config: ExtractConfig;
  let audit: AuditLog;
  try {
    config = loadConfig(opts.config ?? configPath());
    if (!config.file) throw new ConfigError(`${opts.config ?? configPath()}: no such file`);
    if (!config.timelines.length) throw new ConfigError(`${config.file}: no 'timeline =' to serve`);
    if (!config.groups.length && !config.users.length) throw new ConfigError(`${config.file}: nobody is authorized (give 'groups =' or 'users =')`);
    audit = new AuditLog(config.audit);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof AuditError) throw new CliError(err.message, Exit.usage);
    throw err;
  }

  const service = new Service(config, audit);
  // Half-open: a client may close its side once the request is sent and still get the answer.
  const server = net.createServer({ allowHalfOpen: true }, (conn) => {
    service.handle(conn).catch((err: unknown) => {
      // The audit log could not be written: the request is refused, not served unrecorded.
      process.stderr.write(`${NAME}: ${err instanceof Error ? err.message : String(err)}\n`);
      conn.destroy();
    });
  });
  server.maxConnections = MAX_CONNECTIONS;
  // A socket left by a previous run that did not stop cleanly.
  if (fs.existsSync(config.socket) && fs.lstatSync(config.socket).isSocket()) fs.unlinkSync(config.socket);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(config.socket, resolve));
  // Anyone may connect: PAM decides who is served.
  fs.chmodSync(config.socket, 0o666);
  process.stderr.write(`${NAME}: serving ${config.timelines.join(', ')} on ${config.socket}\n`);

  await new Promise<void>((resolve) => {
    const stop = (): void => {
      server.close(() => resolve());
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  audit.close();
  return Exit.ok;
}

run(NAME, main);
