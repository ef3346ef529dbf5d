#pragma once

#include <napi.h>

namespace secvit::napi {
// opNames, run, view: every op through one entry (op_binding.cpp).
void InitOps(Napi::Env env, Napi::Object exports);
}  // namespace secvit::napi
