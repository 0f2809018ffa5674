// Extraction's per-packet decision: a libpcap filter program run over the
// pcap records of a buffer, together with the time range, so that libpcap
// and nothing else decides which packet is sent.
#include <napi.h>
#include <pcap/pcap.h>

#include <cstring>
#include <vector>

#include "filter.h"
#include "parse.h"

namespace n2d {

Napi::Function Filter::Define(Napi::Env env) {
  return DefineClass(env, "Filter", {InstanceMethod("collect", &Filter::Collect)});
}

Filter::Filter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Filter>(info) {
  Napi::Env env = info.Env();
  std::string expr = info[0].As<Napi::String>().Utf8Value();
  int linktype = info[1].As<Napi::Number>().Int32Value();
  int snaplen = info[2].As<Napi::Number>().Int32Value();
  if (expr.find_first_not_of(" \t\r\n") == std::string::npos) return;  // no filter: every packet
  pcap_t* p = pcap_open_dead(dlt_of_linktype(linktype), snaplen > 0 ? snaplen : 262144);
  if (pcap_compile(p, &prog_, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN) < 0) {
    Napi::Error::New(env, pcap_geterr(p)).ThrowAsJavaScriptException();
    pcap_close(p);
    return;
  }
  pcap_close(p);
  compiled_ = true;
}

Filter::~Filter() {
  if (compiled_) pcap_freecode(&prog_);
}

// Walks the records of `data` from `pos`, up to and including the one at
// `last` (or while whole records remain), appending the positions of those in
// [begin, end) that the program accepts to `kept`. Returns the position after
// the last whole record walked.
size_t Filter::Walk(const uint8_t* data, size_t len, size_t pos, size_t last, uint64_t begin, uint64_t end, uint64_t unit,
                    std::vector<uint32_t>& kept) const {
  while (pos <= last && pos + 16 <= len) {
    uint32_t caplen = rd32(data + pos + 8);
    // An all-zero length is where the data of a file being written ends
    // (its last block is zero-padded): no packet has zero bytes on the wire.
    if (caplen == 0 && rd32(data + pos + 12) == 0) break;
    if (pos + 16 + caplen > len) break;
    uint64_t ts = uint64_t(rd32(data + pos)) * 1000000000ull + uint64_t(rd32(data + pos + 4)) * unit;
    if (ts >= begin && ts < end) {
      bool keep = true;
      if (compiled_) {
        struct pcap_pkthdr h;
        h.ts.tv_sec = rd32(data + pos);
        h.ts.tv_usec = rd32(data + pos + 4);
        h.caplen = caplen;
        h.len = rd32(data + pos + 12);
        keep = pcap_offline_filter(&prog_, &h, data + pos + 16) != 0;
      }
      if (keep) kept.push_back(uint32_t(pos));
    }
    pos += 16 + caplen;
  }
  return pos;
}

// collect(buf, start, last, beginNs, endNs, nano) -> [records, positions]:
// the kept records copied back to back into one new buffer (so that a
// sequential read costs no per-packet JS), and a Uint32Array of where each
// started in buf followed by the position after the last whole record walked.
Napi::Value Filter::Collect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto buf = info[0].As<Napi::Uint8Array>();
  size_t pos = size_t(info[1].As<Napi::Number>().Int64Value());
  size_t last = size_t(info[2].As<Napi::Number>().Int64Value());
  bool lossless;
  uint64_t begin = info[3].As<Napi::BigInt>().Uint64Value(&lossless);
  uint64_t end = info[4].As<Napi::BigInt>().Uint64Value(&lossless);
  uint64_t unit = info[5].ToBoolean().Value() ? 1 : 1000;
  const uint8_t* data = buf.Data();
  std::vector<uint32_t> kept;
  size_t next = Walk(data, buf.ByteLength(), pos, last, begin, end, unit, kept);
  size_t bytes = 0;
  for (uint32_t at : kept) bytes += 16 + rd32(data + at + 8);
  auto records = Napi::Buffer<uint8_t>::New(env, bytes);
  uint8_t* out = records.Data();
  for (uint32_t at : kept) {
    size_t n = 16 + rd32(data + at + 8);
    memcpy(out, data + at, n);
    out += n;
  }
  auto positions = Napi::Uint32Array::New(env, kept.size() + 1);
  if (!kept.empty()) memcpy(positions.Data(), kept.data(), kept.size() * 4);
  positions[kept.size()] = uint32_t(next);
  auto result = Napi::Array::New(env, 2);
  result.Set(uint32_t(0), records);
  result.Set(uint32_t(1), positions);
  return result;
}

}  // namespace n2d
