#include "serve/parsers/tool_stream.h"

#include <algorithm>

namespace moe::serve::parsers {

using R = JsonCallReader::R;

void ToolStream::feed(std::string_view text, Emitter& e) {
  buf_.append(text);
  while (step(e)) {
  }
  // Drop what is decided; an uncommitted call keeps its raw text in case it is content after all.
  const size_t keep = in_call_ && !committed_ ? call_start_ : pos_;
  if (keep > 0) {
    buf_.erase(0, keep);
    pos_ -= keep;
    if (in_call_) call_start_ -= std::min(call_start_, keep);
  }
}

void ToolStream::finish(Emitter& e) {
  at_end_ = true;
  while (step(e)) {
  }
  e.content.finish(e.d.content);
}

bool ToolStream::skip_ws() {
  while (pos_ < buf_.size() && is_space(buf_[pos_])) ++pos_;
  return pos_ < buf_.size();
}

ToolStream::AfterCall ToolStream::after_call(std::string_view call_begin, std::string_view section_end) {
  if (!skip_ws()) return at_end_ ? AfterCall::text : AfterCall::wait;
  const Lit next = match_lit(rest(), call_begin), end = match_lit(rest(), section_end);
  if ((next == Lit::more || end == Lit::more) && !at_end_) return AfterCall::wait;
  if (next == Lit::yes) {
    open_call(call_begin.size());
    return AfterCall::next_call;
  }
  if (end == Lit::yes) pos_ += section_end.size();
  else if (end == Lit::more || next == Lit::more) pos_ = buf_.size();
  return AfterCall::text;
}

Lit ToolStream::close_at(Emitter& e, std::string_view end_marker) {
  Lit l = skip_ws() ? lit(end_marker) : Lit::more;
  if (l == Lit::more) {
    if (!at_end_) return Lit::more;
    pos_ = buf_.size();
    l = Lit::no;
  }
  close_call(e);
  return l;
}

Lit ToolStream::lit(std::string_view marker) {
  const Lit r = match_lit(rest(), marker);
  if (r == Lit::yes) pos_ += marker.size();
  return r;
}

int ToolStream::scan_text(Emitter& e, Markers markers) {
  const std::string_view r = rest();
  const MarkerHit h = find_marker(r, markers);
  if (h.full()) {
    e.put_content(r.substr(0, h.pos));
    pos_ += h.pos;
    return h.which;
  }
  const size_t n = h.none() || at_end_ ? r.size() : h.pos;
  e.put_content(r.substr(0, n));
  pos_ += n;
  return -1;
}

void ToolStream::open_call(size_t marker_len) {
  in_call_ = true;
  committed_ = false;
  call_start_ = pos_;
  marker_len_ = marker_len;
  pos_ += marker_len;
}

void ToolStream::commit(Emitter& e, std::string name, std::string id) {
  e.content.drop_held();  // the newlines before a call separate it from the content
  index_ += 1;
  committed_ = true;
  e.call_begin(index_, id.empty() ? opt_.make_id() : std::move(id), std::move(name));
}

void ToolStream::close_call(Emitter& e) {
  in_call_ = committed_ = false;
  e.content.mark_boundary();
}

void ToolStream::fail(Emitter& e) {
  if (!committed_) {
    e.put_content(std::string_view(buf_).substr(call_start_, marker_len_));
    pos_ = call_start_ + marker_len_;
  }
  in_call_ = committed_ = false;
}

void ToolStream::truncated(Emitter& e) {
  if (!committed_) return fail(e);
  pos_ = buf_.size();  // at most a partial marker is left
  in_call_ = committed_ = false;
}

R read_json_string(ToolStream& t, std::string& out) {
  const std::string_view r = t.rest();
  if (r.empty()) return R::more;
  if (r[0] != '"') return R::failed;
  for (size_t i = 1; i < r.size(); ++i) {
    if (r[i] == '\\') {
      ++i;
    } else if (r[i] == '"') {
      try {
        out = nlohmann::json::parse(r.substr(0, i + 1)).get<std::string>();
      } catch (const std::exception&) {
        return R::failed;
      }
      t.pos_ += i + 1;
      return R::done;
    } else if (static_cast<unsigned char>(r[i]) < 0x20) {
      return R::failed;
    }
  }
  return R::more;
}

R JsonArgsReader::step(ToolStream& t, Emitter& e) {
  if (!scan_.started()) {
    if (!t.skip_ws()) return R::more;
    if (t.rest()[0] != '{') return R::failed;
  }
  JsonScanner::Status st;
  const size_t n = scan_.feed(t.rest(), st);
  t.args(e, t.rest().substr(0, n));
  t.pos_ += n;
  return st == JsonScanner::Status::done ? R::done : st == JsonScanner::Status::more ? R::more : R::failed;
}

R JsonCallReader::close(ToolStream& t, Emitter& e) {
  if (!have_name_ || name_.empty()) return R::failed;
  if (!t.committed()) {
    t.commit(e, name_);
    t.args(e, have_args_ ? std::string_view(early_args_) : std::string_view("{}"));
  } else if (!have_args_) {
    t.args(e, "{}");
  }
  return R::done;
}

R JsonCallReader::step(ToolStream& t, Emitter& e) {
  for (;;) {
    switch (st_) {
      case St::open:
        if (!t.skip_ws()) return R::more;
        if (t.rest()[0] != '{') return R::failed;
        ++t.pos_;
        st_ = St::key;
        continue;
      case St::key: {
        if (!t.skip_ws()) return R::more;
        if (first_key_ && t.rest()[0] == '}') {
          ++t.pos_;
          return close(t, e);
        }
        if (const R r = read_json_string(t, key_); r != R::done) return r;
        first_key_ = false;
        st_ = St::colon;
        continue;
      }
      case St::colon:
        if (!t.skip_ws()) return R::more;
        if (t.rest()[0] != ':') return R::failed;
        ++t.pos_;
        st_ = St::value;
        continue;
      case St::value:
        if (!t.skip_ws()) return R::more;
        scan_.reset();
        if (key_ == "name" && !have_name_) {
          if (const R r = read_json_string(t, name_); r != R::done) return r;
          have_name_ = true;
          st_ = St::comma_or_close;
        } else if ((key_ == "arguments" || key_ == "parameters") && !have_args_) {
          if (t.rest()[0] != '{') return R::failed;
          if (have_name_ && !name_.empty()) t.commit(e, name_);
          st_ = St::args;
        } else {
          st_ = St::skip;
        }
        continue;
      case St::args:
      case St::skip: {
        JsonScanner::Status s;
        const size_t n = scan_.feed(t.rest(), s);
        if (st_ == St::args) {
          if (t.committed()) t.args(e, t.rest().substr(0, n));
          else early_args_.append(t.rest().substr(0, n));
        }
        t.pos_ += n;
        if (s == JsonScanner::Status::error) return R::failed;
        if (s == JsonScanner::Status::more) return R::more;
        if (st_ == St::args) have_args_ = true;
        st_ = St::comma_or_close;
        continue;
      }
      case St::comma_or_close: {
        if (!t.skip_ws()) return R::more;
        const char c = t.rest()[0];
        if (c == ',') {
          ++t.pos_;
          st_ = St::key;
          continue;
        }
        if (c != '}') return R::failed;
        ++t.pos_;
        return close(t, e);
      }
    }
  }
}

}  // namespace moe::serve::parsers
