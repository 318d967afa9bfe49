// How Engine::moe() cuts a layer's experts into chunks, each acquired at once and run together
// (cpu::swiglu_ffn_many: two parallel sections per chunk, each ending when its slower thread
// does). Missing experts go top_k at a time: a tiered source reads a chunk's misses in one
// batch, and a budget that holds one token's experts always holds a chunk. Resident experts
// need no room, so they go in chunks of up to max_rows token rows: a 16-sequence decode step
// of the 12-layer Qwen3-30B-A3B pack ran about 10 chunks of 8 per layer where one does.
#pragma once
#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

namespace moe {

// rows[i]: the tokens routed to the i-th expert in run order, whose first n_resident are
// resident. Returns chunk boundaries: 0 first, rows.size() last. A resident chunk passes
// max_rows only when one expert alone does.
inline std::vector<size_t> expert_chunk_bounds(std::span<const size_t> rows, size_t n_resident, size_t top_k,
                                               size_t max_rows) {
  std::vector<size_t> bounds{0};
  size_t in_chunk = 0;
  for (size_t i = 0; i < n_resident; ++i) {
    if (i > bounds.back() && in_chunk + rows[i] > max_rows) bounds.push_back(i), in_chunk = 0;
    in_chunk += rows[i];
  }
  if (n_resident > bounds.back()) bounds.push_back(n_resident);
  for (size_t i = n_resident; i < rows.size(); i += std::max<size_t>(1, top_k))
    bounds.push_back(std::min(rows.size(), i + std::max<size_t>(1, top_k)));
  return bounds;
}

}  // namespace moe
