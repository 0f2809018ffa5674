// Dropping root once the capture socket is open: files written afterwards
// belong to the unprivileged user, and a bug in packet handling cannot act
// as root.
import { execFileSync } from 'node:child_process';
import { CliError, Exit } from './cli';

// Node has process.initgroups on POSIX, but @types/node 20 does not declare it.
declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace NodeJS {
    interface Process {
      initgroups?: (user: string, extraGroup: number) => void;
    }
  }
}

export interface UserIds {
  name: string;
  uid: number;
  gid: number;
}

export function resolveUser(name: string): UserIds {
  // getent follows nsswitch (LDAP, systemd-userdb), which reading /etc/passwd would not.
  let entry: string;
  try {
    entry = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
  } catch {
    throw new CliError(`no such user: ${name}`, Exit.usage);
  }
  const fields = entry.split(':');
  return { name, uid: Number(fields[2]), gid: Number(fields[3]) };
}

export function dropPrivileges(user: UserIds): void {
  if (!process.initgroups || !process.setgid || !process.setuid) throw new CliError('-u needs a POSIX system', Exit.usage);
  // Order matters: groups and gid while still root, uid last.
  process.initgroups(user.name, user.gid);
  process.setgid(user.gid);
  process.setuid(user.uid);
}
