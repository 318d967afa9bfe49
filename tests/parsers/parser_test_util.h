// Helpers for the output-parser tests: run a parser over a chunking of an output, the chunkings
// the streaming property is checked on, and the property itself.
#pragma once
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "serve/parsers/output_parser.h"

namespace moe::serve::test {

// Deterministic ids "id0", "id1", ... per parser.
inline ParserOptions with_counter_ids(ParserOptions o) {
  auto n = std::make_shared<int>(0);
  o.make_id = [n] { return "id" + std::to_string((*n)++); };
  return o;
}

struct Run {
  ParsedMessage msg;
  std::vector<OutputDelta> deltas;  // the finish() delta last
};

inline Run run_chunks(const ParserOptions& o, const std::vector<std::string>& chunks) {
  auto p = make_output_parser(with_counter_ids(o));
  Run r;
  for (const std::string& c : chunks) r.deltas.push_back(p->feed(c));
  r.deltas.push_back(p->finish());
  for (const OutputDelta& d : r.deltas) merge_delta(r.msg, d);
  return r;
}

// Every single split point, byte by byte, and seeded random chunkings.
inline std::vector<std::vector<std::string>> chunkings(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  for (size_t i = 1; i < text.size(); ++i) out.push_back({text.substr(0, i), text.substr(i)});
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  out.push_back(bytes);
  std::mt19937 rng(1234);
  for (int k = 0; k < 24; ++k) {
    std::uniform_int_distribution<size_t> len(1, k < 12 ? 4 : 16);
    std::vector<std::string> pieces;
    for (size_t i = 0; i < text.size();) {
      const size_t n = std::min(len(rng), text.size() - i);
      pieces.push_back(text.substr(i, n));
      i += n;
    }
    out.push_back(pieces);
  }
  return out;
}

inline bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

// Did a delta `s`, sent when `fed` bytes of `text` were in, end partway into a marker that the
// text then completes? The byte before the partial marker must match too, so that a '<' which is
// just content right before "<tool_call>" is not mistaken for the start of it.
inline bool ends_in_partial(const std::string& s, const std::string& text, size_t fed,
                            const std::vector<std::string>& markers) {
  for (const std::string& m : markers)
    for (size_t k = 1; k < m.size() && k < s.size() && k < fed; ++k)
      if (text.compare(fed - k, m.size(), m) == 0 && s.compare(s.size() - k - 1, k + 1, text, fed - k - 1, k + 1) == 0)
        return true;
  return false;
}

inline void expect_same(const ParsedMessage& a, const ParsedMessage& b) {
  EXPECT_EQ(a.content, b.content);
  EXPECT_EQ(a.reasoning, b.reasoning);
  ASSERT_EQ(a.tool_calls.size(), b.tool_calls.size());
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    EXPECT_EQ(a.tool_calls[i].id, b.tool_calls[i].id) << "call " << i;
    EXPECT_EQ(a.tool_calls[i].name, b.tool_calls[i].name) << "call " << i;
    EXPECT_EQ(a.tool_calls[i].arguments, b.tool_calls[i].arguments) << "call " << i;
  }
}

// The streaming property: every chunking merges to the one-shot parse; no delta but the last
// ends inside a marker; every delta is whole UTF-8; each call's id and name come once, first.
inline void check_streaming(const ParserOptions& o, const std::string& text,
                            const std::vector<std::string>& content_markers,
                            const std::vector<std::string>& reasoning_markers) {
  const ParsedMessage whole = run_chunks(o, {text}).msg;
  int failures = 0;
  for (const auto& chunks : chunkings(text)) {
    const Run r = run_chunks(o, chunks);
    const std::string where = "chunking of " + std::to_string(chunks.size()) + " pieces, first '" +
                              chunks.front() + "'";
    SCOPED_TRACE(where);
    expect_same(r.msg, whole);
    std::vector<int> seen(whole.tool_calls.size() + 1, 0);
    size_t fed = 0;
    for (size_t k = 0; k < r.deltas.size(); ++k) {
      const OutputDelta& d = r.deltas[k];
      EXPECT_TRUE(valid_utf8(d.content) && valid_utf8(d.reasoning));
      if (k < chunks.size()) {
        fed += chunks[k].size();
        EXPECT_FALSE(ends_in_partial(d.content, text, fed, content_markers)) << "content delta '" << d.content << "'";
        EXPECT_FALSE(ends_in_partial(d.reasoning, text, fed, reasoning_markers))
            << "reasoning delta '" << d.reasoning << "'";
      }
      for (const ToolCallDelta& t : d.tool_calls) {
        ASSERT_GE(t.index, 0);
        ASSERT_LT(static_cast<size_t>(t.index), seen.size());
        EXPECT_TRUE(valid_utf8(t.arguments));
        const bool first = seen[t.index]++ == 0;
        EXPECT_EQ(!t.id.empty(), first) << "id on call " << t.index;
        EXPECT_EQ(!t.name.empty(), first) << "name on call " << t.index;
        if (first && t.index > 0) {
          EXPECT_GT(seen[t.index - 1], 0) << "calls out of order";
        }
      }
    }
    if (::testing::Test::HasFailure() && ++failures > 3) return;  // enough to debug with
  }
}

}  // namespace moe::serve::test
