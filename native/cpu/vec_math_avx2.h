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

// erf(x), absolute error <= 7.5e-8 (better than Abramowitz & Stegun 7.1.26's 1.5e-7, which
// this replaced), with no division and no exp: |x| in [0, 4) is cut into 8 intervals of width
// 1/2, and on interval i erf is a degree-6 polynomial in t = 2|x| - (i + 1/2), t in [-1/2, 1/2)
// (Chebyshev interpolants in double, converted to powers of t and rounded to float: made by
// scripts/erf_coefficients.py). The 8 coefficients of a power are one register, picked per lane
// with a permute. Beyond 4 erf is 1 to within 1.5e-8 (the last interval's value at 4 - ulp).
// NaN stays NaN (the clamp keeps it, its lane's index is arbitrary and the polynomial gives NaN;
// the saturation compare is false for it).
inline __m256 erf(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 ax = _mm256_min_ps(_mm256_set1_ps(3.99999976f), _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x));
  const __m256 a2 = _mm256_add_ps(ax, ax);
  const __m256i i = _mm256_cvttps_epi32(a2);
  const __m256 t = _mm256_sub_ps(a2, _mm256_add_ps(_mm256_cvtepi32_ps(i), _mm256_set1_ps(0.5f)));
  const auto c = [&](__m256 table) { return _mm256_permutevar8x32_ps(table, i); };
  __m256 p = c(_mm256_setr_ps(-6.169974804e-04f, -4.159253731e-04f, 3.232005984e-04f, 1.412367419e-04f, -4.367419751e-05f, -2.604052679e-05f, -4.257460660e-06f, -3.205021528e-07f));
  p = _mm256_fmadd_ps(p, t, c(_mm256_setr_ps(2.447098494e-03f, -1.601872500e-03f, -1.461785403e-03f, 1.865413215e-04f, 3.306634317e-04f, 8.830785373e-05f, 1.039405470e-05f, 6.313668450e-07f)));
  p = _mm256_fmadd_ps(p, t, c(_mm256_setr_ps(7.934272289e-03f, 9.417439811e-03f, -3.837627301e-04f, -3.006534651e-03f, -1.192924683e-03f, -2.036142832e-04f, -1.789309499e-05f, -8.626437875e-07f)));
  p = _mm256_fmadd_ps(p, t, c(_mm256_setr_ps(-3.863955289e-02f, 3.340893192e-03f, 2.094038762e-02f, 1.127221063e-02f, 2.715871437e-03f, 3.447757044e-04f, 2.440247044e-05f, 9.889807870e-07f)));
  p = _mm256_fmadd_ps(p, t, c(_mm256_setr_ps(-6.625081599e-02f, -1.205495596e-01f, -7.391288877e-02f, -2.308905683e-02f, -4.017547704e-03f, -4.030661657e-04f, -2.371662958e-05f, -8.264188409e-07f)));
  p = _mm256_fmadd_ps(p, t, c(_mm256_setr_ps(5.300068259e-01f, 3.214657605e-01f, 1.182606146e-01f, 2.638741769e-02f, 3.571150126e-03f, 2.931471390e-04f, 1.459681971e-05f, 4.409424150e-07f)));
  p = _mm256_fmadd_ps(p, t, c(_mm256_setr_ps(2.763263881e-01f, 7.111556530e-01f, 9.229001403e-01f, 9.866716862e-01f, 9.985373020e-01f, 9.998993874e-01f, 9.999957085e-01f, 9.999998808e-01f)));
  // Clamped lanes (|x| >= 4 - ulp, infinities) are exactly 1, as erf rounds there: so that
  // GELU's 1 + erf(-inf) is 0 (GELU(-inf) = -inf * 0 = NaN, the definition's value).
  p = _mm256_blendv_ps(p, _mm256_set1_ps(1.0f), _mm256_cmp_ps(ax, _mm256_set1_ps(3.99999976f), _CMP_GE_OQ));
  return _mm256_or_ps(p, sign);
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

// d gelu / dx = Phi(x) + x phi(x) = (1 + erf(x / sqrt 2)) / 2 + x e^(-x^2/2) / sqrt(2 pi).
inline __m256 gelu_grad(__m256 x) {
  const __m256 e = erf(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
  const __m256 cdf = _mm256_mul_ps(_mm256_add_ps(e, _mm256_set1_ps(1.0f)), _mm256_set1_ps(0.5f));
  const __m256 pdf = _mm256_mul_ps(exp(_mm256_mul_ps(_mm256_mul_ps(x, x), _mm256_set1_ps(-0.5f))),
                                   _mm256_set1_ps(0.39894228040143268f));
  return _mm256_fmadd_ps(x, pdf, cdf);
}

// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x) = 1 / (1 + e^-x).
inline __m256 silu_grad(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 s = _mm256_div_ps(one, _mm256_add_ps(exp(_mm256_sub_ps(_mm256_setzero_ps(), x)), one));
  return _mm256_mul_ps(s, _mm256_fmadd_ps(x, _mm256_sub_ps(one, s), one));
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
