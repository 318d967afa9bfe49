#include "serve/grammar/matcher.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <list>
#include <unordered_map>

#include "serve/grammar/stacks.h"
#include "serve/grammar/token_vocab.h"

namespace moe::grammar {

// What one compile-time walk from a position learned (see matcher.h).
struct PositionCache {
  std::vector<uint64_t> bits;   // accepted in any context, as a bitmask (dense positions) ...
  std::vector<int32_t> ids;     // ... or as a list (sparse ones)
  std::vector<uint32_t> skip;   // trie nodes whose subtree is decided (all accepted, or all
                                // rejected without leaving the rule): sorted, maximal
  bool uncertain = false;       // some token leaves the top rule part-way: walk per step
};

namespace {

void set_bit(std::span<uint64_t> m, int32_t id) { m[size_t(id) >> 6] |= uint64_t(1) << (id & 63); }

struct Frame {
  uint32_t node = 0;
  bool acc = true;        // every token of the subtree so far is accepted
  bool rej = true;        // every token of the subtree so far is rejected, none after a pop
  bool popped = false;    // the walk left the start rule at or before this node
  size_t cand_begin = 0;  // decided nodes of this subtree start here
  Stacks::StateId state = Stacks::kDead;
};

// One walk of the vocabulary trie from `start`: a top position over its parent frame over
// kLocal, or over kBottom (nothing below: every token is decided).
PositionCache walk_position(Stacks& st, const TokenVocab& v, Stacks::StateId start) {
  PositionCache c;
  std::vector<int32_t> accepted;
  std::vector<uint32_t> decided;
  std::vector<Frame> frames(v.max_depth() + 1);  // frames[d]: the node at depth d on the path
  frames[0].state = start;
  size_t depth = 0;  // frames[1..depth] are open
  auto settle = [&](uint32_t node, bool acc, bool rej, Frame& up) {
    if (acc || rej) {
      decided.push_back(node);
      up.acc = up.acc && acc;
      up.rej = up.rej && rej;
    } else {
      up.acc = up.rej = false;
    }
  };
  auto close = [&](size_t d) {  // finish the frames deeper than d
    for (; depth > d; --depth) {
      Frame& f = frames[depth];
      if (f.acc || f.rej) decided.resize(f.cand_begin);  // the whole subtree is one decided node
      settle(f.node, f.acc, f.rej, frames[depth - 1]);
    }
  };
  for (uint32_t i = 0; i < v.nodes();) {
    const TokenVocab::Node& n = v.node(i);
    close(n.depth - 1);
    Frame& up = frames[n.depth - 1];
    const Stacks::StateId next = st.step(up.state, n.byte);
    const StepResult* r = &st.state(next);
    const bool ok = !r->tops.empty() || r->pop || r->accept;  // a pop on the last byte: accepted anywhere
    bool acc = true, rej = true;
    if (n.token_count) {
      if (ok) {
        for (uint16_t k = 0; k < n.token_count; ++k) accepted.push_back(v.tokens_at(i)[k]);
        rej = false;
      } else {
        acc = false;
        rej = !up.popped;
        c.uncertain |= up.popped;
      }
    }
    const bool popped = up.popped || r->pop;
    if (r->tops.empty()) {
      if (n.subtree_end != i + 1) {  // tokens below: rejected, or uncertain after a pop
        acc = false;
        rej = rej && !popped;
        c.uncertain |= popped;
      }
      settle(i, acc, rej, up);
      i = n.subtree_end;
      continue;
    }
    Frame& f = frames[n.depth];
    f.node = i;
    f.acc = acc;
    f.rej = rej;
    f.popped = popped;
    f.cand_begin = decided.size();
    f.state = next;
    depth = n.depth;
    ++i;
  }
  close(0);
  c.skip = std::move(decided);
  const size_t words = (size_t(v.size()) + 63) / 64;
  if (accepted.size() * 32 > size_t(v.size())) {
    c.bits.assign(words, 0);
    for (int32_t id : accepted) set_bit(c.bits, id);
  } else {
    std::sort(accepted.begin(), accepted.end());
    c.ids = std::move(accepted);
  }
  return c;
}

constexpr size_t kMaskCacheBytes = size_t(32) << 20;
// Past this many interned stacks, a runtime with no live matcher starts afresh (recursive
// grammars can intern new stacks for as long as they generate).
constexpr size_t kMaxSharedNodes = size_t(4) << 20;

}  // namespace

// The mutable part shared by a compiled grammar's matchers (under CompiledGrammar::mu_).
struct SharedRuntime {
  explicit SharedRuntime(std::shared_ptr<const StackMachine> m, size_t depth) : stacks(m), walker(m) {
    initial = stacks.initial();
    frames.resize(depth + 1);
  }
  Stacks stacks;
  Stacks walker;  // the stacks of the per-position walks (over kLocal)
  Stacks::StateId initial = Stacks::kDead;
  // By (top position, parent position): walked the first time a stack has them on top.
  std::unordered_map<uint64_t, std::unique_ptr<PositionCache>> caches;
  WalkStats walks;
  // Masks by state, least recently used dropped.
  std::list<std::pair<Stacks::StateId, std::vector<uint64_t>>> lru;  // front: most recent
  std::unordered_map<Stacks::StateId, decltype(lru)::iterator> by_state;
  std::vector<Frame> frames;
  size_t live = 0;  // matchers using it
};

namespace {
// The cache of a top position with a given parent position (kNoParent: the root's frame).
// Two frames, not one: the rule on top is often tiny (a bounded string's count, a character),
// and a walk that knows what follows it (the closing quote) decides most tokens itself.
constexpr uint32_t kNoParent = UINT32_MAX;

const PositionCache& cache_for(SharedRuntime& rt, const TokenVocab& v, uint32_t p, uint32_t q) {
  auto& slot = rt.caches[(uint64_t(p) << 32) | q];
  if (!slot) {
    const auto t0 = std::chrono::steady_clock::now();
    Stacks& w = rt.walker;
    const Stacks::StateId start = q == kNoParent ? w.start_at(p, Stacks::kBottom) : w.start_at(p, w.chain(q, Stacks::kLocal));
    slot = std::make_unique<PositionCache>(walk_position(w, v, start));
    ++rt.walks.walked;
    rt.walks.uncertain += slot->uncertain;
    rt.walks.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return *slot;
}

const PositionCache& cache_of_top(SharedRuntime& rt, const TokenVocab& v, uint32_t top) {
  const uint32_t parent = rt.stacks.parent(top);
  return cache_for(rt, v, rt.stacks.position(top), parent == Stacks::kBottom ? kNoParent : rt.stacks.position(parent));
}
}  // namespace

CompiledGrammar::~CompiledGrammar() = default;

std::shared_ptr<const CompiledGrammar> CompiledGrammar::compile(Grammar g, std::shared_ptr<const TokenVocab> vocab) {
  const auto t0 = std::chrono::steady_clock::now();
  auto cg = std::shared_ptr<CompiledGrammar>(new CompiledGrammar());
  auto machine = std::make_shared<const StackMachine>(g);
  cg->grammar_ = std::make_shared<const Grammar>(std::move(g));
  cg->vocab_ = std::move(vocab);
  cg->positions_ = machine;
  cg->stats_.positions = machine->top_positions().size();
  cg->stats_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return cg;
}

SharedRuntime& CompiledGrammar::runtime() const {
  if (!rt_) rt_ = std::make_unique<SharedRuntime>(positions_, vocab_->max_depth());
  return *rt_;
}

WalkStats CompiledGrammar::walk_stats() const {
  std::lock_guard lk(mu_);
  if (!rt_) return {};
  WalkStats w = rt_->walks;
  w.masks_cached = rt_->lru.size();
  return w;
}

bool CompiledGrammar::walk_all(double budget_seconds) const {
  const auto t0 = std::chrono::steady_clock::now();
  std::lock_guard lk(mu_);
  SharedRuntime& rt = runtime();
  for (const auto& [p, q] : positions_->top_pairs()) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > budget_seconds) return false;
    cache_for(rt, *vocab_, p, q == StackMachine::kNoParent ? kNoParent : q);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------

struct GrammarMatcher::State {
  Stacks::StateId now = Stacks::kDead;
  bool accept = false;    // the text so far is complete
  bool any_top = false;   // and may go on
  bool ended = false;     // an end token was accepted
  void set(Stacks::StateId id, const StepResult& r) {
    now = id;
    accept = r.accept;
    any_top = !r.tops.empty();
  }
};

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> g) : g_(std::move(g)) {
  {
    std::lock_guard lk(g_->mu_);
    if (g_->rt_ && g_->rt_->live == 0 && g_->rt_->stacks.node_count() > kMaxSharedNodes) {
      // Keep the walked positions (they do not depend on the stacks); drop the stacks.
      auto caches = std::move(g_->rt_->caches);
      const WalkStats walks = g_->rt_->walks;
      g_->rt_.reset();
      g_->runtime().caches = std::move(caches);
      g_->rt_->walks = walks;
    }
    ++g_->runtime().live;
  }
  reset();
}

GrammarMatcher::~GrammarMatcher() {
  if (!g_) return;  // moved from
  std::lock_guard lk(g_->mu_);
  --g_->rt_->live;
}

GrammarMatcher::GrammarMatcher(GrammarMatcher&&) noexcept = default;

void GrammarMatcher::reset() {
  std::lock_guard lk(g_->mu_);
  s_ = std::make_unique<State>();
  SharedRuntime& rt = g_->runtime();
  s_->set(rt.initial, rt.stacks.state(rt.initial));
}

size_t GrammarMatcher::mask_words() const { return (size_t(g_->vocab_->size()) + 63) / 64; }

bool GrammarMatcher::can_finish() const { return s_->accept || s_->ended; }
bool GrammarMatcher::finished() const { return s_->ended || (s_->accept && !s_->any_top); }

void GrammarMatcher::fill_mask(std::span<uint64_t> mask) {
  const State& s = *s_;
  const TokenVocab& v = *g_->vocab_;
  const size_t words = mask_words();
  std::fill(mask.begin(), mask.begin() + ptrdiff_t(words), 0);
  if (s.ended) return;
  std::lock_guard lk(g_->mu_);
  SharedRuntime& rt = *g_->rt_;
  if (auto it = rt.by_state.find(s.now); it != rt.by_state.end()) {
    rt.lru.splice(rt.lru.begin(), rt.lru, it->second);
    std::memcpy(mask.data(), it->second->second.data(), words * 8);
    return;
  }
  const std::vector<uint32_t> tops = rt.stacks.state(s.now).tops;  // a copy: walks add states
  std::vector<const PositionCache*> done_pos;
  for (uint32_t top : tops) {
    const PositionCache& c = cache_of_top(rt, v, top);
    if (std::find(done_pos.begin(), done_pos.end(), &c) == done_pos.end()) {
      done_pos.push_back(&c);
      if (!c.bits.empty()) {
        for (size_t w = 0; w < words; ++w) mask[w] |= c.bits[w];
      } else {
        for (int32_t id : c.ids) set_bit(mask, id);
      }
    }
    if (!c.uncertain) continue;
    // The tokens that depend on what lies below: walk the trie from the real stack, skipping
    // the subtrees the cache decided.
    auto& fr = rt.frames;
    fr[0].state = rt.stacks.intern_one(top);
    size_t k = 0;
    for (uint32_t i = 0; i < v.nodes();) {
      while (k < c.skip.size() && c.skip[k] < i) ++k;
      const TokenVocab::Node& n = v.node(i);
      if (k < c.skip.size() && c.skip[k] == i) {
        i = n.subtree_end;
        continue;
      }
      const Stacks::StateId next = rt.stacks.step(fr[n.depth - 1].state, n.byte);
      const StepResult& r = rt.stacks.state(next);
      if (n.token_count && (!r.tops.empty() || r.accept))
        for (uint16_t t = 0; t < n.token_count; ++t) set_bit(mask, v.tokens_at(i)[t]);
      if (r.tops.empty()) {
        i = n.subtree_end;
        continue;
      }
      fr[n.depth].state = next;
      ++i;
    }
  }
  if (rt.stacks.state(s.now).accept)
    for (int32_t e : v.end_tokens()) set_bit(mask, e);
  // Remember it.
  const size_t max_entries = std::max<size_t>(16, kMaskCacheBytes / (words * 8));
  if (rt.lru.size() >= max_entries) {
    rt.by_state.erase(rt.lru.back().first);
    rt.lru.pop_back();
  }
  rt.lru.emplace_front(s.now, std::vector<uint64_t>(mask.begin(), mask.begin() + ptrdiff_t(words)));
  rt.by_state[s.now] = rt.lru.begin();
}

bool GrammarMatcher::accept_bytes(std::string_view bytes) {
  State& s = *s_;
  if (s.ended) return bytes.empty();
  std::lock_guard lk(g_->mu_);
  Stacks& st = g_->rt_->stacks;
  Stacks::StateId cur = s.now;
  for (unsigned char b : bytes) {
    if (st.state(cur).tops.empty()) return false;
    cur = st.step(cur, b);
  }
  const StepResult& r = st.state(cur);
  if (r.tops.empty() && !r.accept) return false;
  s.set(cur, r);
  return true;
}

bool GrammarMatcher::accept_token(int32_t id) {
  const TokenVocab& v = *g_->vocab_;
  if (id < 0 || id >= v.size()) return false;
  if (v.is_end(id)) {
    if (!can_finish()) return false;
    s_->ended = true;
    return true;
  }
  const std::string& b = v.bytes(id);
  if (b.empty()) return false;
  return accept_bytes(b);
}

namespace {
StepResult run_bytes(const Grammar& g, std::string_view text) {
  Stacks st(std::make_shared<const StackMachine>(g));
  Stacks::StateId cur = st.initial();
  for (unsigned char b : text) {
    if (st.state(cur).tops.empty()) return StepResult{};
    cur = st.step(cur, b);
  }
  return st.state(cur);
}
}  // namespace

bool accepts_prefix(const Grammar& g, std::string_view text) {
  const StepResult r = run_bytes(g, text);
  return !r.tops.empty() || r.accept;
}

bool accepts(const Grammar& g, std::string_view text) { return run_bytes(g, text).accept; }

}  // namespace moe::grammar
