// copy(x; dtype, keep_layout): a packed copy of any view of x, converted to `dtype` (rules:
// native/ops/copy.cpp; kernels: native/cpu/copy.cpp, native/cuda/copy.cu).
#pragma once

#include "../core/shape.h"

namespace secvit {

struct CopyOpParams {
  int order[kMaxDims];  // the output's dims in memory order, outermost first
};

}  // namespace secvit
