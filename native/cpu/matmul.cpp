#include "matmul.h"

#include <algorithm>

#include "../core/cpu_features.h"

namespace secvit::cpu {

void matmul_f32_rows_scalar(const MatmulParams& p, int64_t bi, int64_t row_begin,
                            int64_t row_end) {
  const float* a = p.a + bi * p.stride_a;
  const float* b = p.b + bi * p.stride_b;
  float* c = p.c + bi * p.stride_c;
  for (int64_t i = row_begin; i < row_end; ++i) {
    float* ci = c + i * p.n;
    if (!p.accumulate) std::fill(ci, ci + p.n, 0.0f);
    for (int64_t kk = 0; kk < p.k; ++kk) {
      const float av = a[i * p.k + kk];
      const float* bk = b + kk * p.n;
      for (int64_t j = 0; j < p.n; ++j) ci[j] += av * bk[j];
    }
  }
}

#if !defined(SECVIT_HAVE_AVX2_KERNELS)
void matmul_f32_rows_avx2(const MatmulParams& p, int64_t bi, int64_t rb, int64_t re) {
  matmul_f32_rows_scalar(p, bi, rb, re);
}
#endif

void matmul_f32_serial(const MatmulParams& p) {
  const bool avx2 = cpu_simd() == CpuSimd::Avx2Fma;
  for (int64_t bi = 0; bi < p.batch; ++bi) {
    for (int64_t r0 = 0; r0 < p.m; r0 += kMatmulRows) {
      const int64_t r1 = std::min(p.m, r0 + kMatmulRows);
      if (avx2) matmul_f32_rows_avx2(p, bi, r0, r1);
      else matmul_f32_rows_scalar(p, bi, r0, r1);
    }
  }
}

}  // namespace secvit::cpu

// ---- the `matmul` op's CPU kernel (rules: native/ops/matmul.cpp) -------------------------------
#include "core/op.h"
#include "gemm.h"
#include "ops/matmul.h"

namespace secvit::cpu {
namespace {

// Each problem on the packed GEMM (gemm.h), both operands through their strides (A's columns
// gathered while packing when they are not contiguous; B packed from any layout). A b shared
// by the batch makes it one GEMM of batch * M rows when a's rows continue across the batch: B
// is packed once and the threads share one task grid.
void matmul_kernel(const KernelArgs& a) {
  const MatmulOpParams& p = a.p<MatmulOpParams>();
  const bool fold = !p.b_batched && (p.batch == 1 || p.a_bs == p.m * p.a_rs);
  const int64_t problems = fold ? 1 : p.batch;
  const int64_t rows = fold ? p.batch * p.m : p.m;
  for (int64_t bi = 0; bi < problems; ++bi) {
    GemmArgs g;
    g.m = rows;
    g.n = p.n;
    g.k = p.k;
    g.a.data = a.in[0].ptr<float>() + bi * p.a_bs;
    g.a.row_stride = p.a_rs;
    g.a.col_stride = p.a_cs;
    g.b = a.in[1].ptr<float>() + (p.b_batched ? bi * p.b_bs : 0);
    g.b_n_stride = p.b_ns;
    g.b_k_stride = p.b_ks;
    g.c.data = a.out[0].ptr<float>() + bi * p.m * p.n;
    g.c.row_stride = p.n;
    gemm_f32(g);
  }
}

}  // namespace

SECVIT_KERNEL(matmul, Device::Cpu, kF32, matmul_kernel, nullptr, 0x3);

}  // namespace secvit::cpu
