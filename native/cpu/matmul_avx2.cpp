// AVX2/FMA twin of matmul_f32_rows_scalar. This file alone is compiled with -mavx2 -mfma; it is
// only called after cpu_simd() has confirmed the CPU supports both.
#include <immintrin.h>

#include <algorithm>

#include "matmul.h"

namespace secvit::cpu {
namespace {

// C[R x 16] tile at (i, j) over the full K. R is 1..4 (the tail rows of a block).
template <int R>
inline void tile_4x16(const float* a, const float* b, float* c, int64_t k, int64_t n, int64_t i,
                      int64_t j, bool accumulate) {
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) {
    if (accumulate) {
      acc[r][0] = _mm256_loadu_ps(c + (i + r) * n + j);
      acc[r][1] = _mm256_loadu_ps(c + (i + r) * n + j + 8);
    } else {
      acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    }
  }
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* bk = b + kk * n + j;
    const __m256 b0 = _mm256_loadu_ps(bk);
    const __m256 b1 = _mm256_loadu_ps(bk + 8);
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + (i + r) * k + kk);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(c + (i + r) * n + j, acc[r][0]);
    _mm256_storeu_ps(c + (i + r) * n + j + 8, acc[r][1]);
  }
}

template <int R>
inline void rows(const float* a, const float* b, float* c, int64_t k, int64_t n, int64_t i,
                 bool accumulate) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) tile_4x16<R>(a, b, c, k, n, i, j, accumulate);
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
    case 4: rows<4>(a, b, c, p.k, p.n, row_begin, p.accumulate); break;
    case 3: rows<3>(a, b, c, p.k, p.n, row_begin, p.accumulate); break;
    case 2: rows<2>(a, b, c, p.k, p.n, row_begin, p.accumulate); break;
    case 1: rows<1>(a, b, c, p.k, p.n, row_begin, p.accumulate); break;
    default:
      for (int64_t i = row_begin; i < row_end; i += 4)
        matmul_f32_rows_avx2(p, bi, i, std::min(row_end, i + 4));
  }
}

}  // namespace secvit::cpu
