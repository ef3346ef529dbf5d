// CPU kernel of `copy` (native/ops/copy.cpp): any strided view to a packed output of any dtype.
// The output's element order is walked in its own memory order; the source offset of each
// element follows from an odometer over the dims, so no division per element. Rows of the
// innermost dim are the unit of parallel work; a contiguous same-dtype copy is one memcpy per
// chunk. Cost: numel reads and writes.
#include <algorithm>
#include <cstring>

#include "core/half.h"
#include "core/op.h"
#include "core/thread_pool.h"
#include "ops/copy.h"

namespace secvit::cpu {
namespace {

inline float load_f(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::Float32: return static_cast<const float*>(p)[i];
    case DType::Int32: return float(static_cast<const int32_t*>(p)[i]);
    case DType::Float16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BFloat16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
  }
  return 0.0f;
}

inline void store_f(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::Float32: static_cast<float*>(p)[i] = v; break;
    case DType::Int32: static_cast<int32_t*>(p)[i] = float_to_int32(v); break;
    case DType::Float16: static_cast<uint16_t*>(p)[i] = f32_to_f16(v); break;
    case DType::BFloat16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(v); break;
  }
}

void copy_kernel(const KernelArgs& a) {
  const TensorArg& x = a.in[0];
  const TensorArg& y = a.out[0];
  const int64_t n = x.numel();
  if (n == 0) return;
  const size_t nd = x.shape.size();
  const bool same = x.dtype == y.dtype;
  if (nd == 0) {
    if (same) std::memcpy(y.data, x.data, dtype_size(x.dtype));
    else store_f(y.data, y.dtype, 0, load_f(x.data, x.dtype, 0));
    return;
  }
  // Walk dims in y's memory order (outermost first).
  const int* order = a.p<CopyOpParams>().order;
  const size_t esz = dtype_size(x.dtype);
  const int64_t inner = x.shape[size_t(order[nd - 1])];
  const int64_t sx_inner = x.strides[size_t(order[nd - 1])];
  const int64_t rows = n / inner;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(inner, 1));
  ThreadPool::instance().parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    // Source offset of row r0: decompose r0 over the outer dims (innermost outer dim fastest).
    int64_t idx[kMaxDims] = {};
    int64_t rem = r0;
    for (size_t k = nd - 1; k-- > 0;) {
      const size_t d = size_t(order[k]);
      idx[k] = rem % x.shape[d];
      rem /= x.shape[d];
    }
    for (int64_t r = r0; r < r1; ++r) {
      int64_t src = 0;
      for (size_t k = 0; k + 1 < nd; ++k) src += idx[k] * x.strides[size_t(order[k])];
      const int64_t dst = r * inner;
      if (same && sx_inner == 1) {
        std::memcpy(static_cast<unsigned char*>(y.data) + dst * int64_t(esz),
                    static_cast<const unsigned char*>(x.data) + src * int64_t(esz), size_t(inner) * esz);
      } else if (same && esz == 4) {
        const uint32_t* s = static_cast<const uint32_t*>(x.data) + src;
        uint32_t* o = static_cast<uint32_t*>(y.data) + dst;
        for (int64_t j = 0; j < inner; ++j) o[j] = s[j * sx_inner];
      } else if (same) {
        const uint16_t* s = static_cast<const uint16_t*>(x.data) + src;
        uint16_t* o = static_cast<uint16_t*>(y.data) + dst;
        for (int64_t j = 0; j < inner; ++j) o[j] = s[j * sx_inner];
      } else {
        for (int64_t j = 0; j < inner; ++j) store_f(y.data, y.dtype, dst + j, load_f(x.data, x.dtype, src + j * sx_inner));
      }
      // Next row: odometer over the outer dims.
      for (size_t k = nd - 1; k-- > 0;) {
        if (++idx[k] < x.shape[size_t(order[k])]) break;
        idx[k] = 0;
      }
    }
  });
}

// pad: the output's rows (its innermost dim in memory order) in parallel; a row is zeros where
// its coordinate along the padded dim falls outside x (an outer padded dim), or zeros around a
// strided copy of x's row (the padded dim innermost). Any dtype, moved as its bytes.
void pad_kernel(const KernelArgs& a) {
  const PadOpParams& p = a.p<PadOpParams>();
  const TensorArg& x = a.in[0];
  const TensorArg& y = a.out[0];
  const int64_t n = y.numel();
  if (n == 0) return;
  const size_t nd = y.shape.size();
  const size_t esz = dtype_size(x.dtype);
  const int* order = p.order;
  const int64_t inner = y.shape[size_t(order[nd - 1])];
  const int64_t sx_inner = x.strides[size_t(order[nd - 1])];
  const bool pad_inner = order[nd - 1] == p.dim;
  const int64_t xlen = x.shape[size_t(p.dim)];
  const int64_t rows = n / inner;
  auto move = [esz](void* dst, const void* src, int64_t count, int64_t src_stride) {
    if (src_stride == 1) {
      std::memcpy(dst, src, size_t(count) * esz);
    } else if (esz == 4) {
      for (int64_t j = 0; j < count; ++j) static_cast<uint32_t*>(dst)[j] = static_cast<const uint32_t*>(src)[j * src_stride];
    } else {
      for (int64_t j = 0; j < count; ++j) static_cast<uint16_t*>(dst)[j] = static_cast<const uint16_t*>(src)[j * src_stride];
    }
  };
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(inner, 1));
  ThreadPool::instance().parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    int64_t idx[kMaxDims] = {};
    int64_t rem = r0;
    for (size_t k = nd - 1; k-- > 0;) {
      idx[k] = rem % y.shape[size_t(order[k])];
      rem /= y.shape[size_t(order[k])];
    }
    for (int64_t r = r0; r < r1; ++r) {
      unsigned char* dst = static_cast<unsigned char*>(y.data) + r * inner * int64_t(esz);
      int64_t src = 0;
      bool zero = false;
      for (size_t k = 0; k + 1 < nd; ++k) {
        const int d = order[k];
        int64_t i = idx[k];
        if (d == p.dim) {
          i -= p.before;
          if (i < 0 || i >= xlen) zero = true;
        }
        src += i * x.strides[size_t(d)];
      }
      if (zero) {
        std::memset(dst, 0, size_t(inner) * esz);
      } else if (!pad_inner) {
        move(dst, static_cast<const unsigned char*>(x.data) + src * int64_t(esz), inner, sx_inner);
      } else {
        std::memset(dst, 0, size_t(p.before) * esz);
        move(dst + p.before * int64_t(esz), static_cast<const unsigned char*>(x.data) + src * int64_t(esz), xlen, sx_inner);
        std::memset(dst + (p.before + xlen) * int64_t(esz), 0, size_t(inner - p.before - xlen) * esz);
      }
      for (size_t k = nd - 1; k-- > 0;) {
        if (++idx[k] < y.shape[size_t(order[k])]) break;
        idx[k] = 0;
      }
    }
  });
}

}  // namespace

SECVIT_KERNEL(copy, Device::Cpu, kF32 | kI32 | kF16 | kBF16, copy_kernel, nullptr, ~0u);
SECVIT_KERNEL(pad, Device::Cpu, kF32 | kI32 | kF16 | kBF16, pad_kernel, nullptr, ~0u);

}  // namespace secvit::cpu
