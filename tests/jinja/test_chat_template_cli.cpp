// moe chat-template on models/tiny-moe: the prompt printed exactly; bad inputs give one error line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli/moe_cli.h"

namespace moe::test {
namespace {

namespace fs = std::filesystem;

fs::path tiny() { return fs::path(MOE_SOURCE_DIR) / "models/tiny-moe"; }

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("moe_chat_cli_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
};

TEST(ChatTemplateCli, RendersTinyMoe) {
  TempDir t;
  const std::string msgs = t.write("m.json", R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])");
  auto r = moe_cli("chat-template --model " + tiny().string() + " --messages " + msgs, false);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  r = moe_cli("chat-template --model " + tiny().string() + " --messages " + msgs + " --add-generation-prompt", false);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateCli, TemplateFileToolsAndVars) {
  TempDir t;
  const std::string msgs = t.write("m.json", R"([{"role": "user", "content": "Hi"}])");
  const std::string tools = t.write("t.json", R"([{"type": "function", "function": {"name": "get_weather"}}])");
  const std::string tpl = t.write("c.jinja",
                                  "{{ eos_token }}|{{ tools | map(attribute='function.name') | join }}|{{ enable_thinking }}|{{ effort }}|{{ n + 1 }}\n");
  const auto r = moe_cli("chat-template --model " + tiny().string() + " --chat-template " + tpl + " --messages " + msgs +
                             " --tools " + tools + " --var enable_thinking=false --var effort=high --var n=41",
                         false);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "<|im_end|>|get_weather|False|high|42");
}

TEST(ChatTemplateCli, BadInputsGiveOneErrorLine) {
  TempDir t;
  const std::string msgs = t.write("m.json", R"([{"role": "user", "content": "Hi"}])");
  const std::string bad_json = t.write("bad.json", "[{\"role\": ");
  const std::string bad_tpl = t.write("bad.jinja", "line 1\n{% for x in %}");
  const std::string raising = t.write("raise.jinja", "{{ raise_exception('System role not supported') }}");
  const std::string hostile = t.write("loop.jinja", "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}");
  const std::string cases[][2] = {
      {"chat-template --model " + tiny().string() + " --messages /nonexistent/m.json", "--messages"},
      {"chat-template --model /nonexistent/model --messages " + msgs, "/nonexistent/model"},
      {"chat-template --model " + tiny().string() + " --messages " + bad_json, "invalid JSON"},
      {"chat-template --chat-template " + bad_tpl + " --messages " + msgs, "template line 2"},
      {"chat-template --chat-template " + raising + " --messages " + msgs, "System role not supported"},
      {"chat-template --chat-template " + hostile + " --messages " + msgs, "template line 1"},
      {"chat-template --messages " + msgs, "--model"},
      {"chat-template --chat-template " + tiny().string() + " --messages " + msgs, "directory"},
  };
  for (const auto& [args, needle] : cases) {
    const auto r = moe_cli(args);
    EXPECT_NE(r.code, 0) << args;
    EXPECT_NE(r.out.find(needle), std::string::npos) << args << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("moe: error: ", 0), 0u) << r.out;
  }
}

}  // namespace
}  // namespace moe::test
