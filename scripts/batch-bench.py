#!/usr/bin/env python3
"""Throughput of `moe batch` against its max batch and RAM budget, with the bound each run allows.

One job per (budget, max batch): completions of about PROMPT prompt tokens and GEN generated
tokens each (temperature 1, a seed per request), as many requests as the batch holds (at least 4). Resident runs (100%) warm the RAM
tier first. For an offloaded run the bound is max(disk bytes / disk bandwidth, the resident run's
time at the same batch): the job can go no faster than its reads, nor than its compute. The disk
bandwidth (O_DIRECT sequential read, `moe bench --io-only`, 10 s: some disks slow down after a few
seconds, and a job reads for minutes) is measured in the same run.

  scripts/batch-bench.py --model /work/q30l12.moepack [--batches 1,8,32,128,256] [--budgets 100%,25%]

Prints a markdown table; every job's --json summary is kept under --dir.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_input(path, n, words, gen, seed):
    rng = random.Random(seed)
    vocab = ("the of and to in is for on with as by at from that this which model expert layer token "
             "memory batch disk read cache step request prompt value result data system time").split()
    with open(path, "w") as f:
        for i in range(n):
            text = " ".join(rng.choice(vocab) for _ in range(words))
            body = {"model": "m", "prompt": text, "max_tokens": gen, "temperature": 1.0, "seed": 1000 + i}
            f.write(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions", "body": body}) + "\n")


def run_job(a, budget, batch, d, extra=()):
    name = f"b{batch}-{budget.rstrip('%')}" + "".join(x.replace("--", "-") for x in extra)
    inp, out = f"{d}/{name}.jsonl", f"{d}/{name}.out.jsonl"
    if a.reuse and os.path.exists(f"{d}/{name}.json"):
        return json.load(open(f"{d}/{name}.json"))
    write_input(inp, max(4, batch), a.words, a.gen, seed=batch)
    if os.path.exists(out):
        os.remove(out)
    cmd = [a.moe, "batch", "--model", a.model, "--input", inp, "--output", out, "--max-batch", str(batch),
           "--ram-budget", budget, "--prefix-cache", "0", "-t", str(a.threads), "--json"]
    if budget == "100%":
        cmd.append("--warm-ram")
    cmd += list(extra)
    print(f"== {name}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    s = json.loads(p.stdout.strip().splitlines()[-1])
    s["wall"] = time.time() - t0
    json.dump(s, open(f"{d}/{name}.json", "w"))
    print(f"   {s['generated_tok_s']:.2f} generated tok/s, {s['prompt_tok_s']:.1f} prompt tok/s, "
          f"{s['seconds']:.0f} s", file=sys.stderr, flush=True)
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--moe", default=os.path.join(ROOT, "build/tools/moe"))
    ap.add_argument("--batches", default="1,8,32,128,256")
    ap.add_argument("--budgets", default="100%,25%")
    ap.add_argument("--words", type=int, default=60, help="prompt words (60 make about 100 tokens on a synth pack)")
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", default="/tmp/moe-batch-bench")
    ap.add_argument("--reuse", action="store_true", help="take the jobs already measured under --dir (re-print the table)")
    ap.add_argument("--serial-batches", default="256",
                    help="offloaded runs also made with --no-stream-misses (the compute thread reads misses itself)")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    io_path = f"{a.dir}/io.json"
    if not (a.reuse and os.path.exists(io_path)):
        with open(io_path, "w") as f:
            f.write(subprocess.run([a.moe, "bench", "--model", a.model, "--io-only", "--io-seconds", "20", "--json"],
                                   stdout=subprocess.PIPE, text=True, check=True).stdout)
    io_gbs = json.load(open(io_path))["disk_seq_bytes_per_s"]
    print(f"disk O_DIRECT read: {io_gbs / 1e9:.2f} GB/s", file=sys.stderr)
    batches = [int(b) for b in a.batches.split(",")]
    budgets = a.budgets.split(",")
    res = {(g, b): run_job(a, g, b, a.dir) for g in budgets for b in batches}
    serial = [int(b) for b in a.serial_batches.split(",") if b]
    for g in budgets:
        for b in serial:
            if g != "100%" and b in batches:
                res[(g + " serial", b)] = run_job(a, g, b, a.dir, ["--no-stream-misses"])
    budgets += [g for g in dict.fromkeys(k[0] for k in res) if g not in budgets]
    # The disk's ceiling: the sequential-read measurement, or the best rate a job reached if higher
    # (demand reads and prefetches in flight together beat one sequential stream).
    achieved = max((s["session"].get("disk_bytes", 0) / s["seconds"] for s in res.values()), default=0)
    disk = max(io_gbs, achieved)

    print(f"\nModel {a.model}, {a.threads} threads, {a.words}-word prompts, {a.gen} generated; disk ceiling "
          f"{disk / 1e9:.2f} GB/s (same run: sequential read {io_gbs / 1e9:.2f}, best job {achieved / 1e9:.2f})\n")
    print("| RAM budget | max batch | requests | prompt tok | generated tok/s | prompt tok/s | x batch 1 | "
          "disk MB / gen. token | read on demand | bound tok/s | of bound |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for g in budgets:
        base = res[(g.split()[0], batches[0])]["generated_tok_s"]
        for b in batches:
            if (g, b) not in res:
                continue
            s = res[(g, b)]
            ss, gen = s["session"], s["completion_tokens"]
            disk_bytes = ss.get("disk_bytes", 0)
            io_s = disk_bytes / disk
            resident = res.get(("100%", b))
            compute_s = resident["seconds"] if resident and not g.startswith("100%") else 0
            bound_s = max(io_s, compute_s)
            bound = gen / bound_s if bound_s > 0 else float("nan")
            share = f"{100 * s['generated_tok_s'] / bound:.0f}%" if bound_s > 0 else "-"
            print(f"| {g} | {b} | {s['requests']} | {s['prompt_tokens'] / max(1, s['requests']):.0f} | "
                  f"{s['generated_tok_s']:.2f} | {s['prompt_tok_s']:.1f} | {s['generated_tok_s'] / base:.1f}x | "
                  f"{disk_bytes / max(1, gen) / 1e6:.1f} | {100 * ss.get('miss_bytes', 0) / max(1, disk_bytes):.0f}% | "
                  f"{bound:.2f} | {share} |")
    print("\n'serial': --no-stream-misses, the compute thread reads each top-k chunk's missing experts itself")
    print("bound: generated tokens / max(disk bytes / disk bandwidth, the 100% run's time at that batch)")


if __name__ == "__main__":
    main()
