// LEB128 varint streams, the encoding of the index's columns
// (recorder/index.fbs): "uv" unsigned, "zz" zigzag-signed.
#pragma once
#include <cstdint>
#include <vector>

namespace n2d {

class VarintSink {
 public:
  explicit VarintSink(size_t capacity) { buf_.reserve(capacity); }

  size_t size() const { return buf_.size(); }
  const uint8_t* data() const { return buf_.data(); }

  void uv(uint64_t n) {
    while (n > 0x7f) {
      buf_.push_back(uint8_t(n & 0x7f) | 0x80);
      n >>= 7;
    }
    buf_.push_back(uint8_t(n));
  }

  void byte(uint8_t b) { buf_.push_back(b); }

  /** A 32-bit signed value (flow number deltas). */
  void zz32(int32_t n) { uv(uint32_t((uint32_t(n) << 1) ^ uint32_t(n >> 31))); }

  /** a - b of two tick values, which may be negative (times out of order). */
  void zz_diff(uint64_t a, uint64_t b) {
    int64_t d = int64_t(a - b);
    uv((uint64_t(d) << 1) ^ uint64_t(d >> 63));
  }

 private:
  std::vector<uint8_t> buf_;
};

}  // namespace n2d
