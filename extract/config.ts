// /etc/n2disk-ts/extract.conf: whether npcapextract must go through the
// authenticated extraction service, and how that service decides. Lines are
// `key = value`, `#` starts a comment; list keys take values separated by
// commas or spaces and may be repeated. NPCAPEXTRACT_CONF names another
// file (tests, a second installation). The client side of this file is not a
// security boundary: a user who points it elsewhere only loses the service,
// since the dump set's files stay unreadable to them.
import fs from 'node:fs';

const DEFAULT_CONFIG = '/etc/n2disk-ts/extract.conf';
const CONFIG_ENV = 'NPCAPEXTRACT_CONF';

export interface ExtractConfig {
  /** Where the settings came from, or undefined when no file exists (a dump set the user owns). */
  file: string | undefined;
  /** On: npcapextract asks the service, proving the user through PAM. */
  auth: boolean;
  socket: string;
  /** Members of these groups are authorized, */
  groups: string[];
  /** and these users. */
  users: string[];
  /** The only timelines the service reads. */
  timelines: string[];
  /** Append-only JSON lines, one per attempt and one per extraction. */
  audit: string;
  /** A failed attempt is answered no sooner than this (ms), which slows guessing and hides which check failed. */
  failDelayMs: number;
}

export class ConfigError extends Error {}

const LISTS = ['groups', 'users', 'timeline'] as const;
const SCALARS = ['auth', 'socket', 'audit', 'fail_delay_ms'] as const;

export function configPath(): string {
  return process.env[CONFIG_ENV] || DEFAULT_CONFIG;
}

export function loadConfig(file = configPath()): ExtractConfig {
  const config: ExtractConfig = {
    file: undefined,
    auth: false,
    socket: '/run/n2disk-ts/npcapextractd.sock',
    groups: [],
    users: [],
    timelines: [],
    audit: '/var/log/n2disk-ts/extract-audit.log',
    failDelayMs: 1000,
  };
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return config;
    throw new ConfigError(`${file}: ${(err as Error).message}`);
  }
  config.file = file;
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const m = /^([a-z_]+)\s*=\s*(.*)$/.exec(line);
    const where = `${file}:${n + 1}`;
    if (!m) throw new ConfigError(`${where}: expected 'key = value'`);
    const key = m[1]!;
    const value = m[2]!.trim();
    if ((LISTS as readonly string[]).includes(key)) {
      const items = value.split(/[\s,]+/).filter(Boolean);
      if (key === 'groups') config.groups.push(...items);
      else if (key === 'users') config.users.push(...items);
      else config.timelines.push(...items);
    } else if ((SCALARS as readonly string[]).includes(key)) {
      if (key === 'auth') {
        if (!/^(on|off|yes|no|true|false)$/.test(value)) throw new ConfigError(`${where}: auth is on or off`);
        config.auth = /^(on|yes|true)$/.test(value);
      } else if (key === 'fail_delay_ms') {
        if (!/^\d+$/.test(value)) throw new ConfigError(`${where}: fail_delay_ms is a whole number`);
        config.failDelayMs = Number(value);
      } else if (!value.startsWith('/')) {
        throw new ConfigError(`${where}: ${key} must be an absolute path`);
      } else if (key === 'socket') {
        config.socket = value;
      } else {
        config.audit = value;
      }
    } else {
      throw new ConfigError(`${where}: unknown key '${key}' (known: ${[...SCALARS, ...LISTS].join(', ')})`);
    }
  }
  return config;
}
