#pragma once
#include <napi.h>
#include <pcap/pcap.h>

namespace n2d {

class Filter : public Napi::ObjectWrap<Filter> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Filter(const Napi::CallbackInfo& info);
  ~Filter() override;

 private:
  Napi::Value Scan(const Napi::CallbackInfo& info);
  struct bpf_program prog_ = {0, nullptr};
  bool compiled_ = false;
};

}  // namespace n2d
