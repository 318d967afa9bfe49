// Routing traces: what TraceWriter writes read_trace reads back, weights rounded to 5
// significant digits, and every malformed line fails with "PATH:LINE: what is wrong".
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "prefetch/trace.h"
#include "trace_fixtures.h"

namespace moe {
namespace {

using test::make_header;
using test::make_record;
using test::TempFile;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Trace, WriteReadRoundTrip) {
  const TempFile f("trace.jsonl");
  const TraceHeader h = make_header(3, 16, 2, 4096, 2, /*dense_first=*/1);
  std::vector<TraceRecord> recs = {
      make_record(0, 1, {{3, 5}, {5, 0}, {15, 1}}),
      make_record(0, 2, {{1, 2}, {2, 3}, {4, 1}}, {{2, 1, 4}}),
      make_record(0, 3, {{7, 8}, {9, 8}, {8, 7}}, {{8, 7}, {}}),
      make_record(1, 1, {{3, 4}}, {}),
      make_record(1, 3, {{0, 1}}, {{}, {0, 1, 2, 3, 4, 5}}),
  };
  recs[0].seq = {0, 0, 1};
  recs[0].pos = {10, 11, 0};
  recs[0].weights = {0.7f, 0.3f, 0.123456789f, 0.876543211f, 1e-7f, 0.5f};
  {
    TraceWriter w(f.path, h);
    for (const auto& r : recs) w.write(r);
    w.flush();
  }
  const Trace t = read_trace(f.path);
  EXPECT_EQ(t.header.model, h.model);
  EXPECT_EQ(t.header.n_layers, 4);
  EXPECT_EQ(t.header.n_experts, h.n_experts);
  EXPECT_EQ(t.header.top_k, 2);
  EXPECT_EQ(t.header.expert_bytes, h.expert_bytes);
  EXPECT_EQ(t.header.lookahead, 2);
  EXPECT_EQ(t.header.predictor, "gate");
  ASSERT_EQ(t.records.size(), recs.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    const TraceRecord &a = recs[i], &b = t.records[i];
    EXPECT_EQ(b.step, a.step) << i;
    EXPECT_EQ(b.layer, a.layer) << i;
    EXPECT_EQ(b.seq, a.seq) << i;
    EXPECT_EQ(b.pos, a.pos) << i;
    EXPECT_EQ(b.experts, a.experts) << i;
    EXPECT_EQ(b.predicted, a.predicted) << i;
    ASSERT_EQ(b.weights.size(), a.weights.size());
    for (size_t j = 0; j < a.weights.size(); ++j) EXPECT_NEAR(b.weights[j], a.weights[j], 5e-5 * a.weights[j]) << i;
  }
}

TEST(Trace, WritesWeightsWithFiveDigitsAndOmitsEmptyPred) {
  const TempFile f("trace.jsonl");
  TraceRecord r = make_record(7, 0, {{1, 0}});
  r.weights = {0.123456789f, 0.876543211f};
  {
    TraceWriter w(f.path, make_header(1, 4, 2));
    w.write(r);
  }
  const std::string text = slurp(f.path);
  EXPECT_EQ(text.substr(0, 45), "{\"format\":\"moe-routing-trace\",\"version\":1,\"mo");
  EXPECT_NE(text.find("{\"step\":7,\"layer\":0,\"seq\":[0],\"pos\":[0],\"experts\":[[1,0]],"
                      "\"weights\":[[0.12346,0.87654]]}\n"),
            std::string::npos)
      << text;
}

TEST(Trace, WriterRejectsRecordsThatDoNotFitTheHeader) {
  const TempFile f("trace.jsonl");
  TraceWriter w(f.path, make_header(2, 8, 2, 0, 1, /*dense_first=*/1));
  auto fails = [&](const TraceRecord& r, const std::string& what) {
    try {
      w.write(r);
      ADD_FAILURE() << "no error for " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  fails(make_record(0, 0, {{1, 2}}), "layer 0 is dense");
  fails(make_record(0, 3, {{1, 2}}), "layer 3 out of range");
  fails(make_record(0, 1, {{1, 8}}), "expert id 8 out of range for layer 1 (8 experts)");
  fails(make_record(0, 1, {{1, 1}}), "expert 1 chosen twice");
  fails(make_record(0, 1, {{1, 2, 3}}), "token counts disagree");
  fails(make_record(0, 1, {}), "no tokens");
  fails(make_record(0, 1, {{1, 2}}, {{1}, {2}}), "pred has 2 lists but the header's lookahead is 1");
  TraceRecord nan = make_record(0, 1, {{1, 2}});
  nan.weights[1] = std::numeric_limits<float>::quiet_NaN();
  fails(nan, "not finite");
  EXPECT_NO_THROW(w.write(make_record(0, 1, {{1, 2}}, {{3, 4}})));
}

TEST(Trace, WriterNamesAPathItCannotCreate) {
  try {
    TraceWriter w("/nonexistent-dir/trace.jsonl", make_header(1, 4, 2));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create routing trace /nonexistent-dir/trace.jsonl"), std::string::npos)
        << e.what();
  }
}

// The reader's errors: each case is a file's text and the words its message must hold.
struct BadTrace {
  const char* name;
  std::string text;
  std::string what;  // after "PATH:"
};
void PrintTo(const BadTrace& b, std::ostream* os) { *os << b.name; }

const std::string kHeader =
    R"({"format":"moe-routing-trace","version":1,"model":"m","n_layers":2,"n_experts":[0,16],"top_k":2,)"
    R"("expert_bytes":[0,100],"lookahead":1,"predictor":"gate"})"
    "\n";
std::string line(const std::string& text) { return text + "\n"; }
std::string rec(const std::string& body) { return line("{" + body + "}"); }
const std::string kOk = rec(R"("step":0,"layer":1,"seq":[0],"pos":[0],"experts":[[1,2]],"weights":[[0.5,0.5]])");

class ReadTraceError : public ::testing::TestWithParam<BadTrace> {};

TEST_P(ReadTraceError, NamesTheLineAndTheProblem) {
  const TempFile f("bad.jsonl");
  f.write(GetParam().text);
  try {
    read_trace(f.path);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string expected = f.path.string() + ":" + GetParam().what;
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what() << "\nexpected: " << expected;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ReadTraceError,
    ::testing::Values(
        BadTrace{"Empty", "", "1: missing header"}, BadTrace{"RecordFirst", kOk, "1: missing header"},
        BadTrace{"UnknownFormat", line(R"({"format":"other","version":1})"), "1: unknown format \"other\""},
        BadTrace{"Version", line(R"({"format":"moe-routing-trace","version":2})"),
                 "1: trace version 2 is not supported; this build reads version 1"},
        BadTrace{"HeaderShape",
                 line(R"({"format":"moe-routing-trace","version":1,"n_layers":2,"n_experts":[4],"top_k":1})"),
                 "1: bad header: n_experts has 1 entries, expected one per layer (2)"},
        BadTrace{"BadJson", kHeader + kOk + "{\"step\":1,\n", "3: bad JSON: "},
        BadTrace{"MissingKey", kHeader + rec(R"("step":0,"layer":1,"seq":[0],"pos":[0],"weights":[[0.5,0.5]])"),
                 "2: missing key \"experts\""},
        BadTrace{"LayerOutOfRange",
                 kHeader + rec(R"("step":0,"layer":2,"seq":[0],"pos":[0],"experts":[[1,2]],"weights":[[0.5,0.5]])"),
                 "2: layer 2 out of range (the header has 2 layers)"},
        BadTrace{"DenseLayer",
                 kHeader + rec(R"("step":0,"layer":0,"seq":[0],"pos":[0],"experts":[[1,2]],"weights":[[0.5,0.5]])"),
                 "2: layer 0 is dense"},
        BadTrace{
            "ExpertOutOfRange",
            kHeader + kOk +
                rec(R"("step":1,"layer":1,"seq":[0,0],"pos":[1,2],"experts":[[1,2],[16,0]],"weights":[[1,0],[1,0]])"),
            "3: token 1: expert id 16 out of range for layer 1 (16 experts)"},
        BadTrace{
            "PredOutOfRange",
            kHeader +
                rec(R"("step":0,"layer":1,"seq":[0],"pos":[0],"experts":[[1,2]],"weights":[[1,0]],"pred":[[3,-1]])"),
            "2: pred (lookahead 1): expert id -1 out of range"},
        BadTrace{"ExpertsRowLength",
                 kHeader +
                     rec(R"("step":0,"layer":1,"seq":[0,1],"pos":[0,0],"experts":[[1,2],[3]],"weights":[[1,0],[1,0]])"),
                 "2: token 1: experts row has 1 ids, expected top_k 2"},
        BadTrace{"WeightsRowLength",
                 kHeader + rec(R"("step":0,"layer":1,"seq":[0],"pos":[0],"experts":[[1,2]],"weights":[[1,0,0]])"),
                 "2: token 0: weights row has 3 values, expected top_k 2"},
        BadTrace{"TokenCounts",
                 kHeader +
                     rec(R"("step":0,"layer":1,"seq":[0,0],"pos":[0],"experts":[[1,2],[3,4]],"weights":[[1,0],[1,0]])"),
                 "2: token counts disagree: seq 2, pos 1, experts 2 rows, weights 2 rows"},
        BadTrace{"StepsDecrease",
                 kHeader + rec(R"("step":5,"layer":1,"seq":[0],"pos":[0],"experts":[[1,2]],"weights":[[0.5,0.5]])") +
                     "\n" + kOk,
                 "4: step 0 after step 5: steps must not decrease"},
        BadTrace{"LayersRepeat", kHeader + kOk + kOk, "3: layer 1 after layer 1 in step 0: layers must ascend"},
        BadTrace{"WrongType",
                 kHeader + rec(R"("step":"0","layer":1,"seq":[0],"pos":[0],"experts":[[1,2]],"weights":[[0.5,0.5]])"),
                 "2: \"step\" must be an integer"}),
    [](const auto& i) { return std::string(i.param.name); });

TEST(Trace, ReadNamesAMissingFile) {
  try {
    read_trace("/nonexistent/trace.jsonl");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open routing trace /nonexistent/trace.jsonl"), std::string::npos)
        << e.what();
  }
}

TEST(Trace, ReadsWithoutOptionalKeysAndBlankLines) {
  const TempFile f("min.jsonl");
  f.write(R"({"format":"moe-routing-trace","version":1,"n_layers":1,"n_experts":[4],"top_k":1})"
          "\r\n"
          R"({"step":0,"layer":0,"seq":[0],"pos":[0],"experts":[[3]],"weights":[[1]],"pred":null})"
          "\n\n");
  const Trace t = read_trace(f.path);
  EXPECT_EQ(t.header.expert_bytes, std::vector<uint64_t>{0});
  EXPECT_EQ(t.header.lookahead, 0);
  EXPECT_EQ(t.header.predictor, "none");
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].experts, std::vector<int32_t>{3});
  EXPECT_TRUE(t.records[0].predicted.empty());
}

}  // namespace
}  // namespace moe
