// An incremental JSON validator: bytes of one JSON value go in as they are generated, and it says
// when the value is complete or where it stopped being JSON. The parsers use it to stream a tool
// call's raw arguments text (every fragment a prefix of valid JSON) and to skip values they ignore.
#pragma once
#include <cstddef>
#include <string_view>
#include <vector>

namespace moe::serve::parsers {

class JsonScanner {
 public:
  enum class Status { more, done, error };
  // Consumes bytes of the value (leading whitespace allowed) and returns how many. done: the last
  // consumed byte completed it (a top-level number completes on the byte after it, not consumed).
  // error: the byte at the returned offset cannot continue valid JSON; it is not consumed.
  size_t feed(std::string_view s, Status& st);
  void reset() { *this = JsonScanner(); }
  bool started() const { return started_; }

 private:
  enum class Expect { value, value_or_close, key, key_or_close, colon, comma_or_close, finished };
  enum class Lex { none, string, escape, unicode, number, literal };
  bool after_value();  // a value ended; true when it was the top-level one
  bool number_byte(char c);

  std::vector<char> stack_;  // '{' or '[' per open container
  Expect expect_ = Expect::value;
  Lex lex_ = Lex::none;
  bool key_string_ = false;
  bool started_ = false;
  int hex_left_ = 0;
  int num_state_ = 0;
  std::string_view literal_rest_;
};

}  // namespace moe::serve::parsers
