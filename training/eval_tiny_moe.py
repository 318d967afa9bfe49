#!/usr/bin/env python3
"""Evaluate the tiny MoE model in models/tiny-moe (written by training/train_tiny_moe.py).

Exact command:

    python3 training/eval_tiny_moe.py --model models/tiny-moe --moe build/tools/moe

Writes into the model directory:
    eval.json                 all measured figures (see models/tiny-moe/README.md)
    eval/tool_calls.jsonl     per held-out chat: prompts, engine outputs, verdicts
    trace/routing.jsonl       routing trace, one JSON object per (prompt, token, layer)
    trace/prompts.json        the traced prompts (text and token ids)
    golden/golden.json, golden/logits_<i>.npy   HF reference for the C++ HF-match test
    samples/*.txt             sample prompts and outputs of `moe run`

Perplexity and the tool-call figures come from OUR engine (the `moe` CLI);
routing statistics, the routing trace and the golden files come from Hugging
Face transformers (fp32, eager) reloading the saved bf16 directory.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_golden as FG  # noqa: E402  (the greedy loop and its generate() check)
import make_fixtures as MF  # noqa: E402  (reference helpers: golden format, ...)
import tiny_moe_data as D  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import Qwen3MoeForCausalLM  # noqa: E402


def sh(cmd: list[str], timeout=600) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r.stdout


# ----------------------------------------------------------------------------
# perplexity
# ----------------------------------------------------------------------------

def cli_perplexity(moe: str, model_dir: str, path: str, context: int) -> dict:
    out = sh([moe, "perplexity", "--model", model_dir, "--file", path, "--context", str(context)])
    return json.loads(out.strip().splitlines()[-1])


@torch.no_grad()
def hf_perplexity(model, tok: Tokenizer, text: str, context: int) -> dict:
    """Same definition as `moe perplexity`: non-overlapping windows, every
    position after the first in each window predicted."""
    ids = tok.encode(text, add_special_tokens=False).ids
    nll, n_pred = 0.0, 0
    for s in range(0, len(ids) - 1, context):
        w = ids[s:s + context]
        if len(w) < 2:
            break
        lg = model(input_ids=torch.tensor([w]), use_cache=False).logits[0].double()
        lp = torch.log_softmax(lg, -1)
        tgt = torch.tensor(w[1:])
        nll -= float(lp[:-1].gather(1, tgt[:, None]).sum())
        n_pred += len(w) - 1
    return {"tokens": len(ids), "predicted": n_pred, "perplexity": math.exp(nll / n_pred)}


# ----------------------------------------------------------------------------
# tool calls through the engine
# ----------------------------------------------------------------------------

TOOL_RE = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


def engine_generate(moe: str, model_dir: str, prompt: str, n: int, threads: int) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write(prompt)
        path = f.name
    try:
        return sh([moe, "run", "--model", model_dir, "--prompt-file", path, "--no-echo", "--temp", "0",
                   "-n", str(n), "-t", str(threads)])
    finally:
        os.unlink(path)


def parse_tool_call(text: str):
    m = TOOL_RE.search(text)
    if not m:
        return None, None
    try:
        obj = json.loads(m.group(1))
    except json.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    return obj.get("name"), obj.get("arguments")


def contains_value(text: str, value: str) -> bool:
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return re.search(r"(?<![\d.])" + re.escape(value) + r"(?![\d])", text) is not None
    return value.lower() in text.lower()


class ChatTemplate:
    """The prompts go through the model's own chat template (tokenizer_config.json, rendered by transformers'
    apply_chat_template, as an OpenAI-compatible server would), checked against tiny_moe_data.render(), the
    function that made the training text."""

    def __init__(self, model_dir: str):
        from transformers import AutoTokenizer
        self.tok = AutoTokenizer.from_pretrained(model_dir)

    def __call__(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        s = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        if s != D.render(messages, add_generation_prompt=add_generation_prompt):
            raise RuntimeError(f"chat template and tiny_moe_data.render() disagree on {messages!r}")
        return s


def eval_tool_calls(moe: str, model_dir: str, chats: list[dict], workers: int, log_path: str,
                    template: ChatTemplate) -> dict:
    prompts = [(template(c["messages"][:c["target"]["prefix_messages"]], add_generation_prompt=True),
                template(c["messages"][:c["target"]["prefix_messages"] + 2], add_generation_prompt=True))
               for c in chats]

    def one(i_chat):
        i, chat = i_chat
        t = chat["target"]
        p1, p2 = prompts[i]
        out1 = engine_generate(moe, model_dir, p1, 96, 1)
        name, args = parse_tool_call(out1)
        out2 = engine_generate(moe, model_dir, p2, 64, 1)
        return {
            "i": i, "tool": t["name"], "expected_arguments": t["arguments"], "result": t["result"],
            "call_output": out1, "parsed_name": name, "parsed_arguments": args,
            "name_ok": name == t["name"], "valid_json": name is not None,
            "call_ok": name == t["name"] and args == t["arguments"],
            "answer_output": out2, "answer_ok": contains_value(out2.split("<|im_end|>")[0], t["result"]),
        }

    with cf.ThreadPoolExecutor(workers) as ex:
        rows = list(ex.map(one, enumerate(chats)))
    with open(log_path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    per_tool = {}
    for r in rows:
        d = per_tool.setdefault(r["tool"], {"n": 0, "call_ok": 0, "answer_ok": 0})
        d["n"] += 1
        d["call_ok"] += r["call_ok"]
        d["answer_ok"] += r["answer_ok"]
    n = len(rows)
    return {
        "n_chats": n,
        "tool_call_accuracy": sum(r["call_ok"] for r in rows) / n,
        "tool_name_accuracy": sum(r["name_ok"] for r in rows) / n,
        "valid_tool_call_json": sum(r["valid_json"] for r in rows) / n,
        "final_answer_accuracy": sum(r["answer_ok"] for r in rows) / n,
        "per_tool": per_tool,
    }


# ----------------------------------------------------------------------------
# routing statistics and trace (HF)
# ----------------------------------------------------------------------------

@torch.no_grad()
def router_logits_of(model, ids: list[int]) -> list[torch.Tensor]:
    out = model(input_ids=torch.tensor([ids]), output_router_logits=True, use_cache=False)
    return [lg.float() for lg in out.router_logits]


@torch.no_grad()
def routing_stats(model, tok: Tokenizer, text: str, context: int, max_windows: int) -> dict:
    cfg = model.config
    E, k, L = cfg.num_experts, cfg.num_experts_per_tok, cfg.num_hidden_layers
    ids = tok.encode(text, add_special_tokens=False).ids
    counts = np.zeros((L, E))
    ent_sum = np.zeros(L)
    reuse_sum = np.zeros(L)
    n_tok, n_pairs = 0, 0
    for w_i, s in enumerate(range(0, len(ids) - 1, context)):
        if w_i >= max_windows:
            break
        w = ids[s:s + context]
        if len(w) < 2:
            break
        rls = router_logits_of(model, w)
        for l, lg in enumerate(rls):
            p = torch.softmax(lg, -1)
            ent_sum[l] += float(-(p * torch.log(p.clamp_min(1e-30))).sum(-1).sum())
            top = torch.topk(p, k, -1).indices
            counts[l] += np.bincount(top.reshape(-1).numpy(), minlength=E)
            oh = torch.zeros(len(w), E).scatter_(1, top, 1.0)
            reuse_sum[l] += float((oh[1:] * oh[:-1]).sum() / k)
        n_tok += len(w)
        n_pairs += len(w) - 1
    load = counts / counts.sum(1, keepdims=True)
    agg_ent = [float(-(r * np.log(np.clip(r, 1e-30, None))).sum()) for r in load]
    return {
        "tokens": n_tok,
        "load_per_layer": [[round(float(x), 4) for x in r] for r in load],
        "load_max_over_min_per_layer": [float(r.max() / max(r.min(), 1e-12)) for r in load],
        "load_cv_per_layer": [float(r.std() / r.mean()) for r in load],
        "router_entropy_mean_per_layer": [float(x / n_tok) for x in ent_sum],
        "usage_entropy_per_layer": agg_ent,
        "consecutive_reuse_per_layer": [float(x / n_pairs) for x in reuse_sum],
        "uniform_random_router": {"entropy": math.log(E), "usage_entropy": math.log(E), "reuse": k / E,
                                  "load": 1.0 / E},
    }


@torch.no_grad()
def write_trace(model, tok: Tokenizer, prompts: list[str], tdir: str) -> None:
    os.makedirs(tdir, exist_ok=True)
    k = model.config.num_experts_per_tok
    meta = []
    with open(os.path.join(tdir, "routing.jsonl"), "w", encoding="utf-8") as f:
        for i, text in enumerate(prompts):
            ids = tok.encode(text, add_special_tokens=False).ids
            meta.append({"prompt": i, "text": text, "tokens": ids,
                         "pieces": [tok.decode([t], skip_special_tokens=False) for t in ids]})
            rls = router_logits_of(model, ids)
            for p in range(len(ids)):
                for l, lg in enumerate(rls):
                    pr = torch.softmax(lg[p], -1)
                    v, e = torch.topk(pr, k)
                    v = v / v.sum()  # norm_topk_prob: true
                    f.write(json.dumps({"prompt": i, "pos": p, "token": ids[p], "layer": l,
                                        "experts": [int(x) for x in e], "weights": [round(float(x), 5) for x in v]})
                            + "\n")
    MF.save_json(meta, os.path.join(tdir, "prompts.json"))


# ----------------------------------------------------------------------------
# golden
# ----------------------------------------------------------------------------

TOOL_TEXTS = [
    '<tool_call>\n{"name": "median", "arguments": {"numbers": [3, 10, 4, 9]}}\n</tool_call>',
    "<|im_start|>tool\n<tool_response>\n6.5\n</tool_response><|im_end|>\n",
    "def mean(xs):\n    \"\"\"Return the mean.\"\"\"\n    return sum(xs) / len(xs)\n",
]


def write_golden(model_dir: str, tok: Tokenizer, ref, code_prompt: str, chat_prompt: str, seq_texts: list[str]):
    gdir = os.path.join(model_dir, "golden")
    os.makedirs(gdir, exist_ok=True)
    V = ref.config.vocab_size
    logits_entries = []
    for i, text in enumerate(seq_texts):
        ids = tok.encode(text, add_special_tokens=False).ids
        lg = MF.full_logits(ref, ids).numpy().astype(np.float32)
        assert lg.shape == (len(ids), V)
        fn = f"logits_{i}.npy"
        np.save(os.path.join(gdir, fn), lg)
        logits_entries.append({"tokens": ids, "file": fn, "shape": list(lg.shape), "logit_std": float(lg.std()),
                               "argmax": [int(a) for a in lg.argmax(-1)], "text": text})
    with torch.no_grad():
        ids = logits_entries[-1]["tokens"]
        full = MF.full_logits(ref, ids)
        out = ref(input_ids=torch.tensor([ids[:10]]), use_cache=True)
        step = ref(input_ids=torch.tensor([ids[10:]]), cache=out.cache, use_cache=True).logits[0]
        kv_diff = float((step - full[10:]).abs().max())
    greedy_entries = []
    for kind, text in (("code", code_prompt), ("chat", chat_prompt)):
        ids = tok.encode(text, add_special_tokens=True).ids
        new, mm, scale = FG.greedy(ref, ids, FG.GREEDY_NEW_TOKENS)
        if not FG.greedy_generate_check(ref, ids, new):
            raise RuntimeError("generate() disagrees with the manual greedy loop")
        greedy_entries.append({"prompt": ids, "tokens": new, "min_margin": mm, "logit_std_max": scale,
                               "distinct_tokens": len(set(new)), "min_margin_relative": mm / max(scale, 1e-9),
                               "prompt_kind": kind, "prompt_text": text,
                               "completion_text": tok.decode(new, skip_special_tokens=False)})
    # tokenization: the fixture texts (multilingual, emoji, code, whitespace, chat markup) + tool markup
    saved = MF.FAMILY_TEXTS["qwen"]
    MF.FAMILY_TEXTS["qwen"] = saved + TOOL_TEXTS
    try:
        tokenization, auto_info = MF.tokenization_golden(tok, model_dir, "qwen")
    finally:
        MF.FAMILY_TEXTS["qwen"] = saved
    cfg = ref.config
    n_params = int(ref.num_parameters())
    moe_layers = MF.moe_layer_indices("qwen3_moe", cfg)
    active = n_params - len(moe_layers) * (cfg.num_experts - cfg.num_experts_per_tok) * MF.expert_param_count(
        "qwen3_moe", cfg)
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        saved_config = json.load(f)
    golden = {
        **MF.golden_provenance(ref),
        "storage_dtype": "bfloat16",
        "expert_layout": "per_expert",
        "num_parameters": n_params,
        "active_parameters": int(active),
        "config_summary": MF.config_summary("qwen3_moe", cfg, ref),
        "saved_config_json": saved_config,
        "tensor_names": MF.tensor_listing(model_dir),
        "logits": logits_entries,
        "kv_cache_vs_full_max_abs_diff": kv_diff,
        "greedy": greedy_entries,
        "tokenization": tokenization,
        "tokenizer_check": auto_info,
    }
    MF.save_json(golden, os.path.join(gdir, "golden.json"))
    return golden


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/tiny-moe")
    ap.add_argument("--moe", default="build/tools/moe")
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2, help="parallel `moe run` processes (1 thread each)")
    ap.add_argument("--n-chats", type=int, default=200)
    ap.add_argument("--skip", nargs="*", default=[], help="parts to skip: ppl tools routing golden samples")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    md = a.model
    tok = Tokenizer.from_file(os.path.join(md, "tokenizer.json"))
    epath = os.path.join(md, "eval.json")
    res = json.load(open(epath)) if os.path.exists(epath) else {}
    res["commands"] = {"eval": "python3 training/eval_tiny_moe.py --model " + md + " --moe " + a.moe}
    t0 = time.time()

    ref = Qwen3MoeForCausalLM.from_pretrained(md, dtype=torch.float32, attn_implementation="eager",
                                              experts_implementation="eager")
    ref.eval()
    template = ChatTemplate(md)
    edir = os.path.join(md, "eval")
    held = {"code": os.path.join(edir, "heldout_code.txt"), "docs": os.path.join(edir, "heldout_docs.txt"),
            "chats": os.path.join(edir, "heldout_chats.txt")}
    held = {k: v for k, v in held.items() if os.path.exists(v)}

    if "ppl" not in a.skip:
        ppl = {}
        for name, path in held.items():
            r = cli_perplexity(a.moe, md, path, a.context)
            text = open(path, encoding="utf-8").read()
            r["hf_perplexity_crosscheck"] = hf_perplexity(ref, tok, text, a.context)["perplexity"]
            r["command"] = f"{a.moe} perplexity --model {md} --file {path} --context {a.context}"
            ppl[name] = r
            print(f"ppl {name}: {r['perplexity']:.3f} (HF {r['hf_perplexity_crosscheck']:.3f}) "
                  f"unigram {r['unigram_perplexity']:.1f} ({time.time()-t0:.0f}s)", flush=True)
        res["perplexity"] = ppl
        MF.save_json(res, epath)

    if "tools" not in a.skip:
        chats = [json.loads(l) for l in open(os.path.join(edir, "heldout_chats.jsonl"), encoding="utf-8")][:a.n_chats]
        r = eval_tool_calls(a.moe, md, chats, a.workers, os.path.join(edir, "tool_calls.jsonl"), template)
        r["command"] = (f"{a.moe} run --model {md} --prompt-file PROMPT --no-echo --temp 0 -n 96 -t 1  "
                        "(call; PROMPT = the chat template's rendering of the chat up to the user turn, with the generation "
                        "prompt '<|im_start|>assistant\\n') and -n 64 for the answer (PROMPT also holds the expected "
                        "tool call and the true tool response)")
        res["tool_calls"] = r
        print(f"tools: call {r['tool_call_accuracy']:.3f} answer {r['final_answer_accuracy']:.3f} "
              f"({time.time()-t0:.0f}s)", flush=True)
        MF.save_json(res, epath)

    code_prompt = "def read_config(path):\n    \"\"\"Read a configuration file.\"\"\"\n    with open(path"
    doc_prompt = "The json module provides functions to"
    chats = [json.loads(l) for l in open(os.path.join(edir, "heldout_chats.jsonl"), encoding="utf-8")]
    c0 = chats[0]
    chat_prompt = template(c0["messages"][:c0["target"]["prefix_messages"]], add_generation_prompt=True)

    if "routing" not in a.skip:
        rs = {}
        for name, path in held.items():
            rs[name] = routing_stats(ref, tok, open(path, encoding="utf-8").read(), a.context, 40)
        res["routing"] = rs
        c1 = chats[1]
        trace_prompts = [
            code_prompt,
            "import os\nimport sys\n\nfor name in sorted(os.listdir('.')):\n    print(name)\n",
            doc_prompt + " encode and decode JSON data.",
            chat_prompt,
            template(c1["messages"]),
        ]
        write_trace(ref, tok, trace_prompts, os.path.join(md, "trace"))
        print(f"routing done ({time.time()-t0:.0f}s)", flush=True)
        MF.save_json(res, epath)

    if "golden" not in a.skip:
        seq_texts = ["import os\n\ndef main(argv):\n    for arg in argv[1:]:\n        print(os.path.abspath(arg))\n",
                     template(chats[2]["messages"][:chats[2]["target"]["prefix_messages"] + 1])]
        g = write_golden(md, tok, ref, code_prompt, chat_prompt, seq_texts)
        # engine vs HF on the golden logits
        diffs = []
        for e in g["logits"]:
            with tempfile.TemporaryDirectory() as td:
                outp = os.path.join(td, "l.npy")
                sh([a.moe, "logits", "--model", md, "--tokens", ",".join(map(str, e["tokens"])), "--all-positions",
                    "--out", outp])
                eng = np.load(outp)
            refl = np.load(os.path.join(md, "golden", e["file"]))
            diffs.append(float(np.abs(eng - refl).max()))
        res["engine_vs_hf_logits_max_abs_diff"] = diffs
        res["golden_greedy_min_margin"] = [x["min_margin"] for x in g["greedy"]]
        res["num_parameters"] = g["num_parameters"]
        res["active_parameters"] = g["active_parameters"]
        print(f"golden done; engine vs HF max abs diff {diffs} ({time.time()-t0:.0f}s)", flush=True)
        MF.save_json(res, epath)

    if "samples" not in a.skip:
        sdir = os.path.join(md, "samples")
        os.makedirs(sdir, exist_ok=True)
        samples = {}
        c3 = chats[3]
        tool_prompt = template(c3["messages"][:c3["target"]["prefix_messages"]], add_generation_prompt=True)
        for name, prompt, n in (("code", code_prompt, 80), ("doc", doc_prompt, 60), ("tool_chat", tool_prompt, 64)):
            pf = os.path.join(sdir, f"{name}.prompt.txt")
            with open(pf, "w", encoding="utf-8") as f:
                f.write(prompt)
            cmd = [a.moe, "run", "--model", md, "--prompt-file", pf, "--no-echo", "--temp", "0", "-n", str(n)]
            out = sh(cmd)
            with open(os.path.join(sdir, f"{name}.output.txt"), "w", encoding="utf-8") as f:
                f.write(out)
            samples[name] = {"command": " ".join(cmd), "prompt": prompt, "output": out}
        res["samples"] = samples
        MF.save_json(res, epath)
    print(f"eval done ({time.time()-t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
