#!/usr/bin/env bash
# Compiles every native source that an arm64 build uses (all but the *_avx2.cpp files, and the
# .cu files as emulated C++) with the aarch64 cross compiler: the "builds on arm64" promise.
# Compile only (no link): the Node-API and CUDA headers are architecture-independent.
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=${ARM64_CXX:-aarch64-linux-gnu-g++}
command -v "$CXX" >/dev/null || { echo "check-arm64: $CXX not found (apt-get install g++-aarch64-linux-gnu)"; exit 1; }
napi=$(node -p "require('node-addon-api').include_dir")
hdrs=$(node -p "require('node-api-headers').include_dir")
cuda_inc=()
[[ -f /usr/local/cuda/include/cuda_bf16.h ]] && cuda_inc=(-I/usr/local/cuda/include -DSECVIT_EMU_HAVE_CUDA_HEADERS=1)
flags=(-std=c++20 -O1 -Wall -Wextra -Wno-unused-parameter -Werror -Inative -I"$napi" -I"$hdrs"
       -DSECVIT_CUDA_UNBUILT_REASON='"check"' -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS)
n=0
for f in native/core/*.cpp native/ops/*.cpp native/cpu/*.cpp native/emu/*.cpp native/napi/*.cpp; do
  [[ $f == *_avx2.cpp ]] && continue
  "$CXX" "${flags[@]}" -c "$f" -o /dev/null
  n=$((n + 1))
done
for f in native/cuda/*.cu; do
  "$CXX" "${flags[@]}" "${cuda_inc[@]}" -x c++ -DSECVIT_CUDA_EMU -c "$f" -o /dev/null
  n=$((n + 1))
done
echo "check-arm64: $n sources compile for aarch64"
