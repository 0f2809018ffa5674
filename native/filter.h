#pragma once
#include <napi.h>
#include <pcap/pcap.h>

#include <cstdint>
#include <vector>

namespace n2d {

class Filter : public Napi::ObjectWrap<Filter> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Filter(const Napi::CallbackInfo& info);
  ~Filter() override;

 private:
  Napi::Value Collect(const Napi::CallbackInfo& info);
  size_t Walk(const uint8_t* data, size_t len, size_t pos, size_t last, uint64_t begin, uint64_t end, uint64_t unit,
              std::vector<uint32_t>& kept) const;
  struct bpf_program prog_ = {0, nullptr};
  bool compiled_ = false;
};

}  // namespace n2d
