// The CPU GEMM behind matmul, linear, 1x1 and dense convolutions, with fused prologues and
// epilogues:
//
//   C[m, n] = residual[m, n] + scale[n] * rope(act(bias[n] + sum_k A'[m, k] B[k, n]))
//   A'[m, k] = LN_k(A[m, :] + add[m, :])        (each part optional)
//
// Layouts. A, add, residual and C are addressed through a RowMap (two levels of rows, so that
// [B, L, K] views, NCHW and channels-last tensors need no copy). A may also be an im2col view
// of a channels-last image (dense convolution), gathered while packing. B is addressed as
// B(k, n) = b[n * b_n_stride + b_koff[k]] so that a [K, N] matrix, a [N, K] weight (linear) and
// a [O, C, kh, kw] convolution weight read in (ky, kx, c) order are all packed straight from
// their own layout.
//
// Algorithm (GotoBLAS/BLIS blocking): for each block of KC k's, B is packed into NR = 16-column
// panels (zero-padded), shared by all threads; each thread then forms MC x KC blocks of A'
// row-major (the prologue applied, or the im2col rows gathered; a plain A is read in place)
// and runs the 6 x 16 register-tile micro-kernel over them: 12 accumulators, per k one
// broadcast of A per row and two 8-wide loads of B. The B panel (KC x 16 floats) stays in L1
// across the rows of an A block, the A block (MC x KC) in L2. The epilogue (RoPE included) is
// applied to each tile in registers right after its last K block, before its only store.
// Small M (M <= 64: the last stage, a classifier head) with a [N, K] weight skips the packing:
// dot products along k of 3 rows of A with 4 weight rows per register tile, weight rows read
// in place, parallel over blocks of N; packing B would cost about as much as the product.
// Cost: 2 M N K flops; bytes ~ 4 (M K + K N + M N) from memory, B packed once per call.
#pragma once

#include <cstdint>

namespace secvit::cpu {

enum class Act : int { None = 0, Gelu = 1, Silu = 2 };

// Element (m, j) of a row-addressed operand: data[(m / group_rows) * group_stride +
// (m % group_rows) * row_stride + j * col_stride]. group_rows = 0 means one group.
struct RowMap {
  const float* data = nullptr;
  int64_t group_rows = 0;
  int64_t group_stride = 0;
  int64_t row_stride = 0;
  int64_t col_stride = 1;

  int64_t row_offset(int64_t m) const {
    return group_rows > 0 ? (m / group_rows) * group_stride + (m % group_rows) * row_stride
                          : m * row_stride;
  }
};

// A as im2col of an image batch (dense convolution): row m = (b, oy, ox) over [B, OH, OW],
// k = (ky, kx, c). The image is x(b, c, y, x) = data[b*sb + c*sc + y*sy + x*sx].
struct Im2col {
  const float* data = nullptr;
  int64_t sb, sc, sy, sx;
  int64_t c, h, w;           // input channels (of this group), height, width
  int64_t oh, ow;            // output height, width
  int64_t kh, kw;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
};

// RoPE in the epilogue of a qkv projection (SPEC 3.3): columns [0, 2 * heads * d) are q then
// k, each (head, d) per token; token row m is pixel (m % (height * width)) of a height x width
// grid. Columns of k are multiplied by k_scale after the rotation.
struct GemmRope {
  const float* angle = nullptr;  // [d / 2]: a0, a0, a1, a1, ...
  int64_t heads = 0, d = 0, height = 0, width = 0;
  float k_scale = 1.0f;
};

struct GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  RowMap a;
  const Im2col* im2col = nullptr;  // when set, A is this (a.data unused)
  const float* b = nullptr;
  int64_t b_n_stride = 0;
  const int64_t* b_koff = nullptr;  // [k] offsets; null: b_koff[k] = k * b_k_stride
  int64_t b_k_stride = 1;
  RowMap c;
  // Prologue.
  RowMap add;                      // data null: none
  const float* ln_weight = nullptr;
  const float* ln_bias = nullptr;
  bool layer_norm = false;
  float ln_eps = 1e-6f;
  // Epilogue: col_scale (per column, on the sum: a batch norm's scale), bias, act, RoPE, scale,
  // residual, in that order.
  const float* col_scale = nullptr;
  const float* bias = nullptr;
  Act act = Act::None;
  GemmRope rope;
  const float* scale = nullptr;
  RowMap residual;                 // data null: none
  // Also written: the pre-activation bias + col_scale * sum (contiguous rows), what a
  // backward through the activation (and the layer scale) needs. data null: not written.
  RowMap pre;
};

void gemm_f32(const GemmArgs& g);

// ---- pieces shared by the two SIMD paths (gemm.cpp, gemm_avx2.cpp) -----------------------------
constexpr int64_t kGemmMR = 6;
constexpr int64_t kGemmNR = 16;
// At most this many rows, a plain A and a [N, K] weight take the dot-product path (no packing).
constexpr int64_t kGemmDotMaxM = 64;

// The epilogue as the AVX2 micro-kernel applies it in registers, before its only store of a
// whole tile (no RoPE; residual columns contiguous): pointers already offset to the tile's
// first column.
struct TileEpilogue {
  const float* col_scale; // or null
  const float* bias;      // or null
  const float* scale;     // or null
  const float* res[6];    // residual rows, or null
  Act act;
  // RoPE, after the activation: per row the (cos, sin) of the tile's 8 column pairs, 16 floats
  // c0, s0, ..., c7, s7 (rope2d.h's table), or null (no rotation); then times rope_scale.
  const float* rope[6];
  float rope_scale;
  float* pre[6];          // pre-activation rows (GemmArgs::pre), or null
};

// A[6 rows, kc] . Bp[kc x 16] (a packed panel) into the 6 rows `c[r]` (16 contiguous floats
// each): stored when `first`, else added to what is there; then `epi`, when given. A is read
// from 6 row pointers, k contiguous (a plain A in place, or a row-major packed block).
void gemm_micro_rows_scalar(int64_t kc, const float* const* a, const float* bp, float* const* c, bool first);
void gemm_micro_rows_avx2(int64_t kc, const float* const* a, const float* bp, float* const* c, bool first,
                          const TileEpilogue* epi);
// The same with A as a k-major panel: a[kk * 6 + r] (a transposed operand, packed by copying 6
// contiguous values per k; the K-split path's dY^T). No epilogue.
void gemm_micro_panel_scalar(int64_t kc, const float* a, const float* bp, float* const* c, bool first);
void gemm_micro_panel_avx2(int64_t kc, const float* a, const float* bp, float* const* c, bool first);
// A B panel from 16 weight rows (b + j * ldb, k contiguous): dst[kk * 16 + j] = b[j * ldb + kk].
void gemm_pack_b_nk16_avx2(const float* b, int64_t ldb, int64_t kc, float* dst);
// Dot products of 3 rows of A (a + r * lda) with 4 weight rows (w + j * ldw), over k:
// out[r * 4 + j]. The small-M path, which reads a [N, K] weight in place (no packing).
void gemm_dot_3x4_scalar(const float* a, int64_t lda, const float* w, int64_t ldw, int64_t k, float* out);
void gemm_dot_3x4_avx2(const float* a, int64_t lda, const float* w, int64_t ldw, int64_t k, float* out);
// GELU (exact erf) and SiLU of n floats in place.
void act_inplace_scalar(Act act, float* x, int64_t n);
void act_inplace_avx2(Act act, float* x, int64_t n);
// Their derivatives: out[i] = dy[i] * act'(x[i]) (out may alias dy); Act::None copies dy.
void act_grad_scalar(Act act, const float* dy, const float* x, float* out, int64_t n);
void act_grad_avx2(Act act, const float* dy, const float* x, float* out, int64_t n);

}  // namespace secvit::cpu
