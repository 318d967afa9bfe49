// 1 MB texts of long runs (combining marks, spaces, digits, letters) give exactly the tokens of
// HF tokenizers (count and FNV-1a hash in pathological_golden.txt, written by
// scripts/tokenizer-pathological.py). Timing is reported by bench/bench_tokenizer, not asserted.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "tests/tokenizer/pathological_texts.h"
#include "tests/tokenizer/test_util.h"

namespace moe {
namespace {

TEST(Pathological, LongRunsMatchHfGolden) {
  std::ifstream in(test::source_dir() / "tests" / "tokenizer" / "pathological_golden.txt");
  ASSERT_TRUE(in) << "missing tests/tokenizer/pathological_golden.txt";
  std::map<std::pair<std::string, std::string>, std::pair<size_t, std::string>> golden;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string tok, name, hash;
    size_t count = 0;
    ls >> tok >> name >> count >> hash;
    golden[{tok, name}] = {count, hash};
  }
  auto texts = test::pathological_texts();
  for (const auto& path : test::pathological_tokenizers()) {
    if (!std::filesystem::exists(test::source_dir() / path)) continue;
    Tokenizer t = Tokenizer::load(test::source_dir() / path);
    for (const auto& [name, text] : texts) {
      auto it = golden.find({path, name});
      ASSERT_NE(it, golden.end()) << path << " " << name << ": rerun scripts/tokenizer-pathological.py";
      std::vector<int32_t> ids = t.encode(text, false);
      char hash[17];
      std::snprintf(hash, sizeof hash, "%016llx",
                    static_cast<unsigned long long>(test::fnv1a_ids(ids)));
      EXPECT_EQ(ids.size(), it->second.first) << path << " " << name;
      EXPECT_EQ(std::string(hash), it->second.second) << path << " " << name;
    }
  }
}

}  // namespace
}  // namespace moe
