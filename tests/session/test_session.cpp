// Session (session/session.h): a model opened and wired once. Checked against the parts it
// wires (the CPU engine over the same files), on an HF fixture and on packs converted from it.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "cli/moe_cli.h"
#include "model/fixtures.h"
#include "runtime/engine.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/pack_model.h"
#include "session/session.h"

namespace fs = std::filesystem;
using namespace moe;

namespace {

// A pack of `fixture` (int4 experts), written once per test binary with the moe CLI.
fs::path pack_of(const std::string& fixture) {
  const fs::path p = fs::temp_directory_path() / ("moe-session-" + fixture + ".moepack");
  if (!fs::exists(p)) {  // ctest runs tests in parallel processes: each writes its own, then renames
    const fs::path mine = p.string() + "." + std::to_string(::getpid()) + ".moepack";
    const auto r = test::moe_cli("convert " + test::fixture_dir(fixture).string() + " " + mine.string() +
                                 " --experts int4 --group-size 32");
    if (r.code != 0) throw std::runtime_error("moe convert failed: " + r.out);
    fs::rename(mine, p);
  }
  return p;
}

std::vector<float> last_logits(InferenceEngine& e, const std::vector<int32_t>& ids) {
  const SeqId s = e.create_sequence();
  const BatchItem item{s, ids, false};
  std::vector<float> out = e.forward({&item, 1});
  e.free_sequence(s);
  return out;
}

SessionOptions pack_options(const std::string& ram_budget) {
  SessionOptions o;
  o.storage.ram_budget = ram_budget;
  o.storage.io = "pread";
  o.device.threads = 1;
  return o;
}

}  // namespace

TEST(Session, DirectoryMatchesTheEngineItWires) {
  const fs::path dir = test::fixture_dir("qwen3_moe");
  SessionOptions o;
  o.device.threads = 1;
  Session s(dir, o);
  const Model ref_model = load_hf_model(dir);
  Engine ref(ref_model, EngineOptions{1, 0});
  const std::vector<int32_t> ids = test::test_tokens(7, ref_model.cfg.vocab_size, 5);
  EXPECT_EQ(last_logits(s.engine(), ids), last_logits(ref, ids));
  EXPECT_EQ(s.engine().backend(), "cpu");
  EXPECT_EQ(s.prefetch_mode(), "off");  // every expert resident: nothing to prefetch
  const Tokenizer tok = Tokenizer::load(dir / "tokenizer.json", dir / "tokenizer_config.json");
  EXPECT_EQ(s.tokenizer().encode("def main(): print", true), tok.encode("def main(): print", true));
  const SessionStats st = s.stats();
  EXPECT_FALSE(st.ram.has_value());
  EXPECT_FALSE(st.gpu.has_value());
  EXPECT_EQ(st.json(1)["ram_hit_rate"], 1.0);
}

TEST(Session, PackRamTierIsCountedAndReset) {
  const fs::path pack = pack_of("qwen3_moe");
  Session s(pack, pack_options("40%"));
  EXPECT_TRUE(s.has_ram_tier());
  EXPECT_EQ(s.prefetch_mode(), "gate");  // auto: the experts do not all fit
  const std::vector<int32_t> ids = test::test_tokens(6, s.model().cfg.vocab_size, 9);
  last_logits(s.engine(), ids);
  SessionStats st = s.stats();
  ASSERT_TRUE(st.ram.has_value());
  EXPECT_GT(st.ram->total.misses, 0u);
  const nlohmann::json j = st.json(6);
  for (const char* k : {"ram_hit_rate", "disk_bytes_per_token", "prefetch", "prefetch_precision", "lookahead",
                        "predictor_recall", "router_entropy"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["prefetch"], "gate");
  s.reset_stats();
  st = s.stats();
  EXPECT_EQ(st.ram->total.hits + st.ram->total.misses, 0u);
  EXPECT_NE(st.format(1).find("ram tier:"), std::string::npos);
}

TEST(Session, TokensDoNotDependOnTheRamBudget) {
  const fs::path pack = pack_of("qwen3_moe");
  Session full(pack, pack_options("100%")), small(pack, pack_options("40%"));
  const std::vector<int32_t> ids = test::test_tokens(9, full.model().cfg.vocab_size, 2);
  EXPECT_EQ(last_logits(full.engine(), ids), last_logits(small.engine(), ids));
}

TEST(Session, RestartKeepsTheModelAndItsRamTier) {
  const fs::path pack = pack_of("qwen3_moe");
  Session s(pack, pack_options("100%"));
  EXPECT_GT(s.ram_expert_bytes(), 0u);
  uint64_t seen = 0;
  EXPECT_EQ(s.warm_ram([&](uint64_t b) { seen += b; }), 0u);
  EXPECT_EQ(seen, s.ram_expert_bytes());
  const uint64_t resident = s.stats().ram->resident_experts;
  EXPECT_GT(resident, 0u);
  const std::vector<int32_t> ids = test::test_tokens(5, s.model().cfg.vocab_size, 3);
  const std::vector<float> before = last_logits(s.engine(), ids);
  const Model* model = &s.model();
  EngineVariant v;
  v.prefetch_mode = "history";
  int calls = 0;
  v.before_prefetch = [&](InferenceEngine& e) {
    ++calls;
    EXPECT_EQ(e.n_sequences(), 0u);  // a fresh engine
  };
  s.restart_engine(std::move(v));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(s.prefetch_mode(), "history");
  EXPECT_EQ(&s.model(), model);
  EXPECT_EQ(s.stats().ram->resident_experts, resident);
  EXPECT_EQ(last_logits(s.engine(), ids), before);
  s.clear_ram();
  EXPECT_EQ(s.stats().ram->resident_experts, 0u);
}

// Warming a RAM budget below every expert reads them all and evicts (moe bench --warm-ram
// then warns); it used to pin a whole layer at once and fail with "full of pinned experts".
TEST(Session, WarmingASmallRamBudgetEvictsInsteadOfFailing) {
  Session s(pack_of("qwen3_moe"), pack_options("40%"));
  uint64_t seen = 0;
  EXPECT_GT(s.warm_ram([&](uint64_t b) { seen += b; }), 0u);
  EXPECT_EQ(seen, s.ram_expert_bytes());
}

TEST(Session, NoEngineUntilOneIsStarted) {
  SessionOptions o;
  o.start_engine = false;
  Session s(test::fixture_dir("mixtral"), o);
  EXPECT_THROW(s.engine(), std::logic_error);
  EXPECT_GT(s.decode_bytes_per_token(), double(s.dense_bytes()) / 4);
  s.restart_engine();
  EXPECT_EQ(s.engine().n_sequences(), 0u);
}

// A decode token reads every dense matrix but the embedding: attention of any kind (MLA's
// absorbed form reads all of kv_b), DeltaNet projections and conv, routers, shared experts, the
// LM head. Norms, biases and other vectors are left out. DeltaNet and MLA were once missing.
TEST(Session, DecodeDenseBytesAreEveryMatrixButTheEmbedding) {
  for (const char* name : {"qwen3_next", "qwen3_5_moe", "deepseek_v3", "deepseek_v2_lite", "gpt_oss", "qwen3_moe"}) {
    SCOPED_TRACE(name);
    SessionOptions o;
    o.start_engine = false;
    Session s(test::fixture_dir(name), o);
    double matrices = 0;
    for (const DenseTensor& t : dense_tensors(s.model()))
      if (t.cls != TensorClass::Embedding && t.view.rows > 1 && t.view.cols > 1) matrices += double(t.view.bytes());
    EXPECT_EQ(s.step_bytes().dense, matrices);
  }
}

TEST(Session, GpuOptionsOnTheCpuAreRefused) {
  SessionOptions o;
  o.device.vram_budget = "50%";
  EXPECT_THROW(Session(test::fixture_dir("mixtral"), o), std::invalid_argument);
  o.device.vram_budget.clear();
  o.device.cpu_misses = "auto";
  EXPECT_THROW(Session(test::fixture_dir("mixtral"), o), std::invalid_argument);
  o.device.cpu_misses = "off";
  o.device.device = "tpu";
  EXPECT_THROW(Session(test::fixture_dir("mixtral"), o), std::invalid_argument);
}

TEST(Session, OraclePrefetchNeedsAPredictor) {
  SessionOptions o;
  o.start_engine = false;
  Session s(pack_of("mixtral"), o);
  EngineVariant v;
  v.prefetch_mode = "oracle";
  EXPECT_THROW(s.restart_engine(std::move(v)), std::invalid_argument);
}

// Experts are read through the descriptor the session opened, not the path: a pack put in
// the path's place after the open changes nothing (the race of a pack replaced at start-up).
TEST(Session, ExpertReadsComeFromTheFileThatWasOpened) {
  const fs::path a = pack_of("qwen3_moe"), b = pack_of("mixtral");
  const fs::path x = fs::temp_directory_path() / ("moe-session-swap-" + std::to_string(::getpid()) + ".moepack");
  fs::copy_file(a, x, fs::copy_options::overwrite_existing);
  Session ref(a, pack_options("40%"));
  for (const char* io : {"pread", "uring", "mmap"}) {
    SessionOptions o = pack_options("40%");
    o.storage.io = io;
    fs::copy_file(a, x, fs::copy_options::overwrite_existing);
    Session s(x, o);
    const fs::path tmp = x.string() + ".new";
    fs::copy_file(b, tmp, fs::copy_options::overwrite_existing);
    fs::rename(tmp, x);  // another file under the path from now on
    const std::vector<int32_t> ids = test::test_tokens(8, s.model().cfg.vocab_size, 4);
    EXPECT_EQ(last_logits(s.engine(), ids), last_logits(ref.engine(), ids)) << io;
    EXPECT_GT(s.stats().ram->total.misses, 0u) << io;  // the experts were read after the swap
  }
  fs::remove(x);
}

TEST(Session, OpenTokenizerReadsPackAndDirectory) {
  const fs::path dir = test::fixture_dir("qwen3_moe");
  const std::string text = "import os\nprint(os.getcwd())";
  EXPECT_EQ(open_tokenizer(pack_of("qwen3_moe")).encode(text, true), open_tokenizer(dir).encode(text, true));
  EXPECT_THROW(open_tokenizer(fs::temp_directory_path() / "moe-no-such-model-dir"), std::runtime_error);
}
