#!/usr/bin/env python3
"""Check the chat template of models/tiny-moe against the training data.

    python3 training/check_chat_template.py --model models/tiny-moe [--old-data OLD_tiny_moe_data.py] [--n 60000]

1. transformers' apply_chat_template (the tokenizer_config.json of --model) renders byte-identically
   to tiny_moe_data.render(), which made the training token stream: the 200 held-out chats (every prefix,
   with and without the generation prompt), --n-hf training chats of chat mix 1 and 2, and the OpenAI
   variants (the system message replaced by a "tools" list, function.arguments as a mapping instead of a
   JSON string, content as a list of text parts, content null);
2. with --old-data (the tiny_moe_data.py the earlier stages were trained with, e.g. from
   `git show 1b207a5:training/tiny_moe_data.py`): the new message representation (tool_calls, raw tool
   results) renders to exactly the old training text for the stage seeds 1234-1237 (--n chats each) and
   the held-out seed;
3. the committed eval/heldout_chats.txt is the rendering of eval/heldout_chats.jsonl, and the held-out
   chats' tool questions do not occur among the training chats' tool questions of the given stage seeds.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny_moe_data as D  # noqa: E402


def openai_variants(msgs: list[dict]):
    """(messages, tools) pairs that must render like msgs."""
    out = []
    if msgs and msgs[0]["role"] == "system" and msgs[0]["content"] == D.SYSTEM_PROMPT:
        out.append((msgs[1:], D.TOOLS))                                  # tools list instead of the system text
        out.append((msgs[1:], [{"name": n} for n in D.TOOL_NAMES]))      # bare function objects
    m2 = copy.deepcopy(msgs)
    for m in m2:
        for tc in m.get("tool_calls") or []:
            tc["function"]["arguments"] = json.loads(tc["function"]["arguments"])  # a mapping -> tojson
            tc["id"] = "call_0"
        if m["role"] == "user":
            m["content"] = [{"type": "text", "text": m["content"]}]
        if m["role"] == "tool":
            m["tool_call_id"] = "call_0"
    out.append((m2, None))
    if msgs and msgs[0]["role"] == "system" and msgs[0]["content"] == D.SYSTEM_PROMPT:
        out.append((m2, D.TOOLS))  # a system message wins over the tools list
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/tiny-moe")
    ap.add_argument("--old-data", default=None)
    ap.add_argument("--n", type=int, default=60000, help="chats per stage seed for the old/new comparison")
    ap.add_argument("--n-hf", type=int, default=3000, help="training chats per mix rendered through transformers")
    ap.add_argument("--seeds", default="1234,1235,1236,1237,1238")
    a = ap.parse_args()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(a.model)
    cfg = json.load(open(os.path.join(a.model, "tokenizer_config.json"), encoding="utf-8"))
    assert cfg["chat_template"] == D.CHAT_TEMPLATE, "tokenizer_config.json chat_template != tiny_moe_data.CHAT_TEMPLATE"

    def hf(msgs, gen=False, tools=None):
        return tok.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=gen)

    n_checks = 0
    held = D.make_chats(200, D.TEST_SEED)
    jsonl = [json.loads(l) for l in open(os.path.join(a.model, "eval", "heldout_chats.jsonl"), encoding="utf-8")]
    assert jsonl == held, "eval/heldout_chats.jsonl differs from make_chats(200, TEST_SEED)"
    txt = open(os.path.join(a.model, "eval", "heldout_chats.txt"), encoding="utf-8").read()
    assert txt == "".join(D.render(c["messages"]) for c in held), "eval/heldout_chats.txt"
    seeds = [int(s) for s in a.seeds.split(",")]
    sets = [("held-out", held, True)]
    for mix in (1, 2):
        sets.append((f"training mix {mix}", D.make_chats(a.n_hf, seeds[0] + mix, mix), False))
    for name, chats, prefixes in sets:
        for c in chats:
            msgs = c["messages"]
            cuts = range(1, len(msgs) + 1) if prefixes else [len(msgs), c["target"]["prefix_messages"]]
            for k in cuts:
                for gen in (False, True):
                    want = D.render(msgs[:k], add_generation_prompt=gen)
                    got = hf(msgs[:k], gen)
                    assert got == want, (name, k, gen, got, want)
                    n_checks += 1
            for m2, tools in openai_variants(msgs):
                want = D.render(msgs, add_generation_prompt=True)
                assert hf(m2, True, tools) == want, (name, "openai variant", hf(m2, True, tools), want)
                assert D.render(m2, True, tools) == want
                n_checks += 2
        print(f"{name}: {len(chats)} chats agree with transformers' apply_chat_template", flush=True)
    # a tools list with other names, several calls in one message, content next to a call, null content
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}, {"name": "lookup"}]
    msgs = [{"role": "user", "content": "Weather in Paris and the capital of Peru?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "b", "type": "function", "function": {"name": "lookup", "arguments": {"key": "capital_of_peru"}}}]},
            {"role": "tool", "tool_call_id": "a", "content": "sunny, 21 C"},
            {"role": "tool", "tool_call_id": "b", "content": "Lima"},
            {"role": "assistant", "content": None}]
    want = ("<|im_start|>system\nYou are a helpful assistant. Tools: get_weather, lookup.<|im_end|>\n"
            "<|im_start|>user\nWeather in Paris and the capital of Peru?<|im_end|>\n<|im_start|>assistant\n"
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
            "<tool_call>\n{\"name\": \"lookup\", \"arguments\": {\"key\": \"capital_of_peru\"}}\n</tool_call><|im_end|>\n"
            "<|im_start|>tool\n<tool_response>\nsunny, 21 C\n</tool_response><|im_end|>\n"
            "<|im_start|>tool\n<tool_response>\nLima\n</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n<|im_end|>\n<|im_start|>assistant\n")
    assert hf(msgs, True, tools) == want, hf(msgs, True, tools)
    assert D.render(msgs, True, tools) == want
    n_checks += 2
    print(f"OK: {n_checks} renderings through transformers' apply_chat_template equal tiny_moe_data.render()")

    if a.old_data:
        spec = importlib.util.spec_from_file_location("tiny_moe_data_old", a.old_data)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        test_keys = {D.chat_key(c) for c in held}
        for seed, n in [(D.TEST_SEED, 200)] + [(s, a.n) for s in seeds]:
            new_chats, old_chats = D.make_chats(n, seed), old.make_chats(n, seed)
            for cn, co in zip(new_chats, old_chats):
                assert D.render(cn["messages"]) == old.render(co["messages"]), seed
                assert cn["target"] == co["target"]
            if seed != D.TEST_SEED:
                kept = [c for c in new_chats if D.chat_key(c) not in test_keys]
                leaks = sum(any(q in test_keys for q in D.chat_questions(c)) for c in kept)
                print(f"seed {seed}: {n} chats render byte-identically to the old data; {n - len(kept)} dropped as "
                      f"held-out duplicates, {leaks} kept chats ask a held-out question in an earlier exchange")
            else:
                print(f"held-out seed {seed}: {n} chats render byte-identically to the old data")
        for seed in seeds:
            m2 = D.make_chats(a.n, seed, mix=2)
            kept = [c for c in m2 if not any(q in test_keys for q in D.chat_questions(c))]
            print(f"mix 2 seed {seed}: {len(m2) - len(kept)} of {len(m2)} chats dropped (ask a held-out question)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
