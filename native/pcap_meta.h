// Index metadata for records already in a pcap file (npcapindex, crash
// recovery, npcaprepair): the same PacketMeta the capture thread makes.
#pragma once
#include <napi.h>

namespace n2d {

// recordsMeta(buf, fileOffset, linktype, nano, maxCaplen) -> { meta, count, next, stop }
Napi::Value RecordsMeta(const Napi::CallbackInfo& info);

}  // namespace n2d
