#include "recorder.h"

#include <time.h>

namespace n2d {
namespace {

uint64_t now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// Long enough for the kernel to retire the block it is filling (its timeout
// is 50 ms), so stop() loses nothing that reached the ring.
constexpr uint64_t kDrainNs = 200000000ull;
// The kernel's drop counter is read (and reset) once a second.
constexpr uint64_t kSampleNs = 1000000000ull;

uint32_t header_snaplen(const Source& src, uint32_t snaplen) {
  if (snaplen) return snaplen;
  // Never below what the source says, or libpcap would cut records on reading.
  return src.snaplen() > 262144 ? src.snaplen() : 262144;
}

ChunkerConfig chunker_config(const Source& src, const PipelineConfig& cfg) {
  return ChunkerConfig{src.linktype(),     header_snaplen(src, cfg.snaplen), cfg.snaplen,
                       cfg.nano || src.nano(), cfg.max_file_bytes,       cfg.max_file_ns,
                       cfg.max_file_packets,   cfg.flush_ns};
}

WriterConfig writer_config(const Source& src, const PipelineConfig& cfg) {
  return WriterConfig{cfg.dir, src.linktype(), cfg.nano || src.nano(), header_snaplen(src, cfg.snaplen),
                      cfg.max_file_bytes, cfg.metered_files};
}

}  // namespace

Pipeline::Pipeline(Source* src, const PipelineConfig& cfg, EventSink& sink)
    : src_(src),
      pool_(cfg.chunk_count, cfg.chunk_bytes),
      chunker_(chunker_config(*src, cfg), pool_, queue_),
      writer_(writer_config(*src, cfg), pool_, queue_, sink) {}

Pipeline::~Pipeline() { join(); }

void Pipeline::start() {
  writer_thread_ = std::thread([this] { writer_.run(); });
  capture_thread_ = std::thread([this] { capture_loop(); });
}

void Pipeline::join() {
  if (capture_thread_.joinable()) capture_thread_.join();
  if (writer_thread_.joinable()) writer_thread_.join();
}

void Pipeline::report(const std::string& msg, bool fatal) {
  auto* c = new Chunk();
  c->kind = Chunk::Kind::Error;
  c->message = msg;
  c->fatal = fatal;
  queue_.push(c);
}

void Pipeline::sample_drops() {
  uint64_t d = src_->take_drops();
  if (!d) return;
  dropped_ += d;
  std::lock_guard<std::mutex> g(drops_mu_);
  drop_intervals_.push_back(DropInterval{now_ns(CLOCK_REALTIME) / 1000000ull, d});
}

void Pipeline::capture_loop() {
  const bool live = src_->live();
  uint64_t drain_until = 0;
  uint64_t next_sample = now_ns(CLOCK_MONOTONIC) + kSampleNs;
  for (;;) {
    if (live && now_ns(CLOCK_MONOTONIC) >= next_sample) {
      sample_drops();
      next_sample += kSampleNs;
    }
    if (stop_ && !drain_until) {
      if (!live) break;
      drain_until = now_ns(CLOCK_MONOTONIC) + kDrainNs;
    }
    if (rotate_.exchange(false)) chunker_.close_file();
    PollResult r = src_->poll(live ? 20 : 0, chunker_);
    packets_.store(chunker_.packets(), std::memory_order_relaxed);
    bytes_.store(chunker_.bytes(), std::memory_order_relaxed);
    if (r == PollResult::End) break;
    if (r == PollResult::Error) {
      report(src_->error(), true);
      break;
    }
    // Live files rotate by wall clock even when no packet comes; imports
    // rotate by their own timestamps only.
    chunker_.tick(live ? now_ns(CLOCK_REALTIME) : now_ns(CLOCK_MONOTONIC), live);
    if (writer_.failed()) break;
    if (drain_until && now_ns(CLOCK_MONOTONIC) >= drain_until) break;
  }
  if (live) sample_drops();
  chunker_.close_file();
  auto* end = new Chunk();
  end->kind = Chunk::Kind::End;
  queue_.push(end);
}

}  // namespace n2d
