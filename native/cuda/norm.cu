// CUDA kernels of layerNorm, batchNorm and foldBatchNorm (native/ops/norm.h). The output has
// x's layout, so each element is written at its input's offset.
//   layerNorm: one warp per position (a vector along the normalised dim), two passes in fp32
//     (mean, then the centred variance) with shuffle reductions, then the affine.
//   batchNorm: one thread per element, channel fastest; scale and shift from mean/var/w/b.
//   foldBatchNorm: one thread per weight element (and per bias), in double.
// Cost: layerNorm reads x twice (L1/L2) and writes once; batchNorm one read, one write.
#include "../core/op.h"
#include "../ops/norm.h"
#include "cuda_backend.h"
#include "dtype_io.cuh"
#include "reduce.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

__device__ __forceinline__ int64_t position_offset(const NormOpParams& p, int64_t pos) {
  int64_t off = 0;
  for (int k = p.nd - 1; k >= 0; --k) {
    off += (pos % p.shape[k]) * p.stride[k];
    pos /= p.shape[k];
  }
  return off;
}

__global__ void __launch_bounds__(256) layer_norm_kernel(NormOpParams p, const void* x, const void* w,
                                                         const void* b, void* y, int64_t positions, int dtype) {
  const int lane = threadIdx.x % 32;
  const int64_t pos = int64_t(blockIdx.x) * 8 + threadIdx.x / 32;
  if (pos >= positions) return;
  const int64_t base = position_offset(p, pos);
  float mu, rs;
  warp_layer_norm_stats([&](int64_t j) { return load_as_float(x, dtype, base + j * p.d_stride); }, p.d, lane,
                        p.eps, &mu, &rs);
  for (int64_t j = lane; j < p.d; j += 32) {
    float v = (load_as_float(x, dtype, base + j * p.d_stride) - mu) * rs;
    if (w != nullptr) v *= load_as_float(w, dtype, j);
    if (b != nullptr) v += load_as_float(b, dtype, j);
    store_from_float(y, dtype, base + j * p.d_stride, v);
  }
}

// x (and y) are dense in their layout, so memory offset o holds channel (o / d_stride) % d.
__global__ void __launch_bounds__(256) batch_norm_kernel(NormOpParams p, const void* x, const void* mean,
                                                         const void* var, const void* w, const void* b,
                                                         void* y, int64_t total, int dtype) {
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (o / p.d_stride) % p.d;
    const float s = (w != nullptr ? load_as_float(w, dtype, c) : 1.0f) * rsqrtf(load_as_float(var, dtype, c) + p.eps);
    const float sh = (b != nullptr ? load_as_float(b, dtype, c) : 0.0f) - load_as_float(mean, dtype, c) * s;
    store_from_float(y, dtype, o, load_as_float(x, dtype, o) * s + sh);
  }
}

__global__ void __launch_bounds__(256) fold_bn_kernel(FoldBnOpParams p, const void* w, const void* bias,
                                                      const void* mean, const void* var, const void* gamma,
                                                      const void* beta, void* wo, void* bo, int dtype) {
  const int64_t total = p.o * p.per_o;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total + p.o; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = e < total ? e / p.per_o : e - total;
    const double s = (gamma != nullptr ? double(load_as_float(gamma, dtype, o)) : 1.0) /
                     sqrt(double(load_as_float(var, dtype, o)) + double(p.eps));
    if (e < total) {
      store_from_float(wo, dtype, e, float(double(load_as_float(w, dtype, e)) * s));
    } else {
      const double bb = (bias != nullptr ? double(load_as_float(bias, dtype, o)) : 0.0) - double(load_as_float(mean, dtype, o));
      store_from_float(bo, dtype, o, float(bb * s + (beta != nullptr ? double(load_as_float(beta, dtype, o)) : 0.0)));
    }
  }
}

int64_t positions(const NormOpParams& p) {
  int64_t n = 1;
  for (int k = 0; k < p.nd; ++k) n *= p.shape[k];
  return n;
}

void layer_norm_cuda(const KernelArgs& a) {
  const NormOpParams& p = a.p<NormOpParams>();
  const int64_t n = positions(p);
  if (n == 0 || p.d == 0) return;
  SV_LAUNCH(layer_norm_kernel, dim3(unsigned((n + 7) / 8)), dim3(256), 0, stream(), p, a.in[0].data,
            a.in[1].data, a.in[2].data, a.out[0].data, n, int(a.in[0].dtype));
  SV_CUDA_CHECK_LAUNCH("layer_norm_kernel");
}

void batch_norm_cuda(const KernelArgs& a) {
  const NormOpParams& p = a.p<NormOpParams>();
  const int64_t total = positions(p) * p.d;
  if (total == 0) return;
  SV_LAUNCH(batch_norm_kernel, dim3(grid_for(total, 256)), dim3(256), 0, stream(), p, a.in[0].data,
            a.in[1].data, a.in[2].data, a.in[3].data, a.in[4].data, a.out[0].data, total, int(a.in[0].dtype));
  SV_CUDA_CHECK_LAUNCH("batch_norm_kernel");
}

void fold_bn_cuda(const KernelArgs& a) {
  const FoldBnOpParams& p = a.p<FoldBnOpParams>();
  const int64_t total = p.o * p.per_o + p.o;
  if (total == 0) return;
  SV_LAUNCH(fold_bn_kernel, dim3(grid_for(total, 256)), dim3(256), 0, stream(), p, a.in[0].data, a.in[1].data,
            a.in[2].data, a.in[3].data, a.in[4].data, a.in[5].data, a.out[0].data, a.out[1].data, int(a.in[0].dtype));
  SV_CUDA_CHECK_LAUNCH("fold_bn_kernel");
}

bool layer_norm_supports(const OpCall& c, std::string* why) {
  const int64_t n = positions(c.params<NormOpParams>());
  if ((n + 7) / 8 >= int64_t(1) << 31) {  // grid.x is at most 2^31 - 1
    *why = "too many positions for one launch";
    return false;
  }
  return true;
}

}  // namespace

SECVIT_KERNEL(layerNorm, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, layer_norm_cuda, layer_norm_supports, 1u);
SECVIT_KERNEL(batchNorm, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, batch_norm_cuda, nullptr, 1u);
SECVIT_KERNEL(foldBatchNorm, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, fold_bn_cuda, nullptr, 0);

}  // namespace SV_CUDA_NS
}  // namespace secvit
