// rope2d(x, angle; height, width): SecViT's 2-D rotary position embedding (SPEC 3.3) on
// x [B, heads, L, d] (any strides), L = height * width tokens in row-major order, angle [d/2]
// (a0, a0, a1, a1, ...; the checkpoint's layers.i.RoPE.angle). For the token at (y, x):
//   theta_j = y * angle[j] (j < d/2), x * angle[j - d/2] (j >= d/2)
//   out_j = x_j cos(theta_j) + r_j sin(theta_j),  r_{2p} = -x_{2p+1}, r_{2p+1} = x_{2p}.
// Output contiguous [B, heads, L, d]. The model applies the same rotation inside the qkv
// projection's epilogue (linear with ropeAngle); this op is the unfused form. Rules:
// native/ops/rope2d.cpp; kernels: native/cpu/rope2d.cpp, native/cuda/rope2d.cu.
#pragma once

#include <cstdint>

namespace secvit {

struct Rope2dOpParams {
  int64_t b, h, l, d, height, width;
  int64_t xs[4];  // strides of x
};

}  // namespace secvit
