// Stop strings over streamed text: text is released as soon as it can no longer be the start
// of a stop string; the first stop string found ends the output, cut before it. Input is whole
// UTF-8 characters and stop strings are valid UTF-8, so every cut falls between characters.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace moe::serve {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  // Appends text; returns what is now safe to emit. After a stop string appears, returns the
  // text before it and stopped() is true; later calls return nothing.
  std::string push(std::string_view text);
  // The end of the output: whatever was held back.
  std::string finish();
  bool stopped() const { return stopped_; }
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace moe::serve
