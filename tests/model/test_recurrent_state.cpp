// Gated DeltaNet models keep a recurrent state per sequence instead of (beside) a KV cache:
// forks and truncates to any point restart from the nearest snapshot and recompute the rest,
// and give what recomputing the whole sequence gives; snapshots count in the memory figure.
#include <gtest/gtest.h>

#include "model/fixtures.h"
#include "kernels/cpu/deltanet.h"
#include "runtime/engine.h"
#include "storage/npy.h"

using namespace moe;
using namespace moe::test;

namespace {

moe::ThreadPool& pool() {
  static moe::ThreadPool p(3);  // more threads than cores: uneven head splits
  return p;
}

const char* kFixture = "qwen3_next";

std::vector<float> logits_from(Engine& e, SeqId s, std::span<const int32_t> toks) {
  const BatchItem item{s, toks, true};
  return e.forward({&item, 1});
}

}  // namespace

TEST(RecurrentState, ForkAndTruncateAnywhereMatchRecompute) {
  if (!std::filesystem::exists(fixture_dir(kFixture))) GTEST_SKIP() << "no " << kFixture << " fixture";
  const Model model = load_hf_model(fixture_dir(kFixture));
  ASSERT_GT(model.cfg.n_linear_layers(), 0);
  const auto a = test_tokens(150, model.cfg.vocab_size, 11);
  const int64_t V = model.cfg.vocab_size;
  for (int64_t every : {0, 16, 64}) {
    EngineOptions o{2, 0};
    o.state_snapshot_every = every;
    Engine e(model, o);
    const SeqId s = e.create_sequence();
    const auto ref = logits_from(e, s, a);  // one 150-token prefill: chunked, crossing chunk boundaries
    for (int64_t n : {1, 16, 40, 64, 100, 149}) {
      SCOPED_TRACE("snapshot every " + std::to_string(every) + ", fork at " + std::to_string(n));
      const SeqId f = e.fork_sequence(s, n);
      EXPECT_EQ(e.length(f), n);
      const auto got = logits_from(e, f, std::span(a).subspan(size_t(n)));
      EXPECT_LT(rel_max_err(got, std::vector<float>(ref.begin() + n * V, ref.end())), 1e-4);
      e.free_sequence(f);
    }
    // Truncate the original to a point between snapshots and continue token by token (the
    // recurrent decode path).
    e.truncate(s, 37);
    EXPECT_EQ(e.length(s), 37);
    for (int64_t t = 37; t < 45; ++t) {
      const auto got = logits_from(e, s, std::span(a).subspan(size_t(t), 1));
      EXPECT_LT(rel_max_err(got, std::vector<float>(ref.begin() + t * V, ref.begin() + (t + 1) * V)), 1e-4) << t;
    }
  }
}

TEST(RecurrentState, SnapshotsCountInKvBytes) {
  if (!std::filesystem::exists(fixture_dir(kFixture))) GTEST_SKIP() << "no " << kFixture << " fixture";
  const Model model = load_hf_model(fixture_dir(kFixture));
  const auto a = test_tokens(64, model.cfg.vocab_size, 3);
  int64_t bytes[2];
  for (int i = 0; i < 2; ++i) {
    EngineOptions o{2, 0};
    o.state_snapshot_every = i == 0 ? 0 : 16;  // none, or 4 snapshots of every linear layer
    Engine e(model, o);
    const SeqId s = e.create_sequence();
    logits_from(e, s, a);
    bytes[i] = e.kv_bytes();
  }
  EXPECT_EQ(bytes[1] - bytes[0], 4 * model.cfg.state_bytes_per_sequence());
}

// Our two forms of the gated delta rule against transformers' own (torch_chunk_gated_delta_rule
// and torch_recurrent_gated_delta_rule) on the inputs one layer of the fixture passed them.
TEST(RecurrentState, DeltaRuleMatchesTransformers) {
  if (!std::filesystem::exists(fixture_dir(kFixture))) GTEST_SKIP() << "no " << kFixture << " fixture";
  const auto dir = fixture_dir(kFixture) / "golden";
  const auto q = read_npy_f32(dir / "deltanet_query.npy"), k = read_npy_f32(dir / "deltanet_key.npy");
  const auto v = read_npy_f32(dir / "deltanet_value.npy"), g = read_npy_f32(dir / "deltanet_g.npy");
  const auto beta = read_npy_f32(dir / "deltanet_beta.npy");
  const int64_t T = q.shape[1];
  const cpu::DeltaNetShape s{int(q.shape[2]), int(v.shape[2]), int(q.shape[3]), int(v.shape[3])};
  for (const char* form : {"chunk", "recurrent"}) {
    auto qq = q.data, kk = k.data;
    std::vector<float> state(size_t(s.state_floats()), 0.0f), out(v.data.size());
    if (std::string(form) == "chunk")
      cpu::gated_delta_chunked(pool(), qq.data(), kk.data(), v.data.data(), g.data.data(), beta.data.data(), T, s, state.data(), out.data());
    else
      cpu::gated_delta_recurrent(pool(), qq.data(), kk.data(), v.data.data(), g.data.data(), beta.data.data(), T, s, state.data(),
                                 out.data());
    const auto ref_out = read_npy_f32(dir / (std::string("deltanet_") + form + "_output.npy"));
    const auto ref_state = read_npy_f32(dir / (std::string("deltanet_") + form + "_final_state.npy"));
    EXPECT_LT(rel_max_err(out, ref_out.data), 1e-5) << form;
    EXPECT_LT(rel_max_err(state, ref_state.data), 1e-5) << form;
    std::printf("[ metric ] %s form vs transformers: output %.2e, final state %.2e\n", form,
                rel_max_err(out, ref_out.data), rel_max_err(state, ref_state.data));
  }
}
