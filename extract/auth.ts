// Who may extract: the user proves who they are through PAM (service
// `npcapextract`, so the administrator chooses the modules in
// /etc/pam.d/npcapextract), and is authorized when listed in the
// configuration or a member of one of its groups.
import { userGroups } from '../native/addon';
import { ExtractConfig } from './config';

const PAM_SERVICE = 'npcapextract';

/**
 * authenticate-pam copies the user and the password into 128-byte C buffers
 * and C strings end at a NUL: a longer input, or one holding a NUL, would
 * be checked as a shorter one. Such inputs are refused before PAM sees them.
 */
const MAX_CREDENTIAL_BYTES = 127;

interface PamModule {
  authenticate(user: string, password: string, done: (err: string | undefined) => void, options: { serviceName: string }): void;
}
// eslint-disable-next-line @typescript-eslint/no-var-requires
const pam = require('authenticate-pam') as PamModule;

/** Why an attempt failed: for the audit log only; the caller always gets the same answer. */
export type Verdict = { ok: true } | { ok: false; reason: string };

function unusable(value: string, what: string, forbidden: RegExp): string | undefined {
  const bytes = Buffer.byteLength(value);
  if (bytes === 0) return `empty ${what}`;
  if (bytes > MAX_CREDENTIAL_BYTES) return `${what} of ${bytes} bytes (at most ${MAX_CREDENTIAL_BYTES})`;
  if (forbidden.test(value)) return `${what} with a forbidden character`;
  return undefined;
}

// A user name also lands in logs: no control characters. A password may hold anything but a NUL.
const NOT_IN_USER = /[\x00-\x1f\x7f]/;
const NOT_IN_PASSWORD = /\x00/;

function pamAuthenticate(user: string, password: string): Promise<string | undefined> {
  return new Promise((resolve) => pam.authenticate(user, password, resolve, { serviceName: PAM_SERVICE }));
}

function isAuthorized(user: string, config: ExtractConfig): boolean {
  if (config.users.includes(user)) return true;
  const groups = userGroups(user);
  return groups !== null && groups.some((g) => config.groups.includes(g));
}

/**
 * Authenticates through PAM, then authorizes. The service answers every
 * failure alike and after the same delay, so the order of checks shows nothing.
 */
export async function checkUser(user: string, password: string, config: ExtractConfig): Promise<Verdict> {
  const bad = unusable(user, 'user name', NOT_IN_USER) ?? unusable(password, 'password', NOT_IN_PASSWORD);
  if (bad) return { ok: false, reason: bad };
  const pamError = await pamAuthenticate(user, password);
  if (pamError !== undefined) return { ok: false, reason: `pam: ${pamError}` };
  if (!isAuthorized(user, config)) return { ok: false, reason: 'authenticated but not authorized' };
  return { ok: true };
}
