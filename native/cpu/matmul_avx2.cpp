// AVX2/FMA twin of matmul_f32_rows_scalar. This file alone is compiled with -mavx2 -mfma; it is
// only called after cpu_simd() has confirmed the CPU supports both.
#include <immintrin.h>

#include <algorithm>

#include "matmul.h"

namespace secvit::cpu {
namespace {

// C[R x 16] tile at (i, j) over the full K. R is 1..6 (6 in steady state, fewer for the tail
// rows of a block). The accumulators are named variables, not an array: GCC keeps a 12-entry
// __m256 array on the stack (a load and store per FMA), named ones stay in registers
// (12 accumulators + 2 for B + 1 broadcast = 15 of the 16 ymm registers).
template <int R>
inline void tile_rx16(const float* a, const float* b, float* c, int64_t k, int64_t n, int64_t i,
                      int64_t j, bool accumulate) {
  static_assert(R >= 1 && R <= 6, "tile rows");
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
  float* ct = c + i * n + j;
  if (accumulate) {
    c00 = _mm256_loadu_ps(ct);
    c01 = _mm256_loadu_ps(ct + 8);
    if constexpr (R > 1) { c10 = _mm256_loadu_ps(ct + n); c11 = _mm256_loadu_ps(ct + n + 8); }
    if constexpr (R > 2) { c20 = _mm256_loadu_ps(ct + 2 * n); c21 = _mm256_loadu_ps(ct + 2 * n + 8); }
    if constexpr (R > 3) { c30 = _mm256_loadu_ps(ct + 3 * n); c31 = _mm256_loadu_ps(ct + 3 * n + 8); }
    if constexpr (R > 4) { c40 = _mm256_loadu_ps(ct + 4 * n); c41 = _mm256_loadu_ps(ct + 4 * n + 8); }
    if constexpr (R > 5) { c50 = _mm256_loadu_ps(ct + 5 * n); c51 = _mm256_loadu_ps(ct + 5 * n + 8); }
  }
  const float* ar = a + i * k;
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* bk = b + kk * n + j;
    const __m256 b0 = _mm256_loadu_ps(bk);
    const __m256 b1 = _mm256_loadu_ps(bk + 8);
    __m256 av = _mm256_broadcast_ss(ar + kk);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    if constexpr (R > 1) {
      av = _mm256_broadcast_ss(ar + k + kk);
      c10 = _mm256_fmadd_ps(av, b0, c10);
      c11 = _mm256_fmadd_ps(av, b1, c11);
    }
    if constexpr (R > 2) {
      av = _mm256_broadcast_ss(ar + 2 * k + kk);
      c20 = _mm256_fmadd_ps(av, b0, c20);
      c21 = _mm256_fmadd_ps(av, b1, c21);
    }
    if constexpr (R > 3) {
      av = _mm256_broadcast_ss(ar + 3 * k + kk);
      c30 = _mm256_fmadd_ps(av, b0, c30);
      c31 = _mm256_fmadd_ps(av, b1, c31);
    }
    if constexpr (R > 4) {
      av = _mm256_broadcast_ss(ar + 4 * k + kk);
      c40 = _mm256_fmadd_ps(av, b0, c40);
      c41 = _mm256_fmadd_ps(av, b1, c41);
    }
    if constexpr (R > 5) {
      av = _mm256_broadcast_ss(ar + 5 * k + kk);
      c50 = _mm256_fmadd_ps(av, b0, c50);
      c51 = _mm256_fmadd_ps(av, b1, c51);
    }
  }
  _mm256_storeu_ps(ct, c00);
  _mm256_storeu_ps(ct + 8, c01);
  if constexpr (R > 1) { _mm256_storeu_ps(ct + n, c10); _mm256_storeu_ps(ct + n + 8, c11); }
  if constexpr (R > 2) { _mm256_storeu_ps(ct + 2 * n, c20); _mm256_storeu_ps(ct + 2 * n + 8, c21); }
  if constexpr (R > 3) { _mm256_storeu_ps(ct + 3 * n, c30); _mm256_storeu_ps(ct + 3 * n + 8, c31); }
  if constexpr (R > 4) { _mm256_storeu_ps(ct + 4 * n, c40); _mm256_storeu_ps(ct + 4 * n + 8, c41); }
  if constexpr (R > 5) { _mm256_storeu_ps(ct + 5 * n, c50); _mm256_storeu_ps(ct + 5 * n + 8, c51); }
}

template <int R>
inline void rows(const float* a, const float* b, float* c, int64_t k, int64_t n, int64_t i,
                 bool accumulate) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) tile_rx16<R>(a, b, c, k, n, i, j, accumulate);
  if (j == n) return;
  // Column tail (< 16 wide): scalar FMA chains, still one pass over K.
  for (int r = 0; r < R; ++r) {
    float* ci = c + (i + r) * n;
    if (!accumulate) std::fill(ci + j, ci + n, 0.0f);
    for (int64_t kk = 0; kk < k; ++kk) {
      const float av = a[(i + r) * k + kk];
      const float* bk = b + kk * n;
      for (int64_t jj = j; jj < n; ++jj) ci[jj] += av * bk[jj];
    }
  }
}

}  // namespace

void matmul_f32_rows_avx2(const MatmulParams& p, int64_t bi, int64_t row_begin,
                          int64_t row_end) {
  const float* a = p.a + bi * p.stride_a;
  const float* b = p.b + bi * p.stride_b;
  float* c = p.c + bi * p.stride_c;
  switch (row_end - row_begin) {
    case 6: rows<6>(a, b, c, p.k, p.n, row_begin, p.accumulate); break;
    case 5: rows<5>(a, b, c, p.k, p.n, row_begin, p.accumulate); break;
    case 4: rows<4>(a, b, c, p.k, p.n, row_begin, p.accumulate); break;
    case 3: rows<3>(a, b, c, p.k, p.n, row_begin, p.accumulate); break;
    case 2: rows<2>(a, b, c, p.k, p.n, row_begin, p.accumulate); break;
    case 1: rows<1>(a, b, c, p.k, p.n, row_begin, p.accumulate); break;
    default:
      for (int64_t i = row_begin; i < row_end; i += kMatmulRows)
        matmul_f32_rows_avx2(p, bi, i, std::min(row_end, i + kMatmulRows));
  }
}

}  // namespace secvit::cpu
