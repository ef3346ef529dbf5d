// Where a tensor's bytes live. CudaEmu is device memory of the CUDA emulator: host memory that
// only the emulated CUDA kernels touch, so the CUDA code path (allocator, copies, kernels) runs
// on machines without a GPU.
#pragma once

#include <string>

namespace secvit {

enum class Device { Cpu = 0, Cuda = 1, CudaEmu = 2 };

inline const char* device_name(Device d) {
  switch (d) {
    case Device::Cpu: return "cpu";
    case Device::Cuda: return "cuda";
    case Device::CudaEmu: return "cuda-emu";
  }
  return "?";
}

inline bool parse_device(const std::string& name, Device* out) {
  if (name == "cpu") *out = Device::Cpu;
  else if (name == "cuda") *out = Device::Cuda;
  else if (name == "cuda-emu") *out = Device::CudaEmu;
  else return false;
  return true;
}

}  // namespace secvit
