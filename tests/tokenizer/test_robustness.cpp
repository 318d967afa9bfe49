// Robustness: arbitrary bytes and ids never throw or produce invalid UTF-8; shared tokenizers
// are safe to use from several threads.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "runtime/tokenizer/unicode.h"
#include "tests/tokenizer/test_util.h"

namespace moe {
namespace {

TEST(Robustness, RandomBytesAndIdsNeverThrow) {
  auto dirs = test::fixture_dirs();
  if (dirs.empty()) GTEST_SKIP() << "no fixtures";
  std::mt19937 rng(42);
  for (const auto& d : dirs) {
    Tokenizer t = Tokenizer::load(d / "tokenizer.json");
    for (int round = 0; round < 200; ++round) {
      std::string bytes(rng() % 64, '\0');
      for (auto& c : bytes) c = static_cast<char>(rng() % 256);
      std::vector<int32_t> ids;
      EXPECT_NO_THROW(ids = t.encode(bytes)) << d;
      // Encoding invalid UTF-8 is the same as encoding its lossy conversion.
      EXPECT_EQ(ids, t.encode(tok::utf8_lossy(bytes))) << d;
      std::vector<int32_t> random_ids(rng() % 40);
      for (auto& id : random_ids) id = static_cast<int32_t>(rng() % (t.vocab_size() + 10)) - 5;
      std::string text;
      EXPECT_NO_THROW(text = t.decode(random_ids)) << d;
      EXPECT_TRUE(tok::is_valid_utf8(text)) << d;
      StreamDecoder sd(t);
      std::string streamed;
      for (int32_t id : random_ids) {
        std::string piece = sd.push(id);
        EXPECT_TRUE(tok::is_valid_utf8(piece)) << d;
        streamed += piece;
      }
      streamed += sd.finish();
      EXPECT_TRUE(tok::is_valid_utf8(streamed)) << d;
    }
  }
}

TEST(Robustness, ConcurrentEncodeMatchesSerial) {
  auto dirs = test::fixture_dirs();
  if (dirs.empty()) GTEST_SKIP() << "no fixtures";
  Tokenizer t = Tokenizer::load(dirs.front() / "tokenizer.json");
  std::vector<std::string> texts;
  for (int i = 0; i < 64; ++i) {
    texts.push_back("sample " + std::to_string(i * 7919) + " caf\xC3\xA9 \xE4\xB8\xAD words words " +
                    std::string(static_cast<size_t>(i % 5), ' ') + "end");
  }
  std::vector<std::vector<int32_t>> serial;
  for (const auto& s : texts) serial.push_back(t.encode(s));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int th = 0; th < 4; ++th) {
    threads.emplace_back([&, th] {
      Tokenizer local = t;  // copies share the implementation
      for (int rep = 0; rep < 20; ++rep) {
        for (size_t i = th; i < texts.size(); i += 2) {
          if (local.encode(texts[i]) != serial[i]) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace moe
