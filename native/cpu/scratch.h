// Per-thread scratch buffers of the CPU kernels (GEMM packing panels, attention tiles, the
// unfused SEC path's score matrices). Each is grown to what a call needs and kept for the next
// call (no heap allocation per call in steady state), but not forever at its largest: a buffer
// above kShrinkAboveBytes that a call needs less than a quarter of is given back and reallocated
// at the new size, so one huge call does not pin its scratch for the life of the thread. What
// they all hold is counted (backends(): the cpu entry's scratchBytes).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace secvit::cpu {

namespace scratch {
inline std::atomic<int64_t>& counter() {
  static std::atomic<int64_t> bytes{0};
  return bytes;
}
inline int64_t bytes() { return counter().load(std::memory_order_relaxed); }
constexpr size_t kShrinkAboveBytes = size_t(16) << 20;
}  // namespace scratch

template <typename T>
class ScratchVec {
 public:
  ScratchVec() = default;
  ScratchVec(const ScratchVec&) = delete;
  ScratchVec& operator=(const ScratchVec&) = delete;
  ~ScratchVec() { scratch::counter().fetch_sub(int64_t(v_.capacity() * sizeof(T)), std::memory_order_relaxed); }

  // At least n elements, 64-byte aligned (std::vector's 16-byte alignment made every other
  // 32-byte load of a packed panel straddle two cache lines). Contents are unspecified.
  T* get(size_t n) {
    constexpr size_t kPad = sizeof(T) >= 64 ? 1 : 64 / sizeof(T);
    const size_t want = n + kPad;
    const size_t before = v_.capacity();
    if (v_.size() < want) {
      v_.resize(want);
    } else if (before * sizeof(T) > scratch::kShrinkAboveBytes && want * 4 < before) {
      std::vector<T>(want).swap(v_);
    }
    if (v_.capacity() != before)
      scratch::counter().fetch_add((int64_t(v_.capacity()) - int64_t(before)) * int64_t(sizeof(T)), std::memory_order_relaxed);
    const auto p = reinterpret_cast<std::uintptr_t>(v_.data());
    return v_.data() + ((64 - p % 64) % 64) / sizeof(T);
  }

 private:
  std::vector<T> v_;
};

}  // namespace secvit::cpu
