#!/usr/bin/env bash
# Builds and runs the CUDA emulator's self-test (test/native/emu_selftest.cu):
#   1. nvcc, compile only (no GPU needed): the test, and so the SV_* macros and mma.cuh, must
#      stay valid CUDA. Skipped with a note when nvcc is not installed.
#   2. g++ against the emulator, run.
#   3. g++ with AddressSanitizer, run (adds the out-of-bounds check).
# Compiles run one after another. Exit status: non-zero if any step fails.
#
# Environment: NVCC (default: nvcc on PATH), CXX (default: g++), CUDA_INCLUDE (default: derived
# from nvcc, else /usr/local/cuda/include), SELFTEST_BUILD_DIR (default: a temporary directory).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC="$ROOT/test/native/emu_selftest.cu"
EMU_SOURCES=("$ROOT/native/emu/cuda_emu_runtime.cpp" "$ROOT/native/emu/cuda_emu_exec.cpp")
CXX=${CXX:-g++}
NVCC=${NVCC:-$(command -v nvcc || true)}

if [[ -z "${CUDA_INCLUDE:-}" ]]; then
  CUDA_INCLUDE=/usr/local/cuda/include
  if [[ -n "$NVCC" ]]; then
    candidate="$(dirname "$(readlink -f "$NVCC")")/../include"
    [[ -f "$candidate/cuda_bf16.h" ]] && CUDA_INCLUDE=$(cd "$candidate" && pwd)
  fi
fi
CUDA_INCLUDE_FLAGS=()
if [[ -f "$CUDA_INCLUDE/cuda_bf16.h" ]]; then
  CUDA_INCLUDE_FLAGS=(-I"$CUDA_INCLUDE")
else
  echo "note: no cuda_bf16.h under $CUDA_INCLUDE; the emulator uses its fallback bf16/fp16 types"
fi

if [[ -n "${SELFTEST_BUILD_DIR:-}" ]]; then
  BUILD=$SELFTEST_BUILD_DIR
  mkdir -p "$BUILD"
else
  BUILD=$(mktemp -d)
  trap 'rm -rf "$BUILD"' EXIT
fi

status=0
step() { printf '\n== %s\n' "$*"; }

step "nvcc -std=c++17 -arch=sm_80 -c (compile only)"
if [[ -n "$NVCC" ]]; then
  if "$NVCC" -std=c++17 -arch=sm_80 -c "$SRC" -o "$BUILD/selftest_nvcc.o"; then
    echo "PASS  nvcc compiles the self-test"
  else
    echo "FAIL  nvcc could not compile the self-test"
    status=1
  fi
else
  echo "SKIP  nvcc not found"
fi

CXXFLAGS=(-x c++ -std=c++20 -O1 -g -Wall -Wextra -Wno-unused-parameter -DSECVIT_CUDA_EMU
          "${CUDA_INCLUDE_FLAGS[@]}")
LDFLAGS=(-pthread -ldl)

build_and_run() {
  local name=$1
  shift
  step "g++ $name: build"
  if ! "$CXX" "${CXXFLAGS[@]}" "$@" "$SRC" "${EMU_SOURCES[@]}" -o "$BUILD/selftest_$name" \
      "${LDFLAGS[@]}"; then
    echo "FAIL  g++ $name build"
    status=1
    return
  fi
  step "g++ $name: run"
  local t0=$SECONDS
  if "$BUILD/selftest_$name"; then
    echo "($name run: $((SECONDS - t0)) s)"
  else
    echo "FAIL  $name self-test (exit status $?)"
    status=1
  fi
  # The schedule variants (cuda_emu_exec.cpp): each must also run every check.
  if [[ $name == plain ]]; then
    for schedule in lifo random; do
      step "g++ $name: run with SECVIT_EMU_SCHEDULE=$schedule"
      if ! SECVIT_EMU_SCHEDULE=$schedule "$BUILD/selftest_$name"; then
        echo "FAIL  $name self-test under the $schedule schedule"
        status=1
      fi
    done
  fi
  # The ucontext fallback of the fiber switch (used where a shadow stack is active, and on
  # architectures without the hand-written switch), under the schedule that switches most.
  step "g++ $name: run with SECVIT_EMU_SWITCH=ucontext SECVIT_EMU_SCHEDULE=random"
  if ! SECVIT_EMU_SWITCH=ucontext SECVIT_EMU_SCHEDULE=random "$BUILD/selftest_$name"; then
    echo "FAIL  $name self-test with the ucontext switch"
    status=1
  fi
}

# detect_leaks=0: LeakSanitizer needs ptrace, which containers often forbid; leaks are not what
# this run is about.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
build_and_run plain
build_and_run asan -fsanitize=address -fno-omit-frame-pointer

echo
if [[ $status -eq 0 ]]; then
  echo "emu self-test: all steps passed"
else
  echo "emu self-test: FAILED"
fi
exit $status
