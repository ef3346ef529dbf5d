// SEC, window and global attention (SPEC sections 1-2): q, k, v [B, H, L, D] of one float dtype;
// out [B, H, L, D] (token-major in memory on the CPU: [B, L, H, D]); secAttention's optional
// second output is the token order, int32 [B, H, L].
// No d^-0.5 scale inside (the model folds it into k). Rules: native/ops/attention.cpp; kernels:
// native/cpu/attention.cpp, native/cuda/{sec,window,global}_attention.cu.
#pragma once

#include <cstdint>

namespace secvit {

struct AttentionOpParams {
  int64_t b, h, l, d;
  int64_t clusters;      // secAttention(Unfused): C (<= 1: one cluster)
  bool return_order;     // secAttention(Unfused): a second output with the order
  int64_t height, width, win_h, win_w, shift_h, shift_w;  // windowAttention
};

}  // namespace secvit
