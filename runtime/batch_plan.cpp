#include "runtime/batch_plan.h"

#include <fmt/format.h>

#include <stdexcept>

namespace moe {

BatchPlan plan_batch(std::span<const BatchItem> batch, const std::function<int64_t(SeqId)>& length, int64_t max_len,
                     int64_t vocab) {
  BatchPlan p;
  for (const BatchItem& it : batch) {
    const int64_t cached = length(it.seq);
    if (it.tokens.empty()) throw std::invalid_argument(fmt::format("sequence {}: no tokens to process", it.seq));
    const int64_t start = cached + p.added[it.seq], n = int64_t(it.tokens.size());
    if (start + n > max_len)
      throw std::invalid_argument(
          fmt::format("sequence {}: {} tokens exceed the maximum length {}", it.seq, start + n, max_len));
    p.items.push_back({it.seq, p.tokens(), n, start});
    for (int64_t i = 0; i < n; ++i) {
      const int32_t id = it.tokens[size_t(i)];
      if (id < 0 || id >= vocab)
        throw std::invalid_argument(fmt::format("token id {} is outside the vocabulary [0, {})", id, vocab));
      if (it.all_logits || i == n - 1) p.logit_rows.push_back(p.tokens());
      p.ids.push_back(id);
      p.seq.push_back(it.seq);
      p.pos.push_back(int32_t(start + i));
    }
    p.added[it.seq] += n;
  }
  return p;
}

}  // namespace moe
