// The CUDA GEMM behind matmul, linear and convolutions, with the same fused prologue and
// epilogue as the CPU's (native/cpu/gemm.h):
//
//   C[m, n] = residual[m, n] + scale[n] * rope(act(bias[n] + col_scale[n] * sum_k A'[m, k] B[k, n]))
//   A'[m, k] = LN_k(A[m, :] + add[m, :])        A may be the im2col view of an image batch
//
// Layouts (all element offsets, every tensor of one dtype): A(m, k) = a + row(m) + k * a_cs with
// row(m) = (m / a_gr) * a_gs + (m % a_gr) * a_rs (two levels, so NCHW, channels-last and
// [B, L, K] views need no copy); B(k, n) = b + n * b_ns + koff(k), koff(k) = k * b_ks, or for a
// convolution weight [O, C/g, kh, kw] read in (ky, kx, c) order koff = c*kh*kw + ky*kw + kx;
// C row-major with row stride ldc.
//
// Kernels (one launch each; the LayerNorm statistics, when asked for, come from a small
// kernel before it: one warp per row, two passes):
//   fp32:  64 x 64 block tile, BK = 16, 256 threads, 4 x 4 outputs per thread from shared-memory
//          A^T and B tiles (the classic SIMT tiling).
//   16-bit (bf16/fp16 in, fp32 accumulate, tensor cores): 64 x 64 block tile, BK = 32, 4 warps
//          of 32 x 32 each, mma.sync m16n8k16 (mma.cuh). A is staged as [m][k], B as [n][k]
//          (the "col" operand), both rows padded by 8 halves against bank conflicts. The
//          prologue is computed in fp32 and rounded to 16 bits on the way into shared memory.
// The epilogue runs on the accumulators: columns 2t and 2t+1 of an mma fragment (and of a
// SIMT thread's 4 columns) are in one thread, so RoPE pairs need no exchange.
// Cost: 2 M N K flops; bytes ~ es (M K + K N) * (tiles re-read: M/64 for B, N/64 for A) + M N.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "cuda_compat.h"
#include "dtype_io.cuh"
#include "mma.cuh"
#include "rope2d.cuh"

namespace secvit {
namespace SV_CUDA_NS {

struct GemmParamsCuda {
  int m, n, k;
  int dtype;  // DType code of every operand
  // A (and the prologue)
  const void* a;
  int64_t a_gr, a_gs, a_rs, a_cs;
  const void* add;
  int64_t add_gr, add_gs, add_rs, add_cs;
  const float* ln_stats;  // [m][2]: mean, rstd (null: no LayerNorm)
  const void* ln_w;
  const void* ln_b;
  // A as im2col (conv): row m = (b, oy, ox), k = (ky, kx, c)
  int im2col;
  int64_t xsb, xsc, xsy, xsx;
  int ic, ih, iw, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
  // B
  const void* b;
  int64_t b_ns, b_ks;
  int b_conv;  // koff = c*kh*kw + ky*kw + kx (conv weight), with the im2col geometry above
  // C and the epilogue
  void* c;
  int64_t ldc;
  const void* col_scale;  // per column, on the sum before the bias (a batch norm's scale); or null
  const void* bias;
  int act;
  const void* scale;
  const void* residual;
  int64_t r_gr, r_gs, r_rs, r_cs;
  const void* rope_angle;
  int rope_heads, rope_d, rope_h, rope_w;
  float k_scale;
  void* pre;  // also written (when set): the pre-activation bias + col_scale * sum, row stride ldc
};

__device__ __forceinline__ int64_t rowmap(int64_t m, int64_t gr, int64_t gs, int64_t rs) {
  return gr > 0 ? (m / gr) * gs + (m % gr) * rs : m * rs;
}

// A'(m, k) in fp32, 0 outside [0, M) x [0, K).
__device__ __forceinline__ float gemm_load_a(const GemmParamsCuda& p, int m, int k) {
  if (m >= p.m || k >= p.k) return 0.0f;
  if (p.im2col) {
    const int hw = p.oh * p.ow;
    const int b = m / hw, oy = (m % hw) / p.ow, ox = m % p.ow;
    const int c = k % p.ic, kx = (k / p.ic) % p.kw, ky = k / (p.ic * p.kw);
    const int iy = oy * p.sh - p.ph + ky * p.dh, ix = ox * p.sw - p.pw + kx * p.dw;
    if (iy < 0 || iy >= p.ih || ix < 0 || ix >= p.iw) return 0.0f;
    return load_as_float(p.a, p.dtype, b * p.xsb + c * p.xsc + iy * p.xsy + ix * p.xsx);
  }
  float v = load_as_float(p.a, p.dtype, rowmap(m, p.a_gr, p.a_gs, p.a_rs) + k * p.a_cs);
  if (p.add != nullptr) v += load_as_float(p.add, p.dtype, rowmap(m, p.add_gr, p.add_gs, p.add_rs) + k * p.add_cs);
  if (p.ln_stats != nullptr) {
    v = (v - p.ln_stats[2 * m]) * p.ln_stats[2 * m + 1];
    if (p.ln_w != nullptr) v *= load_as_float(p.ln_w, p.dtype, k);
    if (p.ln_b != nullptr) v += load_as_float(p.ln_b, p.dtype, k);
  }
  return v;
}

// B(k, n) in fp32, 0 outside.
__device__ __forceinline__ float gemm_load_b(const GemmParamsCuda& p, int k, int n) {
  if (k >= p.k || n >= p.n) return 0.0f;
  int64_t off;
  if (p.b_conv) {
    const int c = k % p.ic, kx = (k / p.ic) % p.kw, ky = k / (p.ic * p.kw);
    off = (int64_t(c) * p.kh + ky) * p.kw + kx;
  } else {
    off = int64_t(k) * p.b_ks;
  }
  return load_as_float(p.b, p.dtype, int64_t(n) * p.b_ns + off);
}

__device__ __forceinline__ float gemm_act(int act, float v) {
  if (act == 1) return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
  if (act == 2) return v / (1.0f + expf(-v));
  return v;
}

// The activation's derivative at v (1 for none).
__device__ __forceinline__ float gemm_act_grad(int act, float v) {
  if (act == 1) return 0.5f * (1.0f + erff(v * 0.70710678118654752f)) + v * expf(-0.5f * v * v) * 0.39894228040143268f;
  if (act == 2) {
    const float s = 1.0f / (1.0f + expf(-v));
    return s * (1.0f + v * (1.0f - s));
  }
  return 1.0f;
}

// The epilogue of the adjacent columns (n, n+1) of row m (n even; n+1 may be past N).
__device__ __forceinline__ void gemm_epilogue_pair(const GemmParamsCuda& p, int m, int n, float v0, float v1) {
  if (m >= p.m || n >= p.n) return;
  const bool two = n + 1 < p.n;
  if (p.col_scale != nullptr) {
    v0 *= load_as_float(p.col_scale, p.dtype, n);
    if (two) v1 *= load_as_float(p.col_scale, p.dtype, n + 1);
  }
  if (p.bias != nullptr) {
    v0 += load_as_float(p.bias, p.dtype, n);
    if (two) v1 += load_as_float(p.bias, p.dtype, n + 1);
  }
  if (p.pre != nullptr) {
    store_from_float(p.pre, p.dtype, int64_t(m) * p.ldc + n, v0);
    if (two) store_from_float(p.pre, p.dtype, int64_t(m) * p.ldc + n + 1, v1);
  }
  v0 = gemm_act(p.act, v0);
  v1 = gemm_act(p.act, v1);
  if (p.rope_angle != nullptr) {
    const int e = p.rope_heads * p.rope_d;
    if (n < 2 * e) {
      const int l = m % (p.rope_h * p.rope_w);
      const int y = l / p.rope_w, x = l % p.rope_w;
      rope_rotate_pair(v0, v1, p.rope_angle, p.dtype, n % p.rope_d, p.rope_d, y, x);
      if (n >= e) {
        v0 *= p.k_scale;
        v1 *= p.k_scale;
      }
    }
  }
  if (p.scale != nullptr) {
    v0 *= load_as_float(p.scale, p.dtype, n);
    if (two) v1 *= load_as_float(p.scale, p.dtype, n + 1);
  }
  if (p.residual != nullptr) {
    const int64_t r = rowmap(m, p.r_gr, p.r_gs, p.r_rs);
    v0 += load_as_float(p.residual, p.dtype, r + int64_t(n) * p.r_cs);
    if (two) v1 += load_as_float(p.residual, p.dtype, r + int64_t(n + 1) * p.r_cs);
  }
  store_from_float(p.c, p.dtype, int64_t(m) * p.ldc + n, v0);
  if (two) store_from_float(p.c, p.dtype, int64_t(m) * p.ldc + n + 1, v1);
}

constexpr int kGemmTile = 64;

// Launches the GEMM for p.dtype (float32: SIMT; bf16/fp16: tensor cores). With `stats` (scratch
// of p.m x 2 floats), A gets a LayerNorm (epsilon `ln_eps`) first: its statistics go there.
void launch_gemm(GemmParamsCuda p, float ln_eps, float* stats, cudaStream_t stream);
// False (with the reason) for sizes beyond the launch's limits.
bool gemm_supports(int64_t m, int64_t n, int64_t k, std::string* why);

}  // namespace SV_CUDA_NS
}  // namespace secvit
