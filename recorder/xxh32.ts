// XXH32, the checksum of the LZ4 frame format (header and content
// checksums); lz4-napi only exposes it inside its own frame codec, which
// decodes several times slower than its block codec.
const P1 = 2654435761;
const P2 = 2246822519;
const P3 = 3266489917;
const P4 = 668265263;
const P5 = 374761393;

const rotl = (x: number, r: number): number => (x << r) | (x >>> (32 - r));
/** Lanes can be read as 32-bit words of the host's order when that order is little-endian. */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
const round = (acc: number, lane: number): number => Math.imul(rotl((acc + Math.imul(lane, P2)) | 0, 13), P1);

/** XXH32 of `b` with seed 0, as an unsigned 32-bit number. */
export function xxh32(b: Uint8Array): number {
  const n = b.length;
  let i = 0;
  let h: number;
  const u32 = (at: number): number => b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24);
  if (n >= 16) {
    let v1 = (P1 + P2) | 0, v2 = P2 | 0, v3 = 0, v4 = -P1 | 0;
    if (LITTLE_ENDIAN && b.byteOffset % 4 === 0) {
      // Most of the time goes here: whole words, no byte assembly.
      const w = new Int32Array(b.buffer, b.byteOffset, n >>> 2);
      for (let k = 0, last = (n >>> 4) << 2; k < last; k += 4) {
        v1 = round(v1, w[k]!);
        v2 = round(v2, w[k + 1]!);
        v3 = round(v3, w[k + 2]!);
        v4 = round(v4, w[k + 3]!);
      }
      i = (n >>> 4) << 4;
    } else {
      for (const last = n - 16; i <= last; i += 16) {
        v1 = round(v1, u32(i));
        v2 = round(v2, u32(i + 4));
        v3 = round(v3, u32(i + 8));
        v4 = round(v4, u32(i + 12));
      }
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else h = P5 | 0;
  h = (h + n) | 0;
  for (; i + 4 <= n; i += 4) h = Math.imul(rotl((h + Math.imul(u32(i), P3)) | 0, 17), P4);
  for (; i < n; i++) h = Math.imul(rotl((h + Math.imul(b[i]!, P5)) | 0, 11), P1);
  h = Math.imul(h ^ (h >>> 15), P2);
  h = Math.imul(h ^ (h >>> 13), P3);
  return (h ^ (h >>> 16)) >>> 0;
}
