// Launchers of the SEC building blocks (one file each), shared by sec_attention.cu. Each takes
// a stream, launches, and checks the launch (SV_CUDA_CHECK_LAUNCH); the checked public entry
// points are in attention.h.
#pragma once

#include <cstdint>

#include "cuda_compat.h"

namespace secvit {
namespace SV_CUDA_NS {

// scores [bh, l] fp64 = cos(mean_i k_i, k_i); k fp32, bf16 or fp16   (sec_scores.cu)
void launch_sec_scores(const void* k, int k_type, double* scores, int64_t bh, int64_t l,
                       int64_t d, cudaStream_t stream);

// order [bh, l] int32 = stable argsort of scores per row   (sec_argsort.cu)
// `workspace` must hold sec_argsort_workspace_bytes(bh, l) bytes (0 for the one-block path).
size_t sec_argsort_workspace_bytes(int64_t bh, int64_t l);
void launch_sec_argsort(const double* scores, int32_t* order, int64_t bh, int64_t l,
                        void* workspace, cudaStream_t stream);

}  // namespace SV_CUDA_NS
}  // namespace secvit
