#include "serve/parsers/json_scanner.h"

namespace moe::serve::parsers {

namespace {
bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
}  // namespace

bool JsonScanner::after_value() {
  if (stack_.empty()) {
    expect_ = Expect::finished;
    return true;
  }
  expect_ = Expect::comma_or_close;
  return false;
}

// Number grammar -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? as states:
// 0 after '-', 1 after leading 0, 2 in integer digits, 3 after '.', 4 in fraction digits,
// 5 after e/E, 6 after exponent sign, 7 in exponent digits. 1, 2, 4, 7 may end the number.
bool JsonScanner::number_byte(char c) {
  switch (num_state_) {
    case 0:
      if (c == '0') return num_state_ = 1, true;
      if (is_digit(c)) return num_state_ = 2, true;
      return false;
    case 1:
    case 2:
      if (num_state_ == 2 && is_digit(c)) return true;
      if (c == '.') return num_state_ = 3, true;
      if (c == 'e' || c == 'E') return num_state_ = 5, true;
      return false;
    case 3:
      return is_digit(c) ? (num_state_ = 4, true) : false;
    case 4:
      if (is_digit(c)) return true;
      if (c == 'e' || c == 'E') return num_state_ = 5, true;
      return false;
    case 5:
      if (c == '+' || c == '-') return num_state_ = 6, true;
      return is_digit(c) ? (num_state_ = 7, true) : false;
    case 6:
    case 7:
      return is_digit(c) ? (num_state_ = 7, true) : false;
  }
  return false;
}

size_t JsonScanner::feed(std::string_view s, Status& st) {
  st = expect_ == Expect::finished ? Status::done : Status::more;
  size_t i = 0;
  while (i < s.size() && expect_ != Expect::finished) {
    const char c = s[i];
    switch (lex_) {
      case Lex::string:
        if (c == '"') {
          lex_ = Lex::none;
          if (key_string_) expect_ = Expect::colon;
          else if (after_value()) return st = Status::done, i + 1;
        } else if (c == '\\') {
          lex_ = Lex::escape;
        } else if (static_cast<unsigned char>(c) < 0x20) {
          return st = Status::error, i;
        }
        ++i;
        continue;
      case Lex::escape:
        if (c == 'u') {
          lex_ = Lex::unicode;
          hex_left_ = 4;
        } else if (std::string_view("\"\\/bfnrt").find(c) != std::string_view::npos) {
          lex_ = Lex::string;
        } else {
          return st = Status::error, i;
        }
        ++i;
        continue;
      case Lex::unicode:
        if (!is_hex(c)) return st = Status::error, i;
        if (--hex_left_ == 0) lex_ = Lex::string;
        ++i;
        continue;
      case Lex::number:
        if (number_byte(c)) {
          ++i;
          continue;
        }
        if (num_state_ != 1 && num_state_ != 2 && num_state_ != 4 && num_state_ != 7)
          return st = Status::error, i;
        lex_ = Lex::none;
        if (after_value()) return st = Status::done, i;  // the byte after ends it, unconsumed
        continue;                                        // reread c as punctuation
      case Lex::literal:
        if (c != literal_rest_.front()) return st = Status::error, i;
        literal_rest_.remove_prefix(1);
        ++i;
        if (literal_rest_.empty()) {
          lex_ = Lex::none;
          if (after_value()) return st = Status::done, i;
        }
        continue;
      case Lex::none:
        break;
    }
    if (is_ws(c)) {
      ++i;
      continue;
    }
    started_ = true;
    switch (expect_) {
      case Expect::value:
      case Expect::value_or_close:
        if (c == ']' && expect_ == Expect::value_or_close) {
          stack_.pop_back();
          ++i;
          if (after_value()) return st = Status::done, i;
          continue;
        }
        if (c == '{') {
          stack_.push_back('{');
          expect_ = Expect::key_or_close;
        } else if (c == '[') {
          stack_.push_back('[');
          expect_ = Expect::value_or_close;
        } else if (c == '"') {
          lex_ = Lex::string;
          key_string_ = false;
        } else if (c == '-' || is_digit(c)) {
          lex_ = Lex::number;
          num_state_ = 0;
          if (c != '-') number_byte(c);
        } else if (c == 't' || c == 'f' || c == 'n') {
          lex_ = Lex::literal;
          literal_rest_ = c == 't' ? "rue" : c == 'f' ? "alse" : "ull";
        } else {
          return st = Status::error, i;
        }
        ++i;
        continue;
      case Expect::key:
      case Expect::key_or_close:
        if (c == '}' && expect_ == Expect::key_or_close) {
          stack_.pop_back();
          ++i;
          if (after_value()) return st = Status::done, i;
          continue;
        }
        if (c != '"') return st = Status::error, i;
        lex_ = Lex::string;
        key_string_ = true;
        ++i;
        continue;
      case Expect::colon:
        if (c != ':') return st = Status::error, i;
        expect_ = Expect::value;
        ++i;
        continue;
      case Expect::comma_or_close:
        if (c == ',') {
          expect_ = stack_.back() == '{' ? Expect::key : Expect::value;
        } else if (c == (stack_.back() == '{' ? '}' : ']')) {
          stack_.pop_back();
          if (after_value()) return st = Status::done, i + 1;
        } else {
          return st = Status::error, i;
        }
        ++i;
        continue;
      case Expect::finished:
        break;
    }
  }
  return i;
}

}  // namespace moe::serve::parsers
