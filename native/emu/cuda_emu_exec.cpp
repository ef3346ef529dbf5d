// The emulator's execution engine: launches, the per-block fiber scheduler, barriers, warp
// collectives and shared memory. See cuda_emu_exec.h for the model as kernels see it.
//
// Threads of execution
//   A launch is a Job. The launching thread and up to three pooled workers claim its blocks from
//   an atomic counter; each OS thread runs the blocks it claimed one at a time on its own Runner
//   (thread-local: fibers, their stacks, the shared-memory arenas). Runners never move between
//   OS threads, so a fiber is always resumed on the OS thread that suspended it, which keeps
//   thread-local storage (ours, libc's, the sanitizer's) consistent inside kernels.
//
// Inside a block
//   CUDA threads are started lazily, in linear order, on fibers. A thread that finishes without
//   blocking hands its fiber to the next unstarted thread, so barrier-free kernels run a whole
//   block on one fiber. A thread that blocks (__syncthreads, a warp collective) switches directly
//   to the next runnable fiber: released fibers first, then a fresh fiber for the next unstarted
//   thread. When nothing can run the block is over: either every thread exited, or the live ones
//   wait on rendezvous that can never complete, which is reported as a launch failure.
//   Everything in a Runner is touched only by its own OS thread, so it needs no locks.
#include "cuda_emu_exec.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define SECVIT_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SECVIT_EMU_ASAN 1
#endif
#endif
#ifndef SECVIT_EMU_ASAN
#define SECVIT_EMU_ASAN 0
#endif
#if SECVIT_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define SV_POISON(addr, size) ASAN_POISON_MEMORY_REGION((addr), (size))
#define SV_UNPOISON(addr, size) ASAN_UNPOISON_MEMORY_REGION((addr), (size))
#else
#define SV_POISON(addr, size) ((void)(addr), (void)(size))
#define SV_UNPOISON(addr, size) ((void)(addr), (void)(size))
#endif

// ---- the context switch -----------------------------------------------------------------------
// A fiber switch saves the callee-saved registers and the floating-point control word on the
// current stack, stores the stack pointer and loads the other fiber's. glibc's swapcontext does
// the same plus a sigprocmask system call per switch (the signal mask is per fiber there):
// ~2.3 million system calls for one small emulated model forward, 40% of its time spent in the
// kernel. Kernels never touch signal masks, so the hand-written switch leaves them alone.
// Other architectures (and 32-bit-pointer ABIs) keep ucontext, as does an x86-64 process running
// with a CET shadow stack (a `ret` onto another fiber's stack would fault there; glibc's
// swapcontext switches shadow stacks too): fast_switch() decides at run time.
// Not handled: arm64's Guarded Control Stack (Linux 6.13+, not enabled by any distribution's
// Node at the time of writing) would need the same run-time fallback.
#if (defined(__x86_64__) || defined(__aarch64__)) && defined(__LP64__)
#define SECVIT_EMU_FAST_SWITCH 1
extern "C" {
// Saves the running context on its stack, stores that stack pointer in *from_sp and resumes the
// context whose saved stack pointer is to_sp.
void secvit_emu_switch(void** from_sp, void* to_sp);
// First code a fresh fiber runs: calls the entry function laid on its stack; never returns.
void secvit_emu_fiber_start();
}
#if defined(__x86_64__)
// Frame (low to high): MXCSR and the x87 control word (8 bytes), r15, r14, r13, r12, rbx, rbp,
// return address.
asm(R"(
  .pushsection .text,"ax",@progbits
  .p2align 4
  .globl secvit_emu_switch
  .hidden secvit_emu_switch
  .type secvit_emu_switch, @function
secvit_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size secvit_emu_switch, .-secvit_emu_switch

  .p2align 4
  .globl secvit_emu_fiber_start
  .hidden secvit_emu_fiber_start
  .type secvit_emu_fiber_start, @function
secvit_emu_fiber_start:
  xorl %ebp, %ebp
  movq %rbx, %rax
  pushq $0
  jmp *%rax
  .size secvit_emu_fiber_start, .-secvit_emu_fiber_start
  .popsection
)");
constexpr size_t kSwitchFrameWords = 7;  // MXCSR/FCW, r15, r14, r13, r12, rbx, rbp
#else
// Frame (low to high): x19..x28, x29 (frame pointer), x30 (return address), d8..d15, FPCR, pad.
// The entry is reached by `br x16`: with branch protection (BTI) an indirect branch through x16
// may land on the `bti c` / `paciasp` that starts an address-taken function; through x19 not.
asm(R"(
  .pushsection .text,"ax",%progbits
  .p2align 4
  .globl secvit_emu_switch
  .hidden secvit_emu_switch
  .type secvit_emu_switch, %function
secvit_emu_switch:
  sub sp, sp, #176
  stp x19, x20, [sp, #0]
  stp x21, x22, [sp, #16]
  stp x23, x24, [sp, #32]
  stp x25, x26, [sp, #48]
  stp x27, x28, [sp, #64]
  stp x29, x30, [sp, #80]
  stp d8, d9, [sp, #96]
  stp d10, d11, [sp, #112]
  stp d12, d13, [sp, #128]
  stp d14, d15, [sp, #144]
  mrs x9, fpcr
  str x9, [sp, #160]
  mov x9, sp
  str x9, [x0]
  mov sp, x1
  ldp x19, x20, [sp, #0]
  ldp x21, x22, [sp, #16]
  ldp x23, x24, [sp, #32]
  ldp x25, x26, [sp, #48]
  ldp x27, x28, [sp, #64]
  ldp x29, x30, [sp, #80]
  ldp d8, d9, [sp, #96]
  ldp d10, d11, [sp, #112]
  ldp d12, d13, [sp, #128]
  ldp d14, d15, [sp, #144]
  ldr x9, [sp, #160]
  msr fpcr, x9
  add sp, sp, #176
  ret
  .size secvit_emu_switch, .-secvit_emu_switch

  .p2align 4
  .globl secvit_emu_fiber_start
  .hidden secvit_emu_fiber_start
  .type secvit_emu_fiber_start, %function
secvit_emu_fiber_start:
  mov x29, xzr
  mov x30, xzr
  mov x16, x19
  br x16
  .size secvit_emu_fiber_start, .-secvit_emu_fiber_start
  .popsection
)");
#endif
#else
#define SECVIT_EMU_FAST_SWITCH 0
#endif

// Whether this process uses the hand-written switch (see above): not where a shadow stack is
// active, nor with SECVIT_EMU_SWITCH=ucontext (how the self-test runs the fallback).
static bool fast_switch() {
  static const bool ok = [] {
    if (SECVIT_EMU_FAST_SWITCH == 0) return false;
    const char* e = std::getenv("SECVIT_EMU_SWITCH");
    if (e != nullptr && std::strcmp(e, "ucontext") == 0) return false;
#if SECVIT_EMU_FAST_SWITCH && defined(__x86_64__)
    // rdsspq reads the shadow-stack pointer; without an active shadow stack (or on a CPU
    // without CET, where it is a no-op) the register keeps its 0.
    unsigned long long ssp = 0;
    asm volatile("rdsspq %0" : "+r"(ssp));
    if (ssp != 0) return false;
#endif
    return true;
  }();
  return ok;
}

namespace secvit::emu {
namespace {

using detail::BlockRegs;
using detail::LaunchSpec;
using detail::ThreadRegs;
using detail::WarpCombine;
using detail::WarpSlot;

constexpr unsigned kWarp = 32;
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr size_t kStaticSharedLimit = 48 * 1024;
// A block gets 48 KiB of shared memory (static + dynamic) unless the kernel opted in to more
// dynamic memory with cudaFuncSetAttribute(MaxDynamicSharedMemorySize), up to 227 KiB (sm_90).
constexpr size_t kDefaultSharedLimit = 48 * 1024;
constexpr size_t kSharedLimit = 227 * 1024;

// The order in which the fibers of a block run between rendezvous (SECVIT_EMU_SCHEDULE):
//   fifo   (default) released threads in release order, then unstarted ones; the last thread
//          to reach a barrier or warp collective carries on first;
//   lifo   the most recently released thread first (warps finish out of order);
//   random warps run ahead one at a time, in a seeded random order (SECVIT_EMU_SEED) drawn
//          anew at every block barrier: a warp passes through all its collectives until it
//          reaches the next barrier while the others wait (as on a GPU whose warp scheduler
//          favours one warp), the last arriver of a rendezvous included.
// A kernel whose threads race on shared memory between barriers gets different results under
// different schedules, so the test suite runs under more than one.
enum class Schedule { Fifo, Lifo, Random };

Schedule schedule_mode() {
  static const Schedule mode = [] {
    const char* s = std::getenv("SECVIT_EMU_SCHEDULE");
    if (s == nullptr || std::strcmp(s, "fifo") == 0 || *s == '\0') return Schedule::Fifo;
    if (std::strcmp(s, "lifo") == 0) return Schedule::Lifo;
    if (std::strcmp(s, "random") == 0) return Schedule::Random;
    std::fprintf(stderr, "secvit cuda-emu: SECVIT_EMU_SCHEDULE=%s is not fifo, lifo or random; using fifo\n", s);
    return Schedule::Fifo;
  }();
  return mode;
}

uint64_t schedule_seed() {
  static const uint64_t seed = [] {
    const char* s = std::getenv("SECVIT_EMU_SEED");
    return s != nullptr ? std::strtoull(s, nullptr, 10) : uint64_t(1);
  }();
  return seed;
}

// Opt-ins of cudaFuncSetAttribute(MaxDynamicSharedMemorySize), by kernel address.
std::mutex g_attr_mu;
std::vector<std::pair<const void*, size_t>> g_max_dynamic;

size_t max_dynamic_smem(const void* kernel) {
  std::lock_guard<std::mutex> lk(g_attr_mu);
  for (const auto& [k, v] : g_max_dynamic)
    if (k == kernel) return v;
  return 0;
}
constexpr size_t kArenaAlign = 128;
constexpr unsigned char kPoisonByte = 0xFF;

thread_local std::string t_message;

std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string strf(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n < 0) return std::string(fmt);
  if (size_t(n) < sizeof(buf)) return std::string(buf, size_t(n));
  std::string out(size_t(n) + 1, '\0');
  va_start(ap, fmt);
  std::vsnprintf(out.data(), out.size(), fmt, ap);
  va_end(ap);
  out.resize(size_t(n));
  return out;
}

std::string dim_str(unsigned x, unsigned y, unsigned z) { return strf("(%u,%u,%u)", x, y, z); }
std::string dim_str(const uint3& v) { return dim_str(v.x, v.y, v.z); }
std::string dim_str(const dim3& v) { return dim_str(v.x, v.y, v.z); }

// "3", "0-15", "1, 4-7, 9"
std::string lanes_str(unsigned mask) {
  std::string out;
  for (unsigned i = 0; i < kWarp;) {
    if (!((mask >> i) & 1u)) {
      ++i;
      continue;
    }
    unsigned j = i;
    while (j + 1 < kWarp && ((mask >> (j + 1)) & 1u)) ++j;
    if (!out.empty()) out += ", ";
    out += i == j ? strf("%u", i) : strf("%u-%u", i, j);
    i = j + 1;
  }
  return out.empty() ? std::string("none") : out;
}

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

size_t env_size(const char* name, size_t fallback, size_t lo, size_t hi) {
  const char* s = std::getenv(name);
  if (s == nullptr || *s == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s || *end != '\0') return fallback;
  return std::clamp<size_t>(size_t(v), lo, hi);
}

// Thrown through a kernel's frames once the failure is recorded; not a std::exception, so kernel
// code that catches std::exception does not swallow it.
struct KernelFault {};

// ---- a launch --------------------------------------------------------------------------------

class Job {
 public:
  explicit Job(const LaunchSpec& spec)
      : spec_(spec),
        nthreads_(spec.block.x * spec.block.y * spec.block.z),
        total_(static_cast<unsigned long long>(spec.grid.x) * spec.grid.y * spec.grid.z) {}

  const LaunchSpec& spec() const { return spec_; }
  unsigned nthreads() const { return nthreads_; }
  // The block's shared-memory limit: 48 KiB, or what the kernel opted in to (up to 227 KiB).
  size_t shared_limit() const { return shared_limit_; }
  void set_shared_limit(size_t v) { shared_limit_ = v; }
  unsigned long long total_blocks() const { return total_; }

  // Next unclaimed block (linear, x fastest), or false when none is left or the launch failed.
  bool claim(uint3* block) {
    if (failed_.load(std::memory_order_relaxed)) return false;
    const unsigned long long b = next_.fetch_add(1, std::memory_order_relaxed);
    if (b >= total_) return false;
    const unsigned long long gx = spec_.grid.x, gy = spec_.grid.y;
    *block = uint3{unsigned(b % gx), unsigned((b / gx) % gy), unsigned(b / (gx * gy))};
    return true;
  }
  bool exhausted() const {
    return failed_.load(std::memory_order_relaxed) ||
           next_.load(std::memory_order_relaxed) >= total_;
  }

  void fail(std::string message) {
    std::lock_guard<std::mutex> lk(mu_);
    if (!failed_.load(std::memory_order_relaxed)) error_ = std::move(message);
    failed_.store(true, std::memory_order_relaxed);
  }
  // For when even the message cannot be allocated.
  void mark_failed() noexcept { failed_.store(true, std::memory_order_relaxed); }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  std::string error() {
    std::lock_guard<std::mutex> lk(mu_);
    return error_;
  }

  // Resolved only when a message needs it: the symbol lookup costs more than a small launch.
  const std::string& kernel_name() {
    std::call_once(name_once_, [this] { name_ = resolve_name(); });
    return name_;
  }

  int participants = 0;  // OS threads working on this job; guarded by the pool's mutex

 private:
  std::string resolve_name() const {
    Dl_info info{};
    if (dladdr(spec_.kernel, &info) != 0 && info.dli_sname != nullptr &&
        info.dli_saddr == spec_.kernel) {
      int status = 0;
      char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
      std::string out = status == 0 && demangled != nullptr ? demangled : info.dli_sname;
      std::free(demangled);
      return out;
    }
    if (spec_.name != nullptr && spec_.name[0] != '\0') return spec_.name;
    return strf("<kernel at %p>", spec_.kernel);
  }

  const LaunchSpec& spec_;
  size_t shared_limit_ = kDefaultSharedLimit;
  const unsigned nthreads_;
  const unsigned long long total_;
  std::atomic<unsigned long long> next_{0};
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  std::string error_;
  std::once_flag name_once_;
  std::string name_;
};

// ---- one OS thread's block executor -----------------------------------------------------------

enum class ThreadState : unsigned char { Unstarted, Running, Ready, AtBarrier, AtWarpOp, Exited };

struct Fiber;

struct KThread {  // one CUDA thread of the block being run
  ThreadRegs regs;
  ThreadState state;
  unsigned warp;
  unsigned lane;
  unsigned static_count;  // SV_SHARED declarations made so far
  unsigned warp_ops;      // warp collectives completed so far
  Fiber* fiber;
};

struct Fiber {
  void* sp = nullptr;  // saved stack pointer while suspended (fast_switch())
  ucontext_t ctx;      // the saved context otherwise
  void* map = nullptr;  // guard page + stack
  size_t map_bytes = 0;
  char* stack_lo = nullptr;
  size_t stack_bytes = 0;
  void* asan_fake_stack = nullptr;
  KThread* thread = nullptr;  // the CUDA thread on this fiber; null while idle
};

struct WarpState {
  unsigned exists;   // lanes that have a thread in this block
  unsigned exited;   // lanes whose thread returned
  unsigned waiting;  // lanes suspended in a collective
  unsigned exit_ops[kWarp];  // an exited lane's warp_ops when it exited
  unsigned lane_mask[kWarp];
  WarpCombine lane_combine[kWarp];
  const char* lane_what[kWarp];
  WarpSlot slots[kWarp];
};

struct StaticAlloc {
  size_t offset;
  size_t bytes;
  size_t align;
  unsigned first_thread;  // the thread whose declaration placed it, for messages
};

class Runner;
thread_local Runner* t_active = nullptr;  // the Runner executing a block on this OS thread

void fiber_trampoline();

class Runner {
 public:
  Runner() {
    stack_bytes_ = env_size("SECVIT_EMU_STACK_KB", SECVIT_EMU_ASAN ? 256 : 128, 64, 65536) * 1024;
    page_ = size_t(sysconf(_SC_PAGESIZE));
    stack_bytes_ = round_up(stack_bytes_, page_);
    static_arena_ =
        static_cast<unsigned char*>(std::aligned_alloc(kArenaAlign, kStaticSharedLimit));
    if (static_arena_ == nullptr) throw std::bad_alloc();
    SV_POISON(static_arena_, kStaticSharedLimit);
  }

  ~Runner() {
    for (auto& f : fibers_) munmap(f->map, f->map_bytes);
    SV_UNPOISON(static_arena_, kStaticSharedLimit);
    std::free(static_arena_);
    if (dyn_arena_ != nullptr) {
      SV_UNPOISON(dyn_arena_, dyn_capacity_);
      std::free(dyn_arena_);
    }
  }

  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Runs one block to completion. False (with *error) when the block failed; the Runner is then
  // ready for the next block all the same.
  bool run_block(Job& job, uint3 block_idx, std::string* error) {
    job_ = &job;
    if (rng_ == 0) rng_ = (schedule_seed() + 1) * 0x9E3779B97F4A7C15ull ^ uint64_t(reinterpret_cast<uintptr_t>(this));
    shared_limit_ = job.shared_limit();
    prepare_threads(job.spec().block);
    block_regs_ = BlockRegs{block_idx, job.spec().block, job.spec().grid};
    detail::t_block = &block_regs_;
    prepare_shared(job.spec().dynamic_smem);
    failed_ = false;
    error_.clear();
    ready_head_ = ready_count_ = 0;
    next_unstarted_ = 0;
    exited_ = 0;
    if (schedule_mode() == Schedule::Random) shuffle_warps();
    bar_arrived_ = bar_true_ = bar_result_ = 0;
    bar_waiters_.clear();

    t_active = this;
    Fiber* first = pick_next();
    if (first != nullptr) {
      switching_from_main_ = true;
      current_ = first;
#if SECVIT_EMU_ASAN
      __sanitizer_start_switch_fiber(&main_fake_stack_, first->stack_lo, first->stack_bytes);
#endif
      int rc = 0;
#if SECVIT_EMU_FAST_SWITCH
      if (fast_switch())
        secvit_emu_switch(&main_sp_, first->sp);
      else
#endif
        rc = swapcontext(&main_ctx_, &first->ctx);
#if SECVIT_EMU_ASAN
      __sanitizer_finish_switch_fiber(main_fake_stack_, nullptr, nullptr);
#endif
      if (rc != 0) fail(strf("swapcontext failed (errno %d)", errno));
    }
    t_active = nullptr;
    current_ = nullptr;
    detail::t_thread = &detail::kHostThreadRegs;

    if (!failed_ && exited_ != nthreads_) fail(describe_stall());
    if (!failed_) return true;
    abandon_suspended_fibers();
    *error = error_;
    return false;
  }

  // Called on a fresh fiber's stack; never returns.
  [[noreturn]] void fiber_main() {
    Fiber* self = current_;
    arrived_on(self, /*first_entry=*/true);
    for (;;) {
      while (KThread* t = self->thread) {
        run_thread(t);
        t->state = ThreadState::Exited;
        t->fiber = nullptr;
        warps_[t->warp].exited |= 1u << t->lane;
        warps_[t->warp].exit_ops[t->lane] = t->warp_ops;
        ++exited_;
        self->thread = nullptr;
        if (!failed_ && next_unstarted_ < nthreads_ && schedule_mode() == Schedule::Fifo)
          assign(self, &threads_[next_unstarted_++]);
      }
      idle_.push_back(self);
      switch_away(self, pick_next());
    }
  }

  // ---- called by intrinsics, on the calling CUDA thread's fiber --------------------------------

  [[noreturn]] void fault(const std::string& message) {
    fail(where() + ": " + message);
    throw KernelFault{};
  }

  int block_barrier(const char* what, int kind, int predicate) {
    Fiber* self = current_;
    if (bar_arrived_ == 0) bar_what_ = what;
    ++bar_arrived_;
    if (predicate != 0) ++bar_true_;
    if (bar_arrived_ == nthreads_) {
      // The last thread to arrive releases the others and carries on without a switch.
      bar_result_ = bar_true_;
      bar_arrived_ = bar_true_ = 0;
      for (Fiber* f : bar_waiters_) make_ready(f);
      bar_waiters_.clear();
      if (schedule_mode() == Schedule::Random) shuffle_warps();
      reschedule(self);
    } else {
      self->thread->state = ThreadState::AtBarrier;
      bar_waiters_.push_back(self);
      switch_away(self, pick_next());
    }
    switch (kind) {
      case detail::kBarCount: return int(bar_result_);
      case detail::kBarAnd: return bar_result_ == nthreads_ ? 1 : 0;
      case detail::kBarOr: return bar_result_ != 0 ? 1 : 0;
      default: return 0;
    }
  }

  void warp_collective(const char* what, unsigned mask, bool full_warp, WarpCombine combine,
                       const void* in, size_t in_bytes, void* out, size_t out_bytes) {
    Fiber* self = current_;
    KThread* t = self->thread;
    WarpState& w = warps_[t->warp];
    const unsigned lane = t->lane;
    const unsigned bit = 1u << lane;
    if (in_bytes > sizeof(WarpSlot::in) || out_bytes > sizeof(WarpSlot::out)) {
      fault(strf("%s: %zu/%zu bytes exceed the warp exchange slot", what, in_bytes, out_bytes));
    }
    if ((mask & bit) == 0) {
      fault(strf("%s called by lane %u with mask 0x%08x, which does not include the calling lane",
                 what, lane, mask));
    }
    if (full_warp) {
      if (mask != 0xFFFFFFFFu) {
        fault(strf("%s needs the whole warp (mask 0xffffffff), got mask 0x%08x", what, mask));
      }
      if (w.exists != 0xFFFFFFFFu) {
        fault(strf("%s needs 32 threads in the warp, but warp %u of this block has %d (make the "
                   "block size a multiple of 32)",
                   what, t->warp, __builtin_popcount(w.exists)));
      }
    }
    const unsigned eff = mask & w.exists;
    if (eff & w.exited) {
      fault(strf("%s with mask 0x%08x: lane(s) %s of warp %u named in the mask already exited",
                 what, mask, lanes_str(eff & w.exited).c_str(), t->warp));
    }
    unsigned arrived = bit;
    for (unsigned rest = w.waiting; rest != 0; rest &= rest - 1) {
      const unsigned j = unsigned(__builtin_ctz(rest));
      if ((w.lane_mask[j] & eff) == 0) continue;  // an independent group of the same warp
      if (w.lane_mask[j] != eff) {
        fault(strf("%s with mask 0x%08x meets %s with mask 0x%08x (lane %u) in warp %u: every lane "
                   "named in a warp intrinsic's mask must call it with the same mask",
                   what, eff, w.lane_what[j], w.lane_mask[j], j, t->warp));
      }
      if (w.lane_combine[j] != combine) {
        fault(strf("lane %u of warp %u calls %s while lane %u waits in %s with the same mask "
                   "0x%08x",
                   lane, t->warp, what, j, w.lane_what[j], eff));
      }
      arrived |= 1u << j;
    }
    if (in_bytes != 0) std::memcpy(w.slots[lane].in, in, in_bytes);
    if (arrived == eff) {
      combine(w.slots, eff);
      w.waiting &= ~eff;
      for (unsigned rest = eff & ~bit; rest != 0; rest &= rest - 1) {
        make_ready(threads_[t->warp * kWarp + unsigned(__builtin_ctz(rest))].fiber);
      }
      reschedule(self);
    } else {
      w.waiting |= bit;
      w.lane_mask[lane] = eff;
      w.lane_combine[lane] = combine;
      w.lane_what[lane] = what;
      t->state = ThreadState::AtWarpOp;
      switch_away(self, pick_next());
    }
    ++t->warp_ops;
    if (out_bytes != 0) std::memcpy(out, w.slots[lane].out, out_bytes);
  }

  unsigned lane() const { return current_->thread->lane; }

  // Lanes of the caller's warp that are alive at the caller's point in the program. Lanes of a
  // warp do not run in lockstep here, so a lane may already have exited although, in program
  // order, it is still converged with the caller: one that completed more warp collectives than
  // the caller before exiting is counted as active.
  unsigned active_mask() const {
    const KThread* t = current_->thread;
    const WarpState& w = warps_[t->warp];
    unsigned mask = w.exists & ~w.exited;
    for (unsigned rest = w.exited; rest != 0; rest &= rest - 1) {
      const unsigned j = unsigned(__builtin_ctz(rest));
      if (w.exit_ops[j] > t->warp_ops) mask |= 1u << j;
    }
    return mask;
  }

  // Lets the other runnable threads of the block go first (for __nanosleep polling loops).
  void yield() {
    Fiber* self = current_;
    Fiber* next = pick_next();
    if (next == nullptr) return;  // nobody else can run
    make_ready(self);
    switch_away(self, next);
  }

  void* static_alloc(size_t bytes, size_t align) {
    KThread* t = current_->thread;
    align = std::max<size_t>(align, 16);
    const unsigned i = t->static_count++;
    if (i < static_allocs_.size()) {
      const StaticAlloc& a = static_allocs_[i];
      if (a.bytes != bytes || a.align != align) {
        const uint3 o = threads_[a.first_thread].regs.idx;
        fault(strf("SV_SHARED declaration #%u is %zu bytes (alignment %zu) here but %zu bytes "
                   "(alignment %zu) in thread %s: every thread of a block must declare the same "
                   "shared variables in the same order",
                   i, bytes, align, a.bytes, a.align, dim_str(o).c_str()));
      }
      return static_arena_ + a.offset;
    }
    const size_t offset = round_up(static_used_, align);
    if (offset + bytes > kStaticSharedLimit) {
      fault(strf("static shared memory exceeds 48 KiB (SV_SHARED declaration #%u of %zu bytes "
                 "would end at byte %zu)",
                 i, bytes, offset + bytes));
    }
    if (offset + bytes + dyn_size_ > shared_limit_) {
      fault(strf("static (%zu bytes) plus dynamic (%zu bytes) shared memory exceeds the block's "
                 "%zu bytes (48 KiB unless the kernel opts in with cudaFuncSetAttribute)",
                 offset + bytes, dyn_size_, shared_limit_));
    }
    unsigned char* p = static_arena_ + offset;
    SV_UNPOISON(p, bytes);
    std::memset(p, kPoisonByte, bytes);
    static_allocs_.push_back(StaticAlloc{offset, bytes, align, t->regs.linear});
    static_used_ = offset + bytes;
    return p;
  }

  void* dynamic_base() const { return dyn_arena_; }

  void fail(const std::string& message) {
    if (failed_) return;  // the first failure explains the rest
    failed_ = true;
    error_ = message;
  }

  Job* job() const { return job_; }

 private:
  // "kernel K, block (x,y,z), thread (x,y,z)"
  std::string where() const {
    std::string s = "kernel " + job_->kernel_name() + ", block " + dim_str(block_regs_.block_idx);
    if (current_ != nullptr && current_->thread != nullptr) {
      s += ", thread " + dim_str(current_->thread->regs.idx);
    }
    return s;
  }

  void prepare_threads(const dim3& b) {
    const unsigned n = b.x * b.y * b.z;
    if (b.x != dims_.x || b.y != dims_.y || b.z != dims_.z) {
      dims_ = dim3(0, 0, 0);  // until the allocations below succeed
      threads_.resize(n);
      for (unsigned i = 0; i < n; ++i) {
        KThread& t = threads_[i];
        t.regs.idx = uint3{i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
        t.regs.linear = i;
        t.warp = i / kWarp;
        t.lane = i % kWarp;
      }
      warps_.resize((n + kWarp - 1) / kWarp);
      ready_.assign(n, nullptr);
      bar_waiters_.reserve(n);
      dims_ = b;
    }
    nthreads_ = n;
    for (KThread& t : threads_) {
      t.state = ThreadState::Unstarted;
      t.static_count = 0;
      t.warp_ops = 0;
      t.fiber = nullptr;
    }
    for (size_t w = 0; w < warps_.size(); ++w) {
      const unsigned lanes = std::min(kWarp, n - unsigned(w) * kWarp);
      warps_[w].exists = lanes == kWarp ? 0xFFFFFFFFu : (1u << lanes) - 1u;
      warps_[w].exited = 0;
      warps_[w].waiting = 0;
    }
  }

  // Poisons last block's static shared variables and sizes and poisons the dynamic area.
  void prepare_shared(size_t dynamic_bytes) {
    if (static_used_ != 0) SV_POISON(static_arena_, static_used_);
    static_used_ = 0;
    static_allocs_.clear();

    const size_t need = round_up(std::max<size_t>(dynamic_bytes, 1), kArenaAlign);
    if (need > dyn_capacity_) {
      if (dyn_arena_ != nullptr) {
        SV_UNPOISON(dyn_arena_, dyn_capacity_);
        std::free(dyn_arena_);
        dyn_arena_ = nullptr;
        dyn_capacity_ = 0;
      }
      dyn_arena_ = static_cast<unsigned char*>(std::aligned_alloc(kArenaAlign, need));
      if (dyn_arena_ == nullptr) throw std::bad_alloc();
      dyn_capacity_ = need;
    }
    SV_UNPOISON(dyn_arena_, dyn_capacity_);
    std::memset(dyn_arena_, kPoisonByte, dynamic_bytes);
    // Past the launch's dynamic size: unaddressable under ASan, as the GPU would fault.
    SV_POISON(dyn_arena_ + dynamic_bytes, dyn_capacity_ - dynamic_bytes);
    dyn_size_ = dynamic_bytes;
  }

  void run_thread(KThread* t) {
    detail::t_thread = &t->regs;
    const LaunchSpec& spec = job_->spec();
    try {
      spec.invoke(spec.closure);
    } catch (const KernelFault&) {
      // already recorded by fault()
    } catch (const std::exception& e) {
      fail(where() + ": the kernel threw an exception: " + e.what());
    } catch (...) {
      fail(where() + ": the kernel threw an exception of unknown type");
    }
  }

  void assign(Fiber* f, KThread* t) {
    f->thread = t;
    t->fiber = f;
    t->state = ThreadState::Running;
  }

  void make_ready(Fiber* f) {
    f->thread->state = ThreadState::Ready;
    ready_[(ready_head_ + ready_count_) % ready_.size()] = f;
    ++ready_count_;
  }

  // A random order of the block's warps (Fisher-Yates over ranks).
  void shuffle_warps() {
    const size_t n = warps_.size();
    warp_rank_.resize(n);
    for (size_t i = 0; i < n; ++i) warp_rank_[i] = unsigned(i);
    for (size_t i = n; i > 1; --i) std::swap(warp_rank_[i - 1], warp_rank_[size_t(next_random() % i)]);
  }

  uint64_t next_random() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_;
  }

  // Outside fifo mode the thread that completed a rendezvous does not simply carry on: it
  // becomes one more runnable thread and the schedule picks.
  void reschedule(Fiber* self) {
    if (schedule_mode() == Schedule::Fifo) return;
    make_ready(self);
    Fiber* next = pick_next();
    if (next != self) switch_away(self, next);
  }

  // Takes ready entry `i` (0 = the oldest) out of the ring: the newest by shrinking the ring,
  // any other by moving the oldest into its slot (order matters only to fifo and lifo, which
  // take the ends).
  Fiber* take_ready(size_t i) {
    const size_t at = (ready_head_ + i) % ready_.size();
    Fiber* f = ready_[at];
    if (i + 1 != ready_count_) {
      ready_[at] = ready_[ready_head_];
      ready_head_ = (ready_head_ + 1) % ready_.size();
    }
    --ready_count_;
    f->thread->state = ThreadState::Running;
    return f;
  }

  // The fiber to run next, or nullptr to return to run_block.
  Fiber* pick_next() {
    if (failed_) return nullptr;
    const Schedule mode = schedule_mode();
    if (mode == Schedule::Random && ready_count_ != 0) {
      // The ready thread of the warp ranked first (the newest of its warp): that warp runs
      // ahead through its collectives until it blocks at a barrier, then the next in a random
      // order of warps, drawn anew at every block barrier.
      size_t best = 0;
      for (size_t i = 1; i < ready_count_; ++i) {
        const unsigned wi = ready_[(ready_head_ + i) % ready_.size()]->thread->warp;
        const unsigned wb = ready_[(ready_head_ + best) % ready_.size()]->thread->warp;
        if (warp_rank_[wi] <= warp_rank_[wb]) best = i;
      }
      return take_ready(best);
    }
    // Fifo: the oldest ready thread; lifo: the newest.
    if (ready_count_ != 0) return take_ready(mode == Schedule::Lifo ? ready_count_ - 1 : 0);
    if (next_unstarted_ < nthreads_) {
      Fiber* f = nullptr;
      if (!idle_.empty()) {
        f = idle_.back();
        idle_.pop_back();
      } else {
        f = new_fiber();
        if (f == nullptr) return nullptr;
      }
      assign(f, &threads_[next_unstarted_++]);
      return f;
    }
    return nullptr;
  }

  // Suspends `self` and runs `to` (nullptr: back to run_block). Returns when `self` is resumed.
  void switch_away(Fiber* self, Fiber* to) {
    current_ = to;
    // The scheduler may pick the fiber that is suspending (lifo, random): it simply goes on.
    if (to == self) return;
#if SECVIT_EMU_ASAN
    __sanitizer_start_switch_fiber(&self->asan_fake_stack,
                                   to != nullptr ? to->stack_lo : main_bottom_,
                                   to != nullptr ? to->stack_bytes : main_size_);
#endif
#if SECVIT_EMU_FAST_SWITCH
    if (fast_switch()) {
      secvit_emu_switch(&self->sp, to != nullptr ? to->sp : main_sp_);
      arrived_on(self, /*first_entry=*/false);
      return;
    }
#endif
    if (swapcontext(&self->ctx, to != nullptr ? &to->ctx : &main_ctx_) != 0) {
      // Only possible with a corrupted context; nothing sensible can continue on this fiber.
      fail(strf("swapcontext failed (errno %d)", errno));
      return;
    }
    arrived_on(self, /*first_entry=*/false);
  }

  // Bookkeeping on a fiber that has just been switched to.
  void arrived_on(Fiber* self, bool first_entry) {
#if SECVIT_EMU_ASAN
    const void* from_bottom = nullptr;
    size_t from_size = 0;
    __sanitizer_finish_switch_fiber(first_entry ? nullptr : self->asan_fake_stack, &from_bottom,
                                    &from_size);
    if (switching_from_main_) {
      main_bottom_ = from_bottom;
      main_size_ = from_size;
    }
#else
    (void)first_entry;
#endif
    switching_from_main_ = false;
    detail::t_thread = self->thread != nullptr ? &self->thread->regs : &detail::kHostThreadRegs;
  }

  bool init_context(Fiber* f) {
    f->asan_fake_stack = nullptr;
    f->thread = nullptr;
#if SECVIT_EMU_FAST_SWITCH
    if (fast_switch()) {
      init_fast_frame(f);
      return true;
    }
#endif
    if (getcontext(&f->ctx) != 0) return false;
    f->ctx.uc_stack.ss_sp = f->stack_lo;
    f->ctx.uc_stack.ss_size = f->stack_bytes;
    f->ctx.uc_link = nullptr;
    makecontext(&f->ctx, &fiber_trampoline, 0);
    // makecontext has laid the stack out; forgetting it keeps ASan's swapcontext interceptor
    // from wiping the shadow (and with it the redzones) of this stack on every switch.
    f->ctx.uc_stack.ss_sp = nullptr;
    f->ctx.uc_stack.ss_size = 0;
    return true;
  }

#if SECVIT_EMU_FAST_SWITCH
  static void init_fast_frame(Fiber* f) {
    // A frame as secvit_emu_switch leaves it, at the top of the stack, whose return address is
    // secvit_emu_fiber_start and whose first callee-saved register (rbx / x19) holds the entry.
    // The floating-point control words are the creating thread's.
    auto* top = reinterpret_cast<uintptr_t*>(
        (reinterpret_cast<uintptr_t>(f->stack_lo + f->stack_bytes) & ~uintptr_t(15)));
    const auto entry = reinterpret_cast<uintptr_t>(&fiber_trampoline);
    const auto start = reinterpret_cast<uintptr_t>(&secvit_emu_fiber_start);
#if defined(__x86_64__)
    // `ret` pops `start` and leaves rsp = top; fiber_start pushes a zero return address (the end
    // of the stack for unwinders), so the entry begins as after a call: rsp + 8 aligned to 16.
    uintptr_t* sp = top - (kSwitchFrameWords + 1);
    uint32_t csr[2] = {0, 0};
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(csr[0]), "=m"(csr[1]));
    std::memcpy(&sp[0], csr, sizeof csr);
    for (size_t i = 1; i < kSwitchFrameWords; ++i) sp[i] = 0;
    sp[5] = entry;  // rbx
    sp[kSwitchFrameWords] = start;
#else
    // `ret` branches to `start` with sp = top, which branches to the entry with x30 = 0.
    uintptr_t* sp = top - 22;  // 176 bytes
    for (size_t i = 0; i < 22; ++i) sp[i] = 0;
    sp[0] = entry;   // x19
    sp[11] = start;  // x30
    uint64_t fpcr;
    asm volatile("mrs %0, fpcr" : "=r"(fpcr));
    sp[20] = fpcr;
#endif
    f->sp = sp;
  }
#endif

  Fiber* new_fiber() {
    std::unique_ptr<Fiber> f;
    try {
      f = std::make_unique<Fiber>();
      // Room for every fiber in idle_ too: fibers park themselves there on their own stacks,
      // where an allocation failure could not be reported.
      if (fibers_.size() == fibers_.capacity()) {
        fibers_.reserve(std::max<size_t>(16, 2 * fibers_.size()));
      }
      idle_.reserve(fibers_.capacity());
    } catch (const std::bad_alloc&) {
      fail(strf("out of host memory creating a fiber for thread %u", next_unstarted_));
      return nullptr;
    }
    const size_t bytes = stack_bytes_ + page_;
    void* map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) {
      fail(strf("mmap of a %zu-byte fiber stack failed (errno %d); %zu fibers exist", bytes, errno,
                fibers_.size()));
      return nullptr;
    }
    // Guard page below the stack: an overflowing kernel thread faults instead of silently
    // overwriting its neighbour's stack.
    if (mprotect(map, page_, PROT_NONE) != 0) {
      munmap(map, bytes);
      fail(strf("mprotect of a fiber guard page failed (errno %d)", errno));
      return nullptr;
    }
    f->map = map;
    f->map_bytes = bytes;
    f->stack_lo = static_cast<char*>(map) + page_;
    f->stack_bytes = stack_bytes_;
    if (!init_context(f.get())) {
      munmap(map, bytes);
      fail(strf("getcontext failed (errno %d)", errno));
      return nullptr;
    }
    fibers_.push_back(std::move(f));
    return fibers_.back().get();
  }

  // After a failure, fibers still suspended mid-kernel are abandoned: their stacks are reset for
  // the next block. (Objects with destructors on those stacks are not destroyed, as a GPU would
  // not run them either.)
  void abandon_suspended_fibers() {
    for (auto& f : fibers_) {
      if (f->thread == nullptr) continue;  // idle, already in idle_
      SV_UNPOISON(f->stack_lo, f->stack_bytes);
      if (init_context(f.get())) idle_.push_back(f.get());
    }
    ready_head_ = ready_count_ = 0;
    bar_waiters_.clear();
  }

  // Nothing can run and some threads have not exited: explain the rendezvous that cannot finish.
  std::string describe_stall() const {
    const std::string block = dim_str(block_regs_.block_idx);
    const std::string kernel = job_->kernel_name();
    unsigned in_warp_ops = 0;
    for (const KThread& t : threads_) {
      if (t.state == ThreadState::AtWarpOp) ++in_warp_ops;
    }
    if (bar_arrived_ != 0) {
      std::string s = strf("%s reached by %u of %u threads of block %s in kernel %s; ", bar_what_,
                           bar_arrived_, nthreads_, block.c_str(), kernel.c_str());
      if (in_warp_ops == 0) {
        s += "the rest exited";
      } else {
        s += strf("%u exited and %u wait in warp intrinsics", exited_, in_warp_ops);
      }
      for (const KThread& t : threads_) {
        if (t.state == ThreadState::Exited) {
          s += " (thread " + dim_str(t.regs.idx) + " exited without reaching it)";
          break;
        }
      }
      return s;
    }
    for (size_t wi = 0; wi < warps_.size(); ++wi) {
      const WarpState& w = warps_[wi];
      if (w.waiting == 0) continue;
      const unsigned first = unsigned(__builtin_ctz(w.waiting));
      const unsigned mask = w.lane_mask[first];
      unsigned present = 0;
      for (unsigned rest = w.waiting; rest != 0; rest &= rest - 1) {
        const unsigned j = unsigned(__builtin_ctz(rest));
        if (w.lane_mask[j] == mask) present |= 1u << j;
      }
      const unsigned missing = mask & ~present;
      unsigned exited = 0, at_barrier = 0, elsewhere = 0;
      for (unsigned rest = missing; rest != 0; rest &= rest - 1) {
        const unsigned j = unsigned(__builtin_ctz(rest));
        const ThreadState st = threads_[wi * kWarp + j].state;
        if (st == ThreadState::Exited) {
          exited |= 1u << j;
        } else if (st == ThreadState::AtBarrier) {
          at_barrier |= 1u << j;
        } else {
          elsewhere |= 1u << j;
        }
      }
      std::string s = strf("%s with mask 0x%08x in warp %zu of block %s in kernel %s never "
                           "completed: lanes %s arrived",
                           w.lane_what[first], mask, wi, block.c_str(), kernel.c_str(),
                           lanes_str(present).c_str());
      if (exited) s += "; lanes " + lanes_str(exited) + " exited without calling it";
      if (at_barrier) s += "; lanes " + lanes_str(at_barrier) + " wait at __syncthreads()";
      if (elsewhere) {
        const unsigned j = unsigned(__builtin_ctz(elsewhere));
        s += "; lanes " + lanes_str(elsewhere) + " wait in another warp intrinsic";
        if (w.waiting & (1u << j)) {
          s += strf(" (%s with mask 0x%08x)", w.lane_what[j], w.lane_mask[j]);
        }
      }
      return s;
    }
    return strf("block %s of kernel %s stopped with %u of %u threads unfinished", block.c_str(),
                kernel.c_str(), nthreads_ - exited_, nthreads_);
  }

  size_t page_ = 4096;
  size_t stack_bytes_ = 0;
  Job* job_ = nullptr;
  BlockRegs block_regs_{};

  dim3 dims_{0, 0, 0};
  unsigned nthreads_ = 0;
  std::vector<KThread> threads_;
  std::vector<WarpState> warps_;
  unsigned next_unstarted_ = 0;
  unsigned exited_ = 0;

  std::vector<std::unique_ptr<Fiber>> fibers_;
  std::vector<Fiber*> idle_;
  std::vector<Fiber*> ready_;  // ring buffer, one slot per thread
  size_t ready_head_ = 0;
  size_t ready_count_ = 0;
  Fiber* current_ = nullptr;

  void* main_sp_ = nullptr;
  ucontext_t main_ctx_{};
  void* main_fake_stack_ = nullptr;
  const void* main_bottom_ = nullptr;
  size_t main_size_ = 0;
  bool switching_from_main_ = false;

  unsigned bar_arrived_ = 0;
  unsigned bar_true_ = 0;
  unsigned bar_result_ = 0;
  const char* bar_what_ = "__syncthreads()";
  std::vector<Fiber*> bar_waiters_;

  unsigned char* static_arena_ = nullptr;
  size_t static_used_ = 0;
  std::vector<StaticAlloc> static_allocs_;
  unsigned char* dyn_arena_ = nullptr;
  size_t dyn_capacity_ = 0;
  size_t dyn_size_ = 0;

  bool failed_ = false;
  std::string error_;
  uint64_t rng_ = 0;
  std::vector<unsigned> warp_rank_;
  size_t shared_limit_ = kDefaultSharedLimit;
};

void fiber_trampoline() { t_active->fiber_main(); }

Runner* this_thread_runner(std::string* error) {
  thread_local std::unique_ptr<Runner> runner;
  if (!runner) {
    try {
      runner = std::make_unique<Runner>();
    } catch (const std::bad_alloc&) {
      *error = "out of host memory setting up the emulator's block runner";
      return nullptr;
    }
  }
  return runner.get();
}

// Runs blocks of `job` on the calling OS thread until none is left. Never throws: it also runs
// on pool workers, where an exception would terminate the process.
void participate(Job& job) noexcept {
  try {
    std::string error;
    Runner* runner = this_thread_runner(&error);
    if (runner == nullptr) {
      job.fail(error);
      return;
    }
    uint3 block{};
    while (job.claim(&block)) {
      bool ok = false;
      try {
        ok = runner->run_block(job, block, &error);
      } catch (const std::bad_alloc&) {
        error = "out of host memory running block " + dim_str(block);
      }
      if (!ok) {
        job.fail(error);
        break;
      }
    }
  } catch (...) {
    job.mark_failed();  // only allocations can throw here; launch_impl supplies the message
  }
  detail::t_block = &detail::kHostBlockRegs;
  detail::t_thread = &detail::kHostThreadRegs;
}

// ---- the worker pool --------------------------------------------------------------------------

// Blocks run on the launching thread plus (threads - 1) pooled workers; SECVIT_EMU_THREADS sets
// the total (default: hardware threads, clamped to 2..4). The pool is created on first use and
// deliberately never destroyed: its workers may be blocked on its mutex while the process exits.
class Pool {
 public:
  static Pool& instance() {
    static Pool* pool = new Pool();
    return *pool;
  }

  void run(Job& job) {
    // After fork() only the forking thread exists in the child: run everything inline there.
    if (job.total_blocks() == 1 || workers_ == 0 || getpid() != pid_) {
      participate(job);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      job.participants = 1;
      queue_.push_back(&job);
    }
    if (job.total_blocks() - 1 >= workers_) {
      work_cv_.notify_all();
    } else {
      for (unsigned long long i = 0; i + 1 < job.total_blocks(); ++i) work_cv_.notify_one();
    }
    participate(job);
    std::unique_lock<std::mutex> lk(mu_);
    --job.participants;
    queue_.erase(std::remove(queue_.begin(), queue_.end(), &job), queue_.end());
    done_cv_.wait(lk, [&] { return job.participants == 0; });
  }

 private:
  Pool() : pid_(getpid()) {
    const unsigned hw = std::thread::hardware_concurrency();
    const size_t fallback = std::clamp<size_t>(hw == 0 ? 2 : hw, 2, 4);
    const size_t threads = env_size("SECVIT_EMU_THREADS", fallback, 1, 64);
    for (size_t i = 0; i + 1 < threads; ++i) {
      try {
        std::thread(&Pool::worker_loop, this).detach();
        ++workers_;
      } catch (const std::system_error&) {
        break;  // fewer workers; the launching thread still runs every block it can claim
      }
    }
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      work_cv_.wait(lk, [&] { return !queue_.empty(); });
      Job* job = queue_.front();
      if (job->exhausted()) {
        queue_.erase(queue_.begin());
        continue;
      }
      ++job->participants;
      lk.unlock();
      participate(*job);
      lk.lock();
      if (--job->participants == 0) done_cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::vector<Job*> queue_;  // launches with blocks left to claim, oldest first
  unsigned workers_ = 0;
  const pid_t pid_;
};

// ---- warp collective combiners ----------------------------------------------------------------

struct ShflIn {
  unsigned long long value;
  unsigned src;
};

void combine_noop(WarpSlot*, unsigned) {}

void combine_shfl(WarpSlot* slots, unsigned mask) {
  for (unsigned rest = mask; rest != 0; rest &= rest - 1) {
    const unsigned lane = unsigned(__builtin_ctz(rest));
    ShflIn in;
    std::memcpy(&in, slots[lane].in, sizeof(in));
    unsigned long long v;
    if (in.src == lane) {
      v = in.value;
    } else if ((mask >> in.src) & 1u) {
      ShflIn src;
      std::memcpy(&src, slots[in.src].in, sizeof(src));
      v = src.value;
    } else {
      // The source lane does not take part: undefined on a GPU, poison here.
      v = ~0ull;
    }
    std::memcpy(slots[lane].out, &v, sizeof(v));
  }
}

unsigned ballot_of(const WarpSlot* slots, unsigned mask) {
  unsigned ballot = 0;
  for (unsigned rest = mask; rest != 0; rest &= rest - 1) {
    const unsigned lane = unsigned(__builtin_ctz(rest));
    int pred;
    std::memcpy(&pred, slots[lane].in, sizeof(pred));
    if (pred != 0) ballot |= 1u << lane;
  }
  return ballot;
}

void broadcast(WarpSlot* slots, unsigned mask, unsigned value) {
  for (unsigned rest = mask; rest != 0; rest &= rest - 1) {
    std::memcpy(slots[__builtin_ctz(rest)].out, &value, sizeof(value));
  }
}

void combine_ballot(WarpSlot* s, unsigned m) { broadcast(s, m, ballot_of(s, m)); }
void combine_any(WarpSlot* s, unsigned m) { broadcast(s, m, ballot_of(s, m) != 0 ? 1u : 0u); }
void combine_all(WarpSlot* s, unsigned m) { broadcast(s, m, ballot_of(s, m) == m ? 1u : 0u); }

unsigned long long slot_u64(const WarpSlot& s) {
  unsigned long long v;
  std::memcpy(&v, s.in, sizeof(v));
  return v;
}

void combine_match_any(WarpSlot* slots, unsigned mask) {
  for (unsigned rest = mask; rest != 0; rest &= rest - 1) {
    const unsigned lane = unsigned(__builtin_ctz(rest));
    const unsigned long long mine = slot_u64(slots[lane]);
    unsigned same = 0;
    for (unsigned r2 = mask; r2 != 0; r2 &= r2 - 1) {
      const unsigned j = unsigned(__builtin_ctz(r2));
      if (slot_u64(slots[j]) == mine) same |= 1u << j;
    }
    std::memcpy(slots[lane].out, &same, sizeof(same));
  }
}

void combine_match_all(WarpSlot* slots, unsigned mask) {
  const unsigned long long first = slot_u64(slots[__builtin_ctz(mask)]);
  bool all = true;
  for (unsigned rest = mask; rest != 0; rest &= rest - 1) {
    if (slot_u64(slots[__builtin_ctz(rest)]) != first) all = false;
  }
  broadcast(slots, mask, all ? mask : 0u);
}

template <class Op>
void combine_reduce(WarpSlot* slots, unsigned mask, Op op) {
  unsigned acc;
  std::memcpy(&acc, slots[__builtin_ctz(mask)].in, sizeof(acc));
  for (unsigned rest = mask & (mask - 1); rest != 0; rest &= rest - 1) {
    unsigned v;
    std::memcpy(&v, slots[__builtin_ctz(rest)].in, sizeof(v));
    acc = op(acc, v);
  }
  broadcast(slots, mask, acc);
}
void combine_red_add(WarpSlot* s, unsigned m) {
  combine_reduce(s, m, [](unsigned a, unsigned b) { return a + b; });
}
void combine_red_minu(WarpSlot* s, unsigned m) {
  combine_reduce(s, m, [](unsigned a, unsigned b) { return std::min(a, b); });
}
void combine_red_maxu(WarpSlot* s, unsigned m) {
  combine_reduce(s, m, [](unsigned a, unsigned b) { return std::max(a, b); });
}
void combine_red_mins(WarpSlot* s, unsigned m) {
  combine_reduce(s, m, [](unsigned a, unsigned b) { return unsigned(std::min(int(a), int(b))); });
}
void combine_red_maxs(WarpSlot* s, unsigned m) {
  combine_reduce(s, m, [](unsigned a, unsigned b) { return unsigned(std::max(int(a), int(b))); });
}
void combine_red_and(WarpSlot* s, unsigned m) {
  combine_reduce(s, m, [](unsigned a, unsigned b) { return a & b; });
}
void combine_red_or(WarpSlot* s, unsigned m) {
  combine_reduce(s, m, [](unsigned a, unsigned b) { return a | b; });
}
void combine_red_xor(WarpSlot* s, unsigned m) {
  combine_reduce(s, m, [](unsigned a, unsigned b) { return a ^ b; });
}

Runner& active_runner(const char* what) {
  if (t_active == nullptr) {
    throw std::logic_error(std::string(what) +
                           " called outside a kernel launched by the CUDA emulator");
  }
  return *t_active;
}

}  // namespace

const char* last_launch_message() { return t_message.c_str(); }

void set_max_dynamic_smem(const void* kernel, size_t bytes) {
  std::lock_guard<std::mutex> lk(g_attr_mu);
  for (auto& [k, v] : g_max_dynamic)
    if (k == kernel) {
      v = bytes;
      return;
    }
  g_max_dynamic.emplace_back(kernel, bytes);
}

namespace detail {

void launch_impl(const LaunchSpec& spec) {
  // Keep the explanation of an error nobody has collected yet; otherwise start afresh.
  if (cudaPeekAtLastError() == cudaSuccess) t_message.clear();
  if (t_active != nullptr) {
    t_active->fault("a kernel launched another kernel (dynamic parallelism), which the emulator "
                    "does not support");
  }

  const dim3& b = spec.block;
  const dim3& g = spec.grid;
  const unsigned long long threads = static_cast<unsigned long long>(b.x) * b.y * b.z;
  std::string problem;
  if (b.x == 0 || b.y == 0 || b.z == 0) {
    problem = "block " + dim_str(b) + " has a zero dimension";
  } else if (threads > kMaxThreadsPerBlock) {
    problem = strf("block %s has %llu threads; at most %u are allowed", dim_str(b).c_str(), threads,
                   kMaxThreadsPerBlock);
  } else if (b.z > 64) {
    problem = "block " + dim_str(b) + " exceeds the per-dimension limits (1024, 1024, 64)";
  } else if (g.x == 0 || g.y == 0 || g.z == 0) {
    problem = "grid " + dim_str(g) + " has a zero dimension";
  } else if (g.x > 2147483647u || g.y > 65535u || g.z > 65535u) {
    problem = "grid " + dim_str(g) + " exceeds the limits (2147483647, 65535, 65535)";
  }
  const size_t opt_in = max_dynamic_smem(spec.kernel);
  const size_t dyn_limit = std::max(kDefaultSharedLimit, std::min(kSharedLimit, opt_in));
  if (problem.empty() && spec.dynamic_smem > dyn_limit) {
    problem = strf("%zu bytes of dynamic shared memory requested; at most %zu are available%s",
                   spec.dynamic_smem, dyn_limit,
                   opt_in == 0 ? " without cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize)" : "");
  }

  Job job(spec);
  job.set_shared_limit(dyn_limit);
  if (!problem.empty()) {
    t_message = "invalid configuration for kernel " + job.kernel_name() + ": " + problem;
    set_last_error(cudaErrorInvalidConfiguration);
    return;
  }
  if (spec.stream != nullptr && cudaStreamSynchronize(spec.stream) != cudaSuccess) {
    t_message = "kernel " + job.kernel_name() + " launched on a stream that does not exist";
    set_last_error(cudaErrorInvalidValue);
    return;
  }

  Pool::instance().run(job);
  if (job.failed()) {
    t_message = job.error();
    if (t_message.empty()) {
      t_message = "the emulator ran out of host memory running " + job.kernel_name();
    }
    set_last_error(cudaErrorLaunchFailure);
  }
}

void kernel_fault(const char* message) {
  active_runner(message).fault(message);
}

int block_barrier(const char* what, int kind, int predicate) {
  return active_runner(what).block_barrier(what, kind, predicate);
}

void warp_collective(const char* what, unsigned mask, bool full_warp, WarpCombine combine,
                     const void* in, size_t in_bytes, void* out, size_t out_bytes) {
  active_runner(what).warp_collective(what, mask, full_warp, combine, in, in_bytes, out, out_bytes);
}

unsigned long long shfl_bits(const char* what, unsigned mask, unsigned long long bits, int mode,
                             long long arg, int width) {
  Runner& r = active_runner(what);
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0) {
    r.fault(strf("%s: width %d is not a power of two between 1 and 32", what, width));
  }
  // Lane arithmetic of PTX shfl.sync: the lane operand is taken modulo 32, the warp is split
  // into segments of `width` lanes, and a source outside the allowed range yields the caller's
  // own value (for xor, only sources in later segments are out of range).
  const unsigned lane = r.lane();
  const unsigned b = unsigned(arg) & 31u;
  const unsigned seg_lo = lane & ~unsigned(width - 1);
  const unsigned seg_hi = seg_lo + unsigned(width) - 1;
  long long src = lane;
  switch (mode) {
    case kShflIdx: src = seg_lo | (b & unsigned(width - 1)); break;
    case kShflUp: src = static_cast<long long>(lane) - b; if (src < seg_lo) src = lane; break;
    case kShflDown: src = lane + b; if (src > seg_hi) src = lane; break;
    case kShflXor: src = lane ^ b; if (src > seg_hi) src = lane; break;
    default: r.fault(strf("%s: unknown shuffle mode %d", what, mode));
  }
  ShflIn in{bits, unsigned(src)};
  unsigned long long out = 0;
  r.warp_collective(what, mask, false, &combine_shfl, &in, sizeof(in), &out, sizeof(out));
  return out;
}

unsigned vote(const char* what, unsigned mask, int predicate, int kind) {
  Runner& r = active_runner(what);
  const WarpCombine combine =
      kind == kVoteAny ? &combine_any : kind == kVoteAll ? &combine_all : &combine_ballot;
  unsigned out = 0;
  r.warp_collective(what, mask, false, combine, &predicate, sizeof(predicate), &out, sizeof(out));
  return out;
}

unsigned match(const char* what, unsigned mask, unsigned long long value, int kind, int* pred) {
  Runner& r = active_runner(what);
  unsigned out = 0;
  r.warp_collective(what, mask, false, kind == kMatchAll ? &combine_match_all : &combine_match_any,
                    &value, sizeof(value), &out, sizeof(out));
  if (pred != nullptr) *pred = out != 0 ? 1 : 0;
  return out;
}

unsigned reduce(const char* what, unsigned mask, unsigned value, int kind) {
  Runner& r = active_runner(what);
  WarpCombine combine = &combine_red_add;
  switch (kind) {
    case kRedMinU: combine = &combine_red_minu; break;
    case kRedMaxU: combine = &combine_red_maxu; break;
    case kRedMinS: combine = &combine_red_mins; break;
    case kRedMaxS: combine = &combine_red_maxs; break;
    case kRedAnd: combine = &combine_red_and; break;
    case kRedOr: combine = &combine_red_or; break;
    case kRedXor: combine = &combine_red_xor; break;
    default: break;
  }
  unsigned out = 0;
  r.warp_collective(what, mask, false, combine, &value, sizeof(value), &out, sizeof(out));
  return out;
}

unsigned active_mask() { return active_runner("__activemask()").active_mask(); }

void* shared_static_alloc(size_t bytes, size_t align) {
  return active_runner("SV_SHARED").static_alloc(bytes, align);
}

void* shared_dynamic_base() { return active_runner("SV_DYNAMIC_SHARED").dynamic_base(); }

}  // namespace detail
}  // namespace secvit::emu

void __syncwarp(unsigned mask) {
  ::secvit::emu::active_runner("__syncwarp()")
      .warp_collective("__syncwarp()", mask, false, &::secvit::emu::combine_noop, nullptr, 0,
                       nullptr, 0);
}

void __nanosleep(unsigned ns) {
  (void)ns;
  // No preemption between the fibers of a block: a polling loop must let the others run.
  if (::secvit::emu::t_active != nullptr) ::secvit::emu::t_active->yield();
}

long long clock64() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
