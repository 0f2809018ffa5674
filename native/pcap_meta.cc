#include "pcap_meta.h"

#include <stdlib.h>
#include <string.h>

#include "meta.h"
#include "parse.h"

namespace n2d {
namespace {

// Why a walk stopped: more bytes are needed, the zero padding that ends the
// data of a file cut short, or a record no pcap reader would accept.
enum Stop { kMore = 0, kZero = 1, kBad = 2 };

}  // namespace

// Walks the whole records of buf (which starts at file offset fileOffset) and
// returns one PacketMeta per record in one ArrayBuffer, the position after
// the last whole record, and why the walk stopped there.
Napi::Value RecordsMeta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto buf = info[0].As<Napi::Uint8Array>();
  const uint64_t file_offset = uint64_t(info[1].As<Napi::Number>().Int64Value());
  const int linktype = info[2].As<Napi::Number>().Int32Value();
  const uint64_t unit = info[3].ToBoolean().Value() ? 1 : 1000;
  const uint32_t max_caplen = info[4].As<Napi::Number>().Uint32Value();
  const uint8_t* data = buf.Data();
  const size_t len = buf.ByteLength();

  size_t cap = len / 64 + 16;  // most records are longer than 64 bytes
  auto* meta = static_cast<PacketMeta*>(malloc(cap * sizeof(PacketMeta)));
  size_t count = 0, pos = 0;
  Stop stop = kMore;
  while (pos + 16 <= len) {
    const uint8_t* h = data + pos;
    const uint32_t caplen = rd32(h + 8), wirelen = rd32(h + 12);
    if (caplen == 0 && wirelen == 0 && rd32(h) == 0 && rd32(h + 4) == 0) {
      stop = kZero;
      break;
    }
    // Out-of-range fractions are kept: imports store a source's fields as they were.
    if (caplen > max_caplen) {
      stop = kBad;
      break;
    }
    if (pos + 16 + caplen > len) break;
    if (count == cap) {
      cap *= 2;
      auto* grown = static_cast<PacketMeta*>(realloc(meta, cap * sizeof(PacketMeta)));
      if (!grown) abort();
      meta = grown;
    }
    PacketMeta& m = meta[count++];
    parse_packet(linktype, h + 16, caplen < kParseBytes ? caplen : kParseBytes, m);
    m.ts_ns = uint64_t(rd32(h)) * 1000000000ull + uint64_t(rd32(h + 4)) * unit;
    m.offset = file_offset + pos;
    m.caplen = caplen;
    m.wirelen = wirelen;
    pos += 16 + caplen;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("meta", Napi::ArrayBuffer::New(env, meta, count * sizeof(PacketMeta), [](Napi::Env, void* p) { free(p); }));
  out.Set("count", double(count));
  out.Set("next", double(pos));
  out.Set("stop", int(stop));
  return out;
}

}  // namespace n2d
