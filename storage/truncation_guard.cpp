#include "storage/truncation_guard.h"

#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>

namespace moe {

namespace {

// Live mappings, read by the handler with atomics only (async-signal-safe). A process maps a
// handful of files; past kSlots a mapping simply goes unnamed (default SIGBUS).
struct MapSlot {
  std::atomic<uintptr_t> start{0};  // 0: free; kClaimed: its path is being written
  std::atomic<size_t> size{0};
  char path[512] = {};
};
constexpr size_t kSlots = 64;
constexpr uintptr_t kClaimed = ~uintptr_t(0);
std::array<MapSlot, kSlots> g_maps;

void put(const char* s) {
  const ssize_t n = ::write(2, s, std::strlen(s));
  (void)n;
}

void on_sigbus(int sig, siginfo_t* info, void*) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
  for (const MapSlot& s : g_maps) {
    const uintptr_t start = s.start.load(std::memory_order_acquire);
    if (start == 0 || start == kClaimed || a < start || a - start >= s.size.load(std::memory_order_relaxed)) continue;
    put("moe: error: ");
    put(s.path);
    put(": the file was truncated while in use (a read of its memory mapping failed); do not modify a model "
        "file while moe runs: write a new file and rename it over the old one\n");
    ::_exit(1);
  }
  // Not ours: the default action, now (a sent signal) or when the faulting access repeats.
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

void install_truncation_reporter() {
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    return ::sigaction(SIGBUS, &sa, nullptr) == 0;
  }();
  (void)installed;
}

void register_mapping(const void* data, size_t size, const std::filesystem::path& path) {
  for (MapSlot& s : g_maps) {
    uintptr_t expected = 0;
    if (!s.start.compare_exchange_strong(expected, kClaimed)) continue;
    std::strncpy(s.path, path.c_str(), sizeof(s.path) - 1);
    s.path[sizeof(s.path) - 1] = '\0';
    s.size.store(size, std::memory_order_relaxed);
    s.start.store(reinterpret_cast<uintptr_t>(data), std::memory_order_release);
    return;
  }
}

void unregister_mapping(const void* data) {
  for (MapSlot& s : g_maps) {
    uintptr_t expected = reinterpret_cast<uintptr_t>(data);
    if (s.start.compare_exchange_strong(expected, 0)) return;
  }
}

}  // namespace moe
