// Running the real command-line tools from tests, and reading back what a
// dump set holds through the pure-TypeScript reference reader.
import { execFile, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listStorageFiles } from '../../recorder/dumpset';
import { repoRoot } from './corpus';
import { PcapRecord, readPcap } from './pcap-compare';

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const bin = (tool: string): string => path.join(repoRoot, 'bin', `${tool}.js`);

/** Runs one of bin/*.js to completion (never rejects: the exit code is the result). */
export function runTool(tool: string, args: readonly string[], timeoutMs = 60_000): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin(tool), ...args], { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `n2dts-${tag}-`));
}

/** Published pcap files of a dump set, in storage order. */
export function publishedFiles(storage: string): string[] {
  return fs.existsSync(storage) ? listStorageFiles(storage) : [];
}

/** Every record of a dump set, file after file. */
export function dumpSetRecords(storage: string): PcapRecord[] {
  const out: PcapRecord[] = [];
  for (const f of publishedFiles(storage)) for (const r of readPcap(f).records) out.push(r);
  return out;
}

/** Resolves when a file exists (a pid file: the recorder is capturing). */
export async function waitForFile(file: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (Date.now() > until) throw new Error(`${file} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Collects a child's stderr as text, for messages checked after it exits. */
export function collectStderr(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  return () => text;
}
