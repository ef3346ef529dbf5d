// CPU kernels of sum and sumSquares (native/ops/reduce.h), accumulated in double.
// Two schedules: many outputs (at least 64 per thread) that are not adjacent in memory: parallel
// over outputs, each summing its reduced elements through their strides. Few outputs, or
// outputs adjacent in memory (a bias gradient: N sums over M contiguous rows of N): parallel
// over chunks of the reduced elements, each thread adding every output's elements of its chunk
// into a private row of partial sums (a contiguous loop when the outputs are adjacent); the
// partials are added at the end (no atomics, the same result at any thread count for a fixed
// chunking).
// Cost: one read per element; partials: threads x outputs doubles.
#include <algorithm>
#include <vector>

#include "core/op.h"
#include "core/thread_pool.h"
#include "ops/reduce.h"

namespace secvit::cpu {
namespace {

// Offset of flat index i over dims (shape, stride), outermost first.
inline int64_t offset_of(int64_t i, int n, const int64_t* shape, const int64_t* stride) {
  int64_t off = 0;
  for (int k = n - 1; k >= 0; --k) {
    off += (i % shape[k]) * stride[k];
    i /= shape[k];
  }
  return off;
}

void sum_kernel(const KernelArgs& a) {
  const SumOpParams& p = a.p<SumOpParams>();
  const float* x = a.in[0].ptr<float>();
  float* y = a.out[0].ptr<float>();
  ThreadPool& pool = ThreadPool::instance();
  if (p.n_out == 0) return;
  if (p.n_red == 0) {
    std::fill(y, y + p.n_out, 0.0f);
    return;
  }
  // Outputs adjacent in memory (a bias gradient over channels-last rows: x[..., o]): the
  // chunked schedule below with a contiguous inner loop, whatever the output count.
  const bool contiguous_out = p.nk >= 1 && p.kstride[p.nk - 1] == 1 &&
                              (p.nk == 1 || p.kstride[p.nk - 2] == p.kshape[p.nk - 1]) && p.nk <= 2 &&
                              p.n_out <= (int64_t(1) << 16);
  if (!contiguous_out && p.n_out >= 64 * pool.threads()) {
    // The reduced elements as runs of the innermost reduced dim.
    const int64_t rin = p.nr > 0 ? p.rshape[p.nr - 1] : 1;
    const int64_t rin_stride = p.nr > 0 ? p.rstride[p.nr - 1] : 0;
    const int64_t runs = p.n_red / rin;
    auto run_offset = [&](int64_t r) { return offset_of(r, p.nr - 1, p.rshape, p.rstride); };
    pool.parallel_for(p.n_out, 16, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const float* xo = x + offset_of(o, p.nk, p.kshape, p.kstride);
        double acc = 0.0;
        for (int64_t r = 0; r < runs; ++r) {
          const float* xr = xo + run_offset(r);
          for (int64_t j = 0; j < rin; ++j) {
            const double v = xr[j * rin_stride];
            acc += p.squares ? v * v : v;
          }
        }
        y[o] = float(acc);
      }
    });
    return;
  }
  // Few outputs: their offsets once; chunks of the reduced elements in parallel, walked with an
  // odometer (no division per element).
  std::vector<int64_t> out_off(size_t(p.n_out));
  for (int64_t o = 0; o < p.n_out; ++o) out_off[size_t(o)] = offset_of(o, p.nk, p.kshape, p.kstride);
  const int64_t chunks = std::min<int64_t>(std::max<int64_t>(1, p.n_red / 4096), int64_t(pool.threads()) * 4);
  std::vector<double> partial(size_t(chunks * p.n_out), 0.0);
  pool.parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double* acc = partial.data() + c * p.n_out;
      const int64_t r0 = c * p.n_red / chunks, r1 = (c + 1) * p.n_red / chunks;
      int64_t idx[kMaxDims] = {};
      int64_t rem = r0, off = 0;
      for (int k = p.nr - 1; k >= 0; --k) {
        idx[k] = rem % p.rshape[k];
        rem /= p.rshape[k];
        off += idx[k] * p.rstride[k];
      }
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + off;
        if (p.n_out == 1) {
          const double v = xr[out_off[0]];
          acc[0] += p.squares ? v * v : v;
        } else if (contiguous_out) {
          if (p.squares)
            for (int64_t o = 0; o < p.n_out; ++o) acc[o] += double(xr[o]) * double(xr[o]);
          else
            for (int64_t o = 0; o < p.n_out; ++o) acc[o] += double(xr[o]);
        } else {
          for (int64_t o = 0; o < p.n_out; ++o) {
            const double v = xr[out_off[size_t(o)]];
            acc[o] += p.squares ? v * v : v;
          }
        }
        for (int k = p.nr - 1; k >= 0; --k) {
          off += p.rstride[k];
          if (++idx[k] < p.rshape[k]) break;
          off -= p.rshape[k] * p.rstride[k];
          idx[k] = 0;
        }
      }
    }
  });
  for (int64_t o = 0; o < p.n_out; ++o) {
    double s = 0.0;
    for (int64_t c = 0; c < chunks; ++c) s += partial[size_t(c * p.n_out + o)];
    y[o] = float(s);
  }
}

}  // namespace

SECVIT_KERNEL(sum, Device::Cpu, kF32, sum_kernel, nullptr, ~0u);
SECVIT_KERNEL(sumSquares, Device::Cpu, kF32, sum_kernel, nullptr, ~0u);

}  // namespace secvit::cpu
