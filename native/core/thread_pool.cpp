#include "thread_pool.h"

#include <cstdlib>
#include <string>

#include "spin.h"

#if defined(__linux__)
#include <sched.h>
#endif

namespace secvit {
namespace {
thread_local bool t_in_worker = false;
}

ThreadPool& ThreadPool::instance() {
  // Never destroyed: queue dispatcher threads may be inside a parallel_for while the process
  // exits, and static destruction would pull the workers out from under them.
  static ThreadPool* pool = new ThreadPool();
  return *pool;
}

int ThreadPool::available_cores() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(n);
}

ThreadPool::ThreadPool() {
  int n = available_cores();
  if (const char* env = std::getenv("SECVIT_NUM_THREADS")) {
    const int v = std::atoi(env);
    if (v >= 1) n = v;
  }
  start_workers(n);
}

ThreadPool::~ThreadPool() { stop_workers(); }

bool ThreadPool::in_worker() { return t_in_worker; }

void ThreadPool::set_threads(int n) {
  if (n < 1) n = 1;
  std::lock_guard<std::mutex> resize(resize_mu_);
  if (n == threads()) return;
  stop_workers();
  start_workers(n);
}

void ThreadPool::start_workers(int n) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = false;
  }
  for (int i = 0; i + 1 < n; ++i) workers_.emplace_back([this] { worker_main(); });
  threads_.store(n);
}

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  threads_.store(1);
}

void ThreadPool::work_on(Job& job) {
  for (;;) {
    const int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.num_chunks) return;
    if (job.failed.load(std::memory_order_relaxed)) continue;  // drain: the call has failed
    const int64_t begin = c * job.chunk;
    const int64_t end = std::min(job.n, begin + job.chunk);
    try {
      job.call(job.ctx, begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!job.error) job.error = std::current_exception();
      job.failed.store(true);
    }
  }
}

void ThreadPool::worker_main() {
  t_in_worker = true;
  uint64_t seen = posted_.load(std::memory_order_acquire);
  for (;;) {
    spin_until([&] { return posted_.load(std::memory_order_acquire) != seen; }, 300);
    std::unique_lock<std::mutex> lk(mu_);
    Job* job = nullptr;
    auto ready = [&] {
      if (stop_) return true;
      for (Job* j : jobs_) {
        if (j->next.load(std::memory_order_relaxed) < j->num_chunks) {
          job = j;
          return true;
        }
      }
      return false;
    };
    if (!ready()) {
      ++sleepers_;
      work_cv_.wait(lk, ready);
      --sleepers_;
    }
    if (stop_) return;
    seen = posted_.load(std::memory_order_acquire);
    job->active.fetch_add(1, std::memory_order_acq_rel);
    lk.unlock();
    work_on(*job);
    lk.lock();
    if (job->active.fetch_sub(1, std::memory_order_acq_rel) == 1) done_cv_.notify_all();
  }
}

void ThreadPool::run(Job& job) {
  bool wake;
  {
    std::lock_guard<std::mutex> lk(mu_);
    jobs_.push_back(&job);
    posted_.fetch_add(1, std::memory_order_acq_rel);
    wake = sleepers_ > 0;
  }
  if (wake) work_cv_.notify_all();
  work_on(job);
  {
    std::lock_guard<std::mutex> lk(mu_);
    jobs_.erase(std::find(jobs_.begin(), jobs_.end(), &job));
  }
  // Every chunk is claimed; wait for the workers still running one (the Job lives on our stack):
  // briefly by polling, then on the condition variable.
  spin_until([&] { return job.active.load(std::memory_order_acquire) == 0; }, 300);
  std::unique_lock<std::mutex> lk(mu_);
  done_cv_.wait(lk, [&] { return job.active.load(std::memory_order_acquire) == 0; });
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace secvit
