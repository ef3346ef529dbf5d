// The CUDA execution model, emulated on the host so that secvit's .cu files, compiled by g++ with
// SECVIT_CUDA_EMU defined, run unchanged on machines without a GPU.
//
// How a launch runs (details in cuda_emu_exec.cpp):
//   - Every CUDA thread of a block is a fiber (ucontext, its own mmap'ed stack with a guard
//     page); the fibers of one block take turns on one OS thread, so __syncthreads() and the
//     warp intrinsics are real rendezvous that cost a context switch. A thread that never blocks
//     runs to completion without a switch, and the next thread reuses its fiber.
//   - Blocks are independent and run in parallel on a few OS threads (the launching thread plus
//     a small pool shared by all launches). The launch returns when every block has finished.
//   - Shared memory is poisoned (0xFF bytes: NaN as float, -1 as int) at the start of every
//     block; under AddressSanitizer, the bytes around the shared variables and past the dynamic
//     size are also made unaddressable.
//   - Misuse that a GPU answers with a hang or garbage (a barrier that not every thread reaches,
//     a shuffle whose mask names an exited lane, mismatched warp-intrinsic masks) fails the
//     launch with cudaErrorLaunchFailure and a message in last_launch_message(). So does an
//     exception escaping a kernel.
//
// What kernels see: threadIdx/blockIdx/blockDim/gridDim, warpSize, __syncthreads*, __syncwarp,
// __shfl*_sync, __ballot/__any/__all_sync, __activemask, __match_*_sync, __reduce_*_sync,
// atomics, fences, the usual device math and bit intrinsics, __ldg, min/max, the vector types and
// bf16/fp16 from the toolkit's headers. Shared memory must be declared through SV_SHARED /
// SV_DYNAMIC_SHARED (cuda_compat.h); a raw __shared__ is a compile error here, because it would
// silently become per-thread storage.
//
// Not emulated: __CUDA_ARCH__ (left undefined; select emulation paths with SECVIT_CUDA_EMU),
// cooperative groups, dynamic parallelism, textures/surfaces, __constant__ symbols through
// cudaMemcpyToSymbol, independent-thread-scheduling spin loops (a thread that spins on memory
// written by another thread of its block without a barrier never yields, and waiting for another
// block never returns if that block is not running), device-side assert() (it is the host's
// assert and aborts the process).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda_emu_runtime.h"

#if !defined(SECVIT_EMU_NO_CUDA_HEADERS) && \
    (defined(SECVIT_EMU_HAVE_CUDA_HEADERS) || __has_include(<cuda_bf16.h>))
#define SECVIT_EMU_USES_CUDA_HEADERS 1
#else
#define SECVIT_EMU_USES_CUDA_HEADERS 0
#endif

// A plain `__shared__ float x[64];` compiles under g++ as a per-thread local array, so a kernel
// would run with every thread on its own private copy. Refuse it at compile time instead; the
// toolkit's host_defines.h keeps a definition it finds.
#ifndef __shared__
#define __shared__                                                                       \
  _Pragma("GCC error \"__shared__ is not supported under the CUDA emulator: declare shared " \
          "memory with SV_SHARED(type, name) or SV_DYNAMIC_SHARED(type, name)\"")
#endif

#if SECVIT_EMU_USES_CUDA_HEADERS
// The toolkit's fp16/bf16 headers pull in cuda_runtime_api.h, which declares the real runtime
// API: the same names as cuda_emu_runtime.h with different types. Claiming its include guard
// makes them skip it; they only need vector_types.h and host_defines.h from it, included here.
#ifndef __CUDA_RUNTIME_API_H__
#define __CUDA_RUNTIME_API_H__
#endif
#include <vector_types.h>
#include <vector_functions.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#endif

// Exact conversions between fp32 and the 16-bit formats, by bit manipulation, round to nearest
// even. The emulator's mma and the fallback types below use them; they do not depend on the
// toolkit.
namespace secvit::emu::fp {
inline float bf16_bits_to_f32(unsigned short h) {
  return __builtin_bit_cast(float, static_cast<uint32_t>(h) << 16);
}
inline unsigned short f32_to_bf16_bits(float f) {
  const uint32_t x = __builtin_bit_cast(uint32_t, f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<unsigned short>((x >> 16) | 0x40u);
  return static_cast<unsigned short>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}
inline float f16_bits_to_f32(unsigned short h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in fp32
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (exp == 31) return __builtin_bit_cast(float, sign | 0x7F800000u | (mant << 13));
  return __builtin_bit_cast(float, sign | ((exp + 112u) << 23) | (mant << 13));
}
inline unsigned short f32_to_f16_bits(float f) {
  const uint32_t x = __builtin_bit_cast(uint32_t, f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) {  // inf stays inf, NaN becomes a quiet NaN
    return static_cast<unsigned short>(sign | (ax > 0x7F800000u ? 0x7E00u : 0x7C00u));
  }
  if (ax >= 0x477FF000u) return static_cast<unsigned short>(sign | 0x7C00u);  // rounds past 65504
  if (ax < 0x38800000u) {  // below the smallest normal half: a multiple of 2^-24
    const float scaled = __builtin_bit_cast(float, ax) * 16777216.0f;  // exact
    return static_cast<unsigned short>(sign | static_cast<uint32_t>(std::nearbyint(scaled)));
  }
  uint32_t h = (((ax >> 23) - 112u) << 10) | ((ax & 0x7FFFFFu) >> 13);
  const uint32_t rest = ax & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry moves into the exponent
  return static_cast<unsigned short>(sign | h);
}
}  // namespace secvit::emu::fp

#if !SECVIT_EMU_USES_CUDA_HEADERS
// Without the toolkit's headers: the vector types with CUDA's layouts and alignments, dim3, and
// storage-only __half / __nv_bfloat16 that convert to and from float (so arithmetic happens in
// float), with the conversion functions kernels use. Enough for secvit's kernels; the toolkit's
// headers are preferred whenever they are installed.
#define SECVIT_EMU_VEC2(T, E, A)                                        \
  struct alignas(A) T {                                                 \
    E x, y;                                                             \
  };                                                                    \
  inline T make_##T(E x, E y) { return T{x, y}; }
#define SECVIT_EMU_VEC3(T, E)                                           \
  struct T {                                                            \
    E x, y, z;                                                          \
  };                                                                    \
  inline T make_##T(E x, E y, E z) { return T{x, y, z}; }
#define SECVIT_EMU_VEC4(T, E, A)                                        \
  struct alignas(A) T {                                                 \
    E x, y, z, w;                                                       \
  };                                                                    \
  inline T make_##T(E x, E y, E z, E w) { return T{x, y, z, w}; }
SECVIT_EMU_VEC2(char2, signed char, 2)
SECVIT_EMU_VEC2(uchar2, unsigned char, 2)
SECVIT_EMU_VEC4(char4, signed char, 4)
SECVIT_EMU_VEC4(uchar4, unsigned char, 4)
SECVIT_EMU_VEC2(short2, short, 4)
SECVIT_EMU_VEC2(ushort2, unsigned short, 4)
SECVIT_EMU_VEC4(short4, short, 8)
SECVIT_EMU_VEC4(ushort4, unsigned short, 8)
SECVIT_EMU_VEC2(int2, int, 8)
SECVIT_EMU_VEC2(uint2, unsigned int, 8)
SECVIT_EMU_VEC3(int3, int)
SECVIT_EMU_VEC3(uint3, unsigned int)
SECVIT_EMU_VEC4(int4, int, 16)
SECVIT_EMU_VEC4(uint4, unsigned int, 16)
SECVIT_EMU_VEC2(longlong2, long long, 16)
SECVIT_EMU_VEC2(ulonglong2, unsigned long long, 16)
SECVIT_EMU_VEC2(float2, float, 8)
SECVIT_EMU_VEC3(float3, float)
SECVIT_EMU_VEC4(float4, float, 16)
SECVIT_EMU_VEC2(double2, double, 16)
#undef SECVIT_EMU_VEC2
#undef SECVIT_EMU_VEC3
#undef SECVIT_EMU_VEC4

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
      : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

struct __half_raw {
  unsigned short x;
};
struct __half {
  unsigned short __x;
  __half() = default;
  constexpr __half(__half_raw r) : __x(r.x) {}
  __half(float f) : __x(::secvit::emu::fp::f32_to_f16_bits(f)) {}
  operator float() const { return ::secvit::emu::fp::f16_bits_to_f32(__x); }
  constexpr operator __half_raw() const { return __half_raw{__x}; }
};
struct __nv_bfloat16_raw {
  unsigned short x;
};
struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  constexpr __nv_bfloat16(__nv_bfloat16_raw r) : __x(r.x) {}
  __nv_bfloat16(float f) : __x(::secvit::emu::fp::f32_to_bf16_bits(f)) {}
  operator float() const { return ::secvit::emu::fp::bf16_bits_to_f32(__x); }
  constexpr operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
};
struct alignas(4) __half2 {
  __half x, y;
};
struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
using half = __half;
using half2 = __half2;

inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return float(h); }
inline __half __ushort_as_half(unsigned short u) { return __half(__half_raw{u}); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return float(h); }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
  return __nv_bfloat16(__nv_bfloat16_raw{u});
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__half(a), __half(b)}; }
inline __half2 __float22half2_rn(float2 v) { return __floats2half2_rn(v.x, v.y); }
inline float2 __half22float2(__half2 v) { return float2{float(v.x), float(v.y)}; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
  return __nv_bfloat162{__nv_bfloat16(a), __nv_bfloat16(b)};
}
inline __nv_bfloat162 __float22bfloat162_rn(float2 v) { return __floats2bfloat162_rn(v.x, v.y); }
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return float2{float(v.x), float(v.y)}; }
inline float __low2float(__half2 v) { return float(v.x); }
inline float __high2float(__half2 v) { return float(v.y); }
inline float __low2float(__nv_bfloat162 v) { return float(v.x); }
inline float __high2float(__nv_bfloat162 v) { return float(v.y); }
#endif  // !SECVIT_EMU_USES_CUDA_HEADERS

// Execution-space qualifiers the toolkit leaves undefined for a host compiler. __noinline__ must
// expand to nothing: libstdc++ spells `__attribute__((__noinline__))`, which any other definition
// would break for headers included after this one.
#ifndef __global__
#define __global__
#endif
#ifndef __device__
#define __device__
#endif
#ifndef __host__
#define __host__
#endif
#ifndef __forceinline__
#define __forceinline__ inline __attribute__((always_inline))
#endif
#ifndef __noinline__
#define __noinline__
#endif
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
#ifndef __grid_constant__
#define __grid_constant__
#endif
#ifndef __constant__
#define __constant__
#endif
#ifndef __managed__
#define __managed__
#endif
#ifndef __align__
#define __align__(n) __attribute__((aligned(n)))
#endif

namespace secvit::emu {

// ---- launch ------------------------------------------------------------------------------------

// The emulator's account of the last failed launch on this host thread ("" when the last launch
// succeeded or nothing failed yet): which kernel, which block, what went wrong.
const char* last_launch_message();

namespace detail {

struct LaunchSpec {
  const char* name;          // kernel expression as written at the launch site, or nullptr
  const void* kernel;        // the kernel's address, to look its symbol up
  dim3 grid;
  dim3 block;
  size_t dynamic_smem;
  cudaStream_t stream;
  void (*invoke)(const void* closure);  // runs the kernel body for the current thread
  const void* closure;
};

void launch_impl(const LaunchSpec& spec);

// Copy-initialisation, as when the arguments are passed to the kernel in a call.
template <class To, class From>
To pass_as(From&& from) {
  return std::forward<From>(from);
}

template <class... P>
struct KernelClosure {
  void (*kernel)(P...);
  std::tuple<P...> params;

  static void invoke(const void* self) {
    const auto* c = static_cast<const KernelClosure*>(self);
    // Each thread gets its own copies of the parameters, as on a GPU.
    std::apply(c->kernel, c->params);
  }
};

}  // namespace detail

// Runs kernel<<<grid, block, smem, stream>>>(args...) to completion. Errors are reported the
// CUDA way: cudaGetLastError() returns them, last_launch_message() explains them.
template <class... P, class... A>
void launch_named(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                  cudaStream_t stream, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  static_assert((!std::is_reference_v<P> && ...), "kernel parameters cannot be references");
  detail::KernelClosure<P...> closure{
      kernel, std::tuple<P...>(detail::pass_as<P>(std::forward<A>(args))...)};
  detail::LaunchSpec spec{name, reinterpret_cast<const void*>(kernel), grid, block, smem, stream,
                          &detail::KernelClosure<P...>::invoke, &closure};
  detail::launch_impl(spec);
}

template <class... P, class... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
            A&&... args) {
  launch_named(nullptr, kernel, grid, block, smem, stream, std::forward<A>(args)...);
}

// ---- what a running kernel thread sees ---------------------------------------------------------

namespace detail {

struct ThreadRegs {
  uint3 idx;
  unsigned linear;  // x + y*Dx + z*Dx*Dy: lane = linear % 32, warp = linear / 32
};
struct BlockRegs {
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
inline constexpr ThreadRegs kHostThreadRegs{{0, 0, 0}, 0};
inline constexpr BlockRegs kHostBlockRegs{{0, 0, 0}, dim3(1, 1, 1), dim3(1, 1, 1)};

// Switched by the scheduler whenever another CUDA thread starts running on this OS thread.
// Outside kernels they describe a 1x1 launch, so host code that calls a __host__ __device__
// helper reading threadIdx still gets sensible values.
inline thread_local const ThreadRegs* t_thread = &kHostThreadRegs;
inline thread_local const BlockRegs* t_block = &kHostBlockRegs;

// Fails the running launch with `message` (prefixed with kernel, block and thread) and unwinds
// the calling CUDA thread. Outside a kernel it throws std::logic_error.
[[noreturn]] void kernel_fault(const char* message);

enum BarrierKind : int { kBarSync = 0, kBarCount = 1, kBarAnd = 2, kBarOr = 3 };
int block_barrier(const char* what, int kind, int predicate);

// Per-lane exchange area for warp collectives.
struct WarpSlot {
  alignas(16) unsigned char in[64];
  alignas(16) unsigned char out[32];
};
// Computes every participating lane's `out` from all participating lanes' `in`; runs once per
// collective, after the last lane of `mask` arrived.
using WarpCombine = void (*)(WarpSlot* slots, unsigned mask);

// The generic warp rendezvous: copies `in` to this lane's slot, waits for every lane of `mask`
// (lanes that do not exist in a partial last warp are dropped from it, unless full_warp is set,
// in which case the warp must have 32 threads and the mask must be 0xffffffff), runs `combine`
// once and copies this lane's `out` back. Mismatched masks or intrinsics among lanes, a mask
// without the calling lane, or a mask naming an exited lane fail the launch.
void warp_collective(const char* what, unsigned mask, bool full_warp, WarpCombine combine,
                     const void* in, size_t in_bytes, void* out, size_t out_bytes);

enum ShflMode : int { kShflIdx = 0, kShflUp = 1, kShflDown = 2, kShflXor = 3 };
unsigned long long shfl_bits(const char* what, unsigned mask, unsigned long long bits, int mode,
                             long long arg, int width);

enum VoteKind : int { kVoteBallot = 0, kVoteAny = 1, kVoteAll = 2 };
unsigned vote(const char* what, unsigned mask, int predicate, int kind);

enum MatchKind : int { kMatchAny = 0, kMatchAll = 1 };
unsigned match(const char* what, unsigned mask, unsigned long long value, int kind, int* pred);

enum ReduceKind : int {
  kRedAddU, kRedMinU, kRedMaxU, kRedMinS, kRedMaxS, kRedAnd, kRedOr, kRedXor
};
unsigned reduce(const char* what, unsigned mask, unsigned value, int kind);

unsigned active_mask();

void* shared_static_alloc(size_t bytes, size_t align);
void* shared_dynamic_base();

// Values travel as bytes. The toolkit's __half2/__nv_bfloat162 have user-declared copy
// assignment, so "trivially destructible" is the test for a plain value here.
template <class T>
T shfl(const char* what, unsigned mask, T var, int mode, long long arg, int width) {
  static_assert(sizeof(T) <= 8, "warp shuffles move values of at most 8 bytes");
  static_assert(std::is_trivially_destructible_v<T>, "warp shuffles move plain values");
  unsigned long long bits = 0;
  std::memcpy(&bits, static_cast<const void*>(&var), sizeof(T));
  bits = shfl_bits(what, mask, bits, mode, arg, width);
  T out = var;
  std::memcpy(static_cast<void*>(&out), &bits, sizeof(T));
  return out;
}

}  // namespace detail

// Per-block static shared memory for SV_SHARED. Every thread of a block makes the same sequence
// of calls, so the n-th call returns the same address in every thread; a thread whose sequence
// differs (a different type at the same position) fails the launch. Note that an SV_SHARED
// inside a loop allocates anew on every iteration: declare shared variables at kernel scope.
template <class T>
T* shared_static() {
  using E = std::remove_all_extents_t<T>;
  static_assert(std::is_trivially_default_constructible_v<E> && std::is_trivially_destructible_v<E>,
                "shared memory cannot hold types with constructors or destructors");
  static_assert(alignof(T) <= 128, "shared variables are aligned to at most 128 bytes");
  return static_cast<T*>(detail::shared_static_alloc(sizeof(T), alignof(T)));
}

// The block's dynamic shared memory (the launch's smem bytes), 128-byte aligned.
template <class T>
T* shared_dynamic() {
  static_assert(alignof(T) <= 128, "dynamic shared memory is aligned to 128 bytes");
  return static_cast<T*>(detail::shared_dynamic_base());
}

}  // namespace secvit::emu

// ---- built-in variables -------------------------------------------------------------------------

#define threadIdx (::secvit::emu::detail::t_thread->idx)
#define blockIdx (::secvit::emu::detail::t_block->block_idx)
#define blockDim (::secvit::emu::detail::t_block->block_dim)
#define gridDim (::secvit::emu::detail::t_block->grid_dim)
inline constexpr int warpSize = 32;

// ---- synchronisation ----------------------------------------------------------------------------

inline void __syncthreads() {
  ::secvit::emu::detail::block_barrier("__syncthreads()", ::secvit::emu::detail::kBarSync, 0);
}
inline int __syncthreads_count(int predicate) {
  return ::secvit::emu::detail::block_barrier("__syncthreads_count()",
                                              ::secvit::emu::detail::kBarCount, predicate);
}
inline int __syncthreads_and(int predicate) {
  return ::secvit::emu::detail::block_barrier("__syncthreads_and()",
                                              ::secvit::emu::detail::kBarAnd, predicate);
}
inline int __syncthreads_or(int predicate) {
  return ::secvit::emu::detail::block_barrier("__syncthreads_or()",
                                              ::secvit::emu::detail::kBarOr, predicate);
}
void __syncwarp(unsigned mask = 0xffffffffu);

// All blocks of a launch share the host's memory; the fibers of one block share an OS thread,
// for which a compiler barrier is enough.
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

[[noreturn]] inline void __trap() { ::secvit::emu::detail::kernel_fault("__trap() called"); }
void __nanosleep(unsigned ns);
long long clock64();

// ---- warp intrinsics ----------------------------------------------------------------------------
// Templates over any plain type of at most 8 bytes: int, unsigned, float, double, long long,
// unsigned long long, and also __half2/__nv_bfloat162/float2.

template <class T>
T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) {
  return ::secvit::emu::detail::shfl("__shfl_sync", mask, var, ::secvit::emu::detail::kShflIdx,
                                     srcLane, width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return ::secvit::emu::detail::shfl("__shfl_up_sync", mask, var, ::secvit::emu::detail::kShflUp,
                                     delta, width);
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return ::secvit::emu::detail::shfl("__shfl_down_sync", mask, var,
                                     ::secvit::emu::detail::kShflDown, delta, width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) {
  return ::secvit::emu::detail::shfl("__shfl_xor_sync", mask, var, ::secvit::emu::detail::kShflXor,
                                     laneMask, width);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return ::secvit::emu::detail::vote("__ballot_sync", mask, predicate,
                                     ::secvit::emu::detail::kVoteBallot);
}
inline int __any_sync(unsigned mask, int predicate) {
  return int(::secvit::emu::detail::vote("__any_sync", mask, predicate,
                                         ::secvit::emu::detail::kVoteAny));
}
inline int __all_sync(unsigned mask, int predicate) {
  return int(::secvit::emu::detail::vote("__all_sync", mask, predicate,
                                         ::secvit::emu::detail::kVoteAll));
}
// The lanes of the calling warp that have not exited at this point of the program. The emulator
// does not model divergence, so inside a divergent branch this also names the lanes that took the
// other branch; pass explicit masks there.
inline unsigned __activemask() { return ::secvit::emu::detail::active_mask(); }

template <class T>
unsigned __match_any_sync(unsigned mask, T value) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "__match_any_sync takes 4- or 8-byte values");
  unsigned long long bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return ::secvit::emu::detail::match("__match_any_sync", mask, bits,
                                      ::secvit::emu::detail::kMatchAny, nullptr);
}
template <class T>
unsigned __match_all_sync(unsigned mask, T value, int* pred) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "__match_all_sync takes 4- or 8-byte values");
  unsigned long long bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return ::secvit::emu::detail::match("__match_all_sync", mask, bits,
                                      ::secvit::emu::detail::kMatchAll, pred);
}

inline unsigned __reduce_add_sync(unsigned mask, unsigned value) {
  return ::secvit::emu::detail::reduce("__reduce_add_sync", mask, value,
                                       ::secvit::emu::detail::kRedAddU);
}
inline int __reduce_add_sync(unsigned mask, int value) {
  return int(::secvit::emu::detail::reduce("__reduce_add_sync", mask, unsigned(value),
                                           ::secvit::emu::detail::kRedAddU));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned value) {
  return ::secvit::emu::detail::reduce("__reduce_min_sync", mask, value,
                                       ::secvit::emu::detail::kRedMinU);
}
inline int __reduce_min_sync(unsigned mask, int value) {
  return int(::secvit::emu::detail::reduce("__reduce_min_sync", mask, unsigned(value),
                                           ::secvit::emu::detail::kRedMinS));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned value) {
  return ::secvit::emu::detail::reduce("__reduce_max_sync", mask, value,
                                       ::secvit::emu::detail::kRedMaxU);
}
inline int __reduce_max_sync(unsigned mask, int value) {
  return int(::secvit::emu::detail::reduce("__reduce_max_sync", mask, unsigned(value),
                                           ::secvit::emu::detail::kRedMaxS));
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned value) {
  return ::secvit::emu::detail::reduce("__reduce_and_sync", mask, value,
                                       ::secvit::emu::detail::kRedAnd);
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned value) {
  return ::secvit::emu::detail::reduce("__reduce_or_sync", mask, value,
                                       ::secvit::emu::detail::kRedOr);
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned value) {
  return ::secvit::emu::detail::reduce("__reduce_xor_sync", mask, value,
                                       ::secvit::emu::detail::kRedXor);
}

// ---- atomics ------------------------------------------------------------------------------------
// Blocks run on several OS threads at once, so these are real atomic read-modify-writes. CUDA's
// are relaxed; sequentially consistent ones cost the same on x86 and keep racy-but-fenced
// patterns (last-block-done counters) correct on weaker hosts too.

namespace secvit::emu::detail {

template <class T, class F>
T atomic_update(T* address, F f) {
  T old;
  __atomic_load(address, &old, __ATOMIC_RELAXED);
  T desired;
  do {
    desired = f(old);
  } while (!__atomic_compare_exchange(address, &old, &desired, true, __ATOMIC_SEQ_CST,
                                      __ATOMIC_RELAXED));
  return old;
}

template <class T, class U>
T atomic_cas(T* address, T compare, U val) {
  T expected = compare;
  T desired = T(val);
  __atomic_compare_exchange(address, &expected, &desired, false, __ATOMIC_SEQ_CST,
                            __ATOMIC_SEQ_CST);
  return expected;  // the old value either way
}

}  // namespace secvit::emu::detail

#define SECVIT_EMU_ATOMIC_FETCH(name, builtin, T) \
  inline T name(T* address, T val) { return builtin(address, val, __ATOMIC_SEQ_CST); }

SECVIT_EMU_ATOMIC_FETCH(atomicAdd, __atomic_fetch_add, int)
SECVIT_EMU_ATOMIC_FETCH(atomicAdd, __atomic_fetch_add, unsigned int)
SECVIT_EMU_ATOMIC_FETCH(atomicAdd, __atomic_fetch_add, unsigned long long int)
SECVIT_EMU_ATOMIC_FETCH(atomicSub, __atomic_fetch_sub, int)
SECVIT_EMU_ATOMIC_FETCH(atomicSub, __atomic_fetch_sub, unsigned int)
SECVIT_EMU_ATOMIC_FETCH(atomicAnd, __atomic_fetch_and, int)
SECVIT_EMU_ATOMIC_FETCH(atomicAnd, __atomic_fetch_and, unsigned int)
SECVIT_EMU_ATOMIC_FETCH(atomicAnd, __atomic_fetch_and, unsigned long long int)
SECVIT_EMU_ATOMIC_FETCH(atomicOr, __atomic_fetch_or, int)
SECVIT_EMU_ATOMIC_FETCH(atomicOr, __atomic_fetch_or, unsigned int)
SECVIT_EMU_ATOMIC_FETCH(atomicOr, __atomic_fetch_or, unsigned long long int)
SECVIT_EMU_ATOMIC_FETCH(atomicXor, __atomic_fetch_xor, int)
SECVIT_EMU_ATOMIC_FETCH(atomicXor, __atomic_fetch_xor, unsigned int)
SECVIT_EMU_ATOMIC_FETCH(atomicXor, __atomic_fetch_xor, unsigned long long int)
#undef SECVIT_EMU_ATOMIC_FETCH

inline float atomicAdd(float* address, float val) {
  return ::secvit::emu::detail::atomic_update(address, [val](float old) { return old + val; });
}
inline double atomicAdd(double* address, double val) {
  return ::secvit::emu::detail::atomic_update(address, [val](double old) { return old + val; });
}
inline __half atomicAdd(__half* address, __half val) {
  return ::secvit::emu::detail::atomic_update(address, [val](__half old) {
    return __float2half_rn(__half2float(old) + __half2float(val));
  });
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* address, __nv_bfloat16 val) {
  return ::secvit::emu::detail::atomic_update(address, [val](__nv_bfloat16 old) {
    return __float2bfloat16_rn(__bfloat162float(old) + __bfloat162float(val));
  });
}

#define SECVIT_EMU_ATOMIC_MINMAX(T)                                                          \
  inline T atomicMax(T* address, T val) {                                                    \
    return ::secvit::emu::detail::atomic_update(address,                                     \
                                                [val](T old) { return old < val ? val : old; }); \
  }                                                                                          \
  inline T atomicMin(T* address, T val) {                                                    \
    return ::secvit::emu::detail::atomic_update(address,                                     \
                                                [val](T old) { return val < old ? val : old; }); \
  }
SECVIT_EMU_ATOMIC_MINMAX(int)
SECVIT_EMU_ATOMIC_MINMAX(unsigned int)
SECVIT_EMU_ATOMIC_MINMAX(long long int)
SECVIT_EMU_ATOMIC_MINMAX(unsigned long long int)
#undef SECVIT_EMU_ATOMIC_MINMAX

inline unsigned int atomicInc(unsigned int* address, unsigned int val) {
  return ::secvit::emu::detail::atomic_update(
      address, [val](unsigned int old) { return old >= val ? 0u : old + 1u; });
}
inline unsigned int atomicDec(unsigned int* address, unsigned int val) {
  return ::secvit::emu::detail::atomic_update(
      address, [val](unsigned int old) { return (old == 0u || old > val) ? val : old - 1u; });
}

inline int atomicCAS(int* address, int compare, int val) {
  return ::secvit::emu::detail::atomic_cas(address, compare, val);
}
inline unsigned int atomicCAS(unsigned int* address, unsigned int compare, unsigned int val) {
  return ::secvit::emu::detail::atomic_cas(address, compare, val);
}
inline unsigned long long int atomicCAS(unsigned long long int* address,
                                        unsigned long long int compare,
                                        unsigned long long int val) {
  return ::secvit::emu::detail::atomic_cas(address, compare, val);
}
inline unsigned short int atomicCAS(unsigned short int* address, unsigned short int compare,
                                    unsigned short int val) {
  return ::secvit::emu::detail::atomic_cas(address, compare, val);
}

inline int atomicExch(int* address, int val) {
  return __atomic_exchange_n(address, val, __ATOMIC_SEQ_CST);
}
inline unsigned int atomicExch(unsigned int* address, unsigned int val) {
  return __atomic_exchange_n(address, val, __ATOMIC_SEQ_CST);
}
inline unsigned long long int atomicExch(unsigned long long int* address,
                                         unsigned long long int val) {
  return __atomic_exchange_n(address, val, __ATOMIC_SEQ_CST);
}
inline float atomicExch(float* address, float val) {
  float old;
  __atomic_exchange(address, &val, &old, __ATOMIC_SEQ_CST);
  return old;
}

// ---- device math --------------------------------------------------------------------------------
// The host's correctly rounded functions stand in for the GPU's fast approximations, so results
// are at least as accurate as on the device. glibc already declares __expf, __logf, ... as its own
// internal aliases, so those CUDA names are macros over the standard functions.

namespace secvit::emu::math {
inline float fast_exp10f(float x) { return std::pow(10.0f, x); }
inline void fast_sincosf(float x, float* s, float* c) {
  *s = std::sin(x);
  *c = std::cos(x);
}
}  // namespace secvit::emu::math

#define __expf(x) ::expf(x)
#define __exp10f(x) ::secvit::emu::math::fast_exp10f(x)
#define __logf(x) ::logf(x)
#define __log2f(x) ::log2f(x)
#define __log10f(x) ::log10f(x)
#define __sinf(x) ::sinf(x)
#define __cosf(x) ::cosf(x)
#define __tanf(x) ::tanf(x)
#define __powf(x, y) ::powf((x), (y))
#define __sincosf(x, s, c) ::secvit::emu::math::fast_sincosf((x), (s), (c))

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / std::sqrt(x); }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float fdividef(float x, float y) { return x / y; }
inline float __fdiv_rn(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fsub_rn(float x, float y) { return x - y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fmaf_rn(float x, float y, float z) { return std::fma(x, y, z); }
inline double __dadd_rn(double x, double y) { return x + y; }
inline double __dmul_rn(double x, double y) { return x * y; }
inline double __fma_rn(double x, double y, double z) { return std::fma(x, y, z); }
// Clamps to [0, 1]; NaN becomes 0 as on the GPU.
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }

inline int __float2int_rn(float x) { return int(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return int(x); }
inline int __float2int_rd(float x) { return int(std::floor(x)); }
inline int __float2int_ru(float x) { return int(std::ceil(x)); }
inline unsigned __float2uint_rn(float x) { return unsigned(std::nearbyint(x)); }
inline float __int2float_rn(int x) { return float(x); }
inline float __uint2float_rn(unsigned x) { return float(x); }

inline int __float_as_int(float x) { return __builtin_bit_cast(int, x); }
inline unsigned int __float_as_uint(float x) { return __builtin_bit_cast(unsigned int, x); }
inline float __int_as_float(int x) { return __builtin_bit_cast(float, x); }
inline float __uint_as_float(unsigned int x) { return __builtin_bit_cast(float, x); }
inline long long __double_as_longlong(double x) { return __builtin_bit_cast(long long, x); }
inline double __longlong_as_double(long long x) { return __builtin_bit_cast(double, x); }

// ---- integer and bit intrinsics -----------------------------------------------------------------

inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
  return __builtin_bswap32(x);
}
inline unsigned long long __brevll(unsigned long long x) {
  return (static_cast<unsigned long long>(__brev(unsigned(x))) << 32) | __brev(unsigned(x >> 32));
}
inline unsigned int __byte_perm(unsigned int x, unsigned int y, unsigned int s) {
  const unsigned long long bytes = (static_cast<unsigned long long>(y) << 32) | x;
  unsigned int r = 0;
  for (int i = 0; i < 4; ++i) {
    const unsigned sel = (s >> (4 * i)) & 7u;
    r |= static_cast<unsigned int>((bytes >> (8 * sel)) & 0xFFu) << (8 * i);
  }
  return r;
}
inline unsigned int __funnelshift_l(unsigned int lo, unsigned int hi, unsigned int shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned int>((v << (shift & 31u)) >> 32);
}
inline unsigned int __funnelshift_r(unsigned int lo, unsigned int hi, unsigned int shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned int>(v >> (shift & 31u));
}
inline unsigned int __funnelshift_lc(unsigned int lo, unsigned int hi, unsigned int shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned int>((v << (shift < 32u ? shift : 32u)) >> 32);
}
inline unsigned int __funnelshift_rc(unsigned int lo, unsigned int hi, unsigned int shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned int>(v >> (shift < 32u ? shift : 32u));
}
inline int __mulhi(int x, int y) { return int((static_cast<long long>(x) * y) >> 32); }
inline unsigned int __umulhi(unsigned int x, unsigned int y) {
  return unsigned((static_cast<unsigned long long>(x) * y) >> 32);
}
inline long long __mul64hi(long long x, long long y) {
  return static_cast<long long>((static_cast<__int128>(x) * y) >> 64);
}
inline unsigned long long __umul64hi(unsigned long long x, unsigned long long y) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(x) * y) >> 64);
}
inline int __mul24(int x, int y) {
  return int(static_cast<unsigned>((x << 8) >> 8) * static_cast<unsigned>((y << 8) >> 8));
}
inline unsigned int __umul24(unsigned int x, unsigned int y) {
  return (x & 0xFFFFFFu) * (y & 0xFFFFFFu);
}
inline unsigned int __sad(int x, int y, unsigned int z) {
  return z + static_cast<unsigned int>(x > y ? static_cast<long long>(x) - y
                                             : static_cast<long long>(y) - x);
}
inline unsigned int __usad(unsigned int x, unsigned int y, unsigned int z) {
  return z + (x > y ? x - y : y - x);
}

template <class T>
inline T __ldg(const T* ptr) {
  return *ptr;
}

// ---- min / max ----------------------------------------------------------------------------------
// The overload set of CUDA's math_functions.hpp, so that a call resolves (or is ambiguous)
// exactly as under nvcc. They are non-template functions in the global namespace: std::min and
// std::max are untouched, and unqualified calls with `using namespace std` prefer these.

#define SECVIT_EMU_MINMAX(R, A, B)                                         \
  inline R min(const A a, const B b) {                                     \
    return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); \
  }                                                                        \
  inline R max(const A a, const B b) {                                     \
    return static_cast<R>(a) > static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); \
  }
SECVIT_EMU_MINMAX(int, int, int)
SECVIT_EMU_MINMAX(unsigned int, unsigned int, unsigned int)
SECVIT_EMU_MINMAX(unsigned int, int, unsigned int)
SECVIT_EMU_MINMAX(unsigned int, unsigned int, int)
SECVIT_EMU_MINMAX(long int, long int, long int)
SECVIT_EMU_MINMAX(unsigned long int, unsigned long int, unsigned long int)
SECVIT_EMU_MINMAX(unsigned long int, long int, unsigned long int)
SECVIT_EMU_MINMAX(unsigned long int, unsigned long int, long int)
SECVIT_EMU_MINMAX(long long int, long long int, long long int)
SECVIT_EMU_MINMAX(unsigned long long int, unsigned long long int, unsigned long long int)
SECVIT_EMU_MINMAX(unsigned long long int, long long int, unsigned long long int)
SECVIT_EMU_MINMAX(unsigned long long int, unsigned long long int, long long int)
#undef SECVIT_EMU_MINMAX
// fminf/fmaxf semantics: a NaN operand yields the other one.
inline float min(const float a, const float b) { return std::fmin(a, b); }
inline float max(const float a, const float b) { return std::fmax(a, b); }
inline double min(const double a, const double b) { return std::fmin(a, b); }
inline double max(const double a, const double b) { return std::fmax(a, b); }
inline double min(const float a, const double b) { return std::fmin(double(a), b); }
inline double max(const float a, const double b) { return std::fmax(double(a), b); }
inline double min(const double a, const float b) { return std::fmin(a, double(b)); }
inline double max(const double a, const float b) { return std::fmax(a, double(b)); }

// ---- C++ conveniences of cuda_runtime.h ---------------------------------------------------------

// cudaMalloc(&float_ptr, bytes), as cuda_runtime.h allows for any pointer type.
template <class T>
inline cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}

enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

namespace secvit::emu {
// Records a kernel's opt-in to more than 48 KiB of dynamic shared memory.
void set_max_dynamic_smem(const void* kernel, size_t bytes);
}  // namespace secvit::emu

// As on a GPU, a kernel gets 48 KiB of shared memory (static plus dynamic) unless this raised
// its dynamic limit (up to 227 KiB); launches beyond the limit fail.
template <class T>
cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
  if (entry == nullptr) {
    ::secvit::emu::set_last_error(cudaErrorInvalidValue);
    return cudaErrorInvalidValue;
  }
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > 227 * 1024) {
      ::secvit::emu::set_last_error(cudaErrorInvalidValue);
      return cudaErrorInvalidValue;
    }
    ::secvit::emu::set_max_dynamic_smem(reinterpret_cast<const void*>(entry), size_t(value));
  }
  return cudaSuccess;
}
