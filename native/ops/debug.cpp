// _debug(x; fail, sleepMs): a test hook for the queues, not a model op. It waits `sleepMs`
// on the device's dispatcher, then either returns a copy of x (fail = 0) or throws (fail = 1),
// so tests can hold a queue busy, dispose tensors under queued work, and see a kernel failure
// reach the reads of everything computed from it. Kernels: native/cpu/debug.cpp,
// native/cuda/debug.cu.
#include "ops/debug.h"

#include "core/op.h"

namespace secvit {
namespace {

void prepare_debug(OpCall& c) {
  const Tensor& x = c.in(0);
  c.add_output(x.shape, x.dtype);
  c.set_params(DebugOpParams{c.attr_bool("fail"), c.attr_int("sleepMs", 0, 60000)});
}

}  // namespace

SECVIT_OP(_debug, "x", "fail=0,sleepMs=0", prepare_debug);

}  // namespace secvit
