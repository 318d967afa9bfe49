// A batch of (sequence, new tokens) items checked and flattened into per-token rows: what both
// engines (CPU runtime/engine.h, GPU runtime/gpu/gpu_engine.h) do before touching any state.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <vector>

#include "runtime/engine_api.h"

namespace moe {

struct BatchPlan {
  struct Item {
    SeqId seq = 0;
    int64_t row = 0;    // first row of its tokens in the flattened batch
    int64_t n = 0;      // new tokens
    int64_t start = 0;  // position of the first of them in its sequence
  };
  std::vector<Item> items;          // in batch order
  std::vector<int32_t> ids;         // [T] token ids
  std::vector<int32_t> seq;         // [T] sequence of each row
  std::vector<int32_t> pos;         // [T] position of each row in its sequence
  std::map<SeqId, int64_t> added;   // new tokens per sequence (a sequence may appear twice)
  std::vector<int64_t> logit_rows;  // rows whose logits the caller wants, in output order
  int64_t tokens() const { return int64_t(ids.size()); }
};

// Validates the batch (known sequences, no empty item, token ids in [0, vocab), lengths within
// max_len) and flattens it. `length` returns a sequence's cached length and throws
// std::invalid_argument for an unknown id. Throws std::invalid_argument with one line per
// problem; nothing is changed.
BatchPlan plan_batch(std::span<const BatchItem> batch, const std::function<int64_t(SeqId)>& length, int64_t max_len,
                     int64_t vocab);

}  // namespace moe
