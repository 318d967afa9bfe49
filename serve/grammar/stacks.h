// The pushdown machine under the matcher (internal to serve/grammar).
//
// StackMachine: the grammar flattened into positions (each element of each alternative, then
// an end marker per alternative). Immutable.
// Stacks: interned stacks, interned sets of stacks ("states"), and the memoized step
// "state + one byte -> state". A stack node is (position, parent node); the top node's position
// is always a byte class. Two sentinel parents end every chain: kBottom (the root's caller:
// reaching it means the text is complete) and kLocal (used by the vocabulary walks that start
// from one position without knowing what lies below: reaching it means the walk left the top
// rule, a "pop"). A state is one integer, so a trie walk costs one table lookup per byte
// whatever the number of stacks (a JSON string's character class alone is a dozen).
#pragma once
#include <cstdint>
#include <memory>
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
  // Every (top position, position of the frame below it) a stack can have; kNoParent: the
  // root's frame is below.
  static constexpr uint32_t kNoParent = UINT32_MAX;
  std::vector<std::pair<uint32_t, uint32_t>> top_pairs() const;

 private:
  std::vector<Pos> pos_;
  std::vector<std::vector<uint32_t>> starts_;
  std::vector<ByteSet> sets_;
  std::vector<uint32_t> tops_;
  uint32_t root_ = 0;
};

// A set of stacks whose tops are byte classes (sorted, unique), plus whether the text may end
// here (accept) and, for the walks over kLocal, whether the last byte left the start rule (pop).
struct StepResult {
  std::vector<uint32_t> tops;
  bool accept = false;
  bool pop = false;
  bool operator==(const StepResult&) const = default;
};

// uint64 -> uint32, open addressing (the step memo is the walks' inner loop).
class FlatMap {
 public:
  FlatMap() { keys_.assign(64, kEmpty), vals_.assign(64, 0); }
  bool find(uint64_t k, uint32_t& v) const {
    for (size_t i = slot(k);; i = (i + 1) & (keys_.size() - 1)) {
      if (keys_[i] == k) {
        v = vals_[i];
        return true;
      }
      if (keys_[i] == kEmpty) return false;
    }
  }
  void insert(uint64_t k, uint32_t v);  // k must be new
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  size_t slot(uint64_t k) const { return size_t((k * 0x9E3779B97F4A7C15ull) >> 20) & (keys_.size() - 1); }
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> vals_;
  size_t size_ = 0;
};

class Stacks {
 public:
  using StateId = uint32_t;
  static constexpr uint32_t kBottom = 0;
  static constexpr uint32_t kLocal = 1;
  static constexpr StateId kDead = 0;  // no stack, not complete
  explicit Stacks(std::shared_ptr<const StackMachine> m);

  uint32_t position(uint32_t node) const { return nodes_[node].pos; }
  uint32_t parent(uint32_t node) const { return nodes_[node].parent; }
  // The state before any byte (the root's alternatives).
  StateId initial();
  // The state of one stack (a top node).
  StateId intern_one(uint32_t top);
  // A frame (position over parent node) as a node, and the state of the stack `pos` over it.
  uint32_t chain(uint32_t pos, uint32_t parent) { return intern(pos, parent); }
  StateId start_at(uint32_t pos, uint32_t parent) { return intern_one(intern(pos, parent)); }
  // State + byte -> state (memoized).
  StateId step(StateId s, uint8_t byte) {
    uint32_t v;
    if (memo_.find(uint64_t(s) * 256 + byte, v)) return v;
    return step_slow(s, byte);
  }
  const StepResult& state(StateId s) const { return states_[s]; }
  size_t node_count() const { return nodes_.size(); }

 private:
  struct Node {
    uint32_t pos, parent;
  };
  uint32_t intern(uint32_t pos, uint32_t parent);
  StateId intern_state(StepResult r);
  StateId step_slow(StateId s, uint8_t byte);
  void expand(uint32_t pos, uint32_t parent, StepResult& out);
  void expand_rule(uint32_t rule, uint32_t parent, StepResult& out);

  std::shared_ptr<const StackMachine> m_;
  std::vector<Node> nodes_;
  FlatMap node_index_;
  std::vector<StepResult> states_;
  std::unordered_map<uint64_t, std::vector<StateId>> state_index_;  // by hash
  FlatMap memo_;                // state * 256 + byte -> state
  std::vector<uint64_t> seen_;  // expansions done in the current closure (dedupe)
};

}  // namespace moe::grammar
