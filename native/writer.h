// Writer thread side: takes chunks off the queue, writes them with O_DIRECT
// into preallocated files, truncates each finished file to its exact length,
// and reports every step to the event sink in order.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include "chunk.h"

namespace n2d {

struct Event {
  enum class Type { Open, Batch, Done, Error, End, NoSpace };
  explicit Event(Type t) : type(t) {}
  Type type;
  uint32_t file = 0;
  std::string path;        // Open, Done
  int linktype = 0;        // Open
  bool nano = false;       // Open
  uint32_t snaplen = 0;    // Open
  PacketMeta* meta = nullptr;  // Batch: ownership passes to the sink
  uint32_t count = 0;
  uint64_t committed = 0;  // Batch
  uint64_t bytes = 0;      // Done
  uint64_t packets = 0;    // Done
  std::string message;     // Error
  bool fatal = false;      // Error; NoSpace: false when writing goes on again
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // May block while the consumer is behind: that is the back-pressure.
  virtual void emit(Event* ev) = 0;
};

struct WriterConfig {
  std::string dir;
  int linktype;
  bool nano;
  uint32_t snaplen;
  uint64_t prealloc_bytes;
  // A disk budget hands out files one by one (grant_files): no file is
  // created before there is room for all of it.
  bool metered;
};

class Writer {
 public:
  Writer(const WriterConfig& cfg, ChunkPool& pool, ChunkQueue& in, EventSink& sink)
      : cfg_(cfg), pool_(pool), in_(in), sink_(sink) {}
  // Runs until an End chunk; returns after emitting End.
  void run();
  // Set after a write fails: the capture thread stops at its next poll.
  const std::atomic<bool>& failed() const { return failed_; }
  uint64_t files_done() const { return files_done_.load(std::memory_order_relaxed); }
  // Packets that were captured but not stored: their file was refused.
  uint64_t unstored() const { return unstored_.load(std::memory_order_relaxed); }
  void grant_files(uint64_t n);
  // No more files, and no more waiting for disk space: what cannot be
  // stored is counted and let go, so the recorder can stop.
  void refuse();

 private:
  void open_file(Chunk& c);
  void write_chunk(Chunk& c);
  void close_file(Chunk& c);
  void fail(const std::string& msg);
  bool wait_for_grant();
  bool wait_for_space(int err, bool& reported);

  WriterConfig cfg_;
  ChunkPool& pool_;
  ChunkQueue& in_;
  EventSink& sink_;
  int fd_ = -1;
  std::string path_;
  uint64_t file_packets_ = 0;
  uint64_t good_ = 0;  // bytes of the current file known to be written
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> files_done_{0};
  std::atomic<uint64_t> unstored_{0};
  std::mutex grant_mu_;
  std::condition_variable grant_cv_;
  uint64_t granted_ = 0;
  bool refused_ = false;
};

}  // namespace n2d
