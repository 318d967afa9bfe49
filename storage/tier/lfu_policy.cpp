// Least frequently used with exponential aging. Each insert or hit adds 1 to the expert's
// count; every count decays by 2^(-1/half_life) per event. Decaying all counts would be an
// O(n) sweep, and periodic halving makes integer counts collide; instead a count is kept as
// its log2 *at time zero*, score = log2(sum over uses of 2^(t_use / half_life)), and a use
// at time t adds 2^t. Aging multiplies every count by the same factor, so the order of the
// scores never changes between events: one std::set per state, O(log n) per call, and no
// overflow since scores grow only linearly with time. A varying half-life (the default
// follows the resident count) keeps this true because time is shared by all experts.
//
// Victim: the lowest score (ties: the oldest use), walking past pinned ones. Evicted
// experts stay in `ghosts_` with their scores, up to a cap, so a formerly hot expert that
// misses again comes back with its history instead of starting at 1.
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>
#include <unordered_map>

#include "storage/tier/eviction_policy.h"

namespace moe {

namespace {

// log2(2^a + 2^b) without overflow.
double log2_add(double a, double b) {
  if (a == -std::numeric_limits<double>::infinity()) return b;
  const double hi = std::max(a, b), lo = std::min(a, b);
  return hi + std::log1p(std::exp2(lo - hi)) / std::log(2.0);
}

class LfuPolicy final : public EvictionPolicy {
 public:
  explicit LfuPolicy(const LfuOptions& o) : opts_(o) {}

  void on_insert(ExpertKey k) override { use(k, true); }
  void on_access(ExpertKey k) override { use(k, false); }

  void on_evict(ExpertKey k) override {
    auto it = entries_.find(k.packed());
    if (it == entries_.end() || !it->second.resident) return;
    Entry& e = it->second;
    resident_.erase(rank(it->first, e));
    e.resident = false;
    ghosts_.insert(rank(it->first, e));
    const size_t cap = opts_.history ? opts_.history : std::max<size_t>(1024, resident_.size());
    while (ghosts_.size() > cap) {  // forget the weakest history first
      entries_.erase(std::get<2>(*ghosts_.begin()));
      ghosts_.erase(ghosts_.begin());
    }
  }

  // Linear only in the pinned experts skipped (those of the steps in flight).
  std::optional<ExpertKey> choose_victim(const std::function<bool(ExpertKey)>& evictable) override {
    for (const Rank& r : resident_) {
      const uint64_t p = std::get<2>(r);
      const ExpertKey k{int32_t(uint32_t(p >> 32)), int32_t(uint32_t(p))};
      if (evictable(k)) return k;
    }
    return std::nullopt;
  }

 private:
  struct Entry {
    double score = -std::numeric_limits<double>::infinity();  // log2 of the count at time 0
    uint64_t last = 0;                                        // tick of the last use (ties)
    bool resident = false;
  };
  using Rank = std::tuple<double, uint64_t, uint64_t>;  // score, last use, packed key: lowest goes first
  static Rank rank(uint64_t key, const Entry& e) { return {e.score, e.last, key}; }

  void use(ExpertKey k, bool insert) {
    auto it = entries_.find(k.packed());
    if (!insert && (it == entries_.end() || !it->second.resident))
      return;  // a hit on an unknown key: ignore, as LRU does
    const double half_life =
        opts_.half_life > 0 ? opts_.half_life : 4.0 * double(std::max<size_t>(resident_.size(), 1));
    now_ += 1.0 / half_life;
    if (it == entries_.end()) {
      it = entries_.emplace(k.packed(), Entry{}).first;
    } else {
      (it->second.resident ? resident_ : ghosts_).erase(rank(it->first, it->second));
    }
    Entry& e = it->second;
    e.score = log2_add(e.score, now_);  // count += 1 at the current time
    e.last = ++tick_;
    e.resident = true;
    resident_.insert(rank(it->first, e));
  }

  LfuOptions opts_;
  std::unordered_map<uint64_t, Entry> entries_;  // resident and remembered experts
  std::set<Rank> resident_, ghosts_;             // ascending: first victim / first forgotten first
  double now_ = 0;                               // time in half-lives
  uint64_t tick_ = 0;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_lfu_policy(const LfuOptions& o) { return std::make_unique<LfuPolicy>(o); }
std::unique_ptr<EvictionPolicy> make_lfu_policy() { return make_lfu_policy(LfuOptions{}); }

}  // namespace moe
