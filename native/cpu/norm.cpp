// CPU kernels of layerNorm, batchNorm and foldBatchNorm (native/ops/norm.h). The output has
// x's layout, so every element is written at its input's offset.
//   layerNorm: positions (all dims but the normalised one) in memory order. When the
//   normalised dim is the innermost (channels-last, or the last dim), each position is a
//   contiguous row: two passes (mean, then the centred variance) and the affine. Otherwise the
//   statistics of a whole innermost run of positions are accumulated together, so the loads
//   stay contiguous. Statistics in fp32, two-pass (no cancellation).
//   batchNorm: a per-channel scale and shift, applied in one pass.
// Cost: ~3 reads and 1 write per element (layerNorm), 1 and 1 (batchNorm).
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu_features.h"
#include "core/op.h"
#include "core/thread_pool.h"
#include "gemm.h"
#include "norm.h"
#include "ops/norm.h"
#include "scratch.h"

namespace secvit::cpu {
namespace {

// Calls fn(offset, run_len, run_stride) for each run of the innermost other dim, parallel over
// the runs: offset of the run's first position, and the positions' stride within the run.
template <typename F>
void for_runs(const NormOpParams& p, int64_t grain, F fn) {
  const int nd = p.nd;
  const int64_t inner = nd > 0 ? p.shape[nd - 1] : 1;
  const int64_t inner_stride = nd > 0 ? p.stride[nd - 1] : 0;
  int64_t runs = 1;
  for (int k = 0; k + 1 < nd; ++k) runs *= p.shape[k];
  ThreadPool::instance().parallel_for(runs, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t rem = r, off = 0;
      for (int k = nd - 2; k >= 0; --k) {
        off += (rem % p.shape[k]) * p.stride[k];
        rem /= p.shape[k];
      }
      fn(off, inner, inner_stride);
    }
  });
}

void layer_norm_kernel(const KernelArgs& a) {
  const NormOpParams& p = a.p<NormOpParams>();
  const float* x = a.in[0].ptr<float>();
  const float* w = a.in[1].ptr<float>();
  const float* b = a.in[2].ptr<float>();
  float* y = a.out[0].ptr<float>();
  const int64_t D = p.d, sd = p.d_stride;
  if (a.out[0].numel() == 0) return;
  const float inv_d = 1.0f / float(D);
  if (sd == 1) {
    for_runs(p, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, D * (p.nd > 0 ? p.shape[p.nd - 1] : 1))),
             [&](int64_t off, int64_t n, int64_t s) {
      for (int64_t i = 0; i < n; ++i) {
        const float* __restrict__ xr = x + off + i * s;
        float* __restrict__ yr = y + off + i * s;
        float mu, rs;
        layer_norm_stats(xr, D, p.eps, &mu, &rs);
        for (int64_t j = 0; j < D; ++j) {
          float v = (xr[j] - mu) * rs;
          if (w != nullptr) v *= w[j];
          if (b != nullptr) v += b[j];
          yr[j] = v;
        }
      }
    });
    return;
  }
  // Strided normalised dim: a run of positions at once.
  for_runs(p, 1, [&](int64_t off, int64_t n, int64_t s) {
    // Per-thread scratch, reused across runs.
    thread_local std::vector<float> mu, rs;
    mu.assign(size_t(n), 0.0f);
    rs.assign(size_t(n), 0.0f);
    for (int64_t j = 0; j < D; ++j) {
      const float* xr = x + off + j * sd;
      for (int64_t i = 0; i < n; ++i) mu[size_t(i)] += xr[i * s];
    }
    for (int64_t i = 0; i < n; ++i) mu[size_t(i)] *= inv_d;
    for (int64_t j = 0; j < D; ++j) {
      const float* xr = x + off + j * sd;
      for (int64_t i = 0; i < n; ++i) {
        const float t = xr[i * s] - mu[size_t(i)];
        rs[size_t(i)] += t * t;
      }
    }
    for (int64_t i = 0; i < n; ++i) rs[size_t(i)] = 1.0f / std::sqrt(rs[size_t(i)] * inv_d + p.eps);
    for (int64_t j = 0; j < D; ++j) {
      const float* xr = x + off + j * sd;
      float* yr = y + off + j * sd;
      const float wj = w != nullptr ? w[j] : 1.0f, bj = b != nullptr ? b[j] : 0.0f;
      for (int64_t i = 0; i < n; ++i) yr[i * s] = (xr[i * s] - mu[size_t(i)]) * rs[size_t(i)] * wj + bj;
    }
  });
}

void batch_norm_kernel(const KernelArgs& a) {
  const NormOpParams& p = a.p<NormOpParams>();
  const float* x = a.in[0].ptr<float>();
  const float* mean = a.in[1].ptr<float>();
  const float* var = a.in[2].ptr<float>();
  const float* w = a.in[3].ptr<float>();
  const float* b = a.in[4].ptr<float>();
  float* y = a.out[0].ptr<float>();
  if (a.out[0].numel() == 0) return;
  const int64_t C = p.d, sc = p.d_stride;
  std::vector<float> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const float s = (w != nullptr ? w[c] : 1.0f) / std::sqrt(var[c] + p.eps);
    scale[size_t(c)] = s;
    shift[size_t(c)] = (b != nullptr ? b[c] : 0.0f) - mean[c] * s;
  }
  for_runs(p, 1, [&](int64_t off, int64_t n, int64_t s) {
    if (sc == 1) {  // channels innermost: contiguous per position
      for (int64_t i = 0; i < n; ++i) {
        const float* __restrict__ xr = x + off + i * s;
        float* __restrict__ yr = y + off + i * s;
        for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * scale[size_t(c)] + shift[size_t(c)];
      }
      return;
    }
    for (int64_t c = 0; c < C; ++c) {
      const float* __restrict__ xr = x + off + c * sc;
      float* __restrict__ yr = y + off + c * sc;
      const float m = scale[size_t(c)], t = shift[size_t(c)];
      if (s == 1)
        for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * m + t;
      else
        for (int64_t i = 0; i < n; ++i) yr[i * s] = xr[i * s] * m + t;
    }
  });
}

void fold_bn_kernel(const KernelArgs& a) {
  const FoldBnOpParams& p = a.p<FoldBnOpParams>();
  const float* w = a.in[0].ptr<float>();
  const float* bias = a.in[1].ptr<float>();
  const float* mean = a.in[2].ptr<float>();
  const float* var = a.in[3].ptr<float>();
  const float* gamma = a.in[4].ptr<float>();
  const float* beta = a.in[5].ptr<float>();
  float* wo = a.out[0].ptr<float>();
  float* bo = a.out[1].ptr<float>();
  for (int64_t o = 0; o < p.o; ++o) {
    // In double: the folded parameters are computed once and then used for every forward.
    const double s = (gamma != nullptr ? double(gamma[o]) : 1.0) / std::sqrt(double(var[o]) + double(p.eps));
    for (int64_t i = 0; i < p.per_o; ++i) wo[o * p.per_o + i] = float(double(w[o * p.per_o + i]) * s);
    bo[o] = float(((bias != nullptr ? double(bias[o]) : 0.0) - double(mean[o])) * s +
                  (beta != nullptr ? double(beta[o]) : 0.0));
  }
}

// ---- training and gradients -------------------------------------------------------------------
// Positions (every dim but the normalised one) in memory order, in parallel chunks; each chunk
// keeps its own double partial sums of the per-channel quantities, added at the end (no
// atomics; the same result for any thread count with the same chunking). A position's vector
// (strided by d_stride, contiguous in the channels-last layout the model uses) is gathered into
// a row, worked on there, and written back.

int64_t num_positions(const NormOpParams& p) {
  int64_t n = 1;
  for (int k = 0; k < p.nd; ++k) n *= p.shape[k];
  return n;
}

// fn(x_off, y_off) for positions [p0, p1): offsets in x's layout and in a second layout (ys).
template <typename F>
void walk_positions(const NormOpParams& p, const int64_t* ys, int64_t p0, int64_t p1, F fn) {
  int64_t idx[kMaxDims] = {};
  int64_t rem = p0, xo = 0, yo = 0;
  for (int k = p.nd - 1; k >= 0; --k) {
    idx[k] = rem % p.shape[k];
    rem /= p.shape[k];
    xo += idx[k] * p.stride[k];
    yo += idx[k] * ys[k];
  }
  for (int64_t i = p0; i < p1; ++i) {
    fn(xo, yo);
    for (int k = p.nd - 1; k >= 0; --k) {
      xo += p.stride[k];
      yo += ys[k];
      if (++idx[k] < p.shape[k]) break;
      xo -= p.shape[k] * p.stride[k];
      yo -= p.shape[k] * ys[k];
      idx[k] = 0;
    }
  }
}

inline void gather(const float* src, int64_t stride, int64_t n, float* dst) {
  if (stride == 1) std::copy(src, src + n, dst);
  else for (int64_t j = 0; j < n; ++j) dst[j] = src[j * stride];
}
inline void scatter(const float* src, int64_t n, float* dst, int64_t stride) {
  if (stride == 1) std::copy(src, src + n, dst);
  else for (int64_t j = 0; j < n; ++j) dst[j * stride] = src[j];
}

// Runs body(chunk, p0, p1) over position chunks in parallel with `width` doubles of partial sums
// per chunk (zeroed); returns the partials, chunk after chunk.
template <typename F>
std::vector<double> chunked(int64_t positions, int64_t width, F body) {
  ThreadPool& pool = ThreadPool::instance();
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(positions, int64_t(pool.threads()) * 4));
  std::vector<double> partial(size_t(chunks * width), 0.0);
  pool.parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) body(partial.data() + c * width, c * positions / chunks, (c + 1) * positions / chunks);
  });
  return partial;
}

double chunk_sum(const std::vector<double>& partial, int64_t width, int64_t j) {
  double s = 0.0;
  for (size_t c = 0; c * size_t(width) < partial.size(); ++c) s += partial[c * size_t(width) + size_t(j)];
  return s;
}

// Whether each position's channels are contiguous and the positions follow one another in
// memory order (channels-last, dense; the layout the model's convolutions produce), in x and,
// when given, in dy: position i is then row i of a [P, C] matrix and the kernels below run over
// plain rows, in blocks, instead of gathering each position (with C = 16-32, as in small models'
// stems, the per-position walk cost 10x the arithmetic). Same operations in the same order per
// element and per chunk: the results are those of the general path.
bool dense_rows(const NormOpParams& p, const int64_t* ys = nullptr, int64_t y_d_stride = 1) {
  if (p.d_stride != 1 || y_d_stride != 1) return false;
  int64_t want = p.d;
  for (int k = p.nd - 1; k >= 0; --k) {
    if (p.shape[k] != 1 && (p.stride[k] != want || (ys != nullptr && ys[k] != want))) return false;
    want *= p.shape[k];
  }
  return true;
}

constexpr int64_t kRowBlock = 64;

void layer_norm_backward_kernel(const KernelArgs& a) {
  const LayerNormBackwardParams& q = a.p<LayerNormBackwardParams>();
  const NormOpParams& p = q.n;
  const float* dy = a.in[0].ptr<float>();
  const float* x = a.in[1].ptr<float>();
  const float* w = a.in[2].ptr<float>();
  float* dx = a.out[0].ptr<float>();
  const int64_t D = p.d;
  const int64_t P = num_positions(p);
  const std::vector<double> partial = chunked(P, 2 * D, [&](double* acc, int64_t p0, int64_t p1) {
    thread_local ScratchVec<float> t_buf;
    float* xr = t_buf.get(size_t(3 * D));
    float* gr = xr + D;
    float* hr = gr + D;
    walk_positions(p, q.dy_stride, p0, p1, [&](int64_t xo, int64_t yo) {
      gather(x + xo, p.d_stride, D, xr);
      gather(dy + yo, q.dy_d_stride, D, gr);
      float mu, rs;
      layer_norm_stats(xr, D, p.eps, &mu, &rs);
      double c1 = 0.0, c2 = 0.0;
      for (int64_t j = 0; j < D; ++j) {
        const float xh = (xr[j] - mu) * rs;
        const float g = gr[j] * (w != nullptr ? w[j] : 1.0f);
        acc[j] += double(gr[j]) * double(xh);
        acc[D + j] += double(gr[j]);
        xr[j] = xh;
        hr[j] = g;
        c1 += g;
        c2 += double(g) * double(xh);
      }
      const float m1 = float(c1 / double(D)), m2 = float(c2 / double(D));
      for (int64_t j = 0; j < D; ++j) hr[j] = rs * (hr[j] - m1 - xr[j] * m2);
      scatter(hr, D, dx + xo, p.d_stride);
    });
  });
  if (q.need_weight)
    for (int64_t j = 0; j < D; ++j) a.out[1].ptr<float>()[j] = float(chunk_sum(partial, 2 * D, j));
  if (q.need_bias)
    for (int64_t j = 0; j < D; ++j) a.out[2].ptr<float>()[j] = float(chunk_sum(partial, 2 * D, D + j));
}

void batch_norm_train_kernel(const KernelArgs& a) {
  const BatchNormTrainParams& q = a.p<BatchNormTrainParams>();
  const NormOpParams& p = q.n;
  const float* x = a.in[0].ptr<float>();
  const float* w = a.in[1].ptr<float>();
  const float* b = a.in[2].ptr<float>();
  float* y = a.out[0].ptr<float>();
  float* mean = a.out[1].ptr<float>();
  float* var = a.out[2].ptr<float>();
  const int64_t C = p.d;
  const int64_t P = num_positions(p);
  const bool avx2 = cpu_simd() == CpuSimd::Avx2Fma;
  const bool dense = dense_rows(p);
  // Two passes over x: the mean, then the centred sum of squares (no cancellation).
  const std::vector<double> sums = chunked(P, C, [&](double* acc, int64_t p0, int64_t p1) {
    if (dense) {
      for (int64_t i = p0; i < p1; ++i) {
        const float* r = x + i * C;
        for (int64_t c = 0; c < C; ++c) acc[c] += r[c];
      }
      return;
    }
    walk_positions(p, p.stride, p0, p1, [&](int64_t xo, int64_t) {
      for (int64_t c = 0; c < C; ++c) acc[c] += x[xo + c * p.d_stride];
    });
  });
  std::vector<double> mu(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) mu[size_t(c)] = chunk_sum(sums, C, c) / double(P);
  const std::vector<double> sq = chunked(P, C, [&](double* acc, int64_t p0, int64_t p1) {
    if (dense) {
      const double* m = mu.data();
      for (int64_t i = p0; i < p1; ++i) {
        const float* r = x + i * C;
        for (int64_t c = 0; c < C; ++c) {
          const double t = r[c] - m[c];
          acc[c] += t * t;
        }
      }
      return;
    }
    walk_positions(p, p.stride, p0, p1, [&](int64_t xo, int64_t) {
      for (int64_t c = 0; c < C; ++c) {
        const double t = x[xo + c * p.d_stride] - mu[size_t(c)];
        acc[c] += t * t;
      }
    });
  });
  std::vector<float> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const double v = chunk_sum(sq, C, c) / double(P);
    mean[c] = float(mu[size_t(c)]);
    var[c] = float(v);
    const double istd = 1.0 / std::sqrt(v + double(p.eps));
    scale[size_t(c)] = float(istd * (w != nullptr ? w[c] : 1.0f));
    shift[size_t(c)] = float((b != nullptr ? b[c] : 0.0f) - mu[size_t(c)] * istd * (w != nullptr ? w[c] : 1.0f));
    if (q.update) {
      float* rm = a.out[3].ptr<float>();
      float* rv = a.out[4].ptr<float>();
      const double unbiased = P > 1 ? v * double(P) / double(P - 1) : v;
      rm[c] = float((1.0 - q.momentum) * double(rm[c]) + q.momentum * mu[size_t(c)]);
      rv[c] = float((1.0 - q.momentum) * double(rv[c]) + q.momentum * unbiased);
    }
  }
  chunked(P, 0, [&](double*, int64_t p0, int64_t p1) {
    if (dense) {
      // A block of rows at a time: the affine row by row, the activation over the whole block.
      const float* sc = scale.data();
      const float* sh = shift.data();
      for (int64_t i0 = p0; i0 < p1; i0 += kRowBlock) {
        const int64_t n = std::min(kRowBlock, p1 - i0);
        for (int64_t i = i0; i < i0 + n; ++i) {
          const float* r = x + i * C;
          float* o = y + i * C;
          for (int64_t c = 0; c < C; ++c) o[c] = r[c] * sc[c] + sh[c];
        }
        if (q.act != 0) {
          if (avx2) act_inplace_avx2(Act(q.act), y + i0 * C, n * C);
          else act_inplace_scalar(Act(q.act), y + i0 * C, n * C);
        }
      }
      return;
    }
    thread_local ScratchVec<float> t_buf;
    float* row = t_buf.get(static_cast<size_t>(C));
    walk_positions(p, p.stride, p0, p1, [&](int64_t xo, int64_t) {
      gather(x + xo, p.d_stride, C, row);
      for (int64_t c = 0; c < C; ++c) row[c] = row[c] * scale[size_t(c)] + shift[size_t(c)];
      if (q.act != 0) {
        if (avx2) act_inplace_avx2(Act(q.act), row, C);
        else act_inplace_scalar(Act(q.act), row, C);
      }
      scatter(row, C, y + xo, p.d_stride);
    });
  });
}

void batch_norm_backward_kernel(const KernelArgs& a) {
  const BatchNormBackwardParams& q = a.p<BatchNormBackwardParams>();
  const NormOpParams& p = q.n;
  const float* dy = a.in[0].ptr<float>();
  const float* x = a.in[1].ptr<float>();
  const float* mean = a.in[2].ptr<float>();
  const float* var = a.in[3].ptr<float>();
  const float* w = a.in[4].ptr<float>();
  const float* b = a.in[5].ptr<float>();
  float* dx = a.out[0].ptr<float>();
  const int64_t C = p.d;
  const int64_t P = num_positions(p);
  const bool avx2 = cpu_simd() == CpuSimd::Avx2Fma;
  std::vector<float> istd(static_cast<size_t>(C)), wv(static_cast<size_t>(C)), bv(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    istd[size_t(c)] = float(1.0 / std::sqrt(double(var[c]) + double(p.eps)));
    wv[size_t(c)] = w != nullptr ? w[c] : 1.0f;
    bv[size_t(c)] = b != nullptr ? b[c] : 0.0f;
  }
  // Pass 1: g = dy act'(z) into dx (x's layout), and the sums of g, g x-hat and x-hat per
  // channel. (x-hat sums to 0 in exact arithmetic; its computed mean is subtracted in pass 2, so
  // that the rounding of the batch mean does not leave dx with a sum of its own: a conv bias
  // before a training batch norm then gets a gradient at rounding level, as it should, not
  // one of ~1e-7 that Adam would turn into steps of lr.)
  const bool dense = dense_rows(p, q.dy_stride, q.dy_d_stride);
  const std::vector<double> sums = chunked(P, 3 * C, [&](double* acc, int64_t p0, int64_t p1) {
    if (dense) {
      // A block of rows at a time: x-hat and z for the block, the activation's gradient over
      // the block (written to dx), then the sums row by row.
      thread_local ScratchVec<float> t_blk;
      float* xh = t_blk.get(size_t(2 * kRowBlock * C));
      float* z = xh + kRowBlock * C;
      const float* is = istd.data();
      const float* wp = wv.data();
      const float* bp = bv.data();
      for (int64_t i0 = p0; i0 < p1; i0 += kRowBlock) {
        const int64_t n = std::min(kRowBlock, p1 - i0);
        for (int64_t r = 0; r < n; ++r) {
          const float* xr = x + (i0 + r) * C;
          float* hr = xh + r * C;
          float* zr = z + r * C;
          for (int64_t c = 0; c < C; ++c) {
            hr[c] = (xr[c] - mean[c]) * is[c];
            zr[c] = hr[c] * wp[c] + bp[c];
          }
        }
        float* g = dx + i0 * C;
        if (q.act != 0) {
          if (avx2) act_grad_avx2(Act(q.act), dy + i0 * C, z, g, n * C);
          else act_grad_scalar(Act(q.act), dy + i0 * C, z, g, n * C);
        } else {
          std::copy(dy + i0 * C, dy + (i0 + n) * C, g);
        }
        for (int64_t r = 0; r < n; ++r) {
          const float* gr = g + r * C;
          const float* hr = xh + r * C;
          for (int64_t c = 0; c < C; ++c) {
            acc[c] += double(gr[c]);
            acc[C + c] += double(gr[c]) * double(hr[c]);
            acc[2 * C + c] += double(hr[c]);
          }
        }
      }
      return;
    }
    thread_local ScratchVec<float> t_buf;
    float* xh = t_buf.get(size_t(3 * C));
    float* g = xh + C;
    float* z = g + C;
    walk_positions(p, q.dy_stride, p0, p1, [&](int64_t xo, int64_t yo) {
      gather(x + xo, p.d_stride, C, xh);
      gather(dy + yo, q.dy_d_stride, C, g);
      for (int64_t c = 0; c < C; ++c) {
        xh[c] = (xh[c] - mean[c]) * istd[size_t(c)];
        z[c] = xh[c] * wv[size_t(c)] + bv[size_t(c)];
      }
      if (q.act != 0) {
        if (avx2) act_grad_avx2(Act(q.act), g, z, g, C);
        else act_grad_scalar(Act(q.act), g, z, g, C);
      }
      for (int64_t c = 0; c < C; ++c) {
        acc[c] += double(g[c]);
        acc[C + c] += double(g[c]) * double(xh[c]);
        acc[2 * C + c] += double(xh[c]);
      }
      scatter(g, C, dx + xo, p.d_stride);
    });
  });
  const double inv_n = 1.0 / double(std::max<int64_t>(P, 1));
  std::vector<float> mean_g(static_cast<size_t>(C)), mean_gx(static_cast<size_t>(C)), mean_x(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const double sg = chunk_sum(sums, 3 * C, c), sgx = chunk_sum(sums, 3 * C, C + c);
    mean_g[size_t(c)] = float(sg * inv_n);
    mean_gx[size_t(c)] = float(sgx * inv_n);
    mean_x[size_t(c)] = float(chunk_sum(sums, 3 * C, 2 * C + c) * inv_n);
    a.out[1].ptr<float>()[c] = float(sgx);
    a.out[2].ptr<float>()[c] = float(sg);
  }
  // Pass 2: dx from g, in place.
  chunked(P, 0, [&](double*, int64_t p0, int64_t p1) {
    if (dense) {
      const float* is = istd.data();
      const float* wp = wv.data();
      const float* mg = mean_g.data();
      const float* mgx = mean_gx.data();
      const float* mx = mean_x.data();
      for (int64_t i = p0; i < p1; ++i) {
        float* g = dx + i * C;
        const float* xr = x + i * C;
        if (q.training) {
          for (int64_t c = 0; c < C; ++c) {
            const float h = (xr[c] - mean[c]) * is[c] - mx[c];
            g[c] = wp[c] * is[c] * ((g[c] - mg[c]) - h * mgx[c]);
          }
        } else {
          for (int64_t c = 0; c < C; ++c) g[c] *= wp[c] * is[c];
        }
      }
      return;
    }
    thread_local ScratchVec<float> t_buf;
    float* g = t_buf.get(size_t(2 * C));
    float* xh = g + C;
    walk_positions(p, p.stride, p0, p1, [&](int64_t xo, int64_t) {
      gather(dx + xo, p.d_stride, C, g);
      if (q.training) {
        gather(x + xo, p.d_stride, C, xh);
        for (int64_t c = 0; c < C; ++c) {
          const float h = (xh[c] - mean[c]) * istd[size_t(c)] - mean_x[size_t(c)];
          g[c] = wv[size_t(c)] * istd[size_t(c)] * ((g[c] - mean_g[size_t(c)]) - h * mean_gx[size_t(c)]);
        }
      } else {
        for (int64_t c = 0; c < C; ++c) g[c] *= wv[size_t(c)] * istd[size_t(c)];
      }
      scatter(g, C, dx + xo, p.d_stride);
    });
  });
}

}  // namespace

// dy through any strides, x in any dense layout (the rules pack the others).
SECVIT_KERNEL(layerNormBackward, Device::Cpu, kF32, layer_norm_backward_kernel, nullptr, 0x3);
SECVIT_KERNEL(batchNormTrain, Device::Cpu, kF32, batch_norm_train_kernel, nullptr, 0x1);
SECVIT_KERNEL(batchNormBackward, Device::Cpu, kF32, batch_norm_backward_kernel, nullptr, 0x3);
SECVIT_KERNEL(layerNorm, Device::Cpu, kF32, layer_norm_kernel, nullptr, 1u);
SECVIT_KERNEL(batchNorm, Device::Cpu, kF32, batch_norm_kernel, nullptr, 1u);
SECVIT_KERNEL(foldBatchNorm, Device::Cpu, kF32, fold_bn_kernel, nullptr, 0);

}  // namespace secvit::cpu
