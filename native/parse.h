// Fills a PacketMeta from a frame: addresses, ports, protocol, VLAN, MACs.
// Only the outermost L3 header is read, because that is what libpcap's
// host/net/port primitives look at; anything unusual clears META_PLAIN so that
// the index never decides a filter that libpcap would decide differently.
#pragma once
#include <cstdint>
#include "meta.h"

namespace n2d {

// Link types (LINKTYPE_* values as written in pcap headers).
enum : int {
  LT_NULL = 0,
  LT_EN10MB = 1,
  LT_RAW_OLD1 = 12,
  LT_RAW_OLD2 = 14,
  LT_RAW = 101,
  LT_LOOP = 108,
  LT_LINUX_SLL = 113,
  LT_IPV4 = 228,
  LT_IPV6 = 229,
  LT_LINUX_SLL2 = 276,
};

// Leaves ts_ns, offset, caplen and wirelen to the caller.
void parse_packet(int linktype, const uint8_t* p, uint32_t caplen, PacketMeta& m);

}  // namespace n2d
