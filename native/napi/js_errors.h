// Conversions between JS values and native types, and the one place where native exceptions
// become JS exceptions. Every binding body runs inside `guarded(...)`, so a secvit::Error
// becomes TypeError/RangeError/Error, and nothing escapes as a C++ exception into Node.
#pragma once

#include <napi.h>

#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/memory_stats.h"
#include "core/tensor.h"

namespace secvit::napi {

Napi::Error make_js_error(Napi::Env env, ErrorKind kind, const std::string& message);

// Reports the host bytes allocated or freed since the last report to V8 (JS thread only).
inline void report_external_memory(Napi::Env env) {
  const int64_t delta = memory_stats::take_external_delta();
  if (delta != 0) Napi::MemoryManagement::AdjustExternalMemory(env, delta);
}

template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& body) {
  Napi::Env env = info.Env();
  try {
    Napi::Value result = body();
    report_external_memory(env);
    return result;
  } catch (const Napi::Error&) {
    report_external_memory(env);
    throw;
  } catch (const Error& e) {
    report_external_memory(env);
    throw make_js_error(env, e.kind(), e.what());
  } catch (const std::bad_alloc&) {
    throw make_js_error(env, ErrorKind::Runtime, "out of host memory");
  } catch (const std::exception& e) {
    throw make_js_error(env, ErrorKind::Runtime, e.what());
  }
}

// Argument readers: `what` names the argument in error messages ("tensor: shape").
std::string arg_string(const Napi::Value& v, const std::string& what);
bool arg_bool(const Napi::Value& v, const std::string& what);
// The same, named "op: arg", with the name put together only for the error (per-op hot path).
bool arg_bool(const Napi::Value& v, const char* op, const char* arg);
int64_t arg_int(const Napi::Value& v, const std::string& what, int64_t min, int64_t max);
Shape arg_shape(const Napi::Value& v, const std::string& what);
DType arg_dtype(const Napi::Value& v, const std::string& what);
Device arg_device(const Napi::Value& v, const std::string& what);

}  // namespace secvit::napi
