// Winograd F(2x2, 3x3) dense convolution on the CPU (AVX2/FMA; called only after the run-time
// CPU check), for 3x3 kernels with stride 1, dilation 1 and one group: in SecViT the stem's two
// 32 -> 32 convs at 112 x 112, a fifth of the dense-conv time.
//
// Layouts: x through its element strides (b, c, y, x); weight [O, C, 3, 3]; y channels-last
// rows [B * OH * OW, O]; the residual through its strides (b, o, y, x).
//
// Algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): the
// output is cut into 2 x 2 tiles; tile t reads the 4 x 4 input patch d at (2 ty - pad_h,
// 2 tx - pad_w) (zeros outside the image). With V = B^T d B per input channel and U = G g G^T
// per (o, c) (once per call), the 16 points xi of the transform domain are independent:
//   M_xi[t, o] = sum_c V_xi[t, c] U_xi[c, o]        (16 GEMMs of [tiles, C] x [C, O])
// run by the GEMM's 6 x 16 micro-kernel on U packed into 16-column panels; then each tile's
// 2 x 2 outputs are A^T M A, and the conv's epilogue (column scale, bias, activation, residual)
// is applied in registers before the only store. Blocks of tiles run in parallel; a block's V
// and M (16 x tiles x (C + O) floats) are sized to stay in L2 between the three steps.
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// Cost: products 2 * 16 * tiles * C * O flops where the direct conv does 2 * 36 * tiles * C * O
// (2.25x fewer), transforms O(16 * tiles * (C + O)) adds.
//
// Numerics. Every transform coefficient is 0, +-1 or +-1/2, so rounding stays at the level of
// the direct sum (~1e-7 relative, the op tests' 1e-5 bound). Infinities are another matter: an
// infinite pixel enters V as +-inf in several points, and A^T M A then subtracts them (NaN)
// where the direct sum gives +-inf; NaN itself reaches exactly the outputs whose window holds
// it (each output's dependence on the patch is its 3 x 3 window), but the check below does not
// tell them apart. So the caller's input and weight are first scanned: any value that is not
// finite, or large enough that the transforms' growth could overflow, sends the call to the
// direct (im2col GEMM) path.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/thread_pool.h"
#include "gemm.h"
#include "ops/conv2d.h"
#include "scratch.h"
#include "vec_math_avx2.h"

namespace secvit::cpu {
namespace {

constexpr int64_t kNR = kGemmNR;  // columns of a packed U panel
// Inputs and weights up to this magnitude cannot overflow in the transforms (V grows by at most
// 4x, U by 2.25x, a product sum by C * 16 terms): 1e15 * 4 * 1e15 * 2.25 * 16 * 65536 < 3e38.
constexpr float kMaxMagnitude = 1e15f;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Whether every element of an array addressed by 4 strides is finite and at most kMaxMagnitude
// in magnitude. A dense span (any permutation of the dimensions, the usual case) is one flat
// vector loop.
bool all_moderate(const float* p, const int64_t* n, const int64_t* s) {
  int64_t numel = 1, span = 1;
  for (int i = 0; i < 4; ++i) {
    numel *= n[i];
    span += (n[i] - 1) * s[i];
  }
  const __m256 sign = _mm256_set1_ps(-0.0f), bound = _mm256_set1_ps(kMaxMagnitude);
  if (span == numel) {
    __m256 bad = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= numel; i += 8)  // NaN compares false, so !(|x| <= bound) catches it
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(p + i)), bound, _CMP_NLE_UQ));
    if (_mm256_movemask_ps(bad) != 0) return false;
    for (; i < numel; ++i)
      if (!(std::fabs(p[i]) <= kMaxMagnitude)) return false;
    return true;
  }
  for (int64_t a = 0; a < n[0]; ++a)
    for (int64_t b = 0; b < n[1]; ++b)
      for (int64_t c = 0; c < n[2]; ++c)
        for (int64_t d = 0; d < n[3]; ++d)
          if (!(std::fabs(p[a * s[0] + b * s[1] + c * s[2] + d * s[3]]) <= kMaxMagnitude)) return false;
  return true;
}

// U = G g G^T of every (o, c), packed for the micro-kernel: up[((xi * panels + q) * cp + c) *
// 16 + j] = U_xi[c, o = 16 q + j]; zero for o >= O and c >= C.
void transform_weights(const float* w, int64_t O, int64_t C, int64_t cp, int64_t panels, float* up) {
  std::fill(up, up + 16 * panels * cp * kNR, 0.0f);
  for (int64_t o = 0; o < O; ++o) {
    const int64_t q = o / kNR, j = o % kNR;
    for (int64_t c = 0; c < C; ++c) {
      const float* g = w + (o * C + c) * 9;  // g[ky * 3 + kx]
      float gg[4][3];                        // G g
      for (int k = 0; k < 3; ++k) {
        const float g0 = g[k], g1 = g[3 + k], g2 = g[6 + k];
        gg[0][k] = g0;
        gg[1][k] = 0.5f * (g0 + g1 + g2);
        gg[2][k] = 0.5f * (g0 - g1 + g2);
        gg[3][k] = g2;
      }
      for (int r = 0; r < 4; ++r) {  // (G g) G^T
        const float a0 = gg[r][0], a1 = gg[r][1], a2 = gg[r][2];
        const float u[4] = {a0, 0.5f * (a0 + a1 + a2), 0.5f * (a0 - a1 + a2), a2};
        for (int s = 0; s < 4; ++s) up[(((r * 4 + s) * panels + q) * cp + c) * kNR + j] = u[s];
      }
    }
  }
}

// V = B^T d B for one tile, 8 channels at a time. Pixel (r, s) of the patch is at
// d + r * sy + s * sx (channels contiguous, cp floats); v is the tile's row of V_0, points xi
// apart by xi_stride floats. Row r of B^T d needs two patch rows, so each row is computed from
// 8 loads (L1 hits) and turned into its 4 points at once: 8 vector registers live, where
// holding all 16 of B^T d spilled.
inline void input_transform(const float* d, int64_t sy, int64_t sx, int64_t cp, float* v, int64_t xi_stride) {
  for (int64_t c = 0; c < cp; c += 8) {
    const float* p = d + c;
    for (int r = 0; r < 4; ++r) {
      // Row r of B^T: d0 - d2, d1 + d2, d2 - d1, d1 - d3.
      const int ra = r == 0 ? 0 : r == 2 ? 2 : 1;
      const int rb = r == 0 ? 2 : r == 3 ? 3 : r == 1 ? 2 : 1;
      const float* pa = p + ra * sy;
      const float* pb = p + rb * sy;
      __m256 t[4];
      for (int s = 0; s < 4; ++s) {
        const __m256 a = _mm256_loadu_ps(pa + s * sx), b = _mm256_loadu_ps(pb + s * sx);
        t[s] = r == 1 ? _mm256_add_ps(a, b) : _mm256_sub_ps(a, b);
      }
      float* row = v + r * 4 * xi_stride + c;
      _mm256_storeu_ps(row, _mm256_sub_ps(t[0], t[2]));
      _mm256_storeu_ps(row + xi_stride, _mm256_add_ps(t[1], t[2]));
      _mm256_storeu_ps(row + 2 * xi_stride, _mm256_sub_ps(t[2], t[1]));
      _mm256_storeu_ps(row + 3 * xi_stride, _mm256_sub_ps(t[1], t[3]));
    }
  }
}

struct Epilogue {
  const float* col_scale;
  const float* bias;
  Act act;
  const float* res;  // residual base, or null
  const int64_t* rs;
};

inline __m256 activate(Act act, __m256 v) {
  if (act == Act::Gelu) return avx2::gelu(v);
  if (act == Act::Silu) return avx2::silu(v);
  return v;
}

// One output pixel's 8 channels [o, o + n) (n <= 8) from their sum: column scale, bias,
// activation, residual; stored at dst.
inline void finish(__m256 v, int64_t o, int64_t n, const Epilogue& e, int64_t b, int64_t oy, int64_t ox, float* dst) {
  if (n == 8) {
    if (e.col_scale != nullptr) v = _mm256_mul_ps(v, _mm256_loadu_ps(e.col_scale + o));
    if (e.bias != nullptr) v = _mm256_add_ps(v, _mm256_loadu_ps(e.bias + o));
    v = activate(e.act, v);
    if (e.res != nullptr) {
      const float* r = e.res + b * e.rs[0] + o * e.rs[1] + oy * e.rs[2] + ox * e.rs[3];
      if (e.rs[1] == 1) {
        v = _mm256_add_ps(v, _mm256_loadu_ps(r));
      } else {
        alignas(32) float rv[8];
        for (int j = 0; j < 8; ++j) rv[j] = r[j * e.rs[1]];
        v = _mm256_add_ps(v, _mm256_load_ps(rv));
      }
    }
    _mm256_storeu_ps(dst, v);
    return;
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  for (int64_t j = 0; j < n; ++j) {
    if (e.col_scale != nullptr) t[j] *= e.col_scale[o + j];
    if (e.bias != nullptr) t[j] += e.bias[o + j];
  }
  act_inplace_avx2(e.act, t, n);
  for (int64_t j = 0; j < n; ++j) {
    if (e.res != nullptr) t[j] += e.res[b * e.rs[0] + (o + j) * e.rs[1] + oy * e.rs[2] + ox * e.rs[3]];
    dst[j] = t[j];
  }
}

}  // namespace

bool conv2d_winograd_applies(const Conv2dOpParams& p) {
  return p.kh == 3 && p.kw == 3 && p.stride_h == 1 && p.stride_w == 1 && p.dil_h == 1 && p.dil_w == 1 &&
         p.groups == 1 && p.c >= 8 && p.o >= 8 && p.oh >= 2 && p.ow >= 2;
}

bool conv2d_winograd_avx2(const Conv2dOpParams& p, const float* x, const float* w, const float* bias,
                          const float* col_scale, const float* res, float* y) {
  const int64_t C = p.c, O = p.o;
  const int64_t xn[4] = {p.b, p.c, p.h, p.w};
  const int64_t wn[4] = {1, 1, 1, O * C * 9};
  const int64_t ws[4] = {0, 0, 0, 1};
  if (!all_moderate(x, xn, p.xs) || !all_moderate(w, wn, ws)) return false;

  const int64_t cp = round_up(C, 8), op = round_up(O, kNR), panels = op / kNR;
  const int64_t ty_n = (p.oh + 1) / 2, tx_n = (p.ow + 1) / 2;
  const int64_t tiles = p.b * ty_n * tx_n;
  // Tiles per block: V and M of a block (16 x block x (cp + op) floats) within ~384 KiB, in
  // whole 6-row micro-tiles.
  const int64_t block = std::clamp<int64_t>((6144 / (cp + op)) / 6 * 6, 6, 96);
  const int64_t blocks = (tiles + block - 1) / block;

  thread_local ScratchVec<float> t_up;
  float* up = t_up.get(size_t(16 * panels * cp * kNR));
  transform_weights(w, O, C, cp, panels, up);

  const Epilogue epi{col_scale, bias, Act(p.act), res, p.rs};
  const bool cl8 = p.xs[1] == 1 && C % 8 == 0;  // pixels read in place (channel vectors)
  ThreadPool::instance().parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    thread_local ScratchVec<float> t_v, t_m, t_patch;
    const int64_t vstride = block * cp, mstride = block * op;  // floats between points xi
    float* v = t_v.get(size_t(16 * vstride));
    float* m = t_m.get(size_t(16 * mstride));
    float* patch = t_patch.get(size_t(16 * cp));
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t t0 = blk * block, nt = std::min(block, tiles - t0);
      // 1. V for the block's tiles.
      for (int64_t i = 0; i < nt; ++i) {
        const int64_t t = t0 + i, b = t / (ty_n * tx_n), ty = (t / tx_n) % ty_n, tx = t % tx_n;
        const int64_t y0 = 2 * ty - p.pad_h, x0 = 2 * tx - p.pad_w;
        const bool inside = y0 >= 0 && x0 >= 0 && y0 + 4 <= p.h && x0 + 4 <= p.w;
        if (inside && cl8) {
          input_transform(x + b * p.xs[0] + y0 * p.xs[2] + x0 * p.xs[3], p.xs[2], p.xs[3], cp, v + i * cp, vstride);
          continue;
        }
        for (int r = 0; r < 4; ++r) {
          for (int s = 0; s < 4; ++s) {
            float* dst = patch + (r * 4 + s) * cp;
            const int64_t iy = y0 + r, ix = x0 + s;
            if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) {
              std::fill(dst, dst + cp, 0.0f);
            } else {
              const float* src = x + b * p.xs[0] + iy * p.xs[2] + ix * p.xs[3];
              if (p.xs[1] == 1) std::memcpy(dst, src, size_t(C) * sizeof(float));
              else for (int64_t c = 0; c < C; ++c) dst[c] = src[c * p.xs[1]];
              std::fill(dst + C, dst + cp, 0.0f);
            }
          }
        }
        input_transform(patch, 4 * cp, cp, cp, v + i * cp, vstride);
      }
      // 2. M_xi = V_xi U_xi, 6 tiles x 16 output channels per micro-tile. Rows past nt (the
      // last block's remainder of 6) compute on stale V and are never read.
      const int64_t rows = round_up(nt, 6);
      for (int64_t xi = 0; xi < 16; ++xi) {
        const float* vx = v + xi * vstride;
        float* mx = m + xi * mstride;
        for (int64_t i0 = 0; i0 < rows; i0 += 6) {
          const float* a[6];
          for (int r = 0; r < 6; ++r) a[r] = vx + (i0 + r) * cp;
          for (int64_t q = 0; q < panels; ++q) {
            float* c[6];
            for (int r = 0; r < 6; ++r) c[r] = mx + (i0 + r) * op + q * kNR;
            gemm_micro_rows_avx2(cp, a, up + (xi * panels + q) * cp * kNR, c, true, nullptr);
          }
        }
      }
      // 3. y = A^T M A per tile and 8 output channels, with the epilogue.
      for (int64_t i = 0; i < nt; ++i) {
        const int64_t t = t0 + i, b = t / (ty_n * tx_n), ty = (t / tx_n) % ty_n, tx = t % tx_n;
        const int64_t oy = 2 * ty, ox = 2 * tx;
        const bool down = oy + 1 < p.oh, right = ox + 1 < p.ow;
        float* out = y + ((b * p.oh + oy) * p.ow + ox) * O;
        for (int64_t o = 0; o < O; o += 8) {
          const float* mt = m + i * op + o;
          __m256 s0[4], s1[4];
          for (int j = 0; j < 4; ++j) {
            const __m256 m0 = _mm256_loadu_ps(mt + j * mstride), m1 = _mm256_loadu_ps(mt + (4 + j) * mstride);
            const __m256 m2 = _mm256_loadu_ps(mt + (8 + j) * mstride), m3 = _mm256_loadu_ps(mt + (12 + j) * mstride);
            s0[j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
            s1[j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
          }
          const int64_t n = std::min<int64_t>(8, O - o);
          finish(_mm256_add_ps(_mm256_add_ps(s0[0], s0[1]), s0[2]), o, n, epi, b, oy, ox, out + o);
          if (right) finish(_mm256_sub_ps(_mm256_sub_ps(s0[1], s0[2]), s0[3]), o, n, epi, b, oy, ox + 1, out + O + o);
          if (down) {
            float* below = out + p.ow * O;
            finish(_mm256_add_ps(_mm256_add_ps(s1[0], s1[1]), s1[2]), o, n, epi, b, oy + 1, ox, below + o);
            if (right) finish(_mm256_sub_ps(_mm256_sub_ps(s1[1], s1[2]), s1[3]), o, n, epi, b, oy + 1, ox + 1, below + O + o);
          }
        }
      }
    }
  });
  return true;
}

}  // namespace secvit::cpu
