// Carries out one extraction request with the engine, for the command line
// reading a dump set itself and for the extraction service alike: only where
// the output goes differs.
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { Extraction, Written } from './engine';
import { ExtractRequest } from './request';

export interface Io {
  /** Packets and bundles: a file name (numbered parts with `split`) or a stream left open. */
  data: string | Writable;
  /** -l and --flows. */
  text: Writable;
  /** A line for stderr (warnings, --explain), without the tool's name. */
  note(line: string): void;
  split: { maxBytes: number; maxPackets: number };
  progress: boolean;
  /** Who asked, for a bundle's manifest. */
  user: string;
}

/** What was done, for --explain and the audit log. */
export interface Outcome extends Written {
  /** Packet files opened. */
  files: string[];
}

async function writeText(out: Writable, text: string): Promise<void> {
  if (text && !out.write(text)) await once(out, 'drain');
}

export async function perform(req: ExtractRequest, io: Io): Promise<Outcome> {
  const warn = (m: string): void => io.note(`warning: ${m}`);
  if (req.mode === 'bundle') {
    if (typeof io.data === 'string') throw new Error('a bundle is written to a stream');
    // Loaded only here: bundles need tar and hashing, a fifth of the start-up of every other extraction.
    const { writeBundle } = await import('./bundle');
    return writeBundle(req, io.data, io.user, warn);
  }
  const extraction = new Extraction(req, warn);
  if (req.explain) for (const line of extraction.explain()) io.note(line);
  let written: Written = { packets: 0, bytes: 0 };
  if (req.mode === 'list') {
    await writeText(io.text, extraction.list().map((f) => `${f}\n`).join(''));
  } else if (req.mode === 'flows') {
    const flows = extraction.flows(req.json);
    await writeText(io.text, flows.text);
    if (flows.note) io.note(flows.note);
  } else {
    written = await extraction.writePackets(io.data, { pcapng: req.pcapng, snaplen: req.snaplen, ...io.split, empty: req.empty, progress: io.progress });
    if (req.explain) io.note(extraction.readSummary(written));
  }
  return { ...written, files: extraction.filesOpened };
}
