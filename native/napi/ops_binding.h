// Bindings of the ops: validate arguments, convert, dispatch to the kernels of the tensors'
// device, on the JS thread (xSync) or a worker thread (x -> Promise).
#pragma once

#include <napi.h>

namespace secvit::napi {
void InitOps(Napi::Env env, Napi::Object exports);
}
