// One process-wide pool of native threads for the CPU backend.
//
// parallel_for(n, grain, fn) splits [0, n) into chunks and runs fn(begin, end) on the pool's
// workers *and* the calling thread. Several callers (e.g. two async calls on libuv threads) may
// use the pool at once: their jobs share the workers. A parallel_for issued from inside a worker
// runs inline, so nesting cannot deadlock. The functor is passed by reference (no std::function,
// no heap allocation per call).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace secvit {

class ThreadPool {
 public:
  static ThreadPool& instance();

  // Participants in a parallel_for: the workers plus the calling thread.
  int threads() const { return threads_.load(); }
  // n >= 1. Waits for the current workers to finish the chunks they hold.
  void set_threads(int n);
  // Cores this process may run on (affinity mask), at least 1.
  static int available_cores();

  template <typename F>
  void parallel_for(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    const int t = threads();
    int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, int64_t(t) * 4);
    if (chunks <= 1 || t <= 1 || in_worker()) {
      fn(int64_t(0), n);
      return;
    }
    Job job;
    using Fn = std::remove_reference_t<F>;
    job.call = [](void* ctx, int64_t b, int64_t e) { (*static_cast<Fn*>(ctx))(b, e); };
    job.ctx = const_cast<void*>(static_cast<const void*>(&fn));
    job.n = n;
    // At least `grain` items and about 4 chunks per thread, rounding the chunk size down: with
    // few items (10 tasks on 2 threads) every item is its own chunk and the threads take them
    // as they go, instead of 5 chunks of 2 that split 3 : 2.
    job.chunk = std::max<int64_t>(grain, n / (int64_t(t) * 4));
    job.num_chunks = (n + job.chunk - 1) / job.chunk;
    run(job);
  }

  ~ThreadPool();

 private:
  struct Job {
    void (*call)(void*, int64_t, int64_t) = nullptr;
    void* ctx = nullptr;
    int64_t n = 0, chunk = 0, num_chunks = 0;
    std::atomic<int64_t> next{0};
    std::atomic<int> active{0};  // workers inside this job
    std::atomic<bool> failed{false};
    std::exception_ptr error;  // first failure; written once under mu_
  };

  ThreadPool();
  void run(Job& job);
  void work_on(Job& job);
  void worker_main();
  void start_workers(int n);
  void stop_workers();
  static bool in_worker();

  std::atomic<int> threads_{1};
  std::mutex resize_mu_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::vector<Job*> jobs_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
  // Jobs posted so far: an idle worker polls it for a few tens of microseconds before it
  // sleeps, so back-to-back parallel_fors (a GEMM's packing, then its tiles; the next op of a
  // chain) need no futex wake-up. `sleepers_` (guarded by mu_) says whether one is needed.
  std::atomic<uint64_t> posted_{0};
  int sleepers_ = 0;
};

}  // namespace secvit
