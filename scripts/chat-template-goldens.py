#!/usr/bin/env python3
"""Renders every tests/fixtures/chat_templates/*.jinja with transformers' own apply_chat_template
(tokenize=False) over fixed message sets and writes the results as goldens for tests/jinja.

    python3 scripts/chat-template-goldens.py      # needs transformers (>= 5) and jinja2; no torch

Outputs, under tests/fixtures/chat_templates/golden/:
  cases.json      the inputs: messages, tools, add_generation_prompt, extra variables, the special
                  tokens and the fixed date strftime_now sees, plus the transformers/jinja2 versions
  <template>.json per case either {"name", "output"} or, where jinja2 raised, {"name", "error",
                  "error_type"} (raise_exception gives error_type "TemplateError")
"""
import datetime as _dt
import json
import pathlib
import sys

import jinja2
import transformers
from transformers import PreTrainedTokenizerFast
from transformers.utils import chat_template_utils

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "tests" / "fixtures" / "chat_templates"
OUT = TEMPLATES / "golden"
TOKENIZER = ROOT / "models" / "tiny-moe" / "tokenizer.json"  # any tokenizer.json: only its special tokens matter

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
FIXED_NOW = _dt.datetime(2025, 7, 14, 9, 30, 15)


class _FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Paris"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_web",
            "description": "Search the web and return the top results.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "The search query"},
                    "max_results": {"type": "integer", "description": "How many results", "default": 5},
                    "safe": {"type": "boolean", "description": "Filter explicit results"},
                },
                "required": ["query"],
            },
        },
    },
]

SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer briefly."}
USER = {"role": "user", "content": "What's the weather like in Paris today?"}
TOOL_FLOW = [
    USER,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0001",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_0001", "name": "get_weather", "content": '{"temperature": 21.5, "sky": "sunny"}'},
    {"role": "assistant", "content": "It is sunny in Paris, 21.5 °C."},
    {"role": "user", "content": "Thanks! And in Berlin?"},
]

MESSAGE_SETS = {
    "system_user": [SYSTEM, USER],
    "multi_turn": [
        SYSTEM,
        {"role": "user", "content": "Hi there!"},
        {"role": "assistant", "content": "Hello! How can I help you today?"},
        {"role": "user", "content": "Write a haiku about\nthe sea, with \"quotes\" & <tags>."},
    ],
    "tool_calls": TOOL_FLOW,
    "reasoning": [
        {"role": "user", "content": "What is 17 * 3?"},
        {"role": "assistant", "reasoning_content": "17 * 3 = 51. Double-check: 50 + 1.", "content": "17 * 3 = 51."},
        {"role": "user", "content": "And 18 * 3?"},
    ],
    "tools": [SYSTEM, USER],
    "tools_tool_calls": [SYSTEM] + TOOL_FLOW,
}

# Two parallel calls with OpenAI-style string arguments and empty (not null) content.
PARALLEL_CALLS = [
    SYSTEM,
    {"role": "user", "content": "Weather in Paris and Berlin, please."},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Berlin", "unit": "celsius"}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "18 C, cloudy"},
    {"role": "tool", "tool_call_id": "call_2", "name": "get_weather", "content": "15 C, rain"},
]
# Content given as a list of text parts (OpenAI's multi-part content).
CONTENT_PARTS = [
    {"role": "system", "content": "Be concise."},
    {"role": "user", "content": [{"type": "text", "text": "Describe the sea"}, {"type": "text", "text": " in one line."}]},
]


def cases():
    out = []
    for set_name, messages in MESSAGE_SETS.items():
        tools = TOOLS if set_name.startswith("tools") else None
        for gen in (False, True):
            out.append({"name": f"{set_name}{'_gen' if gen else ''}", "messages": messages, "tools": tools,
                        "add_generation_prompt": gen, "vars": {}})
    out.append({"name": "system_user_gen_no_thinking", "messages": MESSAGE_SETS["system_user"], "tools": None,
                "add_generation_prompt": True, "vars": {"enable_thinking": False}})
    out.append({"name": "parallel_calls_gen", "messages": PARALLEL_CALLS, "tools": TOOLS,
                "add_generation_prompt": True, "vars": {}})
    out.append({"name": "content_parts_gen", "messages": CONTENT_PARTS, "tools": None,
                "add_generation_prompt": True, "vars": {}})
    out.append({"name": "reasoning_gen_effort", "messages": MESSAGE_SETS["reasoning"], "tools": None,
                "add_generation_prompt": True, "vars": {"reasoning_effort": "high", "enable_thinking": True}})
    return out


def render(tok, template, case):
    try:
        text = tok.apply_chat_template(case["messages"], tools=case["tools"], chat_template=template, tokenize=False,
                                       add_generation_prompt=case["add_generation_prompt"], **case["vars"])
        return {"name": case["name"], "output": text}
    except Exception as e:  # the template raised (raise_exception, a TypeError on this message shape, ...)
        return {"name": case["name"], "error": str(e), "error_type": type(e).__name__}


def main():
    chat_template_utils.datetime = _FixedDatetime  # strftime_now() reads datetime.now()
    tok = PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZER), **SPECIAL_TOKENS)
    all_cases = cases()
    OUT.mkdir(exist_ok=True)
    meta = {"transformers": transformers.__version__, "jinja2": jinja2.__version__,
            "special_tokens": SPECIAL_TOKENS, "now": FIXED_NOW.isoformat(), "cases": all_cases}
    (OUT / "cases.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for path in sorted(TEMPLATES.glob("*.jinja")):
        template = path.read_text(encoding="utf-8")
        results = [render(tok, template, c) for c in all_cases]
        golden = {"template": path.name, "transformers": transformers.__version__, "jinja2": jinja2.__version__,
                  "cases": results}
        (OUT / (path.stem + ".json")).write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n",
                                                 encoding="utf-8")
        errors = sum("error" in r for r in results)
        print(f"{path.name:60s} {len(results)} cases, {errors} raised", file=sys.stderr)


if __name__ == "__main__":
    main()
