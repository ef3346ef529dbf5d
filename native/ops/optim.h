// Optimizer updates and training-time randomness (rules: native/ops/optim.cpp; kernels:
// native/cpu/optim.cpp, native/cuda/optim.cu). The updates change their tensors in place
// (outputs aliasing inputs, op.h): one pass over each parameter.
//   adamwStep(param, grad, expAvg, expAvgSq; lr, beta1, beta2, eps, weightDecay, step):
//     torch.optim.AdamW's update (decoupled weight decay, bias correction at `step` >= 1):
//     param *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//     param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
//   sgdStep(param, grad, momentumBuffer?; lr, momentum, dampening, weightDecay, nesterov, first):
//     torch.optim.SGD's: d = g + wd param; with momentum, buf = first ? d : momentum buf +
//     (1 - dampening) d, d = nesterov ? d + momentum buf : buf; param -= lr d.
//   scaleInPlace(x; scale): x *= scale (clipGradNorm's rescaling).
//   dropout(x; p, seed, offset, perSample): x * mask / (1 - p), mask = u >= p with u the Philox
//     uniform of element i (or, perSample, of x's index along dim 0: drop path) at counter
//     offset + i. A linear map: it is its own gradient with the same seed and offset. The updates
//     (adamwStep, sgdStep, scaleInPlace) have no gradient: they run under noGrad on leaves.
// float32 parameters and state (training keeps master weights in float32).
#pragma once

#include <cstdint>

namespace secvit {

struct AdamWParams {
  float lr, beta1, beta2, eps, weight_decay;
  double bias1, bias2;  // 1 - beta^step
  int64_t n;
};

struct SgdParams {
  float lr, momentum, dampening, weight_decay;
  bool nesterov, first, has_buffer;
  int64_t n;
};

struct ScaleParams {
  float scale;
  int64_t n;
};

struct DropoutParams {
  float p;
  uint64_t seed, offset;
  int64_t n, per;  // per: elements per sample (perSample), else 0
  bool flat;       // x contiguous: the output's element i is x's element i
};

}  // namespace secvit
