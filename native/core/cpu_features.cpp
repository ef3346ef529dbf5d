#include "cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace secvit {
namespace {

bool hardware_has_avx2_fma() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(SECVIT_HAVE_AVX2_KERNELS)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

CpuSimd detect() {
  const char* env = std::getenv("SECVIT_CPU_SIMD");
  if (env != nullptr && std::strcmp(env, "scalar") == 0) return CpuSimd::Scalar;
  return hardware_has_avx2_fma() ? CpuSimd::Avx2Fma : CpuSimd::Scalar;
}

std::atomic<int> g_simd{-1};

}  // namespace

CpuSimd cpu_simd() {
  int v = g_simd.load(std::memory_order_relaxed);
  if (v < 0) {
    v = int(detect());
    g_simd.store(v);
  }
  return CpuSimd(v);
}

const char* cpu_simd_name(CpuSimd s) { return s == CpuSimd::Avx2Fma ? "avx2-fma" : "scalar"; }

bool set_cpu_simd(CpuSimd s) {
  if (s == CpuSimd::Avx2Fma && !hardware_has_avx2_fma()) return false;
  g_simd.store(int(s));
  return true;
}

}  // namespace secvit
