"""The table of scripts/gpu-engine-bench.sh: one row per (VRAM budget, prefetch) run of the
`moe bench --json` file it wrote (a single run, or {summary, runs} when variants were compared)."""
import json
import os
import sys


def runs(path):
    with open(path) as f:
        j = json.load(f)
    return j["runs"] if "runs" in j else [j]


def graphs(r):
    """Decode steps replayed whole from a CUDA graph, or 'seg' when only layer segments were."""
    if r.get("gpu_graph_steps", 0):
        return str(r["gpu_graph_steps"])
    return "seg" if r.get("gpu_graph_segments", 0) else "0"


def cpu_share(r):
    m = r.get("cpu_misses")
    if not m:
        return "-"
    return f"{m['on_cpu']}/{m['on_cpu'] + m['waited']}"


def main():
    path = sys.argv[1]
    print(f"{'budget':>7} {'prefetch':>8} {'tok/s':>8} {'GB/s':>7} {'vram hit':>8} {'copied/tok':>11} "
          f"{'pcie GB/s':>9} {'pcie bound':>10} {'x bound':>7} {'sync ms':>8} {'acq ms':>7} {'routed':>6} {'graphs':>6} {'miss on cpu':>11}")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        print("(no result)")
        return 1
    for r in runs(path):
        bound = r.get("pcie_bound_tok_s", 0.0)
        tps = r["decode_tok_s"]
        budget = r.get("vram_budget_flag", "auto")
        print(f"{budget:>7} {r['prefetch']:>8} {tps:8.2f} {r['decode_gb_s']:7.1f} {r.get('vram_hit_rate', 1.0):8.3f} "
              f"{r.get('vram_copied_bytes_per_token', 0) / 1e6:9.1f}MB {r.get('pcie_h2d_bytes_per_s', 0) / 1e9:9.1f} "
              f"{bound:10.2f} {(bound / tps if bound and tps else 0):7.2f} "
              f"{r.get('gpu_sync_ms_per_token', 0):8.2f} {r.get('gpu_acquire_ms_per_token', 0):7.2f} "
              f"{('device' if r.get('gpu_device_routed') else 'host'):>6} {graphs(r):>6} "
              f"{cpu_share(r):>11}")
    print("(x bound: decode time over the time its PCIe copies alone take; target <= 1.5 at 25%. GB/s: weight "
          "bytes a token reads / time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
