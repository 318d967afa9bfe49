#!/usr/bin/env python3
"""A batch job whose requests share a long preamble (a system prompt, few-shot examples), run
three ways side by side: without prefix reuse, with it, and (--moe-before) with another binary's
reuse. Prints the prompt tokens the engine computed, the wall time and the rates, and checks that
every request's text is the same in every run.

  python3 scripts/shared-prefix-bench.py --model /work/q30l12.moepack [--moe-before OLD/moe]
"""
import argparse
import json
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = ("the of and to in is for on with as by at from that this which model expert layer token "
         "memory batch disk read cache step request prompt value result data system time").split()


def write_input(path, a):
    rng = random.Random(7)
    preamble = " ".join(rng.choice(VOCAB) for _ in range(a.shared_words))
    with open(path, "w") as f:
        for i in range(a.requests):
            question = " ".join(rng.choice(VOCAB) for _ in range(a.words))
            body = {"model": "m", "prompt": f"{preamble}\n\nQuestion {i}: {question}\nAnswer:", "max_tokens": a.gen,
                    "temperature": 1.0, "seed": 1000 + i}
            f.write(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions", "body": body}) + "\n")


def run(a, name, moe, cache, inp):
    out = f"{a.dir}/{name}.out.jsonl"
    if os.path.exists(out):
        os.remove(out)
    cmd = [moe, "batch", "--model", a.model, "--input", inp, "--output", out, "--max-batch", str(a.max_batch),
           "--ram-budget", a.budget, "--prefix-cache", cache, "-t", str(a.threads), "--json"]
    if a.budget == "100%":
        cmd.append("--warm-ram")
    print(f"== {name}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    s = json.loads(p.stdout.strip().splitlines()[-1])
    texts = {}
    for line in open(out):
        o = json.loads(line)
        texts[o["custom_id"]] = o["response"]["body"]["choices"][0]["text"]
    return s, texts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--moe", default=os.path.join(ROOT, "build/tools/moe"))
    ap.add_argument("--moe-before", help="another build's moe, run with prefix reuse too")
    ap.add_argument("--requests", type=int, default=128)
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--shared-words", type=int, default=600, help="preamble words (600 make about 1,000 tokens on a synth pack)")
    ap.add_argument("--words", type=int, default=30, help="words of each request's own question")
    ap.add_argument("--gen", type=int, default=16)
    ap.add_argument("--budget", default="100%")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", default="/tmp/moe-shared-prefix")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    inp = f"{a.dir}/input.jsonl"
    write_input(inp, a)
    runs = [("no reuse", a.moe, "0"), ("reuse", a.moe, "1GiB")]
    if a.moe_before:
        runs.insert(1, ("reuse, before", a.moe_before, "1GiB"))
    res = {name: run(a, name.replace(", ", "-").replace(" ", "-"), moe, cache, inp) for name, moe, cache in runs}
    base = res["no reuse"][1]
    print(f"\nModel {a.model}, {a.threads} threads, RAM budget {a.budget}: {a.requests} completions, max batch "
          f"{a.max_batch}, a {a.shared_words}-word shared preamble and a {a.words}-word question each, {a.gen} generated\n")
    print("| run | prompt tokens | computed | reused | seconds | prompt tok/s | generated tok/s | x no reuse | same text |")
    print("|---|---|---|---|---|---|---|---|---|")
    t0 = res["no reuse"][0]["seconds"]
    for name, (s, texts) in res.items():
        sch = s.get("scheduler", {})
        same = sum(texts.get(k) == v for k, v in base.items())
        computed = sch.get("prefilled_tokens")
        reused = sch.get("cached_tokens")
        print(f"| {name} | {s['prompt_tokens']} | {computed if computed is not None else '-'} | "
              f"{reused if reused is not None else '-'} | {s['seconds']:.1f} | {s['prompt_tok_s']:.1f} | "
              f"{s['generated_tok_s']:.2f} | {t0 / s['seconds']:.2f}x | {same}/{len(base)} |")
    print("\ncomputed: prompt tokens through the engine; reused: from the prefix cache or a running request "
          "(older builds do not report them)")


if __name__ == "__main__":
    main()
