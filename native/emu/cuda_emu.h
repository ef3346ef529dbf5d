// The CUDA emulator as kernels and host code see it: the runtime API (memory, streams, errors)
// plus the execution model (threadIdx, __syncthreads, shuffles, atomics, launches). Included by
// native/cuda/cuda_compat.h when SECVIT_CUDA_EMU is defined; nothing else should need it.
#pragma once

#include "cuda_emu_runtime.h"
#include "cuda_emu_exec.h"
