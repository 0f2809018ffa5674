// The per-packet metadata record the capture thread fills and TypeScript
// reads (recorder/packet-meta.ts mirrors this layout; change both together).
// Fixed size and little-endian so a whole chunk's worth travels to JS as one
// ArrayBuffer and is read with a DataView, never copied per packet.
#pragma once
#include <cstdint>

namespace n2d {

enum MetaFlags : uint8_t {
  META_IPV4 = 1 << 0,      // src/dst hold IPv4 addresses in their first 4 bytes
  META_IPV6 = 1 << 1,      // src/dst hold IPv6 addresses
  META_PORTS = 1 << 2,     // sport/dport are valid (TCP, UDP, SCTP; ICMP type/code not)
  META_FRAGMENT = 1 << 3,  // IP fragment with offset > 0: no L4 header
  META_VLAN = 1 << 4,      // an 802.1Q/802.1ad tag precedes L3 (vlan holds the outer id)
  META_PLAIN = 1 << 5,     // L2 is exactly what libpcap's host/net/port code expects
                           // (Ethernet or cooked/raw/null framing, no tags, no MPLS):
                           // only then may the index decide a filter on its own
  META_MAC = 1 << 6,       // src_mac/dst_mac are valid (Ethernet framing)
};

#pragma pack(push, 1)
struct PacketMeta {
  uint64_t ts_ns;       //  0  timestamp, ns since the epoch
  uint64_t offset;      //  8  file offset of the pcap record header
  uint32_t caplen;      // 16  bytes stored
  uint32_t wirelen;     // 20  bytes on the wire
  uint8_t src[16];      // 24
  uint8_t dst[16];      // 40
  uint16_t sport;       // 56
  uint16_t dport;       // 58
  uint16_t ethertype;   // 60  L3 ethertype after tags (0 when unknown)
  uint16_t vlan;        // 62  outer VLAN id, valid with META_VLAN
  uint8_t src_mac[6];   // 64
  uint8_t dst_mac[6];   // 70
  uint8_t ipproto;      // 76  IP protocol (IPv6: after extension headers)
  uint8_t flags;        // 77  MetaFlags
  uint16_t reserved;    // 78
};
#pragma pack(pop)
static_assert(sizeof(PacketMeta) == 80, "PacketMeta layout is shared with TypeScript");

}  // namespace n2d
