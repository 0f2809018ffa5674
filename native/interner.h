// Numbers fixed-width keys of u32 words 0, 1, ... in order of first sight:
// flows by their 5-tuple and more, and the index's dictionaries (addresses,
// MAC pairs, flow classes). Open addressing with linear probing over a
// power-of-two table kept at most half full; a slot holds (id + 1, hash) so
// that a probe compares keys only when the hashes agree.
//
// restart() numbers from 0 again while keeping the keys already interned,
// one run after the other: the index builder's per-segment flow tables,
// whose keys outlive their lookup table until the file is done.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace n2d {

template <size_t W>
class Interner {
 public:
  explicit Interner(size_t expected = 16) : keys_(new uint32_t[expected * W]), key_capacity_(expected) {
    size_t n = 16;
    while (n < 2 * expected) n *= 2;
    slots_.assign(2 * n, 0);
  }

  /** Keys of the current run. */
  size_t size() const { return size_ - base_; }
  /** The words of key `id` of the current run; its keys follow each other. */
  const uint32_t* key(size_t id) const { return keys_.get() + (base_ + id) * W; }
  /** Keys of every run since clear(), in order; kept_key(i) for i below it. */
  size_t kept() const { return size_; }
  /** Where the current run's keys begin among them. */
  size_t run_start() const { return base_; }
  const uint32_t* kept_key(size_t i) const { return keys_.get() + i * W; }

  /** Forgets every key, keeping the memory. */
  void clear() {
    size_ = base_ = 0;
    std::fill(slots_.begin(), slots_.end(), 0);
  }

  /** Starts a new run: ids from 0 again, an empty lookup table, the keys so far kept. */
  void restart() {
    base_ = size_;
    std::fill(slots_.begin(), slots_.end(), 0);
  }

  /** Frees the lookup table once no key will be added or looked up; key() still works. */
  void seal() { std::vector<uint32_t>().swap(slots_); }

  /** Id of `k` (W words), added if new. */
  uint32_t intern(const uint32_t* k) { return intern(k, hash(k)); }

  /** The same, with `h` = hash(k). */
  uint32_t intern(const uint32_t* k, uint32_t h) {
    size_t mask = slots_.size() / 2 - 1;
    for (size_t s = h & mask;; s = (s + 1) & mask) {
      uint32_t v = slots_[2 * s];
      if (v == 0) return insert(k, h, s);
      if (slots_[2 * s + 1] == h && same(key(v - 1), k)) return v - 1;
    }
  }

  /**
   * Interns `n` keys whose hashes are known, asking for their slots and keys
   * ahead of use: with many keys nearly every lookup misses the cache twice,
   * on the slot and on the key. Calls ahead(id) with the probable id of the
   * key to be interned `AHEAD` later (for the caller's own prefetch), then
   * each(i, id, added) in order.
   */
  template <typename Ahead, typename Each>
  void intern_all(const uint32_t* keys, const uint32_t* hashes, size_t n, Ahead ahead, Each each) {
    constexpr size_t AHEAD = 8;  // lookups between asking for a cache line and using it
    for (size_t i = 0; i < n; i++) {
      if (i + 2 * AHEAD < n) prefetch_slot(hashes[i + 2 * AHEAD]);
      if (i + AHEAD < n) {
        int64_t id = prefetch_key(hashes[i + AHEAD]);
        if (id >= 0) ahead(uint32_t(id));
      }
      size_t before = size();
      uint32_t id = intern(keys + i * W, hashes[i]);
      each(i, id, id == before);
    }
  }

  uint32_t hash(const uint32_t* k) const {
    // Two independent lanes of 64-bit words keep the chain of multiplications short.
    uint64_t a = 0x9e3779b97f4a7c15ull, b = 0xc2b2ae3d27d4eb4full;
    size_t i = 0;
    for (; i + 4 <= W; i += 4) {
      a = rotl((a ^ (k[i] | uint64_t(k[i + 1]) << 32)) * 0xff51afd7ed558ccdull, 31);
      b = rotl((b ^ (k[i + 2] | uint64_t(k[i + 3]) << 32)) * 0xc4ceb9fe1a85ec53ull, 29);
    }
    for (; i < W; i++) a = rotl((a ^ k[i]) * 0xff51afd7ed558ccdull, 31);
    // The slot is taken from the low bits: mix the high ones down (murmur3's finalizer).
    uint64_t h = a ^ rotl(b, 32);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return uint32_t(h);
  }

  void prefetch_slot(uint32_t h) const { __builtin_prefetch(&slots_[2 * (h & (slots_.size() / 2 - 1))]); }

  /** Prefetches the key that probably is the one hashed to `h`; returns its id, or -1 when there is none. */
  int64_t prefetch_key(uint32_t h) const {
    size_t mask = slots_.size() / 2 - 1;
    for (size_t s = h & mask;; s = (s + 1) & mask) {
      uint32_t v = slots_[2 * s];
      if (v == 0) return -1;
      if (slots_[2 * s + 1] != h) continue;
      __builtin_prefetch(key(v - 1));
      return int64_t(v) - 1;
    }
  }

 private:
  static uint64_t rotl(uint64_t v, int r) { return (v << r) | (v >> (64 - r)); }

  static bool same(const uint32_t* a, const uint32_t* b) {
    for (size_t i = 0; i < W; i++) {
      if (a[i] != b[i]) return false;
    }
    return true;
  }

  uint32_t insert(const uint32_t* k, uint32_t h, size_t slot) {
    // Copied as W words into room kept ahead: a range insert into a vector
    // was a library call, and a memmove, for every new key.
    if (size_ == key_capacity_) grow_keys();
    std::memcpy(&keys_[size_ * W], k, W * sizeof(uint32_t));
    size_++;
    uint32_t id = uint32_t(size() - 1);
    if (size() * 2 > slots_.size() / 2) {
      grow();
      size_t mask = slots_.size() / 2 - 1;
      for (slot = h & mask; slots_[2 * slot] != 0;) slot = (slot + 1) & mask;
    }
    slots_[2 * slot] = id + 1;
    slots_[2 * slot + 1] = h;
    return id;
  }

  void grow() {
    std::vector<uint32_t> old;
    old.swap(slots_);
    slots_.assign(old.size() * 2, 0);
    size_t mask = slots_.size() / 2 - 1;
    for (size_t o = 0; o < old.size(); o += 2) {
      if (old[o] == 0) continue;
      size_t s = old[o + 1] & mask;
      while (slots_[2 * s] != 0) s = (s + 1) & mask;
      slots_[2 * s] = old[o];
      slots_[2 * s + 1] = old[o + 1];
    }
  }

  void grow_keys() {
    key_capacity_ = std::max<size_t>(16, 2 * key_capacity_);
    std::unique_ptr<uint32_t[]> grown(new uint32_t[key_capacity_ * W]);
    std::memcpy(grown.get(), keys_.get(), size_ * W * sizeof(uint32_t));
    keys_ = std::move(grown);
  }

  size_t size_ = 0;  // keys of every run
  size_t base_ = 0;  // where the current run's keys begin
  // Left uninitialized beyond size_ keys, so that unused room is never touched.
  std::unique_ptr<uint32_t[]> keys_;
  size_t key_capacity_;
  std::vector<uint32_t> slots_;  // 0 is empty
};

}  // namespace n2d
