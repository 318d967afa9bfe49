// StreamDecoder: incremental decoding that only ever returns complete UTF-8 text.
//
// Like HF's DecodeStream, each step decodes a short window of recent ids and returns the part
// of the text that goes beyond the window's already-returned prefix. Decoding the window with
// context keeps per-sequence decoder rules (Strip, Metaspace) consistent, and text ending in
// U+FFFD (an incomplete UTF-8 sequence) is held back until more ids arrive. finish() returns
// whatever remains so that the concatenation equals decode(all ids).
#include "runtime/tokenizer/tokenizer.h"

#include <algorithm>

namespace moe {

namespace {

bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

// Where the new part of `text` starts, given that `prefix` was already returned. Normally
// `text` extends `prefix`. If later ids changed the text of earlier ones (only seen with invalid
// byte sequences, e.g. HF's ByteFallback turns a whole run of byte tokens into U+FFFD once it
// contains an invalid byte), what was returned cannot be taken back: continue after as many
// bytes, at a character boundary.
size_t new_text_start(const std::string& text, const std::string& prefix) {
  size_t from = prefix.size();
  if (text.compare(0, prefix.size(), prefix) == 0) return from;
  while (from < text.size() && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) ++from;
  return from;
}

}  // namespace

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(tok), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::push(int32_t id) {
  all_.push_back(id);
  window_.push_back(id);
  std::string text = tok_.decode(window_, skip_special_);
  size_t from = new_text_start(text, prefix_);
  // A trailing U+FFFD may be a character still arriving; but a UTF-8 character spans at most 4
  // byte tokens, so past kMaxHeldIds it is final. Without the bound a run of invalid byte tokens
  // was held forever, each push decoding the whole growing window (quadratic).
  constexpr size_t kMaxHeldIds = 8;
  bool held = ends_with_replacement(text) && window_.size() - prefix_count_ <= kMaxHeldIds;
  if (text.size() <= from || held) return {};
  std::string fresh = text.substr(from);
  // Keep the ids after the old prefix as context for the next step.
  window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(prefix_count_));
  prefix_ = tok_.decode(window_, skip_special_);
  prefix_count_ = window_.size();
  emitted_ += fresh;
  return fresh;
}

std::string StreamDecoder::finish() {
  std::string full = tok_.decode(all_, skip_special_);
  std::string rest;
  if (full.compare(0, emitted_.size(), emitted_) == 0) {
    rest = full.substr(emitted_.size());
  } else {
    // Only possible with decoders whose output for earlier ids depends on later ids.
    std::string text = tok_.decode(window_, skip_special_);
    rest = text.substr(std::min(text.size(), new_text_start(text, prefix_)));
  }
  window_.clear();
  all_.clear();
  prefix_.clear();
  emitted_.clear();
  prefix_count_ = 0;
  return rest;
}

}  // namespace moe
