// Families whose calls carry raw JSON arguments: Hermes/Qwen, Mistral, DeepSeek-V3.1, Kimi-K2.
#include "parsers/parser_cases.h"

namespace moe::serve::test {

std::vector<ParserCase> hermes_cases() {
  const std::string f = "hermes";
  return {
      {"single_call", f,
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n</tool_call>",
       "", "", {{"get_weather", R"({"city": "Paris", "days": 3})"}}},
      // Qwen3 with thinking: the template writes "<think>\n...\n</think>\n\n" + content + "\n<tool_call>..."
      {"parallel_with_reasoning", f,
       "<think>\nThe user asked about two cities, so two calls.\n</think>\n\nI'll check both cities.\n"
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Tokyo\"}}\n</tool_call>",
       "I'll check both cities.", "The user asked about two cities, so two calls.",
       {{"get_weather", R"({"city": "Paris"})"}, {"get_weather", R"({"city": "Tokyo"})"}}},
      {"content_before_and_after", f,
       "Let me look that up.\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"mixture of experts\"}}"
       "\n</tool_call>\nI searched for it.",
       "Let me look that up.\nI searched for it.", "", {{"search", R"({"query": "mixture of experts"})"}}},
      {"looks_like_a_call", f, "Write <tool_call> tags like <tool_call>{\"name\": oops}</tool_call> when calling.",
       "Write <tool_call> tags like <tool_call>{\"name\": oops}</tool_call> when calling.", "", {}},
      {"not_json_inside", f, "<tool_call>\nget_weather(city=\"Paris\")\n</tool_call>",
       "<tool_call>\nget_weather(city=\"Paris\")\n</tool_call>", "", {}},
      {"unclosed_before_name", f, "Checking.\n<tool_call>\n{\"name\": \"get_wea",
       "Checking.\n<tool_call>\n{\"name\": \"get_wea", "", {}},
      {"truncated_arguments", f, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par",
       "", "", {{"get_weather", R"({"city": "Par)"}}, true, false, false},
      {"invalid_json_after_commit", f, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1,, \"b\": 2}}\n</tool_call>",
       ", \"b\": 2}}\n</tool_call>", "", {{"f", R"({"a": 1,)"}}, true, false, false},
      {"unicode_arguments", f,
       "<tool_call>\n{\"name\": \"translate\", \"arguments\": {\"text\": \"naïve café 東京 🌸\", "
       "\"escaped\": \"\\u00e9\\ud83c\\udf38\"}}\n</tool_call>",
       "", "", {{"translate", R"({"text": "naïve café 東京 🌸", "escaped": "\u00e9\ud83c\udf38"})"}}},
      {"arguments_before_name", f, "<tool_call>\n{\"arguments\": {\"x\": [1, 2.5e3, null]}, \"name\": \"plot\"}\n</tool_call>",
       "", "", {{"plot", R"({"x": [1, 2.5e3, null]})"}}},
      {"no_arguments_key", f, "<tool_call>\n{\"name\": \"get_time\"}\n</tool_call>", "", "", {{"get_time", "{}"}}},
      {"close_tag_cut_by_stop", f, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": true}}", "", "",
       {{"f", R"({"a": true})"}}},
      {"markup_in_reasoning", f,
       "<think>\nShould I use <tool_call>? Yes.\n</think>\n\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
       "", "Should I use <tool_call>? Yes.", {{"f", "{}"}}},
      {"tools_disabled", f,
       "<think>\nNo tools needed.\n</think>\n\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
       "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>", "No tools needed.", {}, false},
      {"starts_in_reasoning", f, "Thinking without the opening tag.\n</think>\n\nAnswer: 42.", "Answer: 42.",
       "Thinking without the opening tag.", {}, true, true},
      {"unclosed_reasoning", f, "<think>\nStill thinking when cut", "", "Still thinking when cut", {}},
      {"none_family", "none", "<think>\nhmm\n</think>\n\nHello <tool_call> world\n", "Hello <tool_call> world\n",
       "hmm", {}},
      {"plain_content_with_angle_brackets", f, "if a < b and c <tool x> then <tool_cal", "if a < b and c <tool x> then <tool_cal",
       "", {}},
  };
}

std::vector<ParserCase> mistral_cases() {
  const std::string f = "mistral";
  return {
      // Devstral / Mistral-Small-3.2 / Ministral-3: NAME[ARGS]{json}
      {"single_call", f, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\", \"days\": 2}", "", "",
       {{"get_weather", R"({"city": "Paris", "days": 2})"}}},
      {"parallel_with_content", f,
       "Checking both.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Lyon\"}",
       "Checking both.", "", {{"get_weather", R"({"city": "Paris"})"}, {"get_weather", R"({"city": "Lyon"})"}}},
      {"call_id", f, "[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{\"city\": \"Nice\"}", "", "",
       {{"get_weather", R"({"city": "Nice"})", "a1b2c3d4e"}}},
      // Mistral-Nemo: a JSON list
      {"json_list", f,
       "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, "
       "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Berlin\"}}]\nBoth requested.",
       "\nBoth requested.", "", {{"get_weather", R"({"city": "Paris"})"}, {"get_weather", R"({"city": "Berlin"})"}}},
      {"reasoning", f, "[THINK]The user wants Rome's weather.[/THINK]I'll check.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Roma\"}",
       "I'll check.", "The user wants Rome's weather.", {{"get_weather", R"({"city": "Roma"})"}}},
      {"looks_like_a_call", f, "The token [TOOL_CALLS] starts a call; [TOOL_CALLS] hello world [ARGS] no",
       "The token [TOOL_CALLS] starts a call; [TOOL_CALLS] hello world [ARGS] no", "", {}},
      {"unclosed_before_args", f, "Sure.[TOOL_CALLS]get_wea", "Sure.[TOOL_CALLS]get_wea", "", {}},
      {"truncated_arguments", f, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Par", "", "",
       {{"get_weather", R"({"city": "Par)"}}, true, false, false},
      {"unicode_arguments", f, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Zürich\", \"note\": \"☀️ 晴れ\"}", "", "",
       {{"get_weather", R"({"city": "Zürich", "note": "☀️ 晴れ"})"}}},
      {"tools_disabled", f, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}",
       "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}", "", {}, false},
  };
}

#define DS_CALLS "<｜tool▁calls▁begin｜>"
#define DS_CALLS_END "<｜tool▁calls▁end｜>"
#define DS_CALL "<｜tool▁call▁begin｜>"
#define DS_CALL_END "<｜tool▁call▁end｜>"
#define DS_SEP "<｜tool▁sep｜>"

std::vector<ParserCase> deepseek_cases() {
  const std::string f = "deepseek_v31";
  return {
      {"single_call", f, DS_CALLS DS_CALL "get_weather" DS_SEP "{\"city\": \"Paris\"}" DS_CALL_END DS_CALLS_END, "", "",
       {{"get_weather", R"({"city": "Paris"})"}}},
      // Thinking mode: the prompt ends with <think>, the output closes it.
      {"parallel_with_reasoning", f,
       "The user wants two cities.</think>Let me check." DS_CALLS DS_CALL "get_weather" DS_SEP "{\"city\": \"Paris\"}"
       DS_CALL_END DS_CALL "get_weather" DS_SEP "{\"city\": \"Seoul\"}" DS_CALL_END DS_CALLS_END,
       "Let me check.", "The user wants two cities.",
       {{"get_weather", R"({"city": "Paris"})"}, {"get_weather", R"({"city": "Seoul"})"}}, true, true},
      // V3 / R1-Distill form
      {"r1_form", f,
       DS_CALLS DS_CALL "function" DS_SEP "get_weather\n```json\n{\"city\": \"Paris\"}\n```" DS_CALL_END DS_CALLS_END,
       "", "", {{"get_weather", R"({"city": "Paris"})"}}},
      {"content_after", f, DS_CALLS DS_CALL "get_time" DS_SEP "{}" DS_CALL_END DS_CALLS_END "Done.", "Done.", "",
       {{"get_time", "{}"}}},
      {"looks_like_a_call", f, "The marker " DS_CALLS " then prose.", "The marker " DS_CALLS " then prose.", "", {}},
      {"not_json_arguments", f, DS_CALLS DS_CALL "get_weather" DS_SEP "city=Paris" DS_CALL_END DS_CALLS_END,
       DS_CALLS DS_CALL "get_weather" DS_SEP "city=Paris" DS_CALL_END DS_CALLS_END, "", {}},
      {"unclosed_before_commit", f, DS_CALLS DS_CALL "get_wea", DS_CALLS DS_CALL "get_wea", "", {}},
      {"truncated_arguments", f, DS_CALLS DS_CALL "get_weather" DS_SEP "{\"city\": \"Pa", "", "",
       {{"get_weather", R"({"city": "Pa)"}}, true, false, false},
      {"unicode_arguments", f, DS_CALLS DS_CALL "get_weather" DS_SEP "{\"city\": \"서울\", \"note\": \"😀\"}" DS_CALL_END
       DS_CALLS_END, "", "", {{"get_weather", R"({"city": "서울", "note": "😀"})"}}},
      {"tools_disabled", f, "Plan.</think>" DS_CALLS DS_CALL "f" DS_SEP "{}" DS_CALL_END DS_CALLS_END,
       DS_CALLS DS_CALL "f" DS_SEP "{}" DS_CALL_END DS_CALLS_END, "Plan.", {}, false, true},
  };
}

#define KIMI_SEC "<|tool_calls_section_begin|>"
#define KIMI_SEC_END "<|tool_calls_section_end|>"
#define KIMI_CALL "<|tool_call_begin|>"
#define KIMI_ARG "<|tool_call_argument_begin|>"
#define KIMI_END "<|tool_call_end|>"

std::vector<ParserCase> kimi_cases() {
  const std::string f = "kimi_k2";
  return {
      {"single_call", f, KIMI_SEC KIMI_CALL "functions.get_weather:0" KIMI_ARG "{\"city\": \"Paris\"}" KIMI_END KIMI_SEC_END,
       "", "", {{"get_weather", R"({"city": "Paris"})", "functions.get_weather:0"}}},
      {"parallel_with_content", f,
       "I'll check both." KIMI_SEC KIMI_CALL "functions.get_weather:0" KIMI_ARG "{\"city\": \"Paris\"}" KIMI_END
       KIMI_CALL "functions.get_weather:1" KIMI_ARG "{\"city\": \"Kyoto\"}" KIMI_END KIMI_SEC_END,
       "I'll check both.", "",
       {{"get_weather", R"({"city": "Paris"})", "functions.get_weather:0"},
        {"get_weather", R"({"city": "Kyoto"})", "functions.get_weather:1"}}},
      {"reasoning_and_content_after", f,
       "<think>Need the time.</think>" KIMI_SEC KIMI_CALL "functions.get_time:3" KIMI_ARG "{}" KIMI_END KIMI_SEC_END
       "Asked.",
       "Asked.", "Need the time.", {{"get_time", "{}", "functions.get_time:3"}}},
      {"looks_like_a_call", f, "Kimi uses " KIMI_SEC " to start calls.", "Kimi uses " KIMI_SEC " to start calls.", "", {}},
      {"unclosed_before_commit", f, KIMI_SEC KIMI_CALL "functions.get_wea", KIMI_SEC KIMI_CALL "functions.get_wea", "", {}},
      {"truncated_arguments", f, KIMI_SEC KIMI_CALL "functions.get_weather:0" KIMI_ARG "{\"city\": \"Pa", "", "",
       {{"get_weather", R"({"city": "Pa)", "functions.get_weather:0"}}, true, false, false},
      {"unicode_arguments", f,
       KIMI_SEC KIMI_CALL "functions.get_weather:0" KIMI_ARG "{\"city\": \"北京\", \"note\": \"🌧️\"}" KIMI_END KIMI_SEC_END,
       "", "", {{"get_weather", R"({"city": "北京", "note": "🌧️"})", "functions.get_weather:0"}}},
      {"tools_disabled", f, KIMI_SEC KIMI_CALL "functions.f:0" KIMI_ARG "{}" KIMI_END KIMI_SEC_END,
       KIMI_SEC KIMI_CALL "functions.f:0" KIMI_ARG "{}" KIMI_END KIMI_SEC_END, "", {}, false},
  };
}

}  // namespace moe::serve::test
