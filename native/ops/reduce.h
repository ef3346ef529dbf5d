// Reductions (rules: native/ops/reduce.cpp; kernels: native/cpu/reduce.cpp, native/cuda/reduce.cu).
//   sum(x; dims, keepDim): the sum of x over the dims set in the bit mask `dims` (bit i: dim i;
//     0: every dim), as torch.sum(x, dims, keepdim). Output contiguous, x's dtype; accumulated
//     in double on the CPU, in fp32 pairwise (block tree) on CUDA. The gradient of broadcasting
//     (expand, add/mul of different shapes) and of bias vectors; its own gradient is an expand.
//   sumSquares(x): the sum of x*x over every element, a [1] float32 tensor (accumulated as sum),
//     for gradient norms (clipGradNorm); it has no gradient (the optimizers' tool).
#pragma once

#include <cstdint>

#include "../core/shape.h"

namespace secvit {

struct SumOpParams {
  // Kept dims (the output's, outermost first) and reduced dims, each with x's strides.
  int nk, nr;
  int64_t kshape[kMaxDims], kstride[kMaxDims];
  int64_t rshape[kMaxDims], rstride[kMaxDims];
  int64_t n_out, n_red;
  bool squares;  // sum of squares (sumSquares)
};

}  // namespace secvit
