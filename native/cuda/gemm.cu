// The GEMM launcher (kernels in gemm.cuh) and the `matmul` op's CUDA kernel
// (rules: native/ops/matmul.cpp): each problem of the batch is one GEMM with B as [K, N].
#include "gemm.cuh"

#include "../core/op.h"
#include "../ops/matmul.h"
#include "cuda_backend.h"
#include "device_buffer.cuh"
#include "reduce.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

// LayerNorm statistics of A + add over K: one warp per row, two passes (mean, centred variance).
__global__ void __launch_bounds__(256) gemm_ln_stats_kernel(GemmParamsCuda p, float* stats, float eps) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int m = blockIdx.x * 8 + warp;
  if (m >= p.m) return;
  const int64_t ra = rowmap(m, p.a_gr, p.a_gs, p.a_rs);
  const int64_t rd = p.add != nullptr ? rowmap(m, p.add_gr, p.add_gs, p.add_rs) : 0;
  auto val = [&](int64_t k) {
    float v = load_as_float(p.a, p.dtype, ra + k * p.a_cs);
    if (p.add != nullptr) v += load_as_float(p.add, p.dtype, rd + k * p.add_cs);
    return v;
  };
  float mu, rs;
  warp_layer_norm_stats(val, p.k, lane, eps, &mu, &rs);
  if (lane == 0) {
    stats[2 * m] = mu;
    stats[2 * m + 1] = rs;
  }
}

__global__ void __launch_bounds__(256) gemm_f32_kernel(GemmParamsCuda p) {
  constexpr int BK = 16, T = kGemmTile;
  SV_SHARED(float[BK][T + 4], as);  // A^T: [k][m]
  SV_SHARED(float[BK][T + 4], bs);  // [k][n]
  const int tid = threadIdx.x;
  const int m0 = blockIdx.y * T, n0 = blockIdx.x * T;
  const int tm = (tid / 16) * 4, tn = (tid % 16) * 4;
  float acc[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  // B rows contiguous in k (a weight) are read along k, else along n (coalesced either way).
  const bool b_along_k = p.b_conv || p.b_ks == 1;
  for (int k0 = 0; k0 < p.k; k0 += BK) {
    for (int i = 0; i < 4; ++i) {
      const int idx = tid + i * 256;
      const int mm = idx / BK, kk = idx % BK;
      as[kk][mm] = gemm_load_a(p, m0 + mm, k0 + kk);
      if (b_along_k) {
        bs[kk][mm] = gemm_load_b(p, k0 + kk, n0 + mm);  // (mm as n)
      } else {
        const int kb = idx / T, nb = idx % T;
        bs[kb][nb] = gemm_load_b(p, k0 + kb, n0 + nb);
      }
    }
    __syncthreads();
    for (int kk = 0; kk < BK; ++kk) {
      float a[4], b[4];
      for (int i = 0; i < 4; ++i) a[i] = as[kk][tm + i];
      for (int j = 0; j < 4; ++j) b[j] = bs[kk][tn + j];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; ++i) {
    gemm_epilogue_pair(p, m0 + tm + i, n0 + tn, acc[i][0], acc[i][1]);
    gemm_epilogue_pair(p, m0 + tm + i, n0 + tn + 2, acc[i][2], acc[i][3]);
  }
}

template <bool kBf16>
__global__ void __launch_bounds__(128) gemm_mma_kernel(GemmParamsCuda p) {
  constexpr int BK = 32, T = kGemmTile, S = BK + 8;
  SV_SHARED(unsigned short[T][S], as);  // [m][k]
  SV_SHARED(unsigned short[T][S], bs);  // [n][k]
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int g = lane >> 2, t = lane & 3;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
  const int m0 = blockIdx.y * T, n0 = blockIdx.x * T;
  float acc[2][4][4];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;
  const bool b_along_k = p.b_conv || p.b_ks == 1;
  for (int k0 = 0; k0 < p.k; k0 += BK) {
    for (int i = 0; i < (T * BK) / 128; ++i) {
      const int idx = tid + i * 128;
      const int r = idx / BK, kk = idx % BK;
      as[r][kk] = float_to_half<kBf16>(gemm_load_a(p, m0 + r, k0 + kk));
      if (b_along_k) {
        bs[r][kk] = float_to_half<kBf16>(gemm_load_b(p, k0 + kk, n0 + r));
      } else {
        const int kb = idx / T, nb = idx % T;
        bs[nb][kb] = float_to_half<kBf16>(gemm_load_b(p, k0 + kb, n0 + nb));
      }
    }
    __syncthreads();
    for (int ks = 0; ks < BK; ks += 16) {
      uint32_t af[2][4], bf[4][2];
      for (int mt = 0; mt < 2; ++mt) {
        const int r = wm + mt * 16 + g;
        af[mt][0] = load2(&as[r][ks + 2 * t]);
        af[mt][1] = load2(&as[r + 8][ks + 2 * t]);
        af[mt][2] = load2(&as[r][ks + 2 * t + 8]);
        af[mt][3] = load2(&as[r + 8][ks + 2 * t + 8]);
      }
      for (int nt = 0; nt < 4; ++nt) {
        const int c = wn + nt * 8 + g;
        bf[nt][0] = load2(&bs[c][ks + 2 * t]);
        bf[nt][1] = load2(&bs[c][ks + 2 * t + 8]);
      }
      for (int mt = 0; mt < 2; ++mt)
        for (int nt = 0; nt < 4; ++nt) {
          if constexpr (kBf16) sv_mma_m16n8k16_bf16(acc[mt][nt], af[mt], bf[nt], acc[mt][nt]);
          else sv_mma_m16n8k16_f16(acc[mt][nt], af[mt], bf[nt], acc[mt][nt]);
        }
    }
    __syncthreads();
  }
  for (int mt = 0; mt < 2; ++mt)
    for (int nt = 0; nt < 4; ++nt) {
      const int row = m0 + wm + mt * 16 + g, col = n0 + wn + nt * 8 + 2 * t;
      gemm_epilogue_pair(p, row, col, acc[mt][nt][0], acc[mt][nt][1]);
      gemm_epilogue_pair(p, row + 8, col, acc[mt][nt][2], acc[mt][nt][3]);
    }
}

}  // namespace

void launch_gemm(GemmParamsCuda p, float ln_eps, float* stats, cudaStream_t stream) {
  if (p.m <= 0 || p.n <= 0) return;
  if (stats != nullptr) {
    SV_LAUNCH(gemm_ln_stats_kernel, dim3(unsigned((p.m + 7) / 8)), dim3(256), 0, stream, p, stats, ln_eps);
    SV_CUDA_CHECK_LAUNCH("gemm_ln_stats_kernel");
    p.ln_stats = stats;
  }
  const dim3 grid(unsigned((p.n + kGemmTile - 1) / kGemmTile), unsigned((p.m + kGemmTile - 1) / kGemmTile));
  if (p.dtype == int(DType::Float32)) {
    SV_LAUNCH(gemm_f32_kernel, grid, dim3(256), 0, stream, p);
    SV_CUDA_CHECK_LAUNCH("gemm_f32_kernel");
  } else if (p.dtype == int(DType::BFloat16)) {
    auto* k = &gemm_mma_kernel<true>;
    SV_LAUNCH(k, grid, dim3(128), 0, stream, p);
    SV_CUDA_CHECK_LAUNCH("gemm_mma_kernel<bf16>");
  } else {
    auto* k = &gemm_mma_kernel<false>;
    SV_LAUNCH(k, grid, dim3(128), 0, stream, p);
    SV_CUDA_CHECK_LAUNCH("gemm_mma_kernel<fp16>");
  }
}

namespace {

// A b shared by the batch makes it one GEMM of batch * M rows (one launch) when the grid
// allows; otherwise one launch per problem.
void matmul_cuda(const KernelArgs& a) {
  const MatmulOpParams& mp = a.p<MatmulOpParams>();
  const size_t es = dtype_size(a.in[0].dtype);
  std::string why;
  const bool fold = !mp.b_batched && (mp.batch == 1 || mp.a_bs == mp.m * mp.a_rs) &&
                    gemm_supports(mp.batch * mp.m, mp.n, mp.k, &why);
  const int64_t problems = fold ? 1 : mp.batch;
  for (int64_t bi = 0; bi < problems; ++bi) {
    GemmParamsCuda p{};
    p.m = int(fold ? mp.batch * mp.m : mp.m);
    p.n = int(mp.n);
    p.k = int(mp.k);
    p.dtype = int(a.in[0].dtype);
    p.a = static_cast<const char*>(a.in[0].data) + size_t(bi * mp.a_bs) * es;
    p.a_rs = mp.a_rs;
    p.a_cs = mp.a_cs;
    p.b = static_cast<const char*>(a.in[1].data) + size_t(mp.b_batched ? bi * mp.b_bs : 0) * es;
    p.b_ns = mp.b_ns;
    p.b_ks = mp.b_ks;
    p.c = static_cast<char*>(a.out[0].data) + size_t(bi * mp.m * mp.n) * es;
    p.ldc = mp.n;
    launch_gemm(p, 0.0f, nullptr, stream());
  }
}

}  // namespace

// The grid holds M / 64 row tiles on y (at most 65535) and sizes as int.
bool gemm_supports(int64_t m, int64_t n, int64_t k, std::string* why) {
  if (m > int64_t(65535) * kGemmTile || n > (int64_t(1) << 30) || k > (int64_t(1) << 30)) {
    *why = str("the ", SV_CUDA_BACKEND_NAME, " GEMM supports M <= ", int64_t(65535) * kGemmTile,
               " rows and N, K < 2^30, got M=", m, ", N=", n, ", K=", k);
    return false;
  }
  return true;
}

namespace {
bool matmul_supports(const OpCall& c, std::string* why) {
  const MatmulOpParams& p = c.params<MatmulOpParams>();
  return gemm_supports(p.m, p.n, p.k, why);
}
}  // namespace

SECVIT_KERNEL(matmul, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, matmul_cuda, matmul_supports, 0x3);

}  // namespace SV_CUDA_NS
}  // namespace secvit
