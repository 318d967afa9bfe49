#define PCRE2_CODE_UNIT_WIDTH 8
#include "runtime/tokenizer/regex.h"

#include <pcre2.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "runtime/tokenizer/unicode.h"

namespace moe::tok {

namespace {

// Oniguruma's Unicode \w (Unicode TR18 "word"): Alphabetic, Mark, Decimal_Number,
// Connector_Punctuation and Join_Control.
constexpr const char* kWordClass = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}";

// Per-thread JIT stack and match data: a thread runs one match at a time, so sharing them
// between all patterns is safe.
struct ThreadMatchState {
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  pcre2_match_data* md = nullptr;
  ThreadMatchState() {
    mctx = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    md = pcre2_match_data_create(1, nullptr);
    if (!mctx || !jit_stack || !md) throw std::runtime_error("regex: out of memory");
    pcre2_jit_stack_assign(mctx, nullptr, jit_stack);
  }
  ~ThreadMatchState() {
    pcre2_match_data_free(md);
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(mctx);
  }
  ThreadMatchState(const ThreadMatchState&) = delete;
  ThreadMatchState& operator=(const ThreadMatchState&) = delete;
};

ThreadMatchState& thread_state() {
  thread_local ThreadMatchState state;
  return state;
}

}  // namespace

std::string onig_to_pcre2(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 16);
  int class_depth = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[i + 1];
      bool in_class = class_depth > 0;
      ++i;
      switch (e) {
        case 's': out += "\\p{White_Space}"; break;
        case 'S': out += "\\P{White_Space}"; break;
        case 'd': out += "\\p{Nd}"; break;
        case 'D': out += "\\P{Nd}"; break;
        case 'w':
          out += in_class ? std::string(kWordClass) : "[" + std::string(kWordClass) + "]";
          break;
        case 'W':
          if (in_class) {
            out += "\\W";
          } else {
            out += "[^" + std::string(kWordClass) + "]";
          }
          break;
        case 'h': out += in_class ? "0-9a-fA-F" : "[0-9a-fA-F]"; break;
        case 'H': out += in_class ? "\\H" : "[^0-9a-fA-F]"; break;
        default: {
          out += '\\';
          // Copy the escaped character whole, even when it is multi-byte.
          size_t n = utf8_seq_len(static_cast<unsigned char>(e));
          out.append(p.substr(i, n));
          i += n - 1;
        }
      }
      continue;
    }
    if (c == '[') {
      if (class_depth > 0 && i + 1 < p.size() && p[i + 1] == ':') {
        size_t close = p.find(":]", i + 2);  // POSIX bracket expression, copied verbatim
        if (close != std::string_view::npos) {
          out.append(p.substr(i, close + 2 - i));
          i = close + 1;
          continue;
        }
      }
      if (class_depth > 0) {  // nested set: Oniguruma unions it into the outer class
        ++class_depth;
        continue;
      }
      class_depth = 1;
      out += c;
      // A ']' right after '[' or '[^' is a literal member of the class.
      if (i + 1 < p.size() && p[i + 1] == '^') {
        out += '^';
        ++i;
      }
      if (i + 1 < p.size() && p[i + 1] == ']') {
        out += "\\]";
        ++i;
      }
      continue;
    }
    if (c == ']' && class_depth > 0) {
      if (--class_depth > 0) continue;
    }
    out += c;
  }
  return out;
}

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

Regex::Regex(std::string_view pattern) : code_(std::make_shared<Code>()), source_(pattern) {
  std::string translated = onig_to_pcre2(pattern);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_compile_context* cctx = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(cctx, PCRE2_NEWLINE_LF);
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NO_UTF_CHECK,
                              &err, &err_off, cctx);
  pcre2_compile_context_free(cctx);
  if (!code_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw std::runtime_error("invalid regex '" + std::string(pattern) + "': " +
                             reinterpret_cast<const char*>(msg) + " at offset " +
                             std::to_string(err_off));
  }
  // JIT is an optimisation only; the interpreter is used if it is unavailable. Windowed searches
  // (Regex::search) match in hard partial mode, which has its own JIT code.
  pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
}

namespace {

// A search first sees only the next kWindow bytes of the subject, so that each match costs what
// it reads near its position rather than what lies up to the end of the text.
constexpr size_t kWindow = 4096;

}  // namespace

// The leftmost match at or after `pos`, exactly as a search of the whole of `s` finds it. PCRE2 is
// given a prefix of `s` (the window) with PCRE2_PARTIAL_HARD: a complete match within it is only
// reported when no path of the search reached the window's end, so it is the whole-text match;
// otherwise the window doubles. `rescanned` counts the bytes of windows that had to be redone.
bool Regex::search(std::string_view s, size_t pos, Span& m, size_t& rescanned) const {
  ThreadMatchState& st = thread_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  // Leftmost-first search is quadratic for some patterns (`\w*\d|.` rescans a word from every
  // position: Hugging Face tokenizers too, 108 s for 120k letters). The work allowed is linear in
  // the text (about a second at most beyond it); past it the pattern is refused, not run for hours.
  const size_t budget = 256 * s.size() + (size_t{256} << 20);
  size_t win = kWindow;
  for (;;) {
    size_t wend = s.size() - pos <= win ? s.size() : pos + win;
    while (wend < s.size() && (static_cast<unsigned char>(s[wend]) & 0xC0) == 0x80) ++wend;
    bool whole = wend == s.size();
    // Linear patterns backtrack a bounded number of times per byte; the limit only stops runaway
    // (exponential) patterns, and grows with the window so that long texts never hit it.
    pcre2_set_match_limit(st.mctx, static_cast<uint32_t>(std::min<size_t>(
                                       UINT32_MAX, 10'000'000 + 256 * (wend - pos))));
    int rc = pcre2_match(code_->code, subject, wend, pos,
                         PCRE2_NO_UTF_CHECK | (whole ? 0 : PCRE2_PARTIAL_HARD), st.md, st.mctx);
    if (rc == PCRE2_ERROR_NOMATCH) {
      if (whole) return false;
      pos = wend;  // no match starts before the window's end
      continue;
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
    if (rc == PCRE2_ERROR_PARTIAL || (rc >= 0 && !whole && ov[1] >= wend)) {
      rescanned += wend - pos;
      if (rescanned > budget) {
        throw std::runtime_error("regex '" + source_ + "' backtracks quadratically on this text (" +
                                 std::to_string(rescanned) + " bytes rescanned for " +
                                 std::to_string(s.size()) +
                                 "); simplify the pattern in tokenizer.json");
      }
      win *= 2;
      continue;
    }
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw std::runtime_error("regex '" + source_ + "' failed on a text of " +
                               std::to_string(s.size()) + " bytes: " +
                               reinterpret_cast<const char*>(msg));
    }
    m = {ov[0], ov[1]};
    return true;
  }
}

std::vector<Span> Regex::find_all(std::string_view s) const {
  std::vector<Span> out;
  size_t pos = 0, rescanned = 0;
  bool have_last = false;
  size_t last_end = 0;
  Span found;
  while (pos <= s.size()) {
    if (!search(s, pos, found, rescanned)) break;
    size_t ms = found.start, me = found.end;
    if (ms == me && have_last && last_end == me) {
      // Oniguruma-style: never accept an empty match right where the previous match ended.
      pos += pos < s.size() ? utf8_seq_len(static_cast<unsigned char>(s[pos])) : 1;
      continue;
    }
    out.push_back({ms, me});
    pos = me;
    last_end = me;
    have_last = true;
  }
  return out;
}

Pattern Pattern::literal(std::string s) {
  Pattern p;
  p.literal_ = std::move(s);
  return p;
}

Pattern Pattern::regex(std::string_view re) {
  Pattern p;
  p.regex_ = std::make_shared<Regex>(re);
  return p;
}

std::vector<Span> Pattern::find_all(std::string_view s) const {
  if (regex_) return regex_->find_all(s);
  std::vector<Span> out;
  if (literal_.empty()) return out;
  size_t pos = 0;
  while ((pos = s.find(literal_, pos)) != std::string_view::npos) {
    out.push_back({pos, pos + literal_.size()});
    pos += literal_.size();
  }
  return out;
}

std::vector<MatchPiece> Pattern::find_matches(std::string_view s) const {
  std::vector<MatchPiece> out;
  if (s.empty()) {
    out.push_back({0, 0, false});
    return out;
  }
  size_t prev = 0;
  for (const Span& m : find_all(s)) {
    if (prev != m.start) out.push_back({prev, m.start, false});
    out.push_back({m.start, m.end, true});
    prev = m.end;
  }
  if (prev != s.size()) out.push_back({prev, s.size(), false});
  return out;
}

std::string Pattern::replace_all(std::string_view s, std::string_view content) const {
  std::string out;
  out.reserve(s.size());
  size_t prev = 0;
  for (const Span& m : find_all(s)) {
    out.append(s.substr(prev, m.start - prev));
    out.append(content);
    prev = m.end;
  }
  out.append(s.substr(prev));
  return out;
}

}  // namespace moe::tok
