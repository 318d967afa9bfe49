// The cache simulator: LRU and Belady on the textbook reference string (known fault counts),
// LRU with pinning on a hand-worked trace, Belady never below LRU/LFU on random traces,
// prefetch with perfect predictions, prefetch precision and waste accounting, predictor
// recall, and the option errors.
#include <gtest/gtest.h>

#include <random>

#include "prefetch/cache_sim.h"
#include "trace_fixtures.h"

namespace moe {
namespace {

using test::make_header;
using test::make_record;
using test::reference_string;

// The classic 20-reference string; with 3 frames OPT faults 9 times and LRU 12 times.
const std::vector<int32_t> kRefs = {7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1};

// The counters of a result, to compare with hand-worked ones in one line.
struct Counts {
  uint64_t accesses, hits, misses, prefetches, prefetch_used, prefetch_wasted;
  bool operator==(const Counts&) const = default;
};
Counts counts(const SimResult& r) {
  return {r.accesses, r.hits, r.misses, r.prefetches, r.prefetch_used, r.prefetch_wasted};
}
void PrintTo(const Counts& c, std::ostream* os) {
  *os << "accesses " << c.accesses << " hits " << c.hits << " misses " << c.misses << " prefetches " << c.prefetches
      << " used " << c.prefetch_used << " wasted " << c.prefetch_wasted;
}

SimOptions per_layer(const std::string& policy, int n) {
  SimOptions o;
  o.policy = policy;
  o.cache_per_layer = n;
  return o;
}

TEST(CacheSim, TextbookReferenceStringPerLayerCache) {
  const Trace t = reference_string(kRefs, 8);
  const SimResult opt = simulate(t, per_layer("belady", 3));
  EXPECT_EQ(opt.accesses, 20u);
  EXPECT_EQ(opt.misses, 9u);
  EXPECT_EQ(opt.hits, 11u);
  EXPECT_EQ(opt.tokens, 20u);
  const SimResult lru = simulate(t, per_layer("lru", 3));
  EXPECT_EQ(lru.misses, 12u);
  EXPECT_EQ(simulate(t, per_layer("belady", 8)).misses, 6u);  // only the compulsory ones
}

TEST(CacheSim, TextbookReferenceStringGlobalByteCache) {
  const Trace t = reference_string(kRefs, 8, 1000);
  SimOptions o;
  o.cache_bytes = 3000;
  o.policy = "belady";
  const SimResult opt = simulate(t, o);
  EXPECT_EQ(opt.misses, 9u);
  EXPECT_EQ(opt.miss_bytes, 9000u);
  EXPECT_DOUBLE_EQ(opt.bytes_per_token(), 9000.0 / 20);
  o.policy = "lru";
  EXPECT_EQ(simulate(t, o).misses, 12u);
  o.cache_bytes = 3999;  // room for three, not four
  EXPECT_EQ(simulate(t, o).misses, 12u);
}

TEST(CacheSim, LruWithPinnedStepExperts) {
  // One layer, 6 experts, top-2, 3 per cache. Worked by hand (LRU order oldest first):
  //  step 0 {0,1}: 2 misses                      -> [0 1]
  //  step 1 {1,2}: 1 hit, 1 miss                 -> [0 1 2]
  //  step 2 {3,0,1} (2 tokens): 3 evicts 2 (0 and 1 are pinned), 0 and 1 hit -> [3 0 1]
  //  step 3 {2,3}: 2 evicts 0 (3, the LRU, is pinned), 3 hits                 -> [1 2 3]
  Trace t{make_header(1, 6, 2, 10), {}};
  t.records = {make_record(0, 0, {{0, 1}}), make_record(1, 0, {{1, 2}}), make_record(2, 0, {{3, 0}, {0, 1}}),
               make_record(3, 0, {{2, 3}})};
  const SimResult r = simulate(t, per_layer("lru", 3));
  EXPECT_EQ(counts(r), (Counts{9, 4, 5, 0, 0, 0}));
  EXPECT_EQ(r.tokens, 5u);
  EXPECT_EQ(r.miss_bytes, 50u);
  EXPECT_DOUBLE_EQ(r.hit_rate(), 4.0 / 9);
  EXPECT_DOUBLE_EQ(r.loads_per_token(), 1.0);
}

TEST(CacheSim, TokensCountEachStepOnceAndLayersHaveTheirOwnCaches) {
  // Two MoE layers behind a dense one; a 3-token prefill then a decode step.
  Trace t{make_header(2, 4, 1, 0, 0, /*dense_first=*/1), {}};
  t.records = {make_record(0, 1, {{0}, {1}, {0}}), make_record(0, 2, {{0}, {1}, {2}}), make_record(1, 1, {{1}}),
               make_record(1, 2, {{2}})};
  const SimResult r = simulate(t, per_layer("lru", 3));
  EXPECT_EQ(r.tokens, 4u);
  EXPECT_EQ(r.accesses, 7u);  // {0,1} + {0,1,2} + {1} + {2}
  EXPECT_EQ(r.hits, 2u);      // the decode step finds both
  SimOptions frac;
  frac.cache_frac = 0.75;  // 3 of 4 experts per layer
  EXPECT_EQ(simulate(t, frac).hits, 2u);
  frac.cache_frac = 0.01;  // rounds below top_k: top_k it is
  EXPECT_EQ(simulate(t, frac).accesses, 7u);
}

// Random routing with a skewed popularity that drifts, 1-2 tokens per step.
Trace random_trace(uint32_t seed, int n_layers, int n_experts, int top_k, int steps, uint64_t bytes) {
  std::mt19937 rng(seed);
  Trace t{make_header(n_layers, n_experts, top_k, bytes), {}};
  std::vector<double> w(static_cast<size_t>(n_experts));
  for (int s = 0; s < steps; ++s) {
    if (s % 50 == 0)
      for (double& x : w) x = std::pow(std::uniform_real_distribution<double>(0.05, 1)(rng), 3);
    const int n_tokens = 1 + int(rng() % 2);
    for (int l = 0; l < n_layers; ++l) {
      std::vector<std::vector<int32_t>> tokens;
      for (int i = 0; i < n_tokens; ++i) {
        std::vector<double> left = w;
        std::vector<int32_t> ids;
        while (int(ids.size()) < top_k) {
          const int e = std::discrete_distribution<int>(left.begin(), left.end())(rng);
          ids.push_back(e);
          left[size_t(e)] = 0;
        }
        tokens.push_back(ids);
      }
      t.records.push_back(make_record(s, l, tokens));
    }
  }
  return t;
}

TEST(CacheSim, BeladyIsNeverBeatenOnRandomTraces) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    const Trace t = random_trace(seed, 3, 16, 2, 300, 100);
    for (int cap : {4, 6, 10}) {
      SimOptions o = per_layer("belady", cap);
      const uint64_t opt = simulate(t, o).hits;
      for (const char* p : {"lru", "lfu"}) {
        o.policy = p;
        EXPECT_GE(opt, simulate(t, o).hits) << "seed " << seed << " per-layer " << cap << " " << p;
      }
      SimOptions g;
      g.cache_bytes = uint64_t(cap) * 3 * 100;  // the same number of experts, shared by the layers
      g.policy = "belady";
      const uint64_t gopt = simulate(t, g).hits;
      for (const char* p : {"lru", "lfu"}) {
        g.policy = p;
        EXPECT_GE(gopt, simulate(t, g).hits) << "seed " << seed << " global " << cap << " " << p;
      }
    }
  }
}

TEST(CacheSim, PerfectPredictionsHitEverythingAfterWarmup) {
  // Layer 0 always uses {0,1}; layers 1 and 2 are random and predicted exactly one layer
  // ahead. Caches hold only top_k: every hit on layers 1-2 is a prefetch. Only step 0's
  // layer-0 accesses miss.
  std::mt19937 rng(7);
  Trace t{make_header(3, 16, 2, 64, 1), {}};
  const int steps = 50;
  for (int s = 0; s < steps; ++s) {
    t.records.push_back(make_record(s, 0, {{0, 1}}));
    for (int l = 1; l < 3; ++l) {
      const int32_t a = int32_t(rng() % 16), b = int32_t((a + 1 + rng() % 15) % 16);
      t.records.push_back(make_record(s, l, {{a, b}}, {{b, a, 5}}));
    }
  }
  for (const char* policy : {"lru+prefetch", "lfu+prefetch"}) {
    SimOptions o = per_layer(policy, 2);
    const SimResult r = simulate(t, o);
    EXPECT_EQ(r.accesses, uint64_t(steps * 6)) << policy;
    EXPECT_EQ(r.misses, 2u) << policy;
    EXPECT_EQ(r.prefetch_wasted, 0u) << policy;
    EXPECT_EQ(r.prefetch_used, r.prefetches) << policy;
    EXPECT_DOUBLE_EQ(r.prefetch_precision(), 1.0) << policy;
    EXPECT_EQ(r.prefetch_bytes, r.prefetches * 64) << policy;
    EXPECT_LT(simulate(t, per_layer(std::string(policy).substr(0, 3), 2)).hits, r.hits) << policy;
  }
}

TEST(CacheSim, PrefetchPrecisionAndWasteAccounting) {
  // Two layers, top-1, 2 experts per cache, prefetch_k 2. Worked by hand (layer-1 cache,
  // LRU order oldest first, * = prefetched and unused):
  //  step 0: layer 0 {0} misses; prefetch 1, 2 -> [1* 2*]; layer 1 {1} hits (used) -> [2* 1]
  //  step 1: layer 0 {0} hits; prefetch 4 evicts 2* (wasted), prefetch 5 evicts 1 (4 is this
  //          round's) -> [4* 5*]; layer 1 {3} misses, evicts 4* (wasted) -> [5* 3]
  Trace t{make_header(2, 8, 1, 10, 1), {}};
  t.records = {make_record(0, 0, {{0}}), make_record(0, 1, {{1}}, {{1, 2}}), make_record(1, 0, {{0}}),
               make_record(1, 1, {{3}}, {{4, 5, 6}})};
  SimOptions o = per_layer("lru+prefetch", 2);
  o.prefetch_k = 2;
  const SimResult r = simulate(t, o);
  EXPECT_EQ(counts(r), (Counts{4, 2, 2, 4, 1, 2}));
  EXPECT_DOUBLE_EQ(r.prefetch_precision(), 0.25);
  EXPECT_EQ(r.miss_bytes, 20u);
  EXPECT_EQ(r.prefetch_bytes, 40u);
  EXPECT_EQ(r.wasted_bytes, 20u);
  EXPECT_DOUBLE_EQ(r.bytes_per_token(), 30.0);
  EXPECT_DOUBLE_EQ(r.wasted_bytes_per_token(), 10.0);
}

TEST(CacheSim, PrefetchNeverEvictsTheCurrentStepsExperts) {
  // One global cache of 2 experts; layer 0 uses {0,1} and predicts {2,3} for layer 1:
  // nothing may be given up, so nothing is prefetched.
  Trace t{make_header(2, 4, 2, 10, 1), {}};
  t.records = {make_record(0, 0, {{0, 1}}), make_record(0, 1, {{2, 3}}, {{2, 3}})};
  SimOptions o;
  o.policy = "lru+prefetch";
  o.cache_bytes = 20;
  const SimResult r = simulate(t, o);
  EXPECT_EQ(r.prefetches, 0u);
  EXPECT_EQ(r.misses, 4u);
}

TEST(CacheSim, PredictorRecallOnAHandMadeTrace) {
  Trace t{make_header(2, 8, 2, 0, 2), {}};
  t.records = {make_record(0, 0, {{0, 1}}),
               make_record(0, 1, {{0, 1}, {1, 2}}, {{0, 3, 2, 1}, {5, 6}}),  // actual {0,1,2}
               make_record(1, 0, {{0, 1}}, {}),
               make_record(1, 1, {{4, 5}}, {{4, 4}, {}})};  // actual {4,5}; a repeated id counts once
  const std::vector<int> ks = {2, 4};
  const auto rec = predictor_recall(t, ks);
  ASSERT_EQ(rec.size(), 4u);
  EXPECT_EQ(rec[0].lookahead, 1);
  EXPECT_EQ(rec[0].k, 2);
  EXPECT_EQ(rec[0].samples, 2u);
  EXPECT_DOUBLE_EQ(rec[0].recall, (1.0 / 3 + 1.0 / 2) / 2);
  EXPECT_EQ(rec[1].k, 4);
  EXPECT_DOUBLE_EQ(rec[1].recall, (1.0 + 1.0 / 2) / 2);
  EXPECT_EQ(rec[2].lookahead, 2);
  EXPECT_EQ(rec[2].samples, 1u);
  EXPECT_DOUBLE_EQ(rec[2].recall, 0.0);
  EXPECT_EQ(rec[3].samples, 1u);
  EXPECT_TRUE(predictor_recall(reference_string(kRefs, 8), ks).empty());  // lookahead 0
}

std::string error_of(const Trace& t, const SimOptions& o) {
  try {
    simulate(t, o);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(CacheSim, RejectsBadOptions) {
  const Trace t = reference_string(kRefs, 8);  // no sizes, no predictions
  EXPECT_EQ(error_of(t, per_layer("fifo", 3)),
            "unknown policy 'fifo'; valid: lru, lfu, nextuse, lru+prefetch, lfu+prefetch, nextuse+prefetch, belady");
  EXPECT_EQ(error_of(t, SimOptions{}), "no cache capacity: set one of cache_per_layer, cache_frac, cache_bytes");
  SimOptions both = per_layer("lru", 3);
  both.cache_bytes = 100;
  EXPECT_NE(error_of(t, both).find("several cache capacities"), std::string::npos);
  SimOptions bytes;
  bytes.cache_bytes = 100;
  EXPECT_NE(error_of(t, bytes).find("cache_bytes needs expert sizes"), std::string::npos);
  SimOptions frac;
  frac.cache_frac = 1.5;
  EXPECT_EQ(error_of(t, frac), "cache_frac 1.5 must be above 0 and at most 1");
  EXPECT_NE(
      error_of(t, per_layer("lfu+prefetch", 3)).find("policy lfu+prefetch needs predictions, but the trace has none"),
      std::string::npos);

  Trace k2{make_header(1, 8, 2, 1000, 1), {make_record(0, 0, {{1, 2}}, {{1, 2}})}};
  EXPECT_NE(error_of(k2, per_layer("lru", 1)).find("smaller than top_k 2"), std::string::npos);
  bytes.cache_bytes = 1999;
  EXPECT_NE(
      error_of(k2, bytes).find("cache of 2.0 KiB (1999 bytes) is smaller than top_k 2 experts of layer 0 (2000 bytes)"),
      std::string::npos);
  SimOptions ahead = per_layer("lru+prefetch", 2);
  ahead.lookahead = 2;
  EXPECT_EQ(error_of(k2, ahead), "lookahead 2 must be between 1 and the trace's lookahead 1");
  ahead.lookahead = 1;
  EXPECT_EQ(error_of(k2, ahead), "");
}

}  // namespace
}  // namespace moe
