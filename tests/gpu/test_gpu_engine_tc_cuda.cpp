// The GPU engine with prompt chunks on tensor cores (GpuEngineOptions::tensor_core_prompts:
// Q4 / Q4Z / FP8 / MXFP4 experts of tokens in items of more than one token through the bf16
// tensor-core GEMM).
//   - Against the same engine without it: logits within bf16 rounding (5e-2 of the largest
//     logit on these random fixtures), greedy tokens the same for the first steps.
//   - A prompt's path does not depend on what else is in its step (another prompt, a decode
//     token): its logits stay within 1e-4 of its own run's, below the paths' 1e-3 apart (not
//     bit-identical: cuBLAS may pick another kernel for the dense layers' other row count; the
//     experts' rows are, test_qgemm_tc_cuda.cpp). Nor on the VRAM budget: bit-identical.
//   - Single-token items (decode) never take it: a prompt fed token by token gives the bits of
//     the engine without tensor cores.
//   - Quantized dense weights (an INT8-dense pack, DeepSeek-V3's FP8 checkpoint): the same checks.
//   - Refused clearly with exact mode (wide16) and without grouped experts.
// Built into test_gpu_engine_cuda (the GPU machine's bundle holds one engine test executable).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/moe_cli.h"
#include "gpu/gpu_engine_fixtures.h"
#include "kernels/cuda/qgemv_grouped.h"
#include "runtime/pack_model.h"
#include "tiers/fake_catalog.h"

using namespace moe;
using namespace moe::test;

namespace {

// bf16 rounding of x and of every weight the tensor cores take, through the fixtures' layers:
// 1.5e-3 to 2.4e-2 of the largest logit under the CUDA emulator (DeepSeek-V3's FP8 checkpoint the
// most: its dense weights too); a wrong path is off by O(1).
constexpr double kBf16Tol = 5e-2;

std::vector<float> prompt_logits(gpu::GpuEngine& e, const std::vector<int32_t>& prompt) {
  const SeqId s = e.create_sequence();
  const BatchItem it{s, prompt, true};
  return e.forward(std::span(&it, 1));
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The checks above on one model (`what` names it in the output).
void check_prompt_tc(const Model& m, const std::string& what) {
  const int64_t V = m.cfg.vocab_size;
  const auto prompt = test_tokens(10, V, 5);
  gpu::GpuEngine fp32(m, {});
  gpu::GpuEngine tc(m, {.tensor_core_prompts = true});
  const GreedyRun ref = greedy(fp32, prompt, V), got = greedy(tc, prompt, V);
  const double err = rel_max_err(got.prefill, ref.prefill);
  std::printf("%s: prompt logits %.2e from the fp32 GEMV's (max |d| / max |logit|)\n", what.c_str(), err);
  EXPECT_LE(err, kBf16Tol) << "prompt logits";
  EXPECT_GT(err, 0.0) << "the prompt did not take the tensor-core path";
  for (size_t i = 0; i < 4; ++i) {  // later steps of random fixtures may tip a near-tie
    EXPECT_EQ(got.tokens[i], ref.tokens[i]) << "step " << i;
    EXPECT_LE(rel_max_err(got.steps[i], ref.steps[i]), kBf16Tol) << "step " << i;
  }

  // The same prompt beside another prompt and a decode token, and at the smallest budget.
  const std::vector<float> alone = prompt_logits(tc, prompt);
  EXPECT_TRUE(same_bits(alone, got.prefill)) << "two runs of the same prompt differ";
  const SeqId other = tc.create_sequence(), running = tc.create_sequence();
  const auto other_prompt = test_tokens(7, V, 9);
  const BatchItem warm{running, other_prompt, false};
  tc.forward(std::span(&warm, 1));
  const SeqId s = tc.create_sequence();
  const int32_t next = 3;
  const BatchItem mixed[3] = {{other, other_prompt, false}, {s, prompt, true}, {running, std::span(&next, 1), false}};
  const std::vector<float> out = tc.forward(mixed);  // rows: other's last, the prompt's 10, running's
  ASSERT_EQ(out.size(), size_t(12 * V));
  const std::vector<float> in_batch(out.begin() + V, out.begin() + 11 * V);
  // A GPU's cuBLAS may round the F32 dense layers' rows differently at another row count, and
  // that can flip a bf16 rounding of x: 1e-4 is still 10x below the paths' distance.
  EXPECT_LE(rel_max_err(in_batch, alone), 1e-4) << "the prompt's path changed with the rest of its step";
  const uint64_t min_budget = uint64_t(m.cfg.router.top_k) * tc.experts().slot_bytes();
  gpu::GpuEngine tc_small(m, {.vram_budget_bytes = min_budget, .tensor_core_prompts = true});
  EXPECT_TRUE(same_bits(greedy(tc_small, prompt, V).prefill, got.prefill)) << "the budget changed the prompt's logits";

  // Token by token (single-token items): never on tensor cores, so the fp32 engine's bits.
  auto one_by_one = [&](gpu::GpuEngine& e) {
    const SeqId q = e.create_sequence();
    std::vector<float> last;
    for (const int32_t t : prompt) {
      const BatchItem it{q, std::span(&t, 1), false};
      last = e.forward(std::span(&it, 1));
    }
    return last;
  };
  EXPECT_TRUE(same_bits(one_by_one(tc), one_by_one(fp32))) << "a single-token item took the tensor-core path";
}

class GpuEngineTensorCores : public ::testing::TestWithParam<std::tuple<std::string, DType>> {};

TEST_P(GpuEngineTensorCores, PromptsWithinBf16AndIndependentOfTheirStep) {
  SKIP_WITHOUT_GPU();
  if (!cuda::tensor_core_gemm_supported(0)) GTEST_SKIP() << "device older than sm_80";
  const auto [name, dtype] = GetParam();
  check_prompt_tc(quantized_pair(name, dtype)->q, name + " " + std::string(dtype_name(dtype)));
}

// Each format the tensor-core GEMM takes; gpt-oss for its expert biases and clamped SwiGLU,
// DeepSeek-V3 for MLA, group routing and a shared expert around it.
INSTANTIATE_TEST_SUITE_P(Formats, GpuEngineTensorCores,
                         ::testing::Values(std::tuple{"qwen3_moe", DType::Q4}, std::tuple{"qwen3_moe", DType::Q4Z},
                                           std::tuple{"mixtral", DType::Q4}, std::tuple{"qwen3_moe", DType::F8E4M3},
                                           std::tuple{"gpt_oss_bf16", DType::MXFP4},
                                           std::tuple{"deepseek_v3", DType::Q4}),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::string(dtype_name(std::get<1>(info.param)));
                         });

// Quantized dense weights too (tc_gemm_rows over the prompt rows, the GEMV over the others): a
// pack with INT8 attention and dense weights, and DeepSeek-V3's FP8 checkpoint as shipped (FP8
// block-scaled dense and expert weights).
TEST(GpuEngineTensorCoresDense, Int8PackAndFp8Checkpoint) {
  SKIP_WITHOUT_GPU();
  if (!cuda::tensor_core_gemm_supported(0)) GTEST_SKIP() << "device older than sm_80";
  const test::TempDir tmp("gpu-engine-tc");
  const auto path = tmp.path / "qwen3_int8.moepack";
  const auto r = test::moe_cli("convert " + fixture_dir("qwen3_moe").string() + " " + path.string() +
                               " --experts int4 --group-size 32 --dense int8");
  ASSERT_EQ(r.code, 0) << r.out;
  check_prompt_tc(load_pack_model(path), "qwen3_moe pack, int8 dense");
  check_prompt_tc(load_hf_model(fixture_dir("deepseek_v3_fp8")), "deepseek_v3_fp8 as shipped");
}

TEST(GpuEngineTensorCoresArgs, RefusedWithExactModeOrUngroupedExperts) {
  SKIP_WITHOUT_GPU();
  const auto pair = quantized_pair("qwen3_moe", DType::Q4);
  for (const gpu::GpuEngineOptions& o : {gpu::GpuEngineOptions{.wide16 = true, .tensor_core_prompts = true},
                                        gpu::GpuEngineOptions{.grouped_experts = false, .tensor_core_prompts = true}}) {
    try {
      gpu::GpuEngine e(pair->q, o);
      ADD_FAILURE() << "accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("--prompt-tc"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
