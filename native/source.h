// Where packets come from: a live TPACKET_V3 ring or a capture file. Both
// hand packets to the same chunker, so an import is the capture pipeline
// with a different front end.
#pragma once
#include <cstdint>
#include <string>

namespace n2d {

struct RawPacket {
  // Timestamp as the source gives it: seconds and a fraction in microseconds
  // or nanoseconds. Kept apart so an import of a file in its own precision
  // writes back the very bytes it read, even a fraction that is out of range.
  uint32_t sec;
  uint32_t frac;
  bool frac_ns;
  const uint8_t* data;
  uint32_t caplen;
  uint32_t wirelen;
  // The ring reports a VLAN tag the kernel took out of the frame; the writer
  // puts it back so the stored frame is the one on the wire.
  bool has_tag;
  uint16_t tpid;
  uint16_t tci;
};

class PacketSink {
 public:
  virtual ~PacketSink() = default;
  virtual void packet(const RawPacket& pkt) = 0;
};

enum class PollResult { Ok, End, Error };

class Source {
 public:
  virtual ~Source() = default;
  virtual int linktype() const = 0;
  // The source's own snaplen (a file's header, or 0 for a live ring).
  virtual uint32_t snaplen() const = 0;
  // True when the source's timestamps have nanosecond resolution worth keeping.
  virtual bool nano() const = 0;
  virtual bool live() const = 0;
  // Hands over what is available, waiting at most timeout_ms for more.
  virtual PollResult poll(int timeout_ms, PacketSink& sink) = 0;
  virtual std::string error() const = 0;
  // Kernel drop counter since the previous call (live sources only).
  virtual uint64_t take_drops() { return 0; }
};

// Both return nullptr and fill err on failure.
Source* open_ring(const std::string& iface, uint64_t buffer_bytes, bool promisc,
                  const std::string& filter, std::string& err);
Source* open_file(const std::string& path, std::string& err);

}  // namespace n2d
