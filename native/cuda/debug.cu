// CUDA kernel of the `_debug` test op (native/ops/debug.cpp): the wait happens on the
// dispatcher thread (the stream keeps running what was issued before), then a device copy.
#include "cuda_compat.h"

#include "../core/op.h"
#include "../ops/debug.h"
#include "cuda_backend.h"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

void debug_cuda(const KernelArgs& a) {
  debug_op_host_part(a.p<DebugOpParams>());
  backend()->copy_on_device(a.out[0].data, a.in[0].data,
                            size_t(a.in[0].numel()) * dtype_size(a.in[0].dtype));
}

}  // namespace

SECVIT_KERNEL(_debug, SV_CUDA_DEVICE, kF32 | kI32 | kF16 | kBF16, debug_cuda, nullptr, 0);

}  // namespace SV_CUDA_NS
}  // namespace secvit
