// Warp-level tensor-core matrix multiply-accumulate, usable from kernels under both compilers:
//   nvcc (sm_80+): the PTX instruction mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{..}.f32
//   the emulator:  a host twin that gathers all 32 lanes' fragments through the warp exchange,
//                  multiplies in fp32 and hands every lane its part of D. Because it reads the
//                  fragments with the hardware's layout, a kernel that packs them wrongly gets
//                  wrong results here too.
//
//   D (16x8, fp32) = A (16x16, row-major) * B (16x8, column-major) + C (16x8, fp32)
//
// All 32 lanes of the warp must call it together (the block size must be a multiple of 32).
// Each uint32 holds two 16-bit values, the lower-numbered element in the low half. With
//   g = lane >> 2 (groupID), t = lane % 4 (threadID_in_group),
// the fragments are (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"):
//
//   A: a[0] = {A[g  ][2t], A[g  ][2t+1]}    a[1] = {A[g+8][2t  ], A[g+8][2t+1  ]}
//      a[2] = {A[g  ][2t+8], A[g][2t+9]}    a[3] = {A[g+8][2t+8], A[g+8][2t+9  ]}
//      i.e. element a_i (i = 0..7) sits at row g + 8*((i>>1)&1), column 2t + (i&1) + 8*(i>=4)
//   B: b[0] = {B[2t  ][g], B[2t+1][g]}      b[1] = {B[2t+8][g], B[2t+9][g]}
//      i.e. element b_i (i = 0..3) sits at row (k) 2t + (i&1) + 8*(i>=2), column (n) g
//   C, D: c[0] = C[g][2t]  c[1] = C[g][2t+1]  c[2] = C[g+8][2t]  c[3] = C[g+8][2t+1]
//
// d may alias c (accumulating in place).
#pragma once

#include <cstdint>

#include "cuda_compat.h"

// Packs two 16-bit values into one fragment register: `lo` is the lower-numbered element.
__host__ __device__ __forceinline__ uint32_t sv_pack_bf16x2(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(lo)) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(hi)) << 16);
}
__host__ __device__ __forceinline__ uint32_t sv_pack_f16x2(__half lo, __half hi) {
  return static_cast<uint32_t>(__half_as_ushort(lo)) |
         (static_cast<uint32_t>(__half_as_ushort(hi)) << 16);
}

#if defined(SECVIT_CUDA_EMU)

#include <cstring>

namespace secvit::emu::mma_detail {

struct M16N8K16In {
  uint32_t a[4];
  uint32_t b[2];
  float c[4];
};
static_assert(sizeof(M16N8K16In) <= sizeof(detail::WarpSlot::in), "mma fragments exceed the slot");

template <bool kBf16>
inline float to_f32(uint32_t reg, int half) {
  const auto bits = static_cast<unsigned short>(reg >> (16 * half));
  return kBf16 ? fp::bf16_bits_to_f32(bits) : fp::f16_bits_to_f32(bits);
}

// Runs once per warp-wide mma: rebuilds A, B and C from the 32 lanes' fragments, computes D and
// scatters it back. Products of two 16-bit floats are exact in fp32; the sums are fp32 in k order.
template <bool kBf16>
void combine_m16n8k16(detail::WarpSlot* slots, unsigned /*mask: always the full warp*/) {
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    M16N8K16In in;
    std::memcpy(&in, slots[lane].in, sizeof(in));
    const int g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 8; ++i) {
      A[g + 8 * ((i >> 1) & 1)][2 * t + (i & 1) + 8 * (i >= 4)] =
          to_f32<kBf16>(in.a[i >> 1], i & 1);
    }
    for (int i = 0; i < 4; ++i) {
      B[2 * t + (i & 1) + 8 * (i >= 2)][g] = to_f32<kBf16>(in.b[i >> 1], i & 1);
    }
    for (int i = 0; i < 4; ++i) C[g + 8 * (i >= 2)][2 * t + (i & 1)] = in.c[i];
  }
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    float d[4];
    for (int i = 0; i < 4; ++i) {
      const int row = g + 8 * (i >= 2), col = 2 * t + (i & 1);
      float acc = C[row][col];
      for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
      d[i] = acc;
    }
    std::memcpy(slots[lane].out, d, sizeof(d));
  }
}

template <bool kBf16>
inline void mma_m16n8k16(const char* what, float d[4], const uint32_t a[4], const uint32_t b[2],
                         const float c[4]) {
  M16N8K16In in;
  std::memcpy(in.a, a, sizeof(in.a));
  std::memcpy(in.b, b, sizeof(in.b));
  std::memcpy(in.c, c, sizeof(in.c));
  float out[4];
  detail::warp_collective(what, 0xFFFFFFFFu, /*full_warp=*/true, &combine_m16n8k16<kBf16>, &in,
                          sizeof(in), out, sizeof(out));
  std::memcpy(d, out, sizeof(out));
}

}  // namespace secvit::emu::mma_detail

inline void sv_mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                 const float c[4]) {
  ::secvit::emu::mma_detail::mma_m16n8k16<true>("sv_mma_m16n8k16_bf16", d, a, b, c);
}
inline void sv_mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                const float c[4]) {
  ::secvit::emu::mma_detail::mma_m16n8k16<false>("sv_mma_m16n8k16_f16", d, a, b, c);
}

#else  // nvcc

__device__ __forceinline__ void sv_mma_m16n8k16_bf16(float d[4], const uint32_t a[4],
                                                     const uint32_t b[2], const float c[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
#elif defined(__CUDA_ARCH__)
  // bf16 tensor-core mma needs sm_80; reaching this on an older device is a build-config bug.
  __trap();
#endif
}

__device__ __forceinline__ void sv_mma_m16n8k16_f16(float d[4], const uint32_t a[4],
                                                    const uint32_t b[2], const float c[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

#endif  // SECVIT_CUDA_EMU
