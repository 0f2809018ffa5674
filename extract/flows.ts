// --flows: the connections that match a time range and a filter, with
// their endpoints, times, packets and bytes. A flow the index decides and
// that lies wholly inside the range is counted from the index alone; any
// other flow that may match has its packets read and judged by libpcap, so
// the totals are exact either way.
import { FlowView, IndexedFlow } from '../recorder/index-file';
import { Tri } from './planner';
import { formatNs } from './time';
import { Packet } from './read';


export interface Connection {
  proto: string;
  a: string;
  b: string;
  vlan: number | undefined;
  firstNs: bigint;
  lastNs: bigint;
  packets: number;
  bytes: number;
}

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmp6', 132: 'sctp' };

function protoName(flow: FlowView): string {
  if (flow.ipVersion) return PROTO_NAMES[flow.ipproto] ?? `ip-proto-${flow.ipproto}`;
  return `ether-0x${flow.ethertype.toString(16).padStart(4, '0')}`;
}

function endpoint(addr: string | undefined, port: number | undefined, mac: string | undefined): string {
  if (!addr) return mac ?? '?';
  if (port === undefined) return addr;
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** Connections keyed by protocol, VLAN and the unordered pair of endpoints. */
export class FlowTable {
  private readonly table = new Map<string, Connection>();
  /** Flows whose packets were read to be exact. */
  flowsRead = 0;

  private entry(flow: FlowView): Connection {
    let a = endpoint(flow.addrA, flow.portA, flow.macA);
    let b = endpoint(flow.addrB, flow.portB, flow.macB);
    if (b < a) [a, b] = [b, a];
    const proto = protoName(flow);
    const key = `${proto}|${flow.vlan ?? ''}|${a}|${b}`;
    let c = this.table.get(key);
    if (!c) {
      c = { proto, a, b, vlan: flow.vlan, firstNs: -1n, lastNs: -1n, packets: 0, bytes: 0 };
      this.table.set(key, c);
    }
    return c;
  }

  private count(c: Connection, firstNs: bigint, lastNs: bigint, packets: number, bytes: number): void {
    if (c.firstNs < 0n || firstNs < c.firstNs) c.firstNs = firstNs;
    if (lastNs > c.lastNs) c.lastNs = lastNs;
    c.packets += packets;
    c.bytes += bytes;
  }

  /**
   * Counts what the index can, and returns the flows whose packets must be
   * read (keyed by record offset, for countPacket).
   */
  addIndex(flows: Iterable<IndexedFlow>, beginNs: bigint, endNs: bigint, verdict: (f: FlowView) => Tri): Map<number, FlowView> {
    const toRead = new Map<number, FlowView>();
    for (const flow of flows) {
      if (flow.lastNs < beginNs || flow.firstNs >= endNs) continue;
      const v = verdict(flow);
      if (v === 'false') continue;
      if (v === 'true' && flow.firstNs >= beginNs && flow.lastNs < endNs) {
        this.count(this.entry(flow), flow.firstNs, flow.lastNs, flow.packets, flow.bytes);
        continue;
      }
      this.flowsRead++;
      for (const o of flow.offsets()) toRead.set(o, flow);
    }
    return toRead;
  }

  /** Counts a packet libpcap kept, if it belongs to a flow that is being read. */
  countPacket(p: Packet, toRead: Map<number, FlowView>): void {
    const flow = toRead.get(p.offset);
    if (flow) this.count(this.entry(flow), p.tsNs, p.tsNs, 1, p.record.length - 16);
  }

  connections(): Connection[] {
    return [...this.table.values()].sort((x, y) => (x.firstNs < y.firstNs ? -1 : x.firstNs > y.firstNs ? 1 : 0));
  }
}

export function formatTable(conns: readonly Connection[]): string {
  const rows = conns.map((c) => [c.proto, c.a, c.b, c.vlan === undefined ? '-' : String(c.vlan), formatNs(c.firstNs), formatNs(c.lastNs), String(c.packets), String(c.bytes)]);
  const head = ['proto', 'endpoint', 'endpoint', 'vlan', 'first', 'last', 'packets', 'bytes'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((v, i) => (i >= 6 ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

export function formatJsonLines(conns: readonly Connection[]): string {
  return conns
    .map((c) => JSON.stringify({ proto: c.proto, a: c.a, b: c.b, vlan: c.vlan ?? null, first: formatNs(c.firstNs), last: formatNs(c.lastNs), packets: c.packets, bytes: c.bytes }))
    .map((l) => l + '\n')
    .join('');
}
