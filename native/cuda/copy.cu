// CUDA kernel of `copy` (native/ops/copy.cpp): any strided view to a packed output of any
// dtype. One thread per output element in a grid-stride loop; the element's source offset comes
// from its packed index by division over the dims (in the output's memory order). A contiguous
// same-dtype copy is one device-to-device memcpy.
// Cost: numel reads (strided) and writes (coalesced).

#include "../core/op.h"
#include "../ops/copy.h"
#include "cuda_backend.h"
#include "dtype_io.cuh"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

struct CopyDims {
  int nd;
  int src_type, dst_type;
  int64_t shape[kMaxDims];  // in the output's memory order, outermost first
  int64_t src_stride[kMaxDims];
};

__global__ void copy_kernel(const void* __restrict__ x, void* __restrict__ y, int64_t n, CopyDims p) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = e, src = 0;
    for (int k = p.nd - 1; k >= 0; --k) {
      src += (rem % p.shape[k]) * p.src_stride[k];
      rem /= p.shape[k];
    }
    if (p.src_type == p.dst_type && p.src_type != int(DType::Float32) && p.src_type != int(DType::Int32))
      static_cast<unsigned short*>(y)[e] = static_cast<const unsigned short*>(x)[src];
    else if (p.src_type == p.dst_type)
      static_cast<unsigned*>(y)[e] = static_cast<const unsigned*>(x)[src];
    else
      store_from_float(y, p.dst_type, e, load_as_float(x, p.src_type, src));
  }
}

void copy_cuda(const KernelArgs& a) {
  const TensorArg& x = a.in[0];
  const TensorArg& y = a.out[0];
  const int64_t n = x.numel();
  if (n == 0) return;
  const int nd = int(x.shape.size());
  if (x.dtype == y.dtype && strides_contiguous(x.shape, x.strides) &&
      strides_contiguous(y.shape, y.strides)) {
    backend()->copy_on_device(y.data, x.data, size_t(n) * dtype_size(x.dtype));
    return;
  }
  const int* order = a.p<CopyOpParams>().order;
  CopyDims p{};
  p.nd = nd;
  p.src_type = int(x.dtype);
  p.dst_type = int(y.dtype);
  for (int k = 0; k < nd; ++k) {
    p.shape[k] = x.shape[size_t(order[k])];
    p.src_stride[k] = x.strides[size_t(order[k])];
  }
  SV_LAUNCH(copy_kernel, grid_for(n, 256), dim3(256), 0, stream(), x.data, y.data, n, p);
  SV_CUDA_CHECK_LAUNCH("copy_kernel");
}

// pad: one thread per output element (grid-stride), in the output's memory order; its coordinate
// along the padded dim says whether it is a zero or which element of x it copies.
struct PadDims {
  int nd, pad_k;  // pad_k: the padded dim's position in memory order
  int bytes;      // element size: 2 or 4
  int64_t before, xlen;
  int64_t shape[kMaxDims];
  int64_t src_stride[kMaxDims];
};

__global__ void pad_kernel(const void* __restrict__ x, void* __restrict__ y, int64_t n, PadDims p) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = e, src = 0;
    bool zero = false;
    for (int k = p.nd - 1; k >= 0; --k) {
      int64_t i = rem % p.shape[k];
      rem /= p.shape[k];
      if (k == p.pad_k) {
        i -= p.before;
        zero = i < 0 || i >= p.xlen;
      }
      src += i * p.src_stride[k];
    }
    if (p.bytes == 4) static_cast<unsigned*>(y)[e] = zero ? 0u : static_cast<const unsigned*>(x)[src];
    else static_cast<unsigned short*>(y)[e] = zero ? 0 : static_cast<const unsigned short*>(x)[src];
  }
}

void pad_cuda(const KernelArgs& a) {
  const PadOpParams& q = a.p<PadOpParams>();
  const TensorArg& x = a.in[0];
  const TensorArg& y = a.out[0];
  const int64_t n = y.numel();
  if (n == 0) return;
  PadDims p{};
  p.nd = int(y.shape.size());
  p.bytes = int(dtype_size(x.dtype));
  p.before = q.before;
  p.xlen = x.shape[size_t(q.dim)];
  for (int k = 0; k < p.nd; ++k) {
    p.shape[k] = y.shape[size_t(q.order[k])];
    p.src_stride[k] = x.strides[size_t(q.order[k])];
    if (q.order[k] == q.dim) p.pad_k = k;
  }
  SV_LAUNCH(pad_kernel, grid_for(n, 256), dim3(256), 0, stream(), x.data, y.data, n, p);
  SV_CUDA_CHECK_LAUNCH("pad_kernel");
}

}  // namespace

SECVIT_KERNEL(copy, SV_CUDA_DEVICE, kF32 | kI32 | kF16 | kBF16, copy_cuda, nullptr, ~0u);
SECVIT_KERNEL(pad, SV_CUDA_DEVICE, kF32 | kI32 | kF16 | kBF16, pad_cuda, nullptr, ~0u);

}  // namespace SV_CUDA_NS
}  // namespace secvit
