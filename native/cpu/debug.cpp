// CPU kernel of the `_debug` test op (native/ops/debug.cpp).
#include <cstring>

#include "core/op.h"
#include "ops/debug.h"

namespace secvit::cpu {
namespace {

void debug_kernel(const KernelArgs& a) {
  debug_op_host_part(a.p<DebugOpParams>());
  std::memcpy(a.out[0].data, a.in[0].data, size_t(a.in[0].numel()) * dtype_size(a.in[0].dtype));
}

}  // namespace

SECVIT_KERNEL(_debug, Device::Cpu, kF32 | kI32 | kF16 | kBF16, debug_kernel, nullptr, 0);

}  // namespace secvit::cpu
