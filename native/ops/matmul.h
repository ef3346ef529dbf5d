// matmul(a, b): a [M, K] or [B, M, K] times b [K, N] or [B, K, N]; a 2-D b is shared by every
// batch. float32 (16-bit inputs are widened by the dispatcher where a device has no 16-bit
// kernel). Both operands are read through their strides (a transposed view, a.transpose(-1,
// -2), costs no copy: the backward's products need them). Rules: native/ops/matmul.cpp;
// kernels: native/cpu/matmul.cpp, native/cuda/gemm.cu.
#pragma once

#include <cstdint>

namespace secvit {

struct MatmulOpParams {
  int64_t batch, m, k, n;
  bool b_batched;
  // Element strides: a (batch, row, column), b (batch, k, n).
  int64_t a_bs, a_rs, a_cs, b_bs, b_ks, b_ns;
};

}  // namespace secvit
