// LEB128 varint streams, the encoding of the index's columns
// (recorder/index.fbs): "uv" unsigned, "zz" zigzag-signed.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>

namespace n2d {

class VarintSink {
 public:
  explicit VarintSink(size_t capacity) : buf_(new uint8_t[capacity + MAX_BYTES]), cap_(capacity + MAX_BYTES) {}

  size_t size() const { return size_; }
  const uint8_t* data() const { return buf_.get(); }

  // Millions of values a column: a value is written through a pointer into
  // room checked once, where push_back checked and counted every byte, and
  // inlined even into encode(), whose size makes the compiler call it instead.
  __attribute__((always_inline)) void uv(uint64_t n) {
    if (cap_ - size_ < MAX_BYTES) grow();
    uint8_t* p = buf_.get() + size_;
    uint8_t* const from = p;
    while (n > 0x7f) {
      *p++ = uint8_t(n & 0x7f) | 0x80;
      n >>= 7;
    }
    *p++ = uint8_t(n);
    size_ += size_t(p - from);
  }

  void byte(uint8_t b) {
    if (cap_ - size_ < MAX_BYTES) grow();
    buf_[size_++] = b;
  }

  /** A 32-bit signed value (flow number deltas). */
  void zz32(int32_t n) { uv(uint32_t((uint32_t(n) << 1) ^ uint32_t(n >> 31))); }

  /** a - b of two tick values, which may be negative (times out of order). */
  void zz_diff(uint64_t a, uint64_t b) {
    int64_t d = int64_t(a - b);
    uv((uint64_t(d) << 1) ^ uint64_t(d >> 63));
  }

 private:
  static constexpr size_t MAX_BYTES = 10;  // of a 64-bit value

  // Out of line: capacities are estimated so that it is seldom called.
  __attribute__((noinline)) void grow() {
    cap_ *= 2;
    std::unique_ptr<uint8_t[]> grown(new uint8_t[cap_]);
    std::memcpy(grown.get(), buf_.get(), size_);
    buf_ = std::move(grown);
  }

  // Left uninitialized, as FlatBuilder's buffer: pages of an over-estimated capacity are never touched.
  std::unique_ptr<uint8_t[]> buf_;
  size_t cap_;
  size_t size_ = 0;
};

}  // namespace n2d
