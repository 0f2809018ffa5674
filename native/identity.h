// Peer credentials of a Unix socket and user/group lookups through libc (NSS).
#pragma once
#include <napi.h>

namespace n2d {
void DefineIdentity(Napi::Env env, Napi::Object exports);
}
