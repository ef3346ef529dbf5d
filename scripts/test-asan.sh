#!/usr/bin/env bash
# Runs the test suite against an AddressSanitizer + UndefinedBehaviorSanitizer build of the addon,
# so an out-of-bounds index in an emulated CUDA kernel (or anywhere in the native code), or
# undefined behaviour (signed overflow, a bad shift, a misaligned or null pointer, a float -> int
# conversion out of range), fails loudly: the whole model runs on cpu and cuda-emu in the suite. The ASan build skips
# nvcc (it checks the emulated kernels and the CPU code) and goes to build-asan/.
# Node itself is not instrumented: libasan is preloaded into it. Leak detection is off because
# Node's own start-up allocations outlive the process; secvit's leaks are checked by memory().
set -euo pipefail
cd "$(dirname "$0")/.."
SECVIT_ASAN=ON SECVIT_CUDA=OFF npx cmake-js compile -O build-asan --log-level warn
libasan=$(${CXX:-g++} -print-file-name=libasan.so)
[[ -f "$libasan" ]] || { echo "test-asan: libasan.so not found (install the compiler's ASan runtime)"; exit 1; }
export LD_PRELOAD="$libasan"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1:exitcode=86
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87
export SECVIT_ADDON_PATH="$PWD/build-asan/Release/secvit_asan.node"
# The bundled model's 10,000-image evaluations and the real-data training smoke run the same
# kernels the rest of the suite checks here, 10x slower: the regular run has them.
export SECVIT_SKIP_SLOW_DATA=1
# The packaging tests load the package from dist/ in fresh processes (the regular build).
npx vitest run --exclude test/packaging.test.ts "$@"
