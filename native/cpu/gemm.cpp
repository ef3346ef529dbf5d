// The GEMM driver (see gemm.h): blocking, packing with the prologue, threading, the epilogue,
// and the portable micro-kernel. gemm_avx2.cpp has the AVX2/FMA micro-kernel.
#include "gemm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/cpu_features.h"
#include "../core/thread_pool.h"
#include "norm.h"
#include "rope2d.h"
#include "scratch.h"

namespace secvit::cpu {
namespace {

constexpr int64_t MR = kGemmMR;
constexpr int64_t NR = kGemmNR;
// A' formed once for all rows (gemm_f32) up to this many floats (1 MiB).
constexpr int64_t kAPrimeOnceMax = int64_t(1) << 18;
constexpr int64_t kMC = 96;   // rows of an A block (16 panels): MC x KC floats stay in L2

// K blocks of at most ~320 so that a B panel (KC x 16 floats, 20 KiB) stays in L1 while an A
// block streams past it; equal-sized blocks.
int64_t choose_kc(int64_t k) {
  const int64_t blocks = (k + 319) / 320;
  return blocks <= 1 ? k : (k + blocks - 1) / blocks;
}

// Per-row LayerNorm statistics of A' = A + add over all K: the layerNorm kernel's own routine
// (norm.h), on the row in place or on a copy of A + add.
void row_stats(const GemmArgs& g, int64_t m0, int64_t m1, float* mean, float* rstd) {
  thread_local ScratchVec<float> t_row;
  for (int64_t m = m0; m < m1; ++m) {
    const float* a = g.a.data + g.a.row_offset(m);
    if (g.add.data != nullptr || g.a.col_stride != 1) {
      float* row = t_row.get(size_t(g.k));
      const float* ad = g.add.data != nullptr ? g.add.data + g.add.row_offset(m) : nullptr;
      for (int64_t k = 0; k < g.k; ++k)
        row[k] = a[k * g.a.col_stride] + (ad != nullptr ? ad[k * g.add.col_stride] : 0.0f);
      a = row;
    }
    layer_norm_stats(a, g.k, g.ln_eps, &mean[m], &rstd[m]);
  }
}

struct Ctx {
  const GemmArgs& g;
  const float* mean;
  const float* rstd;
  const float* rope_cs;  // rope_table() (rope2d.h)
  bool avx2;
};

// Row m of A' = LN(A + add) (or plain A), k in [k0, k0 + kc), into dst[0, kc): one pass per
// step, each a plain loop the compiler vectorises (the row is in L1).
void prologue_row(const Ctx& cx, int64_t m, int64_t k0, int64_t kc, float* dst) {
  const GemmArgs& g = cx.g;
  const float* a = g.a.data + g.a.row_offset(m) + k0 * g.a.col_stride;
  const int64_t as = g.a.col_stride;
  if (as == 1) std::memcpy(dst, a, size_t(kc) * sizeof(float));
  else for (int64_t kk = 0; kk < kc; ++kk) dst[kk] = a[kk * as];
  if (g.add.data != nullptr) {
    const float* ad = g.add.data + g.add.row_offset(m) + k0 * g.add.col_stride;
    const int64_t ads = g.add.col_stride;
    if (ads == 1) for (int64_t kk = 0; kk < kc; ++kk) dst[kk] += ad[kk];
    else for (int64_t kk = 0; kk < kc; ++kk) dst[kk] += ad[kk * ads];
  }
  if (!g.layer_norm) return;
  const float mu = cx.mean[m], rs = cx.rstd[m];
  for (int64_t kk = 0; kk < kc; ++kk) dst[kk] = (dst[kk] - mu) * rs;
  if (g.ln_weight != nullptr) {
    const float* w = g.ln_weight + k0;
    for (int64_t kk = 0; kk < kc; ++kk) dst[kk] *= w[kk];
  }
  if (g.ln_bias != nullptr) {
    const float* b = g.ln_bias + k0;
    for (int64_t kk = 0; kk < kc; ++kk) dst[kk] += b[kk];
  }
}

// The k's [k0, k0 + kc) of an im2col row, as runs that each lie in one row of kernel taps (one
// ky): taps kx0 .. kx0 + nkx - 1, starting at channel c0 of the first, len values, stored at
// dst in the packed row. Row-independent: worked out once per K block.
struct ImRun {
  int64_t ky, kx0, nkx, c0, len, dst;
};

int64_t im2col_runs(const Im2col& ic, int64_t k0, int64_t kc, ImRun* runs) {
  int64_t n = 0;
  for (int64_t k = k0; k < k0 + kc;) {
    const int64_t tap = k / ic.c, ch = k % ic.c;
    const int64_t ky = tap / ic.kw, kx = tap % ic.kw;
    const int64_t end = std::min(k0 + kc, (ky + 1) * ic.kw * ic.c);
    const int64_t len = end - k;
    runs[n++] = ImRun{ky, kx, (ch + len + ic.c - 1) / ic.c, ch, len, k - k0};
    k = end;
  }
  return n;
}

// Row m of the im2col matrix, runs as above, into dst. A run whose taps are all inside the image
// is one copy when the image is channels-last and dense along x (the taps' channels follow each
// other in memory); otherwise tap by tap, zeros outside the image.
void im2col_row(const Im2col& ic, int64_t m, const ImRun* runs, int64_t nruns, float* dst) {
  const int64_t hw = ic.oh * ic.ow;
  const int64_t b = m / hw, rem = m - b * hw, oy = rem / ic.ow, ox = rem - oy * ic.ow;
  const int64_t iy0 = oy * ic.stride_h - ic.pad_h, ix0 = ox * ic.stride_w - ic.pad_w;
  const float* img = ic.data + b * ic.sb;
  const bool dense = ic.sc == 1 && ic.sx == ic.c && ic.dil_w == 1;
  for (int64_t i = 0; i < nruns; ++i) {
    const ImRun& r = runs[i];
    float* o = dst + r.dst;
    const int64_t iy = iy0 + r.ky * ic.dil_h;
    if (iy < 0 || iy >= ic.h) {
      std::fill(o, o + r.len, 0.0f);
      continue;
    }
    const float* row = img + iy * ic.sy;
    const int64_t ixa = ix0 + r.kx0 * ic.dil_w, ixb = ix0 + (r.kx0 + r.nkx - 1) * ic.dil_w;
    if (dense && ixa >= 0 && ixb < ic.w) {
      std::memcpy(o, row + ixa * ic.sx + r.c0, size_t(r.len) * sizeof(float));
      continue;
    }
    for (int64_t t = 0, done = 0; t < r.nkx; ++t) {
      const int64_t cb = t == 0 ? r.c0 : 0;
      const int64_t n = std::min(ic.c - cb, r.len - done);
      const int64_t ix = ix0 + (r.kx0 + t) * ic.dil_w;
      float* ot = o + done;
      if (ix < 0 || ix >= ic.w) {
        std::fill(ot, ot + n, 0.0f);
      } else {
        const float* src = row + ix * ic.sx + cb * ic.sc;
        if (ic.sc == 1) std::memcpy(ot, src, size_t(n) * sizeof(float));
        else for (int64_t j = 0; j < n; ++j) ot[j] = src[j * ic.sc];
      }
      done += n;
    }
  }
}

// Rows [m0, m0 + mc) of A' (the prologue applied, or the im2col rows gathered), k in
// [k0, k0 + kc), row-major into dst (row r at dst + r * kc), read by the micro-kernel like a
// plain A. Row-major rather than the interleaved 6-row panels of BLIS: every step is a
// contiguous copy or loop (the interleaved stores were scalar and strided, a third of the
// qkv GEMM's time with its LayerNorm prologue), and the micro-kernel reads 6 rows from L2 at
// the same rate.
void pack_rows(const Ctx& cx, int64_t m0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
  const GemmArgs& g = cx.g;
  if (g.im2col == nullptr) {
    for (int64_t r = 0; r < mc; ++r) prologue_row(cx, m0 + r, k0, kc, dst + r * kc);
    return;
  }
  thread_local std::vector<ImRun> t_runs;
  t_runs.resize(size_t(g.im2col->kh + 1));
  const int64_t nruns = im2col_runs(*g.im2col, k0, kc, t_runs.data());
  for (int64_t r = 0; r < mc; ++r) im2col_row(*g.im2col, m0 + r, t_runs.data(), nruns, dst + r * kc);
}

// Panel jp of B (columns [jp*NR, jp*NR + NR)), k [k0, k0 + kc): dst[kk][j], zero past N.
void pack_b_panel(const GemmArgs& g, bool avx2, int64_t jp, int64_t k0, int64_t kc, float* dst) {
  const int64_t n0 = jp * NR;
  const int64_t nn = std::min(NR, g.n - n0);
  if (avx2 && nn == NR && g.b_koff == nullptr && g.b_k_stride == 1) {  // 8 x 8 transposes
    gemm_pack_b_nk16_avx2(g.b + n0 * g.b_n_stride + k0, g.b_n_stride, kc, dst);
    return;
  }
  if (nn < NR)
    for (int64_t kk = 0; kk < kc; ++kk)
      for (int64_t j = nn; j < NR; ++j) dst[kk * NR + j] = 0.0f;
  if (g.b_koff == nullptr && g.b_k_stride == 1) {  // [N, K] weight rows: contiguous in k
    for (int64_t j = 0; j < nn; ++j) {
      const float* src = g.b + (n0 + j) * g.b_n_stride + k0;
      for (int64_t kk = 0; kk < kc; ++kk) dst[kk * NR + j] = src[kk];
    }
    return;
  }
  if (g.b_koff == nullptr && g.b_n_stride == 1) {  // [K, N] rows: contiguous in n
    for (int64_t kk = 0; kk < kc; ++kk) {
      const float* src = g.b + (k0 + kk) * g.b_k_stride + n0;
      for (int64_t j = 0; j < nn; ++j) dst[kk * NR + j] = src[j];
    }
    return;
  }
  for (int64_t kk = 0; kk < kc; ++kk) {
    const int64_t off = g.b_koff != nullptr ? g.b_koff[k0 + kk] : (k0 + kk) * g.b_k_stride;
    for (int64_t j = 0; j < nn; ++j) dst[kk * NR + j] = g.b[(n0 + j) * g.b_n_stride + off];
  }
}

// The epilogue on `len` contiguous values of row m, columns [n0, n0 + len).
void epilogue_row(const Ctx& cx, int64_t m, int64_t n0, int64_t len, float* v) {
  const GemmArgs& g = cx.g;
  if (g.col_scale != nullptr)
    for (int64_t j = 0; j < len; ++j) v[j] *= g.col_scale[n0 + j];
  if (g.bias != nullptr)
    for (int64_t j = 0; j < len; ++j) v[j] += g.bias[n0 + j];
  if (g.pre.data != nullptr)
    std::memcpy(const_cast<float*>(g.pre.data) + g.pre.row_offset(m) + n0, v, size_t(len) * sizeof(float));
  if (g.act != Act::None) {
    if (cx.avx2) act_inplace_avx2(g.act, v, len);
    else act_inplace_scalar(g.act, v, len);
  }
  if (g.rope.angle != nullptr) {
    const GemmRope& rp = g.rope;
    const int64_t e = rp.heads * rp.d, q4 = rp.d / 4;
    const int64_t l = m % (rp.height * rp.width);
    const int64_t y = l / rp.width, x = l % rp.width;
    for (int64_t j = 0; j < len; j += 2) {  // n0 and len are even: pairs stay together
      const int64_t n = n0 + j;
      if (n >= 2 * e) break;
      const float* cs = rope_pair(cx.rope_cs, q4, rp.height, y, x, (n % rp.d) / 2);
      const float a = v[j], b = v[j + 1];
      float ra = a * cs[0] - b * cs[1];
      float rb = b * cs[0] + a * cs[1];
      if (n >= e) {
        ra *= rp.k_scale;
        rb *= rp.k_scale;
      }
      v[j] = ra;
      v[j + 1] = rb;
    }
  }
  if (g.scale != nullptr)
    for (int64_t j = 0; j < len; ++j) v[j] *= g.scale[n0 + j];
  if (g.residual.data != nullptr) {
    const float* r = g.residual.data + g.residual.row_offset(m) + n0 * g.residual.col_stride;
    const int64_t rs = g.residual.col_stride;
    for (int64_t j = 0; j < len; ++j) v[j] += r[j * rs];
  }
}

bool has_epilogue(const GemmArgs& g) {
  return g.col_scale != nullptr || g.bias != nullptr || g.act != Act::None || g.rope.angle != nullptr || g.scale != nullptr ||
         g.residual.data != nullptr || g.pre.data != nullptr;
}

// One 6 x 16 tile of C at (m0, n0), mm x nn of it inside C: straight into C's rows when the
// tile is whole and C's columns contiguous, else through a buffer. Then the epilogue on the
// rows (after the last K block), while they are in L1. (Whole tiles whose epilogue fits in
// registers do not come here: gemm_f32 hands them to the micro-kernel with it.)
// A is read from the mm rows `a` (already at this K block's first k; k contiguous).
void tile(const Ctx& cx, int64_t kc, const float* const* a, const float* bp, int64_t m0, int64_t n0,
          int64_t mm, int64_t nn, bool first, bool last) {
  const GemmArgs& g = cx.g;
  const int64_t cs = g.c.col_stride;
  float* base = const_cast<float*>(g.c.data);
  float* rows[MR];
  alignas(64) float buf[MR * NR];
  const bool direct = mm == MR && nn == NR && cs == 1;
  for (int64_t r = 0; r < MR; ++r)
    rows[r] = direct ? base + g.c.row_offset(m0 + r) + n0 : buf + r * NR;
  // Direct tiles accumulate in C after the first K block; buffered ones are combined below.
  const bool overwrite = direct ? first : true;
  // Rows past M repeat the last row (their results are not stored).
  const float* arows[MR];
  for (int64_t r = 0; r < MR; ++r) arows[r] = a[std::min(r, mm - 1)];
  if (cx.avx2) gemm_micro_rows_avx2(kc, arows, bp, rows, overwrite, nullptr);
  else gemm_micro_rows_scalar(kc, arows, bp, rows, overwrite);
  if (!direct) {
    for (int64_t r = 0; r < mm; ++r) {
      float* c = base + g.c.row_offset(m0 + r) + n0 * cs;
      for (int64_t j = 0; j < nn; ++j) c[j * cs] = first ? buf[r * NR + j] : c[j * cs] + buf[r * NR + j];
    }
  }
  if (!last || !has_epilogue(g)) return;
  for (int64_t r = 0; r < mm; ++r) {
    float* c = base + g.c.row_offset(m0 + r) + n0 * cs;
    if (cs == 1) {
      epilogue_row(cx, m0 + r, n0, nn, c);
    } else {
      float row[NR];
      for (int64_t j = 0; j < nn; ++j) row[j] = c[j * cs];
      epilogue_row(cx, m0 + r, n0, nn, row);
      for (int64_t j = 0; j < nn; ++j) c[j * cs] = row[j];
    }
  }
}

}  // namespace

// ---- portable micro-kernel and activations -----------------------------------------------------

void act_inplace_scalar(Act act, float* x, int64_t n) {
  if (act == Act::Gelu) {
    for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
  } else if (act == Act::Silu) {
    for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
  }
}

void act_grad_scalar(Act act, const float* dy, const float* x, float* out, int64_t n) {
  if (act == Act::Gelu) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[i];
      const float cdf = 0.5f * (1.0f + std::erf(v * 0.70710678118654752f));
      const float pdf = std::exp(-0.5f * v * v) * 0.39894228040143268f;
      out[i] = dy[i] * (cdf + v * pdf);
    }
  } else if (act == Act::Silu) {
    for (int64_t i = 0; i < n; ++i) {
      const float s = 1.0f / (1.0f + std::exp(-x[i]));
      out[i] = dy[i] * (s * (1.0f + x[i] * (1.0f - s)));
    }
  } else if (out != dy) {
    std::memcpy(out, dy, size_t(n) * sizeof(float));
  }
}

void gemm_micro_rows_scalar(int64_t kc, const float* const* a, const float* bp, float* const* c, bool first) {
  float acc[MR][NR] = {};
  for (int64_t kk = 0; kk < kc; ++kk) {
    const float* b = bp + kk * NR;
    for (int64_t r = 0; r < MR; ++r)
      for (int64_t j = 0; j < NR; ++j) acc[r][j] += a[r][kk] * b[j];
  }
  for (int64_t r = 0; r < MR; ++r)
    for (int64_t j = 0; j < NR; ++j) c[r][j] = first ? acc[r][j] : c[r][j] + acc[r][j];
}

void gemm_micro_panel_scalar(int64_t kc, const float* a, const float* bp, float* const* c, bool first) {
  float acc[MR][NR] = {};
  for (int64_t kk = 0; kk < kc; ++kk) {
    const float* b = bp + kk * NR;
    for (int64_t r = 0; r < MR; ++r)
      for (int64_t j = 0; j < NR; ++j) acc[r][j] += a[kk * MR + r] * b[j];
  }
  for (int64_t r = 0; r < MR; ++r)
    for (int64_t j = 0; j < NR; ++j) c[r][j] = first ? acc[r][j] : c[r][j] + acc[r][j];
}

void gemm_dot_3x4_scalar(const float* a, int64_t lda, const float* w, int64_t ldw, int64_t k, float* out) {
  for (int r = 0; r < 3; ++r)
    for (int j = 0; j < 4; ++j) {
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      const float* x = a + r * lda;
      const float* y = w + j * ldw;
      int64_t i = 0;
      for (; i + 4 <= k; i += 4) {
        s0 += x[i] * y[i];
        s1 += x[i + 1] * y[i + 1];
        s2 += x[i + 2] * y[i + 2];
        s3 += x[i + 3] * y[i + 3];
      }
      float s = (s0 + s1) + (s2 + s3);
      for (; i < k; ++i) s += x[i] * y[i];
      out[r * 4 + j] = s;
    }
}

#if !defined(SECVIT_HAVE_AVX2_KERNELS)
void gemm_dot_3x4_avx2(const float* a, int64_t lda, const float* w, int64_t ldw, int64_t k, float* out) {
  gemm_dot_3x4_scalar(a, lda, w, ldw, k, out);
}
void gemm_micro_rows_avx2(int64_t kc, const float* const* a, const float* bp, float* const* c, bool first,
                          const TileEpilogue*) {
  gemm_micro_rows_scalar(kc, a, bp, c, first);
}
void gemm_micro_panel_avx2(int64_t kc, const float* a, const float* bp, float* const* c, bool first) {
  gemm_micro_panel_scalar(kc, a, bp, c, first);
}
void gemm_pack_b_nk16_avx2(const float* b, int64_t ldb, int64_t kc, float* dst) {
  for (int64_t kk = 0; kk < kc; ++kk)
    for (int64_t j = 0; j < kGemmNR; ++j) dst[kk * kGemmNR + j] = b[j * ldb + kk];
}
void act_inplace_avx2(Act act, float* x, int64_t n) { act_inplace_scalar(act, x, n); }
void act_grad_avx2(Act act, const float* dy, const float* x, float* out, int64_t n) { act_grad_scalar(act, dy, x, out, n); }
#endif

// ---- the driver --------------------------------------------------------------------------------

namespace {

// Small M with a [N, K] weight (see gemm.h): A' (prologue applied) formed once, row-major;
// tasks take blocks of 16 weight rows; each output row's block then gets its epilogue.
void dot_path(const Ctx& cx) {
  const GemmArgs& g = cx.g;
  thread_local ScratchVec<float> t_a;
  // 3 rows at a time: pad A' to a multiple of 3 rows with zeros.
  const int64_t mp = (g.m + 2) / 3 * 3;
  float* ap = t_a.get(size_t(mp * g.k));
  for (int64_t m = 0; m < mp; ++m) {
    float* dst = ap + m * g.k;
    if (m >= g.m) {
      std::fill(dst, dst + g.k, 0.0f);
      continue;
    }
    prologue_row(cx, m, 0, g.k, dst);
  }
  constexpr int64_t kBlock = 16;
  auto body = [&](int64_t b0, int64_t b1) {
    float out[12];
    float row[kBlock];
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n0 = b * kBlock, nn = std::min(kBlock, g.n - n0);
      for (int64_t m = 0; m < mp; m += 3) {
        float tile[3][kBlock];
        for (int64_t j = 0; j < nn; j += 4) {
          // A block's last 1-3 weight rows (N not a multiple of 4): plain dot products.
          const int64_t jj = std::min<int64_t>(4, nn - j);
          if (jj == 4) {
            if (cx.avx2) gemm_dot_3x4_avx2(ap + m * g.k, g.k, g.b + (n0 + j) * g.b_n_stride, g.b_n_stride, g.k, out);
            else gemm_dot_3x4_scalar(ap + m * g.k, g.k, g.b + (n0 + j) * g.b_n_stride, g.b_n_stride, g.k, out);
          } else {
            for (int r = 0; r < 3; ++r)
              for (int64_t q = 0; q < jj; ++q) {
                const float* a = ap + (m + r) * g.k;
                const float* w = g.b + (n0 + j + q) * g.b_n_stride;
                float acc = 0.0f;
                for (int64_t k = 0; k < g.k; ++k) acc += a[k] * w[k];
                out[r * 4 + q] = acc;
              }
          }
          for (int r = 0; r < 3; ++r)
            for (int64_t q = 0; q < jj; ++q) tile[r][j + q] = out[r * 4 + q];
        }
        for (int r = 0; r < 3 && m + r < g.m; ++r) {
          std::memcpy(row, tile[r], size_t(nn) * sizeof(float));
          if (has_epilogue(g)) epilogue_row(cx, m + r, n0, nn, row);
          float* c = const_cast<float*>(g.c.data) + g.c.row_offset(m + r) + n0 * g.c.col_stride;
          for (int64_t q = 0; q < nn; ++q) c[q * g.c.col_stride] = row[q];
        }
      }
    }
  };
  ThreadPool::instance().parallel_for((g.n + kBlock - 1) / kBlock, 1, body);
}

// B for every K block, packed into this thread's buffer: block kb's panel p at
// (kb * np + p) * kcmax * NR.
const float* packed_b(const GemmArgs& g, bool avx2, int64_t kcmax, int64_t np) {
  const int64_t kblocks = (g.k + kcmax - 1) / kcmax;
  thread_local ScratchVec<float> t_bpack;
  float* dst = t_bpack.get(size_t(kblocks * np * kcmax * NR));
  auto body = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t kb = t / np, p = t % np;
      const int64_t k0 = kb * kcmax, kc = std::min(kcmax, g.k - k0);
      pack_b_panel(g, avx2, p, k0, kc, dst + (kb * np + p) * kcmax * NR);
    }
  };
  ThreadPool::instance().parallel_for(kblocks * np, std::max<int64_t>(1, 4096 / kcmax), body);
  return dst;
}

// Long K and a small C (weight gradients: C = dY^T X summed over every token of the batch, K =
// tokens): tasks take contiguous ranges of K, each with its own partial C (padded to whole
// tiles), packing its share of B one K block at a time (a block's panels stay in L2) instead of
// all of B up front (37888 x 216 floats for the stem's weight gradient: 33 MB that every task
// then streamed); the partials are then summed and the epilogue applied row by row. A transposed
// operand (column stride != 1, rows contiguous: a dY^T view) is packed as k-major 6-row panels
// (BLIS's layout), reading along its rows, for a micro-kernel that reads A from the panel. Cost: as the blocked path, plus S partial C's (S = tasks) written and summed.
bool ksplit_wanted(const GemmArgs& g) {
  return g.k >= 2048 && g.k >= 8 * std::max(g.m, g.n) && g.m * g.n <= (int64_t(1) << 16);
}

void ksplit_path(const Ctx& cx, int64_t threads) {
  const GemmArgs& g = cx.g;
  const int64_t mp = (g.m + MR - 1) / MR, np = (g.n + NR - 1) / NR;
  const int64_t ldp = np * NR, rows = mp * MR;
  // Two tasks per thread (uneven threads share out), at least 512 k's each, and partials of at
  // most ~16 MB unless the threads need more.
  const int64_t cap = std::max<int64_t>(threads, (int64_t(4) << 20) / (rows * ldp));
  const int64_t tasks = std::max<int64_t>(1, std::min({2 * threads, g.k / 512, cap}));
  const int64_t kcmax = 256;
  thread_local ScratchVec<float> t_parts;
  float* parts = t_parts.get(size_t(tasks * rows * ldp));
  // A transposed, rows contiguous (element (m, k) at m + k * col_stride) and nothing to apply.
  const bool a_kmajor = g.im2col == nullptr && g.a.col_stride != 1 && g.a.group_rows == 0 && g.a.row_stride == 1 &&
                        g.add.data == nullptr && !g.layer_norm;
  ThreadPool::instance().parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    thread_local ScratchVec<float> t_b, t_a;
    float* bp = t_b.get(size_t(np * kcmax * NR));
    float* ap = t_a.get(size_t(rows * kcmax));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t kbeg = t * g.k / tasks, kend = (t + 1) * g.k / tasks;
      float* part = parts + t * rows * ldp;
      for (int64_t k0 = kbeg; k0 < kend; k0 += kcmax) {
        const int64_t kc = std::min(kcmax, kend - k0);
        for (int64_t p = 0; p < np; ++p) pack_b_panel(g, cx.avx2, p, k0, kc, bp + p * kc * NR);
        if (a_kmajor) {
          // k-major 6-row panels (panel i at ap + i * kc * 6): per k, the source row's M values
          // are read in order and land 6 at a time; rows past M are zeros.
          for (int64_t kk = 0; kk < kc; ++kk) {
            const float* src = g.a.data + (k0 + kk) * g.a.col_stride;
            for (int64_t i = 0; i < mp; ++i) {
              float* d = ap + (i * kc + kk) * MR;
              const int64_t m0 = i * MR, mm = std::min(MR, g.m - m0);
              for (int64_t r = 0; r < mm; ++r) d[r] = src[m0 + r];
              for (int64_t r = mm; r < MR; ++r) d[r] = 0.0f;
            }
          }
        } else {
          pack_rows(cx, 0, g.m, k0, kc, ap);
        }
        const float* arows[MR];
        float* crows[MR];
        for (int64_t ir = 0; ir < g.m; ir += MR) {
          for (int64_t r = 0; r < MR; ++r) {
            arows[r] = ap + std::min(ir + r, g.m - 1) * kc;  // rows past M repeat the last one
            crows[r] = part + (ir + r) * ldp;
          }
          const float* panel = ap + ir * kc;
          for (int64_t p = 0; p < np; ++p) {
            float* c[MR];
            for (int64_t r = 0; r < MR; ++r) c[r] = crows[r] + p * NR;
            const float* b = bp + p * kc * NR;
            if (a_kmajor) {
              if (cx.avx2) gemm_micro_panel_avx2(kc, panel, b, c, k0 == kbeg);
              else gemm_micro_panel_scalar(kc, panel, b, c, k0 == kbeg);
            } else if (cx.avx2) {
              gemm_micro_rows_avx2(kc, arows, b, c, k0 == kbeg, nullptr);
            } else {
              gemm_micro_rows_scalar(kc, arows, b, c, k0 == kbeg);
            }
          }
        }
      }
    }
  });
  const bool epilogue = has_epilogue(g);
  ThreadPool::instance().parallel_for(g.m, 8, [&](int64_t m0, int64_t m1) {
    thread_local ScratchVec<float> t_row;
    float* row = t_row.get(size_t(ldp));
    for (int64_t m = m0; m < m1; ++m) {
      std::memcpy(row, parts + m * ldp, size_t(g.n) * sizeof(float));
      for (int64_t t = 1; t < tasks; ++t) {
        const float* q = parts + (t * rows + m) * ldp;
        for (int64_t j = 0; j < g.n; ++j) row[j] += q[j];
      }
      if (epilogue) epilogue_row(cx, m, 0, g.n, row);
      float* c = const_cast<float*>(g.c.data) + g.c.row_offset(m);
      if (g.c.col_stride == 1) std::memcpy(c, row, size_t(g.n) * sizeof(float));
      else for (int64_t j = 0; j < g.n; ++j) c[j * g.c.col_stride] = row[j];
    }
  });
}

}  // namespace

void gemm_f32(const GemmArgs& g) {
  if (g.m <= 0 || g.n <= 0) return;
  thread_local ScratchVec<float> t_stats, t_rope;
  Ctx cx{g, nullptr, nullptr, nullptr, cpu_simd() == CpuSimd::Avx2Fma};
  ThreadPool& pool = ThreadPool::instance();
  auto run = [&](int64_t items, int64_t grain, auto&& fn) { pool.parallel_for(items, grain, fn); };

  // A needs a prologue (LayerNorm, an add, or gathering strided columns) unless it is a plain
  // row-major A or an im2col view. A' = LN(A + add) is then formed once for all rows, in the
  // same pass as the row statistics, when it is small (M x K <= kAPrimeOnceMax; not on the
  // small-M dot path, which forms its own): the tasks read it in place like a plain A. Formed
  // per task instead, it was formed again by every task that splits B's panels (M < N: 4x for
  // stage 2's qkv at 2 threads), and the statistics took a pass of their own.
  const bool prologue = g.im2col == nullptr && (g.layer_norm || g.add.data != nullptr || g.a.col_stride != 1);
  const bool aprime_once = prologue && g.k > 0 && g.m > kGemmDotMaxM && g.m * g.k <= kAPrimeOnceMax && !ksplit_wanted(g);
  thread_local ScratchVec<float> t_aprime;
  float* aprime = aprime_once ? t_aprime.get(size_t(g.m * g.k)) : nullptr;
  float* stats = g.layer_norm ? t_stats.get(size_t(2 * g.m)) : nullptr;
  cx.mean = stats;
  cx.rstd = stats != nullptr ? stats + g.m : nullptr;
  if (g.layer_norm || aprime_once) {
    run(g.m, 16, [&](int64_t m0, int64_t m1) {
      if (stats != nullptr) row_stats(g, m0, m1, stats, stats + g.m);
      if (aprime_once)
        for (int64_t m = m0; m < m1; ++m) prologue_row(cx, m, 0, g.k, aprime + m * g.k);
    });
  }
  if (g.rope.angle != nullptr) {
    const GemmRope& rp = g.rope;
    float* cs = t_rope.get(size_t((rp.height + rp.width) * (rp.d / 4) * 2));
    rope_table(rp.angle, rp.d, rp.height, rp.width, cs);
    cx.rope_cs = cs;
  }

  if (g.k == 0) {  // C = epilogue(0)
    run(g.m, 64, [&](int64_t m0, int64_t m1) {
      std::vector<float> row(size_t(g.n));
      for (int64_t m = m0; m < m1; ++m) {
        std::fill(row.begin(), row.end(), 0.0f);
        if (has_epilogue(g)) epilogue_row(cx, m, 0, g.n, row.data());
        float* c = const_cast<float*>(g.c.data) + g.c.row_offset(m);
        for (int64_t n = 0; n < g.n; ++n) c[n * g.c.col_stride] = row[size_t(n)];
      }
    });
    return;
  }
  if (g.m <= kGemmDotMaxM && g.im2col == nullptr && g.b_koff == nullptr && g.b_k_stride == 1) {
    dot_path(cx);
    return;
  }

  if (ksplit_wanted(g)) {
    ksplit_path(cx, pool.threads());
    return;
  }

  // A read in place when there is nothing to apply to it (or A' was formed above for all rows).
  const bool a_direct = g.im2col == nullptr && (!prologue || aprime_once);
  const int64_t kcmax = choose_kc(g.k);
  const int64_t kblocks = (g.k + kcmax - 1) / kcmax;
  const int64_t np = (g.n + NR - 1) / NR;
  // B packed once for all K blocks: block kb's panel p at bpack + (kb * np + p) * kcmax * NR.
  const float* bpack = packed_b(g, cx.avx2, kcmax, np);
  // Tasks: row blocks (at most kMC rows; even shares of 6-row panels) times chunks of B panels,
  // at least two tasks per thread, and a multiple of the thread count so that equal tasks
  // share out evenly. When B is the larger operand its panels are split first, so that each
  // task reads only its share of the packed B; otherwise the rows are.
  const int64_t threads = pool.threads();
  const int64_t mp = (g.m + MR - 1) / MR;
  const int64_t target = threads > 1 ? 2 * threads : 1;
  const int64_t min_mblocks = (mp + kMC / MR - 1) / (kMC / MR);
  int64_t mblocks, nchunks;
  if (g.m < g.n && threads > 1) {
    mblocks = min_mblocks;
    nchunks = std::min<int64_t>(np, target);
  } else {
    mblocks = std::min(mp, std::max(min_mblocks, target));
    nchunks = mblocks < target ? std::min<int64_t>(np, (target + mblocks - 1) / mblocks) : 1;
  }
  if (threads > 1 && (mblocks * nchunks) % threads != 0 && mblocks < mp)
    mblocks = std::min(mp, mblocks + (threads - (mblocks * nchunks) % threads));
  const int64_t panels_per_chunk = (np + nchunks - 1) / nchunks;
  nchunks = (np + panels_per_chunk - 1) / panels_per_chunk;
  auto block_rows = [&](int64_t mb) { return std::min(g.m, (mb * mp / mblocks) * MR); };

  // Whole tiles of the AVX2 path whose epilogue (if any) fits in registers go straight to the
  // micro-kernel with row pointers worked out once per task; the rest through tile(). RoPE fits
  // when a 16-column tile's 8 pairs share one half of a head's table (d a multiple of 32).
  const bool epilogue = has_epilogue(g);
  const GemmRope& rp = g.rope;
  const bool rope = rp.angle != nullptr;
  const int64_t rope_e = rope ? rp.heads * rp.d : 0, rope_q4 = rope ? rp.d / 4 : 0;
  const bool fast = cx.avx2 && g.c.col_stride == 1 && (!rope || rp.d % 32 == 0) &&
                    (g.residual.data == nullptr || g.residual.col_stride == 1);
  run(mblocks * nchunks, 1, [&](int64_t t0, int64_t t1) {
    thread_local ScratchVec<float> t_apack;
    thread_local ScratchVec<const float*> t_rows;
    const int64_t max_mc = (mp / mblocks + 1) * MR;
    float* apack = a_direct ? nullptr : t_apack.get(size_t(max_mc * kcmax));
    // Per row of the task's block: A at k = 0 (plain A), A at this K block's k0, C, the
    // residual, and RoPE's table rows for the token's y and x.
    const float** arow = t_rows.get(size_t(7 * max_mc));
    const float** akrow = arow + max_mc;
    const float** crow = akrow + max_mc;
    const float** rrow = crow + max_mc;
    const float** ycs = rrow + max_mc;
    const float** xcs = ycs + max_mc;
    float** prow = const_cast<float**>(xcs + max_mc);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t mb = t / nchunks, nc = t % nchunks;
      const int64_t m0 = block_rows(mb), mc = block_rows(mb + 1) - m0;
      const int64_t p_begin = nc * panels_per_chunk, p_end = std::min(np, p_begin + panels_per_chunk);
      for (int64_t r = 0; r < mc; ++r) {
        if (a_direct) arow[r] = aprime_once ? aprime + (m0 + r) * g.k : g.a.data + g.a.row_offset(m0 + r);
        crow[r] = g.c.data + g.c.row_offset(m0 + r);
        rrow[r] = g.residual.data != nullptr ? g.residual.data + g.residual.row_offset(m0 + r) : nullptr;
        prow[r] = g.pre.data != nullptr ? const_cast<float*>(g.pre.data) + g.pre.row_offset(m0 + r) : nullptr;
        if (rope) {
          const int64_t l = (m0 + r) % (rp.height * rp.width);
          const int64_t y = l / rp.width, x = l % rp.width;
          ycs[r] = cx.rope_cs + y * rope_q4 * 2;
          xcs[r] = cx.rope_cs + (rp.height + x) * rope_q4 * 2;
        }
      }
      for (int64_t kb = 0; kb < kblocks; ++kb) {
        const int64_t k0 = kb * kcmax, kc = std::min(kcmax, g.k - k0);
        const bool first = kb == 0, last = kb + 1 == kblocks;
        if (!a_direct) pack_rows(cx, m0, mc, k0, kc, apack);
        for (int64_t r = 0; r < mc; ++r) akrow[r] = a_direct ? arow[r] + k0 : apack + r * kc;
        for (int64_t p = p_begin; p < p_end; ++p) {
          const float* bp = bpack + (kb * np + p) * kcmax * NR;
          const int64_t n0 = p * NR, nn = std::min(NR, g.n - n0);
          TileEpilogue te{};
          const bool with_epi = last && epilogue;
          const bool rope_tile = with_epi && rope && n0 < 2 * rope_e;
          const int64_t pair0 = rope_tile ? (n0 % rp.d) / 2 : 0;  // the tile's first pair in its head
          if (with_epi) {
            te.col_scale = g.col_scale != nullptr ? g.col_scale + n0 : nullptr;
            te.bias = g.bias != nullptr ? g.bias + n0 : nullptr;
            te.scale = g.scale != nullptr ? g.scale + n0 : nullptr;
            te.act = g.act;
            te.rope_scale = rope_tile && n0 >= rope_e ? rp.k_scale : 1.0f;
          }
          for (int64_t ir = 0; ir < mc; ir += MR) {
            if (!fast || nn != NR || ir + MR > mc) {
              tile(cx, kc, akrow + ir, bp, m0 + ir, n0, std::min(MR, mc - ir), nn, first, last);
              continue;
            }
            float* c[MR];
            for (int64_t r = 0; r < MR; ++r) {
              c[r] = const_cast<float*>(crow[ir + r]) + n0;
              if (with_epi) {
                te.res[r] = rrow[ir + r] != nullptr ? rrow[ir + r] + n0 : nullptr;
                te.pre[r] = prow[ir + r] != nullptr ? prow[ir + r] + n0 : nullptr;
              }
              if (rope_tile)
                te.rope[r] = pair0 < rope_q4 ? ycs[ir + r] + pair0 * 2 : xcs[ir + r] + (pair0 - rope_q4) * 2;
            }
            gemm_micro_rows_avx2(kc, akrow + ir, bp, c, first, with_epi ? &te : nullptr);
          }
        }
      }
    }
  });
}

}  // namespace secvit::cpu
