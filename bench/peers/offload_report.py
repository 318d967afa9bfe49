#!/usr/bin/env python3
"""The table of peer_offload.sh: decode under a memory cgroup, moe against the peer.

  offload_report.py OUTDIR

OUTDIR holds settings.json and, per engine, round r and decode length n: NAME.out (stdout), NAME.log
(stderr) and NAME.io (disk bytes read on the files' device, seconds, the cgroup's peak memory), NAME
being peer-n{n}-r{r}, moe-natural-n{n}-r{r} or moe-uniform-n{n}-r{r}.
"""
import json
import os
import re
import statistics
import sys

ENGINES = [("peer", "peer (llama-cli, sampling)"), ("moe-natural", "moe, natural routing"),
           ("moe-uniform", "moe, uniform routing")]


def load(path):
    with open(path) as f:
        return json.load(f)


def peer_decode_tok_s(log_path):
    """llama-cli's timing line: `eval time = X ms / N runs (... ms per token, Y tokens per second)`."""
    for line in open(log_path, errors="replace"):
        if "eval time" in line and "prompt eval time" not in line:
            m = re.search(r"([0-9.]+) tokens per second", line)
            if m:
                return float(m.group(1))
    return None


def fmt(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def row(outdir, engine, r, s):
    short, gen = s["short"], s["gen"]
    io_s = load(os.path.join(outdir, f"{engine}-n{short}-r{r}.io"))
    io_g = load(os.path.join(outdir, f"{engine}-n{gen}-r{r}.io"))
    out = {"disk_bpt": (io_g["disk_bytes"] - io_s["disk_bytes"]) / (gen - short),
           "peak": max(io_s["peak_bytes"], io_g["peak_bytes"]), "tg": None, "own_disk_bpt": None,
           "miss_bpt": None, "need_bpt": None, "entropy": None, "entropy_max": None, "hit": None}
    if engine == "peer":
        out["tg"] = peer_decode_tok_s(os.path.join(outdir, f"{engine}-n{gen}-r{r}.log"))
    else:
        d = load(os.path.join(outdir, f"{engine}-n{gen}-r{r}.out"))
        ent = d.get("routing_entropy")
        own = d.get("disk_bytes_per_token")
        wasted = d.get("prefetch_wasted_bytes_per_token") or 0.0
        # what decode needed from disk: demand misses and the prefetched experts it then used
        out.update(tg=float(d["decode_tok_s"]), own_disk_bpt=own, need_bpt=None if own is None else own - wasted,
                   miss_bpt=d.get("miss_bytes_per_token"), hit=d.get("ram_hit_rate"),
                   entropy=statistics.mean(ent) if isinstance(ent, list) and ent else ent,
                   entropy_max=d.get("routing_entropy_uniform"))
    return out


def table(outdir):
    s = load(os.path.join(outdir, "settings.json"))
    rounds = range(1, s["rounds"] + 1)
    rows = {(e, r): row(outdir, e, r, s) for e, _ in ENGINES for r in rounds
            if os.path.exists(os.path.join(outdir, f"{e}-n{s['gen']}-r{r}.io"))}
    out = [f"Memory cgroup limit {s['limit'] / 1e9:.2f} GB (the GGUF `{os.path.basename(s['gguf'])}` is "
           f"{os.path.getsize(s['gguf']) / 1e9:.2f} GB, the pack {os.path.getsize(s['pack']) / 1e9:.2f} GB); "
           f"moe `--ram-budget {s['ram_budget']}` {s['moe_args']}. Threads {s['threads']}, prompt {s['prompt']} "
           f"tokens, decode {s['short']} and {s['gen']} tokens after dropping the page cache; disk bytes per "
           f"decode token = the difference of the two runs' reads on `{s['device']}` / {s['gen'] - s['short']}.",
           ""]
    hdr = ["round", "engine", "decode tok/s", "disk MB / token (device)", "moe's disk MB / token",
           "needed MB / token (missed + prefetched and used)", "of which missed", "moe disk / needed",
           "routing entropy (nats)", "RAM hit rate", "cgroup peak GB"]
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|" + "---|" * len(hdr))

    def cells(label, eng, x):
        ratio = None
        if x["own_disk_bpt"] is not None and x["need_bpt"]:
            ratio = x["own_disk_bpt"] / x["need_bpt"]
        ent = None if x["entropy"] is None else f"{x['entropy']:.2f} of {fmt(x['entropy_max'])}"
        mb = lambda v: None if v is None else v / 1e6
        return [label, eng, fmt(x["tg"]), fmt(mb(x["disk_bpt"]), 1), fmt(mb(x["own_disk_bpt"]), 1),
                fmt(mb(x["need_bpt"]), 1), fmt(mb(x["miss_bpt"]), 1), fmt(ratio), ent or "-", fmt(x["hit"], 3),
                fmt(None if x["peak"] is None else x["peak"] / 1e9)]

    for r in rounds:
        for e, label in ENGINES:
            if (e, r) in rows:
                out.append("| " + " | ".join(cells(str(r), label, rows[(e, r)])) + " |")
    for e, label in ENGINES:
        xs = [rows[(e, r)] for r in rounds if (e, r) in rows]
        if not xs:
            continue
        med = {k: median([x[k] for x in xs]) for k in xs[0]}
        out.append("| " + " | ".join(cells("**median**", label, med)) + " |")
    ratios = [rows[("moe-natural", r)]["tg"] / rows[("peer", r)]["tg"] for r in rounds
              if ("moe-natural", r) in rows and ("peer", r) in rows and rows[("peer", r)]["tg"]]
    out.append("")
    out.append("Decode moe (natural) / peer per round: " + (", ".join(f"{x:.2f}" for x in ratios) or "-") +
               f"; median {fmt(median(ratios))}.")
    return "\n".join(out)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(table(sys.argv[1]))


if __name__ == "__main__":
    main()
