// Parameters of the `_debug` test op (native/ops/debug.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

#include "../core/error.h"

namespace secvit {

struct DebugOpParams {
  bool fail;
  int64_t sleep_ms;
};

// The part every backend shares: the wait, then the failure.
inline void debug_op_host_part(const DebugOpParams& p) {
  if (p.sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(p.sleep_ms));
  if (p.fail) throw_runtime_error("injected failure (the _debug test op)");
}

}  // namespace secvit
