// Which SIMD path the CPU kernels take, decided once at run time. SECVIT_CPU_SIMD=scalar forces
// the portable path (tests run both).
#pragma once

namespace secvit {

enum class CpuSimd { Scalar, Avx2Fma };

CpuSimd cpu_simd();
const char* cpu_simd_name(CpuSimd s);
// Changes the path for this process (tests and benchmarks). Avx2Fma is refused (returns false)
// when the CPU lacks it.
bool set_cpu_simd(CpuSimd s);

}  // namespace secvit
