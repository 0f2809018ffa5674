// N-API glue: options in, events out. Events are produced on the writer
// thread and delivered to the JS callback, in order, through one
// thread-safe function whose bounded queue is the back-pressure.
#include <napi.h>
#include <errno.h>
#include <fcntl.h>
#include <isa-l/crc.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "chunk.h"
#include "filter.h"
#include "identity.h"
#include "index_builder_addon.h"
#include "pcap_meta.h"
#include "recorder.h"

namespace {

using n2d::Event;

constexpr size_t kEventQueue = 64;

Napi::Value event_to_js(Napi::Env env, Event* ev) {
  Napi::Object o = Napi::Object::New(env);
  switch (ev->type) {
    case Event::Type::Open:
      o.Set("type", "open");
      o.Set("file", ev->file);
      o.Set("path", ev->path);
      o.Set("linktype", ev->linktype);
      o.Set("nano", ev->nano);
      o.Set("snaplen", ev->snaplen);
      break;
    case Event::Type::Batch: {
      o.Set("type", "batch");
      o.Set("file", ev->file);
      size_t bytes = size_t(ev->count) * sizeof(n2d::PacketMeta);
      // The records become the ArrayBuffer's memory: no copy per batch.
      o.Set("meta", Napi::ArrayBuffer::New(env, ev->meta, bytes, [](Napi::Env, void* p) { free(p); }));
      ev->meta = nullptr;
      o.Set("count", ev->count);
      o.Set("committed", double(ev->committed));
      break;
    }
    case Event::Type::Done:
      o.Set("type", "done");
      o.Set("file", ev->file);
      o.Set("path", ev->path);
      o.Set("bytes", double(ev->bytes));
      o.Set("packets", double(ev->packets));
      break;
    case Event::Type::Error:
      o.Set("type", "error");
      o.Set("message", ev->message);
      o.Set("fatal", ev->fatal);
      break;
    case Event::Type::End:
      o.Set("type", "end");
      break;
    case Event::Type::NoSpace:
      o.Set("type", "nospace");
      o.Set("path", ev->path);
      o.Set("full", ev->fatal);
      o.Set("message", ev->message);
      break;
  }
  return o;
}

class TsfnSink : public n2d::EventSink {
 public:
  void attach(Napi::ThreadSafeFunction fn) { fn_ = fn; }
  void emit(Event* ev) override {
    bool end = ev->type == Event::Type::End;
    fn_.BlockingCall(ev, [](Napi::Env env, Napi::Function cb, Event* e) {
      // During environment teardown env can be null: just free.
      if (env != nullptr && cb != nullptr) {
        Napi::Object o = event_to_js(env, e).As<Napi::Object>();
        Napi::Value meta = e->type == Event::Type::Batch ? o.Get("meta") : env.Undefined();
        cb.Call({o});
        // The records are read during the call only. Released now, they no
        // longer count as external memory, which made V8 run a full
        // collection every second or so at 0.5 Mpps (80 B a packet).
        if (meta.IsArrayBuffer()) meta.As<Napi::ArrayBuffer>().Detach();
      }
      free(e->meta);
      delete e;
    });
    if (end) fn_.Release();
  }

 private:
  Napi::ThreadSafeFunction fn_;
};

uint64_t get_u64(const Napi::Object& o, const char* key, uint64_t dflt) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? uint64_t(v.As<Napi::Number>().DoubleValue()) : dflt;
}

std::string get_str(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

class Recorder : public Napi::ObjectWrap<Recorder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Recorder",
                       {InstanceMethod("start", &Recorder::Start), InstanceMethod("rotate", &Recorder::Rotate),
                        InstanceMethod("stop", &Recorder::Stop), InstanceMethod("stats", &Recorder::Stats),
                        InstanceMethod("grantFiles", &Recorder::GrantFiles),
                        InstanceMethod("refuseFiles", &Recorder::RefuseFiles)});
  }

  explicit Recorder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Recorder>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "Recorder(options, onEvent)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object opts = info[0].As<Napi::Object>();
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    Napi::Value sv = opts.Get("source");
    if (!sv.IsObject()) {
      Napi::TypeError::New(env, "options.source is required").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object so = sv.As<Napi::Object>();
    std::string err;
    n2d::Source* src;
    if (get_str(so, "kind") == "iface") {
      src = n2d::open_ring(get_str(so, "name"), get_u64(so, "bufferBytes", 64 << 20),
                           so.Get("promisc").ToBoolean().Value(), get_str(so, "filter"), err);
    } else {
      src = n2d::open_file(get_str(so, "path"), err);
    }
    if (!src) {
      Napi::Error::New(env, err).ThrowAsJavaScriptException();
      return;
    }
    n2d::PipelineConfig cfg;
    cfg.dir = get_str(opts, "dir");
    cfg.snaplen = uint32_t(get_u64(opts, "snaplen", 0));
    cfg.chunk_bytes = uint32_t(n2d::align_up(get_u64(opts, "chunkBytes", 1 << 20)));
    cfg.chunk_count = uint32_t(get_u64(opts, "chunkCount", 32));
    if (cfg.chunk_count < 4) cfg.chunk_count = 4;
    cfg.nano = opts.Get("nano").ToBoolean().Value();
    cfg.max_file_bytes = get_u64(opts, "maxFileBytes", 0);
    cfg.max_file_ns = get_u64(opts, "maxFileSeconds", 0) * 1000000000ull;
    cfg.max_file_packets = get_u64(opts, "maxFilePackets", 0);
    cfg.flush_ns = get_u64(opts, "flushMs", 500) * 1000000ull;
    cfg.metered_files = opts.Get("meteredFiles").ToBoolean().Value();
    linktype_ = src->linktype();
    pipeline_ = std::make_unique<n2d::Pipeline>(src, cfg, sink_);
  }

  ~Recorder() override {
    if (pipeline_) {
      pipeline_->stop();
      pipeline_->join();
    }
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (started_) {
      Napi::Error::New(env, "already started").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    started_ = true;
    // The finalizer runs on the JS thread after the End event: the threads
    // have finished their work by then, so joining does not block for long.
    auto tsfn = Napi::ThreadSafeFunction::New(env, callback_.Value(), "n2disk-events", kEventQueue, 1, this,
                                              [](Napi::Env, Recorder* self) { self->pipeline_->join(); });
    sink_.attach(tsfn);
    pipeline_->start();
    return env.Undefined();
  }

  Napi::Value Rotate(const Napi::CallbackInfo& info) {
    pipeline_->rotate();
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    pipeline_->stop();
    return info.Env().Undefined();
  }

  Napi::Value GrantFiles(const Napi::CallbackInfo& info) {
    pipeline_->grant_files(uint64_t(info[0].As<Napi::Number>().Int64Value()));
    return info.Env().Undefined();
  }

  Napi::Value RefuseFiles(const Napi::CallbackInfo& info) {
    pipeline_->refuse_files();
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("packets", double(pipeline_->packets()));
    o.Set("bytes", double(pipeline_->bytes()));
    o.Set("dropped", double(pipeline_->dropped()));
    o.Set("unstored", double(pipeline_->unstored()));
    auto intervals = pipeline_->take_drop_intervals();
    Napi::Array list = Napi::Array::New(env, intervals.size());
    for (size_t i = 0; i < intervals.size(); i++) {
      Napi::Object d = Napi::Object::New(env);
      d.Set("endMs", double(intervals[i].end_ms));
      d.Set("dropped", double(intervals[i].dropped));
      list.Set(uint32_t(i), d);
    }
    o.Set("dropIntervals", list);
    o.Set("filesDone", double(pipeline_->files_done()));
    o.Set("linktype", linktype_);
    return o;
  }

  Napi::FunctionReference callback_;
  TsfnSink sink_;
  std::unique_ptr<n2d::Pipeline> pipeline_;
  bool started_ = false;
  int linktype_ = 0;
};

Napi::Value LibpcapVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), pcap_lib_version());
}

/** prefetch(fd, position, length): posix_fadvise WILLNEED, so that the kernel reads ahead while JavaScript scans. */
Napi::Value Prefetch(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  off_t position = off_t(info[1].As<Napi::Number>().Int64Value());
  off_t length = off_t(info[2].As<Napi::Number>().Int64Value());
  // Advice only: a failure costs speed, never data. A length of 0 would mean the rest of the file.
  if (length > 0) (void)posix_fadvise(fd, position, length, POSIX_FADV_WILLNEED);
  return info.Env().Undefined();
}

/**
 * crc32(data, crc): zlib's CRC-32 of `data`, continuing `crc`, by ISA-L's
 * carry-less multiplication: 0.02 ns a byte here against zlib's 0.23. Index
 * blocks are checked on every write and every read; at 100 B random flows,
 * zlib's took 3.4 % of the recorder's CPU.
 */
Napi::Value Crc32(const Napi::CallbackInfo& info) {
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  uint32_t crc = info[1].As<Napi::Number>().Uint32Value();
  return Napi::Number::New(info.Env(), crc32_gzip_refl(crc, data.Data(), data.ByteLength()));
}

/**
 * writeDirect(fd, position, parts): writes the parts back to back from
 * `position`, a multiple of 4096, into `fd`, a file opened with O_DIRECT,
 * through a page-aligned buffer, then cuts the file where they end. Returns
 * 0, or -errno. An index at 100 B random flows is 25 to 45 B a packet;
 * written through the page cache, the kernel's copy of it took a seventh of
 * the recorder's CPU (about 3.7 s of system time for 2 GB against 0.2 s
 * direct, on this VM).
 */
Napi::Value WriteDirect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  double position = info[1].As<Napi::Number>().DoubleValue();
  Napi::Array parts = info[2].As<Napi::Array>();
  if (!(position >= 0) || uint64_t(position) != position || n2d::align_down(uint64_t(position)) != uint64_t(position)) {
    return Napi::Number::New(env, -EINVAL);
  }
  constexpr size_t PIECE = 4 << 20;
  void* p = nullptr;
  if (posix_memalign(&p, n2d::kAlign, PIECE) != 0) return Napi::Number::New(env, -ENOMEM);
  std::unique_ptr<uint8_t, decltype(&free)> buf(static_cast<uint8_t*>(p), &free);
  uint64_t at = uint64_t(position), total = at;
  size_t fill = 0;
  auto flush = [&](size_t len) -> int {
    int r = n2d::write_blocks(fd, buf.get(), len, at, [](int) { return false; });
    at += len;
    return r;
  };
  for (uint32_t i = 0; i < parts.Length(); i++) {
    Napi::Uint8Array part = parts.Get(i).As<Napi::Uint8Array>();
    const uint8_t* data = part.Data();
    size_t left = part.ByteLength();
    total += left;
    while (left > 0) {
      size_t n = std::min(left, PIECE - fill);
      std::memcpy(buf.get() + fill, data, n);
      data += n, left -= n, fill += n;
      if (fill < PIECE) continue;
      if (int r = flush(PIECE)) return Napi::Number::New(env, r);
      fill = 0;
    }
  }
  if (fill > 0) {
    // The last block goes out whole, zero-padded; the truncation below drops the padding.
    size_t padded = size_t(n2d::align_up(fill));
    std::memset(buf.get() + fill, 0, padded - fill);
    if (int r = flush(padded)) return Napi::Number::New(env, r);
  }
  if (ftruncate(fd, off_t(total)) < 0) return Napi::Number::New(env, -errno);
  return Napi::Number::New(env, 0);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Recorder", Recorder::Define(env));
  exports.Set("Filter", n2d::Filter::Define(env));
  exports.Set("recordsMeta", Napi::Function::New(env, n2d::RecordsMeta));
  exports.Set("libpcapVersion", Napi::Function::New(env, LibpcapVersion));
  exports.Set("prefetch", Napi::Function::New(env, Prefetch));
  exports.Set("writeDirect", Napi::Function::New(env, WriteDirect));
  exports.Set("crc32", Napi::Function::New(env, Crc32));
  n2d::DefineIdentity(env, exports);
  n2d::DefineIndexBuilder(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(n2disk, Init)
