// The pushdown machine under the matcher (internal to serve/grammar).
//
// StackMachine: the grammar flattened into positions (each element of each alternative, then
// an end marker per alternative). Immutable.
// Stacks: interned stacks over it and the memoized step "top stack + one byte -> stacks".
// A stack node is (position, parent node); the top node's position is always a byte class.
// Two sentinel parents end every chain: kBottom (the root's caller: reaching it means the text
// is complete) and kLocal (used by compile-time walks that start from one position without
// knowing what lies below: reaching it means the walk left the top rule, a "pop").
#pragma once
#include <cstdint>
#include <memory>
#include <deque>
#include <unordered_map>
#include <vector>

#include "serve/grammar/grammar.h"

namespace moe::grammar {

class StackMachine {
 public:
  explicit StackMachine(const Grammar& g);
  enum Kind : uint8_t { kBytes, kRule, kEnd };
  struct Pos {
    Kind kind;
    uint32_t arg;  // kBytes: byte-set index; kRule: rule id
  };
  const Pos& pos(uint32_t p) const { return pos_[p]; }
  const ByteSet& set(uint32_t p) const { return sets_[pos_[p].arg]; }
  const std::vector<uint32_t>& starts(uint32_t rule) const { return starts_[rule]; }
  uint32_t root() const { return root_; }
  size_t positions() const { return pos_.size(); }
  // Byte-class positions of rules reachable from the root: those that can be on top.
  const std::vector<uint32_t>& top_positions() const { return tops_; }

 private:
  std::vector<Pos> pos_;
  std::vector<std::vector<uint32_t>> starts_;
  std::vector<ByteSet> sets_;
  std::vector<uint32_t> tops_;
  uint32_t root_ = 0;
};

// The result of a step: stacks whose top is a byte class, plus whether the text may end here
// (accept) and, for local walks, whether the start position's rule was left (pop).
struct StepResult {
  std::vector<uint32_t> tops;
  bool accept = false;
  bool pop = false;
};

class Stacks {
 public:
  static constexpr uint32_t kBottom = 0;
  static constexpr uint32_t kLocal = 1;
  explicit Stacks(std::shared_ptr<const StackMachine> m);

  const StackMachine& machine() const { return *m_; }
  uint32_t position(uint32_t node) const { return nodes_[node].pos; }
  uint32_t parent(uint32_t node) const { return nodes_[node].parent; }
  // The stacks before any byte (the root's alternatives).
  StepResult initial();
  // The one-node stack of a byte-class position over kLocal.
  uint32_t local(uint32_t pos) { return intern(pos, kLocal); }
  // Top node + byte -> the result (memoized; the reference stays valid until the next call).
  const StepResult& advance(uint32_t node, uint8_t byte);
  // Advances a whole state (sorted, unique tops) by a byte into `out` (sorted, unique).
  void advance_set(const std::vector<uint32_t>& tops, uint8_t byte, StepResult& out);
  // The same without a copy when the state has one top: the memoized result itself (stable),
  // else `scratch` filled with the union.
  const StepResult* step(const std::vector<uint32_t>& tops, uint8_t byte, StepResult& scratch);
  size_t node_count() const { return nodes_.size(); }

 private:
  struct Node {
    uint32_t pos, parent;
  };
  uint32_t intern(uint32_t pos, uint32_t parent);
  void expand(uint32_t pos, uint32_t parent, StepResult& out);
  void expand_rule(uint32_t rule, uint32_t parent, StepResult& out);

  std::shared_ptr<const StackMachine> m_;
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, uint32_t> index_;
  std::unordered_map<uint64_t, uint32_t> memo_;  // node * 256 + byte -> results_ index
  std::deque<StepResult> results_;  // a deque: references stay valid as it grows
  std::vector<uint64_t> seen_;  // expansions done in the current closure (dedupe)
  StepResult scratch_;
};

}  // namespace moe::grammar
