// Shared by the GPU engine tests (test_gpu_engine_cuda.cpp, test_gpu_engine_tc_cuda.cpp): greedy
// and forced runs of an engine, the comparison of two runs, and fixtures with quantized experts
// beside the same values dequantized (the GPU runs the first, the CPU reference the second).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "gpu/gpu_test.h"
#include "model/fixtures.h"
#include "quant/quantize.h"
#include "runtime/engine_api.h"
#include "runtime/gpu/gpu_engine.h"
#include "storage/expert_source.h"

namespace moe::test {

// A fixture the GPU engine cannot run (gpu::unsupported_reason) is skipped, with the engine's
// own reason in the output.
#define SKIP_IF_GPU_CANNOT_RUN(model)                                            \
  if (const std::string why = gpu::unsupported_reason(model); !why.empty()) \
  GTEST_SKIP() << why

inline constexpr double kTol = 1e-4;
inline constexpr int kSteps = 16;

inline int32_t argmax(const float* v, int64_t n) { return int32_t(std::max_element(v, v + n) - v); }

// Prefill (all logits), then greedy decode: the prefill logits, each step's logits, the tokens.
struct GreedyRun {
  std::vector<float> prefill;
  std::vector<std::vector<float>> steps;
  std::vector<int32_t> tokens;
};

template <class E>
GreedyRun greedy(E& e, const std::vector<int32_t>& prompt, int64_t V) {
  GreedyRun r;
  const SeqId s = e.create_sequence();
  const BatchItem it{s, prompt, true};
  r.prefill = e.forward(std::span(&it, 1));
  int32_t tok = argmax(r.prefill.data() + (int64_t(prompt.size()) - 1) * V, V);
  for (int i = 0; i < kSteps; ++i) {
    r.tokens.push_back(tok);
    const BatchItem d{s, std::span(&tok, 1), false};
    r.steps.push_back(e.forward(std::span(&d, 1)));
    tok = argmax(r.steps.back().data(), V);
  }
  return r;
}

// The same prompt, then `tokens` fed one by one (not the engine's own choices): each step's logits.
template <class E>
GreedyRun forced(E& e, const std::vector<int32_t>& prompt, const std::vector<int32_t>& tokens) {
  GreedyRun r;
  const SeqId s = e.create_sequence();
  const BatchItem it{s, prompt, true};
  r.prefill = e.forward(std::span(&it, 1));
  for (int32_t tok : tokens) {
    const BatchItem d{s, std::span(&tok, 1), false};
    r.steps.push_back(e.forward(std::span(&d, 1)));
  }
  r.tokens = tokens;
  return r;
}

inline void expect_match(const GreedyRun& gpu, const GreedyRun& cpu, double tol) {
  EXPECT_LE(rel_max_err(gpu.prefill, cpu.prefill), tol) << "prefill logits";
  ASSERT_EQ(gpu.tokens, cpu.tokens) << "greedy tokens differ";
  for (size_t i = 0; i < cpu.steps.size(); ++i) EXPECT_LE(rel_max_err(gpu.steps[i], cpu.steps[i]), tol) << "step " << i;
}

inline uint64_t expert_bytes(gpu::GpuEngine& e) { return e.experts().slot_bytes(); }


// Every routed expert of `m` quantized to `q`, and the same values dequantized to F32: the GPU
// runs the first, the CPU reference the second.
struct QuantizedExperts {
  std::deque<QuantizedMatrix> q;
  std::deque<std::vector<float>> f;
  std::vector<std::vector<ExpertWeights>> qt, ft;
};

inline QuantizedExperts quantize_experts(const Model& m, const QuantOptions& opt) {
  QuantizedExperts out;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    out.qt.emplace_back();
    out.ft.emplace_back();
    if (m.layers[l].kind != FfnKind::Moe) continue;
    for (int e = 0; e < m.cfg.router.n_experts; ++e) {
      const ExpertWeights w = m.experts->acquire(int(l), e);
      ExpertWeights qw, fw;
      for (auto [src, qdst, fdst] : {std::tuple{&w.gate, &qw.gate, &fw.gate}, std::tuple{&w.up, &qw.up, &fw.up},
                                     std::tuple{&w.down, &qw.down, &fw.down}}) {
        const std::vector<float> full = dequantize(*src);
        out.q.push_back(quantize(full.data(), src->rows, src->cols, opt));
        *qdst = out.q.back().view();
        const auto& deq = out.f.emplace_back(dequantize(*qdst));
        *fdst = WeightView{DType::F32, deq.data(), src->rows, src->cols};
      }
      m.experts->release(int(l), e);
      out.qt.back().push_back(qw);
      out.ft.back().push_back(fw);
    }
  }
  return out;
}

// Fixture `name` twice: with every routed expert quantized to `dtype` (q: the GPU runs it) and
// with the same values dequantized to F32 (f: the CPU reference).
struct QuantizedPair {
  QuantizedExperts qe;
  Model q, f;
};

inline std::unique_ptr<QuantizedPair> quantized_pair(const std::string& name, DType dtype) {
  auto p = std::make_unique<QuantizedPair>();
  p->q = load_hf_model(fixture_dir(name));
  p->f = load_hf_model(fixture_dir(name));
  p->qe = quantize_experts(p->q, {dtype, dtype == DType::F8E4M3 ? 0 : 32});
  p->q.experts = std::make_unique<ResidentExperts>(p->qe.qt);
  p->f.experts = std::make_unique<ResidentExperts>(p->qe.ft);
  return p;
}

}  // namespace moe::test
