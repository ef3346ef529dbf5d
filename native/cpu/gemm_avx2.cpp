// AVX2/FMA pieces of the GEMM (gemm.h): the 6 x 16 micro-kernel and the activations of the
// epilogue. Compiled with -mavx2 -mfma; called only after the run-time CPU check.
#include <immintrin.h>

#include "gemm.h"
#include "vec_math_avx2.h"

namespace secvit::cpu {

namespace {

// A from 6 rows (k contiguous).
struct RowsA {
  const float* const* rows;
  const float* at(int64_t k, int r) const { return rows[r] + k; }
};

// A as a k-major panel: the 6 rows' values at k are adjacent.
struct PanelA {
  const float* p;
  const float* at(int64_t k, int r) const { return p + k * 6 + r; }
};

// v = (a0, b0, a1, b1, ...) rotated pair by pair: (a c - b s, b c + a s), where t holds the
// pairs' (c, s) interleaved: one fmaddsub with the pairs swapped.
inline __m256 rotate_pairs(__m256 v, __m256 t) {
  const __m256 swapped = _mm256_permute_ps(v, 0xB1);
  return _mm256_fmaddsub_ps(v, _mm256_moveldup_ps(t), _mm256_mul_ps(swapped, _mm256_movehdup_ps(t)));
}

template <typename A>
inline void micro(int64_t kc, A a_src, const float* bp, float* const* c, bool first, const TileEpilogue* epi) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#define SV_GEMM_STEP(K)                                                        \
  {                                                                            \
    const float* B = bp + (K) * 16;                                            \
    const __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8);         \
    __m256 a = _mm256_broadcast_ss(a_src.at(K, 0));                            \
    c00 = _mm256_fmadd_ps(a, b0, c00);                                         \
    c01 = _mm256_fmadd_ps(a, b1, c01);                                         \
    a = _mm256_broadcast_ss(a_src.at(K, 1));                                   \
    c10 = _mm256_fmadd_ps(a, b0, c10);                                         \
    c11 = _mm256_fmadd_ps(a, b1, c11);                                         \
    a = _mm256_broadcast_ss(a_src.at(K, 2));                                   \
    c20 = _mm256_fmadd_ps(a, b0, c20);                                         \
    c21 = _mm256_fmadd_ps(a, b1, c21);                                         \
    a = _mm256_broadcast_ss(a_src.at(K, 3));                                   \
    c30 = _mm256_fmadd_ps(a, b0, c30);                                         \
    c31 = _mm256_fmadd_ps(a, b1, c31);                                         \
    a = _mm256_broadcast_ss(a_src.at(K, 4));                                   \
    c40 = _mm256_fmadd_ps(a, b0, c40);                                         \
    c41 = _mm256_fmadd_ps(a, b1, c41);                                         \
    a = _mm256_broadcast_ss(a_src.at(K, 5));                                   \
    c50 = _mm256_fmadd_ps(a, b0, c50);                                         \
    c51 = _mm256_fmadd_ps(a, b1, c51);                                         \
  }
  int64_t k = 0;
  for (; k + 2 <= kc; k += 2) {
    SV_GEMM_STEP(k);
    SV_GEMM_STEP(k + 1);
  }
  if (k < kc) SV_GEMM_STEP(k);
#undef SV_GEMM_STEP
  if (epi != nullptr) {
    const __m256 bias0 = epi->bias != nullptr ? _mm256_loadu_ps(epi->bias) : _mm256_setzero_ps();
    const __m256 bias1 = epi->bias != nullptr ? _mm256_loadu_ps(epi->bias + 8) : _mm256_setzero_ps();
    const __m256 sc0 = epi->scale != nullptr ? _mm256_loadu_ps(epi->scale) : _mm256_set1_ps(1.0f);
    const __m256 sc1 = epi->scale != nullptr ? _mm256_loadu_ps(epi->scale + 8) : _mm256_set1_ps(1.0f);
    auto finish = [&](int r, __m256 lo, __m256 hi) {
      if (!first) {
        lo = _mm256_add_ps(_mm256_loadu_ps(c[r]), lo);
        hi = _mm256_add_ps(_mm256_loadu_ps(c[r] + 8), hi);
      }
      if (epi->col_scale != nullptr) {
        lo = _mm256_mul_ps(lo, _mm256_loadu_ps(epi->col_scale));
        hi = _mm256_mul_ps(hi, _mm256_loadu_ps(epi->col_scale + 8));
      }
      lo = _mm256_add_ps(lo, bias0);
      hi = _mm256_add_ps(hi, bias1);
      if (epi->pre[r] != nullptr) {
        _mm256_storeu_ps(epi->pre[r], lo);
        _mm256_storeu_ps(epi->pre[r] + 8, hi);
      }
      if (epi->act == Act::Gelu) {
        lo = avx2::gelu(lo);
        hi = avx2::gelu(hi);
      } else if (epi->act == Act::Silu) {
        lo = avx2::silu(lo);
        hi = avx2::silu(hi);
      }
      if (epi->rope[r] != nullptr) {
        lo = rotate_pairs(lo, _mm256_loadu_ps(epi->rope[r]));
        hi = rotate_pairs(hi, _mm256_loadu_ps(epi->rope[r] + 8));
        if (epi->rope_scale != 1.0f) {
          lo = _mm256_mul_ps(lo, _mm256_set1_ps(epi->rope_scale));
          hi = _mm256_mul_ps(hi, _mm256_set1_ps(epi->rope_scale));
        }
      }
      if (epi->scale != nullptr) {
        lo = _mm256_mul_ps(lo, sc0);
        hi = _mm256_mul_ps(hi, sc1);
      }
      if (epi->res[r] != nullptr) {
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(epi->res[r]));
        hi = _mm256_add_ps(hi, _mm256_loadu_ps(epi->res[r] + 8));
      }
      _mm256_storeu_ps(c[r], lo);
      _mm256_storeu_ps(c[r] + 8, hi);
    };
    finish(0, c00, c01);
    finish(1, c10, c11);
    finish(2, c20, c21);
    finish(3, c30, c31);
    finish(4, c40, c41);
    finish(5, c50, c51);
    return;
  }
#define SV_GEMM_OUT(R, LO, HI)                                                         \
  if (first) {                                                                         \
    _mm256_storeu_ps(c[R], LO);                                                        \
    _mm256_storeu_ps(c[R] + 8, HI);                                                    \
  } else {                                                                             \
    _mm256_storeu_ps(c[R], _mm256_add_ps(_mm256_loadu_ps(c[R]), LO));                  \
    _mm256_storeu_ps(c[R] + 8, _mm256_add_ps(_mm256_loadu_ps(c[R] + 8), HI));          \
  }
  SV_GEMM_OUT(0, c00, c01)
  SV_GEMM_OUT(1, c10, c11)
  SV_GEMM_OUT(2, c20, c21)
  SV_GEMM_OUT(3, c30, c31)
  SV_GEMM_OUT(4, c40, c41)
  SV_GEMM_OUT(5, c50, c51)
#undef SV_GEMM_OUT
}

}  // namespace

// 12 named accumulators (an array would live on the stack under GCC), 2 registers of B, 1
// broadcast of A: 15 of the 16 ymm registers. The k loop is unrolled by 2 so the loads of the
// next step overlap the FMAs of this one.
void gemm_micro_rows_avx2(int64_t kc, const float* const* a, const float* bp, float* const* c, bool first,
                          const TileEpilogue* epi) {
  micro(kc, RowsA{a}, bp, c, first, epi);
}

void gemm_micro_panel_avx2(int64_t kc, const float* a, const float* bp, float* const* c, bool first) {
  micro(kc, PanelA{a}, bp, c, first, nullptr);
}

void gemm_pack_b_nk16_avx2(const float* b, int64_t ldb, int64_t kc, float* dst) {
  int64_t kk = 0;
  for (; kk + 8 <= kc; kk += 8) {
    for (int h = 0; h < 2; ++h) {  // weight rows 8h .. 8h + 7 -> columns 8h .. 8h + 7 of the panel
      const float* s = b + 8 * h * ldb + kk;
      __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ldb);
      __m256 r2 = _mm256_loadu_ps(s + 2 * ldb), r3 = _mm256_loadu_ps(s + 3 * ldb);
      __m256 r4 = _mm256_loadu_ps(s + 4 * ldb), r5 = _mm256_loadu_ps(s + 5 * ldb);
      __m256 r6 = _mm256_loadu_ps(s + 6 * ldb), r7 = _mm256_loadu_ps(s + 7 * ldb);
      const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
      const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* d = dst + kk * 16 + 8 * h;
      _mm256_storeu_ps(d + 0 * 16, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_storeu_ps(d + 1 * 16, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_storeu_ps(d + 2 * 16, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_storeu_ps(d + 3 * 16, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_storeu_ps(d + 4 * 16, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_storeu_ps(d + 5 * 16, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_storeu_ps(d + 6 * 16, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_storeu_ps(d + 7 * 16, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
  }
  for (; kk < kc; ++kk)
    for (int64_t j = 0; j < 16; ++j) dst[kk * 16 + j] = b[j * ldb + kk];
}

void gemm_dot_3x4_avx2(const float* a, int64_t lda, const float* w, int64_t ldw, int64_t k, float* out) {
  __m256 s00 = _mm256_setzero_ps(), s01 = _mm256_setzero_ps(), s02 = _mm256_setzero_ps(), s03 = _mm256_setzero_ps();
  __m256 s10 = _mm256_setzero_ps(), s11 = _mm256_setzero_ps(), s12 = _mm256_setzero_ps(), s13 = _mm256_setzero_ps();
  __m256 s20 = _mm256_setzero_ps(), s21 = _mm256_setzero_ps(), s22 = _mm256_setzero_ps(), s23 = _mm256_setzero_ps();
  const float* a0 = a;
  const float* a1 = a + lda;
  const float* a2 = a + 2 * lda;
  const float* w0 = w;
  const float* w1 = w + ldw;
  const float* w2 = w + 2 * ldw;
  const float* w3 = w + 3 * ldw;
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    const __m256 x0 = _mm256_loadu_ps(a0 + i), x1 = _mm256_loadu_ps(a1 + i), x2 = _mm256_loadu_ps(a2 + i);
    __m256 v = _mm256_loadu_ps(w0 + i);
    s00 = _mm256_fmadd_ps(x0, v, s00);
    s10 = _mm256_fmadd_ps(x1, v, s10);
    s20 = _mm256_fmadd_ps(x2, v, s20);
    v = _mm256_loadu_ps(w1 + i);
    s01 = _mm256_fmadd_ps(x0, v, s01);
    s11 = _mm256_fmadd_ps(x1, v, s11);
    s21 = _mm256_fmadd_ps(x2, v, s21);
    v = _mm256_loadu_ps(w2 + i);
    s02 = _mm256_fmadd_ps(x0, v, s02);
    s12 = _mm256_fmadd_ps(x1, v, s12);
    s22 = _mm256_fmadd_ps(x2, v, s22);
    v = _mm256_loadu_ps(w3 + i);
    s03 = _mm256_fmadd_ps(x0, v, s03);
    s13 = _mm256_fmadd_ps(x1, v, s13);
    s23 = _mm256_fmadd_ps(x2, v, s23);
  }
  const __m256 s[12] = {s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23};
  for (int t = 0; t < 12; ++t) out[t] = avx2::hsum(s[t]);
  for (; i < k; ++i)
    for (int r = 0; r < 3; ++r)
      for (int j = 0; j < 4; ++j) out[r * 4 + j] += a[r * lda + i] * w[j * ldw + i];
}

void act_inplace_avx2(Act act, float* x, int64_t n) {
  int64_t i = 0;
  if (act == Act::Gelu) {
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, avx2::gelu(_mm256_loadu_ps(x + i)));
  } else if (act == Act::Silu) {
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, avx2::silu(_mm256_loadu_ps(x + i)));
  }
  if (i < n) act_inplace_scalar(act, x + i, n - i);
}

void act_grad_avx2(Act act, const float* dy, const float* x, float* out, int64_t n) {
  int64_t i = 0;
  if (act == Act::Gelu) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), avx2::gelu_grad(_mm256_loadu_ps(x + i))));
  } else if (act == Act::Silu) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), avx2::silu_grad(_mm256_loadu_ps(x + i))));
  }
  if (i < n) act_grad_scalar(act, dy + i, x + i, out + i, n - i);
}

}  // namespace secvit::cpu
