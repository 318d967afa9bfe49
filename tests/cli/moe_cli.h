// Test helper: runs the `moe` binary built by this tree and captures what it prints.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace moe::test {

struct CmdResult {
  int code;
  std::string out;  // stdout, plus stderr when kept
};

inline CmdResult moe_cli(const std::string& args, bool keep_stderr = true) {
  const std::string cmd = std::string(MOE_BINARY) + " " + args + (keep_stderr ? " 2>&1" : " 2>/dev/null");
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
