// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
// counter-based generator of cuRAND and PyTorch's CUDA RNG: the random bits of element i are a
// pure function of (seed, counter i), so a kernel on any backend, any thread count and any
// schedule draws the same numbers, and a dropout mask is recomputed in the backward instead of
// stored. Header-only, for CPU kernels and (host-device) for CUDA ones.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SV_HD __host__ __device__ __forceinline__
#else
#define SV_HD inline
#endif

namespace secvit {

struct Philox4 {
  uint32_t v[4];
};

SV_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  return uint32_t(p);
}

// Four 32-bit words for counter `ctr` under the 64-bit key `seed`.
SV_HD Philox4 philox4x32(uint64_t seed, uint64_t ctr) {
  uint32_t c0 = uint32_t(ctr), c1 = uint32_t(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = philox_mulhilo(0xD2511F53u, c0, &hi0);
    const uint32_t lo1 = philox_mulhilo(0xCD9E8D57u, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// A uniform float in [0, 1) from the first word (24 random bits).
SV_HD float philox_uniform(uint64_t seed, uint64_t ctr) {
  return float(philox4x32(seed, ctr).v[0] >> 8) * (1.0f / 16777216.0f);
}

}  // namespace secvit
