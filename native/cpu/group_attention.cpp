#include "group_attention.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>
#include <vector>

#include "../core/cpu_features.h"
#include "matmul.h"
#include "scratch.h"

namespace secvit::cpu {
namespace {

// Per-thread buffers, grown once and reused: no heap allocation per call in steady state.
struct Scratch {
  ScratchVec<float> q, kt, v, s, o, m, l, alpha;
};
thread_local Scratch t_scratch;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Prefetches every 64-byte line of a row (a D = 32 row spans two).
inline void prefetch_row(const float* row, int64_t d) {
  for (int64_t c = 0; c < d; c += 16) __builtin_prefetch(row + c);
}

}  // namespace

void softmax_tile_scalar(float* s, int64_t nq, int64_t nk, float* m, float* l, float* alpha) {
  for (int64_t i = 0; i < nq; ++i) {
    float* row = s + i * nk;
    float mx = m[i];
    for (int64_t j = 0; j < nk; ++j) mx = std::max(mx, row[j]);
    if (mx == kNegInf) {  // every key so far masked: nothing to add, nothing to rescale
      std::fill(row, row + nk, 0.0f);
      alpha[i] = 1.0f;
      continue;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < nk; ++j) {
      row[j] = std::exp(row[j] - mx);
      sum += row[j];
    }
    alpha[i] = std::exp(m[i] - mx);
    l[i] = l[i] * alpha[i] + sum;
    m[i] = mx;
  }
}

void attention_backward_probs_scalar(float* s, float* dp, int64_t nq, int64_t nk, const float* lse, const float* dvec) {
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t j = 0; j < nk; ++j) {
      const float p = std::exp(s[i * nk + j] - lse[i]);
      s[i * nk + j] = p;
      dp[i * nk + j] = p * (dp[i * nk + j] - dvec[i]);
    }
}

void key_sum_scalar(const float* k, int64_t l, int64_t d, int64_t ld, double* g) {
  std::fill(g, g + d, 0.0);
  for (int64_t i = 0; i < l; ++i)
    for (int64_t c = 0; c < d; ++c) g[c] += k[i * ld + c];
}

void cosine_scores_scalar(const float* k, int64_t l, int64_t d, int64_t ld, const double* g, double gn, double* out,
                          const RowPrefetch& pf) {
  for (int64_t i = 0; i < l; ++i) {
    for (int64_t c = 0; c < d; c += 16) {
      if (pf.a != nullptr) __builtin_prefetch(pf.a + i * pf.lda + c, 0, 2);
      if (pf.b != nullptr) __builtin_prefetch(pf.b + i * pf.ldb + c, 0, 2);
    }
    double dot = 0.0, kn = 0.0;
    for (int64_t c = 0; c < d; ++c) {
      const double kv = k[i * ld + c];
      dot += g[c] * kv;
      kn += kv * kv;
    }
    out[i] = dot / (gn * std::max(std::sqrt(kn), 1e-12));
  }
}

#if !defined(SECVIT_HAVE_AVX2_KERNELS)
void key_sum_avx2(const float* k, int64_t l, int64_t d, int64_t ld, double* g) { key_sum_scalar(k, l, d, ld, g); }
void cosine_scores_avx2(const float* k, int64_t l, int64_t d, int64_t ld, const double* g, double gn, double* out,
                        const RowPrefetch& pf) {
  cosine_scores_scalar(k, l, d, ld, g, gn, out, pf);
}
void softmax_tile_avx2(float* s, int64_t nq, int64_t nk, float* m, float* l, float* alpha) {
  softmax_tile_scalar(s, nq, nk, m, l, alpha);
}
void attention_backward_probs_avx2(float* s, float* dp, int64_t nq, int64_t nk, const float* lse, const float* dvec) {
  attention_backward_probs_scalar(s, dp, nq, nk, lse, dvec);
}
#endif

void attend_group(const HeadTensors& t, const TokenGroup& g) {
  const int64_t d = t.d;
  const int64_t nq = g.q_end - g.q_begin;
  if (nq <= 0 || g.n <= 0) return;
  const bool avx2 = cpu_simd() == CpuSimd::Avx2Fma;
  Scratch& sc = t_scratch;
  const int64_t tile = std::min(g.n, kKeyTile);
  // TokenGroup::rows: q and v already gathered (row stride d), read in place; else gathered here.
  const bool in_place = g.rows >= 0;
  float* q = in_place ? nullptr : sc.q.get(size_t(nq * d));
  float* kt = sc.kt.get(size_t(d * tile));
  float* v = in_place ? nullptr : sc.v.get(size_t(tile * d));
  float* s = sc.s.get(size_t(nq * tile));
  float* o = sc.o.get(size_t(nq * d));
  float* m = sc.m.get(size_t(nq));
  float* l = sc.l.get(size_t(nq));
  float* alpha = sc.alpha.get(size_t(nq));

  // Members are scattered over the head (SEC's order is a permutation): prefetch rows a few
  // members ahead so the gathers overlap their cache misses.
  constexpr int64_t kAhead = 12;
  const float* qa = in_place ? t.q + (g.rows + g.q_begin) * t.ldq : q;
  for (int64_t i = 0; i < nq; ++i) {
    if (!in_place) {
      if (i + kAhead < nq) prefetch_row(t.q + int64_t(g.members[g.q_begin + i + kAhead]) * t.ldq, d);
      copy_row(t.q + int64_t(g.members[g.q_begin + i]) * t.ldq, q + i * d, d);
    }
    m[i] = kNegInf;
    l[i] = 0.0f;
  }
  std::fill(o, o + nq * d, 0.0f);

  for (int64_t k0 = 0; k0 < g.n; k0 += tile) {
    const int64_t nk = std::min(tile, g.n - k0);
    for (int64_t j = 0; j < nk; ++j) {
      if (j + kAhead < nk) {
        const int64_t ahead = g.members[k0 + j + kAhead];
        prefetch_row(t.k + ahead * t.ldk, d);
        if (!in_place) prefetch_row(t.v + ahead * t.ldv, d);
      }
      const int64_t tok = g.members[k0 + j];
      const float* ks = t.k + tok * t.ldk;
      for (int64_t c = 0; c < d; ++c) kt[c * nk + j] = ks[c];
      if (!in_place) copy_row(t.v + tok * t.ldv, v + j * d, d);
    }
    // S = Q K^T
    matmul_f32_serial(MatmulParams{qa, kt, s, 1, nq, d, nk, 0, 0, 0, false});
    if (g.bias != nullptr) add_group_bias(g, s, g.q_begin, nq, k0, nk);
    if (g.labels != nullptr) {
      for (int64_t i = 0; i < nq; ++i) {
        const int32_t li = g.labels[g.q_begin + i];
        for (int64_t j = 0; j < nk; ++j)
          if (g.labels[k0 + j] != li) s[i * nk + j] = kNegInf;
      }
    }
    if (avx2) softmax_tile_avx2(s, nq, nk, m, l, alpha);
    else softmax_tile_scalar(s, nq, nk, m, l, alpha);
    if (k0 > 0) {
      for (int64_t i = 0; i < nq; ++i) {
        const float a = alpha[i];
        if (a != 1.0f) for (int64_t c = 0; c < d; ++c) o[i * d + c] *= a;
      }
    }
    // O += P V
    const float* va = in_place ? t.v + (g.rows + k0) * t.ldv : v;
    matmul_f32_serial(MatmulParams{s, va, o, 1, nq, nk, d, 0, 0, 0, true});
  }

  for (int64_t i = 0; i < nq; ++i) {
    const int64_t tok = g.members[g.q_begin + i];
    float* dst = t.out + tok * t.ldo;
    const float inv = 1.0f / l[i];
    for (int64_t c = 0; c < d; ++c) dst[c] = o[i * d + c] * inv;
    if (t.lse != nullptr) t.lse[tok] = m[i] + std::log(l[i]);
  }
}

}  // namespace secvit::cpu
