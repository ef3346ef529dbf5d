// CPU kernels of the attention ops' gradients (native/ops/attention.h): secAttentionBackward,
// windowAttentionBackward, globalAttentionBackward, on one engine (the groups of each op as in
// the forward: SEC clusters from the saved order, windows with Swin's region labels, one global
// group).
//
// Layout: q, k, v, out, dout [B, H, L, D] fp32 with any (image, head, token) strides and the head
// dim contiguous; lse [B, H, L]; dq, dk, dv written token-major like the forward's output.
// Algorithm (FlashAttention-2's backward, per (head, group), one task each so that a group's
// dK and dV have one writer): gather the group's Q, K, V, dO rows; D_i = <dO_i, O_i>; for each
// tile of up to kBwdKeys keys (K^T and V^T formed once) and each tile of up to kBwdQueries
// queries: S = Q K^T, P = exp(S - lse) (masked keys 0), dP = dO V^T, dS = P (dP - D),
// dV += P^T dO, dK += dS^T Q, dQ += dS K (the small row-major matmuls of matmul.h); finally
// the rows go back to their tokens (the members' own positions: no scatter-add).
// Cost per group of n members: 10 n^2 D flops (S, dP, dV, dK, dQ) + the exponentials; reads
// 5 n D, writes 3 n D floats.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "attention.h"
#include "core/cpu_features.h"
#include "core/op.h"
#include "core/thread_pool.h"
#include "group_attention.h"
#include "matmul.h"
#include "ops/attention.h"
#include "scratch.h"

namespace secvit::cpu {

namespace {

constexpr int64_t kBwdKeys = 128;
constexpr int64_t kBwdQueries = 128;

struct HeadGrads {
  const float *q, *k, *v, *o, *dout, *lse;
  float *dq, *dk, *dv;
  int64_t d;
  int64_t ldq, ldk, ldv, ldo, lddo, lddq, lddk, lddv;
};

struct BwdScratch {
  ScratchVec<float> rows, tiles;
};
thread_local BwdScratch t_bwd;

void transpose(const float* a, int64_t r, int64_t c, float* t) {
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) t[j * r + i] = a[i * c + j];
}

// g.bias (window attention's relative position bias): added to S as in the forward; with
// `dbias` ([bias_n, bias_n] of this head and window), dS is accumulated into it by slot.
void group_backward(const HeadGrads& t, const TokenGroup& g, bool avx2, float* dbias = nullptr) {
  const int32_t* members = g.members;
  const int64_t n = g.n;
  const int32_t* labels = g.labels;
  if (n <= 0) return;
  const int64_t d = t.d;
  const int64_t kt = std::min(n, kBwdKeys), qt = std::min(n, kBwdQueries);
  // Rows: Q, K, V, dO, dQ, dK, dV [n, d]; lse, D [n].
  float* base = t_bwd.rows.get(size_t(7 * n * d + 2 * n));
  float *q = base, *k = q + n * d, *v = k + n * d, *go = v + n * d, *dq = go + n * d, *dk = dq + n * d, *dv = dk + n * d;
  float* lse = dv + n * d;
  float* dvec = lse + n;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t tok = members[i];
    copy_row(t.q + tok * t.ldq, q + i * d, d);
    copy_row(t.k + tok * t.ldk, k + i * d, d);
    copy_row(t.v + tok * t.ldv, v + i * d, d);
    copy_row(t.dout + tok * t.lddo, go + i * d, d);
    const float* orow = t.o + tok * t.ldo;
    double acc = 0.0;
    for (int64_t c = 0; c < d; ++c) acc += double(orow[c]) * double(go[i * d + c]);
    dvec[i] = float(acc);
    lse[i] = t.lse[tok];
  }
  std::fill(dq, dq + 3 * n * d, 0.0f);
  // Tiles: K^T, V^T [d, kt]; S, dP [qt, kt]; P^T, dS^T [kt, qt].
  float* kT = t_bwd.tiles.get(size_t(2 * d * kt + 4 * qt * kt));
  float* vT = kT + d * kt;
  float* s = vT + d * kt;
  float* dp = s + qt * kt;
  float* pT = dp + qt * kt;
  float* dsT = pT + qt * kt;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t k0 = 0; k0 < n; k0 += kt) {
    const int64_t nk = std::min(kt, n - k0);
    transpose(k + k0 * d, nk, d, kT);
    transpose(v + k0 * d, nk, d, vT);
    for (int64_t q0 = 0; q0 < n; q0 += qt) {
      const int64_t nq = std::min(qt, n - q0);
      matmul_f32_serial(MatmulParams{q + q0 * d, kT, s, 1, nq, d, nk, 0, 0, 0, false});
      if (g.bias != nullptr) add_group_bias(g, s, q0, nq, k0, nk);
      if (labels != nullptr)
        for (int64_t i = 0; i < nq; ++i)
          for (int64_t j = 0; j < nk; ++j)
            if (labels[q0 + i] != labels[k0 + j]) s[i * nk + j] = kNegInf;
      matmul_f32_serial(MatmulParams{go + q0 * d, vT, dp, 1, nq, d, nk, 0, 0, 0, false});
      if (avx2) attention_backward_probs_avx2(s, dp, nq, nk, lse + q0, dvec + q0);
      else attention_backward_probs_scalar(s, dp, nq, nk, lse + q0, dvec + q0);
      if (dbias != nullptr) add_group_bias_grad(g, dbias, dp, q0, nq, k0, nk);
      transpose(s, nq, nk, pT);
      transpose(dp, nq, nk, dsT);
      matmul_f32_serial(MatmulParams{pT, go + q0 * d, dv + k0 * d, 1, nk, nq, d, 0, 0, 0, true});
      matmul_f32_serial(MatmulParams{dsT, q + q0 * d, dk + k0 * d, 1, nk, nq, d, 0, 0, 0, true});
      matmul_f32_serial(MatmulParams{dp, k + k0 * d, dq + q0 * d, 1, nq, nk, d, 0, 0, 0, true});
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t tok = members[i];
    copy_row(dq + i * d, t.dq + tok * t.lddq, d);
    copy_row(dk + i * d, t.dk + tok * t.lddk, d);
    copy_row(dv + i * d, t.dv + tok * t.lddv, d);
  }
}

struct Bwd {
  const KernelArgs& a;
  const AttentionOpParams& p;
  HeadGrads head(int64_t bh) const {
    const int64_t b = bh / p.h, h = bh % p.h;
    auto at = [&](const TensorArg& x) { return x.ptr<float>() + b * x.strides[0] + h * x.strides[1]; };
    return HeadGrads{at(a.in[0]), at(a.in[1]), at(a.in[2]), at(a.in[3]), at(a.in[4]), a.in[5].ptr<float>() + bh * p.l,
                     const_cast<float*>(at(a.out[0])), const_cast<float*>(at(a.out[1])), const_cast<float*>(at(a.out[2])),
                     p.d, a.in[0].strides[2], a.in[1].strides[2], a.in[2].strides[2], a.in[3].strides[2],
                     a.in[4].strides[2], a.out[0].strides[2], a.out[1].strides[2], a.out[2].strides[2]};
  }
  // Runs every (head, group): group_of(bh, g) -> (members, n, labels).
  template <class GroupOf>
  void run(int64_t groups, GroupOf group_of) const {
    const bool avx2 = cpu_simd() == CpuSimd::Avx2Fma;
    ThreadPool::instance().parallel_for(p.b * p.h * groups, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t bh = t / groups, g = t % groups;
        const TokenGroup tg = group_of(bh, g);
        group_backward(head(bh), tg, avx2);
      }
    });
  }
};

void sec_backward_kernel(const KernelArgs& a) {
  const AttentionOpParams& p = a.p<AttentionOpParams>();
  if (p.b * p.h * p.l == 0) return;
  const int32_t* order = a.in[6].ptr<int32_t>();
  const int64_t clusters = std::max<int64_t>(p.clusters, 1);
  Bwd{a, p}.run(clusters, [&](int64_t bh, int64_t c) {
    const int64_t s0 = c * p.l / clusters, s1 = (c + 1) * p.l / clusters;
    return TokenGroup{order + bh * p.l + s0, s1 - s0, nullptr, 0, 0};
  });
}

void global_backward_kernel(const KernelArgs& a) {
  const AttentionOpParams& p = a.p<AttentionOpParams>();
  if (p.b * p.h * p.l == 0) return;
  std::vector<int32_t> ids(static_cast<size_t>(p.l));
  std::iota(ids.begin(), ids.end(), 0);
  Bwd{a, p}.run(1, [&](int64_t, int64_t) { return TokenGroup{ids.data(), p.l, nullptr, 0, 0}; });
}

void window_backward_kernel(const KernelArgs& a) {
  const AttentionOpParams& p = a.p<AttentionOpParams>();
  if (p.b * p.h * p.l == 0) return;
  const WindowGroups w = window_groups(WindowParams{p.height, p.width, p.win_h, p.win_w, p.shift_h, p.shift_w});
  if (!p.has_bias) {
    Bwd{a, p}.run(w.windows, [&](int64_t, int64_t win) { return w.group(win); });
    return;
  }
  // With the relative position bias, dbias[h] sums dS over images and windows. One task per
  // (head, window) walks the images, accumulating into its own [N, N] partial (no two tasks
  // share one); the partials are then summed per head, in double.
  const float* bias = a.in[6].ptr<float>();
  float* dbias = a.out[3].ptr<float>();
  const int64_t nn = w.wsize * w.wsize, tasks = p.h * w.windows;
  std::vector<float> partial(size_t(tasks * nn), 0.0f);
  const Bwd bwd{a, p};
  const bool avx2 = cpu_simd() == CpuSimd::Avx2Fma;
  ThreadPool::instance().parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t h = t / w.windows, win = t % w.windows;
      const TokenGroup tg = w.group(win, bias + h * nn);
      for (int64_t b = 0; b < p.b; ++b) group_backward(bwd.head(b * p.h + h), tg, avx2, partial.data() + t * nn);
    }
  });
  ThreadPool::instance().parallel_for(p.h * nn, 256, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t h = e / nn, ij = e % nn;
      double acc = 0.0;
      for (int64_t win = 0; win < w.windows; ++win) acc += partial[size_t((h * w.windows + win) * nn + ij)];
      dbias[e] = float(acc);
    }
  });
}

}  // namespace

// q, k, v, out, dout through their strides (head dim contiguous).
SECVIT_KERNEL(secAttentionBackward, Device::Cpu, kF32, sec_backward_kernel, nullptr, 0x1F);
SECVIT_KERNEL(windowAttentionBackward, Device::Cpu, kF32, window_backward_kernel, nullptr, 0x1F);
SECVIT_KERNEL(globalAttentionBackward, Device::Cpu, kF32, global_backward_kernel, nullptr, 0x1F);

}  // namespace secvit::cpu
