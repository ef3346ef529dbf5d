#!/usr/bin/env bash
# The CUDA kernels' tests (the cuda-emu cases of the suite) again under the emulator's other
# schedules: `lifo` and `random` let one warp run ahead through its collectives, so a missing
# __syncthreads() between two uses of shared memory changes results (see native/emu/
# cuda_emu_exec.cpp). The default run (fifo) is `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
for schedule in lifo random; do
  echo "== cuda-emu tests with SECVIT_EMU_SCHEDULE=$schedule"
  SECVIT_EMU_SCHEDULE=$schedule SECVIT_EMU_SEED=${SECVIT_EMU_SEED:-$RANDOM} npx vitest run -t cuda-emu "$@"
done
