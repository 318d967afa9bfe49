#include "runtime/sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace moe {

namespace {

// Maximum by 8 independent lanes (what the compiler vectorizes), then across them.
float max_of(std::span<const float> v) {
  float m[8];
  std::fill(m, m + 8, -std::numeric_limits<float>::infinity());
  size_t i = 0;
  for (; i + 8 <= v.size(); i += 8)
    for (int j = 0; j < 8; ++j) m[j] = std::max(m[j], v[i + size_t(j)]);
  for (; i < v.size(); ++i) m[0] = std::max(m[0], v[i]);
  return *std::max_element(m, m + 8);
}

}  // namespace

int32_t argmax(std::span<const float> logits) {
  // The first id holding the maximum, as std::max_element gives, in two passes the compiler
  // vectorizes; a lone NaN is skipped unless every logit is NaN.
  const float m = max_of(logits);
  for (size_t i = 0; i < logits.size(); ++i)
    if (logits[i] == m) return int32_t(i);
  return 0;
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

  // Weights exp((l - max) / T). A 150k vocabulary is sampled per token of every sequence: float
  // exp, independent partial maxima and sums (a single running max or double sum is a chain of
  // dependent adds, 80% of the draw's time in a batch-256 job), and no full sort.
  const float wmax = max_of(work_);
  const float inv_t = 1.0f / p_.temperature;
  const bool cuts = p_.top_p < 1.0f || p_.min_p > 0.0f;
  if (p_.top_k == 0 && !cuts) return draw_all(wmax, inv_t);

  // Candidates sorted by logit, best first (ties by id for determinism): the top-k, or without
  // a top-k, a best prefix widened until it holds the top-p / min-p cut.
  order_.resize(size_t(n));
  std::iota(order_.begin(), order_.end(), 0);
  auto better = [&](int32_t a, int32_t b) { return work_[size_t(a)] > work_[size_t(b)] || (work_[size_t(a)] == work_[size_t(b)] && a < b); };
  const size_t keep_k = p_.top_k > 0 ? std::min<size_t>(size_t(p_.top_k), size_t(n)) : size_t(n);
  // Normaliser: over the top-k, or over everything.
  double norm = 0;
  if (p_.top_k == 0) {
    double part[4] = {0, 0, 0, 0};
    int32_t i = 0;
    for (; i + 4 <= n; i += 4)
      for (int32_t j = 0; j < 4; ++j) part[j] += std::exp((work_[size_t(i + j)] - wmax) * inv_t);
    for (; i < n; ++i) part[0] += std::exp((work_[size_t(i)] - wmax) * inv_t);
    norm = (part[0] + part[1]) + (part[2] + part[3]);
  }
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

// The whole distribution, drawn in id order. Weights are summed by blocks of kDrawBlock, each
// block's sum by 4 independent partials; the draw finds its block from the block sums, then its
// token inside the block. The block sums and the total add up in the same order, so the search
// always lands; a token of weight 0 (masked, or underflowed) is never drawn.
int32_t Sampler::draw_all(float wmax, float inv_t) {
  constexpr size_t kDrawBlock = 256;
  const size_t n = work_.size(), nblk = (n + kDrawBlock - 1) / kDrawBlock;
  prob_.resize(n);
  block_sum_.resize(nblk);
  double total = 0;
  for (size_t b = 0; b < nblk; ++b) {
    const size_t i0 = b * kDrawBlock, i1 = std::min(n, i0 + kDrawBlock);
    double part[4] = {0, 0, 0, 0};
    size_t i = i0;
    for (; i + 4 <= i1; i += 4)
      for (size_t j = 0; j < 4; ++j) part[j] += (prob_[i + j] = std::exp((work_[i + j] - wmax) * inv_t));
    for (; i < i1; ++i) part[0] += (prob_[i] = std::exp((work_[i] - wmax) * inv_t));
    block_sum_[b] = (part[0] + part[1]) + (part[2] + part[3]);
    total += block_sum_[b];
  }
  const double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  double acc = 0;
  size_t b = 0;
  for (; b + 1 < nblk; ++b) {
    if (r < acc + block_sum_[b]) break;
    acc += block_sum_[b];
  }
  for (; b < nblk; ++b) {  // the block the draw fell in; the next ones only if rounding left it short
    int32_t last = -1;
    const size_t i0 = b * kDrawBlock, i1 = std::min(n, i0 + kDrawBlock);
    for (size_t i = i0; i < i1; ++i) {
      if (prob_[i] <= 0.0f) continue;
      acc += prob_[i];
      last = int32_t(i);
      if (r < acc) return last;
    }
    if (last >= 0 && b + 1 == nblk) return last;
  }
  for (size_t i = n; i-- > 0;)  // rounding past the last block: the last token that can be drawn
    if (prob_[i] > 0.0f) return int32_t(i);
  return argmax(work_);
}

}  // namespace moe
