#include "jinja/golden.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace moe::test {

namespace {

using json = nlohmann::ordered_json;

std::string read(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const json& cases_json() {
  static const json j = json::parse(read(chat_template_dir() / "golden" / "cases.json"));
  return j;
}

// The first difference, quoted briefly.
std::string first_diff(const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  auto snip = [&](const std::string& s) { return json(s.substr(i, 60)).dump(); };
  return "differs at byte " + std::to_string(i) + ": want " + snip(want) + ", got " + snip(got);
}

}  // namespace

std::filesystem::path chat_template_dir() { return std::filesystem::path(MOE_SOURCE_DIR) / "tests/fixtures/chat_templates"; }

chat::SpecialTokens golden_special_tokens() {
  chat::SpecialTokens t;
  for (const auto& [k, v] : cases_json()["special_tokens"].items()) t.emplace_back(k, v.get<std::string>());
  return t;
}

std::vector<std::string> golden_template_names() {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(chat_template_dir()))
    if (e.path().extension() == ".jinja") names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

GoldenTemplate load_golden(const std::string& template_name) {
  GoldenTemplate g;
  g.name = template_name;
  g.source = read(chat_template_dir() / template_name);
  const std::filesystem::path stem = std::filesystem::path(template_name).stem();
  const json golden = json::parse(read(chat_template_dir() / "golden" / (stem.string() + ".json")));
  const json& inputs = cases_json()["cases"];
  for (const json& r : golden["cases"]) {
    GoldenCase c;
    c.name = r["name"].get<std::string>();
    auto in = std::find_if(inputs.begin(), inputs.end(), [&](const json& x) { return x["name"] == c.name; });
    if (in == inputs.end()) throw std::runtime_error("golden case " + c.name + " is not in cases.json");
    c.request.messages = (*in)["messages"];
    c.request.tools = (*in)["tools"];
    c.request.add_generation_prompt = (*in)["add_generation_prompt"].get<bool>();
    c.request.vars = (*in)["vars"];
    if (r.contains("error")) {
      c.raises = true;
      c.error = r["error"].get<std::string>();
      c.error_type = r["error_type"].get<std::string>();
    } else {
      c.output = r["output"].get<std::string>();
    }
    g.cases.push_back(std::move(c));
  }
  return g;
}

jinja::RenderOptions golden_render_options() {
  jinja::RenderOptions o;
  o.now = [] {
    std::tm tm{};  // cases.json "now": 2025-07-14T09:30:15 (a Monday)
    tm.tm_year = 2025 - 1900;
    tm.tm_mon = 6;
    tm.tm_mday = 14;
    tm.tm_hour = 9;
    tm.tm_min = 30;
    tm.tm_sec = 15;
    tm.tm_wday = 1;
    tm.tm_yday = 194;
    return tm;
  };
  return o;
}

std::string compare_case(const chat::ChatTemplate& ct, const GoldenCase& c) {
  std::string got;
  try {
    got = ct.render(c.request, golden_render_options());
  } catch (const jinja::TemplateException& e) {
    if (!c.raises) return std::string("raised: ") + e.what();
    if (c.error_type == "TemplateError" && e.raised() != c.error)
      return "raise_exception message: want " + json(c.error).dump() + ", got " + json(e.raised()).dump();
    return "";
  } catch (const std::exception& e) {
    if (!c.raises) return std::string("raised: ") + e.what();
    if (c.error_type == "TemplateError") return "want raise_exception(" + json(c.error).dump() + "), got: " + e.what();
    return "";
  }
  if (c.raises) return "jinja2 raised " + c.error_type + " (" + c.error + ") but we rendered";
  return got == c.output ? "" : first_diff(c.output, got);
}

}  // namespace moe::test
