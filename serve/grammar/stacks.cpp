#include "serve/grammar/stacks.h"

#include <algorithm>

namespace moe::grammar {

StackMachine::StackMachine(const Grammar& g) : sets_(g.byte_sets), root_(g.root) {
  starts_.resize(g.rules.size());
  for (size_t r = 0; r < g.rules.size(); ++r) {
    for (const auto& a : g.rules[r].alternatives) {
      starts_[r].push_back(uint32_t(pos_.size()));
      for (const auto& el : a)
        pos_.push_back({el.kind == Element::Kind::bytes ? kBytes : kRule, el.index});
      pos_.push_back({kEnd, uint32_t(r)});
    }
  }
  // Reachable rules from the root, then their byte-class positions.
  std::vector<bool> seen(g.rules.size(), false);
  std::vector<uint32_t> todo{root_};
  seen[root_] = true;
  while (!todo.empty()) {
    uint32_t r = todo.back();
    todo.pop_back();
    for (const auto& a : g.rules[r].alternatives)
      for (const auto& el : a)
        if (el.kind == Element::Kind::rule && !seen[el.index]) {
          seen[el.index] = true;
          todo.push_back(el.index);
        }
  }
  for (size_t r = 0; r < g.rules.size(); ++r) {
    if (!seen[r]) continue;
    for (uint32_t s : starts_[r])
      for (uint32_t p = s; pos_[p].kind != kEnd; ++p)
        if (pos_[p].kind == kBytes) tops_.push_back(p);
  }
  std::sort(tops_.begin(), tops_.end());
}

std::vector<std::pair<uint32_t, uint32_t>> StackMachine::top_pairs() const {
  // Which frames can lie right below a rule's positions: the continuation after each call that
  // is not last in its alternative; for a tail call, whatever lies below the caller; nothing
  // (kNoParent) for the root.
  const size_t n = starts_.size();
  std::vector<std::vector<uint32_t>> below(n);
  std::vector<std::vector<uint32_t>> tail_callers(n);  // rule -> rules that tail-call it
  auto add = [](std::vector<uint32_t>& v, uint32_t x) {
    if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
  };
  add(below[root_], kNoParent);
  std::vector<uint32_t> rule_of(pos_.size());
  for (size_t r = 0; r < n; ++r)
    for (uint32_t s : starts_[r])
      for (uint32_t p = s;; ++p) {
        rule_of[p] = uint32_t(r);
        if (pos_[p].kind == kEnd) break;
      }
  for (uint32_t p = 0; p < pos_.size(); ++p) {
    if (pos_[p].kind != kRule) continue;
    if (pos_[p + 1].kind == kEnd)
      add(tail_callers[pos_[p].arg], rule_of[p]);
    else
      add(below[pos_[p].arg], p + 1);
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n; ++r)
      for (uint32_t c : tail_callers[r])
        for (uint32_t q : below[c])
          if (std::find(below[r].begin(), below[r].end(), q) == below[r].end()) {
            below[r].push_back(q);
            changed = true;
          }
  }
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (uint32_t p : tops_)
    for (uint32_t q : below[rule_of[p]]) out.emplace_back(p, q);
  return out;
}

void FlatMap::insert(uint64_t k, uint32_t v) {
  if ((size_ + 1) * 2 > keys_.size()) {  // grow at half full
    std::vector<uint64_t> keys(keys_.size() * 2, kEmpty);
    std::vector<uint32_t> vals(keys.size(), 0);
    std::swap(keys, keys_);
    std::swap(vals, vals_);
    for (size_t j = 0; j < keys.size(); ++j)
      if (keys[j] != kEmpty) {
        size_t i = slot(keys[j]);
        while (keys_[i] != kEmpty) i = (i + 1) & (keys_.size() - 1);
        keys_[i] = keys[j];
        vals_[i] = vals[j];
      }
  }
  size_t i = slot(k);
  while (keys_[i] != kEmpty) i = (i + 1) & (keys_.size() - 1);
  keys_[i] = k;
  vals_[i] = v;
  ++size_;
}

Stacks::Stacks(std::shared_ptr<const StackMachine> m) : m_(std::move(m)) {
  nodes_.push_back({UINT32_MAX, UINT32_MAX});  // kBottom
  nodes_.push_back({UINT32_MAX, UINT32_MAX});  // kLocal
  intern_state(StepResult{});                  // kDead
}

uint32_t Stacks::intern(uint32_t pos, uint32_t parent) {
  const uint64_t key = (uint64_t(pos) << 32) | parent;
  uint32_t id;
  if (node_index_.find(key, id)) return id;
  id = uint32_t(nodes_.size());
  nodes_.push_back({pos, parent});
  node_index_.insert(key, id);
  return id;
}

Stacks::StateId Stacks::intern_state(StepResult r) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t(r.accept) << 1) ^ uint64_t(r.pop);
  for (uint32_t t : r.tops) h = (h ^ t) * 1099511628211ull;
  auto& bucket = state_index_[h];
  for (StateId s : bucket)
    if (states_[s] == r) return s;
  const StateId id = StateId(states_.size());
  states_.push_back(std::move(r));
  bucket.push_back(id);
  return id;
}
void Stacks::expand(uint32_t pos, uint32_t parent, StepResult& out) {
  const uint64_t key = (uint64_t(pos) << 32) | parent;
  if (std::find(seen_.begin(), seen_.end(), key) != seen_.end()) return;
  seen_.push_back(key);
  const StackMachine::Pos& p = m_->pos(pos);
  switch (p.kind) {
    case StackMachine::kBytes: out.tops.push_back(intern(pos, parent)); return;
    case StackMachine::kEnd:
      if (parent == kBottom) {
        out.accept = true;
      } else if (parent == kLocal) {
        out.pop = true;
      } else {
        expand(nodes_[parent].pos, nodes_[parent].parent, out);
      }
      return;
    case StackMachine::kRule: {
      // A rule called last in its alternative returns straight to our caller (a tail call).
      const uint32_t next = pos + 1;
      const uint32_t ret = m_->pos(next).kind == StackMachine::kEnd ? parent : intern(next, parent);
      expand_rule(p.arg, ret, out);
      return;
    }
  }
}

void Stacks::expand_rule(uint32_t rule, uint32_t parent, StepResult& out) {
  for (uint32_t s : m_->starts(rule)) expand(s, parent, out);
}

namespace {
void normalize(StepResult& r) {
  std::sort(r.tops.begin(), r.tops.end());
  r.tops.erase(std::unique(r.tops.begin(), r.tops.end()), r.tops.end());
}
}  // namespace

Stacks::StateId Stacks::initial() {
  StepResult r;
  seen_.clear();
  expand_rule(m_->root(), kBottom, r);
  normalize(r);
  return intern_state(std::move(r));
}

Stacks::StateId Stacks::intern_one(uint32_t top) {
  StepResult r;
  r.tops.push_back(top);
  return intern_state(std::move(r));
}

Stacks::StateId Stacks::step_slow(StateId s, uint8_t byte) {
  StepResult r;
  for (uint32_t top : states_[s].tops) {
    const uint32_t pos = nodes_[top].pos;
    if (!m_->set(pos).has(byte)) continue;
    seen_.clear();
    expand(pos + 1, nodes_[top].parent, r);
  }
  normalize(r);
  const StateId next = intern_state(std::move(r));
  memo_.insert(uint64_t(s) * 256 + byte, next);
  return next;
}

}  // namespace moe::grammar
