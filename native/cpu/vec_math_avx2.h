// AVX2/FMA math shared by the *_avx2.cpp kernels (only those files include it; they are the
// ones compiled with -mavx2 -mfma). NaN propagates through every function: clamps are written
// max(bound, x) / min(bound, x) with x second, which _mm256_{max,min}_ps return when x is NaN.
#pragma once

#include <immintrin.h>

namespace secvit::cpu::avx2 {

// e^x, relative error ~2e-7: Cody-Waite range reduction x = n ln2 + r and a degree-6
// polynomial for e^r, scaled by 2^n through the exponent field. x is clamped to
// [-87.3, 88.3] (so n stays in [-126, 127]); below -87.3 the result is exactly 0, above 88.7
// (where e^x exceeds FLT_MAX) it is +infinity, as expf gives: silu(-inf) is then
// -inf / inf = NaN, as PyTorch and the CUDA kernels compute it, not -inf.
// kNonPositive: the caller guarantees x <= 0 (a softmax exponentiating s - max), so the upper
// clamp is skipped: this runs in attention's inner loop.
template <bool kNonPositive = false>
inline __m256 exp(__m256 x) {
  const __m256 x_in = x;
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
  x = _mm256_max_ps(_mm256_set1_ps(-87.3f), x);
  if constexpr (!kNonPositive) x = _mm256_min_ps(_mm256_set1_ps(88.3f), x);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 y = _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
  if constexpr (kNonPositive) return y;
  const __m256 overflow = _mm256_cmp_ps(x_in, _mm256_set1_ps(88.72283935546875f), _CMP_GT_OQ);
  return _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), overflow);
}

// erf(x), absolute error <= 1.5e-7 (Abramowitz & Stegun 7.1.26, the form PyTorch's vectorized
// CPU GELU uses): erf(|x|) = 1 - t * poly(t) * e^{-x^2}, t = 1 / (1 + 0.3275911 |x|).
inline __m256 erf(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), ax, _mm256_set1_ps(1.0f)));
  __m256 p = _mm256_set1_ps(1.061405429f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  p = _mm256_mul_ps(p, t);
  const __m256 e = exp(_mm256_mul_ps(_mm256_mul_ps(ax, ax), _mm256_set1_ps(-1.0f)));
  const __m256 y = _mm256_fnmadd_ps(p, e, _mm256_set1_ps(1.0f));
  return _mm256_or_ps(y, sign);
}

// GELU (exact erf form): x/2 (1 + erf(x / sqrt 2)).
inline __m256 gelu(__m256 x) {
  const __m256 e = erf(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
  return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), _mm256_add_ps(e, _mm256_set1_ps(1.0f)));
}

// SiLU / swish: x sigmoid(x) = x / (1 + e^-x).
inline __m256 silu(__m256 x) {
  const __m256 e = exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(x, _mm256_add_ps(e, _mm256_set1_ps(1.0f)));
}

// Horizontal max and sum of the 8 lanes.
inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

}  // namespace secvit::cpu::avx2
