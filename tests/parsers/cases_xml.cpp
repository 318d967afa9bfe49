// Families whose calls carry text parameters typed by the tool's schema: Qwen3-Coder, GLM-4.5/4.6;
// and gpt-oss harmony.
#include "parsers/parser_cases.h"

namespace moe::serve::test {

std::vector<ParserCase> qwen3_coder_cases() {
  const std::string f = "qwen3_coder";
  return {
      // Qwen3-Coder's template: content + "\n" + "\n<tool_call>\n<function=...>\n<parameter=p>\nV\n</parameter>\n..."
      {"single_call", f,
       "I'll check the weather.\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
       "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
       "I'll check the weather.", "", {{"get_weather", R"({"city": "Paris", "days": 3})"}}},
      {"parallel_multiline_string", f,
       "<tool_call>\n<function=write_file>\n<parameter=path>\nsrc/main.py\n</parameter>\n<parameter=content>\n"
       "def main():\n    print(\"hi\")\n\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_weather>\n"
       "<parameter=city>\nTokyo\n</parameter>\n</function>\n</tool_call>",
       "", "",
       {{"write_file", R"({"path": "src/main.py", "content": "def main():\n    print(\"hi\")\n"})"},
        {"get_weather", R"({"city": "Tokyo"})"}}},
      {"schema_types", f,
       "<tool_call>\n<function=configure>\n<parameter=ratio>\n0.75\n</parameter>\n<parameter=tags>\n[\"a\", \"b\"]\n"
       "</parameter>\n<parameter=opts>\n{\"deep\": true}\n</parameter>\n<parameter=limit>\nnull\n</parameter>\n"
       "<parameter=label>\nnull\n</parameter>\n<parameter=extra>\n5\n</parameter>\n</function>\n</tool_call>",
       "", "",
       {{"configure",
         R"({"ratio": 0.75, "tags": ["a","b"], "opts": {"deep":true}, "limit": null, "label": "null", "extra": "5"})"}}},
      {"not_a_number_and_python_bool", f,
       "<tool_call>\n<function=get_weather>\n<parameter=days>\nthree\n</parameter>\n<parameter=detailed>\nTrue\n"
       "</parameter>\n</function>\n</tool_call>",
       "", "", {{"get_weather", R"({"days": "three", "detailed": true})"}}},
      {"markup_like_value", f,
       "<tool_call>\n<function=write_file>\n<parameter=content>\nif a < b:\n    return \"</div>\" + \"<parameter\"\n"
       "</parameter>\n</function>\n</tool_call>",
       "", "", {{"write_file", R"({"content": "if a < b:\n    return \"</div>\" + \"<parameter\""})"}}},
      {"reasoning_no_arguments", f,
       "<think>\nNeed the time.\n</think>\n<tool_call>\n<function=get_time>\n</function>\n</tool_call>\n", "",
       "Need the time.", {{"get_time", "{}"}}},
      {"looks_like_a_call", f, "Use <tool_call> like this: <tool_call>\nnot a function\n</tool_call>",
       "Use <tool_call> like this: <tool_call>\nnot a function\n</tool_call>", "", {}},
      {"unclosed_before_commit", f, "Let me see.\n\n<tool_call>\n<function=get_wea",
       "Let me see.\n\n<tool_call>\n<function=get_wea", "", {}},
      {"truncated_string_value", f,
       "<tool_call>\n<function=write_file>\n<parameter=path>\na.txt\n</parameter>\n<parameter=content>\nhello wor", "",
       "", {{"write_file", R"({"path": "a.txt", "content": "hello wor)"}}, true, false, false},
      {"closing_tags_cut", f, "<tool_call>\n<function=get_weather>\n<parameter=city>\nOslo\n</parameter>\n", "", "",
       {{"get_weather", R"({"city": "Oslo"})"}}},
      {"unicode_arguments", f,
       "<tool_call>\n<function=get_weather>\n<parameter=city>\nSão Paulo 🌞\n</parameter>\n<parameter=note>\n"
       "\"quoted\" ü\n</parameter>\n</function>\n</tool_call>",
       "", "", {{"get_weather", R"({"city": "São Paulo 🌞", "note": "\"quoted\" ü"})"}}},
      {"tools_disabled", f, "<tool_call>\n<function=get_time>\n</function>\n</tool_call>",
       "<tool_call>\n<function=get_time>\n</function>\n</tool_call>", "", {}, false},
  };
}

std::vector<ParserCase> glm45_cases() {
  const std::string f = "glm45";
  return {
      // GLM-4.6: "\n<think>...</think>\ncontent\n<tool_call>NAME\n<arg_key>k</arg_key>\n<arg_value>v</arg_value>\n</tool_call>"
      {"single_call_with_reasoning", f,
       "\n<think>The user wants the weather.</think>\nLet me check.\n<tool_call>get_weather\n<arg_key>city</arg_key>\n"
       "<arg_value>Beijing</arg_value>\n<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call>",
       "Let me check.", "The user wants the weather.", {{"get_weather", R"({"city": "Beijing", "days": 2})"}}},
      // GLM-5: no newlines; the prompt ends with <think>
      {"parallel_compact", f,
       "Two calls needed.</think><tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value></tool_call>"
       "<tool_call>configure<arg_key>tags</arg_key><arg_value>[\"x\", \"y\"]</arg_value><arg_key>opts</arg_key>"
       "<arg_value>{\"a\": 1}</arg_value></tool_call>",
       "", "Two calls needed.",
       {{"get_weather", R"({"city": "Paris"})"}, {"configure", R"({"tags": ["x","y"], "opts": {"a":1}})"}}, true, true},
      {"no_arguments_content_after", f, "<tool_call>get_time\n</tool_call>\nThat was quick.", "\nThat was quick.", "",
       {{"get_time", "{}"}}},
      {"looks_like_a_call", f, "The <tool_call> element wraps calls; <tool_call>get weather</tool_call> is wrong.",
       "The <tool_call> element wraps calls; <tool_call>get weather</tool_call> is wrong.", "", {}},
      {"unclosed_before_commit", f, "<tool_call>get_weath", "<tool_call>get_weath", "", {}},
      {"truncated_value", f, "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Ber", "", "",
       {{"get_weather", R"({"city": "Ber)"}}, true, false, false},
      {"unicode_arguments", f,
       "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>北京 🏯</arg_value>\n<arg_key>备注</arg_key>\n"
       "<arg_value>多云\n转晴</arg_value>\n</tool_call>",
       "", "", {{"get_weather", R"({"city": "北京 🏯", "备注": "多云\n转晴"})"}}},
      {"tools_disabled", f, "\n<think>Hm.</think>\n<tool_call>get_time\n</tool_call>", "<tool_call>get_time\n</tool_call>",
       "Hm.", {}, false},
  };
}

#define H_ANALYSIS "<|channel|>analysis<|message|>"
#define H_START "<|start|>assistant"

std::vector<ParserCase> harmony_cases() {
  const std::string f = "harmony";
  return {
      {"analysis_then_final", f, H_ANALYSIS "User greets; reply briefly.<|end|>" H_START
       "<|channel|>final<|message|>Hello! How can I help?",
       "Hello! How can I help?", "User greets; reply briefly.", {}},
      // <|call|> is a stop token: usually absent
      {"single_call", f, H_ANALYSIS "Need to call get_weather.<|end|>" H_START
       "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}",
       "", "Need to call get_weather.", {{"get_weather", R"({"city":"Paris"})"}}},
      // the recipient before the channel, as the template renders past calls
      {"parallel_recipient_first", f, H_ANALYSIS "Two calls.<|end|>" H_START
       " to=functions.get_weather<|channel|>commentary json<|message|>{\"city\":\"Paris\"}<|call|>" H_START
       " to=functions.get_weather<|channel|>commentary json<|message|>{\"city\":\"Oslo\"}<|call|>",
       "", "Two calls.", {{"get_weather", R"({"city":"Paris"})"}, {"get_weather", R"({"city":"Oslo"})"}}},
      {"preamble_then_call", f, "<|channel|>commentary<|message|>Checking the weather now.<|end|>" H_START
       "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Rome\"}<|call|>",
       "Checking the weather now.", "", {{"get_weather", R"({"city":"Rome"})"}}},
      {"builtin_recipient", f, H_ANALYSIS "Search.<|end|>" H_START
       "<|channel|>analysis to=browser.search code<|message|>{\"query\":\"moe\"}<|call|>",
       "<|start|>assistant<|channel|>analysis to=browser.search code<|message|>{\"query\":\"moe\"}", "Search.", {}},
      {"not_json_arguments", f, "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>Paris please",
       "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>Paris please", "", {}},
      {"unclosed_header", f, H_ANALYSIS "Hmm.<|end|>" H_START "<|channel|>commentary to=functions.get_wea",
       "<|start|>assistant<|channel|>commentary to=functions.get_wea", "Hmm.", {}},
      {"truncated_arguments", f,
       "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Par", "", "",
       {{"get_weather", R"({"city":"Par)"}}, true, false, false},
      {"unicode_arguments", f,
       "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Kraków\",\"note\":\"❄️\"}",
       "", "", {{"get_weather", R"({"city":"Kraków","note":"❄️"})"}}},
      {"plain_text", f, "Just text, no channels.", "Just text, no channels.", "", {}},
      {"tools_disabled", f, "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}",
       "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}", "", {}, false},
  };
}

}  // namespace moe::serve::test
