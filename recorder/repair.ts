// Brings a dump set back to what publishing promises (every pcap whole, an
// index beside it, links in the timeline) after a crash, a full disk or a
// change by hand. The recorder runs the cheap part at start; npcaprepair runs
// all of it. Everything done is reported, one line each, so a second run
// over a repaired dump set says nothing.
import fs from 'node:fs';
import path from 'node:path';
import { checkCompressedIndex, decompressFile } from './compressed-file';
import { COMPRESSED_SUFFIX, COMPRESSING_SUFFIX, DumpSet, INDEX_SUFFIX, indexPathOf, isCompressedPath, listStorageFiles, plainPathOf } from './dumpset';
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
  finishCompressions(dumpSet, fixed);

  const files = listStorageFiles(dumpSet.storage);
  // Each index is read once: its verdict and its time span come together.
  const spans = new Map<string, Span | undefined>();
  files.forEach((stored, i) => {
    const { problem, span } = checkFileIndex(stored, opts);
    if (problem === undefined) return spans.set(stored, span);
    // A compressed file comes back as NAME.pcap to be indexed.
    const pcap = isCompressedPath(stored) ? restorePlain(dumpSet, stored, problem, fixed, left) : stored;
    if (pcap === undefined) return;
    files[i] = pcap;
    spans.set(pcap, reindex(pcap, problem, fixed, left));
  });

  const toLink = opts.scope === 'full' ? files : files.slice(-1);
  for (const pcap of toLink) {
    const span = spans.get(pcap) ?? readIndexSpan(indexPathOf(pcap));
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
  const idx = indexPathOf(pcap);
  const compressed = isCompressedPath(pcap);
  if (!fs.existsSync(idx)) return { problem: 'missing' };
  // After a crash an index is whole or absent (it is published by rename).
  if (opts.scope === 'start') return {};
  if (opts.deep) return { problem: (compressed ? checkCompressedIndex(idx, pcap) : checkIndex(idx, pcap))[0] };
  try {
    const view = readIndexFile(idx, { whole: true });
    const size = fs.statSync(pcap).size;
    // A compressed file is described by its chunk table, whose last entry holds both lengths.
    const chunks = view.chunks;
    if (compressed && !chunks) return { problem: 'no chunk table for a compressed file' };
    const stored = compressed ? chunks!.packed[chunks!.packed.length - 1]! : view.covered.end;
    if (stored !== size) return { problem: `covers ${stored} bytes of ${size}` };
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

/**
 * A compressed file whose index is missing or wrong goes back to NAME.pcap
 * (what its frames hold, up to a corrupt or truncated one), which is then
 * indexed and linked as any pcap; it stays uncompressed.
 */
function restorePlain(dumpSet: DumpSet, lz4: string, problem: string, fixed: Report, left: Report): string | undefined {
  const plain = plainPathOf(lz4);
  const tmp = plain + RESTORING_SUFFIX;
  const fd = fs.openSync(tmp, 'w', 0o640);
  let result;
  try {
    result = decompressFile(lz4, (b) => {
      for (let done = 0; done < b.length;) done += fs.writeSync(fd, b, done);
    });
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  if (result.plainBytes === 0) {
    // Not one frame decodes: the file is left as it is for a human to look at.
    fs.rmSync(tmp, { force: true });
    left(result.defect?.message ?? `${lz4}: empty`);
    return undefined;
  }
  fs.renameSync(tmp, plain);
  dumpSet.remove(lz4, undefined);
  const why = result.defect ? `${result.defect.message}; the rest is lost` : `its index: ${problem}`;
  fixed(`decompressed ${lz4} back to ${plain} (${result.plainBytes} bytes; ${why})`);
  return plain;
}

/**
 * Compressions a crash interrupted (recorder/compressor.ts): an unfinished
 * NAME.pcap.lz4.tmp is removed, and a NAME.pcap.lz4 that is complete beside
 * its NAME.pcap takes its place as the recorder would have.
 */
/** A compressed file being decompressed back by restorePlain(). */
const RESTORING_SUFFIX = '.restore.tmp';

function finishCompressions(dumpSet: DumpSet, fixed: Report): void {
  for (const dir of storageDirs(dumpSet)) {
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      if (name.endsWith(COMPRESSING_SUFFIX)) {
        fs.rmSync(p, { force: true });
        fixed(`removed ${p} (unfinished compression; ${p.slice(0, -COMPRESSING_SUFFIX.length)} kept)`);
        continue;
      }
      if (!name.endsWith('.pcap' + COMPRESSED_SUFFIX)) continue;
      const plain = plainPathOf(p);
      if (!fs.existsSync(plain)) continue;
      // The chunk table is written before the .lz4 is renamed into place, and names both files' lengths.
      let view;
      try {
        view = readIndexFile(indexPathOf(p));
      } catch {
        view = undefined;
      }
      const chunks = view?.chunks;
      const span = view && spanOf(view);
      const whole = chunks && chunks.packed[chunks.packed.length - 1] === fs.statSync(p).size && chunks.plain[chunks.plain.length - 1] === fs.statSync(plain).size;
      if (whole && span) {
        dumpSet.replaceWithCompressed(plain, span);
        fixed(`finished compressing ${plain} into ${p}`);
      } else {
        dumpSet.remove(p, span);
        fixed(`removed ${p}: its index does not describe it; ${plain} kept`);
      }
    }
  }
}

function storageDirs(dumpSet: DumpSet): string[] {
  return [dumpSet.storage, ...fs.readdirSync(dumpSet.storage).filter((d) => /^\d+$/.test(d)).map((d) => path.join(dumpSet.storage, d))];
}


/** Temporaries of interrupted index writes, and indexes whose pcap is gone. */
function removeStrays(dumpSet: DumpSet, fixed: Report): void {
  for (const dir of storageDirs(dumpSet)) {
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      const pcap = p.slice(0, -INDEX_SUFFIX.length);
      const orphan = name.endsWith(INDEX_SUFFIX) && !fs.existsSync(pcap) && !fs.existsSync(pcap + COMPRESSED_SUFFIX);
      const restoring = name.endsWith(RESTORING_SUFFIX);
      if (name.endsWith(`${INDEX_SUFFIX}.tmp`) || orphan || restoring) {
        fs.rmSync(p, { force: true });
        fixed(`removed ${p} (${orphan ? 'index of a file that is gone' : restoring ? 'unfinished decompression' : 'unfinished index'})`);
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
