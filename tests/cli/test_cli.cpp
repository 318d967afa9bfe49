// The `moe` binary end to end: its output contracts and its error messages.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/moe_cli.h"
#include "storage/npy.h"

namespace fs = std::filesystem;

namespace {

using Result = moe::test::CmdResult;

Result run(const std::string& args, bool keep_stderr = true) { return moe::test::moe_cli(args, keep_stderr); }

fs::path fixtures() { return fs::path(MOE_SOURCE_DIR) / "tests" / "fixtures"; }

std::vector<std::string> names() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(fixtures()))
    if (fs::exists(e.path() / "golden" / "golden.json")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

nlohmann::json golden(const std::string& n) {
  std::ifstream in(fixtures() / n / "golden" / "golden.json");
  return nlohmann::json::parse(in);
}

}  // namespace

class Cli : public ::testing::TestWithParam<std::string> {};

TEST_P(Cli, InspectReportsHfParameterCount) {
  const auto r = run("inspect --json --model " + (fixtures() / GetParam()).string());
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  const auto g = golden(GetParam());
  EXPECT_EQ(j["parameters_total"], g["num_parameters"]);
  EXPECT_EQ(j["parameters_active"], g["active_parameters"]);
  EXPECT_EQ(j["architecture"], g["architecture"]);
  const auto human = run("inspect --model " + (fixtures() / GetParam()).string());
  EXPECT_NE(human.out.find(std::to_string(g["num_parameters"].get<int64_t>()) + " total"), std::string::npos) << human.out;
}

TEST_P(Cli, LogitsWritesTheGoldenNpy) {
  const auto g = golden(GetParam());
  const auto& c = g["logits"][1];
  std::string ids;
  for (const auto& t : c["tokens"]) ids += (ids.empty() ? "" : ",") + std::to_string(t.get<int>());
  const fs::path out = fs::temp_directory_path() / ("moe-cli-" + GetParam() + ".npy");
  auto r = run("logits --model " + (fixtures() / GetParam()).string() + " --tokens " + ids + " --all-positions --out " +
               out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  const auto got = moe::read_npy_f32(out);
  const auto ref = moe::read_npy_f32(fixtures() / GetParam() / "golden" / c["file"].get<std::string>());
  ASSERT_EQ(got.shape, ref.shape);
  double err = 0, scale = 0;
  for (size_t i = 0; i < ref.data.size(); ++i) {
    err = std::max(err, double(std::fabs(got.data[i] - ref.data[i])));
    scale = std::max(scale, double(std::fabs(ref.data[i])));
  }
  EXPECT_LT(err / scale, 1e-4);
  r = run("logits --model " + (fixtures() / GetParam()).string() + " --tokens " + ids + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(moe::read_npy_f32(out).shape[0], 1);  // last position only by default
  fs::remove(out);
}

TEST_P(Cli, TokenizeMatchesGolden) {
  const auto g = golden(GetParam());
  const auto& t = g["tokenization"][0];
  const std::string text = t["text"];
  ASSERT_EQ(text.find('\''), std::string::npos);  // keep shell quoting simple
  const auto r = run("tokenize --no-special --model " + (fixtures() / GetParam()).string() + " --text '" + text + "'");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out), t["ids"]);
}

TEST_P(Cli, RunGeneratesAndReportsSpeed) {
  const auto r = run("run --model " + (fixtures() / GetParam()).string() + " --prompt 'hello world' -n 8 --temp 0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("hello world"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tok/s | generation: "), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Cli, ::testing::ValuesIn(names()), [](const auto& i) { return i.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Cli);

TEST(CliErrors, OneLineMessages) {
  auto r = run("inspect --model /nonexistent/dir");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "moe: error: /nonexistent/dir/config.json: cannot open (is '/nonexistent/dir' a Hugging Face model directory?)\n");
  r = run("logits --model " + (fixtures() / names().at(0)).string() + " --tokens 1,x,3 --out /tmp/x.npy");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--tokens: 'x' is not an integer token id"), std::string::npos) << r.out;
  std::string clients_cmd = "serve-bench --clients 1,x --model ";
  clients_cmd += (fixtures() / names().at(0)).string();
  r = run(clients_cmd);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--clients: 'x' is not an integer client count"), std::string::npos) << r.out;
  r = run("logits --model " + (fixtures() / names().at(0)).string() + " --tokens 99999999 --out /tmp/x.npy");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("outside the vocabulary"), std::string::npos) << r.out;
  r = run("frobnicate");
  EXPECT_NE(r.code, 0);
}

// The GPU flags on a machine without a GPU (CI): one line saying what is wrong and what to do.
// (With a GPU, tests/gpu/test_gpu_engine_cuda.cpp covers the engine itself.)
TEST(CliErrors, DeviceFlags) {
  const std::string model = (fixtures() / "qwen3_moe").string();
  struct Case {
    const char* flags;
    bool exit_1;       // our own error (exit 1) rather than the flag parser's (any non-zero)
    const char* says;  // in the output
  };
  for (const Case& c : {Case{"--vram-budget 50%", true, "--vram-budget needs --device cuda"},
                        Case{"--vram-limit 24GiB", true, "--vram-limit needs --device cuda"},
                        Case{"--cpu-misses", true, "--cpu-misses needs --device cuda"},
                        Case{"--cpu-misses=sometimes", false, "--cpu-misses"}, Case{"--device tpu", false, "--device"}}) {
    const auto r = run("run --model " + model + " --prompt hi -n 2 " + c.flags);
    if (c.exit_1)
      EXPECT_EQ(r.code, 1) << c.flags;
    else
      EXPECT_NE(r.code, 0) << c.flags;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.flags << ": " << r.out;
  }
  auto r = run("bench --model " + model + " --gen-len 2 --prompt-len 2 --device cuda");
  if (r.code != 0) {  // 0: this machine has a GPU, and the bench ran
    // A CUDA build without a visible device, or a build without CUDA: either way one clear line.
    EXPECT_EQ(r.code, 1);
    const bool no_device = r.out.find("--device cuda: no CUDA device is visible") != std::string::npos;
    const bool no_cuda = r.out.find("--device cuda: this build has no CUDA backend") != std::string::npos;
    EXPECT_TRUE(no_device || no_cuda) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
}

TEST(CliErrors, HelpForEachCommand) {
  for (const char* c : {"run", "logits", "tokenize", "detokenize", "inspect"}) {
    const auto r = run(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0) << c;
    EXPECT_NE(r.out.find("--model"), std::string::npos) << c;
  }
}

TEST(CliCommands, PerplexityAndPromptFile) {
  const fs::path model = fixtures() / "qwen3_moe";
  const fs::path txt = fs::temp_directory_path() / "moe-cli-ppl.txt";
  std::ofstream(txt) << "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n";
  auto r = run("perplexity --model " + model.string() + " --file " + txt.string() + " --context 8", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["predicted"].get<int>(), 0);
  EXPECT_GT(j["perplexity"].get<double>(), 1.0);
  EXPECT_TRUE(std::isfinite(j["unigram_perplexity"].get<double>()));
  // Same prompt from a file, greedy, without echo: the completion alone, deterministic.
  r = run("run --model " + model.string() + " --prompt-file " + txt.string() + " --no-echo --temp 0 -n 6", false);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("def add"), std::string::npos);
  EXPECT_EQ(r.out, run("run --model " + model.string() + " --prompt-file " + txt.string() +
                       " --no-echo --temp 0 -n 6", false).out);
  fs::remove(txt);
}

// `moe bench` says which CPU kernels ran, and the environment's overrides change it:
// MOE_CPU_ISA=scalar picks the reference kernels, MOE_CPU_AMX=0 keeps AVX-512 off the tile unit.
TEST(CliBench, ReportsTheCpuKernelsThatRan) {
  const std::string cmd = "bench --json --prompt-len 2 --gen-len 2 --warmup 1 --model " + (fixtures() / "qwen3_moe").string();
  const auto kernels = [&](const char* isa, const char* amx) {
    if (isa) setenv("MOE_CPU_ISA", isa, 1);
    if (amx) setenv("MOE_CPU_AMX", amx, 1);
    const auto r = run(cmd, false);
    unsetenv("MOE_CPU_ISA");
    unsetenv("MOE_CPU_AMX");
    EXPECT_EQ(r.code, 0) << r.out;
    return nlohmann::json::parse(r.out).at("cpu_kernels").get<std::string>();
  };
  const std::string native = kernels(nullptr, nullptr);
  EXPECT_TRUE(native == "scalar" || native == "avx2" || native == "avx512" || native == "avx512+amx") << native;
  EXPECT_EQ(kernels("scalar", nullptr), "scalar");
  const std::string no_amx = kernels(nullptr, "0");
  EXPECT_EQ(no_amx, native == "avx512+amx" ? "avx512" : native);
}
