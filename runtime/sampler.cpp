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

  // Weights exp((l - max) / T). A 150k vocabulary is sampled per token of every sequence on the
  // scheduler's thread: float exp and no full sort keep that to one pass or two.
  const float wmax = *std::max_element(work_.begin(), work_.end());
  const float inv_t = 1.0f / p_.temperature;
  const bool cuts = p_.top_p < 1.0f || p_.min_p > 0.0f;
  if (p_.top_k == 0 && !cuts) {  // the whole distribution, drawn in id order
    prob_.resize(size_t(n));
    double total = 0;
    for (int32_t i = 0; i < n; ++i) total += (prob_[size_t(i)] = std::exp((work_[size_t(i)] - wmax) * inv_t));
    const double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
    double acc = 0;
    int32_t last = 0;
    for (int32_t i = 0; i < n; ++i) {
      if (prob_[size_t(i)] <= 0.0f) continue;  // masked (-inf) or underflowed: never drawn
      acc += prob_[size_t(i)];
      last = i;
      if (r < acc) return i;
    }
    return last;
  }

  // Candidates sorted by logit, best first (ties by id for determinism): the top-k, or without
  // a top-k, a best prefix widened until it holds the top-p / min-p cut.
  order_.resize(size_t(n));
  std::iota(order_.begin(), order_.end(), 0);
  auto better = [&](int32_t a, int32_t b) { return work_[size_t(a)] > work_[size_t(b)] || (work_[size_t(a)] == work_[size_t(b)] && a < b); };
  const size_t keep_k = p_.top_k > 0 ? std::min<size_t>(size_t(p_.top_k), size_t(n)) : size_t(n);
  // Normaliser: over the top-k, or over everything.
  double norm = 0;
  if (p_.top_k == 0)
    for (int32_t i = 0; i < n; ++i) norm += std::exp((work_[size_t(i)] - wmax) * inv_t);
  std::vector<double> prob;
  size_t cand = p_.top_k > 0 ? keep_k : std::min<size_t>(size_t(n), 256);
  size_t keep = 0;
  for (;;) {
    if (cand < size_t(n)) std::nth_element(order_.begin(), order_.begin() + std::ptrdiff_t(cand), order_.end(), better);
    std::sort(order_.begin(), order_.begin() + std::ptrdiff_t(cand), better);
    prob.resize(cand);
    for (size_t i = 0; i < cand; ++i) prob[i] = std::exp((work_[size_t(order_[i])] - wmax) * inv_t);
    if (p_.top_k > 0) {
      norm = 0;
      for (double q : prob) norm += q;
    }
    for (auto& q : prob) q /= norm;
    // The cuts, within this prefix; `found` once the prefix is known to contain them.
    keep = cand;
    bool found = cand == keep_k;
    if (p_.top_p < 1.0f) {
      double cum = 0;
      for (size_t i = 0; i < cand; ++i) {
        cum += prob[i];
        if (cum >= p_.top_p) {
          keep = i + 1;
          found = true;
          break;
        }
      }
    }
    if (p_.min_p > 0.0f) {
      const double floor = p_.min_p * prob[0];
      size_t m = 1;
      while (m < keep && prob[m] >= floor) ++m;
      if (m < cand) found = true;  // a candidate below the floor: every later one is too
      keep = m;
    }
    if (found) break;
    cand = std::min<size_t>(size_t(n), cand * 16);
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
