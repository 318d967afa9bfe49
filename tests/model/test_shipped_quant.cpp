// Checkpoints that ship quantized weights (DeepSeek-V3's 128x128-block FP8, gpt-oss's MXFP4
// experts) are read as they are: every weight our loader decodes equals, bit for bit, what
// transformers' own dequantization gives for the same tensor (saved by the fixture script).
#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <regex>

#include "model/fixtures.h"
#include "quant/quantize.h"
#include "runtime/model.h"
#include "storage/npy.h"

using namespace moe;
using namespace moe::test;

namespace {

// The view a DeepSeek tensor name maps to.
WeightView deepseek_view(const Model& m, const std::string& name, std::deque<HeldExpert>& held) {
  std::smatch g;
  if (std::regex_match(name, g, std::regex(R"(model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight)"))) {
    held.emplace_back(*m.experts, std::stoi(g[1]), std::stoi(g[2]));
    const ExpertWeights& w = held.back().weights();
    return g[3] == "gate" ? w.gate : g[3] == "up" ? w.up : w.down;
  }
  if (std::regex_match(name, g, std::regex(R"(model\.layers\.(\d+)\.self_attn\.kv_b_proj\.weight)")))
    return m.layers[size_t(std::stoi(g[1]))].attn.kv_b;
  if (std::regex_match(name, g, std::regex(R"(model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight)"))) {
    const FfnWeights& f = m.layers[size_t(std::stoi(g[1]))].dense;
    return g[2] == "gate" ? f.gate : g[2] == "up" ? f.up : f.down;
  }
  ADD_FAILURE() << "no view for " << name;
  return {};
}

std::vector<float> rows_of(const WeightView& w) { return dequantize(w); }

}  // namespace

TEST(ShippedQuant, DeepseekFp8BlocksDecodeLikeTransformers) {
  const std::string fx = "deepseek_v3_fp8";
  if (!std::filesystem::exists(fixture_dir(fx))) GTEST_SKIP() << "no " << fx << " fixture";
  const auto g = golden(fx);
  const Model m = load_hf_model(fixture_dir(fx));
  ASSERT_FALSE(g["dequant_checks"].empty());
  for (const auto& c : g["dequant_checks"]) {
    std::deque<HeldExpert> held;
    const WeightView w = deepseek_view(m, c["tensor"].get<std::string>(), held);
    EXPECT_EQ(w.dtype, DType::F8E4M3) << c["tensor"];
    EXPECT_EQ(w.group, 128);
    const auto ref = read_npy_f32(fixture_dir(fx) / "golden" / c["file"].get<std::string>());
    const auto got = rows_of(w);
    ASSERT_EQ(got.size(), ref.data.size()) << c["tensor"];
    EXPECT_EQ(std::memcmp(got.data(), ref.data.data(), got.size() * 4), 0) << c["tensor"] << " is not bit-exact";
  }
}

TEST(ShippedQuant, GptOssMxfp4DecodesLikeTransformers) {
  const std::string fx = "gpt_oss";
  if (!std::filesystem::exists(fixture_dir(fx))) GTEST_SKIP() << "no " << fx << " fixture";
  const auto g = golden(fx);
  const Model m = load_hf_model(fixture_dir(fx));
  ASSERT_FALSE(g["dequant_checks"].empty());
  for (const auto& c : g["dequant_checks"]) {
    const HeldExpert held(*m.experts, c["layer"].get<int>(), c["expert"].get<int>());
    const ExpertWeights& w = held.weights();
    const auto ref = read_npy_f32(fixture_dir(fx) / "golden" / c["file"].get<std::string>());
    const std::string t = c["tensor"].get<std::string>();
    std::vector<float> got;
    if (t.find("gate_up") != std::string::npos) {
      // File rows interleave gate (even) and up (odd); ours are two matrices.
      EXPECT_EQ(w.gate.dtype, DType::MXFP4);
      const auto gate = rows_of(w.gate), up = rows_of(w.up);
      const int64_t H = w.gate.cols;
      for (int64_t j = 0; j < w.gate.rows; ++j) {
        got.insert(got.end(), gate.begin() + j * H, gate.begin() + (j + 1) * H);
        got.insert(got.end(), up.begin() + j * H, up.begin() + (j + 1) * H);
      }
    } else {
      EXPECT_EQ(w.down.dtype, DType::MXFP4);
      got = rows_of(w.down);
    }
    ASSERT_EQ(got.size(), ref.data.size()) << t;
    // memcmp, so negative zeros count too.
    EXPECT_EQ(std::memcmp(got.data(), ref.data.data(), got.size() * 4), 0) << t << " is not bit-exact";
  }
}
