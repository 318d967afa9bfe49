#include "serve/scheduler/token_sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>

namespace moe::serve {
namespace {

uint64_t pick_seed(const SamplingOptions& o) {
  if (o.seed) return *o.seed;
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}

SamplingParams params(const SamplingOptions& o, uint64_t seed) {
  auto in = [](float v, float lo, float hi) { return std::isfinite(v) && v >= lo && v <= hi; };
  if (!in(o.presence_penalty, -2, 2)) throw std::invalid_argument("presence_penalty must be in [-2, 2]");
  if (!in(o.frequency_penalty, -2, 2)) throw std::invalid_argument("frequency_penalty must be in [-2, 2]");
  SamplingParams p;
  p.temperature = o.temperature;
  p.top_k = o.top_k;
  p.top_p = o.top_p;
  p.min_p = o.min_p;
  p.seed = seed;
  return p;  // moe::Sampler checks the rest
}

}  // namespace

TokenSampler::TokenSampler(const SamplingOptions& o, int64_t vocab, std::shared_ptr<LogitsProcessor> constraint)
    : o_(o), vocab_(vocab), constraint_(std::move(constraint)), seed_(pick_seed(o)), sampler_(params(o, seed_)) {
  for (const auto& [id, bias] : o_.logit_bias) {
    if (id < 0 || id >= vocab_)
      throw std::invalid_argument(fmt::format("logit_bias: token id {} is outside the vocabulary [0, {})", id, vocab_));
    if (!std::isfinite(bias) || bias < -100 || bias > 100)
      throw std::invalid_argument(fmt::format("logit_bias: the bias of token {} must be in [-100, 100]", id));
  }
}

int32_t TokenSampler::sample(std::span<const float> logits) {
  work_.assign(logits.begin(), logits.end());
  for (const auto& [id, bias] : o_.logit_bias) work_[size_t(id)] += bias;
  if (o_.presence_penalty != 0 || o_.frequency_penalty != 0)
    for (const auto& [id, n] : counts_)
      work_[size_t(id)] -= float(n) * o_.frequency_penalty + (n > 0 ? o_.presence_penalty : 0.0f);
  if (constraint_) constraint_->apply(work_);
  const int32_t t = sampler_.sample(work_, {});
  ++counts_[t];
  if (constraint_) constraint_->accept(t);
  return t;
}

TokenLogprob token_logprob(std::span<const float> logits, int32_t token, int top) {
  float mx = -std::numeric_limits<float>::infinity();
  for (float v : logits) mx = std::max(mx, v);
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v) - mx);
  const float lse = mx + float(std::log(sum));
  TokenLogprob r;
  r.token = token;
  r.logprob = logits[size_t(token)] - lse;
  if (top > 0) {
    std::vector<int32_t> idx(logits.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = int32_t(i);
    const size_t k = std::min(size_t(top), idx.size());
    std::partial_sort(idx.begin(), idx.begin() + ptrdiff_t(k), idx.end(), [&](int32_t a, int32_t b) {
      return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
    });
    for (size_t i = 0; i < k; ++i) r.top.emplace_back(idx[i], logits[size_t(idx[i])] - lse);
  }
  return r;
}

}  // namespace moe::serve
