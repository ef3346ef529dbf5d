// AVX2/FMA online-softmax step (see group_attention.h). Compiled with -mavx2 -mfma; called only
// after the run-time CPU check.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "group_attention.h"
#include "vec_math_avx2.h"

namespace secvit::cpu {

using avx2::hmax;
using avx2::hsum;

// 16 columns at a time in four double accumulators (one pass over the rows per block of 16),
// the remaining columns scalar.
void key_sum_avx2(const float* k, int64_t l, int64_t d, int64_t ld, double* g) {
  int64_t c0 = 0;
  for (; c0 + 16 <= d; c0 += 16) {
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < l; ++i) {
      const float* row = k + i * ld + c0;
      a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(row)));
      a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(row + 4)));
      a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm_loadu_ps(row + 8)));
      a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm_loadu_ps(row + 12)));
    }
    _mm256_storeu_pd(g + c0, a0);
    _mm256_storeu_pd(g + c0 + 4, a1);
    _mm256_storeu_pd(g + c0 + 8, a2);
    _mm256_storeu_pd(g + c0 + 12, a3);
  }
  for (int64_t c = c0; c < d; ++c) g[c] = 0.0;
  if (c0 < d)
    for (int64_t i = 0; i < l; ++i)
      for (int64_t c = c0; c < d; ++c) g[c] += k[i * ld + c];
}

void cosine_scores_avx2(const float* k, int64_t l, int64_t d, int64_t ld, const double* g, double gn, double* out,
                        const RowPrefetch& pf) {
  for (int64_t i = 0; i < l; ++i) {
    const float* row = k + i * ld;
    for (int64_t c = 0; c < d; c += 16) {
      if (pf.a != nullptr) _mm_prefetch(reinterpret_cast<const char*>(pf.a + i * pf.lda + c), _MM_HINT_T1);
      if (pf.b != nullptr) _mm_prefetch(reinterpret_cast<const char*>(pf.b + i * pf.ldb + c), _MM_HINT_T1);
    }
    __m256d dot = _mm256_setzero_pd(), kn = _mm256_setzero_pd();
    int64_t c = 0;
    for (; c + 4 <= d; c += 4) {
      const __m256d kv = _mm256_cvtps_pd(_mm_loadu_ps(row + c));
      dot = _mm256_fmadd_pd(_mm256_loadu_pd(g + c), kv, dot);
      kn = _mm256_fmadd_pd(kv, kv, kn);
    }
    __m128d d2 = _mm_add_pd(_mm256_castpd256_pd128(dot), _mm256_extractf128_pd(dot, 1));
    __m128d n2 = _mm_add_pd(_mm256_castpd256_pd128(kn), _mm256_extractf128_pd(kn, 1));
    double sd = _mm_cvtsd_f64(_mm_add_sd(d2, _mm_unpackhi_pd(d2, d2)));
    double sn = _mm_cvtsd_f64(_mm_add_sd(n2, _mm_unpackhi_pd(n2, n2)));
    for (; c < d; ++c) {
      const double kv = row[c];
      sd += g[c] * kv;
      sn += kv * kv;
    }
    out[i] = sd / (gn * std::max(std::sqrt(sn), 1e-12));
  }
}

void softmax_tile_avx2(float* s, int64_t nq, int64_t nk, float* m, float* l, float* alpha) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < nq; ++i) {
    float* row = s + i * nk;
    __m256 vmax = _mm256_set1_ps(m[i]);
    int64_t j = 0;
    for (; j + 8 <= nk; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + j));
    float mx = hmax(vmax);
    for (; j < nk; ++j) mx = std::max(mx, row[j]);
    if (mx == kNegInf) {
      std::fill(row, row + nk, 0.0f);
      alpha[i] = 1.0f;
      continue;
    }
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 vsum = _mm256_setzero_ps();
    j = 0;
    for (; j + 8 <= nk; j += 8) {
      const __m256 e = avx2::exp<true>(_mm256_sub_ps(_mm256_loadu_ps(row + j), vm));
      _mm256_storeu_ps(row + j, e);
      vsum = _mm256_add_ps(vsum, e);
    }
    float sum = hsum(vsum);
    for (; j < nk; ++j) {
      row[j] = std::exp(row[j] - mx);
      sum += row[j];
    }
    alpha[i] = std::exp(m[i] - mx);
    l[i] = l[i] * alpha[i] + sum;
    m[i] = mx;
  }
}

void attention_backward_probs_avx2(float* s, float* dp, int64_t nq, int64_t nk, const float* lse, const float* dvec) {
  for (int64_t i = 0; i < nq; ++i) {
    float* srow = s + i * nk;
    float* drow = dp + i * nk;
    const __m256 l = _mm256_set1_ps(lse[i]), dv = _mm256_set1_ps(dvec[i]);
    int64_t j = 0;
    for (; j + 8 <= nk; j += 8) {
      const __m256 p = avx2::exp(_mm256_sub_ps(_mm256_loadu_ps(srow + j), l));
      _mm256_storeu_ps(srow + j, p);
      _mm256_storeu_ps(drow + j, _mm256_mul_ps(p, _mm256_sub_ps(_mm256_loadu_ps(drow + j), dv)));
    }
    for (; j < nk; ++j) {
      const float p = std::exp(srow[j] - lse[i]);
      srow[j] = p;
      drow[j] = p * (drow[j] - dvec[i]);
    }
  }
}

}  // namespace secvit::cpu
