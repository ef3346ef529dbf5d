// Data movement (rules: native/ops/copy.cpp; kernels: native/cpu/copy.cpp, native/cuda/copy.cu):
//   copy(x; dtype, keepLayout): a packed copy of any view of x, converted to `dtype`. No gradient
//     node of its own: the tensor methods that run it (contiguous, cast, to) record theirs.
//   pad(x; dim, before, after): x with `before` zeros in front of and `after` zeros behind it
//     along `dim` (F.pad on one dim); packed in x's memory order when x is dense, else
//     row-major. The gradient of narrow(); its own gradient is narrow().
#pragma once

#include "../core/shape.h"

namespace secvit {

struct CopyOpParams {
  int order[kMaxDims];  // the output's dims in memory order, outermost first
};

struct PadOpParams {
  int order[kMaxDims];  // the output's dims in memory order, outermost first
  int dim;
  int64_t before;
};

}  // namespace secvit
