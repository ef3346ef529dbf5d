// The CPU as a backend (device_backend.h): its memory is the host block cache (host_pool.h),
// copies and fills are plain memory operations, and there is no stream to wait for (the CPU
// queue's dispatcher runs kernels to completion).
#include <cstring>
#include <string>

#include "../cpu/scratch.h"
#include "cpu_features.h"
#include "device_backend.h"
#include "host_pool.h"
#include "queue.h"
#include "thread_pool.h"

namespace secvit {
namespace {

class CpuBackend final : public DeviceBackend {
 public:
  Device device() const override { return Device::Cpu; }
  bool available(std::string*) override { return true; }
  std::string description() override {
    return std::string("CPU, ") + cpu_simd_name(cpu_simd()) + ", " + std::to_string(ThreadPool::instance().threads()) +
           " threads";
  }
  void* allocate(size_t bytes, uint64_t* write_ready_seq) override {
    const HostBlock b = host_pool::allocate(bytes);
    if (write_ready_seq != nullptr) *write_ready_seq = b.release_seq;
    return b.data;
  }
  // Released by its last owner: tasks queued so far on the CPU queue may still use the bytes.
  void release(void* ptr, size_t bytes) override {
    host_pool::release(ptr, bytes, Queue::of(Device::Cpu).submitted());
  }
  void copy_to_device(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_on_device(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void fill(void* dst, int byte, size_t bytes) override { std::memset(dst, byte, bytes); }
  void synchronize() override {}
  size_t reserved_bytes() override { return host_pool::reserved_bytes(); }
  void empty_cache() override { host_pool::empty_cache(); }
  size_t driver_allocations() override { return 0; }
  std::vector<std::pair<std::string, double>> details() override {
    return {{"threads", double(ThreadPool::instance().threads())},
            {"cachedBytes", double(host_pool::cached_bytes())},
            {"scratchBytes", double(cpu::scratch::bytes())}};
  }
};

CpuBackend* instance() {
  static CpuBackend* b = new CpuBackend();  // never destroyed: dispatchers may use it at exit
  return b;
}

[[maybe_unused]] const bool registered = register_device_backend(instance());

}  // namespace
}  // namespace secvit
