#include "runtime/sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace moe {

int32_t argmax(std::span<const float> logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {
  if (!(p.temperature >= 0)) throw std::invalid_argument(fmt::format("temperature must be >= 0, got {}", p.temperature));
  if (p.top_k < 0) throw std::invalid_argument(fmt::format("top-k must be >= 0, got {}", p.top_k));
  if (!(p.top_p > 0 && p.top_p <= 1)) throw std::invalid_argument(fmt::format("top-p must be in (0, 1], got {}", p.top_p));
  if (!(p.min_p >= 0 && p.min_p <= 1)) throw std::invalid_argument(fmt::format("min-p must be in [0, 1], got {}", p.min_p));
  if (!(p.repetition_penalty > 0))
    throw std::invalid_argument(fmt::format("repetition penalty must be > 0, got {}", p.repetition_penalty));
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const int32_t n = int32_t(logits.size());
  work_.assign(logits.begin(), logits.end());
  if (p_.repetition_penalty != 1.0f) {
    const size_t from = p_.repetition_window > 0 && history.size() > size_t(p_.repetition_window)
                            ? history.size() - size_t(p_.repetition_window) : 0;
    std::vector<int32_t> seen(history.begin() + std::ptrdiff_t(from), history.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= n) continue;
      float& l = work_[size_t(id)];
      l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
    }
  }
  if (p_.temperature == 0.0f) return argmax(work_);

  // Candidates sorted by logit, best first (ties by id for determinism).
  order_.resize(size_t(n));
  std::iota(order_.begin(), order_.end(), 0);
  const size_t keep_k = p_.top_k > 0 ? std::min<size_t>(size_t(p_.top_k), size_t(n)) : size_t(n);
  auto better = [&](int32_t a, int32_t b) { return work_[size_t(a)] > work_[size_t(b)] || (work_[size_t(a)] == work_[size_t(b)] && a < b); };
  std::partial_sort(order_.begin(), order_.begin() + std::ptrdiff_t(keep_k), order_.end(), better);
  order_.resize(keep_k);

  std::vector<double> prob(keep_k);
  const double mx = work_[size_t(order_[0])] / p_.temperature;
  double sum = 0;
  for (size_t i = 0; i < keep_k; ++i) sum += (prob[i] = std::exp(work_[size_t(order_[i])] / p_.temperature - mx));
  for (auto& q : prob) q /= sum;

  size_t keep = keep_k;
  if (p_.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < keep_k; ++i) {
      cum += prob[i];
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p_.min_p > 0.0f) {
    const double floor = p_.min_p * prob[0];
    size_t m = 1;
    while (m < keep && prob[m] >= floor) ++m;
    keep = m;
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += prob[i];
  const double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += prob[i];
    if (r < acc) return order_[i];
  }
  return order_[keep - 1];
}

}  // namespace moe
