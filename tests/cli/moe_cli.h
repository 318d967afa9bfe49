// Test helper: runs the `moe` binary built by this tree and captures what it prints.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace moe::test {

struct CmdResult {
  int code;
  std::string out;  // stdout, plus stderr when kept
};

// $MOE_BINARY when set (a test binary carried to another machine: scripts/gpu-check.sh sets it),
// else the binary of the tree this test was built from.
inline std::string moe_binary() {
  if (const char* env = std::getenv("MOE_BINARY")) return env;
  return MOE_BINARY;
}

inline CmdResult moe_cli(const std::string& args, bool keep_stderr = true) {
  const std::string cmd = moe_binary() + " " + args + (keep_stderr ? " 2>&1" : " 2>/dev/null");
  CmdResult r{0, {}};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {127, "popen failed"};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  r.code = WEXITSTATUS(pclose(p));
  return r;
}

}  // namespace moe::test
