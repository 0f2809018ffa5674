// The reference answer for an extraction: tcpdump reads every file of the
// dump sets with the same filter; the records inside the time range, merged
// by timestamp with ties in timeline-then-file order. And the filters, time
// ranges and captures that extraction is checked with, plain or compressed.
import { PcapRecord, tcpdumpRead } from './pcap-compare';
import { publishedFiles } from './recorder';

export async function expectedExtraction(storages: readonly string[], filter: string, beginNs: bigint, endNs: bigint): Promise<PcapRecord[]> {
  const all: PcapRecord[] = [];
  for (const storage of storages) {
    for (const r of await tcpdumpRead(publishedFiles(storage), filter)) if (r.tsNs >= beginNs && r.tsNs < endNs) all.push(r);
  }
  // Array.prototype.sort is stable, which keeps the tie order.
  return all.sort((a, b) => (a.tsNs < b.tsNs ? -1 : a.tsNs > b.tsNs ? 1 : 0));
}

/** Ethernet captures (one pcap output holds one link type), some with VLAN tags. */
export const SET_A = ['android.pcap', 'anyconnect-vpn.pcap', 'WebattackRCE.pcap', 'dns_exfiltration.pcap', 'mongodb.pcap', 'tls_change_cipher.pcap', 'quic-mvfst-exp.pcap'];

export const EXTRACT_FILTERS = [
  '',
  'host 192.168.2.17',
  'src host 192.168.2.17',
  'dst host 192.168.2.17',
  'net 192.168.0.0/16',
  'not net 10.0.0.0/8',
  'net 192.168.0.1 mask 255.255.0.255',
  'port 53',
  'udp port 53',
  'src port 443',
  'dst port 443 or dst port 80',
  'portrange 1-1024',
  'tcp',
  'udp and not port 53',
  'icmp or icmp6',
  'ip proto 17',
  'ip6',
  'ip6 and tcp',
  'host 2a00:1450:4001:80b::200e',
  '(tcp or udp) and not (port 443 or port 53)',
  'tcp[tcpflags] & tcp-syn != 0',
  'tcp[tcpflags] & (tcp-syn|tcp-fin) != 0 and not src net 192.168.0.0/16',
  'ip[8] < 64',
  'greater 1000',
  'less 100',
  'vlan',
  'vlan and host 10.10.10.31',
  'ether host ff:ff:ff:ff:ff:ff',
  'ether broadcast or ether multicast',
  'not tcp and not udp',
  'arp',
];

/** Time ranges over a dump set whose packet times (sorted) are `times`. */
export function testRanges(times: readonly bigint[]): [string, bigint, bigint][] {
  const q = (f: number): bigint => times[Math.floor(f * (times.length - 1))]!;
  return [
    ['everything', 0n, q(1) + 1n],
    ['the middle third', q(1 / 3), q(2 / 3)],
    ['from a packet to one ns after another', q(0.1), q(0.2) + 1n],
    ['one packet exactly', q(0.5), q(0.5) + 1n],
  ];
}

/** A time in ns as npcapextract reads it: epoch seconds with nine decimals. */
export const timeArg = (ns: bigint): string => ns.toString().replace(/(\d{9})$/, '.$1');
