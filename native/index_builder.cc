// IndexBuilder's per-packet side: flow interning, per-flow counters, the
// time table, and the segment / file boundaries.
#include "index_builder.h"

#include <cmath>
#include <cstddef>
#include <cstring>

#include <malloc.h>

#include <mutex>

namespace n2d {

namespace {

/**
 * The arrays of the last finished builder, for the next one: one file's
 * worth stays mapped for the life of the process (a steady RSS instead of a
 * saw tooth), and is filled again without page faults.
 */
std::mutex parked_lock;
std::unique_ptr<FileArrays> parked;

/** Time table granularity: a block ends after this many packets or bytes. */
constexpr uint32_t BLOCK_PACKETS = 1024;
constexpr uint64_t BLOCK_BYTES = 1 << 20;

/**
 * A segment of the file being written gets key tables and flow checkpoints
 * from this many flows on. Below, readers decode it whole, which costs less
 * than the tables would: they took about as long to write as the rest of
 * the segment.
 */
constexpr size_t SEGMENT_KEYS_MIN = 4096;

/**
 * When a file's segments are its index (finish_from_segments): few enough
 * that a lookup in each costs little more than one in a single segment, and
 * repeating few flows, so that the index is hardly larger. Both hold where
 * nearly every packet is a flow of its own, the case where encoding the
 * whole file again costs most.
 */
constexpr size_t KEPT_SEGMENTS_MAX = 16;
constexpr size_t KEPT_REPEAT_NUM = 5, KEPT_REPEAT_DEN = 4;
/** And the segments without key tables, which a lookup decodes whole, hold few flows. */
constexpr size_t KEPT_UNKEYED_FLOWS_MAX = 4 * SEGMENT_KEYS_MIN;

/** Flags that split flows (all of them today; named so that a new one is a decision). */
constexpr uint32_t KEY_FLAGS = META_IPV4 | META_IPV6 | META_PORTS | META_FRAGMENT | META_VLAN | META_PLAIN | META_MAC;

/** Little-endian u32 word `i` of a record: the flow key is made of the record's words as they are. */
inline uint32_t word(const PacketMeta& m, size_t i) {
  uint32_t w;
  std::memcpy(&w, reinterpret_cast<const uint8_t*>(&m) + 4 * i, 4);
  return w;
}

constexpr size_t W_SRC = offsetof(PacketMeta, src) / 4;
constexpr size_t W_DST = offsetof(PacketMeta, dst) / 4;
constexpr size_t W_PORTS = offsetof(PacketMeta, sport) / 4;
constexpr size_t W_ETHER_VLAN = offsetof(PacketMeta, ethertype) / 4;
constexpr size_t W_SRC_MAC = offsetof(PacketMeta, src_mac) / 4;
constexpr size_t W_MACS = W_SRC_MAC + 1;           // src_mac[4..5] | dst_mac[0..1] << 16
constexpr size_t W_DST_MAC_TAIL = W_SRC_MAC + 2;   // dst_mac[2..5]

/** The canonical flow key of a record; true when its source is endpoint B. */
bool flow_key(const PacketMeta& m, uint32_t* key) {
  uint32_t flags = m.flags & KEY_FLAGS;
  bool ip = (flags & (META_IPV4 | META_IPV6)) != 0;
  bool ip6 = (flags & META_IPV6) != 0;
  // Endpoints as (addr[4], port) and MACs as (bytes 0-3, bytes 4-5), zero when absent.
  uint32_t s[4] = {ip ? word(m, W_SRC) : 0, ip6 ? word(m, W_SRC + 1) : 0, ip6 ? word(m, W_SRC + 2) : 0,
                   ip6 ? word(m, W_SRC + 3) : 0};
  uint32_t d[4] = {ip ? word(m, W_DST) : 0, ip6 ? word(m, W_DST + 1) : 0, ip6 ? word(m, W_DST + 2) : 0,
                   ip6 ? word(m, W_DST + 3) : 0};
  uint32_t ports = ip && (flags & META_PORTS) ? word(m, W_PORTS) : 0;
  uint32_t sp = ports & 0xffff, dp = ports >> 16;
  uint32_t sm0 = 0, sm1 = 0, dm0 = 0, dm1 = 0;
  if (flags & META_MAC) {
    uint32_t mix = word(m, W_MACS), tail = word(m, W_DST_MAC_TAIL);
    sm0 = word(m, W_SRC_MAC);
    sm1 = mix & 0xffff;
    dm0 = (mix >> 16) | (tail << 16);
    dm1 = tail >> 16;
  }
  // Canonical order: smaller endpoint first, comparing words as numbers; MACs break ties (and order non-IP).
  int cmp = 0;
  for (int i = 0; i < 4 && cmp == 0; i++) cmp = s[i] < d[i] ? -1 : s[i] > d[i] ? 1 : 0;
  if (cmp == 0) cmp = sp < dp ? -1 : sp > dp ? 1 : 0;
  if (cmp == 0) cmp = sm0 < dm0 ? -1 : sm0 > dm0 ? 1 : sm1 < dm1 ? -1 : sm1 > dm1 ? 1 : 0;
  bool swap = cmp > 0;
  const uint32_t* a = swap ? d : s;
  const uint32_t* b = swap ? s : d;
  std::memcpy(key + K_ADDR_A, a, 16);
  std::memcpy(key + K_ADDR_B, b, 16);
  key[K_PORTS] = swap ? dp | (sp << 16) : ports;
  key[K_MAC_A] = swap ? dm0 : sm0;
  key[K_MAC_B] = swap ? sm0 : dm0;
  key[K_MAC_TAILS] = swap ? dm1 | (sm1 << 16) : sm1 | (dm1 << 16);
  uint32_t ev = word(m, W_ETHER_VLAN);
  key[K_ETHER_VLAN] = flags & META_VLAN ? ev : ev & 0xffff;
  key[K_PROTO_FLAGS] = (ip ? m.ipproto : 0) | (flags << 8);
  return swap;
}

}  // namespace

IndexBuilder::IndexBuilder(const IndexInfo& info) : info_(info) {
  // Encoding takes hundreds of MB of temporaries for a moment at the end of
  // each file, and tens of MB for each segment. Served by fresh mmaps, or
  // trimmed from the heap after each file, all of it was faulted in again
  // every time: page faults and munmap took about a fifth of the recorder's
  // CPU with 100 B random flows. From the heap, and never trimmed, the memory
  // is reused instead; RSS stays near the peak of one file's encoding, which
  // it reached anyway, rather than falling back to it for every file.
  static std::once_flag heap_only;
  std::call_once(heap_only, [] {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  });
  std::lock_guard<std::mutex> g(parked_lock);
  if (parked) {
    std::swap(a_, *parked);
    parked.reset();
  }
}

void FileArrays::clear() {
  seg_flows.clear();
  entry_stats.clear();
  entry_swapped.clear();
  flows.clear();
  global.clear();
  swapped.clear();
  pkt_flow.clear();
  pkt_off_lo.clear();
}

double DistinctCount::estimate() const {
  constexpr double m = double(size_t(1) << BITS);
  double sum = 0;
  size_t zeros = 0;
  for (uint8_t r : registers_) {
    sum += std::ldexp(1.0, -int(r));
    zeros += r == 0;
  }
  double raw = 0.7213 / (1 + 1.079 / m) * m * m / sum;
  // Few values: counting the empty registers is the better estimate.
  return raw <= 2.5 * m && zeros > 0 ? m * std::log(m / double(zeros)) : raw;
}

std::string IndexBuilder::add(const PacketMeta* meta, size_t count) {
  if (finished_) return "IndexBuilder.add() after finish()";
  if (count == 0) return {};
  std::string err = check_offsets(meta, count);
  if (!err.empty()) return err;
  encoded_ = false;

  // Keys and hashes first, so that the flow lookups can be prefetched ahead.
  batch_keys_.resize(count * KEY_WORDS);
  batch_hash_.resize(count);
  batch_swap_.resize(count);
  for (size_t i = 0; i < count; i++) {
    batch_swap_[i] = flow_key(meta[i], &batch_keys_[i * KEY_WORDS]);
    batch_hash_[i] = a_.seg_flows.hash(&batch_keys_[i * KEY_WORDS]);
  }

  const size_t entry0 = a_.seg_flows.run_start();
  a_.seg_flows.intern_all(
      batch_keys_.data(), batch_hash_.data(), count, [&](uint32_t l) { __builtin_prefetch(&a_.entry_stats[entry0 + l]); },
      [&](size_t i, uint32_t l, bool added) {
        const PacketMeta& m = meta[i];
        uint32_t off_hi = uint32_t(m.offset >> 32);
        size_t n = a_.pkt_flow.size();
        if (n == seg_packet_) seg_off_hi_ = off_hi;
        if (n == 0) file_off_hi_ = off_hi;

        // Ticks: ns, or us (floor, as the pcap file stores them) when not nano.
        uint64_t t = info_.nano ? m.ts_ns : m.ts_ns / 1000;
        if (added) {
          a_.entry_swapped.push_back(batch_swap_[i]);
          a_.entry_stats.push_back(FlowStat{t, t, 1, m.caplen, m.wirelen});
          if (!whole_) distinct_.add(batch_hash_[i]);
        } else {
          FlowStat& f = a_.entry_stats[entry0 + l];
          if (t < f.min) f.min = t;
          else if (t > f.max) f.max = t;
          f.packets++;
          f.cap_bytes += m.caplen;
          f.wire_bytes += m.wirelen;
        }
        a_.pkt_flow.push_back(l);
        a_.pkt_off_lo.push_back(uint32_t(m.offset));
        to_block(m.offset, t);
      });
  return {};
}

// Offsets must increase by less than 4 GiB from record to record (only their
// low words are kept per packet) and not fall before the open segment.
// Checked before anything changes, so a refused batch leaves the builder as it was.
std::string IndexBuilder::check_offsets(const PacketMeta* meta, size_t count) {
  if (a_.pkt_flow.size() == seg_packet_ && meta[0].offset < seg_start_) {
    return "packet offset before the end of the previous segment";
  }
  int64_t last = last_offset_;
  for (size_t i = 0; i < count; i++) {
    int64_t off = int64_t(meta[i].offset);
    if (off <= last) return "packet offsets must increase (record " + std::to_string(i) + " of the batch)";
    if (a_.pkt_flow.size() + i > 0 && off - last >= (int64_t(1) << 32)) {
      return "consecutive records 4 GiB apart or more (record " + std::to_string(i) + " of the batch)";
    }
    last = off;
  }
  last_offset_ = last;
  return {};
}

/** The covered range must hold the segment's packets. */
std::string IndexBuilder::check_end(uint64_t end) const {
  if (end < seg_start_ || (a_.pkt_flow.size() > seg_packet_ && int64_t(end) <= last_offset_)) {
    return "index end " + std::to_string(end) + " does not cover the packets added (last record at " +
           std::to_string(last_offset_) + ")";
  }
  return {};
}

void IndexBuilder::to_block(uint64_t offset, uint64_t t) {
  if (a_.pkt_flow.size() > 1 && t < prev_ticks_) ordered_ = false;
  prev_ticks_ = t;
  if (cur_.packets == BLOCK_PACKETS || (cur_.packets > 0 && offset - cur_.offset >= BLOCK_BYTES)) close_block();
  if (cur_.packets++ == 0) {
    cur_.offset = offset;
    cur_.min = cur_.max = t;
  } else if (t < cur_.min) {
    cur_.min = t;
  } else if (t > cur_.max) {
    cur_.max = t;
  }
}

void IndexBuilder::close_block() {
  if (cur_.packets == 0) return;
  blocks_.push_back(cur_);
  cur_.packets = 0;
}

/**
 * Merges the entries [first_entry, end_entry) of a_.seg_flows, one segment's
 * flows, into the whole file's, and numbers the segment's packets
 * [first_packet, end_packet) by them.
 */
void IndexBuilder::merge(size_t first_entry, size_t end_entry, size_t first_packet, size_t end_packet) {
  const size_t n = end_entry - first_entry;
  const uint32_t* keys = a_.seg_flows.kept_key(first_entry);
  batch_hash_.resize(n);
  for (size_t j = 0; j < n; j++) batch_hash_[j] = a_.flows.hash(keys + j * KEY_WORDS);
  a_.merged_as.resize(n);
  a_.flows.intern_all(
      keys, batch_hash_.data(), n, [&](uint32_t g) { __builtin_prefetch(&a_.global[g]); },
      [&](size_t j, uint32_t g, bool added) {
        const FlowStat& l = a_.entry_stats[first_entry + j];
        a_.merged_as[j] = g;
        if (added) {  // its first segment: the direction of its first packet is the file's
          a_.global.push_back(l);
          a_.swapped.push_back(a_.entry_swapped[first_entry + j]);
          return;
        }
        FlowStat& f = a_.global[g];
        if (l.min < f.min) f.min = l.min;
        if (l.max > f.max) f.max = l.max;
        f.packets += l.packets;
        f.cap_bytes += l.cap_bytes;
        f.wire_bytes += l.wire_bytes;
      });
  for (size_t p = first_packet; p < end_packet; p++) a_.pkt_flow[p] = a_.merged_as[a_.pkt_flow[p]];
}

/** Merges every written segment not merged yet, and the open one, into the whole file's flows; from now on each is merged when written. */
void IndexBuilder::merge_segments() {
  unmerged_.push_back(Unmerged{a_.seg_flows.run_start(), seg_packet_});
  const Unmerged end{a_.seg_flows.kept(), a_.pkt_flow.size()};
  for (size_t k = 0; k < unmerged_.size(); k++) {
    const Unmerged& next = k + 1 < unmerged_.size() ? unmerged_[k + 1] : end;
    merge(unmerged_[k].entry, next.entry, unmerged_[k].packet, next.packet);
  }
  unmerged_.clear();
  a_.seg_flows.clear();
  a_.entry_stats.clear();
  a_.entry_swapped.clear();
  whole_ = true;
}

/** Whether `entries` segment flows would repeat too many of the file's distinct ones. */
bool IndexBuilder::repeats(size_t entries) const {
  return double(entries) * KEPT_REPEAT_DEN > distinct_.estimate() * KEPT_REPEAT_NUM;
}

/** Whether the open segment gets key tables when it is not the file's last. */
bool IndexBuilder::open_keys() const { return a_.seg_flows.size() >= SEGMENT_KEYS_MIN; }

IndexBuilder::Span IndexBuilder::open_segment(uint64_t end, bool keys) const {
  const size_t entry = a_.seg_flows.run_start();
  return Span{seg_start_,
              end,
              a_.entry_stats.data() + entry,
              a_.seg_flows.size(),
              a_.seg_flows.key(0),
              a_.entry_swapped.data() + entry,
              seg_packet_,
              a_.pkt_flow.size(),
              seg_off_hi_,
              seg_block_,
              blocks_.size(),
              keys};
}

std::string IndexBuilder::segment(uint64_t committed, Encoded& out) {
  if (finished_) return "IndexBuilder.segment() after finish()";
  std::string err = check_end(committed);
  if (!err.empty()) return err;
  close_block();
  out = encode(open_segment(committed, open_keys()));
  encoded_ = true;
  encoded_end_ = committed;
  return {};
}

std::string IndexBuilder::segment_written() {
  if (finished_) return "IndexBuilder.segmentWritten() after finish()";
  if (!encoded_) return "IndexBuilder.segmentWritten() without a segment() since the last add()";
  // No add() since segment(): the open segment is the one encoded, and a new one opens.
  encoded_ = false;
  if (!open_keys()) unkeyed_flows_ += a_.seg_flows.size();
  if (whole_) {
    merge_segments();
  } else {
    unmerged_.push_back(Unmerged{a_.seg_flows.run_start(), seg_packet_});
    a_.seg_flows.restart();
  }
  seg_start_ = encoded_end_;
  seg_packet_ = a_.pkt_flow.size();
  seg_block_ = blocks_.size();
  // A last segment after these would be one too many for the file's index,
  // or they repeat their flows (and would hold them many times over until
  // the file is done): the index will be finish()'s, which needs the whole
  // file's flows. Repeats seldom fade once flows last for seconds.
  if (!whole_ && (unmerged_.size() + 1 > KEPT_SEGMENTS_MAX || repeats(a_.seg_flows.run_start()))) merge_segments();
  return {};
}

std::string IndexBuilder::finish(uint64_t file_bytes, Encoded& out) {
  if (finished_) return "IndexBuilder.finish() called twice";
  std::string err = check_end(file_bytes);
  if (!err.empty()) return err;
  close_block();
  merge_segments();
  out = encode(Span{0, file_bytes, a_.global.data(), a_.global.size(), a_.flows.key(0), a_.swapped.data(), 0,
                    a_.pkt_flow.size(), file_off_hi_, 0, blocks_.size(), true});
  end();
  return {};
}

std::string IndexBuilder::finish_from_segments(uint64_t file_bytes, Encoded& out, bool& done) {
  done = false;
  if (finished_) return "IndexBuilder.finishFromSegments() after finish()";
  std::string err = check_end(file_bytes);
  if (!err.empty()) return err;
  if (whole_) return {};
  if (unmerged_.size() + 1 > KEPT_SEGMENTS_MAX || repeats(a_.seg_flows.kept()) || unkeyed_flows_ > KEPT_UNKEYED_FLOWS_MAX) {
    return {};
  }
  // The last segment always has key tables: a small one costs little, and
  // published indexes had them before.
  close_block();
  out = encode(open_segment(file_bytes, true));
  end();
  done = true;
  return {};
}

void IndexBuilder::end() {
  finished_ = true;
  // Only the time bounds are asked for after this.
  a_.clear();
  {
    std::lock_guard<std::mutex> g(parked_lock);
    if (!parked) parked = std::make_unique<FileArrays>();
    std::swap(*parked, a_);
  }
  a_ = FileArrays();
}

bool IndexBuilder::time_bounds(uint64_t& min, uint64_t& max) const {
  bool found = cur_.packets > 0;
  min = cur_.min;
  max = cur_.max;
  for (const TimeBlock& b : blocks_) {
    if (!found || b.min < min) min = b.min;
    if (!found || b.max > max) max = b.max;
    found = true;
  }
  return found;
}

}  // namespace n2d
