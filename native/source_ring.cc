// Live capture from an AF_PACKET TPACKET_V3 ring: the kernel fills blocks of
// packets in shared memory and we walk them without a system call per packet.
// <net/if.h> must come before the kernel headers, which redefine its names.
#include <net/if.h>
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "parse.h"
#include "source.h"

namespace n2d {
namespace {

constexpr uint32_t kMaxBlock = 4u << 20;
constexpr uint32_t kMinBlock = 64u << 10;
// A block is handed over when full or after this long, which bounds how
// stale the newest packets can be when traffic is light.
constexpr uint32_t kBlockTimeoutMs = 50;
constexpr int kBlocksPerPoll = 8;

std::string sys_error(const std::string& what) { return what + ": " + strerror(errno); }

int linktype_for(int fd, int ifindex, std::string& err) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (!if_indextoname(ifindex, ifr.ifr_name) || ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
    err = sys_error("cannot read the interface's hardware type");
    return -1;
  }
  switch (ifr.ifr_hwaddr.sa_family) {
    case ARPHRD_ETHER:
    case ARPHRD_LOOPBACK:
      return LT_EN10MB;
    case ARPHRD_NONE:  // tun, WireGuard: bare IP packets
      return LT_RAW;
    default:
      err = "unsupported interface hardware type " + std::to_string(ifr.ifr_hwaddr.sa_family);
      return -1;
  }
}

// Compiling against an activated handle on the interface itself gives
// libpcap's Linux code for `vlan`, which tests the tag the kernel stripped;
// a dead handle would test bytes that are no longer in the frame.
bool compile_filter(const std::string& iface, int linktype, const std::string& expr,
                    struct bpf_program& prog, std::string& err) {
  char errbuf[PCAP_ERRBUF_SIZE] = {0};
  pcap_t* p = pcap_create(iface.c_str(), errbuf);
  if (p && pcap_set_snaplen(p, 256) == 0 && pcap_set_buffer_size(p, 1 << 20) == 0 &&
      pcap_activate(p) < 0) {
    pcap_close(p);
    p = nullptr;
  }
  if (!p) p = pcap_open_dead(dlt_of_linktype(linktype), 262144);
  int rc = pcap_compile(p, &prog, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN);
  if (rc < 0) err = std::string("bad capture filter: ") + pcap_geterr(p);
  pcap_close(p);
  return rc == 0;
}

class RingSource : public Source {
 public:
  ~RingSource() override {
    if (ring_ && ring_ != MAP_FAILED) munmap(ring_, size_t(req_.tp_block_size) * req_.tp_block_nr);
    if (fd_ >= 0) close(fd_);
  }

  bool open(const std::string& iface, uint64_t buffer_bytes, bool promisc, const std::string& filter,
            std::string& err) {
    int ifindex = if_nametoindex(iface.c_str());
    if (ifindex == 0) {
      err = "no such interface: " + iface;
      return false;
    }
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd_ < 0) {
      err = sys_error("cannot open a packet socket (needs root or CAP_NET_RAW)");
      return false;
    }
    linktype_ = linktype_for(fd_, ifindex, err);
    if (linktype_ < 0) return false;
    // The socket receives nothing until bind(), so the filter and the ring
    // are in place before the first packet.
    if (!filter.empty()) {
      struct bpf_program prog;
      if (!compile_filter(iface, linktype_, filter, prog, err)) return false;
      struct sock_fprog fprog = {static_cast<unsigned short>(prog.bf_len),
                                 reinterpret_cast<struct sock_filter*>(prog.bf_insns)};
      int rc = setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog);
      pcap_freecode(&prog);
      if (rc < 0) {
        err = sys_error("cannot attach the capture filter");
        return false;
      }
    }
    int version = TPACKET_V3;
    if (setsockopt(fd_, SOL_PACKET, PACKET_VERSION, &version, sizeof version) < 0) {
      err = sys_error("TPACKET_V3 is not available");
      return false;
    }
    uint32_t block = kMaxBlock;
    while (block > kMinBlock && uint64_t(block) * 8 > buffer_bytes) block /= 2;
    uint64_t nblocks = buffer_bytes / block;
    if (nblocks < 2) nblocks = 2;
    memset(&req_, 0, sizeof req_);
    req_.tp_block_size = block;
    req_.tp_block_nr = uint32_t(nblocks);
    req_.tp_frame_size = 2048;
    req_.tp_frame_nr = uint32_t(uint64_t(block) / 2048 * nblocks);
    req_.tp_retire_blk_tov = kBlockTimeoutMs;
    if (setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req_, sizeof req_) < 0) {
      err = sys_error("cannot set up a " + std::to_string(buffer_bytes >> 20) + " MB capture ring");
      return false;
    }
    ring_ = static_cast<uint8_t*>(
        mmap(nullptr, size_t(block) * nblocks, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, fd_, 0));
    if (ring_ == MAP_FAILED)  // MAP_LOCKED needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK
      ring_ = static_cast<uint8_t*>(
          mmap(nullptr, size_t(block) * nblocks, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0));
    if (ring_ == MAP_FAILED) {
      err = sys_error("cannot map the capture ring");
      return false;
    }
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = ifindex;
    if (bind(fd_, reinterpret_cast<struct sockaddr*>(&sll), sizeof sll) < 0) {
      err = sys_error("cannot bind to " + iface);
      return false;
    }
    if (promisc) {
      struct packet_mreq mr;
      memset(&mr, 0, sizeof mr);
      mr.mr_ifindex = ifindex;
      mr.mr_type = PACKET_MR_PROMISC;
      if (setsockopt(fd_, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
        err = sys_error("cannot set promiscuous mode on " + iface);
        return false;
      }
    }
    return true;
  }

  int linktype() const override { return linktype_; }
  uint32_t snaplen() const override { return 0; }
  bool nano() const override { return false; }
  bool live() const override { return true; }
  std::string error() const override { return error_; }

  PollResult poll(int timeout_ms, PacketSink& sink) override {
    bool any = false;
    // A bounded run per call: when the ring is full, rotation, stop, the
    // partial-chunk flush and the drop counter still get their turn.
    for (int n = 0; n < kBlocksPerPoll; n++) {
      auto* hdr = reinterpret_cast<struct tpacket_block_desc*>(ring_ + size_t(next_) * req_.tp_block_size);
      if (!(__atomic_load_n(&hdr->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
      walk_block(hdr, sink);
      __atomic_store_n(&hdr->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
      next_ = (next_ + 1) % req_.tp_block_nr;
      any = true;
    }
    if (any) return PollResult::Ok;
    struct pollfd pfd = {fd_, POLLIN | POLLERR, 0};
    int rc = ::poll(&pfd, 1, timeout_ms);
    if (rc < 0 && errno != EINTR) {
      error_ = sys_error("poll on the capture socket");
      return PollResult::Error;
    }
    if (rc > 0 && (pfd.revents & POLLERR)) {
      error_ = "the capture interface went away";
      return PollResult::Error;
    }
    return PollResult::Ok;
  }

  uint64_t take_drops() override {
    struct tpacket_stats_v3 st;
    socklen_t len = sizeof st;
    // The kernel resets its counters on every read, which is what makes a
    // per-interval figure possible.
    if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0) return 0;
    return st.tp_drops;
  }

 private:
  void walk_block(struct tpacket_block_desc* block, PacketSink& sink) {
    uint32_t n = block->hdr.bh1.num_pkts;
    auto* pkt = reinterpret_cast<struct tpacket3_hdr*>(reinterpret_cast<uint8_t*>(block) +
                                                       block->hdr.bh1.offset_to_first_pkt);
    for (uint32_t i = 0; i < n; i++) {
      RawPacket rp;
      rp.sec = pkt->tp_sec;
      rp.frac = pkt->tp_nsec;
      rp.frac_ns = true;
      rp.data = reinterpret_cast<const uint8_t*>(pkt) + pkt->tp_mac;
      rp.caplen = pkt->tp_snaplen;
      rp.wirelen = pkt->tp_len;
      rp.has_tag = linktype_ == LT_EN10MB && (pkt->tp_status & TP_STATUS_VLAN_VALID);
      rp.tci = uint16_t(pkt->hv1.tp_vlan_tci);
      rp.tpid = (pkt->tp_status & TP_STATUS_VLAN_TPID_VALID) ? uint16_t(pkt->hv1.tp_vlan_tpid) : 0x8100;
      sink.packet(rp);
      pkt = reinterpret_cast<struct tpacket3_hdr*>(reinterpret_cast<uint8_t*>(pkt) + pkt->tp_next_offset);
    }
  }

  int fd_ = -1;
  int linktype_ = LT_EN10MB;
  uint8_t* ring_ = nullptr;
  struct tpacket_req3 req_;
  uint32_t next_ = 0;
  std::string error_;
};

}  // namespace

Source* open_ring(const std::string& iface, uint64_t buffer_bytes, bool promisc, const std::string& filter,
                  std::string& err) {
  auto* src = new RingSource();
  if (!src->open(iface, buffer_bytes, promisc, filter, err)) {
    delete src;
    return nullptr;
  }
  return src;
}

}  // namespace n2d
