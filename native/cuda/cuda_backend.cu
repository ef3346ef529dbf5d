// The CUDA device backend: device discovery, one in-order compute stream, host<->device copies
// and a caching allocator. Compiled twice (see cuda_compat.h): as the real "cuda" backend by
// nvcc and as "cuda-emu" by the host compiler, so the allocator and copy paths are exercised in
// CI even though no GPU is there.
//
// Caching allocator: cudaMalloc/cudaFree synchronise the device and cost tens of microseconds,
// far more than most of secvit's kernels, so freed blocks are kept in size-ordered free lists
// and reused. Sizes are rounded (512 B under 1 MiB, 2 MiB above) so that blocks of nearly equal
// requests are interchangeable; a cached block is reused only if it wastes at most half of
// itself (small) or one rounding step (large). All work is queued on one stream, so a block
// freed while kernels that use it are still queued can be handed out again at once: the next
// user's work is ordered after them. When cudaMalloc fails the cache is emptied and the
// allocation retried once before an out-of-memory error is thrown.
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "../core/device_backend.h"
#include "../core/error.h"
#include "cuda_compat.h"
#include "cuda_backend.h"

namespace secvit {
namespace SV_CUDA_NS {
namespace {

constexpr size_t kSmallLimit = size_t(1) << 20;
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = size_t(2) << 20;

size_t round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const size_t r = bytes < kSmallLimit ? kSmallRound : kLargeRound;
  return (bytes + r - 1) / r * r;
}

class CachingAllocator {
 public:
  void* allocate(size_t bytes) {
    const size_t size = round_size(bytes);
    std::lock_guard<std::mutex> lk(mu_);
    auto it = free_.lower_bound(size);
    const size_t max_waste = size < kSmallLimit ? size : kLargeRound;
    if (it != free_.end() && it->first - size <= max_waste) {
      void* p = it->second;
      in_use_[p] = it->first;
      free_.erase(it);
      return p;
    }
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cached_locked();
      err = cudaMalloc(&p, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      (void)cudaMemGetInfo(&free_b, &total_b);
      throw_runtime_error(SV_CUDA_BACKEND_NAME, ": out of device memory allocating ", bytes,
                          " bytes (", free_b, " of ", total_b, " bytes free, ", reserved_,
                          " reserved by secvit)");
    }
    SV_CUDA_CHECK(err);
    reserved_ += size;
    ++driver_allocations_;
    in_use_[p] = size;
    return p;
  }

  void release(void* p) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = in_use_.find(p);
    if (it == in_use_.end()) return;  // not ours; never free what we did not hand out
    free_.emplace(it->second, p);
    in_use_.erase(it);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lk(mu_);
    release_cached_locked();
  }

  size_t reserved() {
    std::lock_guard<std::mutex> lk(mu_);
    return reserved_;
  }
  size_t driver_allocations() {
    std::lock_guard<std::mutex> lk(mu_);
    return driver_allocations_;
  }

 private:
  void release_cached_locked() {
    for (auto& [size, p] : free_) {
      (void)cudaFree(p);
      reserved_ -= size;
    }
    free_.clear();
  }

  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> in_use_;
  size_t reserved_ = 0;
  size_t driver_allocations_ = 0;
};

class Backend final : public DeviceBackend {
 public:
  Device device() const override { return kDevice; }

  bool available(std::string* reason) override {
    init();
    if (!ok_ && reason != nullptr) *reason = reason_;
    return ok_;
  }

  std::string description() override {
    init();
    return description_;
  }

  void* allocate(size_t bytes) override {
    require();
    return allocator_.allocate(bytes);
  }
  void release(void* ptr, size_t) override { allocator_.release(ptr); }

  void copy_to_device(void* dst, const void* src, size_t bytes) override {
    copy(dst, src, bytes, cudaMemcpyHostToDevice);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    copy(dst, src, bytes, cudaMemcpyDeviceToHost);
  }
  void copy_on_device(void* dst, const void* src, size_t bytes) override {
    copy(dst, src, bytes, cudaMemcpyDeviceToDevice);
  }

  void synchronize() override {
    require();
    SV_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  size_t reserved_bytes() override { return allocator_.reserved(); }
  void empty_cache() override {
    if (ok_) {
      SV_CUDA_CHECK(cudaStreamSynchronize(stream_));
      allocator_.empty_cache();
    }
  }
  size_t driver_allocations() override { return allocator_.driver_allocations(); }

  cudaStream_t stream() {
    require();
    return stream_;
  }

 private:
#if defined(SECVIT_CUDA_EMU)
  static constexpr Device kDevice = Device::CudaEmu;
#else
  static constexpr Device kDevice = Device::Cuda;
#endif

  void init() {
    std::call_once(once_, [this] {
      int count = 0;
      const cudaError_t err = cudaGetDeviceCount(&count);
      if (err != cudaSuccess || count == 0) {
        (void)cudaGetLastError();
        if (err == cudaErrorInsufficientDriver) {
          reason_ = "no CUDA driver found (libcuda is missing or older than this CUDA runtime needs)";
        } else if (err == cudaErrorNoDevice || count == 0) {
          reason_ = "no CUDA-capable GPU found (the driver reports none)";
        } else {
          reason_ = str("CUDA initialisation failed: ", cudaGetErrorName(err), " (",
                        cudaGetErrorString(err), ")");
        }
        return;
      }
      cudaDeviceProp prop{};
      const cudaError_t e1 = cudaSetDevice(0);
      const cudaError_t e2 = e1 == cudaSuccess ? cudaGetDeviceProperties(&prop, 0) : e1;
      const cudaError_t e3 =
          e2 == cudaSuccess ? cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking) : e2;
      if (e3 != cudaSuccess) {
        (void)cudaGetLastError();
        reason_ = str("CUDA device 0 could not be opened: ", cudaGetErrorName(e3), " (",
                      cudaGetErrorString(e3), ")");
        return;
      }
      description_ = str(prop.name, ", sm_", prop.major, prop.minor, ", ",
                         prop.totalGlobalMem >> 20, " MiB, ", prop.multiProcessorCount, " SMs");
      ok_ = true;
    });
  }

  void require() {
    std::string why;
    if (!available(&why)) throw_runtime_error(SV_CUDA_BACKEND_NAME, " is not available: ", why);
  }

  void copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    require();
    if (bytes == 0) return;
    // Pageable host memory: the async copy is staged by the driver; synchronising lets the
    // caller reuse or free the host side as soon as we return.
    SV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream_));
    SV_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  std::once_flag once_;
  bool ok_ = false;
  std::string reason_;
  std::string description_;
  cudaStream_t stream_ = nullptr;
  CachingAllocator allocator_;
};

// Never destroyed: at process exit the driver may already be gone, and freeing then would fail.
Backend* instance() {
  static Backend* backend = new Backend();
  return backend;
}

}  // namespace

DeviceBackend* backend() { return instance(); }
cudaStream_t stream() { return instance()->stream(); }

}  // namespace SV_CUDA_NS
}  // namespace secvit
