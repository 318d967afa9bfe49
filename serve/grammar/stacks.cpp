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

Stacks::Stacks(std::shared_ptr<const StackMachine> m) : m_(std::move(m)) {
  nodes_.push_back({UINT32_MAX, UINT32_MAX});  // kBottom
  nodes_.push_back({UINT32_MAX, UINT32_MAX});  // kLocal
}

uint32_t Stacks::intern(uint32_t pos, uint32_t parent) {
  const uint64_t key = (uint64_t(pos) << 32) | parent;
  auto [it, fresh] = index_.try_emplace(key, uint32_t(nodes_.size()));
  if (fresh) nodes_.push_back({pos, parent});
  return it->second;
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

StepResult Stacks::initial() {
  StepResult r;
  seen_.clear();
  expand_rule(m_->root(), kBottom, r);
  normalize(r);
  return r;
}

const StepResult& Stacks::advance(uint32_t node, uint8_t byte) {
  const uint64_t key = uint64_t(node) * 256 + byte;
  if (auto it = memo_.find(key); it != memo_.end()) return results_[it->second];
  StepResult r;
  const uint32_t pos = nodes_[node].pos;
  if (m_->set(pos).has(byte)) {
    seen_.clear();
    expand(pos + 1, nodes_[node].parent, r);
    normalize(r);
  }
  memo_.emplace(key, uint32_t(results_.size()));
  results_.push_back(std::move(r));
  return results_.back();
}

const StepResult* Stacks::step(const std::vector<uint32_t>& tops, uint8_t byte, StepResult& scratch) {
  if (tops.size() == 1) return &advance(tops[0], byte);
  advance_set(tops, byte, scratch);
  return &scratch;
}

void Stacks::advance_set(const std::vector<uint32_t>& tops, uint8_t byte, StepResult& out) {
  out.tops.clear();
  out.accept = out.pop = false;
  if (tops.size() == 1) {
    const StepResult& r = advance(tops[0], byte);
    out.tops = r.tops;
    out.accept = r.accept;
    out.pop = r.pop;
    return;
  }
  for (uint32_t t : tops) {
    const StepResult& r = advance(t, byte);
    out.tops.insert(out.tops.end(), r.tops.begin(), r.tops.end());
    out.accept |= r.accept;
    out.pop |= r.pop;
  }
  normalize(out);
}

}  // namespace moe::grammar
