// A back-to-front flatbuffer builder, only what index encoding needs.
//
// It lays bytes out exactly as the flatbuffers 2.0.7 JavaScript Builder does
// (same alignment padding, vtable trimming and de-duplication, NUL after
// byte vectors), because indexes were first written by that builder and a
// rebuilt index must equal the one recorded with its file. The C++ library
// pads byte vectors differently, hence this port instead of
// libflatbuffers-dev.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace n2d {

class FlatBuilder {
 public:
  // The buffer is left uninitialized (every byte of the result is written), so that the
  // pages of an over-estimated capacity are never touched.
  explicit FlatBuilder(size_t initial) : cap_(initial < 64 ? 64 : initial), buf_(new uint8_t[cap_]) {}

  /** Bytes written so far; what an offset to the last thing written is. */
  uint32_t offset() const { return uint32_t(size_); }

  /** Pads so that `size` is aligned once `additional` more bytes are written. */
  void prep(size_t size, size_t additional) {
    if (size > minalign_) minalign_ = size;
    size_t align = (~(size_ + additional) + 1) & (size - 1);
    reserve(align + size + additional);
    for (size_t i = 0; i < align; i++) front(1)[0] = 0;
  }

  template <typename T>
  void put(T v) {
    std::memcpy(front(sizeof(T)), &v, sizeof(T));
  }

  template <typename T>
  void add(T v) {
    prep(sizeof(T), 0);
    put(v);
  }

  void add_offset(uint32_t off) {
    prep(4, 0);
    put<int32_t>(int32_t(offset() - off + 4));
  }

  void start_vector(size_t elem_size, size_t count, size_t alignment) {
    vector_count_ = uint32_t(count);
    prep(4, elem_size * count);
    prep(alignment, elem_size * count);
  }

  uint32_t end_vector() {
    put<uint32_t>(vector_count_);
    return offset();
  }

  /**
   * A vector of scalars, data[0] first, laid out as adding them one by one
   * from the last would (the vector's alignment leaves no padding between
   * them), in one copy instead of a call per element.
   */
  template <typename T>
  uint32_t scalars(const T* data, size_t n) {
    start_vector(sizeof(T), n, sizeof(T));
    if (n > 0) std::memcpy(front(n * sizeof(T)), data, n * sizeof(T));
    return end_vector();
  }

  /** A [ubyte] vector followed by a NUL, as the JS builder's createString(Uint8Array) writes it. */
  uint32_t bytes(const uint8_t* data, size_t n) {
    add<uint8_t>(0);
    start_vector(1, n, 1);
    reserve(n);
    if (n > 0) std::memcpy(front(n), data, n);
    return end_vector();
  }

  void start_object(size_t fields) {
    vtable_.assign(fields, 0);
    object_start_ = offset();
  }

  /** A scalar field, left out when it equals the schema's default. */
  template <typename T>
  void field(size_t slot, T v, T def) {
    if (v == def) return;
    add(v);
    vtable_[slot] = offset();
  }

  /** A reference field, left out when 0 (nothing written). */
  void field_offset(size_t slot, uint32_t off) {
    if (off == 0) return;
    add_offset(off);
    vtable_[slot] = offset();
  }

  uint32_t end_object();

  /** Ends the buffer with its root table; the bytes are then data()..data()+offset(). */
  void finish(uint32_t root) {
    prep(minalign_, 4);
    add_offset(root);
  }

  const uint8_t* data() const { return buf_.get() + cap_ - size_; }

  /** Hands over the buffer, whose last offset() bytes are the flatbuffer (no copy of a large index), and its capacity. */
  std::unique_ptr<uint8_t[]> release(size_t& capacity) {
    capacity = cap_;
    return std::move(buf_);
  }

 private:
  /** Room for n more bytes at the front. */
  void reserve(size_t n) {
    if (cap_ - size_ >= n) return;
    size_t cap = cap_;
    while (cap - size_ < n) cap *= 2;
    std::unique_ptr<uint8_t[]> grown(new uint8_t[cap]);
    std::memcpy(grown.get() + cap - size_, data(), size_);
    buf_ = std::move(grown);
    cap_ = cap;
  }

  /** The next n bytes at the front, now counted as written (room must be reserved). */
  uint8_t* front(size_t n) {
    size_ += n;
    return buf_.get() + cap_ - size_;
  }

  uint8_t* at(uint32_t off) { return buf_.get() + cap_ - off; }

  size_t cap_;
  std::unique_ptr<uint8_t[]> buf_;
  size_t size_ = 0;
  size_t minalign_ = 1;
  uint32_t vector_count_ = 0;
  std::vector<uint32_t> vtable_;
  uint32_t object_start_ = 0;
  std::vector<uint32_t> vtables_;  // offsets of the vtables written, for de-duplication
};

}  // namespace n2d
