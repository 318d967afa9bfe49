// The GPU engine's decode phase profile (GpuEngineOptions::phase_profile, `moe bench
// --gpu-phases`): every decode step is profiled and none else; the phases a step meets are
// listed in order, each with a time of at least zero (device events; the CUDA emulator's are
// host clock readings); the logits are the bits of the engine without it (profiling only adds
// events and launches every kernel, which graphs replay to the same bits). A MoE family routed
// on the device (Qwen3), one routed on the host with a shared expert and dense layers
// (DeepSeek-V3: MLA), and one with linear attention (Qwen3-Next).
// Built into test_gpu_engine_cuda.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gpu/gpu_engine_fixtures.h"

using namespace moe;
using namespace moe::test;

namespace {

std::vector<std::string> names(const gpu::GpuStepTimes& t) {
  std::vector<std::string> v;
  for (const auto& [name, s] : t.phase_s) v.push_back(name);
  return v;
}

bool has(const std::vector<std::string>& v, const std::string& n) { return std::find(v.begin(), v.end(), n) != v.end(); }

}  // namespace

class GpuEnginePhases : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuEnginePhases, ProfilesEveryDecodeStepWithoutChangingLogits) {
  SKIP_WITHOUT_GPU();
  const std::string name = GetParam();
  const auto pair = quantized_pair(name, DType::Q4);
  const Model& m = pair->q;
  SKIP_IF_GPU_CANNOT_RUN(m);
  const int64_t V = m.cfg.vocab_size;
  const auto prompt = test_tokens(9, V, 3);
  gpu::GpuEngine plain(m, {.wide16 = true});
  const GreedyRun ref = greedy(plain, prompt, V);
  EXPECT_EQ(plain.step_times().phase_steps, 0u);
  EXPECT_TRUE(plain.step_times().phase_s.empty());

  gpu::GpuEngine profiled(m, {.wide16 = true, .phase_profile = true});
  const GreedyRun got = greedy(profiled, prompt, V);
  EXPECT_EQ(got.prefill, ref.prefill);
  EXPECT_EQ(got.steps, ref.steps);
  EXPECT_EQ(got.tokens, ref.tokens);
  const gpu::GpuStepTimes& t = profiled.step_times();
  EXPECT_EQ(t.phase_steps, uint64_t(kSteps));  // the prefill step is not profiled
  EXPECT_EQ(t.graph_steps, 0u);                // profiled steps launch every kernel
  const std::vector<std::string> ph = names(t);
  ASSERT_FALSE(ph.empty());
  EXPECT_EQ(ph.front(), "norm");  // the first layer's attention norm starts every step
  EXPECT_EQ(ph.back(), "lm_head");
  for (const auto& [n, s] : t.phase_s) EXPECT_GE(s, 0.0) << n;
  EXPECT_TRUE(has(ph, "experts"));
  if (m.cfg.is_mla()) {
    EXPECT_TRUE(has(ph, "attn.mla"));
  } else {
    for (const char* p : {"attn.qkv", "attn.rope_kv", "attn.attend", "attn.o_proj"}) EXPECT_TRUE(has(ph, p)) << p;
  }
  EXPECT_EQ(has(ph, "attn.deltanet"), m.cfg.n_linear_layers() > 0);
  EXPECT_EQ(has(ph, "shared_expert"), m.cfg.shared_intermediate > 0);
  EXPECT_EQ(has(ph, "router"), profiled.device_routed());
  bool dense_layer = false;
  for (const FfnKind k : m.cfg.ffn) dense_layer = dense_layer || k == FfnKind::Dense;
  EXPECT_EQ(has(ph, "dense_ffn"), dense_layer);
  // Reset like the bench does between its prefill and decode: the totals start again.
  profiled.step_times() = {};
  EXPECT_TRUE(profiled.step_times().phase_s.empty());
}

INSTANTIATE_TEST_SUITE_P(Families, GpuEnginePhases, ::testing::Values("qwen3_moe", "deepseek_v3", "qwen3_next"),
                         [](const auto& info) { return info.param; });
