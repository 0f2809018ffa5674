// Times on the command line, as people write them, to nanoseconds since the
// epoch. BigInt throughout: a double cannot hold nanoseconds of today.

export class TimeError extends Error {}

/** A begin that is not before its end. */
export class EmptyRangeError extends Error {}

const NS_PER_S = 1_000_000_000n;
const UNITS: Record<string, bigint> = { s: 1n, m: 60n, h: 3600n, d: 86400n, w: 604800n };

/** "123" -> 123000000n; the fraction part of a seconds value, exactly, to 9 digits. */
function fractionNs(frac: string | undefined): bigint {
  if (!frac) return 0n;
  if (frac.length > 9) throw new TimeError(`more than 9 fraction digits in '.${frac}'`);
  return BigInt(frac.padEnd(9, '0'));
}

export const formatsHelp =
  "'YYYY-MM-DD hh:mm:ss[.frac]' (UTC unless --local-time), ISO 8601 with a zone " +
  "('2026-11-21T10:00:00+01:00'), epoch seconds ('1763719200.5'), or relative to now " +
  "('now', '-15m', '-2h', '-30s', '-1d')";

/**
 * Parses one time. `nowNs` is passed in so that -b and -e agree on "now".
 */
export function parseTime(text: string, localTime: boolean, nowNs: bigint): bigint {
  const t = text.trim();
  if (t === 'now') return nowNs;

  const rel = /^-(\d+(?:\.\d+)?)([smhdw]?)$/.exec(t);
  if (rel) {
    const [whole, frac] = rel[1]!.split('.');
    const unit = UNITS[rel[2] || 's']!;
    return nowNs - (BigInt(whole!) * NS_PER_S + fractionNs(frac)) * unit;
  }

  const epoch = /^(\d+)(?:\.(\d+))?$/.exec(t);
  if (epoch) return BigInt(epoch[1]!) * NS_PER_S + fractionNs(epoch[2]);

  const cal = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(t);
  if (!cal) throw new TimeError(`bad time '${text}': expected ${formatsHelp}`);
  const [, y, mo, d, h = '00', mi = '00', s = '00', frac, zone] = cal;
  const fields = [y, mo, d, h, mi, s].map(Number) as [number, number, number, number, number, number];
  const [Y, M, D, H, Mi, S] = fields;
  if (M < 1 || M > 12 || D < 1 || D > 31 || H > 23 || Mi > 59 || S > 60) throw new TimeError(`bad time '${text}': a field is out of range`);
  let ms: number;
  if (zone) {
    const utc = Date.UTC(Y, M - 1, D, H, Mi, S);
    let offsetMin = 0;
    if (zone.toUpperCase() !== 'Z') {
      const m = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone)!;
      offsetMin = (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3] ?? 0));
    }
    ms = utc - offsetMin * 60_000;
  } else {
    ms = localTime ? new Date(Y, M - 1, D, H, Mi, S).getTime() : Date.UTC(Y, M - 1, D, H, Mi, S);
  }
  // Date rolls 2026-02-31 over into March; a person meant no such day.
  const check = localTime && !zone ? new Date(Y, M - 1, D) : new Date(Date.UTC(Y, M - 1, D));
  if ((localTime && !zone ? check.getDate() : check.getUTCDate()) !== D) throw new TimeError(`bad time '${text}': no such day`);
  return BigInt(ms) * 1_000_000n + fractionNs(frac);
}

/** -b and -e of a command line: [begin, end) in ns, with one "now" for both. */
export function parseRange(begin: string, end: string, localTime: boolean): { beginNs: bigint; endNs: bigint } {
  const now = nowNs();
  const beginNs = parseTime(begin, localTime, now);
  const endNs = parseTime(end, localTime, now);
  if (endNs <= beginNs) throw new EmptyRangeError(`empty range: end ${formatNs(endNs)} is not after begin ${formatNs(beginNs)}`);
  return { beginNs, endNs };
}

/** Current time in ns. */
export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/** 1763719200123456789n -> "2025-11-21T10:00:00.123456789Z" */
export function formatNs(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const iso = new Date(ms).toISOString();
  const frac = (ns % NS_PER_S).toString().padStart(9, '0');
  return `${iso.slice(0, 19)}.${frac}Z`;
}
