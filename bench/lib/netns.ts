// A veth pair between two fresh network namespaces: a wire that carries only
// what trafgen puts on it. No addresses and no IPv6, so the kernel itself
// sends nothing (no router solicitations, no DAD) and every frame the
// recorder sees is one trafgen sent.
import { run } from './sys';

export interface LinkCounters {
  rxPackets: number;
  rxDropped: number;
  txPackets: number;
  txDropped: number;
}

const created = new Set<string>();

export class VethPair {
  readonly nsA: string;
  readonly nsB: string;
  readonly ifA: string;
  readonly ifB: string;

  /** Names are unique per bench process and run; interface names stay within 15 characters. */
  constructor(tag: string) {
    const base = `n2dtb-${process.pid}${tag}`;
    this.nsA = `${base}-A`;
    this.nsB = `${base}-B`;
    this.ifA = `n2dtb${process.pid % 1e6}${tag}a`.slice(0, 15);
    this.ifB = `n2dtb${process.pid % 1e6}${tag}b`.slice(0, 15);
  }

  create(): void {
    for (const ns of [this.nsA, this.nsB]) {
      run(['ip', 'netns', 'add', ns]);
      created.add(ns);
      // Before the link exists, so it is born without IPv6.
      run(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    }
    run(['ip', 'link', 'add', this.ifA, 'netns', this.nsA, 'type', 'veth', 'peer', 'name', this.ifB, 'netns', this.nsB]);
    run(['ip', '-n', this.nsA, 'link', 'set', this.ifA, 'up']);
    run(['ip', '-n', this.nsB, 'link', 'set', this.ifB, 'up']);
  }

  /** Deleting the namespaces deletes the pair with them. */
  destroy(): void {
    for (const ns of [this.nsA, this.nsB]) {
      run(['ip', 'netns', 'del', ns], true);
      created.delete(ns);
    }
  }

  ifindexB(): number {
    return (JSON.parse(run(['ip', '-n', this.nsB, '-j', 'link', 'show', this.ifB])) as { ifindex: number }[])[0].ifindex;
  }

  counters(): { a: LinkCounters; b: LinkCounters } {
    const read = (ns: string, dev: string): LinkCounters => {
      type Stats = { stats64: { rx: { packets: number; dropped: number }; tx: { packets: number; dropped: number } } };
      const s = (JSON.parse(run(['ip', '-n', ns, '-s', '-j', 'link', 'show', dev])) as Stats[])[0].stats64;
      return { rxPackets: s.rx.packets, rxDropped: s.rx.dropped, txPackets: s.tx.packets, txDropped: s.tx.dropped };
    };
    return { a: read(this.nsA, this.ifA), b: read(this.nsB, this.ifB) };
  }
}

/** Removes every namespace this process created and has not removed yet (exit and signal paths). */
export function destroyAllNamespaces(): void {
  for (const ns of created) run(['ip', 'netns', 'del', ns], true);
  created.clear();
}
