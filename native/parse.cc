#include "parse.h"

#include <cstring>

namespace n2d {
namespace {

inline uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

bool is_ports_proto(uint8_t proto) { return proto == 6 || proto == 17 || proto == 132; }

void parse_ipv4(const uint8_t* p, uint32_t len, PacketMeta& m, bool plain) {
  if (len < 20 || (p[0] >> 4) != 4) return;
  uint32_t ihl = uint32_t(p[0] & 0x0f) * 4;
  if (ihl < 20 || len < ihl) return;
  m.ethertype = 0x0800;
  m.flags |= META_IPV4;
  if (plain) m.flags |= META_PLAIN;
  memcpy(m.src, p + 12, 4);
  memcpy(m.dst, p + 16, 4);
  m.ipproto = p[9];
  uint16_t frag_off = be16(p + 6) & 0x1fff;
  if (frag_off != 0) {
    m.flags |= META_FRAGMENT;
    return;
  }
  if (is_ports_proto(m.ipproto) && len >= ihl + 4) {
    m.sport = be16(p + ihl);
    m.dport = be16(p + ihl + 2);
    m.flags |= META_PORTS;
  }
}

void parse_ipv6(const uint8_t* p, uint32_t len, PacketMeta& m, bool plain) {
  if (len < 40 || (p[0] >> 4) != 6) return;
  m.ethertype = 0x86DD;
  m.flags |= META_IPV6;
  memcpy(m.src, p + 8, 16);
  memcpy(m.dst, p + 24, 16);
  uint8_t nh = p[6];
  uint32_t off = 40;
  // libpcap's port and protocol tests read the fixed header's next-header
  // field only, so a packet with extension headers is never "plain": the
  // index records the transport it finds, but leaves the decision to libpcap.
  bool ext = false;
  for (int hops = 0; hops < 8; hops++) {
    if (nh == 0 || nh == 43 || nh == 60) {
      ext = true;
      if (len < off + 8) break;
      nh = p[off];
      off += (uint32_t(p[off + 1]) + 1) * 8;
    } else if (nh == 44) {
      ext = true;
      if (len < off + 8) break;
      uint16_t frag_off = be16(p + off + 2) >> 3;
      nh = p[off];
      off += 8;
      if (frag_off != 0) {
        m.ipproto = nh;
        m.flags |= META_FRAGMENT;
        return;
      }
    } else {
      break;
    }
  }
  m.ipproto = nh;
  if (plain && !ext) m.flags |= META_PLAIN;
  if (is_ports_proto(nh) && len >= off + 4) {
    m.sport = be16(p + off);
    m.dport = be16(p + off + 2);
    m.flags |= META_PORTS;
  }
}

void parse_l3(uint16_t ethertype, const uint8_t* p, uint32_t len, PacketMeta& m, bool plain) {
  m.ethertype = ethertype;
  if (ethertype == 0x0800) parse_ipv4(p, len, m, plain);
  else if (ethertype == 0x86DD) parse_ipv6(p, len, m, plain);
}

void parse_ip_by_version(const uint8_t* p, uint32_t len, PacketMeta& m, bool plain) {
  if (len < 1) return;
  if ((p[0] >> 4) == 4) parse_ipv4(p, len, m, plain);
  else if ((p[0] >> 4) == 6) parse_ipv6(p, len, m, plain);
}

void parse_ethernet(const uint8_t* p, uint32_t len, PacketMeta& m) {
  if (len < 14) return;
  memcpy(m.dst_mac, p, 6);
  memcpy(m.src_mac, p + 6, 6);
  m.flags |= META_MAC;
  uint16_t type = be16(p + 12);
  uint32_t off = 14;
  bool tagged = false;
  while ((type == 0x8100 || type == 0x88a8 || type == 0x9100) && len >= off + 4) {
    if (!tagged) {
      m.vlan = be16(p + off) & 0x0fff;
      m.flags |= META_VLAN;
    }
    tagged = true;
    type = be16(p + off + 2);
    off += 4;
  }
  if (type == 0x8100 || type == 0x88a8 || type == 0x9100) return;  // tag cut short
  parse_l3(type, p + off, len - off, m, !tagged);
}

}  // namespace

void parse_packet(int linktype, const uint8_t* p, uint32_t caplen, PacketMeta& m) {
  memset(m.src, 0, sizeof m.src);
  memset(m.dst, 0, sizeof m.dst);
  memset(m.src_mac, 0, sizeof m.src_mac);
  memset(m.dst_mac, 0, sizeof m.dst_mac);
  m.sport = m.dport = m.ethertype = m.vlan = 0;
  m.ipproto = m.flags = 0;
  m.reserved = 0;
  switch (linktype) {
    case LT_EN10MB:
      parse_ethernet(p, caplen, m);
      break;
    case LT_RAW:
    case LT_RAW_OLD1:
    case LT_RAW_OLD2:
    case LT_IPV4:
    case LT_IPV6:
      parse_ip_by_version(p, caplen, m, true);
      break;
    case LT_LINUX_SLL:
      if (caplen >= 16) parse_l3(be16(p + 14), p + 16, caplen - 16, m, true);
      break;
    case LT_LINUX_SLL2:
      if (caplen >= 20) parse_l3(be16(p), p + 20, caplen - 20, m, true);
      break;
    case LT_NULL:
    case LT_LOOP:
      // The 4-byte family differs between BSDs (and libpcap tests the family,
      // not the version nibble), so the index describes but never decides.
      if (caplen >= 4) parse_ip_by_version(p + 4, caplen - 4, m, false);
      break;
    default:
      break;
  }
}

}  // namespace n2d
