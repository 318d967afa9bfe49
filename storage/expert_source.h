// Where the engine gets expert weights from. The engine asks for (layer, expert) and
// releases it when the step is done; a source may keep everything resident (an mmap'd
// checkpoint) or page experts in from a slower tier.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "quant/weight_view.h"

namespace moe {

// One routed expert's SwiGLU FFN: gate/up [intermediate, hidden], down [hidden, intermediate].
struct ExpertWeights {
  WeightView gate, up, down;
  int64_t bytes() const { return gate.bytes() + up.bytes() + down.bytes(); }
};

class ExpertSource {
 public:
  virtual ~ExpertSource() = default;
  // Weights of `expert` in decoder layer `layer`, valid (pinned) until release().
  virtual ExpertWeights acquire(int layer, int expert) = 0;
  virtual void release(int layer, int expert) = 0;
  // True when acquire() needs no I/O now. The engine runs these experts first, while a
  // prefetcher streams the others in (a hint: the answer may change at any moment).
  virtual bool resident(int, int) const { return true; }
  // acquire() of several experts of one layer; a tiered source reads all the missing ones in
  // one batch so the disk sees them in flight together. out: [experts.size()]. All or
  // nothing: when it throws, none of them stays pinned.
  virtual void acquire_many(int layer, std::span<const int> experts, ExpertWeights* out) {
    size_t j = 0;
    try {
      for (; j < experts.size(); ++j) out[j] = acquire(layer, experts[j]);
    } catch (...) {
      while (j > 0) release(layer, experts[--j]);
      throw;
    }
  }
};

// acquire() now, release() when this goes out of scope (also when what uses the weights throws;
// releasing what was acquired does not throw).
class HeldExpert {
 public:
  HeldExpert(ExpertSource& source, int layer, int expert)
      : source_(source), layer_(layer), expert_(expert), w_(source.acquire(layer, expert)) {}
  ~HeldExpert() { source_.release(layer_, expert_); }
  HeldExpert(const HeldExpert&) = delete;
  HeldExpert& operator=(const HeldExpert&) = delete;
  const ExpertWeights& weights() const { return w_; }

 private:
  ExpertSource& source_;
  int layer_, expert_;
  ExpertWeights w_;
};

// acquire_many() now, release() of each expert when this goes out of scope: an exception
// while computing with the weights (a kernel, an allocation) must not leave them pinned.
class HeldExperts {
 public:
  HeldExperts(ExpertSource& source, int layer, std::span<const int> experts)
      : source_(source), layer_(layer), experts_(experts.begin(), experts.end()), w_(experts.size()) {
    source.acquire_many(layer, experts, w_.data());  // all or nothing: a throw here pins none
  }
  ~HeldExperts() {
    for (int e : experts_) source_.release(layer_, e);
  }
  HeldExperts(const HeldExperts&) = delete;
  HeldExperts& operator=(const HeldExperts&) = delete;
  // [experts.size()], in the order asked for.
  const ExpertWeights& operator[](size_t i) const { return w_[i]; }

 private:
  ExpertSource& source_;
  int layer_;
  std::vector<int> experts_;
  std::vector<ExpertWeights> w_;
};

// Every expert already addressable in memory: nothing to load, nothing to evict.
class ResidentExperts final : public ExpertSource {
 public:
  // table[layer][expert]; layers without experts have an empty row.
  explicit ResidentExperts(std::vector<std::vector<ExpertWeights>> table) : table_(std::move(table)) {}
  ExpertWeights acquire(int layer, int expert) override { return table_.at(size_t(layer)).at(size_t(expert)); }
  void release(int, int) override {}

 private:
  std::vector<std::vector<ExpertWeights>> table_;
};

}  // namespace moe
