// AVX2 build of the depthwise loops (depthwise_impl.h). Compiled with -mavx2 -mfma; called
// only after the run-time CPU check.
#include <cstdint>

#include "gemm.h"
#include "ops/conv2d.h"

namespace secvit::cpu {
namespace conv_avx2 {
#include "depthwise_impl.h"
}  // namespace conv_avx2

void depthwise_rows_avx2(const Conv2dOpParams& p, const float* x, const float* wt, const float* bias,
                         const float* residual, float* y, int64_t r0, int64_t r1, float* acc) {
  if (p.xs[1] == 1)
    conv_avx2::depthwise_rows<true>(p, x, wt, bias, residual, y, r0, r1, acc, act_inplace_avx2);
  else
    conv_avx2::depthwise_rows<false>(p, x, wt, bias, residual, y, r0, r1, acc, act_inplace_avx2);
}

}  // namespace secvit::cpu
