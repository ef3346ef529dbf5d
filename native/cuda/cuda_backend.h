// Entry points of the CUDA backend, declared for both builds (see cuda_compat.h): the real one
// lives in secvit::cuda_impl, the emulated one in secvit::cuda_emu_impl.
#pragma once

#include "../core/device_backend.h"

struct CUstream_st;

namespace secvit {
namespace cuda_impl {
DeviceBackend* backend();
CUstream_st* stream();  // cudaStream_t; throws when the backend is unavailable
// Returns a task's scratch block (from allocate(), on the dispatcher running the task).
void release_scratch(void* ptr);
}  // namespace cuda_impl
namespace cuda_emu_impl {
DeviceBackend* backend();
CUstream_st* stream();
void release_scratch(void* ptr);
}  // namespace cuda_emu_impl
}  // namespace secvit
