// Import: a pcap or pcapng file read by libpcap, fed to the same chunker as
// live capture, keeping the file's own timestamps.
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>

#include <memory>

#include "parse.h"
#include "source.h"

namespace n2d {
namespace {

constexpr size_t kReadBuffer = 1 << 20;

// Whether the source has nanoseconds is read from the file itself:
// nanosecond pcap, or pcapng (whose resolution can be anything, per
// interface). A classic pcap is then read in its own precision, so that its
// timestamp fields come through untouched.
bool file_has_nanoseconds(const std::string& path) {
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) return false;
  uint8_t m[4] = {0};
  size_t n = fread(m, 1, 4, f);
  fclose(f);
  if (n != 4) return false;
  uint32_t le = uint32_t(m[0]) | uint32_t(m[1]) << 8 | uint32_t(m[2]) << 16 | uint32_t(m[3]) << 24;
  return le == 0xa1b23c4d || le == 0x4d3cb2a1 || le == 0x0a0d0d0a;
}

class FileSource : public Source {
 public:
  ~FileSource() override {
    if (p_) pcap_close(p_);
  }

  bool open(const std::string& path, std::string& err) {
    char errbuf[PCAP_ERRBUF_SIZE] = {0};
    nano_ = file_has_nanoseconds(path);
    FILE* f = fopen(path.c_str(), "rb");
    if (!f) {
      err = path + ": " + strerror(errno);
      return false;
    }
    // libpcap reads each record with two fread() calls; with stdio's default
    // 4 KiB buffer that was a read() syscall every few packets. glibc ignores
    // the size unless it is given the buffer too.
    read_buffer_.reset(new char[kReadBuffer]);
    setvbuf(f, read_buffer_.get(), _IOFBF, kReadBuffer);
    p_ = pcap_fopen_offline_with_tstamp_precision(f, nano_ ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO,
                                                  errbuf);
    if (!p_) {
      fclose(f);
      err = path + ": " + errbuf;
      return false;
    }
    return true;
  }

  int linktype() const override { return linktype_of_dlt(pcap_datalink(p_)); }
  uint32_t snaplen() const override { return uint32_t(pcap_snapshot(p_)); }
  bool nano() const override { return nano_; }
  bool live() const override { return false; }
  std::string error() const override { return error_; }

  PollResult poll(int, PacketSink& sink) override {
    // A bounded run per call keeps rotate()/stop() requests responsive.
    for (int i = 0; i < 4096; i++) {
      struct pcap_pkthdr* h;
      const u_char* data;
      int rc = pcap_next_ex(p_, &h, &data);
      if (rc == PCAP_ERROR_BREAK) return PollResult::End;
      if (rc < 0) {
        error_ = pcap_geterr(p_);
        return PollResult::Error;
      }
      RawPacket rp;
      // libpcap sign-extends the 32-bit fields; the casts give back their bits.
      rp.sec = uint32_t(h->ts.tv_sec);
      rp.frac = uint32_t(h->ts.tv_usec);
      rp.frac_ns = nano_;
      rp.data = data;
      rp.caplen = h->caplen;
      rp.wirelen = h->len;
      rp.has_tag = false;
      rp.tpid = rp.tci = 0;
      sink.packet(rp);
    }
    return PollResult::Ok;
  }

 private:
  std::unique_ptr<char[]> read_buffer_;  // the FILE's, freed after pcap_close() in the destructor
  pcap_t* p_ = nullptr;
  bool nano_ = false;
  std::string error_;
};

}  // namespace

Source* open_file(const std::string& path, std::string& err) {
  auto* src = new FileSource();
  if (!src->open(path, err)) {
    delete src;
    return nullptr;
  }
  return src;
}

}  // namespace n2d
