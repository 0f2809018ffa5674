// Fills a PacketMeta from a frame: addresses, ports, protocol, VLAN, MACs.
// Only the outermost L3 header is read, because that is what libpcap's
// host/net/port primitives look at; anything unusual clears META_PLAIN so that
// the index never decides a filter that libpcap would decide differently.
#pragma once
#include <cstdint>
#include <cstring>

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

// libpcap's API speaks DLT_* values, files carry LINKTYPE_* values; they
// differ for raw IP and ATM only (pcap-linktype(7)).
inline int linktype_of_dlt(int dlt) { return dlt == 12 ? LT_RAW : dlt == 11 ? 100 : dlt; }
inline int dlt_of_linktype(int linktype) { return linktype == LT_RAW ? 12 : linktype == 100 ? 11 : linktype; }

// Enough of a frame to reach the end of any L4 port field behind tags and
// IPv6 extension headers. Every indexer parses this much and no more, so an
// index rebuilt from a file equals the one recorded with it.
constexpr uint32_t kParseBytes = 256;

// A 32-bit field of a pcap record header. Our pcaps are written in host
// order, which is little-endian on every machine we run on.
inline uint32_t rd32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

// Leaves ts_ns, offset, caplen and wirelen to the caller.
void parse_packet(int linktype, const uint8_t* p, uint32_t caplen, PacketMeta& m);

}  // namespace n2d
