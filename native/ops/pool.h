// globalAvgPool2d(x): the mean over H and W of x [B, C, H, W] (any layout), as
// F.adaptive_avg_pool2d(x, 1): [B, C, 1, 1], contiguous. Rules: native/ops/pool.cpp; kernels:
// native/cpu/pool.cpp, native/cuda/pool.cu.
#pragma once

#include <cstdint>

namespace secvit {

struct PoolOpParams {
  int64_t b, c, h, w;
  int64_t xs[4];
};

}  // namespace secvit
