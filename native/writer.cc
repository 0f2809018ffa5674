#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace n2d {

void Writer::fail(const std::string& msg) {
  Event* ev = new Event(Event::Type::Error);
  ev->message = msg;
  ev->fatal = true;
  sink_.emit(ev);
  failed_ = true;
}

void Writer::grant_files(uint64_t n) {
  std::lock_guard<std::mutex> g(grant_mu_);
  granted_ += n;
  grant_cv_.notify_all();
}

void Writer::refuse() {
  std::lock_guard<std::mutex> g(grant_mu_);
  refused_ = true;
  grant_cv_.notify_all();
}

bool Writer::wait_for_grant() {
  if (!cfg_.metered) return true;
  std::unique_lock<std::mutex> g(grant_mu_);
  grant_cv_.wait(g, [&] { return granted_ > 0 || refused_; });
  if (refused_) return false;
  granted_--;
  return true;
}

// A full file system is waited out, not fatal: the budget frees our oldest
// files, or someone frees theirs. Meanwhile chunks queue up and then the
// ring absorbs what it can; its drops are counted as usual.
bool Writer::wait_for_space(int err, bool& reported) {
  if (err != ENOSPC && err != EDQUOT) return false;
  if (!reported) {
    Event* ev = new Event(Event::Type::NoSpace);
    ev->path = path_;
    ev->message = strerror(err);
    ev->fatal = true;
    sink_.emit(ev);
    reported = true;
  }
  std::unique_lock<std::mutex> g(grant_mu_);
  grant_cv_.wait_for(g, std::chrono::milliseconds(100), [&] { return refused_; });
  return !refused_;
}

void Writer::open_file(Chunk& c) {
  // Named after the first packet, like n2disk; the suffix says it is not
  // finished, and the recorder renames it when it is.
  uint64_t sec = c.first_ts_ns / 1000000000ull, usec = c.first_ts_ns % 1000000000ull / 1000;
  char base[64];
  snprintf(base, sizeof base, "%llu.%06llu", (unsigned long long)sec, (unsigned long long)usec);
  for (int k = 0; k < 1000; k++) {
    path_ = cfg_.dir + "/" + base + (k ? "_" + std::to_string(k) : "") + ".pcap.part";
    fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0640);
    // File systems without O_DIRECT (older tmpfs) still get correct files.
    if (fd_ < 0 && errno == EINVAL) fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd_ >= 0 || errno != EEXIST) break;
  }
  if (fd_ < 0) {
    fail("cannot create " + path_ + ": " + strerror(errno));
    return;
  }
  // Reserve the whole file now so the file system lays it out in one piece;
  // KEEP_SIZE leaves the visible length to what is written.
  if (cfg_.prealloc_bytes) fallocate(fd_, FALLOC_FL_KEEP_SIZE, 0, off_t(align_up(cfg_.prealloc_bytes)));
  file_packets_ = 0;
  good_ = 0;
  Event* ev = new Event(Event::Type::Open);
  ev->file = c.file;
  ev->path = path_;
  ev->linktype = cfg_.linktype;
  ev->nano = cfg_.nano;
  ev->snaplen = cfg_.snaplen;
  sink_.emit(ev);
}

void Writer::write_chunk(Chunk& c) {
  size_t n = size_t(align_up(c.len));
  memset(c.buf + c.len, 0, n - c.len);
  bool no_space = false;
  int r = write_blocks(fd_, c.buf, n, c.offset, [&](int err) { return wait_for_space(err, no_space); });
  if (r < 0) {
    fail("cannot write " + path_ + ": " + strerror(-r));
    return;
  }
  if (no_space) {
    Event* ev = new Event(Event::Type::NoSpace);
    ev->path = path_;
    sink_.emit(ev);
  }
  if (c.count) {
    good_ = c.committed;
    file_packets_ += c.count;
    Event* ev = new Event(Event::Type::Batch);
    ev->file = c.file;
    ev->meta = c.meta;
    ev->count = c.count;
    ev->committed = c.committed;
    c.meta = nullptr;
    c.meta_cap = 0;
    c.count = 0;
    sink_.emit(ev);
  }
}

void Writer::close_file(Chunk& c) {
  // The last block went out padded; cut the file back to its last record.
  // No fdatasync: the data went out with O_DIRECT, and waiting here would
  // hold up the chunks queued behind.
  if (ftruncate(fd_, off_t(good_)) < 0) fail("cannot truncate " + path_ + ": " + strerror(errno));
  close(fd_);
  fd_ = -1;
  files_done_++;
  Event* ev = new Event(Event::Type::Done);
  ev->file = c.file;
  ev->path = path_;
  ev->bytes = good_;
  ev->packets = file_packets_;
  sink_.emit(ev);
}

void Writer::run() {
  for (;;) {
    Chunk* c = in_.pop();
    if (c->kind == Chunk::Kind::End) {
      delete c;
      break;
    }
    if (c->kind == Chunk::Kind::Error) {
      Event* ev = new Event(Event::Type::Error);
      ev->message = c->message;
      ev->fatal = c->fatal;
      sink_.emit(ev);
      delete c;
      continue;
    }
    if (c->first && !failed_) {
      if (wait_for_grant()) open_file(*c);
    }
    if (fd_ < 0) unstored_ += c->count;
    // After a failure nothing more is written, but the file still closes at
    // what was written before it, so it can be published.
    if (fd_ >= 0 && !failed_) write_chunk(*c);
    if (c->last && fd_ >= 0) close_file(*c);
    c->count = 0;
    pool_.put(c);
  }
  sink_.emit(new Event(Event::Type::End));
}

}  // namespace n2d
