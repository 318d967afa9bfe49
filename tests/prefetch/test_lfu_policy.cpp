// The LFU eviction policy: the least used goes, ties to the least recent, counts decay so a
// formerly hot expert can go, evicted experts keep (a bounded amount of) history, pinned
// experts are skipped. And make_policy by name.
#include <gtest/gtest.h>

#include <set>

#include "storage/tier/eviction_policy.h"

namespace moe {
namespace {

constexpr ExpertKey A{0, 1}, B{0, 2}, C{3, 1}, D{1, 7};
const auto kAny = [](ExpertKey) { return true; };
// Counts practically do not decay: the test reasons in whole counts.
const LfuOptions kNoDecay{1e12, 0};

void use(EvictionPolicy& p, ExpertKey k, int hits) {
  for (int i = 0; i < hits; ++i) p.on_access(k);
}

// An LFU policy without decay holding `keys`, inserted in that order.
std::unique_ptr<EvictionPolicy> lfu_holding(std::initializer_list<ExpertKey> keys) {
  auto p = make_lfu_policy(kNoDecay);
  for (ExpertKey k : keys) p->on_insert(k);
  return p;
}

TEST(LfuPolicy, EvictsTheLeastFrequent) {
  auto p = lfu_holding({A, B, C});
  use(*p, A, 3);
  use(*p, C, 1);
  EXPECT_EQ(p->choose_victim(kAny), B);
  use(*p, B, 5);
  EXPECT_EQ(p->choose_victim(kAny), C);
}

TEST(LfuPolicy, TiesGoToTheLeastRecentlyUsed) {
  auto p = lfu_holding({A, B, C});
  EXPECT_EQ(p->choose_victim(kAny), A);
  use(*p, A, 1);
  use(*p, B, 1);
  use(*p, C, 1);
  EXPECT_EQ(p->choose_victim(kAny), A);  // all at 2 now; A's last use is the oldest
}

TEST(LfuPolicy, DecayLetsAFormerlyHotExpertGo) {
  // A is used 30 times, then B and C 20 times each. Without decay A stays (31 > 21); with a
  // half-life of 8 uses A's count has halved five times since and A goes.
  for (const auto& [opts, victim] : {std::pair{kNoDecay, B}, std::pair{LfuOptions{8, 0}, A}}) {
    auto p = make_lfu_policy(opts);
    p->on_insert(A);
    use(*p, A, 30);
    p->on_insert(B);
    p->on_insert(C);
    for (int i = 0; i < 20; ++i) {
      p->on_access(B);
      p->on_access(C);
    }
    EXPECT_EQ(p->choose_victim(kAny), victim) << "half-life " << opts.half_life;
  }
}

TEST(LfuPolicy, DefaultHalfLifeFollowsTheCacheSize) {
  // 4 residents: the half-life is 16 uses. A's 30 early uses decay away while B, C, D are used.
  auto p = make_lfu_policy();
  p->on_insert(A);
  use(*p, A, 30);
  for (ExpertKey k : {B, C, D}) p->on_insert(k);
  for (int i = 0; i < 40; ++i)
    for (ExpertKey k : {B, C, D}) p->on_access(k);
  EXPECT_EQ(p->choose_victim(kAny), A);
}

TEST(LfuPolicy, AnEvictedExpertComesBackWithItsHistory) {
  auto p = make_lfu_policy(kNoDecay);
  p->on_insert(A);
  use(*p, A, 10);
  p->on_evict(A);
  p->on_insert(B);
  use(*p, B, 3);
  p->on_insert(A);  // 12 uses, not 1
  EXPECT_EQ(p->choose_victim(kAny), B);
}

TEST(LfuPolicy, HistoryIsBoundedWeakestForgottenFirst) {
  // history 1: evicting B (6 uses) forgets A (2 uses), so A comes back at 1 and goes before
  // C (2 uses); remembered, A would have 3 and C would go.
  for (const auto& [history, victim] : {std::pair{size_t(1), A}, std::pair{size_t(8), C}}) {
    auto p = make_lfu_policy(LfuOptions{1e12, history});
    p->on_insert(A);
    use(*p, A, 1);
    p->on_evict(A);
    p->on_insert(B);
    use(*p, B, 5);
    p->on_evict(B);
    p->on_insert(C);
    use(*p, C, 1);
    p->on_insert(A);
    EXPECT_EQ(p->choose_victim(kAny), victim) << "history " << history;
  }
}

TEST(LfuPolicy, RespectsTheEvictablePredicate) {
  auto p = lfu_holding({A, B, C});
  use(*p, B, 1);
  use(*p, C, 2);
  const std::set<uint64_t> pinned = {A.packed()};
  EXPECT_EQ(p->choose_victim([&](ExpertKey k) { return !pinned.count(k.packed()); }), B);
  EXPECT_EQ(p->choose_victim([](ExpertKey k) { return k == C; }), C);
}

TEST(LfuPolicy, NulloptWhenNothingIsEvictable) {
  auto p = make_lfu_policy();
  EXPECT_EQ(p->choose_victim(kAny), std::nullopt);  // empty
  p->on_insert(A);
  p->on_insert(B);
  EXPECT_EQ(p->choose_victim([](ExpertKey) { return false; }), std::nullopt);
  p->on_evict(A);
  p->on_evict(B);
  EXPECT_EQ(p->choose_victim(kAny), std::nullopt);  // evicted experts are history, not candidates
  p->on_access(A);                                  // a hit on a non-resident key is ignored
  EXPECT_EQ(p->choose_victim(kAny), std::nullopt);
}

TEST(MakePolicy, ByNameAndErrorNamesTheChoices) {
  // Two experts of one layer used once each: LRU and LFU let the older go, nextuse the newer.
  for (const auto& [name, victim] : {std::pair{"lru", A}, std::pair{"lfu", A}, std::pair{"nextuse", B}}) {
    auto p = make_policy(name);
    ASSERT_NE(p, nullptr);
    p->on_insert(A);
    p->on_insert(B);
    EXPECT_EQ(p->choose_victim(kAny), victim) << name;
  }
  try {
    make_policy("mru");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "unknown eviction policy 'mru'; valid: lru, lfu, nextuse");
  }
}

}  // namespace
}  // namespace moe
