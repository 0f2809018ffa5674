// The extraction service's protocol on its Unix socket: frames of a type
// byte, a 32-bit big-endian length and a payload. The client sends one
// request frame; the service answers with output, message and end frames.
export const FrameType = {
  /** Client: JSON {user, password, request}. */
  request: 0x51,
  /** Service: bytes of the output (pcap, pcapng, tar, or text for -l and --flows). */
  data: 0x4f,
  /** Service: text for the client's stderr. */
  message: 0x45,
  /** Service: JSON {code}, the exit code; nothing follows. */
  end: 0x58,
} as const;

type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

export interface Frame {
  type: number;
  payload: Buffer;
}

const HEADER = 5;
/** Largest request: a password, a user and a query are far smaller. */
export const MAX_REQUEST_BYTES = 1 << 20;

export function encodeFrame(type: FrameTypeCode, payload: Buffer): Buffer {
  const header = Buffer.alloc(HEADER);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

export class FrameError extends Error {}

/** Splits a byte stream into frames, refusing any larger than `maxPayload`. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxPayload: number) {}

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: Frame[] = [];
    while (this.buf.length >= HEADER) {
      const len = this.buf.readUInt32BE(1);
      if (len > this.maxPayload) throw new FrameError(`frame of ${len} bytes (at most ${this.maxPayload})`);
      if (this.buf.length < HEADER + len) break;
      frames.push({ type: this.buf[0]!, payload: this.buf.subarray(HEADER, HEADER + len) });
      this.buf = this.buf.subarray(HEADER + len);
    }
    return frames;
  }
}

/** What the client sends: who, the secret, and the query. */
export interface Hello {
  user: string;
  password: string;
  request: Record<string, unknown>;
}
