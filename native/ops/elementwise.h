// Element-wise ops: gelu (exact erf), silu (x sigmoid x), add and mul with NumPy/PyTorch
// broadcasting (or with a scalar when b is absent), and activationBackward(dy, x; act): dy *
// act'(x), the gradient of gelu (act 1) and silu (act 2), dy and x of one shape. The output keeps x's (a's) memory layout
// when that tensor is dense in some dim order (a channels-last input gives a channels-last
// output), else it is row-major. Rules: native/ops/elementwise.cpp; kernels:
// native/cpu/elementwise.cpp, native/cuda/elementwise.cu.
#pragma once

#include <cstdint>

#include "../core/shape.h"

namespace secvit {

enum class EwOp : int { Gelu = 0, Silu = 1, Add = 2, Mul = 3, GeluGrad = 4, SiluGrad = 5 };

struct EwOpParams {
  EwOp op;
  float scalar;         // add/mul without b
  bool flat;            // every operand is dense in the output's memory order: one flat loop
  // Otherwise: the output's dims in memory order (outermost first) with each operand's stride
  // for them (0 where it broadcasts).
  int nd;
  int64_t shape[kMaxDims];
  int64_t as[kMaxDims];
  int64_t bs[kMaxDims];
};

}  // namespace secvit
