// CPU pieces of SecViT's 2-D RoPE (SPEC 3.3) shared by the `rope2d` kernel (rope2d.cpp) and the
// qkv GEMM's epilogue (gemm.cpp).
#pragma once

#include <cmath>
#include <cstdint>

namespace secvit::cpu {

// cos and sin of every grid row's and column's angles, for heads of size d: the rotation pair p
// of a head (elements 2p, 2p + 1) turns by y * angle[2p] for p < d/4 and by x * angle[2(p - d/4)]
// for p >= d/4 (angle is a0, a0, a1, a1, ...: a pair shares its angle). Layout, q4 = d/4:
//   cs[(y * q4 + p) * 2 + {0, 1}]            = cos, sin of y * angle[2p],  y < height
//   cs[((height + x) * q4 + p) * 2 + {0, 1}] = cos, sin of x * angle[2p],  x < width
// (height + width) * q4 * 2 floats. Angles in double, so large grids stay exact to fp32.
inline void rope_table(const float* angle, int64_t d, int64_t height, int64_t width, float* cs) {
  const int64_t q4 = d / 4;
  for (int64_t pos = 0; pos < height + width; ++pos) {
    const double v = double(pos < height ? pos : pos - height);
    for (int64_t p = 0; p < q4; ++p) {
      const double th = v * double(angle[2 * p]);
      cs[(pos * q4 + p) * 2] = float(std::cos(th));
      cs[(pos * q4 + p) * 2 + 1] = float(std::sin(th));
    }
  }
}

// The (cos, sin) of pair p (0 <= p < d/2) of a head at grid position (y, x).
inline const float* rope_pair(const float* cs, int64_t q4, int64_t height, int64_t y, int64_t x, int64_t p) {
  return p < q4 ? cs + (y * q4 + p) * 2 : cs + ((height + x) * q4 + (p - q4)) * 2;
}

}  // namespace secvit::cpu
