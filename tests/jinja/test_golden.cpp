// Every real chat template (tests/fixtures/chat_templates) x every message set renders byte for
// byte as transformers' apply_chat_template did (or raises where jinja2 raised).
#include <gtest/gtest.h>

#include <cstdio>

#include "jinja/golden.h"

namespace moe::test {
namespace {

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, MatchesTransformers) {
  const GoldenTemplate g = load_golden(GetParam());
  const chat::ChatTemplate ct(g.source, golden_special_tokens());
  for (const GoldenCase& c : g.cases) EXPECT_EQ(compare_case(ct, c), "") << g.name << " / " << c.name;
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param.substr(0, info.param.size() - 6);  // drop ".jinja"
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Templates, Golden, ::testing::ValuesIn(golden_template_names()), test_name);

// The summary table for the record: template, cases, identical (raising where jinja2 raised counts).
TEST(GoldenTable, AllTemplates) {
  size_t total = 0, same = 0;
  std::printf("%-56s %5s %9s\n", "template", "cases", "identical");
  for (const std::string& name : golden_template_names()) {
    const GoldenTemplate g = load_golden(name);
    const chat::ChatTemplate ct(g.source, golden_special_tokens());
    size_t ok = 0;
    for (const GoldenCase& c : g.cases) ok += compare_case(ct, c).empty();
    std::printf("%-56s %5zu %9zu\n", name.c_str(), g.cases.size(), ok);
    total += g.cases.size();
    same += ok;
  }
  std::printf("%-56s %5zu %9zu\n", "TOTAL", total, same);
  EXPECT_EQ(same, total);
}

}  // namespace
}  // namespace moe::test
