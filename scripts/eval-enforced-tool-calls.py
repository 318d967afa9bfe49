#!/usr/bin/env python3
"""Tool-call accuracy of models/tiny-moe with and without enforced arguments, side by side.

    python3 scripts/eval-enforced-tool-calls.py [--moe build/tools/moe] [--model models/tiny-moe] [--n 200]

The held-out chats of training/eval_tiny_moe.py (models/tiny-moe/eval/heldout_chats.jsonl) are rendered
with the model's chat template (transformers' apply_chat_template) up to the assistant turn that should
call a tool. `moe run --temp 0 -n 96` answers each twice: free, and with `--tool-calls` (the output must
be a <tool_call> whose arguments follow the tool's JSON Schema; tools of examples/agent.py). A call is
right when its name and arguments equal the expected ones. Prints one JSON line with both figures.
"""
import argparse
import concurrent.futures as cf
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tools():
    spec = importlib.util.spec_from_file_location("agent", os.path.join(ROOT, "examples", "agent.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.TOOLS


def parse_call(text):
    """(name, arguments) of the first <tool_call>, as training/eval_tiny_moe.py reads it."""
    sys.path.insert(0, os.path.join(ROOT, "training"))
    from eval_tiny_moe import parse_tool_call  # noqa: E402 (imports torch: only when run)
    return parse_tool_call(text)


def run(moe, model, prompt, extra):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write(prompt)
    try:
        r = subprocess.run([moe, "run", "--model", model, "--prompt-file", f.name, "--no-echo", "--temp", "0",
                            "-n", "96", "-t", "1"] + extra, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip())
        return r.stdout
    finally:
        os.unlink(f.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--moe", default=os.path.join(ROOT, "build", "tools", "moe"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "tiny-moe"))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(a.model)
    chats = [json.loads(l) for l in open(os.path.join(a.model, "eval", "heldout_chats.jsonl"), encoding="utf-8")][:a.n]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(load_tools(), f)
        tools_path = f.name

    def one(chat):
        t = chat["target"]
        prompt = tok.apply_chat_template(chat["messages"][:t["prefix_messages"]], tokenize=False, add_generation_prompt=True)
        row = {"tool": t["name"]}
        for mode, extra in (("free", []), ("enforced", ["--tool-calls", tools_path])):
            name, args = parse_call(run(a.moe, a.model, prompt, extra))
            row[mode] = {"parsed": name is not None, "name_ok": name == t["name"],
                         "call_ok": name == t["name"] and args == t["arguments"]}
        return row

    try:
        with cf.ThreadPoolExecutor(a.workers) as ex:
            rows = list(ex.map(one, chats))
    finally:
        os.unlink(tools_path)
    n = len(rows)
    out = {"chats": n}
    for mode in ("free", "enforced"):
        out[mode] = {k: sum(r[mode][k] for r in rows) / n for k in ("parsed", "name_ok", "call_ok")}
    per_tool = {}
    for r in rows:
        d = per_tool.setdefault(r["tool"], {"n": 0, "free": 0, "enforced": 0})
        d["n"] += 1
        d["free"] += r["free"]["call_ok"]
        d["enforced"] += r["enforced"]["call_ok"]
    out["per_tool_call_ok"] = per_tool
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
