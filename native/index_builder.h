// Builds the flow index of one pcap file (recorder/index.fbs) from the
// PacketMeta records of its packets, handed over in file order, one batch
// per written chunk.
//
// Per record, add() finds the record's flow in the open segment's table,
// updates that flow's counters and its time block, and remembers (flow,
// offset): about 8 bytes a packet and 100 bytes a flow and segment. The
// whole file's flow table is built from the segments' only when the file
// needs an index of its own rather than its segments (finish()). Encoding
// happens once per segment or per file, in encode (index_encode.cc).
//
// Methods return an error message, empty when all went well: the addon is
// built without C++ exceptions, and a refused call changes nothing.
#pragma once
#include <array>
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
  /**
   * The open segment's flows, numbered by first sight in it. Until the
   * whole file's flows are needed, the keys of the segments before stay
   * behind it (Interner::restart), one entry per flow and segment.
   */
  Interner<KEY_WORDS> seg_flows{1024};
  /** Per entry of seg_flows: the flow's counters in its segment, and whether that segment's first packet of it went from canonical endpoint B to A. */
  std::vector<FlowStat> entry_stats;
  std::vector<uint8_t> entry_swapped;
  /** The whole file's flows, merged from the segments' once the whole file's index may be wanted. */
  Interner<KEY_WORDS> flows{1024};
  std::vector<FlowStat> global;
  std::vector<uint8_t> swapped;
  // Per packet, in file order: its flow (numbered in its segment until the
  // segment is merged into `flows`), and the low word of its offset.
  std::vector<uint32_t> pkt_flow;
  std::vector<uint32_t> pkt_off_lo;
  /** Scratch of a merge: entry of a segment -> flow of the file. */
  std::vector<uint32_t> merged_as;

  /** Empties them, keeping their memory. */
  void clear();
};

/**
 * Estimates how many distinct values it was given (HyperLogLog, 4096
 * registers: 1.6 % standard error), from their 32-bit hashes.
 */
class DistinctCount {
 public:
  void add(uint32_t hash) {
    uint8_t rank = uint8_t(__builtin_clz((hash << BITS) | (1u << (BITS - 1))) + 1);
    uint8_t& r = registers_[hash >> (32 - BITS)];
    if (rank > r) r = rank;
  }
  double estimate() const;

 private:
  static constexpr unsigned BITS = 12;
  std::array<uint8_t, size_t(1) << BITS> registers_{};
};

class IndexBuilder {
 public:
  /** Takes the arrays a finished builder parked, if any. */
  explicit IndexBuilder(const IndexInfo& info);

  /** Indexes records in file order. */
  std::string add(const PacketMeta* meta, size_t count);
  /**
   * The segment of the packets added since the last written one, covering
   * the file's bytes from its end up to `committed`. It counts once
   * segment_written() says so: a segment that could not be written is
   * covered again by the next one.
   */
  std::string segment(uint64_t committed, Encoded& out);
  /** The segment() just before, with no add() since, is on disk: the next one starts where it ends. */
  std::string segment_written();
  /** The index of the whole file, one segment covering [0, file_bytes). Ends the builder; its arrays are parked. */
  std::string finish(uint64_t file_bytes, Encoded& out);
  /**
   * When the segments written so far, with a last one covering the rest of
   * the file, make a good index of it (few, and repeating few flows), encodes
   * that last segment, ends the builder as finish() does and sets `done`.
   * Otherwise leaves everything as it was: finish() is then the way.
   * Appended to the segments, the last one completes the file's index
   * without encoding its flows a second time.
   */
  std::string finish_from_segments(uint64_t file_bytes, Encoded& out, bool& done);

  /** Earliest and latest packet time so far in ticks; false before any packet. */
  bool time_bounds(uint64_t& min, uint64_t& max) const;
  bool nano() const { return info_.nano; }

  /** The flows and packets one encode() writes: a segment, or the whole file. */
  struct Span {
    uint64_t start, end;
    /** Its flows' counters, keys (KEY_WORDS words each) and directions; pkt_flow numbers them. */
    const FlowStat* stats;
    size_t flows;
    const uint32_t* flow_keys;
    const uint8_t* swapped;
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
  bool repeats(size_t entries) const;
  bool open_keys() const;
  Span open_segment(uint64_t end, bool keys) const;
  void merge(size_t first_entry, size_t end_entry, size_t first_packet, size_t end_packet);
  void merge_segments();
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

  // The open segment: since the end of the last written one.
  uint64_t seg_start_ = 0;
  size_t seg_packet_ = 0;
  size_t seg_block_ = 0;
  uint32_t seg_off_hi_ = 0;
  uint32_t file_off_hi_ = 0;
  // The last segment() result, until add() or segment_written().
  bool encoded_ = false;
  uint64_t encoded_end_ = 0;
  // Flows of the written segments without key tables (a flow once per segment it is in).
  size_t unkeyed_flows_ = 0;
  /**
   * While the segments may become the file's index, their flows are kept
   * per segment only: where nearly every packet is a flow of its own, a
   * table of the whole file's missed the cache on every packet. They are
   * merged into a_.flows (whole_) when the file has too many segments or
   * its segments repeat too many flows, or at finish().
   */
  bool whole_ = false;
  /**
   * Written segments not merged yet: their first entry of a_.seg_flows and
   * first packet. Until whole_, they are all the written segments, and their
   * entries end where the open segment's begin (a_.seg_flows.run_start()).
   */
  struct Unmerged {
    size_t entry, packet;
  };
  std::vector<Unmerged> unmerged_;
  /** The file's distinct flows, while they are not merged. */
  DistinctCount distinct_;
  bool finished_ = false;
};

}  // namespace n2d
