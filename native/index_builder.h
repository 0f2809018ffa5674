// Builds the flow index of one pcap file (recorder/index.fbs) from the
// PacketMeta records of its packets, handed over in file order, one batch
// per written chunk.
//
// Per record, add() finds the record's flow, updates that flow's counters
// for the current segment and its time block, and remembers (flow, offset):
// about 8 bytes a packet and 160 bytes a flow of the whole file. Everything
// else happens once per segment or per file, in encode (index_encode.cc).
//
// Methods return an error message, empty when all went well: the addon is
// built without C++ exceptions, and a refused call changes nothing.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "interner.h"
#include "meta.h"
#include "varint.h"

namespace n2d {

struct IndexInfo {
  uint16_t version;  // INDEX_FORMAT_VERSION of recorder/index-file.ts, which owns the format
  uint32_t linktype;
  bool nano;
  uint32_t snaplen;
};

/** Counters of one flow. Times are ticks of the file's precision (us, or ns when nano). */
struct FlowStat {
  uint64_t min, max;
  uint64_t packets, cap_bytes, wire_bytes;
};

/** An encoded segment: the bytes [start, capacity) of `buffer`. */
struct Encoded {
  std::unique_ptr<uint8_t[]> buffer;
  size_t capacity = 0;
  size_t start = 0;
};

/** A run of consecutive records of the sparse time table. */
struct TimeBlock {
  uint64_t offset;  // of its first record
  uint32_t packets;
  uint64_t min, max;
};

/** Flow key: the canonical (smaller first) endpoint pair, so both directions share a flow. In u32 words: */
enum FlowKeyWord : size_t {
  K_ADDR_A = 0,        // 4 words, IPv4 in the first
  K_ADDR_B = 4,        // 4 words
  K_PORTS = 8,         // port A | port B << 16
  K_ETHER_VLAN = 9,    // ethertype | vlan << 16
  K_PROTO_FLAGS = 10,  // ipproto | flags << 8
  K_MAC_A = 11,        // MAC A bytes 0-3
  K_MAC_TAILS = 12,    // MAC A bytes 4-5 | MAC B bytes 4-5 << 16
  K_MAC_B = 13,        // MAC B bytes 0-3
  KEY_WORDS = 14,
};

/** The arrays of one file's index that grow with its flows and packets. */
struct FileArrays {
  Interner<KEY_WORDS> flows{1024};
  /** Per global flow: its first packet went from canonical endpoint B to A. */
  std::vector<uint8_t> swapped;
  /** Whole-file counters, brought up to date at each segment boundary. */
  std::vector<FlowStat> global;
  /** Counters of the current segment, numbered by first sight in it. */
  std::vector<FlowStat> local;
  std::vector<uint32_t> local_global;
  std::vector<int32_t> local_of;
  // Per packet, in file order: its global flow and the low word of its offset.
  std::vector<uint32_t> pkt_flow;
  std::vector<uint32_t> pkt_off_lo;

  /** Empties them, keeping their memory. */
  void clear();
};

class IndexBuilder {
 public:
  /** Takes the arrays a finished builder parked, if any. */
  explicit IndexBuilder(const IndexInfo& info);

  /** Indexes records in file order. */
  std::string add(const PacketMeta* meta, size_t count);
  /** The segment of the packets added since the previous one, covering the file's bytes up to `committed`. */
  std::string segment(uint64_t committed, Encoded& out);
  /** The index of the whole file, one segment covering [0, file_bytes). Ends the builder; its arrays are parked. */
  std::string finish(uint64_t file_bytes, Encoded& out);
  /**
   * When the segments made so far, with a last one covering the rest of the
   * file, make a good index of it (few, and repeating few flows), encodes
   * that last segment, ends the builder as finish() does and sets `done`.
   * Otherwise leaves everything as it was: finish() is then the way.
   * Appended to the segments, the last one completes the file's index
   * without encoding its flows a second time.
   */
  std::string finish_from_segments(uint64_t file_bytes, Encoded& out, bool& done);

  size_t flow_count() const { return finished_ ? final_flows_ : a_.flows.size(); }
  /** Earliest and latest packet time so far in ticks; false before any packet. */
  bool time_bounds(uint64_t& min, uint64_t& max) const;
  bool nano() const { return info_.nano; }

  /** The flows and packets one encode() writes: a segment, or the whole file. */
  struct Span {
    uint64_t start, end;
    const std::vector<FlowStat>* stats;
    /** Flow number in `stats` -> global flow id; null when they are the same. */
    const uint32_t* global_of;
    /** Global flow id -> flow number in `stats`; null when they are the same. */
    const int32_t* local_of;
    size_t first_packet, end_packet;
    /** High word of the first packet's offset (only low words are kept per packet). */
    uint32_t first_offset_hi;
    size_t first_block, end_block;
    /**
     * Key tables and flow checkpoints, which let a reader decode only the
     * flows a query names. A small segment of the file being written goes
     * without (SEGMENT_KEYS_MIN in index_builder.cc): readers decode its
     * flows whole.
     */
    bool keys;
  };

 private:
  std::string check_offsets(const PacketMeta* meta, size_t count);
  std::string check_end(uint64_t end) const;
  void to_block(uint64_t offset, uint64_t ticks);
  void close_block();
  void merge_local();
  void encode_segment(uint64_t end, bool keys, Encoded& out);
  void end();
  Encoded encode(const Span& span) const;
  VarintSink encode_offsets(const Span& span, std::vector<uint32_t>& at, std::vector<uint64_t>& prev_first) const;

  IndexInfo info_;
  // Scratch of add(): the batch's flow keys, their hashes and directions.
  std::vector<uint32_t> batch_keys_;
  std::vector<uint32_t> batch_hash_;
  std::vector<uint8_t> batch_swap_;

  // The file's per-flow and per-packet arrays; a finished builder parks them
  // (emptied) for the next one, which then fills memory that is already
  // mapped: allocated afresh per file they cost more page faults than work.
  FileArrays a_;
  int64_t last_offset_ = -1;

  // Closed time blocks, and the open one.
  std::vector<TimeBlock> blocks_;
  TimeBlock cur_{0, 0, 0, 0};
  // Whether packet times never went back, from the file's start.
  bool ordered_ = true;
  uint64_t prev_ticks_ = 0;

  // The segment being accumulated.
  uint64_t seg_start_ = 0;
  size_t seg_packet_ = 0;
  size_t seg_block_ = 0;
  uint32_t seg_off_hi_ = 0;
  uint32_t file_off_hi_ = 0;
  // Segments made so far, and the flows they hold (a flow once per segment it is in).
  size_t segments_ = 0;
  size_t segment_flows_ = 0;
  size_t unkeyed_flows_ = 0;  // in segments without key tables
  bool finished_ = false;
  size_t final_flows_ = 0;
};

}  // namespace n2d
