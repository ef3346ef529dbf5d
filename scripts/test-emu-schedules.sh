#!/usr/bin/env bash
# The CUDA kernels' tests (the cuda-emu cases of the suite) again under the emulator's other
# schedules: `lifo` and `random` let one warp run ahead through its collectives, so a missing
# __syncthreads() between two uses of shared memory changes results (see native/emu/
# cuda_emu_exec.cpp). The default run (fifo) is `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# The random schedule's seed changes from run to run (it is printed: rerun a failure with
# SECVIT_EMU_SEED=<seed> npm run test:emu-schedules).
seed=${SECVIT_EMU_SEED:-$RANDOM}
# SECVIT_EMU_SCHEDULES picks the schedules (CI: random only; its ASan run is under lifo).
for schedule in ${SECVIT_EMU_SCHEDULES:-lifo random}; do
  echo "== cuda-emu tests with SECVIT_EMU_SCHEDULE=$schedule SECVIT_EMU_SEED=$seed"
  # (Not the benchmark script's smoke test, whose name also says cuda-emu: it checks no kernel.)
  SECVIT_EMU_SCHEDULE=$schedule SECVIT_EMU_SEED=$seed npx vitest run -t cuda-emu --exclude test/bench.test.ts "$@"
done
