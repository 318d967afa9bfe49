// AMX availability: CPUID, the OS's saved-state mask, and Linux's per-process permission for the
// 8 KiB of tile data (without it the first tile instruction faults).
#include "kernels/cpu/amx.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace moe::cpu {

namespace {

bool detect() {
#if defined(__x86_64__) && defined(__linux__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool tile = (d >> 24) & 1, int8 = (d >> 25) & 1;
  if (!tile || !int8) return false;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return false;  // OSXSAVE
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if (((lo >> 17) & 3) != 3) return false;  // XTILECFG and XTILEDATA enabled by the OS
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

bool env_allows() {
  const char* e = std::getenv("MOE_CPU_AMX");
  return !(e && std::strcmp(e, "0") == 0);
}

std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> on{amx_supported() && env_allows()};
  return on;
}

}  // namespace

bool amx_supported() {
  static const bool ok = detect();
  return ok;
}

bool amx_enabled() { return enabled_flag().load(std::memory_order_relaxed); }

bool set_amx_enabled(bool on) {
  const bool was = amx_enabled();
  enabled_flag().store(on && amx_supported(), std::memory_order_relaxed);
  return was;
}

}  // namespace moe::cpu
