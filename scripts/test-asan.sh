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
# The packaging tests load the package from dist/ in fresh processes (the regular build). The
# benchmark script, the CLI and the README's commands are front ends timed or spawned as
# processes (3.3 of the 8.5 minutes of test time under ASan); the kernels and loaders
# they drive are the ones the rest of the suite checks here.
# The Swin/ViT models (2 minutes here) and the training loops (trainer, training memory: 1.2
# minutes) also run kernels the op, attention, gradient and SecViT tests check here one by one.
# The emulated CUDA kernels run under the emulator's lifo schedule here (SECVIT_EMU_SCHEDULE may
# say otherwise), so this run is also one of test:emu-schedules' (CI runs only random there).
export SECVIT_EMU_SCHEDULE=${SECVIT_EMU_SCHEDULE:-lifo}
# The README's blocks (typechecked and parsed: no native code), its examples run in-process, and
# the onnxruntime-node comparison (26 s of test time here) run kernels the golden tests check.
npx vitest run --exclude test/packaging.test.ts --exclude test/bench.test.ts --exclude test/cli.test.ts \
  --exclude test/readme.run.test.ts --exclude test/models/families.test.ts --exclude test/training.test.ts \
  --exclude test/trainer.test.ts --exclude test/readme.blocks.test.ts --exclude test/models/readme.test.ts \
  --exclude test/models/peer.test.ts "$@"
