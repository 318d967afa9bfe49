// A pack is opened by path once per command (issue: library session, acceptance 2): its
// metadata, dense weights, tokenizer and expert reads all come from that one open file (the
// readers reopen /proc/self/fd/N), so a pack replaced under the path cannot mix two files.
// Counted with strace; skipped where strace or ptrace is unavailable.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "cli/moe_cli.h"

namespace fs = std::filesystem;

namespace {

fs::path fixtures() { return fs::path(MOE_SOURCE_DIR) / "tests" / "fixtures"; }

bool strace_works() {
  return std::system("strace -f -e trace=openat -o /dev/null true >/dev/null 2>&1") == 0;
}

// How many open(2) calls of `args` named `path` and succeeded.
int opens_of(const std::string& args, const fs::path& path, std::string* log_out) {
  const fs::path log = fs::temp_directory_path() / ("moe-open-once-" + std::to_string(::getpid()) + ".log");
  const std::string cmd = "strace -f -e trace=open,openat,openat2 -o " + log.string() + " " + moe::test::moe_binary() +
                          " " + args + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) return -1;
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  *log_out = ss.str();
  int n = 0;
  std::string line;
  std::istringstream lines(*log_out);
  const std::string quoted = "\"" + path.string() + "\"";
  while (std::getline(lines, line))
    if (line.find(quoted) != std::string::npos && line.find("= -1") == std::string::npos) ++n;
  fs::remove(log);
  return n;
}

}  // namespace

TEST(OpenOnce, EveryCommandOpensThePackOnce) {
  if (!strace_works()) GTEST_SKIP() << "strace cannot trace here (missing, or ptrace not permitted)";
  const fs::path pack = fs::temp_directory_path() / ("moe-open-once-" + std::to_string(::getpid()) + ".moepack");
  const auto conv = moe::test::moe_cli("convert " + (fixtures() / "qwen3_moe").string() + " " + pack.string() +
                                       " --experts int4 --group-size 32");
  ASSERT_EQ(conv.code, 0) << conv.out;
  const fs::path text = fs::path(MOE_SOURCE_DIR) / "README.md";
  const std::string m = " --model " + pack.string();
  for (const std::string& args :
       {"run" + m + " --prompt hi -n 3 --ram-budget 40% --io uring", "run" + m + " --prompt hi -n 3 --ram-budget 40% --io pread",
        "run" + m + " --prompt hi -n 3 --ram-budget 40% --io mmap --stats",
        "bench" + m + " --prompt-len 4 --gen-len 2 --warmup 1 --prefetch off,gate --warm-ram",
        "perplexity" + m + " --file " + text.string() + " --context 32 --ram-budget 50%",
        "logits" + m + " --tokens 1,2,3 --out " + (fs::temp_directory_path() / "moe-open-once.npy").string(),
        "tokenize" + m + " --text hello", "inspect" + m}) {
    std::string log;
    EXPECT_EQ(opens_of(args, pack, &log), 1) << "moe " << args << "\n" << log;
  }
  fs::remove(pack);
}
