#!/usr/bin/env python3
"""Helpers of peer_bench.sh: bytes per decode token of a GGUF, and the markdown table.

  peer_report.py gguf-bytes MODEL.gguf          -> bytes per decode token (one integer)
  peer_report.py table OUTDIR                   -> markdown table of OUTDIR's runs

OUTDIR holds dram.txt, settings.json, peer-rN.json (llama-bench -o json) and moe-rN.json
(moe bench --json), as peer_bench.sh writes them.
"""
import glob
import json
import os
import re
import statistics
import sys


def gguf_bytes(path):
    """Weight bytes one decode token reads: attention, norms, router, top-k of each layer's
    experts, output norm and LM head, one embedding row (as make_gguf.py counts them)."""
    try:
        import gguf
    except ImportError:
        sys.exit("needs the PyPI 'gguf' package: pip install -r bench/peers/requirements.txt")
    r = gguf.GGUFReader(path)

    def field(key):
        f = r.fields.get(key)
        return None if f is None else int(f.parts[f.data[0]][0])

    arch = bytes(r.fields["general.architecture"].parts[r.fields["general.architecture"].data[0]]).decode()
    n_exp, n_used = field(f"{arch}.expert_count"), field(f"{arch}.expert_used_count")
    total = 0
    for t in r.tensors:
        b = int(t.n_bytes)
        if "_exps." in t.name:
            total += b * n_used // n_exp
        elif t.name.startswith("token_embd."):
            total += b // int(t.shape[-1])  # one row (ggml shape: [n_embd, n_vocab])
        else:
            total += b
    return total


def load(path):
    with open(path) as f:
        return json.load(f)


def peer_figures(path):
    """llama-bench -o json: a list of tests; prefill has n_gen 0, decode n_gen > 0."""
    pp = tg = None
    for t in load(path):
        if t.get("n_gen", 0) == 0 and t.get("n_prompt", 0) > 0:
            pp = float(t["avg_ts"])
        elif t.get("n_gen", 0) > 0:
            tg = float(t["avg_ts"])
    return pp, tg


def moe_figures(path):
    d = load(path)
    if "runs" in d:  # --rounds > 1 form
        d = d["runs"][0]
    ent = d.get("routing_entropy")
    ent_mean = statistics.mean(ent) if isinstance(ent, list) and ent else ent
    return {"pp": float(d["prefill_tok_s"]), "tg": float(d["decode_tok_s"]),
            "bpt": float(d["decode_bytes_per_token"]), "entropy": ent_mean,
            "entropy_max": d.get("routing_entropy_uniform"), "ram_hit": d.get("ram_hit_rate"),
            "disk_bpt": d.get("disk_bytes_per_token")}


def fmt(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def table(outdir):
    s = load(os.path.join(outdir, "settings.json"))
    dram = []
    for line in open(os.path.join(outdir, "dram.txt")):
        m = re.search(r"DRAM read, (\d+) thread\(s\): ([0-9.]+) GB/s", line)
        if m and int(m.group(1)) == s["threads"]:  # bench_kernels may print other thread counts too
            dram.append(float(m.group(2)))
    dram_gbs = max(dram) if dram else None
    peer_bpt = s["gguf_bytes_per_token"]
    rounds = sorted(int(re.search(r"-r(\d+)\.json$", p).group(1)) for p in glob.glob(os.path.join(outdir, "moe-r*.json")))
    rows = []
    for r in rounds:
        pp_p, tg_p = peer_figures(os.path.join(outdir, f"peer-r{r}.json"))
        m = moe_figures(os.path.join(outdir, f"moe-r{r}.json"))
        rows.append({"round": str(r), "pp_p": pp_p, "pp_m": m["pp"], "tg_p": tg_p, "tg_m": m["tg"],
                     "gbs_p": None if tg_p is None else tg_p * peer_bpt / 1e9, "gbs_m": m["tg"] * m["bpt"] / 1e9,
                     "moe": m})
    for row in rows:
        row["r_pp"], row["r_tg"] = ratio(row["pp_m"], row["pp_p"]), ratio(row["tg_m"], row["tg_p"])
    # The ratios' median is the median of each round's pair (the engines ran back to back), not
    # the ratio of the medians.
    med = {"round": "**median**"}
    for k in ("pp_p", "pp_m", "tg_p", "tg_m", "gbs_p", "gbs_m"):
        med[k] = median([row[k] for row in rows])
    for k in ("r_pp", "r_tg"):
        med[k] = median([row[k] for row in rows if row[k] is not None])
    moe_bpt = rows[0]["moe"]["bpt"] if rows else None

    out = []
    out.append(f"Threads {s['threads']}, prompt {s['prompt']} tokens, decode {s['gen']} tokens, {len(rows)} rounds "
               f"(peer first in each round).  ")
    cpu = os.path.join(outdir, "cpu.txt")
    info = {}
    if os.path.exists(cpu):  # "key: value" lines (peer_bench.sh); any key may be missing
        info = dict(line.strip().split(": ", 1) for line in open(cpu) if ": " in line)
    if info:
        parts = [info.get("model name", "unnamed CPU")]
        if "cpu family" in info and "model" in info:
            parts[0] += f" (family {info['cpu family']}, model {info['model']})"
        if "logical CPUs" in info:
            parts.append(f"{info['logical CPUs']} logical CPUs")
        out.append("CPU: " + ", ".join(parts) + ".  ")
    out.append(f"Peer: `{s['peer_cmd']}`  ")
    out.append(f"moe: `{s['moe_cmd']}`  ")
    out.append(f"Bytes per decode token: peer (GGUF) {peer_bpt / 1e9:.3f} GB, moe (pack) "
               f"{fmt(None if moe_bpt is None else moe_bpt / 1e9, 3)} GB.  ")
    out.append("DRAM read (bench_kernels DramRead, %d threads): %s GB/s, the highest of %s.  " % (
        s["threads"], fmt(dram_gbs, 1), ", ".join(f"{x:.1f}" for x in dram) or "not measured"))
    la = os.path.join(outdir, "loadavg.txt")
    if os.path.exists(la):
        loads = [line.strip() for line in open(la) if line.strip()]
        if loads:
            out.append("Load average (1, 5, 15 min) before / after: " + " / ".join(loads) +
                       " (anything else running makes the peer's spinning threads erratic).  ")
    if rows:
        m = rows[-1]["moe"]
        out.append(f"moe routing entropy (mean over layers): {fmt(m['entropy'])} of {fmt(m['entropy_max'])} nats; "
                   f"decode RAM hit rate {fmt(m['ram_hit'], 3)}, disk bytes/token {fmt(m['disk_bpt'], 0)}.")
    out.append("")
    hdr = ["round", "prefill peer tok/s", "prefill moe tok/s", "prefill moe/peer", "decode peer tok/s",
           "decode moe tok/s", "decode moe/peer", "peer GB/s", "moe GB/s", "peer % DRAM", "moe % DRAM"]
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|" + "---|" * len(hdr))
    for row in rows + [med]:
        pct = lambda g: None if g is None or not dram_gbs else 100.0 * g / dram_gbs
        cells = [row["round"], fmt(row["pp_p"]), fmt(row["pp_m"]), fmt(row["r_pp"]),
                 fmt(row["tg_p"]), fmt(row["tg_m"]), fmt(row["r_tg"]),
                 fmt(row["gbs_p"]), fmt(row["gbs_m"]), fmt(pct(row["gbs_p"]), 0), fmt(pct(row["gbs_m"]), 0)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "gguf-bytes":
        print(gguf_bytes(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        print(table(sys.argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
