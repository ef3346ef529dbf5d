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
#include "device_buffer.cuh"
#include "dtype_io.cuh"
#include "gemm.cuh"
#include "sums.cuh"
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

// ---- training and gradients --------------------------------------------------------------------
//   layerNormBackward: one warp per position (as the forward): statistics again from x, then
//     dx from the warp sums of g and g x-hat; dy x-hat and dy go to scratch rows whose column
//     sums (sums.cuh) are dweight and dbias.
//   batchNormTrain: one block per channel for the statistics (two passes: mean, then the
//     centred sum of squares; thread 0 updates the running statistics), then one thread per
//     element for y.
//   batchNormBackward: one block per channel for the sums of g and g x-hat (g = dy act'(z)
//     recomputed), then one thread per element for dx.

__device__ __forceinline__ int64_t offset_in(const NormOpParams& p, const int64_t* stride, int64_t pos) {
  int64_t off = 0;
  for (int k = p.nd - 1; k >= 0; --k) {
    off += (pos % p.shape[k]) * stride[k];
    pos /= p.shape[k];
  }
  return off;
}

__global__ void __launch_bounds__(256) layer_norm_backward_kernel(LayerNormBackwardParams q, const void* dy, const void* x,
                                                                  const void* w, void* dx, float* prod, int64_t positions,
                                                                  int dtype) {
  const NormOpParams& p = q.n;
  const int lane = threadIdx.x % 32;
  const int64_t pos = int64_t(blockIdx.x) * 8 + threadIdx.x / 32;
  if (pos >= positions) return;
  const int64_t xb = offset_in(p, p.stride, pos), yb = offset_in(p, q.dy_stride, pos);
  float mu, rs;
  warp_layer_norm_stats([&](int64_t j) { return load_as_float(x, dtype, xb + j * p.d_stride); }, p.d, lane, p.eps, &mu, &rs);
  float s1 = 0.0f, s2 = 0.0f;
  for (int64_t j = lane; j < p.d; j += 32) {
    const float xh = (load_as_float(x, dtype, xb + j * p.d_stride) - mu) * rs;
    const float d = load_as_float(dy, dtype, yb + j * q.dy_d_stride);
    const float g = d * (w != nullptr ? load_as_float(w, dtype, j) : 1.0f);
    s1 += g;
    s2 += g * xh;
    prod[pos * p.d + j] = d * xh;
    prod[(positions + pos) * p.d + j] = d;
  }
  const float m1 = warp_sum(s1) / float(p.d), m2 = warp_sum(s2) / float(p.d);
  for (int64_t j = lane; j < p.d; j += 32) {
    const float xh = (load_as_float(x, dtype, xb + j * p.d_stride) - mu) * rs;
    const float g = load_as_float(dy, dtype, yb + j * q.dy_d_stride) * (w != nullptr ? load_as_float(w, dtype, j) : 1.0f);
    store_from_float(dx, dtype, xb + j * p.d_stride, rs * (g - m1 - xh * m2));
  }
}

void layer_norm_backward_cuda(const KernelArgs& a) {
  const LayerNormBackwardParams& q = a.p<LayerNormBackwardParams>();
  const int64_t n = positions(q.n);
  const int dtype = int(a.in[1].dtype);
  if (n == 0 || q.n.d == 0) {
    for (int o = 1; o < 3; ++o)
      if (a.out[o].numel() > 0) backend()->fill(a.out[o].data, 0, size_t(a.out[o].numel()) * dtype_size(a.out[o].dtype));
    return;
  }
  DeviceBuffer prod(size_t(2 * n * q.n.d) * sizeof(float));
  SV_LAUNCH(layer_norm_backward_kernel, dim3(unsigned((n + 7) / 8)), dim3(256), 0, stream(), q, a.in[0].data, a.in[1].data,
            a.in[2].data, a.out[0].data, prod.as<float>(), n, dtype);
  SV_CUDA_CHECK_LAUNCH("layer_norm_backward_kernel");
  for (int o = 1; o < 3; ++o) {
    if (a.out[o].numel() == 0) continue;
    const float* src = prod.as<float>() + (o == 1 ? 0 : n * q.n.d);
    launch_column_sums(src, int(DType::Float32), n, q.n.d, q.n.d, a.out[o].data, dtype);
  }
}

// Block reduction of one float over 256 threads (every thread gets the sum).
__device__ __forceinline__ float block_sum(float v, float* part) {
  v = warp_sum(v);
  __syncthreads();
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  float s = 0.0f;
  for (int i = 0; i < 8; ++i) s += part[i];
  return s;
}

__global__ void __launch_bounds__(256) batch_norm_stats_kernel(BatchNormTrainParams q, const void* x, float* mean, float* var,
                                                               float* rm, float* rv, int64_t positions, int dtype) {
  SV_SHARED(float[8], part);
  const NormOpParams& p = q.n;
  const int64_t c = blockIdx.x;
  float s = 0.0f;
  for (int64_t pos = threadIdx.x; pos < positions; pos += blockDim.x)
    s += load_as_float(x, dtype, offset_in(p, p.stride, pos) + c * p.d_stride);
  const float mu = block_sum(s, part) / float(positions);
  float v = 0.0f;
  for (int64_t pos = threadIdx.x; pos < positions; pos += blockDim.x) {
    const float t = load_as_float(x, dtype, offset_in(p, p.stride, pos) + c * p.d_stride) - mu;
    v += t * t;
  }
  const float var_b = block_sum(v, part) / float(positions);
  if (threadIdx.x == 0) {
    mean[c] = mu;
    var[c] = var_b;
    if (rm != nullptr) {
      const float unbiased = positions > 1 ? var_b * float(positions) / float(positions - 1) : var_b;
      rm[c] = (1.0f - q.momentum) * rm[c] + q.momentum * mu;
      rv[c] = (1.0f - q.momentum) * rv[c] + q.momentum * unbiased;
    }
  }
}

__global__ void __launch_bounds__(256) batch_norm_apply_kernel(BatchNormTrainParams q, const void* x, const float* mean,
                                                               const float* var, const void* w, const void* b, void* y,
                                                               int64_t total, int dtype) {
  const NormOpParams& p = q.n;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (o / p.d_stride) % p.d;
    float v = (load_as_float(x, dtype, o) - mean[c]) * rsqrtf(var[c] + p.eps);
    if (w != nullptr) v *= load_as_float(w, dtype, c);
    if (b != nullptr) v += load_as_float(b, dtype, c);
    store_from_float(y, dtype, o, gemm_act(q.act, v));
  }
}

void batch_norm_train_cuda(const KernelArgs& a) {
  const BatchNormTrainParams& q = a.p<BatchNormTrainParams>();
  const int64_t n = positions(q.n);
  if (q.n.d == 0) return;
  const int dtype = int(a.in[0].dtype);
  float* rm = q.update ? a.out[3].ptr<float>() : nullptr;
  float* rv = q.update ? a.out[4].ptr<float>() : nullptr;
  SV_LAUNCH(batch_norm_stats_kernel, dim3(unsigned(q.n.d)), dim3(256), 0, stream(), q, a.in[0].data, a.out[1].ptr<float>(),
            a.out[2].ptr<float>(), rm, rv, n, dtype);
  SV_CUDA_CHECK_LAUNCH("batch_norm_stats_kernel");
  const int64_t total = n * q.n.d;
  if (total == 0) return;
  SV_LAUNCH(batch_norm_apply_kernel, dim3(grid_for(total, 256)), dim3(256), 0, stream(), q, a.in[0].data,
            static_cast<const float*>(a.out[1].data), static_cast<const float*>(a.out[2].data), a.in[1].data, a.in[2].data,
            a.out[0].data, total, dtype);
  SV_CUDA_CHECK_LAUNCH("batch_norm_apply_kernel");
}

struct BnBwdArgs {
  const void *dy, *x, *mean, *var, *w, *b;
  int dtype, stat_dtype;
};

// g = dy act'(z) and x-hat of element (pos, c).
__device__ __forceinline__ void bn_g(const BatchNormBackwardParams& q, const BnBwdArgs& t, int64_t pos, int64_t c, float* g,
                                     float* xh, int64_t* xo) {
  const NormOpParams& p = q.n;
  *xo = offset_in(p, p.stride, pos) + c * p.d_stride;
  const int64_t yo = offset_in(p, q.dy_stride, pos) + c * q.dy_d_stride;
  const float istd = rsqrtf(load_as_float(t.var, t.stat_dtype, c) + p.eps);
  *xh = (load_as_float(t.x, t.dtype, *xo) - load_as_float(t.mean, t.stat_dtype, c)) * istd;
  const float w = t.w != nullptr ? load_as_float(t.w, t.dtype, c) : 1.0f;
  const float z = *xh * w + (t.b != nullptr ? load_as_float(t.b, t.dtype, c) : 0.0f);
  *g = load_as_float(t.dy, t.dtype, yo) * gemm_act_grad(q.act, z);
}

// Also the mean of x-hat (0 in exact arithmetic; dx subtracts the computed one, as the CPU
// kernel does, so that dx sums to rounding level over the batch).
__global__ void __launch_bounds__(256) batch_norm_bwd_sums_kernel(BatchNormBackwardParams q, BnBwdArgs t, void* dweight,
                                                                  void* dbias, float* mean_x, int64_t positions) {
  SV_SHARED(float[8], part);
  const int64_t c = blockIdx.x;
  float s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  for (int64_t pos = threadIdx.x; pos < positions; pos += blockDim.x) {
    float g, xh;
    int64_t xo;
    bn_g(q, t, pos, c, &g, &xh, &xo);
    s1 += g;
    s2 += g * xh;
    s3 += xh;
  }
  const float sb = block_sum(s1, part);
  const float sw = block_sum(s2, part);
  const float sx = block_sum(s3, part);
  if (threadIdx.x == 0) {
    store_from_float(dbias, t.dtype, c, sb);
    store_from_float(dweight, t.dtype, c, sw);
    mean_x[c] = positions > 0 ? sx / float(positions) : 0.0f;
  }
}

__global__ void __launch_bounds__(256) batch_norm_bwd_dx_kernel(BatchNormBackwardParams q, BnBwdArgs t, const void* dweight,
                                                                const void* dbias, const float* mean_x, void* dx,
                                                                int64_t positions) {
  const int64_t total = positions * q.n.d;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pos = i / q.n.d, c = i % q.n.d;
    float g, xh;
    int64_t xo;
    bn_g(q, t, pos, c, &g, &xh, &xo);
    const float istd = rsqrtf(load_as_float(t.var, t.stat_dtype, c) + q.n.eps);
    const float w = t.w != nullptr ? load_as_float(t.w, t.dtype, c) : 1.0f;
    float v;
    if (q.training) {
      const float inv_n = 1.0f / float(positions);
      v = w * istd * ((g - load_as_float(dbias, t.dtype, c) * inv_n) - (xh - mean_x[c]) * load_as_float(dweight, t.dtype, c) * inv_n);
    } else {
      v = g * w * istd;
    }
    store_from_float(dx, t.dtype, xo, v);
  }
}

void batch_norm_backward_cuda(const KernelArgs& a) {
  const BatchNormBackwardParams& q = a.p<BatchNormBackwardParams>();
  const int64_t n = positions(q.n);
  if (q.n.d == 0) return;
  BnBwdArgs t{a.in[0].data, a.in[1].data, a.in[2].data, a.in[3].data, a.in[4].data, a.in[5].data, int(a.in[1].dtype),
              int(a.in[2].dtype)};
  DeviceBuffer mean_x(size_t(q.n.d) * sizeof(float));
  SV_LAUNCH(batch_norm_bwd_sums_kernel, dim3(unsigned(q.n.d)), dim3(256), 0, stream(), q, t, a.out[1].data, a.out[2].data,
            mean_x.as<float>(), n);
  SV_CUDA_CHECK_LAUNCH("batch_norm_bwd_sums_kernel");
  if (n == 0) return;
  SV_LAUNCH(batch_norm_bwd_dx_kernel, dim3(grid_for(n * q.n.d, 256)), dim3(256), 0, stream(), q, t,
            static_cast<const void*>(a.out[1].data), static_cast<const void*>(a.out[2].data),
            static_cast<const float*>(mean_x.as<float>()), a.out[0].data, n);
  SV_CUDA_CHECK_LAUNCH("batch_norm_bwd_dx_kernel");
}

}  // namespace

SECVIT_KERNEL(layerNormBackward, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, layer_norm_backward_cuda, nullptr, 0x3);
SECVIT_KERNEL(batchNormTrain, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, batch_norm_train_cuda, nullptr, 0x1);
SECVIT_KERNEL(batchNormBackward, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, batch_norm_backward_cuda, nullptr, 0x3);
SECVIT_KERNEL(layerNorm, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, layer_norm_cuda, layer_norm_supports, 1u);
SECVIT_KERNEL(batchNorm, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, batch_norm_cuda, nullptr, 1u);
SECVIT_KERNEL(foldBatchNorm, SV_CUDA_DEVICE, kF32 | kF16 | kBF16, fold_bn_cuda, nullptr, 0);

}  // namespace SV_CUDA_NS
}  // namespace secvit
