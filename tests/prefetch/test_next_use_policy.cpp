// The expected-next-use eviction policy: the use rate decides at batch 1, the layer cycle
// between equal rates, the newest arrival among equals; prefetches are not uses; pinned
// experts are skipped; and on a cyclic scan larger than the cache it keeps hitting where LRU
// and LFU hit nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "storage/tier/eviction_policy.h"

namespace moe {
namespace {

const auto kAny = [](ExpertKey) { return true; };

// One step: layers 0..n-1 in order, each using `experts` (as the engine acquires them).
void step(EvictionPolicy& p, int n_layers, const std::map<int, std::vector<int>>& experts) {
  for (int l = 0; l < n_layers; ++l) {
    auto it = experts.find(l);
    if (it == experts.end()) continue;
    for (int e : it->second) p.on_access({l, e});
  }
}

TEST(NextUsePolicy, TheRarelyUsedGoFirst) {
  auto p = make_next_use_policy();
  for (int l = 0; l < 3; ++l)
    for (int e = 0; e < 3; ++e) p->on_insert({l, e});
  // Expert 0 of every layer is used every step, expert 1 every fourth, expert 2 never again.
  for (int s = 0; s < 16; ++s) {
    std::map<int, std::vector<int>> use;
    for (int l = 0; l < 3; ++l) use[l] = s % 4 == 0 ? std::vector<int>{0, 1} : std::vector<int>{0};
    step(*p, 3, use);
  }
  for (int i = 0; i < 9; ++i) {
    const auto v = p->choose_victim(kAny);
    ASSERT_TRUE(v);
    if (i < 3) EXPECT_EQ(v->expert, 2) << i;
    else if (i < 6) EXPECT_EQ(v->expert, 1) << i;
    else EXPECT_EQ(v->expert, 0) << i;
    p->on_evict(*v);
  }
  EXPECT_EQ(p->choose_victim(kAny), std::nullopt);
}

TEST(NextUsePolicy, AmongEqualRatesTheLayerThatJustRanGoesFirst) {
  auto p = make_next_use_policy();
  for (int l = 0; l < 4; ++l) p->on_insert({l, 5});
  for (int s = 0; s < 200; ++s) step(*p, 4, {{0, {5}}, {1, {5}}, {2, {5}}, {3, {5}}});  // rates near 1
  // Layer 3 ran last: its expert is a whole cycle away, layer 0's is next.
  EXPECT_EQ(p->choose_victim(kAny), (ExpertKey{3, 5}));
  // Mid-step, after layer 1: layer 1 is now the furthest.
  step(*p, 2, {{0, {5}}, {1, {5}}});
  EXPECT_EQ(p->choose_victim(kAny), (ExpertKey{1, 5}));
  // Pinned experts are skipped: then layer 0 (three layers away), not layer 2 (next).
  EXPECT_EQ(p->choose_victim([](ExpertKey k) { return k.layer != 1; }), (ExpertKey{0, 5}));
}

TEST(NextUsePolicy, APrefetchIsNotAUse) {
  auto p = make_next_use_policy();
  p->on_insert({0, 1});
  p->on_prefetch_insert({0, 2});  // never used: the first to go
  EXPECT_EQ(p->choose_victim(kAny), (ExpertKey{0, 2}));
  p->on_access({0, 2});  // used now, after expert 1 in the same step: the newer arrival goes
  EXPECT_EQ(p->choose_victim(kAny), (ExpertKey{0, 2}));
  step(*p, 1, {{0, {1}}});  // a new step that uses 1 only: 2's rate is now the lower
  EXPECT_EQ(p->choose_victim(kAny), (ExpertKey{0, 2}));
  step(*p, 1, {{0, {2}}});
  step(*p, 1, {{0, {2}}});
  step(*p, 1, {{0, {2}}});
  EXPECT_EQ(p->choose_victim(kAny), (ExpertKey{0, 1}));
}

// A large batch uses every expert of every layer each step: 4 layers x 16 experts through a
// cache of 24. LRU and LFU evict exactly what the next layer needs and never hit; the expected
// next use keeps a stable part resident.
TEST(NextUsePolicy, ACyclicScanLargerThanTheCacheStillHits) {
  constexpr int kLayers = 4, kExperts = 16, kCapacity = 24;
  for (const char* name : {"lru", "lfu", "nextuse"}) {
    auto p = make_policy(name);
    std::set<uint64_t> cache;  // packed keys
    int hits = 0, accesses = 0;
    for (int s = 0; s < 12; ++s)
      for (int l = 0; l < kLayers; ++l)
        for (int e = 0; e < kExperts; ++e) {
          const ExpertKey k{l, e};
          const bool counted = s >= 4;  // after the cache has settled
          accesses += counted;
          if (cache.count(k.packed())) {
            hits += counted;
            p->on_access(k);
            continue;
          }
          if (int(cache.size()) == kCapacity) {
            // The layer running now keeps its experts until its step ends (the tier's "wanted").
            const auto v = p->choose_victim([&](ExpertKey c) { return c.layer != l; });
            ASSERT_TRUE(v) << name;
            cache.erase(v->packed());
            p->on_evict(*v);
          }
          cache.insert(k.packed());
          p->on_insert(k);
        }
    const double rate = double(hits) / double(accesses);
    if (std::string(name) == "nextuse") {
      // Belady's bound here: 24 - 16 (the running layer's window) = 8 experts kept of 64.
      EXPECT_GE(rate, 0.9 * 8.0 / 64.0) << name;
    } else {
      EXPECT_EQ(hits, 0) << name;
    }
  }
}

}  // namespace
}  // namespace moe
