// SEC, window and global attention (SPEC sections 1-2): q, k, v [B, H, L, D] of one float dtype;
// out [B, H, L, D] (token-major in memory on the CPU: [B, L, H, D]); secAttention's optional
// second output is the token order, int32 [B, H, L]; with saveLse a last output, float32
// [B, H, L]: each query's log-sum-exp over its group, m + log(sum exp(s - m)) (what the backward
// recomputes the probabilities from).
//
// Backward (FlashAttention-2 style): secAttentionBackward(q, k, v, out, dout, lse, order;
// clusters), windowAttentionBackward(q, k, v, out, dout, lse; geometry) and
// globalAttentionBackward(q, k, v, out, dout, lse) -> (dq, dk, dv), [B, H, L, D] each (CPU:
// token-major in memory). Per group, with P = exp(Q K^T - lse) recomputed and D_i = <dO_i, O_i>:
// dV = P^T dO, dP = dO V^T, dS = P (dP - D), dQ = dS K, dK = dS^T Q. SEC's order is a constant
// (the argsort has no gradient, as in the authors' model): gradients land at each member's token
// through the same index lists the forward gathered with (no atomics, no scatter-add).
// windowAttention's optional bias, float32 [H, wh*ww, wh*ww] in every dtype (Swin's relative
// position bias, gathered from its table), is added to every window's logits by window slot; the
// backward then has a fourth output, float32 dbias = sum over images and windows of dS (the
// table's gradient is a gather's backward in the model; on CUDA accumulated with atomics).
// No d^-0.5 scale inside (the model folds it into k or q). Gradients: none for
// secAttentionUnfused (the benchmark's unfused baseline) nor for the backward ops themselves (no
// second derivatives); asking raises an Error naming the op. Rules: native/ops/attention.cpp; kernels:
// native/cpu/attention.cpp, native/cuda/{sec,window,global}_attention.cu.
#pragma once

#include <cstdint>

namespace secvit {

struct AttentionOpParams {
  int64_t b, h, l, d;
  int64_t clusters;      // secAttention(Unfused): C (<= 1: one cluster)
  bool return_order;     // secAttention(Unfused): a second output with the order
  bool save_lse;         // a last output with the log-sum-exps (float32 [B, H, L])
  int64_t height, width, win_h, win_w, shift_h, shift_w;  // windowAttention
  bool has_bias;         // windowAttention(Backward): a relative position bias [H, N, N] (and dbias out)
};

}  // namespace secvit
