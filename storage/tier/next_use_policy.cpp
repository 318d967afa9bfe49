// Expected next use: evict the expert whose next use is expected furthest in the future, an
// estimate of Belady's choice from two facts the tier sees.
//   - Layers run in a cycle (0, 1, ..., n-1, 0, ...): an expert of the layer that just ran is a
//     whole cycle from its next chance of use, one of the next layer only one layer away.
//   - How often an expert is used when its layer runs: a rate p, the share of its layer's
//     recent steps that used it (exponential moving average over layer-steps; evicted experts
//     keep theirs).
// Expected layer-steps to the next use = (distance to the expert's layer) + n * (1/p - 1).
// At batch 1 the rate dominates and this is an LFU that knows the layer order. At a large
// batch every expert is used by every step (p ~ 1) and LFU / LRU evict the experts needed
// soonest (a cyclic scan larger than the cache hits nothing); here the layer that just ran
// goes first, and among its experts the newest arrivals, so a stable part of every layer
// stays resident and the rest streams through.
//
// A new layer-step begins when an access names another layer than the last, or an expert
// already used in the current step of its layer (a model with one MoE layer), unless that use
// was its insertion (the VRAM tier inserts prefetches with on_insert; their use follows).
// choose_victim is linear in the resident experts (a few thousand at most).
#include <cmath>
#include <limits>
#include <utility>
#include <unordered_map>
#include <vector>

#include "storage/tier/eviction_policy.h"

namespace moe {

namespace {

class NextUsePolicy final : public EvictionPolicy {
 public:
  explicit NextUsePolicy(const NextUseOptions& o) : beta_(std::exp2(-1.0 / std::max(o.half_life_steps, 1e-3))) {}

  void on_insert(ExpertKey k) override {
    make_resident(k);
    use(k);
    entries_.at(k.packed()).insert_use = true;
  }
  void on_prefetch_insert(ExpertKey k) override { make_resident(k); }
  void on_access(ExpertKey k) override {
    auto it = entries_.find(k.packed());
    if (it == entries_.end() || !it->second.resident) return;  // a hit on an unknown key: ignore, as LRU does
    use(k);
  }
  void on_evict(ExpertKey k) override {
    auto it = entries_.find(k.packed());
    if (it == entries_.end() || !it->second.resident) return;
    Entry& e = it->second;
    e.resident = false;
    const uint64_t moved = resident_.back();
    resident_[e.slot] = moved;
    entries_.at(moved).slot = e.slot;
    resident_.pop_back();
  }

  std::optional<ExpertKey> choose_victim(const std::function<bool(ExpertKey)>& evictable) override {
    std::optional<ExpertKey> best;
    double best_next = -1;
    uint64_t best_inserted = 0;
    for (uint64_t p : resident_) {
      const Entry& e = entries_.at(p);
      const ExpertKey k = unpack(p);
      const double next = expected_next_use(k, e);
      // Whole layer-steps: near-equal rates tie, and the newest arrival goes first.
      if (best && (next < best_next || (next == best_next && e.inserted < best_inserted))) continue;
      if (!evictable(k)) continue;
      best = k;
      best_next = next;
      best_inserted = e.inserted;
    }
    return best;
  }

 private:
  struct Entry {
    double rate = 0;          // use rate at layer-step `step` of its layer; 0: never used
    uint64_t step = 0;        // that layer-step
    bool insert_use = false;  // the last use was on_insert's
    bool resident = false;
    size_t slot = 0;        // index in resident_
    uint64_t inserted = 0;  // insertion tick (ties: the newest goes first)
  };

  static ExpertKey unpack(uint64_t p) { return {int32_t(uint32_t(p >> 32)), int32_t(uint32_t(p))}; }

  void make_resident(ExpertKey k) {
    Entry& e = entries_[k.packed()];
    if (k.layer >= int(steps_.size())) steps_.resize(size_t(k.layer) + 1, 0);
    e.inserted = ++tick_;
    if (e.resident) return;
    e.resident = true;
    e.slot = resident_.size();
    resident_.push_back(k.packed());
  }

  void use(ExpertKey k) {
    Entry& e = entries_.at(k.packed());
    uint64_t& now = steps_[size_t(k.layer)];
    const bool again = k.layer == cur_ && e.rate > 0 && e.step == now;  // used in this layer-step already
    const bool insert_use = std::exchange(e.insert_use, false);
    if (again && insert_use) return;  // a tier that calls on_insert for a prefetch, then on_access: one use
    if (k.layer != cur_ || again) ++now;  // a new step of this layer
    cur_ = k.layer;
    e.rate = e.rate * std::pow(beta_, double(now - e.step)) + (1.0 - beta_);
    e.step = now;
  }

  double expected_next_use(ExpertKey k, const Entry& e) const {
    const int n = int(steps_.size());
    const int d = cur_ < 0 ? n : ((k.layer - cur_ - 1) % n + n) % n + 1;  // 1 .. n layer-steps away
    const double p = e.rate * std::pow(beta_, double(steps_[size_t(k.layer)] - e.step));
    if (p <= 1e-12) return std::numeric_limits<double>::max();
    return std::floor(double(d) + double(n) * (1.0 / p - 1.0));
  }

  double beta_;                                  // per layer-step decay of a rate
  std::unordered_map<uint64_t, Entry> entries_;  // every expert seen: evicted ones keep their rate
  std::vector<uint64_t> resident_;               // packed keys, unordered
  std::vector<uint64_t> steps_;                  // [layer] layer-steps begun
  int cur_ = -1;                                 // the layer of the latest use
  uint64_t tick_ = 0;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_next_use_policy(const NextUseOptions& o) { return std::make_unique<NextUsePolicy>(o); }

}  // namespace moe
