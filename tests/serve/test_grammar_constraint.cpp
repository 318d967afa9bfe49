// A grammar as the scheduler's constraint on the tiny model: outputs follow the schema whatever
// the sampling, the request ends as soon as the grammar is complete, constrained tokens are the
// same alone or among other requests, and `moe run`'s path (generate() with a constrain hook)
// gives the same tokens as the scheduler.
#include "scheduler_util.h"

#include <nlohmann/json.hpp>

#include "serve/grammar/json_schema.h"
#include "serve/grammar/token_vocab.h"
#include "serve/scheduler/grammar_constraint.h"

using namespace moe;
using namespace moe::serve;
using json = nlohmann::ordered_json;

namespace {

std::vector<int32_t> stop_ids() { return test::tiny_session().stop_ids(); }

std::shared_ptr<const grammar::CompiledGrammar> schema_grammar() {
  static auto g = [] {
    const json schema = json::parse(R"({"type":"object","properties":{
        "name":{"type":"string","maxLength":12},"n":{"type":"integer","minimum":0,"maximum":99},
        "ok":{"type":"boolean"}},"required":["name","n","ok"],"additionalProperties":false})");
    auto vocab = grammar::TokenVocab::from_tokenizer(test::tiny_session().tokenizer(), stop_ids());
    return grammar::CompiledGrammar::compile(grammar::json_schema_grammar(schema), vocab);
  }();
  return g;
}

GenerationRequest constrained(const std::string& prompt, uint64_t seed, float temperature = 1.0f) {
  GenerationRequest r = test::request(test::tiny_session().tokenizer().encode(prompt, false), 200, temperature, seed);
  r.stop_ids = stop_ids();
  r.constraint = std::make_shared<GrammarConstraint>(schema_grammar());
  return r;
}

void expect_valid(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << text;
  ASSERT_TRUE(j.is_object()) << text;
  EXPECT_EQ(j.size(), 3u) << text;
  EXPECT_TRUE(j["name"].is_string() && j["name"].get<std::string>().size() <= 12 * 4) << text;
  EXPECT_TRUE(j["n"].is_number_integer() && j["n"].get<int>() >= 0 && j["n"].get<int>() <= 99) << text;
  EXPECT_TRUE(j["ok"].is_boolean()) << text;
}

const char* const kPrompt = "<|im_start|>user\nDescribe yourself as JSON.<|im_end|>\n<|im_start|>assistant\n";

}  // namespace

TEST(GrammarConstraint, OutputsFollowTheSchema) {
  Session& s = test::tiny_session();
  SchedulerOptions o;
  o.parallel = 4;
  Scheduler sch(s.engine(), s.tokenizer(), o);
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (uint64_t seed = 1; seed <= 8; ++seed) hs.push_back(sch.submit(constrained(kPrompt, seed, seed % 2 ? 1.5f : 0.0f)));
  for (auto& h : hs) {
    const test::Result r = test::collect(*h);
    EXPECT_EQ(r.finish, FinishReason::stop) << r.text;
    expect_valid(r.text);
  }
}

TEST(GrammarConstraint, SameTokensAloneAndAmongOthersAndAsMoeRun) {
  Session& s = test::tiny_session();
  SchedulerOptions o;
  o.parallel = 4;
  Scheduler sch(s.engine(), s.tokenizer(), o);
  const test::Result alone = test::collect(*sch.submit(constrained(kPrompt, 7)));
  std::vector<std::shared_ptr<RequestHandle>> hs;
  hs.push_back(sch.submit(test::request(s.tokenizer().encode("def f(x):", false), 30, 1.0f, 3)));
  hs.push_back(sch.submit(constrained(kPrompt, 7)));
  hs.push_back(sch.submit(constrained("{\"name\": ", 9)));
  test::collect(*hs[0]);
  const test::Result together = test::collect(*hs[1]);
  test::collect(*hs[2]);
  EXPECT_EQ(alone.tokens, together.tokens);
  EXPECT_EQ(alone.text, together.text);
  // generate() with the constrain hook, as `moe run --json-schema` drives it (greedy: the
  // samplers differ in how they draw, not in the argmax).
  const test::Result greedy = test::collect(*sch.submit(constrained(kPrompt, 1, 0.0f)));
  GrammarConstraint c(schema_grammar());
  GenerateOptions g;
  g.max_new_tokens = 200;
  g.stop_ids = stop_ids();
  g.sampling.temperature = 0;
  g.constrain = [&](size_t, std::span<float> l) { c.apply(l); };
  auto out = generate(s.engine(), {s.tokenizer().encode(kPrompt, false)}, g, [&](size_t, int32_t t) { c.accept(t); })[0];
  if (!out.empty() && std::find(g.stop_ids.begin(), g.stop_ids.end(), out.back()) != g.stop_ids.end()) out.pop_back();
  EXPECT_EQ(s.tokenizer().decode(out), greedy.text);
  expect_valid(greedy.text);
  EXPECT_FALSE(c.broken());
}

TEST(GrammarConstraint, MaskTimesAreRecorded) {
  GrammarConstraint c(schema_grammar());
  std::vector<float> logits(size_t(test::tiny_session().model().cfg.vocab_size), 0.0f);
  c.apply(logits);
  ASSERT_EQ(c.mask_seconds().size(), 1u);
  // Only '{' may start the object: every other token is masked.
  size_t finite = 0;
  for (float x : logits) finite += std::isfinite(x);
  EXPECT_GE(finite, 1u);
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isfinite(logits[i])) {
      EXPECT_EQ(test::tiny_session().tokenizer().token_bytes(int32_t(i))[0], '{');
    }
  }
}
