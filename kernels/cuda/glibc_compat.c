/* Linked into every executable of a -DMOE_PORTABLE=ON build (not into the library), so
 * build-gpu/ also loads on a GPU image with glibc 2.35 (Ubuntu 22.04): GCC 12's libstdc++,
 * linked statically there, calls arc4random for std::random_device, which glibc only has from
 * 2.36 on. A definition in the executable resolves that call instead. getrandom(2) (glibc
 * 2.25) is the kernel's CSPRNG, what glibc's own arc4random reads. */
#include <stdint.h>
#include <sys/random.h>

uint32_t arc4random(void) {
  uint32_t v = 0;
  while (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
  }
  return v;
}
