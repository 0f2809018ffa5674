// npcapextract as the extraction service's client: it sends who the user
// is, the password and the query, and passes what comes back to the output,
// stderr and its own exit code. It never opens a packet file itself.
import net from 'node:net';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { CliError, Exit } from '../recorder/cli';
import { ExtractExit } from './exits';
import { encodeFrame, FrameReader, FrameType, Hello } from './protocol';

/** Largest frame the service sends (its output is sent in pieces of about 1 MB). */
const MAX_REPLY_FRAME = 64 << 20;

/**
 * Runs one request through the service at `socketPath`. `output` is called
 * on the first output bytes, so that nothing is created when nothing comes.
 * Resolves to the exit code the service chose.
 */
export async function askService(socketPath: string, hello: Hello, output: () => Writable): Promise<number> {
  const conn = net.createConnection(socketPath);
  try {
    await once(conn, 'connect');
  } catch (err) {
    throw new CliError(`cannot reach the extraction service at ${socketPath}: ${(err as Error).message}`, ExtractExit.service);
  }
  conn.write(encodeFrame(FrameType.request, Buffer.from(JSON.stringify(hello))));
  const reader = new FrameReader(MAX_REPLY_FRAME);
  let out: Writable | undefined;
  let code: number | undefined;
  try {
    for await (const chunk of conn) {
      for (const frame of reader.push(chunk as Buffer)) {
        if (frame.type === FrameType.data) {
          out ??= output();
          // Backpressure: the socket is not read while the output is full.
          if (!out.write(frame.payload)) await once(out, 'drain');
        } else if (frame.type === FrameType.message) {
          process.stderr.write(frame.payload);
        } else if (frame.type === FrameType.end) {
          code = (JSON.parse(frame.payload.toString('utf8')) as { code: number }).code;
        }
      }
      if (code !== undefined) break;
    }
  } catch (err) {
    // The service may close as soon as it has answered a refused request.
    if (code === undefined) throw new CliError(`the extraction service connection failed: ${(err as Error).message}`, Exit.failure);
  } finally {
    conn.destroy();
  }
  if (out && out !== process.stdout) await new Promise<void>((resolve, reject) => out!.end((err?: Error | null) => (err ? reject(err) : resolve())));
  if (code === undefined) throw new CliError('the extraction service closed the connection before it finished', Exit.failure);
  return code;
}
