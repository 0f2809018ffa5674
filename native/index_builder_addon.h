#pragma once
#include <napi.h>

namespace n2d {

/** exports.IndexBuilder: the index builder (index_builder.h) as a JS class, typed in native/addon.ts. */
void DefineIndexBuilder(Napi::Env env, Napi::Object exports);

}  // namespace n2d
