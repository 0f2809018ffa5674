// Evidence bundles: a tar that plain `tar -x` and `sha256sum -c SHA256SUMS`
// read, holding one capture per timeline, a manifest.json saying what was
// asked, by whom, where and with what tool, and for each capture its packets,
// bytes and sha256; and the check of a bundle against its manifest.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { PCAP_HEADER_BYTES, pcapFormatOf } from '../recorder/pcap-file';
import { Extraction, Written } from './engine';
import { ExtractRequest } from './request';
import { formatNs } from './time';

const MANIFEST = 'manifest.json';
const SUMS = 'SHA256SUMS';

export interface ManifestFile {
  name: string;
  timeline: string;
  packets: number;
  /** Size of the capture file. */
  bytes: number;
  sha256: string;
}

export interface Manifest {
  tool: string;
  version: string;
  created: string;
  host: string;
  user: string;
  query: { timelines: string[]; begin: string; end: string; beginNs: string; endNs: string; filter: string; snaplen: number; format: 'pcap' | 'pcapng' };
  files: ManifestFile[];
}

function toolVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** The capture's name in the bundle: numbered in timeline order, named after the dump set (the timeline's parent, e.g. eth1). */
function entryName(i: number, timeline: string, pcapng: boolean): string {
  const resolved = path.resolve(timeline);
  const base = path.basename(resolved) === 'timeline' ? path.basename(path.dirname(resolved)) : path.basename(resolved);
  const slug = base.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '').slice(0, 64) || 'timeline';
  return `${String(i + 1).padStart(2, '0')}-${slug}.${pcapng ? 'pcapng' : 'pcap'}`;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

async function drainInto(from: AsyncIterable<unknown>, to: Writable): Promise<void> {
  for await (const chunk of from) if (!to.write(chunk as Buffer)) await once(to, 'drain');
}

/**
 * Extracts each timeline of the request into its own capture (in a private
 * temporary directory, since a tar entry's size comes before its bytes),
 * then writes the tar to `out`, which is left open.
 */
export async function writeBundle(req: ExtractRequest, out: Writable, user: string, warn: (m: string) => void): Promise<Written & { files: string[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'npcapextract-bundle-'));
  try {
    const files: ManifestFile[] = [];
    const opened: string[] = [];
    let packets = 0;
    let bytes = 0;
    for (const [i, timeline] of req.timelines.entries()) {
      const extraction = new Extraction({ ...req, timelines: [timeline] }, warn);
      const name = entryName(i, timeline, req.pcapng);
      const file = path.join(dir, name);
      const w = await extraction.writePackets(file, { pcapng: req.pcapng, snaplen: req.snaplen, maxBytes: 0, maxPackets: 0, empty: true, progress: false });
      opened.push(...extraction.filesOpened);
      packets += w.packets;
      bytes += w.bytes;
      files.push({ name, timeline, packets: w.packets, bytes: fs.statSync(file).size, sha256: await sha256File(file) });
    }
    const manifest: Manifest = {
      tool: 'npcapextract',
      version: toolVersion(),
      created: new Date().toISOString(),
      host: os.hostname(),
      user,
      query: {
        timelines: req.timelines,
        begin: formatNs(req.beginNs),
        end: formatNs(req.endNs),
        beginNs: req.beginNs.toString(),
        endNs: req.endNs.toString(),
        filter: req.filter,
        snaplen: req.snaplen,
        format: req.pcapng ? 'pcapng' : 'pcap',
      },
      files,
    };

    const pack = tar.pack();
    const sending = drainInto(pack, out);
    const mtime = new Date();
    const add = (name: string, body: Buffer): Promise<void> =>
      new Promise((resolve, reject) => pack.entry({ name, mode: 0o640, mtime }, body, (err) => (err ? reject(err) : resolve())));
    await add(MANIFEST, Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
    await add(SUMS, Buffer.from(files.map((f) => `${f.sha256}  ${f.name}\n`).join('')));
    for (const f of files) {
      await new Promise<void>((resolve, reject) => {
        const entry = pack.entry({ name: f.name, size: f.bytes, mode: 0o640, mtime }, (err) => (err ? reject(err) : resolve()));
        fs.createReadStream(path.join(dir, f.name)).on('error', reject).pipe(entry);
      });
    }
    pack.finalize();
    await sending;
    return { packets, bytes, files: opened };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Counts the packets of a pcap or pcapng stream fed in chunks, keeping only
 * a record header across chunks (a damaged length cannot make it buffer).
 */
class PacketCounter {
  packets = 0;
  private format: 'pcap' | 'pcapng' | undefined;
  private le = true;
  private carry = Buffer.alloc(0);
  /** Bytes of the current record still to pass over. */
  private skip = 0;
  bad: string | undefined;

  push(chunk: Buffer): void {
    if (this.bad) return;
    let buf = chunk;
    if (this.skip) {
      const n = Math.min(this.skip, buf.length);
      this.skip -= n;
      buf = buf.subarray(n);
    }
    if (this.carry.length) buf = Buffer.concat([this.carry, buf]);
    let pos = 0;
    if (!this.format) {
      if (buf.length < 24) {
        this.carry = Buffer.from(buf);
        return;
      }
      const magic = buf.readUInt32LE(0);
      const pcap = pcapFormatOf(magic);
      if (pcap) {
        this.format = 'pcap';
        this.le = pcap.littleEndian;
        pos = PCAP_HEADER_BYTES;
      } else if (magic === 0x0a0d0d0a) {
        this.format = 'pcapng';
        this.le = buf.readUInt32LE(8) === 0x1a2b3c4d;
      } else {
        this.bad = 'not a pcap or pcapng file';
        return;
      }
    }
    const u32 = (o: number): number => (this.le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
    const headerBytes = this.format === 'pcap' ? 16 : 8;
    while (buf.length - pos >= headerBytes) {
      let len: number;
      if (this.format === 'pcap') {
        len = 16 + u32(pos + 8);
        this.packets++;
      } else {
        const type = u32(pos);
        len = u32(pos + 4);
        if (len < 12 || len % 4) {
          this.bad = `bad pcapng block length ${len}`;
          return;
        }
        // Enhanced, simple and (obsolete) packet blocks.
        if (type === 6 || type === 3 || type === 2) this.packets++;
      }
      const avail = buf.length - pos;
      if (avail < len) {
        this.skip = len - avail;
        pos = buf.length;
        break;
      }
      pos += len;
    }
    this.carry = Buffer.from(buf.subarray(pos));
  }

  /** Undefined when the stream ended on a record boundary. */
  problem(): string | undefined {
    if (this.bad) return this.bad;
    if (!this.format) return 'not a pcap or pcapng file';
    if (this.carry.length || this.skip) return 'ends inside a record';
    return undefined;
  }
}

interface SeenEntry {
  size: number;
  sha256: string;
  packets: number;
  problem: string | undefined;
  /** Kept for the manifest and the sums only. */
  body: Buffer | undefined;
}

/** Largest manifest or sums file read into memory. */
const SMALL_ENTRY = 16 << 20;

async function readEntries(input: Readable): Promise<Map<string, SeenEntry>> {
  const seen = new Map<string, SeenEntry>();
  const extract = tar.extract();
  input.on('error', (err) => extract.destroy(err));
  input.pipe(extract);
  for await (const entry of extract) {
    const name = entry.header.name;
    const hash = createHash('sha256');
    const counter = new PacketCounter();
    const small = name === MANIFEST || name === SUMS;
    const parts: Buffer[] = [];
    let size = 0;
    for await (const chunk of entry) {
      const b = chunk as Buffer;
      hash.update(b);
      size += b.length;
      if (small && size <= SMALL_ENTRY) parts.push(b);
      else if (!small) counter.push(b);
    }
    if (seen.has(name)) throw new Error(`${name} is in the bundle twice`);
    seen.set(name, { size, sha256: hash.digest('hex'), packets: counter.packets, problem: small ? undefined : counter.problem(), body: small ? Buffer.concat(parts) : undefined });
  }
  return seen;
}

function parseManifest(body: Buffer): Manifest {
  const m = JSON.parse(body.toString('utf8')) as Partial<Manifest>;
  const ok =
    Array.isArray(m.files) &&
    m.files.every((f: Partial<ManifestFile>) => typeof f.name === 'string' && typeof f.sha256 === 'string' && typeof f.bytes === 'number' && typeof f.packets === 'number');
  if (!ok) throw new Error(`${MANIFEST} does not list files with name, packets, bytes and sha256`);
  return m as Manifest;
}

export interface Verdict {
  problems: string[];
  files: number;
  packets: number;
}

/** Checks a bundle against its manifest: every capture there, of the size, sha256 and packet count it states, and nothing else. */
export async function verifyBundle(input: Readable): Promise<Verdict> {
  let seen: Map<string, SeenEntry>;
  try {
    seen = await readEntries(input);
  } catch (err) {
    return { problems: [`not a readable tar: ${(err as Error).message}`], files: 0, packets: 0 };
  }
  const manifestEntry = seen.get(MANIFEST);
  if (!manifestEntry?.body) return { problems: [`no ${MANIFEST}`], files: 0, packets: 0 };
  let manifest: Manifest;
  try {
    manifest = parseManifest(manifestEntry.body);
  } catch (err) {
    return { problems: [`${MANIFEST}: ${(err as Error).message}`], files: 0, packets: 0 };
  }
  const problems: string[] = [];
  for (const f of manifest.files) {
    const e = seen.get(f.name);
    if (!e) {
      problems.push(`${f.name}: listed in ${MANIFEST} but not in the bundle`);
      continue;
    }
    if (e.size !== f.bytes) problems.push(`${f.name}: ${e.size} bytes, the manifest says ${f.bytes}`);
    if (e.sha256 !== f.sha256) problems.push(`${f.name}: sha256 ${e.sha256}, the manifest says ${f.sha256}`);
    if (e.problem) problems.push(`${f.name}: ${e.problem}`);
    else if (e.packets !== f.packets) problems.push(`${f.name}: ${e.packets} packets, the manifest says ${f.packets}`);
  }
  const listed = new Set([MANIFEST, SUMS, ...manifest.files.map((f) => f.name)]);
  for (const name of seen.keys()) if (!listed.has(name)) problems.push(`${name}: in the bundle but not in ${MANIFEST}`);
  const sums = seen.get(SUMS)?.body?.toString('utf8');
  const expectedSums = manifest.files.map((f) => `${f.sha256}  ${f.name}\n`).join('');
  if (sums !== expectedSums) problems.push(`${SUMS} does not agree with ${MANIFEST}`);
  return { problems, files: manifest.files.length, packets: manifest.files.reduce((n, f) => n + f.packets, 0) };
}
