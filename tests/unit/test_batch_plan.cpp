// plan_batch (runtime/batch_plan.h): the flattening and checks both engines share.
#include <gtest/gtest.h>

#include <map>
#include <stdexcept>

#include "runtime/batch_plan.h"

namespace moe {
namespace {

std::function<int64_t(SeqId)> lengths(std::map<SeqId, int64_t> m) {
  return [m](SeqId s) {
    auto it = m.find(s);
    if (it == m.end()) throw std::invalid_argument("unknown sequence id " + std::to_string(s));
    return it->second;
  };
}

TEST(BatchPlan, FlattensItemsInOrder) {
  const std::vector<int32_t> a = {5, 6, 7}, b = {9}, c = {1, 2};
  // Sequence 0 appears twice: its second item continues after the first.
  const std::vector<BatchItem> batch = {{0, a, false}, {3, b, false}, {0, c, true}};
  const BatchPlan p = plan_batch(batch, lengths({{0, 4}, {3, 10}}), 100, 16);
  EXPECT_EQ(p.tokens(), 6);
  EXPECT_EQ(p.ids, (std::vector<int32_t>{5, 6, 7, 9, 1, 2}));
  EXPECT_EQ(p.seq, (std::vector<int32_t>{0, 0, 0, 3, 0, 0}));
  EXPECT_EQ(p.pos, (std::vector<int32_t>{4, 5, 6, 10, 7, 8}));
  EXPECT_EQ(p.logit_rows, (std::vector<int64_t>{2, 3, 4, 5}));  // last of a, last of b, all of c
  ASSERT_EQ(p.items.size(), 3u);
  EXPECT_EQ(p.items[2].row, 4);
  EXPECT_EQ(p.items[2].start, 7);
  EXPECT_EQ(p.added.at(0), 5);
  EXPECT_EQ(p.added.at(3), 1);
}

TEST(BatchPlan, RefusesBadBatchesWithOneLine) {
  const std::vector<int32_t> ok = {1}, empty = {}, bad = {16};
  auto msg = [](const std::vector<BatchItem>& batch, int64_t max_len) {
    try {
      plan_batch(batch, lengths({{0, 4}}), max_len, 16);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(msg({{7, ok, false}}, 100), "unknown sequence id 7");
  EXPECT_EQ(msg({{0, empty, false}}, 100), "sequence 0: no tokens to process");
  EXPECT_EQ(msg({{0, bad, false}}, 100), "token id 16 is outside the vocabulary [0, 16)");
  EXPECT_EQ(msg({{0, ok, false}, {0, ok, false}}, 5), "sequence 0: 6 tokens exceed the maximum length 5");
}

}  // namespace
}  // namespace moe
