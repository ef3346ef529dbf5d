// Brief polling before blocking, for the threads that hand work to each other (the JS thread,
// the queues' dispatchers, the pool's workers): a wake-up through a futex costs tens of
// microseconds, more than many kernels. The first polls are pause instructions; after them the
// poller yields its core at each poll, so on a machine with few cores it never delays the
// threads doing the work it waits for.
#pragma once

#include <thread>

namespace secvit {

inline void cpu_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// True as soon as done() is; false after `polls` polls without it.
template <typename F>
bool spin_until(F&& done, int polls = 1000) {
  for (int i = 0; i < polls; ++i) {
    if (done()) return true;
    if (i < 64) cpu_pause();
    else std::this_thread::yield();
  }
  return done();
}

}  // namespace secvit
