// serve/chat: loading a model's template (config string, HF's named list, chat_template.jinja)
// and the context transformers builds (messages normalized, special tokens, tools = None).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "serve/chat/chat_template.h"

namespace moe::chat {
namespace {

using json = nlohmann::ordered_json;

const char* kDump = "{{ messages | tojson }}|{{ tools }}|{{ documents }}|{{ add_generation_prompt }}|{{ bos_token }}|{{ eos_token }}|{{ pad_token is defined }}";

ChatRequest one_user() {
  ChatRequest r;
  r.messages = json::parse(R"([{"role": "user", "content": "hi"}])");
  return r;
}

TEST(ChatTemplate, ContextMirrorsTransformers) {
  const ChatTemplate ct(kDump, {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
  EXPECT_EQ(ct.render(one_user()), R"([{"role": "user", "content": "hi"}]|None|None|False|<s>|</s>|False)");
  ChatRequest r = one_user();
  r.add_generation_prompt = true;
  r.tools = json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  r.vars = {{"eos_token", "<end>"}, {"enable_thinking", false}};
  EXPECT_EQ(ct.render(r), R"([{"role": "user", "content": "hi"}]|[{'type': 'function', 'function': {'name': 'f'}}]|None|True|<s>|<end>|False)");
  r.vars = {{"messages", 1}};
  EXPECT_THROW(ct.render(r), std::invalid_argument);
}

TEST(ChatTemplate, NormalizesMessagesLikeTransformers) {
  // null values are dropped; reasoning is aliased as thinking first and reasoning_content.
  const json m = normalize_messages(json::parse(
      R"([{"role": "assistant", "content": null, "tool_calls": [{"id": "1"}]},
          {"role": "assistant", "reasoning": "r", "content": "c"},
          {"role": "assistant", "content": "c", "thinking": "t"}])"));
  EXPECT_EQ(m[0].dump(), R"({"role":"assistant","tool_calls":[{"id":"1"}]})");
  EXPECT_EQ(m[1].dump(), R"({"thinking":"r","role":"assistant","reasoning":"r","content":"c","reasoning_content":"r"})");
  EXPECT_EQ(m[2].dump(), R"({"thinking":"t","role":"assistant","content":"c","reasoning_content":"t"})");
  EXPECT_THROW(normalize_messages(json::array()), std::invalid_argument);
  EXPECT_THROW(normalize_messages(json::parse(R"(["not a message"])")), std::invalid_argument);
}

TEST(ChatTemplate, FromTokenizerConfig) {
  const auto ct = ChatTemplate::from_tokenizer_config(
      R"({"bos_token": {"content": "<|begin|>", "__type": "AddedToken"}, "eos_token": "<|end|>", "unk_token": null,
          "chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}{{ unk_token is defined }}"})");
  EXPECT_EQ(ct.render(one_user()), "<|begin|>hi<|end|>False");
  // HF's named templates: "tool_use" when tools are given, else "default".
  const auto named = ChatTemplate::from_tokenizer_config(
      R"({"chat_template": [{"name": "default", "template": "plain"}, {"name": "tool_use", "template": "tools"}]})");
  ChatRequest r = one_user();
  EXPECT_EQ(named.render(r), "plain");
  r.tools = json::array();
  EXPECT_EQ(named.render(r), "tools");
  // chat_template.jinja takes priority over the config's template.
  EXPECT_EQ(ChatTemplate::from_tokenizer_config(R"({"chat_template": "config"})", "file").render(one_user()), "file");
  EXPECT_THROW(ChatTemplate::from_tokenizer_config(R"({"eos_token": "x"})"), std::runtime_error);
  EXPECT_THROW(ChatTemplate::from_tokenizer_config("{not json"), std::invalid_argument);
  EXPECT_THROW(ChatTemplate::from_tokenizer_config(R"({"chat_template": "{% if %}"})"), jinja::Error);
}

TEST(ChatTemplate, TinyMoeModelDir) {
  const auto ct = ChatTemplate::from_model_dir(std::filesystem::path(MOE_SOURCE_DIR) / "models/tiny-moe");
  ChatRequest r;
  r.messages = json::parse(R"([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])");
  r.add_generation_prompt = true;
  EXPECT_EQ(ct.render(r), "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
  const SpecialTokens want = {{"eos_token", "<|im_end|>"}, {"pad_token", "<|endoftext|>"}};
  EXPECT_EQ(ct.special_tokens(), want);
}

TEST(ChatTemplate, ModelDirChatTemplateJinja) {
  const auto dir = std::filesystem::temp_directory_path() / ("moe_chat_dir_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "additional_chat_templates");
  std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template": "config", "bos_token": "<b>"})";
  std::ofstream(dir / "chat_template.jinja") << "file {{ bos_token }}\n";
  std::ofstream(dir / "additional_chat_templates" / "tool_use.jinja") << "tools";
  const auto ct = ChatTemplate::from_model_dir(dir);
  ChatRequest r = one_user();
  EXPECT_EQ(ct.render(r), "file <b>");
  r.tools = json::array();
  EXPECT_EQ(ct.render(r), "tools");
  std::filesystem::remove_all(dir);
  EXPECT_THROW(ChatTemplate::from_model_dir(dir), std::runtime_error);
}

TEST(ChatTemplate, ParseJsonBoundsNesting) {
  EXPECT_EQ(parse_json(R"({"a": [1]})", "x")["a"][0], 1);
  EXPECT_THROW(parse_json(std::string(100000, '['), "x"), std::invalid_argument);
  EXPECT_THROW(parse_json("[1,", "x"), std::invalid_argument);
}

}  // namespace
}  // namespace moe::chat
