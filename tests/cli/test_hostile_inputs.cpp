// Hostile inputs to the `moe` binary: each must end in a one-line error and exit 1, never a
// signal, a hang or a silent wrong answer. Commands that hung before the fixes run under
// timeout(1), so old code fails the test instead of stalling it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/moe_cli.h"

namespace fs = std::filesystem;
using moe::test::CmdResult;

namespace {

const fs::path kFixtures = fs::path(MOE_SOURCE_DIR) / "tests" / "fixtures";
const std::string kMixtral = (kFixtures / "mixtral").string();
const std::string kMemLimit = "ulimit -v 1500000;";  // 1.5 GB: room for ~180 thread stacks

// `moe ARGS` in a shell, prefixed with SHELL_PREFIX (ulimit ...) and limited to 20 s.
// Cases where old code started threads or read without end run under kMemLimit: without it,
// --threads 100000 would take every thread the machine allows, from everyone on it.
CmdResult run(const std::string& args, const std::string& shell_prefix = "") {
  const std::string sh = "(" + shell_prefix + " timeout 20 " + moe::test::moe_binary() + " " + args + ") 2>&1";
  CmdResult r{0, {}};
  FILE* p = popen(sh.c_str(), "r");
  if (!p) return {127, "popen failed"};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  r.code = WEXITSTATUS(pclose(p));
  return r;
}

// A fresh directory (removed first) under the temp dir.
fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("moe-hostile-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A copy of the mixtral fixture whose config.json has `patch` merged in.
fs::path patched_model(const std::string& name, const nlohmann::json& patch) {
  const fs::path d = scratch(name);
  for (const auto& e : fs::directory_iterator(kMixtral))
    if (e.is_regular_file()) fs::copy_file(e.path(), d / e.path().filename());
  std::ifstream in(d / "config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  j.merge_patch(patch);
  std::ofstream(d / "config.json") << j.dump(2);
  return d;
}

// exit 1 and one "moe: error: ..." line containing every one of `parts`.
void expect_error(const CmdResult& r, const std::vector<std::string>& parts) {
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out.rfind("moe: error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  for (const auto& p : parts) EXPECT_NE(r.out.find(p), std::string::npos) << "missing '" << p << "' in: " << r.out;
}

}  // namespace

// 2^32 heads were truncated to 0 and head_dim = hidden / heads died of SIGFPE.
TEST(HostileInputs, HugeHeadCountIsAnErrorNotSigfpe) {
  const fs::path d = patched_model("heads", {{"num_attention_heads", 4294967296LL}, {"head_dim", nullptr}});
  for (const std::string cmd : {"inspect", "run -p hi -n 1"})
    expect_error(run(cmd + " --model " + d.string()), {"config.json: field 'num_attention_heads'", "4294967296"});
  fs::remove_all(d);
}

// rope_theta 0 ran and printed NaN-derived tokens with exit 0.
TEST(HostileInputs, NonsensicalRopeThetaIsAnError) {
  const fs::path d = patched_model("theta", {{"rope_parameters", {{"rope_theta", 0.0}}}});
  expect_error(run("run -p hi -n 2 --model " + d.string()), {"field 'rope_parameters.rope_theta' must be"});
  fs::remove_all(d);
}

// Out-of-range numbers on the command line: --threads had no bound, --seed wrapped, -n -1
// generated nothing with exit 0.
TEST(HostileInputs, OutOfRangeFlagsAreRejected) {
  for (const std::string bad : {"--seed 18446744073709551616", "--seed -1", "-n -1", "--threads 100000", "--threads -3"}) {
    const CmdResult r = run("run -p hi --model " + kMixtral + " " + bad, kMemLimit);
    EXPECT_NE(r.code, 0) << bad << ": " << r.out;
    EXPECT_NE(r.out.find(bad.substr(0, bad.find(' '))), std::string::npos) << bad << ": " << r.out;
  }
  for (const std::string cmd : {"bench", "perplexity -f x", "compare -r x -f x", "logits --tokens 1 -o x"}) {
    const CmdResult r = run(cmd + " --model " + kMixtral + " --threads 5000", kMemLimit);
    EXPECT_NE(r.code, 0) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find("--threads"), std::string::npos) << cmd << ": " << r.out;
  }
  EXPECT_NE(run("bench --model " + kMixtral + " --seed 99999999999999999999", kMemLimit).out.find("--seed"),
            std::string::npos);
}

// Under a memory limit too small for 1000 thread stacks, the pool's constructor hung.
TEST(HostileInputs, ThreadsThatCannotStartAreAnErrorNotAHang) {
  const CmdResult r = run("run --model " + kMixtral + " --prompt hi -n 1 --threads 1000", kMemLimit);
  expect_error(r, {"cannot start 1000 CPU threads", "--threads"});
}

// A narrow KV cache is the CPU engine's; the GPU engine says so instead of ignoring the flag.
// A KV budget that cannot hold one request refuses it with the figures (moe batch: an error line).
TEST(HostileInputs, KvFlagsTheEngineCannotHonourAreErrors) {
  expect_error(run("run --model " + kMixtral + " --prompt hi -n 1 --kv-dtype bf16 --device cuda", kMemLimit),
               {"--kv-dtype bf16", "GPU"});
  const CmdResult q4 = run("run --model " + kMixtral + " --prompt hi -n 1 --kv-dtype q4", kMemLimit);
  EXPECT_NE(q4.code, 0) << q4.out;
  EXPECT_NE(q4.out.find("--kv-dtype"), std::string::npos) << q4.out;
  const fs::path d = scratch("kvbudget");
  std::ofstream(d / "in.jsonl") << R"({"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"prompt": "hi", "max_tokens": 64}})"
                                << "\n";
  const CmdResult r = run("batch --model " + kMixtral + " --input " + (d / "in.jsonl").string() + " --output " +
                          (d / "out.jsonl").string() + " --kv-budget 4KiB 2>&1", kMemLimit);
  EXPECT_EQ(r.code, 0) << r.out;
  std::ifstream f(d / "out.jsonl");
  const std::string line((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(line.find("--kv-budget"), std::string::npos) << line;
  fs::remove_all(d);
}

// NUL bytes ended the prompt echo (fputs) and detokenize's output (printf).
TEST(HostileInputs, NulBytesAreWrittenInFull) {
  const fs::path d = scratch("nul");
  const std::string prompt("a\0b", 3);
  std::ofstream(d / "prompt.txt", std::ios::binary) << prompt;
  const CmdResult r = run("run --temp 0 -n 1 --model " + kMixtral + " --prompt-file " + (d / "prompt.txt").string() +
                          " 2>/dev/null");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.substr(0, 3), prompt);
  // qwen3_moe's byte-level token 188 is byte 0x00; 32 is "A".
  const CmdResult t = run("detokenize --model " + (kFixtures / "qwen3_moe").string() + " --tokens 32,188,32");
  EXPECT_EQ(t.code, 0) << t.out;
  EXPECT_EQ(t.out, std::string("A\0A\n", 4));
  fs::remove_all(d);
}

// A FIFO as a model file blocked in open() forever, waiting for a writer.
TEST(HostileInputs, FifoModelFilesAreRejected) {
  for (const std::string file : {"config.json", "model.safetensors"}) {
    const fs::path d = patched_model("fifo", nlohmann::json::object());
    fs::remove(d / file);
    ASSERT_EQ(mkfifo((d / file).c_str(), 0600), 0);
    expect_error(run("inspect --model " + d.string()), {(d / file).string() + ": not a regular file"});
    fs::remove_all(d);
  }
}

// /dev/zero as a text input was read until memory ran out.
TEST(HostileInputs, EndlessTextFilesAreCapped) {
  const std::string& limit = kMemLimit;  // old code: fail fast instead of eating the machine
  expect_error(run("run --model " + kMixtral + " --prompt-file /dev/zero", limit), {"--prompt-file /dev/zero", "64 MiB"});
  expect_error(run("perplexity --model " + kMixtral + " --file /dev/zero", limit), {"--file /dev/zero", "64 MiB"});
  expect_error(run("compare --model " + kMixtral + " --ref " + kMixtral + " --file /dev/zero", limit),
               {"--file /dev/zero", "64 MiB"});
}
