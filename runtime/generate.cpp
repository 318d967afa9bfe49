#include "runtime/generate.h"

#include <algorithm>
#include <chrono>
#include <span>
#include <stdexcept>

namespace moe {

std::vector<std::vector<int32_t>> generate(InferenceEngine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                           const GenerateOptions& opts,
                                           const std::function<void(size_t, int32_t)>& on_token,
                                           GenerateStats* stats) {
  using clock = std::chrono::steady_clock;
  const size_t n = prompts.size();
  const int64_t V = engine.model().cfg.vocab_size;
  std::vector<std::vector<int32_t>> out(n), history(prompts);
  std::vector<Sampler> samplers;
  std::vector<SeqId> seqs;
  for (size_t i = 0; i < n; ++i) {
    if (prompts[i].empty()) throw std::invalid_argument("generate: empty prompt (nothing to condition on)");
    SamplingParams sp = opts.sampling;
    sp.seed += i;
    samplers.emplace_back(sp);
    seqs.push_back(engine.create_sequence());
  }
  GenerateStats st;
  std::vector<size_t> active;
  std::vector<int32_t> next(n);
  std::vector<float> row;
  auto emit = [&](const std::vector<float>& logits, const std::vector<size_t>& which) {
    std::vector<size_t> still;
    for (size_t r = 0; r < which.size(); ++r) {
      const size_t i = which[r];
      std::span<const float> l = std::span(logits).subspan(r * size_t(V), size_t(V));
      if (opts.constrain) {
        row.assign(l.begin(), l.end());
        opts.constrain(i, row);
        l = row;
      }
      const int32_t tok = samplers[i].sample(l, history[i]);
      out[i].push_back(tok);
      history[i].push_back(tok);
      next[i] = tok;
      ++st.generated_tokens;
      if (on_token) on_token(i, tok);
      const bool stop = std::find(opts.stop_ids.begin(), opts.stop_ids.end(), tok) != opts.stop_ids.end();
      if (!stop && int(out[i].size()) < opts.max_new_tokens) still.push_back(i);
    }
    return still;
  };

  if (opts.max_new_tokens > 0) {
    auto t0 = clock::now();
    std::vector<BatchItem> batch;
    std::vector<size_t> all;
    for (size_t i = 0; i < n; ++i) {
      batch.push_back({seqs[i], prompts[i], false});
      all.push_back(i);
      st.prompt_tokens += int64_t(prompts[i].size());
    }
    const auto logits = engine.forward(batch);
    st.prefill_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    active = emit(logits, all);

    t0 = clock::now();
    while (!active.empty()) {
      batch.clear();
      for (size_t i : active) batch.push_back({seqs[i], std::span<const int32_t>(&next[i], 1), false});
      active = emit(engine.forward(batch), active);
    }
    st.decode_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  }
  for (SeqId s : seqs) engine.free_sequence(s);
  if (stats) *stats = st;
  return out;
}

}  // namespace moe
