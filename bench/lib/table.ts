/** One line of a fixed-width table: the first `left` columns aligned left (names), the rest right (figures). */
export function formatRow(cols: (string | number)[], widths: number[], left: number): string {
  return cols.map((c, i) => (i < left ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join(' ');
}
