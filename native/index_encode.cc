// IndexBuilder::encode: one Segment (recorder/index.fbs) from the flows and
// packets of a segment or of the whole file: dictionaries ranked by use,
// per-flow varint columns, key tables, flow checkpoints, record offsets and
// the time table.
#include <algorithm>
#include <cstring>

#include "flatbuf.h"
#include "index_builder.h"
#include "varint.h"

namespace n2d {

namespace {

/**
 * A flow checkpoint every this many flows, a key checkpoint every this many
 * keys: finding one flow or one key then decodes at most this many entries,
 * for about 0.4 B a flow and 0.13 B a key.
 */
constexpr uint32_t FLOW_CHECKPOINT_EVERY = 128;
constexpr uint32_t KEY_CHECKPOINT_EVERY = 64;

// Segment's fields, numbered as in recorder/index.fbs.
enum SegmentField : size_t {
  S_VERSION, S_LINKTYPE, S_NANO, S_SNAPLEN, S_START, S_END, S_PACKETS, S_CAP_BYTES, S_WIRE_BYTES, S_MIN_TS,
  S_MAX_TS, S_FLOW_COUNT, S_CLASSES, S_IPV4, S_IPV6, S_MAC_PAIRS, S_FLOW_CLASS, S_FLOW_ADDRS, S_FLOW_PORTS,
  S_FLOW_MACS, S_FLOW_TIMES, S_FLOW_COUNTS, S_FLOW_WIRE, S_FLOW_OFFSETS, S_BLOCK_COUNT, S_BLOCKS, S_CHUNKS,
  S_ORDERED, S_IPV4_FLOWS, S_IPV6_FLOWS, S_PORT_FLOWS, S_FLOW_CHECKPOINT_EVERY, S_FLOW_CHECKPOINTS, S_FIELDS,
};
enum KeyTableField : size_t { KT_COUNT, KT_EVERY, KT_ENTRIES, KT_CHECKPOINTS, KT_FIELDS };

/**
 * Whether a dictionary of `size` entries, the most used `most` times, keeps
 * first-sight order instead of being ranked by use. The TypeScript builder
 * this replaced packed (uses, id) into one double and could not rank this
 * many; indexes it wrote keep first-sight order, so that a rebuilt index
 * stays equal to the recorded one.
 */
bool unranked(size_t size, uint32_t most) { return size >= (size_t(1) << 26) || most >= (uint32_t(1) << 27); }

/** Dictionary ids renumbered by use, most used first, ties in order of first sight. */
std::vector<uint32_t> rank_by_use(const std::vector<uint32_t>& uses, size_t size) {
  std::vector<uint32_t> rank(size);
  uint32_t most = 0;
  for (size_t id = 0; id < size; id++) most = std::max(most, uses[id]);
  if (unranked(size, most)) {
    for (size_t id = 0; id < size; id++) rank[id] = uint32_t(id);
    return rank;
  }
  // A counting sort by use, ids in increasing order within a count: linear,
  // where sorting millions of entries of random traffic took a tenth of the CPU.
  std::vector<uint32_t> next(size_t(most) + 1, 0);  // next[u]: first rank of the entries used u times
  for (size_t id = 0; id < size; id++) next[uses[id]]++;
  uint32_t r = 0;
  for (size_t u = size_t(most) + 1; u-- > 0;) {
    uint32_t n = next[u];
    next[u] = r;
    r += n;
  }
  for (size_t id = 0; id < size; id++) rank[id] = next[uses[id]]++;
  return rank;
}

/** Frees a temporary now: a whole file's index with millions of flows needs hundreds of MB of them. */
template <typename T>
void release(std::vector<T>& v) {
  std::vector<T>().swap(v);
}

/** Bits needed to number keys 0 .. limit - 1. */
unsigned bits_below(size_t limit) {
  unsigned bits = 0;
  while ((size_t(1) << bits) < limit) bits++;
  return bits;
}

/**
 * Sorts n (key << 32 | flow) pairs by their key of `key_bits` bits, stably,
 * with `spare` (room for n pairs) as the other buffer; returns the one that
 * holds the result. An LSD radix sort, one pass per digit and no more
 * digits than the keys have: a pass reads the pairs in order and appends
 * each to one of a few hundred runs, where renumbering the keys and counting
 * them into one bucket per key jumped through memory for each pair. Digits
 * of at most 8 bits, whose runs' ends stay in the L1 cache: sorting 4 to 18 M
 * pairs by 32-bit keys took half as long again with 11-bit ones, one pass fewer.
 */
uint64_t* sort_by_key(uint64_t* pairs, uint64_t* spare, size_t n, unsigned key_bits) {
  constexpr unsigned MAX_DIGIT = 8;
  const unsigned passes = (key_bits + MAX_DIGIT - 1) / MAX_DIGIT;
  if (passes == 0 || n < 2) return pairs;
  const unsigned digit = (key_bits + passes - 1) / passes;
  const size_t buckets = size_t(1) << digit;
  const uint64_t mask = buckets - 1;
  // Every pass's counts in one read of the pairs.
  std::vector<uint32_t> counts(passes * buckets, 0);
  for (size_t i = 0; i < n; i++) {
    const uint64_t key = pairs[i] >> 32;
    for (unsigned p = 0; p < passes; p++) counts[p * buckets + ((key >> (p * digit)) & mask)]++;
  }
  for (unsigned p = 0; p < passes; p++) {
    uint32_t* next = &counts[p * buckets];
    const unsigned shift = 32 + p * digit;
    // A digit that every key shares (a file of one network's hosts) would move the pairs for nothing.
    if (next[(pairs[0] >> shift) & mask] == n) continue;
    uint32_t at = 0;
    for (size_t d = 0; d < buckets; d++) {
      const uint32_t c = next[d];
      next[d] = at;
      at += c;
    }
    for (size_t i = 0; i < n; i++) spare[next[(pairs[i] >> shift) & mask]++] = pairs[i];
    std::swap(pairs, spare);
  }
  return pairs;
}

/** (key, flow) pairs, added in increasing flow order, written as a KeyTable. */
class Postings {
 public:
  /**
   * Keys have `key_bits` bits and are written as they are: the IPv4 table is
   * keyed by the address rather than by its dictionary entry, so that a
   * reader finds a host or a net by a binary search over checkpoints
   * instead of a dictionary scan. `dense` tables (dictionaries) have a flow
   * for every key and write no key. A pair's value is its flow shifted left
   * by `tag_bits`, below which the caller keeps what it needs of the pair:
   * a flow may then come more than once under a key, and is written once.
   */
  Postings(unsigned key_bits, bool dense, size_t capacity, unsigned tag_bits = 0)
      : key_bits_(key_bits), tag_bits_(tag_bits), dense_(dense), pairs_(new uint64_t[capacity]) {}

  /** About what write() takes: a flow a byte or two, a key a few, a checkpoint 8. */
  size_t bytes_estimate() const { return size_ == 0 ? 0 : 4 * size_ + 64; }

  /** At most `capacity` of them: each flow adds one or two pairs to a table of room for two a flow. */
  void add(uint32_t key, uint32_t value) { pairs_[size_++] = uint64_t(key) << 32 | value; }

  size_t size() const { return size_; }

  /** The pairs sorted by key, stably, so that each key's values stay increasing (sorted once). */
  const uint64_t* sorted() {
    if (!sorted_) {
      spare_.reset(new uint64_t[std::max<size_t>(size_, 1)]);
      sorted_ = sort_by_key(pairs_.get(), spare_.get(), size_, key_bits_);
    }
    return sorted_;
  }

  /** Writes the table's entries to `fb` (once); write_table() then writes the rest. */
  void write_entries(FlatBuilder& fb) {
    const size_t n = size_;
    if (n == 0) return;
    const uint64_t* sorted = this->sorted();
    auto flow = [&](size_t i) { return uint32_t(sorted[i]) >> tag_bits_; };

    VarintSink sink(2 * n + 16);
    uint32_t prev_key = 0, prev_first = 0;
    for (size_t from = 0, to; from < n; from = to) {
      const uint32_t key = uint32_t(sorted[from] >> 32);
      uint32_t flows = 1;
      for (to = from + 1; to < n && uint32_t(sorted[to] >> 32) == key; to++) flows += flow(to) != flow(to - 1);
      if (count_++ % KEY_CHECKPOINT_EVERY == 0) {
        cp_key_.push_back(key);
        cp_at_.push_back(uint32_t(sink.size()));
        prev_key = prev_first = 0;
      }
      if (!dense_) sink.uv(key - prev_key);
      prev_key = key;
      sink.uv(flows);
      const uint32_t first = flow(from);
      sink.zz32(int32_t(first - prev_first));
      prev_first = first;
      for (size_t q = from + 1; q < to; q++) {
        if (const uint32_t d = flow(q) - flow(q - 1)) sink.uv(d);
      }
    }
    drop();
    entries_ = fb.bytes(sink.data(), sink.size());
  }

  /** Frees the pairs: written, or not wanted in the index. */
  void drop() {
    spare_.reset();
    pairs_.reset();
    sorted_ = nullptr;
    size_ = 0;
  }

  /**
   * The table's offset in `fb` (0 when it has no pair): its checkpoints and
   * fields, written after every large vector so that they land near the
   * front of the flatbuffer, in the first read of a lazily opened index.
   */
  uint32_t write_table(FlatBuilder& fb) const {
    if (count_ == 0) return 0;
    fb.start_vector(8, cp_key_.size(), 4);
    for (size_t c = cp_key_.size(); c-- > 0;) {
      fb.prep(4, 8);
      fb.put<uint32_t>(cp_at_[c]);
      fb.put<uint32_t>(cp_key_[c]);
    }
    uint32_t checkpoints = fb.end_vector();
    fb.start_object(KT_FIELDS);
    fb.field<uint32_t>(KT_COUNT, count_, 0);
    fb.field<uint32_t>(KT_EVERY, KEY_CHECKPOINT_EVERY, 0);
    fb.field_offset(KT_ENTRIES, entries_);
    fb.field_offset(KT_CHECKPOINTS, checkpoints);
    return fb.end_object();
  }

 private:
  unsigned key_bits_, tag_bits_;
  bool dense_;
  std::unique_ptr<uint64_t[]> pairs_;  // uninitialized: pages of unused room are never touched
  size_t size_ = 0;
  std::unique_ptr<uint64_t[]> spare_;
  const uint64_t* sorted_ = nullptr;
  uint32_t count_ = 0, entries_ = 0;
  std::vector<uint32_t> cp_key_, cp_at_;
};

/**
 * The IPv4 dictionary of a span, ranked as rank_by_use() ranks the others,
 * from the IPv4 key table's (address, flow << 1 | endpoint) pairs sorted by
 * address, where endpoint 0 is the flow key's A and 1 its B (a flow whose
 * endpoints share an address has both). The key table sorts those pairs
 * anyway; a hash table of the addresses missed the cache on nearly every
 * lookup of random traffic, a tenth of the recorder's CPU. An address named
 * once, nearly every one in random traffic, ranks after all the others, in
 * the order of the flows: one bit marks it, and its rank is a count kept as
 * rank() is asked for each flow's endpoints in order. The others keep an
 * entry per endpoint.
 */
class Ipv4Dictionary {
 public:
  Ipv4Dictionary(const uint64_t* sorted, size_t n, const uint8_t* swapped, size_t n_flows)
      : once_((2 * n_flows + 63) / 64, 0), multi_at_(new uint32_t[2 * n_flows]) {
    uint32_t most = 0;
    for (size_t from = 0, to; from < n; from = to) {
      const uint32_t address = uint32_t(sorted[from] >> 32);
      for (to = from + 1; to < n && uint32_t(sorted[to] >> 32) == address;) to++;
      // Where the flows first name it: its first flow, at A when both endpoints have it.
      const uint32_t v = uint32_t(sorted[from]), j = v >> 1;
      const bool both = to - from > 1 && uint32_t(sorted[from + 1]) >> 1 == j;
      const size_t first = 2 * size_t(j) + (both ? 0 : (v & 1) ^ swapped[j]);
      const uint32_t uses = uint32_t(to - from);
      most = std::max(most, uses);
      size_++;
      if (uses == 1) {
        once_[first / 64] |= uint64_t(1) << (first % 64);
        continue;
      }
      const uint32_t m = uint32_t(multi_.size());
      multi_.push_back(Multi{uses, first, address});
      for (size_t q = from; q < to; q++) {
        const uint32_t w = uint32_t(sorted[q]), f = w >> 1;
        multi_at_[2 * size_t(f) + ((w & 1) ^ swapped[f])] = m;
      }
    }
    values_.resize(size_);
    multi_rank_.assign(multi_.size(), UNRANKED);
    if (unranked(size_, most)) return;  // rank() then gives every entry its first-sight rank
    std::vector<uint32_t> order(multi_.size());
    for (uint32_t m = 0; m < order.size(); m++) order[m] = m;
    std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
      return multi_[x].uses != multi_[y].uses ? multi_[x].uses > multi_[y].uses : multi_[x].first < multi_[y].first;
    });
    for (uint32_t r = 0; r < order.size(); r++) {
      multi_rank_[order[r]] = r;
      values_[r] = multi_[order[r]].address;
    }
    next_ = uint32_t(order.size());
  }

  size_t size() const { return size_; }

  /**
   * The rank of endpoint `side` (0: A, which sent first; 1: B) of IPv4 flow
   * `j`, whose address is `address`. Asked for every IPv4 flow's A and B, in
   * increasing flow order.
   */
  uint32_t rank(size_t j, unsigned side, uint32_t address) {
    const size_t at = 2 * j + side;
    if (once_[at / 64] >> (at % 64) & 1) {
      values_[next_] = address;
      return next_++;
    }
    uint32_t& r = multi_rank_[multi_at_[at]];
    if (r == UNRANKED) {  // first-sight order, at its first sight
      r = next_++;
      values_[r] = address;
    }
    return r;
  }

  /** The addresses by rank, once every endpoint was ranked. */
  const std::vector<uint32_t>& values() const { return values_; }

 private:
  static constexpr uint32_t UNRANKED = ~uint32_t(0);
  struct Multi {
    uint32_t uses;
    size_t first;
    uint32_t address;
  };

  size_t size_ = 0;
  std::vector<uint64_t> once_;  // by flow and endpoint: the only use of its address
  std::unique_ptr<uint32_t[]> multi_at_;  // by flow and endpoint, where once_ is clear: its entry of multi_
  std::vector<Multi> multi_;
  std::vector<uint32_t> multi_rank_;
  std::vector<uint32_t> values_;
  uint32_t next_ = 0;  // the next rank to give in the order of the flows
};

/**
 * The key a dictionary was last asked for and its id: consecutive flows
 * mostly repeat one (a link's MAC pair, the commonest class), and comparing
 * W words costs less than hashing them and probing.
 */
template <size_t W>
struct LastKey {
  uint32_t key[W];
  uint32_t id;
  bool valid = false;

  bool is(const uint32_t* k) const { return valid && std::memcmp(key, k, sizeof key) == 0; }
  void set(const uint32_t* k, uint32_t i) {
    std::memcpy(key, k, sizeof key);
    id = i;
    valid = true;
  }
};

/** Where a flow checkpoint's flow starts in each column (recorder/index.fbs FlowCheckpoint). */
struct CheckpointAt {
  uint32_t cls, addrs, ports, macs, times, counts, wire;
  uint64_t prev_first_ts;
};

uint32_t optional_bytes(FlatBuilder& fb, const VarintSink& s) { return s.size() > 0 ? fb.bytes(s.data(), s.size()) : 0; }

/** Interned keys hold the address bytes as read little-endian; the index stores a.b.c.d as a number. */
inline uint32_t bswap32(uint32_t v) { return __builtin_bswap32(v); }

}  // namespace

Encoded IndexBuilder::encode(const Span& in) const {
  const FlowStat* stats = in.stats;
  const size_t n_flows = in.flows;
  const uint64_t n_packets = in.end_packet - in.first_packet;
  auto flow_key = [&](size_t j) { return in.flow_keys + j * KEY_WORDS; };

  // Pass 1: dictionaries and their use counts.
  Interner<2> classes;
  Interner<4> ipv6;
  Interner<3> macs;
  // Uses grow with their dictionary. The per-flow entries are written
  // before they are read (addresses and MACs where the flow has them), and
  // left uninitialized: zeroing them took about 1% of the recorder's CPU.
  std::vector<uint32_t> class_uses, v6_uses, mac_uses;
  auto use = [](std::vector<uint32_t>& uses, uint32_t id) {
    if (id == uses.size()) {
      uses.push_back(1);  // ids are numbered in order of first sight
    } else {
      uses[id]++;
    }
  };
  std::unique_ptr<uint32_t[]> flow_class(new uint32_t[n_flows]), addr_a(new uint32_t[n_flows]),
      addr_b(new uint32_t[n_flows]), flow_mac(new uint32_t[n_flows]);
  LastKey<2> last_class;
  // By orientation: the entry of a flow key's MAC words depends on which endpoint sent first.
  LastKey<3> last_mac[2];
  // Keyed by the address itself, which the flow key holds in canonical order (Ipv4Dictionary).
  // A flow and its endpoint share a word: flows number below 2^31 (each takes ~100 B of the builder).
  Postings v4_flows(32, false, 2 * n_flows, 1);
  for (size_t j = 0; j < n_flows; j++) {
    const uint32_t* k = flow_key(j);
    const bool swapped = in.swapped[j];
    uint32_t flags = k[K_PROTO_FLAGS] >> 8;
    if (!last_class.is(k + K_ETHER_VLAN)) last_class.set(k + K_ETHER_VLAN, classes.intern(k + K_ETHER_VLAN));
    flow_class[j] = last_class.id;
    use(class_uses, flow_class[j]);
    // Endpoint A of the index is the source of the flow's first packet.
    const uint32_t* a = k + (swapped ? K_ADDR_B : K_ADDR_A);
    const uint32_t* b = k + (swapped ? K_ADDR_A : K_ADDR_B);
    if (flags & META_IPV4) {
      v4_flows.add(bswap32(k[K_ADDR_A]), uint32_t(j) << 1);
      v4_flows.add(bswap32(k[K_ADDR_B]), uint32_t(j) << 1 | 1);
    } else if (flags & META_IPV6) {
      addr_a[j] = ipv6.intern(a);
      addr_b[j] = ipv6.intern(b);
      use(v6_uses, addr_a[j]);
      use(v6_uses, addr_b[j]);
    }
    if (flags & META_MAC) {
      LastKey<3>& last = last_mac[swapped];
      if (!last.is(k + K_MAC_A)) {  // K_MAC_A, K_MAC_TAILS, K_MAC_B
        uint32_t tails = k[K_MAC_TAILS];
        uint32_t pair[3];
        if (swapped) {
          pair[0] = k[K_MAC_B], pair[1] = k[K_MAC_A], pair[2] = (tails >> 16) | (tails << 16);
        } else {
          pair[0] = k[K_MAC_A], pair[1] = k[K_MAC_B], pair[2] = tails;
        }
        last.set(k + K_MAC_A, macs.intern(pair));
      }
      flow_mac[j] = last.id;
      use(mac_uses, flow_mac[j]);
    }
  }
  const std::vector<uint32_t> class_rank = rank_by_use(class_uses, classes.size());
  Ipv4Dictionary v4(v4_flows.sorted(), v4_flows.size(), in.swapped, n_flows);
  if (!in.keys) v4_flows.drop();
  const std::vector<uint32_t> v6_rank = rank_by_use(v6_uses, ipv6.size());
  const std::vector<uint32_t> mac_rank = rank_by_use(mac_uses, macs.size());
  release(class_uses), release(v6_uses), release(mac_uses);
  classes.seal(), ipv6.seal(), macs.seal();

  // Header times: the blocks hold every packet's time.
  uint64_t min_ts = 0, max_ts = 0;
  for (size_t b = in.first_block; b < in.end_block; b++) {
    if (b == in.first_block || blocks_[b].min < min_ts) min_ts = blocks_[b].min;
    if (b == in.first_block || blocks_[b].max > max_ts) max_ts = blocks_[b].max;
  }

  // Pass 2: per-flow columns.
  VarintSink s_class(n_flows), s_addrs(4 * n_flows), s_macs(n_flows), s_times(4 * n_flows), s_counts(3 * n_flows),
      s_wire(n_flows);
  std::vector<uint16_t> ports;
  ports.reserve(2 * n_flows);
  bool any_wire = false;
  uint64_t cap_bytes = 0, wire_bytes = 0, prev_ts = min_ts;
  std::vector<CheckpointAt> at;
  const size_t pairs = in.keys ? 2 * n_flows : 0;
  Postings v6_flows(bits_below(ipv6.size()), true, pairs), port_flows(16, false, pairs);
  for (size_t j = 0; j < n_flows; j++) {
    const uint32_t* k = flow_key(j);
    const bool swapped = in.swapped[j];
    uint32_t flags = k[K_PROTO_FLAGS] >> 8;
    if (in.keys && j % FLOW_CHECKPOINT_EVERY == 0) {
      at.push_back(CheckpointAt{uint32_t(s_class.size()), uint32_t(s_addrs.size()), uint32_t(ports.size()),
                                uint32_t(s_macs.size()), uint32_t(s_times.size()), uint32_t(s_counts.size()),
                                uint32_t(s_wire.size()), prev_ts});
    }
    s_class.uv(class_rank[flow_class[j]]);
    if (flags & META_IPV4) {
      s_addrs.uv(v4.rank(j, 0, bswap32(k[swapped ? K_ADDR_B : K_ADDR_A])));
      s_addrs.uv(v4.rank(j, 1, bswap32(k[swapped ? K_ADDR_A : K_ADDR_B])));
    } else if (flags & META_IPV6) {
      uint32_t a = v6_rank[addr_a[j]], b = v6_rank[addr_b[j]];
      s_addrs.uv(a);
      s_addrs.uv(b);
      if (in.keys) {
        v6_flows.add(a, uint32_t(j));
        if (b != a) v6_flows.add(b, uint32_t(j));
      }
    }
    if (flags & META_PORTS) {
      uint32_t p = k[K_PORTS];
      uint16_t a = uint16_t(swapped ? p >> 16 : p & 0xffff);
      uint16_t b = uint16_t(swapped ? p & 0xffff : p >> 16);
      ports.push_back(a);
      ports.push_back(b);
      if (in.keys) {
        port_flows.add(a, uint32_t(j));
        if (b != a) port_flows.add(b, uint32_t(j));
      }
    }
    if (flags & META_MAC) s_macs.uv(mac_rank[flow_mac[j]]);
    const FlowStat& f = stats[j];
    s_times.zz_diff(f.min, prev_ts);
    s_times.uv(f.max - f.min);
    prev_ts = f.min;
    s_counts.uv(f.packets);
    s_counts.uv(f.cap_bytes);
    if (f.wire_bytes >= f.cap_bytes) {
      s_wire.uv(f.wire_bytes - f.cap_bytes);
    } else {
      // A record whose original length is below its captured length (broken writers):
      // the TypeScript builder this replaced wrote the low byte of the negative difference.
      s_wire.byte(uint8_t(f.wire_bytes - f.cap_bytes));
    }
    any_wire = any_wire || f.wire_bytes != f.cap_bytes;
    cap_bytes += f.cap_bytes;
    wire_bytes += f.wire_bytes;
  }

  flow_class.reset(), addr_a.reset(), addr_b.reset(), flow_mac.reset();

  std::vector<uint32_t> offsets_at;
  std::vector<uint64_t> prev_first_offset;
  const VarintSink offsets = encode_offsets(in, offsets_at, prev_first_offset);

  VarintSink s_blocks((in.end_block - in.first_block) * 8);
  uint64_t prev_off = in.start;
  prev_ts = min_ts;
  for (size_t b = in.first_block; b < in.end_block; b++) {
    const TimeBlock& t = blocks_[b];
    s_blocks.uv(t.offset - prev_off);
    s_blocks.uv(t.packets);
    s_blocks.zz_diff(t.min, prev_ts);
    s_blocks.uv(t.max - t.min);
    prev_off = t.offset;
    prev_ts = t.min;
  }

  // Flatbuffers are built back to front: vectors first, then the table.
  // What every lookup needs is written last, so that it lies just after the
  // table, in the first read of a lazily opened index: the classes, the key
  // tables' checkpoints and the time table; the large columns go first.
  FlatBuilder fb(1024 + s_class.size() + s_addrs.size() + 2 * ports.size() + s_macs.size() + s_times.size() +
                 s_counts.size() + s_wire.size() + offsets.size() + s_blocks.size() + 6 * classes.size() +
                 4 * v4.size() + 16 * ipv6.size() + 12 * macs.size() + 48 * at.size() +
                 v4_flows.bytes_estimate() + v6_flows.bytes_estimate() + port_flows.bytes_estimate());
  uint32_t v_ipv4 = v4.size() > 0 ? fb.scalars(v4.values().data(), v4.size()) : 0;
  uint32_t v_ipv6 = 0;
  if (ipv6.size() > 0) {
    std::vector<uint8_t> bytes(16 * ipv6.size());
    for (size_t id = 0; id < ipv6.size(); id++) std::memcpy(&bytes[16 * v6_rank[id]], ipv6.key(id), 16);
    v_ipv6 = fb.bytes(bytes.data(), bytes.size());
  }
  uint32_t v_macs = 0;
  if (macs.size() > 0) {
    // Keys are (A bytes 0-3, B bytes 0-3, A bytes 4-5 | B bytes 4-5 << 16); entries are MAC A, MAC B.
    std::vector<uint8_t> bytes(12 * macs.size());
    for (size_t id = 0; id < macs.size(); id++) {
      const uint32_t* m = macs.key(id);
      uint8_t* e = &bytes[12 * mac_rank[id]];
      std::memcpy(e, &m[0], 4);
      std::memcpy(e + 4, &m[2], 2);
      std::memcpy(e + 6, &m[1], 4);
      std::memcpy(e + 10, reinterpret_cast<const uint8_t*>(&m[2]) + 2, 2);
    }
    v_macs = fb.bytes(bytes.data(), bytes.size());
  }
  uint32_t v_flow_class = optional_bytes(fb, s_class);
  uint32_t v_addrs = optional_bytes(fb, s_addrs);
  uint32_t v_ports = ports.empty() ? 0 : fb.scalars(ports.data(), ports.size());
  uint32_t v_flow_macs = optional_bytes(fb, s_macs);
  uint32_t v_times = optional_bytes(fb, s_times);
  uint32_t v_counts = optional_bytes(fb, s_counts);
  uint32_t v_wire = any_wire ? optional_bytes(fb, s_wire) : 0;
  uint32_t v_offsets = optional_bytes(fb, offsets);
  v4_flows.write_entries(fb);
  v6_flows.write_entries(fb);
  port_flows.write_entries(fb);
  uint32_t v_checkpoints = 0;
  if (in.keys && n_flows > 0) {
    fb.start_vector(48, at.size(), 8);
    for (size_t c = at.size(); c-- > 0;) {
      fb.prep(8, 48);
      fb.put<uint64_t>(prev_first_offset[c]);
      fb.put<uint64_t>(at[c].prev_first_ts);
      fb.put<uint32_t>(offsets_at[c]);
      fb.put<uint32_t>(any_wire ? at[c].wire : 0);
      fb.put<uint32_t>(at[c].counts);
      fb.put<uint32_t>(at[c].times);
      fb.put<uint32_t>(at[c].macs);
      fb.put<uint32_t>(at[c].ports);
      fb.put<uint32_t>(at[c].addrs);
      fb.put<uint32_t>(at[c].cls);
    }
    v_checkpoints = fb.end_vector();
  }
  uint32_t v_blocks = optional_bytes(fb, s_blocks);
  uint32_t v_v6_flows = v6_flows.write_table(fb);
  uint32_t v_port_flows = port_flows.write_table(fb);
  uint32_t v_v4_flows = v4_flows.write_table(fb);
  uint32_t v_classes = 0;
  if (classes.size() > 0) {
    std::vector<uint32_t> by_rank(classes.size());
    for (size_t id = 0; id < classes.size(); id++) by_rank[class_rank[id]] = uint32_t(id);
    fb.start_vector(6, classes.size(), 2);
    for (size_t r = classes.size(); r-- > 0;) {
      const uint32_t* c = classes.key(by_rank[r]);  // (ethertype | vlan << 16, ipproto | flags << 8)
      fb.prep(2, 6);
      fb.put<uint16_t>(uint16_t(c[0] >> 16));
      fb.put<uint16_t>(uint16_t(c[0]));
      fb.put<uint8_t>(uint8_t(c[1]));
      fb.put<uint8_t>(uint8_t(c[1] >> 8));
    }
    v_classes = fb.end_vector();
  }

  fb.start_object(S_FIELDS);
  fb.field<uint16_t>(S_VERSION, info_.version, 0);
  fb.field<uint32_t>(S_LINKTYPE, info_.linktype, 0);
  fb.field<uint8_t>(S_NANO, info_.nano ? 1 : 0, 0);
  fb.field<uint32_t>(S_SNAPLEN, info_.snaplen, 0);
  fb.field<uint64_t>(S_START, in.start, 0);
  fb.field<uint64_t>(S_END, in.end, 0);
  fb.field<uint64_t>(S_PACKETS, n_packets, 0);
  fb.field<uint64_t>(S_CAP_BYTES, cap_bytes, 0);
  fb.field<uint64_t>(S_WIRE_BYTES, wire_bytes, 0);
  fb.field<uint64_t>(S_MIN_TS, min_ts, 0);
  fb.field<uint64_t>(S_MAX_TS, max_ts, 0);
  fb.field<uint32_t>(S_FLOW_COUNT, uint32_t(n_flows), 0);
  fb.field_offset(S_CLASSES, v_classes);
  fb.field_offset(S_IPV4, v_ipv4);
  fb.field_offset(S_IPV6, v_ipv6);
  fb.field_offset(S_MAC_PAIRS, v_macs);
  fb.field_offset(S_FLOW_CLASS, v_flow_class);
  fb.field_offset(S_FLOW_ADDRS, v_addrs);
  fb.field_offset(S_FLOW_PORTS, v_ports);
  fb.field_offset(S_FLOW_MACS, v_flow_macs);
  fb.field_offset(S_FLOW_TIMES, v_times);
  fb.field_offset(S_FLOW_COUNTS, v_counts);
  fb.field_offset(S_FLOW_WIRE, v_wire);
  fb.field_offset(S_FLOW_OFFSETS, v_offsets);
  fb.field<uint32_t>(S_BLOCK_COUNT, uint32_t(in.end_block - in.first_block), 0);
  fb.field_offset(S_BLOCKS, v_blocks);
  fb.field<uint8_t>(S_ORDERED, ordered_ ? 1 : 0, 0);
  fb.field_offset(S_IPV4_FLOWS, v_v4_flows);
  fb.field_offset(S_IPV6_FLOWS, v_v6_flows);
  fb.field_offset(S_PORT_FLOWS, v_port_flows);
  fb.field<uint32_t>(S_FLOW_CHECKPOINT_EVERY, in.keys ? FLOW_CHECKPOINT_EVERY : 0, 0);
  fb.field_offset(S_FLOW_CHECKPOINTS, v_checkpoints);
  fb.finish(fb.end_object());
  Encoded out;
  size_t size = fb.offset();
  out.buffer = fb.release(out.capacity);
  out.start = out.capacity - size;
  return out;
}

/**
 * Each flow's record offsets, grouped by flow (a counting sort of the
 * packets), with where each checkpointed flow starts and the first offset
 * of the flow before it.
 */
VarintSink IndexBuilder::encode_offsets(const Span& in, std::vector<uint32_t>& at,
                                        std::vector<uint64_t>& prev_first) const {
  const FlowStat* stats = in.stats;
  const size_t n_flows = in.flows;
  std::vector<uint64_t> first(n_flows + 1, 0);
  for (size_t j = 0; j < n_flows; j++) first[j + 1] = first[j] + stats[j].packets;
  std::vector<uint64_t> fill(first.begin(), first.end() - 1);
  std::unique_ptr<uint64_t[]> sorted(new uint64_t[in.end_packet - in.first_packet]);  // each written once
  uint64_t hi = in.first_offset_hi;
  int64_t prev_lo = -1;
  for (size_t p = in.first_packet; p < in.end_packet; p++) {
    uint32_t lo = a_.pkt_off_lo[p];
    if (int64_t(lo) < prev_lo) hi++;  // consecutive records are less than 4 GiB apart (check_offsets)
    prev_lo = lo;
    sorted[fill[a_.pkt_flow[p]]++] = (hi << 32) | lo;
  }
  VarintSink sink(3 * (in.end_packet - in.first_packet) + 16);
  uint64_t prev_flow_first = in.start;
  for (size_t j = 0; j < n_flows; j++) {
    if (j % FLOW_CHECKPOINT_EVERY == 0) {
      at.push_back(uint32_t(sink.size()));
      prev_first.push_back(prev_flow_first);
    }
    uint64_t prev = sorted[first[j]];
    sink.uv(prev - prev_flow_first);
    prev_flow_first = prev;
    for (uint64_t q = first[j] + 1; q < first[j + 1]; q++) {
      sink.uv(sorted[q] - prev);
      prev = sorted[q];
    }
  }
  return sink;
}

}  // namespace n2d
