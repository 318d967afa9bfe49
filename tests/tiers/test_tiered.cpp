// The RAM tier over a fake catalog: views hold the right bytes, LRU order, pinning, the
// budget, checksum once per record, errors, stats, several threads.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "storage/io/make_reader.h"
#include "storage/tier/budget.h"
#include "storage/tier/tiered_experts.h"
#include "tiers/fake_catalog.h"

namespace moe {
namespace {

constexpr uint64_t kExpert = 32u << 10;  // default FakeSpec: 30 KiB of F32, padded to 32 KiB

class Tiered : public ::testing::Test {
 protected:
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  std::shared_ptr<test::FakeCatalog> fake(test::FakeSpec spec = {}) {
    if (dir_.empty()) dir_ = test::tier_temp_dir("tiered");
    return std::make_shared<test::FakeCatalog>(dir_ / ("fake" + std::to_string(n_++) + ".pack"), spec);
  }
  static std::unique_ptr<TieredExperts> tier(const std::shared_ptr<test::FakeCatalog>& cat, uint64_t budget,
                                             const char* io = "uring", int top_k = 0, double prefetch_share = 0.25) {
    TierOptions o;
    o.budget_bytes = budget;
    o.top_k = top_k;
    o.prefetch_share = prefetch_share;
    return std::make_unique<TieredExperts>(cat, make_reader(io, cat->path()), std::move(o));
  }

  std::filesystem::path dir_;
  int n_ = 0;
};

TEST_F(Tiered, EveryReaderGivesTheExpertsBytes) {
  test::FakeSpec spec;
  spec.inter_step = 8;       // layers of different sizes
  spec.compress_odd = true;  // stored-as-is and "compressed" records
  spec.dense_layer = 1;
  auto cat = fake(spec);
  for (const char* io : {"uring", "pread", "mmap"}) {
    auto t = tier(cat, 4 * total_expert_bytes(*cat) / 10, io);
    for (int pass = 0; pass < 2; ++pass)
      for (int l = 0; l < cat->n_layers(); ++l)
        for (int e = 0; e < cat->n_experts(l); ++e) {
          const ExpertWeights w = t->acquire(l, e);
          EXPECT_TRUE(cat->matches(l, e, w)) << io << " layer " << l << " expert " << e;
          EXPECT_EQ(w.gate.rows, cat->inter(l));
          EXPECT_EQ(w.down.cols, cat->inter(l));
          t->release(l, e);
        }
    const TierStats s = t->stats();
    EXPECT_EQ(s.layers[1].acquires(), 0u);  // the dense layer
    EXPECT_GT(s.staging_bytes, 0u);
    EXPECT_LE(s.peak_allocated_bytes, s.budget_bytes);
  }
}

TEST_F(Tiered, StatsAddUp) {
  auto cat = fake();
  auto t = tier(cat, 5 * kExpert);
  std::mt19937 rng(5);
  uint64_t acquires = 0, hits = 0, misses = 0, bytes = 0;
  std::vector<uint64_t> layer_acquires(3);
  for (int i = 0; i < 500; ++i) {
    const int l = int(rng() % 3), e = int(rng() % 8);
    const bool was_resident = t->resident(l, e);
    t->acquire(l, e);
    t->release(l, e);
    ++acquires, ++layer_acquires[size_t(l)];
    if (was_resident) ++hits;
    else ++misses, bytes += cat->record(l, e).padded_bytes;
  }
  const TierStats s = t->stats();
  EXPECT_EQ(s.total.hits + s.total.misses, acquires);
  EXPECT_EQ(s.total.hits, hits);
  EXPECT_EQ(s.total.misses, misses);
  EXPECT_EQ(s.total.bytes_read, bytes);
  for (int l = 0; l < 3; ++l) EXPECT_EQ(s.layers[size_t(l)].acquires(), layer_acquires[size_t(l)]);
  EXPECT_GT(s.total.stall_ns, 0u);
  EXPECT_EQ(s.evictions, misses - s.resident_experts);
  EXPECT_EQ(s.resident_bytes, s.resident_experts * kExpert);
  EXPECT_EQ(s.peak_resident_bytes, 5 * kExpert);

  const nlohmann::json j = tier_stats_json(s, 100);
  EXPECT_DOUBLE_EQ(j["ram_hit_rate"].get<double>(), double(hits) / double(acquires));
  EXPECT_DOUBLE_EQ(j["disk_bytes_per_token"].get<double>(), double(bytes) / 100);
  EXPECT_TRUE(j.contains("stall_ms_per_token"));
  EXPECT_EQ(j["layers"]["ram_hit_rate"].size(), 3u);
  EXPECT_EQ(j["layers"]["misses"][0].get<uint64_t>(), s.layers[0].misses);
  EXPECT_NE(format_tier_stats(s, 100).find("hit rate"), std::string::npos);

  t->reset_stats();
  const TierStats r = t->stats();
  EXPECT_EQ(r.total.acquires(), 0u);
  EXPECT_EQ(r.evictions, 0u);
  EXPECT_EQ(r.peak_resident_bytes, r.resident_bytes);  // peaks restart from now
  EXPECT_EQ(r.layers.size(), 3u);
}

TEST_F(Tiered, EvictsLeastRecentlyUsed) {
  auto cat = fake();
  auto t = tier(cat, 3 * kExpert);
  auto touch = [&](int e) { t->acquire(0, e), t->release(0, e); };
  touch(0), touch(1), touch(2);
  touch(0);  // now 1 is the least recently used
  touch(3);
  EXPECT_TRUE(t->resident(0, 0));
  EXPECT_FALSE(t->resident(0, 1));
  EXPECT_TRUE(t->resident(0, 2));
  EXPECT_TRUE(t->resident(0, 3));
  touch(4);  // then 2
  EXPECT_FALSE(t->resident(0, 2));
  EXPECT_EQ(t->stats().evictions, 2u);
}

TEST_F(Tiered, LruPolicySkipsWhatIsNotEvictable) {
  auto p = make_lru_policy();
  for (int e = 0; e < 4; ++e) p->on_insert({0, e});
  p->on_access({0, 0});
  EXPECT_EQ(p->choose_victim([](ExpertKey) { return true; }), (ExpertKey{0, 1}));
  EXPECT_EQ(p->choose_victim([](ExpertKey k) { return k.expert != 1; }), (ExpertKey{0, 2}));
  p->on_evict({0, 2});
  EXPECT_EQ(p->choose_victim([](ExpertKey k) { return k.expert != 1; }), (ExpertKey{0, 3}));
  EXPECT_EQ(p->choose_victim([](ExpertKey) { return false; }), std::nullopt);
}

TEST_F(Tiered, PinnedExpertsAreNeverEvicted) {
  auto cat = fake();
  auto t = tier(cat, 3 * kExpert);
  const ExpertWeights w = t->acquire(2, 7);  // held across everything below
  t->acquire(2, 7);                          // pinned twice
  EXPECT_EQ(t->pins(2, 7), 2);
  for (int i = 0; i < 40; ++i) {
    const int l = i % 2, e = i % 8;
    t->acquire(l, e);
    t->release(l, e);
    ASSERT_TRUE(t->resident(2, 7));
  }
  EXPECT_TRUE(cat->matches(2, 7, w));  // the bytes were not reused under us
  t->release(2, 7);
  EXPECT_EQ(t->pins(2, 7), 1);
  t->release(2, 7);
  EXPECT_THROW(t->release(2, 7), std::logic_error);
  for (int e = 0; e < 8; ++e) t->acquire(0, e), t->release(0, e);
  EXPECT_FALSE(t->resident(2, 7));  // unpinned, it can go
}

TEST_F(Tiered, AllPinnedAndFullIsAnErrorNotAHang) {
  auto cat = fake();
  auto t = tier(cat, 2 * kExpert);
  t->acquire(0, 0);
  t->acquire(0, 1);
  try {
    t->acquire(0, 2);
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("ram budget 64.0 KiB is full of pinned experts (2 pinned, 0 loading)"), std::string::npos) << m;
    EXPECT_NE(m.find("layer 0 expert 2"), std::string::npos) << m;
    EXPECT_NE(m.find("raise --ram-budget"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos);
  }
  EXPECT_FALSE(t->resident(0, 2));
  EXPECT_FALSE(t->prefetch(0, 2));  // a prefetch just declines
  t->release(0, 0);
  EXPECT_TRUE(cat->matches(0, 2, t->acquire(0, 2)));
  EXPECT_FALSE(t->resident(0, 0));
}

TEST_F(Tiered, BudgetNeverExceededUnderRandomAccess) {
  test::FakeSpec spec;
  spec.n_experts = 16;
  spec.inter_step = 24;  // three buffer sizes compete for the pool
  spec.compress_odd = true;
  auto cat = fake(spec);
  const uint64_t budget = 10 * expert_cache_bytes(cat->record(2, 0));
  auto t = tier(cat, budget);
  std::mt19937 rng(11);
  std::vector<ExpertKey> held;
  for (int i = 0; i < 3000; ++i) {
    if (held.size() < 3 && rng() % 3 != 0) {
      const ExpertKey k{int(rng() % 3), int(rng() % 16)};
      const ExpertWeights w = t->acquire(k.layer, k.expert);
      ASSERT_TRUE(cat->matches(k.layer, k.expert, w)) << "step " << i;
      held.push_back(k);
    } else if (!held.empty()) {
      const size_t j = rng() % held.size();
      t->release(held[j].layer, held[j].expert);
      held.erase(held.begin() + ptrdiff_t(j));
    }
    const TierStats s = t->stats();
    ASSERT_LE(s.allocated_bytes, budget) << "step " << i;
    ASSERT_LE(s.resident_bytes, s.allocated_bytes);
    ASSERT_LE(s.peak_allocated_bytes, budget);
  }
  for (const ExpertKey& k : held) t->release(k.layer, k.expert);
}

TEST_F(Tiered, ChecksumIsVerifiedOncePerRecord) {
  test::FakeSpec spec;
  spec.compress_odd = true;
  auto cat = fake(spec);
  auto t = tier(cat, 3 * kExpert);
  for (int pass = 0; pass < 4; ++pass)
    for (int l = 0; l < 3; ++l)
      for (int e = 0; e < 8; ++e) t->acquire(l, e), t->release(l, e);
  const TierStats s = t->stats();
  EXPECT_GE(s.total.misses, 4u * 24u);  // every record read four times...
  for (int l = 0; l < 3; ++l)
    for (int e = 0; e < 8; ++e) EXPECT_EQ(cat->verify_count(l, e), 1) << l << " " << e;  // ...verified once
  EXPECT_EQ(s.checksum_verifications, 24u);
}

TEST_F(Tiered, CorruptRecordIsOneLineNamingLayerAndExpert) {
  auto cat = fake();
  cat->corrupt(1, 2);
  auto t = tier(cat, 3 * kExpert);
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      t->acquire(1, 2);
      ADD_FAILURE();
    } catch (const std::runtime_error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("layer 1 expert 2: checksum mismatch"), std::string::npos) << m;
      EXPECT_NE(m.find(cat->path().string()), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    EXPECT_FALSE(t->resident(1, 2));
    EXPECT_EQ(t->pins(1, 2), 0);
  }
  // The tier stays usable and its buffer went back to the pool.
  for (int e = 0; e < 8; ++e)
    if (e != 2) {
      EXPECT_TRUE(cat->matches(1, e, t->acquire(1, e)));
      t->release(1, e);
    }
  EXPECT_LE(t->stats().allocated_bytes, 3 * kExpert);
}

// One batch, one bad record: each record is published as it lands, so the good ones stay
// resident (unpinned: the caller got an exception, not views) and the bad one is absent.
TEST_F(Tiered, ABatchWithACorruptRecordKeepsTheGoodOnesUnpinned) {
  auto cat = fake();
  cat->corrupt(1, 2);
  for (const char* io : {"uring", "pread"}) {
    auto t = tier(cat, 6 * kExpert, io);
    const std::vector<int> want = {1, 2, 3};
    std::vector<ExpertWeights> out(want.size());
    try {
      t->acquire_many(1, want, out.data());
      ADD_FAILURE() << io;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("layer 1 expert 2: checksum mismatch"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(t->resident(1, 2)) << io;
    for (int e : {1, 3}) {
      EXPECT_TRUE(t->resident(1, e)) << io << " " << e;
      EXPECT_EQ(t->pins(1, e), 0) << io << " " << e;
      EXPECT_TRUE(cat->matches(1, e, t->acquire(1, e))) << io << " " << e;  // a hit, correct bytes
      t->release(1, e);
    }
    EXPECT_LE(t->stats().allocated_bytes, 6 * kExpert);
  }
}

TEST_F(Tiered, ConstructorRejectsSmallBudgetsAndBadRecords) {
  auto cat = fake();
  try {
    tier(cat, 3 * kExpert, "uring", 4);
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "ram budget 96.0 KiB holds fewer experts than one layer's top-k (4 x 32.0 KiB); raise --ram-budget");
  }
  EXPECT_NO_THROW(tier(cat, 4 * kExpert, "uring", 4));
  // A reader over a shorter file than the catalog describes.
  const auto other = dir_ / "short.bin";
  std::filesystem::copy_file(cat->path(), other);
  std::filesystem::resize_file(other, 64 << 10);
  TierOptions o;
  o.budget_bytes = 1 << 20;
  try {
    TieredExperts t(cat, make_reader("pread", other), std::move(o));
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("the file is truncated"), std::string::npos) << e.what();
  }
  auto t = tier(cat, 4 * kExpert);
  EXPECT_THROW(t->acquire(3, 0), std::out_of_range);
  EXPECT_THROW(t->acquire(0, 8), std::out_of_range);
  EXPECT_THROW(t->acquire(-1, 0), std::out_of_range);
}

TEST_F(Tiered, PrefetchLoadsWithoutPinning) {
  auto cat = fake();
  auto t = tier(cat, 3 * kExpert, "uring", 0, /*prefetch_share=*/1.0);
  EXPECT_TRUE(t->prefetch(0, 5));
  EXPECT_TRUE(t->resident(0, 5));
  EXPECT_EQ(t->pins(0, 5), 0);
  EXPECT_TRUE(cat->matches(0, 5, t->acquire(0, 5)));
  t->release(0, 5);
  const TierStats s = t->stats();
  EXPECT_EQ(s.total.prefetches, 1u);
  EXPECT_EQ(s.total.prefetch_bytes, kExpert);
  EXPECT_EQ(s.layers[0].prefetches, 1u);
  EXPECT_EQ(s.total.disk_bytes(), kExpert);
  EXPECT_EQ(s.total.hits, 1u);
  EXPECT_EQ(s.total.misses, 0u);
  EXPECT_EQ(s.total.bytes_read, 0u);
  EXPECT_EQ(s.total.prefetch_used, 1u);  // the acquire found it: a miss avoided
  EXPECT_DOUBLE_EQ(s.total.prefetch_precision(), 1.0);
}

TEST_F(Tiered, PrefetchStaysWithinItsShareOfTheBudget) {
  auto cat = fake();
  auto t = tier(cat, 8 * kExpert, "uring", 0, /*prefetch_share=*/0.25);
  const std::vector<ExpertKey> keys = {{0, 1}, {0, 2}, {0, 3}, {0, 4}, {1, 0}};
  EXPECT_EQ(t->prefetch_many(keys), 2u);  // 2 of 8 experts' room, taken in rank order
  EXPECT_TRUE(t->resident(0, 1));
  EXPECT_TRUE(t->resident(0, 2));
  EXPECT_FALSE(t->present(0, 3));
  // Using one frees its share: the next prefetch gets exactly one more.
  t->acquire(0, 1);
  t->release(0, 1);
  EXPECT_EQ(t->prefetch_many(keys), 1u);
  EXPECT_TRUE(t->resident(0, 3));
  EXPECT_EQ(t->prefetch_many(keys), 0u);  // 2 and 3 still unused: share full
}

// The current step's wanted experts are no guess: the scheduler streams them in past the share
// that caps guesses, while a guess still stops at it.
TEST_F(Tiered, WantedExpertsPassTheGuessShare) {
  auto cat = fake();
  auto t = tier(cat, 8 * kExpert, "uring", 0, /*prefetch_share=*/0.25);
  const std::vector<int32_t> wanted = {1, 2, 3, 4};
  t->set_wanted(0, wanted);
  const std::vector<ExpertKey> keys = {{0, 1}, {0, 2}, {0, 3}, {0, 4}};
  EXPECT_EQ(t->prefetch_many(keys), 4u);  // a guess would have stopped at 2
  const std::vector<ExpertKey> guess = {{1, 0}};
  EXPECT_EQ(t->prefetch_many(guess), 0u);  // the share is full of unused prefetches
  EXPECT_FALSE(t->present(1, 0));
}

TEST_F(Tiered, PrefetchReadsLeaveRoomForOneStepsDemand) {
  auto cat = fake();
  // The budget holds exactly one step's top-2: a prefetch in flight (unevictable) could make
  // the next demand fail, so none may start.
  auto t = tier(cat, 2 * kExpert, "uring", /*top_k=*/2, /*prefetch_share=*/1.0);
  const std::vector<ExpertKey> keys = {{0, 1}};
  EXPECT_EQ(t->prefetch_many(keys), 0u);
  auto t3 = tier(cat, 3 * kExpert, "uring", /*top_k=*/2, /*prefetch_share=*/1.0);
  const std::vector<ExpertKey> two = {{0, 1}, {0, 2}};
  EXPECT_EQ(t3->prefetch_many(two), 1u);
}

TEST_F(Tiered, PrefetchNeverEvictsPinnedOrWantedExperts) {
  auto cat = fake();
  auto t = tier(cat, 4 * kExpert, "uring", 0, /*prefetch_share=*/1.0);
  for (int e = 0; e < 4; ++e) {
    t->acquire(0, e);
    if (e != 3) t->release(0, e);  // 3 stays pinned
  }
  const std::vector<int32_t> wanted = {0, 1};  // the current step needs these
  t->set_wanted(0, wanted);
  const std::vector<ExpertKey> keys = {{0, 4}, {0, 5}, {0, 6}};
  EXPECT_EQ(t->prefetch_many(keys), 1u);  // only expert 2 could make room
  EXPECT_TRUE(t->resident(0, 0));
  EXPECT_TRUE(t->resident(0, 1));
  EXPECT_TRUE(t->resident(0, 3));
  EXPECT_FALSE(t->resident(0, 2));
  EXPECT_TRUE(t->resident(0, 4));
  // A demand miss may still evict a wanted expert rather than fail.
  t->set_wanted(0, wanted);
  t->release(0, 3);
  t->acquire(0, 7);
  t->release(0, 7);
  EXPECT_EQ(t->stats().total.misses, 5u);
}

TEST_F(Tiered, UnusedPrefetchesAreCountedAsWastedWhenEvicted) {
  auto cat = fake();
  auto t = tier(cat, 3 * kExpert, "uring", 0, /*prefetch_share=*/1.0);
  const std::vector<ExpertKey> keys = {{0, 0}, {0, 1}};
  EXPECT_EQ(t->prefetch_many(keys), 2u);
  t->acquire(0, 0);  // used
  t->release(0, 0);
  // Layer 0's step ran without expert 1: a wrong guess, now an ordinary victim.
  const std::vector<int32_t> step = {0, 2};
  t->set_wanted(0, step);
  for (int e = 2; e < 5; ++e) {  // demand misses push expert 1 out unused
    t->acquire(0, e);
    t->release(0, e);
  }
  EXPECT_FALSE(t->resident(0, 1));
  const TierStats s = t->stats();
  EXPECT_EQ(s.total.prefetches, 2u);
  EXPECT_EQ(s.total.prefetch_used, 1u);
  EXPECT_EQ(s.total.prefetch_wasted, 1u);
  EXPECT_EQ(s.total.prefetch_wasted_bytes, kExpert);
  EXPECT_DOUBLE_EQ(s.total.prefetch_precision(), 0.5);
  EXPECT_DOUBLE_EQ(s.total.prefetch_recall(), 1.0 / 4.0);  // 1 used of (1 used + 3 misses)
}

TEST_F(Tiered, FreshGuessesOutliveOtherExpertsUntilTheirLayerRuns) {
  auto cat = fake();
  auto t = tier(cat, 3 * kExpert, "uring", 0, /*prefetch_share=*/1.0);
  const std::vector<ExpertKey> guess = {{1, 5}};
  EXPECT_EQ(t->prefetch_many(guess), 1u);  // the oldest entry, LRU's first victim by age
  for (int e = 0; e < 4; ++e) {  // layer 0 demand churns through the other two buffers
    t->acquire(0, e);
    t->release(0, e);
  }
  EXPECT_TRUE(t->resident(1, 5));  // still waiting for layer 1
  const std::vector<int32_t> routed = {2};
  t->set_wanted(1, routed);  // layer 1 ran and did not want it
  t->acquire(0, 6);
  t->release(0, 6);
  EXPECT_FALSE(t->resident(1, 5));
  EXPECT_EQ(t->stats().total.prefetch_wasted, 1u);
}

TEST_F(Tiered, PerLayerSplitTakesVictimsFromTheLayerOverItsShare) {
  auto cat = fake();  // 3 MoE layers
  TierOptions o;
  o.budget_bytes = 6 * kExpert;  // 2 experts per layer
  o.split_per_layer = true;
  TieredExperts t(cat, make_reader("uring", cat->path()), std::move(o));
  auto use = [&](int l, int e) {
    t.acquire(l, e);
    t.release(l, e);
  };
  use(1, 0);  // the oldest: a single LRU pool would evict it first
  use(0, 0);
  use(0, 1);
  use(2, 0);
  use(2, 1);
  use(1, 1);  // the budget is full, every layer at its share
  use(0, 2);  // layer 0 makes room among its own: (0, 0) goes, not the older (1, 0)
  EXPECT_TRUE(t.resident(1, 0));
  EXPECT_FALSE(t.resident(0, 0));
  EXPECT_TRUE(t.resident(0, 1));
  use(1, 2);  // and layer 1 among its own
  EXPECT_FALSE(t.resident(1, 0));
  EXPECT_TRUE(t.resident(2, 0));
  EXPECT_EQ(t.stats().resident_experts, 6u);
}

TEST_F(Tiered, DemandListenerBracketsDemandReadsOnly) {
  auto cat = fake();
  auto t = tier(cat, 4 * kExpert, "uring", 0, /*prefetch_share=*/1.0);
  std::vector<bool> calls;
  t->set_demand_listener([&](bool on) { calls.push_back(on); });
  t->prefetch(0, 1);  // not demand
  EXPECT_TRUE(calls.empty());
  t->acquire(0, 1);  // a hit: no read
  t->release(0, 1);
  EXPECT_TRUE(calls.empty());
  const std::vector<int> two = {2, 3};
  ExpertWeights w[2];
  t->acquire_many(0, two, w);  // one batch of two misses
  EXPECT_EQ(calls, (std::vector<bool>{true, false}));
  t->release(0, 2);
  t->release(0, 3);
}

TEST_F(Tiered, ClearEvictsEverythingUnpinned) {
  auto cat = fake();
  auto t = tier(cat, 4 * kExpert);
  t->acquire(0, 0);
  t->acquire(0, 1);
  t->release(0, 1);
  t->clear();
  EXPECT_TRUE(t->resident(0, 0));
  EXPECT_FALSE(t->resident(0, 1));
  t->release(0, 0);
}

TEST_F(Tiered, SeveralThreadsAcquireAndRelease) {
  test::FakeSpec spec;
  spec.n_experts = 16;
  spec.compress_odd = true;
  auto cat = fake(spec);
  auto t = tier(cat, 8 * kExpert);
  constexpr int kThreads = 4, kOps = 400;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] {
      std::mt19937 rng(uint32_t(100 + i));
      for (int n = 0; n < kOps; ++n) {
        const int l = int(rng() % 3), e = int(rng() % 6);  // overlapping hot set: concurrent loads of one expert
        const ExpertWeights w = t->acquire(l, e);
        if (!cat->matches(l, e, w)) ++bad;
        t->release(l, e);
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  const TierStats s = t->stats();
  EXPECT_EQ(s.total.acquires(), uint64_t(kThreads * kOps));
  EXPECT_LE(s.peak_allocated_bytes, 8 * kExpert);
  for (int l = 0; l < 3; ++l)
    for (int e = 0; e < 6; ++e) EXPECT_EQ(t->pins(l, e), 0);
}

// A reader whose first read waits until the test opens its gate: an expert stays Loading (by
// another thread) for as long as the test needs.
class GatedReader final : public ExpertReader {
 public:
  explicit GatedReader(std::unique_ptr<ExpertReader> inner) : inner_(std::move(inner)) {}
  std::string_view kind() const override { return inner_->kind(); }
  bool direct() const override { return inner_->direct(); }
  const std::filesystem::path& path() const override { return inner_->path(); }
  uint64_t file_size() const override { return inner_->file_size(); }
  void read(std::span<const ReadRequest> requests, const ReadDone& done) override {
    if (!first_.exchange(true)) {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return open_; });
    }
    inner_->read(requests, done);
  }
  void open() {
    {
      std::lock_guard lk(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::unique_ptr<ExpertReader> inner_;
  std::atomic<bool> first_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// acquire_many with an expert another thread is loading, whose load fails (a corrupt record):
// it waits, reads it again itself, fails, and leaves nothing it pinned pinned.
TEST_F(Tiered, AcquireManyWaitingOnAFailedLoadLeavesNothingPinned) {
  auto cat = fake();
  cat->corrupt(1, 2);
  auto gated = std::make_unique<GatedReader>(make_reader("uring", cat->path()));
  GatedReader* gate = gated.get();
  TierOptions o;
  o.budget_bytes = 6 * kExpert;
  TieredExperts t(cat, std::move(gated), std::move(o));
  std::thread loader([&] { EXPECT_THROW(t.prefetch(1, 2), std::runtime_error); });  // held at the gate
  while (!t.present(1, 2)) std::this_thread::yield();
  std::thread acquirer([&] {
    const std::vector<int> want = {1, 2, 3};  // 1 and 3 are read by this call, 2 is waited for
    std::vector<ExpertWeights> out(want.size());
    EXPECT_THROW(t.acquire_many(1, want, out.data()), std::runtime_error);
  });
  while (t.stats().inflight_waits == 0) std::this_thread::yield();  // waiting on expert 2
  gate->open();
  loader.join();
  acquirer.join();
  for (int e : {1, 2, 3}) EXPECT_EQ(t.pins(1, e), 0) << "expert " << e;
  EXPECT_FALSE(t.resident(1, 2));
  EXPECT_TRUE(t.resident(1, 1));
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

class TieredBatch : public ::testing::Test {
 protected:
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::filesystem::path dir_ = test::tier_temp_dir("tiered-batch");
};

// acquire_many: misses read in one batch, right bytes, pinned until released, stats count
// each expert once, and a full budget of pins is an error that leaves nothing pinned.
TEST_F(TieredBatch, AcquireManyReadsMissesTogether) {
  test::FakeSpec spec;
  spec.compress_odd = true;
  auto cat = std::make_shared<test::FakeCatalog>(dir_ / "fake.pack", spec);
  for (const char* io : {"uring", "pread", "mmap"}) {
    TierOptions o;
    o.budget_bytes = 6 * kExpert;
    TieredExperts t(cat, make_reader(io, cat->path()), std::move(o));
    const std::vector<int> first = {0, 2, 5}, second = {2, 3, 5, 6};
    std::vector<ExpertWeights> w(4);
    t.acquire_many(0, first, w.data());
    for (size_t j = 0; j < first.size(); ++j) EXPECT_TRUE(cat->matches(0, first[j], w[j])) << io;
    for (int e : first) EXPECT_EQ(t.pins(0, e), 1);
    for (int e : first) t.release(0, e);
    t.acquire_many(0, second, w.data());
    for (size_t j = 0; j < second.size(); ++j) EXPECT_TRUE(cat->matches(0, second[j], w[j])) << io;
    const TierStats s = t.stats();
    EXPECT_EQ(s.layers[0].misses, 5u);  // 0, 2, 5, then 3, 6
    EXPECT_EQ(s.layers[0].hits, 2u);    // 2 and 5 again
    EXPECT_LE(s.allocated_bytes, 6 * kExpert);
    // Four pinned plus three more cannot fit six slots: error, and the three are not left pinned.
    const std::vector<int> more = {0, 1, 7};
    EXPECT_THROW(t.acquire_many(0, more, w.data()), std::runtime_error);
    for (int e : more) EXPECT_EQ(t.pins(0, e), 0) << io;
    for (int e : second) t.release(0, e);
    t.acquire_many(0, more, w.data());  // room again
    for (int e : more) t.release(0, e);
  }
}

}  // namespace
}  // namespace moe
