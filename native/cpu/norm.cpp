// CPU kernels of layerNorm, batchNorm and foldBatchNorm (native/ops/norm.h). The output has
// x's layout, so every element is written at its input's offset.
//   layerNorm: positions (all dims but the normalised one) in memory order. When the
//   normalised dim is the innermost (channels-last, or the last dim), each position is a
//   contiguous row: two passes (mean, then the centred variance) and the affine. Otherwise the
//   statistics of a whole innermost run of positions are accumulated together, so the loads
//   stay contiguous. Statistics in fp32, two-pass (no cancellation).
//   batchNorm: a per-channel scale and shift, applied in one pass.
// Cost: ~3 reads and 1 write per element (layerNorm), 1 and 1 (batchNorm).
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/op.h"
#include "core/thread_pool.h"
#include "norm.h"
#include "ops/norm.h"

namespace secvit::cpu {
namespace {

// Calls fn(offset, run_len, run_stride) for each run of the innermost other dim, parallel over
// the runs: offset of the run's first position, and the positions' stride within the run.
template <typename F>
void for_runs(const NormOpParams& p, int64_t grain, F fn) {
  const int nd = p.nd;
  const int64_t inner = nd > 0 ? p.shape[nd - 1] : 1;
  const int64_t inner_stride = nd > 0 ? p.stride[nd - 1] : 0;
  int64_t runs = 1;
  for (int k = 0; k + 1 < nd; ++k) runs *= p.shape[k];
  ThreadPool::instance().parallel_for(runs, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t rem = r, off = 0;
      for (int k = nd - 2; k >= 0; --k) {
        off += (rem % p.shape[k]) * p.stride[k];
        rem /= p.shape[k];
      }
      fn(off, inner, inner_stride);
    }
  });
}

void layer_norm_kernel(const KernelArgs& a) {
  const NormOpParams& p = a.p<NormOpParams>();
  const float* x = a.in[0].ptr<float>();
  const float* w = a.in[1].ptr<float>();
  const float* b = a.in[2].ptr<float>();
  float* y = a.out[0].ptr<float>();
  const int64_t D = p.d, sd = p.d_stride;
  if (a.out[0].numel() == 0) return;
  const float inv_d = 1.0f / float(D);
  if (sd == 1) {
    for_runs(p, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, D * (p.nd > 0 ? p.shape[p.nd - 1] : 1))),
             [&](int64_t off, int64_t n, int64_t s) {
      for (int64_t i = 0; i < n; ++i) {
        const float* __restrict__ xr = x + off + i * s;
        float* __restrict__ yr = y + off + i * s;
        float mu, rs;
        layer_norm_stats(xr, D, p.eps, &mu, &rs);
        for (int64_t j = 0; j < D; ++j) {
          float v = (xr[j] - mu) * rs;
          if (w != nullptr) v *= w[j];
          if (b != nullptr) v += b[j];
          yr[j] = v;
        }
      }
    });
    return;
  }
  // Strided normalised dim: a run of positions at once.
  for_runs(p, 1, [&](int64_t off, int64_t n, int64_t s) {
    // Per-thread scratch, reused across runs.
    thread_local std::vector<float> mu, rs;
    mu.assign(size_t(n), 0.0f);
    rs.assign(size_t(n), 0.0f);
    for (int64_t j = 0; j < D; ++j) {
      const float* xr = x + off + j * sd;
      for (int64_t i = 0; i < n; ++i) mu[size_t(i)] += xr[i * s];
    }
    for (int64_t i = 0; i < n; ++i) mu[size_t(i)] *= inv_d;
    for (int64_t j = 0; j < D; ++j) {
      const float* xr = x + off + j * sd;
      for (int64_t i = 0; i < n; ++i) {
        const float t = xr[i * s] - mu[size_t(i)];
        rs[size_t(i)] += t * t;
      }
    }
    for (int64_t i = 0; i < n; ++i) rs[size_t(i)] = 1.0f / std::sqrt(rs[size_t(i)] * inv_d + p.eps);
    for (int64_t j = 0; j < D; ++j) {
      const float* xr = x + off + j * sd;
      float* yr = y + off + j * sd;
      const float wj = w != nullptr ? w[j] : 1.0f, bj = b != nullptr ? b[j] : 0.0f;
      for (int64_t i = 0; i < n; ++i) yr[i * s] = (xr[i * s] - mu[size_t(i)]) * rs[size_t(i)] * wj + bj;
    }
  });
}

void batch_norm_kernel(const KernelArgs& a) {
  const NormOpParams& p = a.p<NormOpParams>();
  const float* x = a.in[0].ptr<float>();
  const float* mean = a.in[1].ptr<float>();
  const float* var = a.in[2].ptr<float>();
  const float* w = a.in[3].ptr<float>();
  const float* b = a.in[4].ptr<float>();
  float* y = a.out[0].ptr<float>();
  if (a.out[0].numel() == 0) return;
  const int64_t C = p.d, sc = p.d_stride;
  std::vector<float> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const float s = (w != nullptr ? w[c] : 1.0f) / std::sqrt(var[c] + p.eps);
    scale[size_t(c)] = s;
    shift[size_t(c)] = (b != nullptr ? b[c] : 0.0f) - mean[c] * s;
  }
  for_runs(p, 1, [&](int64_t off, int64_t n, int64_t s) {
    if (sc == 1) {  // channels innermost: contiguous per position
      for (int64_t i = 0; i < n; ++i) {
        const float* __restrict__ xr = x + off + i * s;
        float* __restrict__ yr = y + off + i * s;
        for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * scale[size_t(c)] + shift[size_t(c)];
      }
      return;
    }
    for (int64_t c = 0; c < C; ++c) {
      const float* __restrict__ xr = x + off + c * sc;
      float* __restrict__ yr = y + off + c * sc;
      const float m = scale[size_t(c)], t = shift[size_t(c)];
      if (s == 1)
        for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * m + t;
      else
        for (int64_t i = 0; i < n; ++i) yr[i * s] = xr[i * s] * m + t;
    }
  });
}

void fold_bn_kernel(const KernelArgs& a) {
  const FoldBnOpParams& p = a.p<FoldBnOpParams>();
  const float* w = a.in[0].ptr<float>();
  const float* bias = a.in[1].ptr<float>();
  const float* mean = a.in[2].ptr<float>();
  const float* var = a.in[3].ptr<float>();
  const float* gamma = a.in[4].ptr<float>();
  const float* beta = a.in[5].ptr<float>();
  float* wo = a.out[0].ptr<float>();
  float* bo = a.out[1].ptr<float>();
  for (int64_t o = 0; o < p.o; ++o) {
    // In double: the folded parameters are computed once and then used for every forward.
    const double s = (gamma != nullptr ? double(gamma[o]) : 1.0) / std::sqrt(double(var[o]) + double(p.eps));
    for (int64_t i = 0; i < p.per_o; ++i) wo[o * p.per_o + i] = float(double(w[o * p.per_o + i]) * s);
    bo[o] = float(((bias != nullptr ? double(bias[o]) : 0.0) - double(mean[o])) * s +
                  (beta != nullptr ? double(beta[o]) : 0.0));
  }
}

}  // namespace

SECVIT_KERNEL(layerNorm, Device::Cpu, kF32, layer_norm_kernel, nullptr, 1u);
SECVIT_KERNEL(batchNorm, Device::Cpu, kF32, batch_norm_kernel, nullptr, 1u);
SECVIT_KERNEL(foldBatchNorm, Device::Cpu, kF32, fold_bn_kernel, nullptr, 0);

}  // namespace secvit::cpu
