// StopMatcher (serve/scheduler/stop_matcher.h): streamed text cut at the first stop string,
// whatever the chunking, and never more held back than could still start one.
#include <gtest/gtest.h>

#include <random>

#include "serve/scheduler/stop_matcher.h"

using moe::serve::StopMatcher;

namespace {

struct Out {
  std::string text;
  bool stopped;
};

Out run(const std::vector<std::string>& stops, const std::vector<std::string>& pieces) {
  StopMatcher m(stops);
  Out o{{}, false};
  for (const auto& p : pieces) o.text += m.push(p);
  o.text += m.finish();
  o.stopped = m.stopped();
  return o;
}

// Splits at UTF-8 character boundaries only (the decoder never yields partial characters).
std::vector<std::string> chunks(const std::string& s, std::mt19937& rng) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t n = 1 + rng() % 4, j = i;
    for (size_t k = 0; k < n && j < s.size(); ++k) {
      ++j;
      while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
    }
    out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace

TEST(StopMatcher, CutsBeforeTheEarliestStopWhateverTheChunks) {
  const std::string text = "Answer: 42\n\nQuestion: next é😀 END tail";
  const std::vector<std::string> stops{"END", "\n\nQuestion:", "😀 E"};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const Out o = run(stops, chunks(text, rng));
    EXPECT_TRUE(o.stopped);
    EXPECT_EQ(o.text, "Answer: 42");
  }
}

TEST(StopMatcher, HoldsBackOnlyWhatCouldStartAStop) {
  StopMatcher m({"</answer>"});
  EXPECT_EQ(m.push("abc</ans"), "abc");
  EXPECT_EQ(m.push("x"), "</ansx");  // no longer a possible start: released at once
  EXPECT_EQ(m.push("<"), "");
  EXPECT_EQ(m.finish(), "<");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, MultiByteStopAcrossPieces) {
  const Out o = run({"é!"}, {"caf", "\xc3\xa9", "!", " more"});
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "caf");
}

TEST(StopMatcher, NoStopsPassesEverythingThrough) {
  StopMatcher m({"", ""});
  EXPECT_EQ(m.push("a<b"), "a<b");
  EXPECT_EQ(m.finish(), "");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, NothingAfterTheStop) {
  StopMatcher m({"x"});
  EXPECT_EQ(m.push("abxcd"), "ab");
  EXPECT_EQ(m.push("more"), "");
  EXPECT_EQ(m.finish(), "");
  EXPECT_EQ(m.matched(), "x");
}
