/* glibc compatibility of the prebuilt addon (linked only where CMakeLists.txt links libstdc++
 * statically, i.e. every GCC build but the sanitizer one).
 *
 * Why: the static libstdc++ of GCC 12 brings std::random_device (cow-string-inst.o pulls in
 * random.o), and built against glibc 2.36 that calls arc4random, new in glibc 2.36. secvit never
 * uses random_device, but the reference alone made the addon refuse to load on glibc 2.34/2.35
 * (Ubuntu 22.04, RHEL 9). This definition, hidden inside the addon, satisfies the reference with
 * getrandom (glibc 2.25), so the addon's newest glibc need is 2.34 (pthread in libc).
 * C, not C++: glibc's own declaration of arc4random (stdlib.h) is not included here. */
#include <stddef.h>
#include <stdint.h>
#include <sys/random.h>

__attribute__((visibility("hidden"))) uint32_t arc4random(void) {
  uint32_t v = 0;
  unsigned char *p = (unsigned char *)&v;
  size_t got = 0;
  while (got < sizeof v) {
    ssize_t n = getrandom(p + got, sizeof v - got, 0);
    if (n > 0) got += (size_t)n;
  }
  return v;
}
