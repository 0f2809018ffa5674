// N-API glue of IndexBuilder (index_builder.h): numbers and buffers in,
// index segments out as Uint8Arrays that own the encoded bytes (no copy).
#include "index_builder_addon.h"

#include <memory>

#include "index_builder.h"

namespace n2d {

namespace {

class IndexBuilderWrap : public Napi::ObjectWrap<IndexBuilderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "IndexBuilder",
                       {InstanceMethod("add", &IndexBuilderWrap::Add), InstanceMethod("segment", &IndexBuilderWrap::Segment),
                        InstanceMethod("segmentWritten", &IndexBuilderWrap::SegmentWritten),
                        InstanceMethod("finish", &IndexBuilderWrap::Finish),
                        InstanceMethod("finishFromSegments", &IndexBuilderWrap::FinishFromSegments),
                        InstanceMethod("timeBounds", &IndexBuilderWrap::TimeBounds),
                        StaticMethod("release", &IndexBuilderWrap::Release)});
  }

  // (version, linktype, nano, snaplen)
  explicit IndexBuilderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IndexBuilderWrap>(info) {
    IndexInfo i{uint16_t(info[0].As<Napi::Number>().Uint32Value()), info[1].As<Napi::Number>().Uint32Value(),
                info[2].ToBoolean().Value(), info[3].As<Napi::Number>().Uint32Value()};
    builder_ = std::make_unique<IndexBuilder>(i);
  }

 private:
  // (meta: ArrayBuffer, count)
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArrayBuffer()) return fail(env, "IndexBuilder.add(meta: ArrayBuffer, count)");
    Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
    double count = info[1].As<Napi::Number>().DoubleValue();
    if (!(count >= 0) || count * sizeof(PacketMeta) > ab.ByteLength()) {
      return fail(env, "metadata batch shorter than its record count");
    }
    // An ArrayBuffer's memory is aligned for any scalar, so it can be read as PacketMeta records.
    return result(env, builder_->add(static_cast<const PacketMeta*>(ab.Data()), size_t(count)));
  }

  // (committed) -> Uint8Array
  Napi::Value Segment(const Napi::CallbackInfo& info) {
    Encoded out;
    std::string err = builder_->segment(uint64_t(info[0].As<Napi::Number>().DoubleValue()), out);
    return err.empty() ? bytes(info.Env(), std::move(out)) : fail(info.Env(), err);
  }

  Napi::Value SegmentWritten(const Napi::CallbackInfo& info) { return result(info.Env(), builder_->segment_written()); }

  // (fileBytes) -> Uint8Array
  Napi::Value Finish(const Napi::CallbackInfo& info) {
    Encoded out;
    std::string err = builder_->finish(uint64_t(info[0].As<Napi::Number>().DoubleValue()), out);
    return err.empty() ? bytes(info.Env(), std::move(out)) : fail(info.Env(), err);
  }

  // (fileBytes) -> Uint8Array, or undefined when finish() is the way
  Napi::Value FinishFromSegments(const Napi::CallbackInfo& info) {
    Encoded out;
    bool done;
    std::string err = builder_->finish_from_segments(uint64_t(info[0].As<Napi::Number>().DoubleValue()), out, done);
    if (!err.empty()) return fail(info.Env(), err);
    return done ? bytes(info.Env(), std::move(out)) : info.Env().Undefined();
  }

  // -> [minNs, maxNs] as bigints, null before any packet
  Napi::Value TimeBounds(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t min, max;
    if (!builder_->time_bounds(min, max)) return env.Null();
    uint64_t unit = builder_->nano() ? 1 : 1000;
    Napi::Array a = Napi::Array::New(env, 2);
    a.Set(uint32_t(0), Napi::BigInt::New(env, min * unit));
    a.Set(uint32_t(1), Napi::BigInt::New(env, max * unit));
    return a;
  }

  static Napi::Value fail(Napi::Env env, const std::string& message) {
    Napi::Error::New(env, message).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  static Napi::Value result(Napi::Env env, const std::string& err) {
    return err.empty() ? env.Undefined() : fail(env, err);
  }

  // (bytes): detaching the array buffer of a segment() or finish() result
  // frees the encoded bytes now; left to the garbage collector, a file's
  // index (about 100 MB at 100 B random flows) could still be held while the
  // next one was encoded, and the recorder's memory grew by that much.
  static Napi::Value Release(const Napi::CallbackInfo& info) {
    Napi::ArrayBuffer ab = info[0].As<Napi::TypedArray>().ArrayBuffer();
    if (!ab.IsDetached()) ab.Detach();
    return info.Env().Undefined();
  }

  static Napi::Value bytes(Napi::Env env, Encoded&& e) {
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, e.buffer.release(), e.capacity,
                                                  [](Napi::Env, void* p) { delete[] static_cast<uint8_t*>(p); });
    return Napi::Uint8Array::New(env, e.capacity - e.start, ab, e.start);
  }

  std::unique_ptr<IndexBuilder> builder_;
};

}  // namespace

void DefineIndexBuilder(Napi::Env env, Napi::Object exports) {
  exports.Set("IndexBuilder", IndexBuilderWrap::Define(env));
}

}  // namespace n2d
