// A chunk is one O_DIRECT write: an aligned buffer holding a stretch of a
// pcap file, plus the metadata of the records that end inside it. Chunks go
// from the capture thread to the writer through a queue and come back
// through a pool, so neither thread allocates in the steady state.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "meta.h"

namespace n2d {

constexpr size_t kAlign = 4096;
inline uint64_t align_down(uint64_t v) { return v & ~uint64_t(kAlign - 1); }
inline uint64_t align_up(uint64_t v) { return align_down(v + kAlign - 1); }

/**
 * Writes `len` bytes (whole blocks, from an aligned buffer) at `at` of a
 * file opened with O_DIRECT. A short write, the file system filling up, can
 * end inside a block, where O_DIRECT cannot resume: the cut block is written
 * again, and a write that cannot complete one counts as ENOSPC. After a
 * failure, `retry(errno)` says whether to try again (having waited for room,
 * say). Returns 0, or -errno.
 */
template <typename Retry>
int write_blocks(int fd, const uint8_t* buf, size_t len, uint64_t at, Retry retry) {
  for (size_t done = 0; done < len;) {
    ssize_t w = pwrite(fd, buf + done, len - done, off_t(at + done));
    if (w < 0 && errno == EINTR) continue;
    const size_t next = w > 0 ? size_t(align_down(done + size_t(w))) : done;
    if (next > done) {
      done = next;
      continue;
    }
    const int err = w < 0 ? errno : w == 0 ? EIO : ENOSPC;
    if (!retry(err)) return -err;
  }
  return 0;
}

struct Chunk {
  enum class Kind { Data, Error, End };
  Kind kind = Kind::Data;

  uint8_t* buf = nullptr;  // kAlign-aligned, `cap` bytes
  size_t cap = 0;
  size_t len = 0;          // bytes of file content in buf
  uint64_t offset = 0;     // file offset of buf[0], aligned

  uint32_t file = 0;       // file sequence number
  bool first = false;      // opens the file
  uint64_t first_ts_ns = 0;
  bool last = false;       // closes the file at `committed`
  uint64_t committed = 0;  // file offset just past the last complete record so far

  PacketMeta* meta = nullptr;  // malloc'ed; ownership moves to JS with a batch
  uint32_t count = 0;
  uint32_t meta_cap = 0;

  std::string message;  // Kind::Error
  bool fatal = false;

  void reset_for(uint32_t file_seq, uint64_t file_offset) {
    kind = Kind::Data;
    len = 0;
    offset = file_offset;
    file = file_seq;
    first = last = false;
    committed = 0;
    count = 0;
  }
};

// Unbounded FIFO: its length is bounded by the pool's size.
class ChunkQueue {
 public:
  void push(Chunk* c) {
    {
      std::lock_guard<std::mutex> g(mu_);
      q_.push_back(c);
    }
    cv_.notify_one();
  }
  Chunk* pop() {
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait(g, [&] { return !q_.empty(); });
    Chunk* c = q_.front();
    q_.pop_front();
    return c;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk*> q_;
};

class ChunkPool {
 public:
  /**
   * The buffers share one mapping, in 2 MB pages where the kernel grants
   * them: each O_DIRECT write pins its buffer's pages, and pinning 4 KB
   * pages one by one took about 2 % of the recorder's CPU at 100 B frames.
   */
  ChunkPool(size_t count, size_t bytes) {
    constexpr size_t HUGE_PAGE = size_t(2) << 20;
    region_bytes_ = (count * bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    // Over-mapped by one huge page so that the region can start on one.
    void* m = mmap(nullptr, region_bytes_ + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) abort();
    auto* start = static_cast<uint8_t*>(m);
    uint8_t* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(start) + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
    if (base > start) munmap(start, size_t(base - start));
    munmap(base + region_bytes_, size_t(start + HUGE_PAGE - base));
    region_ = base;
    (void)madvise(region_, region_bytes_, MADV_HUGEPAGE);  // advice: 4 KB pages work too
    for (size_t i = 0; i < count; i++) {
      auto* c = new Chunk();
      c->buf = region_ + i * bytes;
      c->cap = bytes;
      all_.push_back(c);
      free_.push_back(c);
    }
  }
  ~ChunkPool() {
    for (Chunk* c : all_) {
      free(c->meta);
      delete c;
    }
    munmap(region_, region_bytes_);
  }
  // Blocks while every chunk is with the writer: for a live source the ring
  // then fills and the kernel counts the drops.
  Chunk* get() {
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait(g, [&] { return !free_.empty(); });
    Chunk* c = free_.back();
    free_.pop_back();
    return c;
  }
  void put(Chunk* c) {
    {
      std::lock_guard<std::mutex> g(mu_);
      free_.push_back(c);
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint8_t* region_ = nullptr;
  size_t region_bytes_ = 0;
  std::vector<Chunk*> all_;
  std::vector<Chunk*> free_;
};

}  // namespace n2d
