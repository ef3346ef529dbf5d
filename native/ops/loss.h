// Losses (rules: native/ops/loss.cpp; kernels: native/cpu/loss.cpp, native/cuda/loss.cu).
//   crossEntropy(logits, target; labelSmoothing, reduction, ignoreIndex) -> (loss, lse):
//     F.cross_entropy in one log-softmax pass per row. logits [B, C] (any float dtype); target
//     int32 [B] class indices (a row whose target is ignoreIndex counts neither in the sum nor
//     in the mean's count; any other index outside [0, C) is an Error naming the row), or
//     probabilities [B, C] of logits' dtype (mixup/cutmix). With smoothing e the target
//     distribution is q = (1 - e) t + e / C; row loss = lse * sum(q) - sum q z. reduction 0:
//     mean over the counted rows (a scalar []), 1: sum ([]), 2: none ([B]). The second output is
//     each row's log-sum-exp (float32 [B]), what the gradient needs.
//   crossEntropyBackward(dloss, logits, target, lse; the same) -> dlogits [B, C]:
//     g_row (softmax(z) sum(q) - q), g_row = dloss (/ count for the mean; per row for none).
#pragma once

#include <cstdint>

namespace secvit {

struct CrossEntropyParams {
  int64_t b, c;
  float smoothing;
  int reduction;      // 0 mean, 1 sum, 2 none
  int64_t ignore;     // class-index targets only
  bool class_target;  // int32 [B] (else probabilities [B, C])
};

}  // namespace secvit
