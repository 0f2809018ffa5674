// One extraction request: what npcapextract asks for, whether it runs the
// engine itself or asks the extraction service to. The service takes the
// request from an untrusted peer, so it is rebuilt field by field from JSON
// and anything of the wrong shape is refused.
import { Query } from './engine';

/** What the request produces: packets, a bundle, the file list, or connections. */
export type Mode = 'packets' | 'bundle' | 'list' | 'flows';
const MODES: readonly Mode[] = ['packets', 'bundle', 'list', 'flows'];

export interface ExtractRequest extends Query {
  mode: Mode;
  pcapng: boolean;
  snaplen: number;
  empty: boolean;
  /** --flows as JSON lines. */
  json: boolean;
  explain: boolean;
}

/** The request with its bigints as decimal strings, as it travels. */
export function requestToJson(r: ExtractRequest): Record<string, unknown> {
  return { ...r, beginNs: r.beginNs.toString(), endNs: r.endNs.toString() };
}

export class RequestError extends Error {}

function field<T>(o: Record<string, unknown>, name: string, ok: (v: unknown) => v is T): T {
  const v = o[name];
  if (!ok(v)) throw new RequestError(`request field ${name} is missing or malformed`);
  return v;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isNs = (v: unknown): v is string => typeof v === 'string' && /^\d{1,20}$/.test(v);
const isMode = (v: unknown): v is Mode => MODES.includes(v as Mode);
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string');

export function requestFromJson(v: unknown): ExtractRequest {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RequestError('request is not an object');
  const o = v as Record<string, unknown>;
  return {
    timelines: field(o, 'timelines', isStrings),
    beginNs: BigInt(field(o, 'beginNs', isNs)),
    endNs: BigInt(field(o, 'endNs', isNs)),
    filter: field(o, 'filter', isString),
    mode: field(o, 'mode', isMode),
    pcapng: field(o, 'pcapng', isBool),
    snaplen: field(o, 'snaplen', isCount),
    empty: field(o, 'empty', isBool),
    json: field(o, 'json', isBool),
    explain: field(o, 'explain', isBool),
  };
}
