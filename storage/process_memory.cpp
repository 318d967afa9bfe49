#include "storage/process_memory.h"

#include <fstream>
#include <stdexcept>
#include <string>

namespace moe {

ProcessMemory read_process_memory() {
  std::ifstream f("/proc/self/status");
  if (!f) throw std::runtime_error("/proc/self/status: cannot open (RSS is only available on Linux)");
  ProcessMemory m;
  std::string line;
  // Lines look like "VmRSS:\t  123456 kB".
  auto kib = [](const std::string& l) { return std::stoull(l.substr(l.find(':') + 1)) * 1024; };
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) m.rss_bytes = kib(line);
    else if (line.rfind("VmHWM:", 0) == 0) m.peak_rss_bytes = kib(line);
  }
  return m;
}

uint64_t available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (f && std::getline(f, line))
    if (line.rfind("MemAvailable:", 0) == 0) return std::stoull(line.substr(line.find(':') + 1)) * 1024;
  throw std::runtime_error("/proc/meminfo: no MemAvailable line (the memory default needs Linux 3.14 or later)");
}

}  // namespace moe
