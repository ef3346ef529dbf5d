// linear(x, weight, bias?; fused extras): y = x W^T + b over the last dim of x (PyTorch's
// F.linear), and the fused forms the model uses, all in one pass over the output:
//
//   A' = LN(x + add)                          prologue: add and a LayerNorm over the last dim
//   y  = residual + scale * rope(act(A' W^T + bias))
//
// Inputs: x [..., K] (any strides with the leading dims collapsing to two levels; others are
// copied), weight [N, K], bias [N], residual [..., N] (any strides, same leading dims), scale
// [N], lnWeight/lnBias [K], add (x's shape), ropeAngle [d/2] (SPEC 3.3: q and k columns of a
// qkv projection, [0, 2 heads d), tokens on a height x width grid; k columns scaled by kScale).
// Output [..., N], contiguous; with savePre a second output [..., N]: bias + A' W^T before the
// activation (what the gradient through the activation and the layer scale needs).
//
// linearEpilogueBackward(dy, pre?, bias?, scale?, ropeAngle?; act, rope..., needScale): the
// epilogue's gradient: dz = act'(pre) * rope^T(scale * dy) [M, N] (the gradient at the GEMM's
// output, bias included), dbias = sum over rows of dz [N], and (needScale) dscale = sum over
// rows of dy * rope(act(pre)) [N]. dy [..., N] any row layout; pre as linear's second output.
// Rules: native/ops/linear.cpp; kernels: native/cpu/linear.cpp, native/cuda/linear.cu.
#pragma once

#include <cstdint>

namespace secvit {

enum LinearInput : int {
  kLinX = 0, kLinWeight, kLinBias, kLinResidual, kLinScale, kLinLnWeight, kLinLnBias, kLinAdd,
  kLinRopeAngle, kLinNumInputs
};

enum LinearBackwardInput : int { kLbDy = 0, kLbPre, kLbBias, kLbScale, kLbRopeAngle };

struct LinearOpParams {
  int64_t m, n, k;       // rows (product of x's leading dims), out, in
  int act;               // 0 none, 1 gelu, 2 silu
  bool layer_norm;
  float ln_eps;
  int64_t rope_heads, rope_d, rope_height, rope_width;  // rope_heads 0: no RoPE
  float k_scale;
  // Row addressing (two levels) of x, add, residual: rows of group g start at g * gs.
  int64_t x_group_rows, x_group_stride, x_row_stride;
  int64_t add_group_rows, add_group_stride, add_row_stride;
  int64_t res_group_rows, res_group_stride, res_row_stride, res_col_stride;
  bool save_pre;
};

struct LinearBackwardParams {
  int64_t m, n;
  int act;
  int64_t rope_heads, rope_d, rope_height, rope_width;
  float k_scale;
  bool need_scale, has_bias;
  int64_t dy_group_rows, dy_group_stride, dy_row_stride;  // dy's rows (columns contiguous)
};

}  // namespace secvit
