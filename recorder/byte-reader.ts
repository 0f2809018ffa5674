// Positional reads of a pcap file's bytes, whether they are stored as they
// are or compressed (recorder/compressed-file.ts): readers of records see
// the same offsets either way, the ones the index records.
import fs from 'node:fs';

export interface ByteReader {
  readonly path: string;
  /** Bytes of the pcap, as if it were stored uncompressed. */
  readonly size: number;
  /** Like fs.readSync: fewer bytes than asked only at the end. */
  read(buf: Uint8Array, offset: number, length: number, position: number): number;
  /** Compressed files: where the frame holding `position` ends (reads within one frame cost one decode). */
  frameEnd?(position: number): number;
  /** Plain files: the open descriptor, for advice to the kernel on what will be read next. */
  readonly plainFd?: number;
  close(): void;
}

/** The bytes of a file stored as it is, through an open descriptor (closed with the reader). */
export function plainReader(fd: number, path: string): ByteReader {
  return {
    path,
    plainFd: fd,
    size: fs.fstatSync(fd).size,
    read: (buf, offset, length, position) => fs.readSync(fd, buf, offset, length, position),
    close: () => fs.closeSync(fd),
  };
}

export const openPlain = (path: string): ByteReader => plainReader(fs.openSync(path, 'r'), path);
