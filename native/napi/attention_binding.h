#pragma once

#include <napi.h>

namespace secvit::napi {
void InitAttention(Napi::Env env, Napi::Object exports);
}
