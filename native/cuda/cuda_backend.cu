// The CUDA device backend: device discovery, one in-order compute stream, host<->device copies
// and a caching allocator. Compiled twice (see cuda_compat.h): as the real "cuda" backend by
// nvcc and as "cuda-emu" by the host compiler, so the allocator and copy paths are exercised in
// CI even though no GPU is there.
//
// Caching allocator: cudaMalloc/cudaFree synchronise the device and cost tens of microseconds,
// far more than most of secvit's kernels, so freed blocks are kept in size-ordered free lists
// and reused. Sizes are rounded (512 B under 1 MiB, 2 MiB above) so that blocks of nearly equal
// requests are interchangeable; a cached block is reused only if it wastes at most half of
// itself (small) or one rounding step (large). Reuse is stream-ordered: everything that touches
// pooled memory is issued on the one stream by the device's queue (core/queue.h), so a block
// freed while work that uses it is still queued can be handed out again at once; its next
// user's work is ordered after. Giving blocks back to the driver is different: a cudaFree'd
// block must not be used by anything still queued, so trimming first waits for the queue and
// the stream. When cudaMalloc fails the cache is trimmed that way and the allocation retried
// once before an out-of-memory error is thrown.
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "../core/device_backend.h"
#include "../core/error.h"
#include "../core/queue.h"
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
  // `usable_before`: 0 when any cached block may be handed out (the caller queues its work after
  // everything queued so far), else only blocks whose release tag is below it (a dispatcher
  // running task `usable_before`: see Queue::running_seq). `quiesce` waits until nothing issued
  // or queued may still use a cached block.
  template <typename Quiesce>
  void* allocate(size_t bytes, uint64_t usable_before, Quiesce quiesce) {
    const size_t size = round_size(bytes);
    {
      std::lock_guard<std::mutex> lk(mu_);
      const size_t max_waste = size < kSmallLimit ? size : kLargeRound;
      for (auto it = free_.lower_bound(size); it != free_.end() && it->first - size <= max_waste; ++it) {
        if (!Queue::block_usable(it->second.release_seq, usable_before)) continue;
        void* p = it->second.ptr;
        in_use_[p] = it->first;
        free_.erase(it);
        return p;
      }
    }
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      quiesce();
      empty_cache(usable_before);
      err = cudaMalloc(&p, size);
    }
    std::lock_guard<std::mutex> lk(mu_);
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

  // `release_seq`: the last queue position that may still use the block.
  void release(void* p, uint64_t release_seq) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = in_use_.find(p);
    if (it == in_use_.end()) return;  // not ours; never free what we did not hand out
    free_.emplace(it->second, Cached{p, release_seq});
    in_use_.erase(it);
  }

  // Gives cached blocks back to the driver; `usable_before` as for allocate (the caller has
  // synchronised the stream, so issued work is done; queued work may be pending).
  void empty_cache(uint64_t usable_before = 0) {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto it = free_.begin(); it != free_.end();) {
      if (!Queue::block_usable(it->second.release_seq, usable_before)) {
        ++it;
        continue;
      }
      (void)cudaFree(it->second.ptr);
      reserved_ -= it->first;
      it = free_.erase(it);
    }
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
  struct Cached {
    void* ptr;
    uint64_t release_seq;
  };
  std::mutex mu_;
  std::multimap<size_t, Cached> free_;  // rounded size -> block
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

  void* allocate(size_t bytes, uint64_t* write_ready_seq) override {
    if (write_ready_seq != nullptr) *write_ready_seq = 0;  // device memory is written only by queued work
    require();
    return allocator_.allocate(bytes, Queue::running_seq(kDevice), [this] { quiesce(); });
  }
  // Released by its last owner: tasks queued so far may still use the block.
  void release(void* ptr, size_t) override {
    allocator_.release(ptr, Queue::of(kDevice).release_seq());
  }
  // A task's scratch, released by the dispatcher running it: only that task's kernels (issued
  // already) used it, so the next task may take it.
  void release_scratch(void* ptr) {
    const uint64_t running = Queue::running_seq(kDevice);
    allocator_.release(ptr, running != 0 ? running : Queue::of(kDevice).release_seq());
  }

  // Pageable host memory: the driver stages the source before cudaMemcpyAsync returns, and a
  // device-to-host copy into pageable memory returns once it is complete; the synchronisation
  // makes both explicit (and surfaces errors of earlier kernels here).
  void copy_to_device(void* dst, const void* src, size_t bytes) override {
    copy(dst, src, bytes, cudaMemcpyHostToDevice, /*sync=*/true);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    copy(dst, src, bytes, cudaMemcpyDeviceToHost, /*sync=*/true);
  }
  void copy_on_device(void* dst, const void* src, size_t bytes) override {
    copy(dst, src, bytes, cudaMemcpyDeviceToDevice, /*sync=*/false);
  }
  void fill(void* dst, int byte, size_t bytes) override {
    require();
    if (bytes != 0) SV_CUDA_CHECK(cudaMemsetAsync(dst, byte, bytes, stream_));
  }

  void synchronize() override {
    require();
    SV_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  size_t reserved_bytes() override { return allocator_.reserved(); }
  void empty_cache() override {
    if (ok_) {
      quiesce();
      allocator_.empty_cache(Queue::running_seq(kDevice));
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

  void copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, bool sync) {
    require();
    if (bytes == 0) return;
    SV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream_));
    if (sync) SV_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // Everything queued so far has been issued and has finished on the stream. From the
  // dispatcher itself (a kernel's scratch allocation) everything before it is issued already.
  void quiesce() {
    Queue& q = Queue::of(kDevice);
    if (!q.on_dispatcher()) q.wait(q.submitted());
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

[[maybe_unused]] const bool registered = register_device_backend(instance());

}  // namespace

DeviceBackend* backend() { return instance(); }
cudaStream_t stream() { return instance()->stream(); }
void release_scratch(void* ptr) { instance()->release_scratch(ptr); }

}  // namespace SV_CUDA_NS
}  // namespace secvit
