#include "serve/parsers/xml_args.h"

namespace moe::serve::parsers {

using nlohmann::json;

void ParamTypes::load(const json& tools, std::string_view function) {
  props_ = json();
  if (!tools.is_array()) return;
  for (const json& t : tools) {
    const json& f = t.is_object() && t.contains("function") ? t["function"] : t;
    if (!f.is_object() || f.value("name", "") != function) continue;
    if (f.contains("parameters") && f["parameters"].is_object() && f["parameters"].contains("properties"))
      props_ = f["parameters"]["properties"];
    return;
  }
}

namespace {
// The JSON types a schema allows ("type" as a string or list, or through anyOf/oneOf).
void schema_types(const json& s, std::vector<std::string>& out) {
  if (!s.is_object()) return;
  if (s.contains("type")) {
    if (s["type"].is_string()) out.push_back(s["type"]);
    if (s["type"].is_array())
      for (const json& t : s["type"])
        if (t.is_string()) out.push_back(t);
  }
  for (const char* k : {"anyOf", "oneOf"})
    if (s.contains(k) && s[k].is_array())
      for (const json& sub : s[k]) schema_types(sub, out);
  if (out.empty() && s.contains("properties")) out.push_back("object");
}
}  // namespace

bool ParamTypes::is_string(const std::string& param) const {
  if (!props_.is_object() || !props_.contains(param)) return true;
  std::vector<std::string> types;
  schema_types(props_[param], types);
  if (types.empty()) return true;
  for (const std::string& t : types)
    if (t == "string") return true;
  return false;
}

std::string ParamTypes::convert(const std::string& param, std::string_view text) const {
  if (!is_string(param)) {
    std::string_view v = text;
    while (!v.empty() && is_space(v.front())) v.remove_prefix(1);
    while (!v.empty() && is_space(v.back())) v.remove_suffix(1);
    if (v == "True") return "true";
    if (v == "False") return "false";
    if (v == "None") return "null";
    try {
      return json::parse(v).dump(-1, ' ', false, json::error_handler_t::replace);
    } catch (const std::exception&) {
    }
  }
  return json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string XmlArgsWriter::open_param(std::string_view key, bool string_value) {
  std::string s = first_ ? "{" : ", ";
  first_ = false;
  s += json(std::string(key)).dump(-1, ' ', false, json::error_handler_t::replace);
  s += string_value ? ": \"" : ": ";
  return s;
}

std::string XmlArgsWriter::string_chunk(std::string_view s) {
  std::string q = json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
  return q.substr(1, q.size() - 2);
}

void XmlValueReader::begin(bool is_string, bool strip_newlines) {
  string_ = is_string;
  strip_ = strip_newlines;
  at_start_ = true;
  text_.clear();
}

void XmlValueReader::deliver(ToolStream& t, Emitter& e, std::string_view piece) {
  if (piece.empty()) return;
  if (string_) t.args(e, XmlArgsWriter::string_chunk(piece));
  else text_.append(piece);
}

int XmlValueReader::step(ToolStream& t, Emitter& e, Markers ends) {
  std::string_view r = t.rest();
  if (r.empty()) return -1;
  if (at_start_ && strip_ && r.front() == '\n') {
    ++t.pos_;
    r.remove_prefix(1);
  }
  at_start_ = false;
  const MarkerHit h = find_marker(r, ends);
  std::string_view piece = r.substr(0, h.none() ? r.size() : h.pos);
  const bool strip_tail = strip_ && !piece.empty() && piece.back() == '\n';
  if (h.full()) {
    deliver(t, e, strip_tail ? piece.substr(0, piece.size() - 1) : piece);
    t.pos_ += piece.size();
    return h.which;
  }
  if (strip_tail) piece.remove_suffix(1);  // may be the newline before the end tag
  deliver(t, e, piece);
  t.pos_ += piece.size();
  return -1;
}

bool valid_tag_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxName) return false;
  for (char c : s)
    if (c == '<' || c == '>' || c == '\n' || c == '\r') return false;
  return true;
}

}  // namespace moe::serve::parsers
