// The one header every secvit .cu file includes first. The same sources are compiled
//   - by nvcc, against the real CUDA runtime (the "cuda" backend), and
//   - by the host C++ compiler with SECVIT_CUDA_EMU defined, against native/emu (the "cuda-emu"
//     backend), so every kernel also executes on machines without a GPU.
// Kernels therefore use these macros instead of the two constructs g++ cannot parse:
//   SV_LAUNCH(kernel, grid, block, smem_bytes, stream, args...)   instead of kernel<<<...>>>(...)
//     (for a template kernel, take a pointer first: auto* k = &kern<64>; SV_LAUNCH(k, ...))
//   SV_SHARED(type, name);          e.g. SV_SHARED(float[64][33], tile);   static shared memory
//   SV_DYNAMIC_SHARED(type, name);  e.g. SV_DYNAMIC_SHARED(float, smem);  extern shared memory
// and SV_CUDA_CHECK(expr) / SV_CUDA_CHECK_LAUNCH(what) to turn CUDA errors into exceptions that
// carry file:line.
#pragma once

#include "../core/error.h"

#if defined(SECVIT_CUDA_EMU)
#include "../emu/cuda_emu.h"
#define SV_CUDA_NS cuda_emu_impl
#define SV_CUDA_BACKEND_NAME "cuda-emu"
#define SV_CUDA_DEVICE ::secvit::Device::CudaEmu
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define SV_CUDA_NS cuda_impl
#define SV_CUDA_BACKEND_NAME "cuda"
#define SV_CUDA_DEVICE ::secvit::Device::Cuda
#endif

template <class T>
using sv_identity_t = T;

#if defined(SECVIT_CUDA_EMU)
// The emulator gets the kernel's spelling too, for its error messages (static and anonymous-
// namespace kernels have no symbol it could look up).
#define SV_LAUNCH(kernel, grid, block, smem, stream, ...)                                   \
  ::secvit::emu::launch_named(#kernel, kernel, dim3(grid), dim3(block), size_t(smem), stream, \
                              ##__VA_ARGS__)
#define SV_SHARED(type, name) sv_identity_t<type>& name = *::secvit::emu::shared_static<type>()
#define SV_DYNAMIC_SHARED(type, name) type* name = ::secvit::emu::shared_dynamic<type>()
#else
#define SV_LAUNCH(kernel, grid, block, smem, stream, ...) \
  kernel<<<dim3(grid), dim3(block), size_t(smem), stream>>>(__VA_ARGS__)
#define SV_SHARED(type, name) __shared__ sv_identity_t<type> name
#define SV_DYNAMIC_SHARED(type, name) \
  extern __shared__ __align__(16) unsigned char sv_dynamic_smem_[]; \
  type* name = reinterpret_cast<type*>(sv_dynamic_smem_)
#endif

// Keeps a loop rolled (register pressure); the host compiler has no such pragma.
#if defined(SECVIT_CUDA_EMU)
#define SV_NO_UNROLL
#else
#define SV_NO_UNROLL _Pragma("unroll 1")
#endif

#define SV_STRINGIFY2(x) #x
#define SV_STRINGIFY(x) SV_STRINGIFY2(x)

// Throws secvit::Error(Runtime) "CUDA error cudaErrorX (text) at file:line: expr".
#define SV_CUDA_CHECK(expr)                                                                \
  do {                                                                                     \
    const cudaError_t sv_err_ = (expr);                                                    \
    if (sv_err_ != cudaSuccess) {                                                          \
      (void)cudaGetLastError();                                                            \
      ::secvit::throw_runtime_error(SV_CUDA_BACKEND_NAME, " error ", cudaGetErrorName(sv_err_), \
                                    " (", cudaGetErrorString(sv_err_), ") at ", __FILE__,  \
                                    ":", __LINE__, ": ", #expr);                           \
    }                                                                                      \
  } while (0)

// After a launch: picks up configuration errors (and, under the emulator, everything the kernel
// did wrong, since emulated launches complete before returning).
#define SV_CUDA_CHECK_LAUNCH(what)                                                         \
  do {                                                                                     \
    const cudaError_t sv_err_ = cudaGetLastError();                                        \
    if (sv_err_ != cudaSuccess) {                                                          \
      ::secvit::throw_runtime_error(SV_CUDA_BACKEND_NAME, " launch of ", what, " failed: ", \
                                    cudaGetErrorName(sv_err_), " (",                       \
                                    ::secvit::cuda_launch_detail(sv_err_), ") at ", __FILE__, \
                                    ":", __LINE__);                                        \
    }                                                                                      \
  } while (0)

namespace secvit {
// The runtime's text for `err`, plus the emulator's account of what went wrong (which barrier,
// which block) when there is one.
inline const char* cuda_launch_detail(cudaError_t err) {
#if defined(SECVIT_CUDA_EMU)
  const char* detail = ::secvit::emu::last_launch_message();
  if (detail != nullptr && detail[0] != '\0') return detail;
#endif
  return cudaGetErrorString(err);
}
}  // namespace secvit
