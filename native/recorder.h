// The capture pipeline: one source, a capture thread (source -> chunker) and
// a writer thread (chunks -> files -> events), joined by a chunk queue.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chunker.h"
#include "source.h"
#include "writer.h"

namespace n2d {

struct PipelineConfig {
  std::string dir;
  uint32_t snaplen = 0;  // 0: whole packets
  uint32_t chunk_bytes = 1 << 20;
  uint32_t chunk_count = 32;
  bool nano = false;
  uint64_t max_file_bytes = 0;
  uint64_t max_file_ns = 0;
  uint64_t max_file_packets = 0;
  uint64_t flush_ns = 500000000ull;
  bool metered_files = false;  // see WriterConfig::metered
};

// Kernel drops of one second of capture, kept until JavaScript asks, so each
// is reported for the second it happened in even when the JS thread is late.
struct DropInterval {
  uint64_t end_ms;  // wall clock at the end of the second
  uint64_t dropped;
};

class Pipeline {
 public:
  // Takes ownership of the (already opened) source.
  Pipeline(Source* src, const PipelineConfig& cfg, EventSink& sink);
  ~Pipeline();

  void start();
  void rotate() { rotate_ = true; }
  void stop() { stop_ = true; }
  void grant_files(uint64_t n) { writer_.grant_files(n); }
  void refuse_files() { writer_.refuse(); }
  // Waits for both threads; call once the End event has been delivered.
  void join();

  uint64_t packets() const { return packets_.load(std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t files_done() const { return writer_.files_done(); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t unstored() const { return writer_.unstored(); }
  std::vector<DropInterval> take_drop_intervals() {
    std::lock_guard<std::mutex> g(drops_mu_);
    return std::move(drop_intervals_);
  }

 private:
  void capture_loop();
  void report(const std::string& msg, bool fatal);

  std::unique_ptr<Source> src_;
  ChunkPool pool_;
  ChunkQueue queue_;
  Chunker chunker_;
  Writer writer_;
  std::thread capture_thread_, writer_thread_;
  std::atomic<bool> rotate_{false}, stop_{false};
  std::atomic<uint64_t> packets_{0}, bytes_{0}, dropped_{0};
  std::mutex drops_mu_;
  std::vector<DropInterval> drop_intervals_;
  void sample_drops();
};

}  // namespace n2d
