// Next-token sampling. Filters apply in this order: repetition penalty, temperature,
// top-k, top-p, min-p; then a draw from the seeded generator. temperature == 0 is greedy.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace moe {

struct SamplingParams {
  float temperature = 0.0f;
  int top_k = 0;                    // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off; keep tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f;  // 1: off; HF rule: divide positive logits, multiply negative
  int repetition_window = 64;       // how many recent tokens the penalty looks at (0: all)
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);  // throws std::invalid_argument on out-of-range values
  // history: the sequence's tokens so far (prompt + generated), for the repetition penalty.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

 private:
  int32_t draw_all(float wmax, float inv_t);  // no top-k / top-p / min-p: the whole distribution

  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<float> work_, prob_;
  std::vector<double> block_sum_;
  std::vector<int32_t> order_;
};

int32_t argmax(std::span<const float> logits);

}  // namespace moe
