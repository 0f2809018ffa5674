// Numbers fixed-width keys of u32 words 0, 1, ... in order of first sight:
// flows by their 5-tuple and more, and the index's dictionaries (addresses,
// MAC pairs, flow classes). Open addressing with linear probing over a
// power-of-two table kept at most half full; a slot holds (id + 1, hash) so
// that a probe compares keys only when the hashes agree.
#pragma once
#include <cstdint>
#include <vector>

namespace n2d {

class Interner {
 public:
  explicit Interner(size_t width, size_t expected = 16) : width_(width) {
    size_t n = 16;
    while (n < 2 * expected) n *= 2;
    slots_.assign(2 * n, 0);
    keys_.reserve(expected * width);
  }

  size_t size() const { return size_; }
  /** The words of key `id`. */
  const uint32_t* key(size_t id) const { return keys_.data() + id * width_; }

  /** Id of `k` (width words), added if new. */
  uint32_t intern(const uint32_t* k) {
    uint32_t h = hash(k);
    size_t mask = slots_.size() / 2 - 1;
    for (size_t s = h & mask;; s = (s + 1) & mask) {
      uint32_t v = slots_[2 * s];
      if (v == 0) return insert(k, h, s);
      if (slots_[2 * s + 1] == h && same(key(v - 1), k)) return v - 1;
    }
  }

 private:
  bool same(const uint32_t* a, const uint32_t* b) const {
    for (size_t i = 0; i < width_; i++) {
      if (a[i] != b[i]) return false;
    }
    return true;
  }

  uint32_t hash(const uint32_t* k) const {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < width_; i++) {
      h = (h ^ k[i]) * 0xff51afd7ed558ccdull;
      h ^= h >> 29;
    }
    // The slot is taken from the low bits: mix the high ones down (murmur3's finalizer).
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return uint32_t(h);
  }

  uint32_t insert(const uint32_t* k, uint32_t h, size_t slot) {
    uint32_t id = uint32_t(size_++);
    keys_.insert(keys_.end(), k, k + width_);
    if (size_ * 2 > slots_.size() / 2) {
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

  size_t width_;
  size_t size_ = 0;
  std::vector<uint32_t> keys_;
  std::vector<uint32_t> slots_;  // 0 is empty
};

}  // namespace n2d
