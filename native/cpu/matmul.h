// Small unpacked CPU matmuls, fp32, row-major, on the calling thread: C[M,N] = A[M,K] . B[K,N]
// for each of `batch` problems (strides in elements between problems; 0 broadcasts). The
// products inside the attention kernels (K or N = the head dim), which are already parallel
// over heads and groups. (The `matmul` op runs on the packed GEMM, gemm.h.)
//
// Algorithm: rows of C in blocks of kMatmulRows (6); each block walks C in 6x16 register tiles
// (12 ymm accumulators + 2 for B + 1 broadcast on AVX2: 12 FMAs per 2 loads of B), streaming
// one row of B per k.
// Cost: 2*M*N*K flops per problem; bytes >= 4*(M*K + K*N + M*N).
#pragma once

#include <cstdint>

namespace secvit::cpu {

constexpr int64_t kMatmulRows = 6;  // rows per register tile

struct MatmulParams {
  const float* a;
  const float* b;
  float* c;
  int64_t batch, m, k, n;
  int64_t stride_a, stride_b, stride_c;  // elements between consecutive problems
  bool accumulate = false;                // C += A.B instead of C = A.B
};

void matmul_f32_serial(const MatmulParams& p);

// The row-range kernels behind matmul_f32_serial, one per SIMD path: C rows [row_begin,
// row_end) of problem `bi`.
void matmul_f32_rows_scalar(const MatmulParams& p, int64_t bi, int64_t row_begin, int64_t row_end);
void matmul_f32_rows_avx2(const MatmulParams& p, int64_t bi, int64_t row_begin, int64_t row_end);

}  // namespace secvit::cpu
