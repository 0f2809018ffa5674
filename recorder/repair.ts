// Brings a dump set back to what publishing promises (every pcap whole, an
// index beside it, links in the timeline) after a crash, a full disk or a
// change by hand. The recorder runs the cheap part at start; npcaprepair runs
// all of it. Everything done is reported, one line each, so a second run
// over a repaired dump set says nothing.
import fs from 'node:fs';
import path from 'node:path';
import { DumpSet, INDEX_SUFFIX, listStorageFiles } from './dumpset';
import { checkIndex, IndexError, readIndexFile, readIndexSpan, spanOf, TimeSpan as Span, writeIndexFile } from './index-file';
import { PcapFormatError } from './pcap-file';
import { indexPcapFile } from './pcap-index';

export interface RepairOptions {
  /**
   * 'start': what a crash can leave (part files, temporaries, a missing
   * index, the newest file's links). 'full': every index is checked and
   * every link of the timeline too.
   */
  scope: 'start' | 'full';
  /** Also check each index against its pcap's records (reads every pcap). */
  deep?: boolean;
}

export interface RepairResult {
  /** Things done (each also reported). */
  fixed: number;
  /** Problems left as they are (each reported), e.g. an unreadable pcap. */
  left: number;
}

export type Report = (line: string) => void;

export function repairDumpSet(dumpSet: DumpSet, opts: RepairOptions, report: Report): RepairResult {
  const result: RepairResult = { fixed: 0, left: 0 };
  const fixed = (line: string): void => {
    result.fixed++;
    report(line);
  };
  const left = (line: string): void => {
    result.left++;
    report(`not repaired: ${line}`);
  };

  for (const part of dumpSet.partFiles()) recoverPart(dumpSet, part, fixed, left);
  removeStrays(dumpSet, fixed);

  const files = listStorageFiles(dumpSet.storage);
  // Each index is read once: its verdict and its time span come together.
  const spans = new Map<string, Span | undefined>();
  for (const pcap of files) {
    const { problem, span } = checkFileIndex(pcap, opts);
    spans.set(pcap, problem === undefined ? span : reindex(pcap, problem, fixed, left));
  }

  const toLink = opts.scope === 'full' ? files : files.slice(-1);
  for (const pcap of toLink) {
    const span = spans.get(pcap) ?? readIndexSpan(pcap + INDEX_SUFFIX);
    if (!span) continue;
    const made = dumpSet.link(pcap, span.minNs, span.maxNs);
    const links = made.filter((p) => /\.(pcap|idx)$/.test(p)).length;
    if (links) fixed(`linked ${pcap} into the timeline (${links} missing links)`);
  }
  if (opts.scope === 'full') removeBadLinks(dumpSet, fixed);
  return result;
}

/** A part file: cut at its last whole record, indexed from its bytes, published. */
function recoverPart(dumpSet: DumpSet, part: string, fixed: Report, left: Report): void {
  let ix;
  try {
    ix = indexPcapFile(part);
  } catch (e) {
    if (!(e instanceof PcapFormatError)) throw e;
    // Killed before the first block reached the disk: nothing to keep.
    if (fs.statSync(part).size <= 4096 && isZeros(part)) {
      removeFiles([part, part + INDEX_SUFFIX]);
      return fixed(`removed ${part}: no packet was written`);
    }
    return left(e.message);
  }
  if (ix.tail === 'invalid record') return left(`${part}: invalid record at byte ${ix.goodBytes}`);
  if (ix.packets === 0) {
    removeFiles([part, part + INDEX_SUFFIX]);
    return fixed(`removed ${part}: no whole packet`);
  }
  if (ix.goodBytes < ix.fileBytes) fs.truncateSync(part, ix.goodBytes);
  const index = ix.index;
  const published = dumpSet.publish({ partPath: part, writeIndex: (p) => writeIndexFile(p, index), minNs: ix.minNs, maxNs: ix.maxNs }).path;
  const cut = ix.goodBytes < ix.fileBytes ? `, cut at byte ${ix.goodBytes} of ${ix.fileBytes}` : '';
  fixed(`recovered ${part} as ${published} (${ix.packets} packets${cut})`);
}

/**
 * Why a published file's index cannot be trusted (problem undefined when it
 * can), and the time span it records when that was read on the way.
 */
function checkFileIndex(pcap: string, opts: RepairOptions): { problem?: string; span?: Span } {
  const idx = pcap + INDEX_SUFFIX;
  if (!fs.existsSync(idx)) return { problem: 'missing' };
  // After a crash an index is whole or absent (it is published by rename).
  if (opts.scope === 'start') return {};
  if (opts.deep) return { problem: checkIndex(idx, pcap)[0] };
  try {
    const view = readIndexFile(idx, { whole: true });
    const size = fs.statSync(pcap).size;
    if (view.covered.end !== size) return { problem: `covers ${view.covered.end} bytes of ${size}` };
    return { span: spanOf(view) };
  } catch (e) {
    if (e instanceof IndexError) return { problem: e.message };
    throw e;
  }
}

/** Rebuilds a published file's index, cutting the pcap if it ends in a partial record; returns its span. */
function reindex(pcap: string, problem: string, fixed: Report, left: Report): Span | undefined {
  let ix;
  try {
    ix = indexPcapFile(pcap);
  } catch (e) {
    if (e instanceof PcapFormatError) {
      left(e.message);
      return undefined;
    }
    throw e;
  }
  if (ix.tail === 'invalid record') {
    // Whatever follows is lost to every pcap reader; keep it for a human to look at.
    left(`${pcap}: invalid record at byte ${ix.goodBytes}; indexed up to it`);
  } else if (ix.tail) {
    fs.truncateSync(pcap, ix.goodBytes);
    fixed(`cut ${pcap} at byte ${ix.goodBytes} of ${ix.fileBytes} (${ix.tail})`);
  }
  writeIndexFile(pcap + INDEX_SUFFIX, ix.index);
  fixed(`rebuilt index of ${pcap} (${problem})`);
  return ix.packets ? { minNs: ix.minNs, maxNs: ix.maxNs } : undefined;
}


/** Temporaries of interrupted index writes, and indexes whose pcap is gone. */
function removeStrays(dumpSet: DumpSet, fixed: Report): void {
  const dirs = [dumpSet.storage, ...fs.readdirSync(dumpSet.storage).filter((d) => /^\d+$/.test(d)).map((d) => path.join(dumpSet.storage, d))];
  for (const dir of dirs) {
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      const orphan = name.endsWith(INDEX_SUFFIX) && !fs.existsSync(p.slice(0, -INDEX_SUFFIX.length));
      if (name.endsWith(`${INDEX_SUFFIX}.tmp`) || orphan) {
        fs.rmSync(p, { force: true });
        fixed(`removed ${p} (${orphan ? 'index of a file that is gone' : 'unfinished index'})`);
      }
    }
  }
}

/** Links that lead nowhere, or out of the dump set. */
function removeBadLinks(dumpSet: DumpSet, fixed: Report): void {
  const storage = fs.realpathSync(dumpSet.storage) + path.sep;
  const emptied = new Set<string>();
  for (const link of dumpSet.timelineLinks()) {
    let why: string | undefined;
    try {
      const real = fs.realpathSync(link);
      if (!real.startsWith(storage)) why = `points outside the dump set (${real})`;
    } catch {
      why = 'dangling';
    }
    if (!why) continue;
    fs.rmSync(link, { force: true });
    emptied.add(path.dirname(link));
    fixed(`removed link ${link}: ${why}`);
  }
  for (const dir of emptied) dumpSet.pruneEmpty(dir);
}

function removeFiles(files: string[]): void {
  for (const f of files) fs.rmSync(f, { force: true });
}

function isZeros(file: string): boolean {
  const b = fs.readFileSync(file);
  return b.every((x) => x === 0);
}
