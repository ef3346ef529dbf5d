// conv2d_backward_impl.h compiled with -mavx2 -mfma (called only after the run-time CPU check).
#include <cstdint>

#include "gemm.h"
#include "ops/conv2d.h"

namespace secvit::cpu::conv_backward_avx2 {
#include "conv2d_backward_impl.h"
}  // namespace secvit::cpu::conv_backward_avx2
