#!/usr/bin/env python3
"""Bounded load test of `moe serve` (standard library only: raw HTTP + SSE, one thread per client).

    # start the server here (any model: a HF directory or a pack, e.g. one made with `moe synth`)
    python3 scripts/serve-load.py --moe build/tools/moe --model models/tiny-moe
    python3 scripts/serve-load.py --moe build/tools/moe --model big.moepack --server-arg=--ram-budget=25%
    # or against a running server (give --pid for its RSS)
    python3 scripts/serve-load.py --base-url http://127.0.0.1:8080/v1 --pid 12345
    # throughput and inter-token latency at each concurrency, one after another
    python3 scripts/serve-load.py --moe build/tools/moe --model models/tiny-moe --clients 1,4,16 --duration 30

Mixed mode (one --clients value; default 32 clients, 60 s warm-up + 60 s measured): each client
loops until the time is up, sending short and long chats (the long ones sized from the server's context), some streamed and
some not, and a share of streamed ones that disconnect after a few events on purpose. Reports
requests, errors (anything but the intentional disconnects: must be 0), tokens/s, time to first
token and inter-token latency p50/p99 (streamed requests), and the server's VmRSS sampled every
second: first/last/max after the warm-up and the least-squares slope. A server started here gets
--prefix-cache 64MiB (--prefix-cache): the cache is full by the end of the warm-up, so that RSS
growth after it is a leak, not the cache filling up (with the server's 1 GiB default that takes
minutes). Exit status 1 when a request failed, 2 when RSS grew by more than --max-rss-growth after
the warm-up.

Sweep mode (--clients 1,4,16): all requests streamed, no disconnects; one row per concurrency.
The request loops are bounded in time and every request has a timeout; only the loopback (or the
given --base-url) is contacted.
"""
import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moe_server import MoeServer, default_moe_binary, parse_metrics, rss_kib, sse_events  # noqa: E402

SHORT_QUESTIONS = [
    "Hello!", "Who are you?", "What can you do?", "What is the median of 3, 10, 4 and 9?",
    "Convert 5 km to miles.", "How many days are there between 2024-01-05 and 2024-03-01?",
    "What is 12*7+3?", "What is the capital of France?", "Thanks!", "Good morning.",
    "Write a Python function that reverses a list.", "def read_config(path):",
]
HISTORY_TURNS = [
    ("Hello!", "Hello! How can I help you today?"),
    ("Who are you?", "I am a tiny assistant that can use tools such as a calculator, statistics, unit conversion, "
                     "date arithmetic and a lookup table."),
    ("What can you do?", "I can call tools: calculator, median, mean, convert, date_diff and lookup."),
    ("What is the mean of 4, 6, 0, 5 and 8?", "The average is 4.6."),
    ("How many days from 1999-09-20 until 1999-11-14?", "There are 55 days between 1999-09-20 and 1999-11-14."),
    ("Convert 201 kg to pounds.", "201 kilograms equals about 443.13 pounds."),
    ("Which city is the capital of Czechia?", "It is Prague."),
    ("Thank you, that helps.", "Glad I could help."),
]
CODE_PROMPTS = [
    'def read_config(path):\n    """Read a configuration file."""\n    with open(path',
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n",
    "import os\nimport sys\n\n\ndef main(argv):\n",
]


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(q / 100.0 * (len(v) - 1)))))
    return v[k]


def slope_per_min(samples):
    """Least-squares slope of (t seconds, value) pairs, per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    return 60.0 * sum((t - mt) * (v - mv) for t, v in samples) / den if den else 0.0


class Target:
    def __init__(self, base_url, api_key):
        u = urllib.parse.urlparse(base_url)
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/")  # "/v1"
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = "Bearer " + api_key

    def conn(self, timeout):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def get(self, path, timeout=30):
        c = self.conn(timeout)
        try:
            c.request("GET", path, headers=self.headers)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def post_json(self, path, body, timeout=600):
        c = self.conn(timeout)
        try:
            c.request("POST", self.prefix + path, body=json.dumps(body).encode(), headers=self.headers)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def metrics(self):
        try:
            st, body = self.get("/metrics")
        except OSError:
            return {}
        return parse_metrics(body.decode("utf-8", "replace")) if st == 200 else {}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = self.errors = self.disconnects = self.streamed = 0
        self.tokens = 0
        self.ttft, self.itl, self.e2e = [], [], []
        self.error_samples = []

    def add_error(self, what):
        with self.lock:
            self.errors += 1
            if len(self.error_samples) < 10:
                self.error_samples.append(what)


def make_body(rng, endpoint, model, long_turns, stream, max_tokens, temperature):
    body = {"model": model, "max_tokens": max_tokens, "temperature": temperature, "seed": rng.randrange(1 << 30)}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    long = long_turns > 0 and rng.random() < 0.5
    if endpoint == "completions":
        p = rng.choice(CODE_PROMPTS)
        if long:
            p = "\n\n".join(rng.choice(CODE_PROMPTS) for _ in range(long_turns)) + "\n\n" + p
        body["prompt"] = p
    else:
        msgs = []
        if long:
            msgs.append({"role": "system", "content": "You are a helpful assistant."})
            for i in range(long_turns):
                q, a = HISTORY_TURNS[(i + rng.randrange(len(HISTORY_TURNS))) % len(HISTORY_TURNS)]
                msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        msgs.append({"role": "user", "content": rng.choice(SHORT_QUESTIONS)})
        body["messages"] = msgs
    return body, long


def one_request(target, endpoint, body, disconnect_after, stats, timeout):
    """Sends one request; returns True when it was handled (success, error or intentional disconnect)."""
    path = "/chat/completions" if endpoint == "chat" else "/completions"
    t0 = time.monotonic()
    c = target.conn(timeout)
    try:
        c.request("POST", target.prefix + path, body=json.dumps(body).encode(), headers=target.headers)
        r = c.getresponse()
        if r.status != 200:
            stats.add_error(f"HTTP {r.status}: {r.read()[:200]!r}")
            return
        if not body.get("stream"):
            data = json.loads(r.read())
            toks = data["usage"]["completion_tokens"]
            if not data.get("choices"):
                raise ValueError("no choices")
            with stats.lock:
                stats.requests += 1
                stats.tokens += toks
                stats.e2e.append(time.monotonic() - t0)
            return
        # SSE: "data: {json}" events, then "data: [DONE]"
        first, last, events, usage, done, finishes = None, None, 0, None, False, 0
        gaps = []
        for ev in sse_events(r):
            if ev is None:
                done = True
                break
            if ev.get("usage"):
                usage = ev["usage"]
            for ch in ev.get("choices") or []:
                if ch.get("finish_reason"):
                    finishes += 1
                d = ch.get("delta") or {}
                piece = ch.get("text") if endpoint == "completions" else (d.get("content") or d.get("tool_calls"))
                if piece:
                    now = time.monotonic()
                    if first is None:
                        first = now
                    else:
                        gaps.append(now - last)
                    last = now
                    events += 1
            if disconnect_after and events >= disconnect_after:
                with stats.lock:
                    stats.disconnects += 1
                return  # the finally below closes the socket mid-stream
        if not done or finishes != 1 or usage is None:
            stats.add_error(f"stream ended badly: done={done} finish_reasons={finishes} usage={usage is not None}")
            return
        with stats.lock:
            stats.requests += 1
            stats.streamed += 1
            stats.tokens += usage["completion_tokens"]
            stats.e2e.append(time.monotonic() - t0)
            if first is not None:
                stats.ttft.append(first - t0)
            stats.itl.extend(gaps)
    except Exception as e:  # connection errors, bad JSON, timeouts
        stats.add_error(f"{type(e).__name__}: {e}")
    finally:
        c.close()


def run_phase(target, args, model, clients, duration, stream_share, disconnect_share, long_turns, pid, warmup):
    """`warmup` seconds of the same load (only its errors count), then `duration` seconds measured."""
    stats, warm_stats = Stats(), Stats()
    measure_from = time.monotonic() + warmup
    stop_at = measure_from + duration
    rss = []  # (t, KiB)
    t_start = time.monotonic()
    sampler_stop = threading.Event()

    def sampler():
        while not sampler_stop.is_set():
            v = rss_kib(pid) if pid else None
            if v is not None:
                rss.append((time.monotonic() - t_start, v))
            sampler_stop.wait(1.0)

    def client(i):
        rng = random.Random(args.seed * 1000 + i)
        while time.monotonic() < stop_at:
            stream = rng.random() < stream_share
            disconnect = stream and rng.random() < disconnect_share
            body, _ = make_body(rng, args.endpoint, model, long_turns, stream,
                                rng.randint(args.min_tokens, args.max_tokens), args.temperature)
            st = stats if time.monotonic() >= measure_from else warm_stats
            one_request(target, args.endpoint, body, rng.randint(1, 4) if disconnect else 0, st, args.timeout)

    m0 = None
    st = threading.Thread(target=sampler, daemon=True)
    st.start()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, measure_from - time.monotonic()))
    m0 = target.metrics()  # server counters from the end of the warm-up
    t_measure = time.monotonic()
    for t in threads:
        t.join(max(1.0, stop_at - time.monotonic() + args.timeout + 5))
    wall = time.monotonic() - t_measure
    hung = sum(t.is_alive() for t in threads)
    if hung:
        stats.add_error(f"{hung} client thread(s) still waiting after the time limit")
    time.sleep(1.0)
    sampler_stop.set()
    st.join()
    m1 = target.metrics()
    after = [(t, v) for t, v in rss if t >= warmup]
    stats.errors += warm_stats.errors
    stats.error_samples += warm_stats.error_samples[:5]
    return {
        "clients": clients, "duration_s": round(wall, 1), "requests": stats.requests, "streamed": stats.streamed,
        "errors": stats.errors, "error_samples": stats.error_samples, "intentional_disconnects": stats.disconnects,
        "tokens": stats.tokens, "tokens_per_s": stats.tokens / wall if wall else 0.0,
        "requests_per_s": stats.requests / wall if wall else 0.0,
        "ttft_p50_ms": pct(stats.ttft, 50) * 1e3, "ttft_p99_ms": pct(stats.ttft, 99) * 1e3,
        "itl_p50_ms": pct(stats.itl, 50) * 1e3, "itl_p99_ms": pct(stats.itl, 99) * 1e3,
        "e2e_p50_ms": pct(stats.e2e, 50) * 1e3, "e2e_p99_ms": pct(stats.e2e, 99) * 1e3,
        "server_generated_tokens": m1.get("moe_generation_tokens_total", 0) - m0.get("moe_generation_tokens_total", 0),
        "server_client_disconnects": m1.get("moe_client_disconnects_total", 0) - m0.get("moe_client_disconnects_total", 0),
        "server_running_after": m1.get("moe_running_sequences"),
        "warmup_requests": warm_stats.requests,
        "server_kv_cache_bytes_at_warm": m0.get("moe_kv_cache_bytes"),
        "server_kv_cache_bytes": m1.get("moe_kv_cache_bytes"), "server_prefix_cache_bytes": m1.get("moe_prefix_cache_bytes"),
        "server_prefix_cache_entries": m1.get("moe_prefix_cache_entries"),
        "rss_samples": len(rss), "rss_warmup_s": warmup,
        "rss_first_kib": after[0][1] if after else None, "rss_last_kib": after[-1][1] if after else None,
        "rss_max_kib": max(v for _, v in after) if after else None,
        "rss_slope_kib_per_min": slope_per_min(after) if after else None,
        "rss_all": rss,
    }


def size_long_prompt(target, args, model, context):
    """Turns of history for a 'long' prompt: about --long-fraction of the context (after a probe of
    the prompt length), leaving room for max_tokens."""
    body = {"model": model, "max_tokens": 1, "temperature": 0.0, "seed": 1}
    if args.endpoint == "chat":
        msgs = [{"role": "system", "content": "You are a helpful assistant."}]
        for i in range(4):
            q, a = HISTORY_TURNS[i]
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        body["messages"] = msgs + [{"role": "user", "content": "Hello!"}]
    else:
        body["prompt"] = "\n\n".join(CODE_PROMPTS[i % 3] for i in range(4)) + "\n\n" + CODE_PROMPTS[0]
    st, data = target.post_json("/chat/completions" if args.endpoint == "chat" else "/completions", body)
    if st != 200:
        raise SystemExit(f"serve-load: probe request failed: HTTP {st}: {data[:300]!r}")
    per_turn = max(1.0, json.loads(data)["usage"]["prompt_tokens"] / 4.5)
    budget = min(args.long_tokens, int(context * args.long_fraction)) - args.max_tokens
    return max(1, int(budget / per_turn)), per_turn


def print_mixed(r, args):
    print(f"clients {r['clients']}, {r['rss_warmup_s']:.0f} s warm-up ({r['warmup_requests']} requests, not counted) + "
          f"{r['duration_s']} s measured: {r['requests']} requests ({r['streamed']} streamed), "
          f"{r['errors']} errors, {r['intentional_disconnects']} intentional disconnects")
    print(f"  tokens {r['tokens']}  ->  {r['tokens_per_s']:.1f} tokens/s (clients' count; server counted "
          f"{r['server_generated_tokens']:.0f} incl. disconnected), {r['requests_per_s']:.2f} requests/s")
    print(f"  TTFT p50 {r['ttft_p50_ms']:.1f} ms  p99 {r['ttft_p99_ms']:.1f} ms   "
          f"ITL p50 {r['itl_p50_ms']:.2f} ms  p99 {r['itl_p99_ms']:.2f} ms   "
          f"request p50 {r['e2e_p50_ms']:.0f} ms  p99 {r['e2e_p99_ms']:.0f} ms")
    print(f"  server: moe_client_disconnects_total +{r['server_client_disconnects']:.0f}, "
          f"moe_running_sequences after: {r['server_running_after']}, moe_kv_cache_bytes "
          f"{(r['server_kv_cache_bytes_at_warm'] or 0) / 2**20:.1f} MiB after the warm-up -> "
          f"{(r['server_kv_cache_bytes'] or 0) / 2**20:.1f} MiB at the end, moe_prefix_cache_bytes "
          f"{(r['server_prefix_cache_bytes'] or 0) / 2**20:.1f} MiB in {r['server_prefix_cache_entries']} entries")
    if r["rss_first_kib"] is not None:
        growth = (r["rss_last_kib"] - r["rss_first_kib"]) / r["rss_first_kib"]
        print(f"  RSS after {r['rss_warmup_s']:.0f} s warm-up ({r['rss_samples']} samples in all): first "
              f"{r['rss_first_kib'] / 1024:.1f} MiB, last {r['rss_last_kib'] / 1024:.1f} MiB, max "
              f"{r['rss_max_kib'] / 1024:.1f} MiB, slope {r['rss_slope_kib_per_min']:+.0f} KiB/min, "
              f"last/first {growth:+.2%}")
    else:
        print("  RSS: not sampled (give --pid with --base-url)")
    for e in r["error_samples"]:
        print(f"  error: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_argument_group("server")
    g.add_argument("--base-url", help="a running server (http://HOST:PORT/v1); else one is started")
    g.add_argument("--pid", type=int, help="the running server's pid, for RSS (with --base-url)")
    g.add_argument("--moe", default=None, help="the moe binary to start (default: build-http, build or build-client)")
    g.add_argument("--model", default=None, help="the model to serve (default models/tiny-moe)")
    g.add_argument("--server-arg", action="append", default=[], help="extra `moe serve` argument (repeat)")
    g.add_argument("--api-key", default=None)
    g = ap.add_argument_group("load")
    g.add_argument("--clients", default="32", help="N, or a list 1,4,16 for a sweep")
    g.add_argument("--duration", type=float, default=60.0, help="seconds per run")
    g.add_argument("--warmup", type=float, default=60.0,
                   help="seconds of load before the measured --duration (RSS must be flat after it)")
    g.add_argument("--prefix-cache", default="64MiB",
                   help="--prefix-cache of a server started here: small, so that it is full after the warm-up "
                        "and RSS growth after it means a leak (the server's default is larger)")
    g.add_argument("--endpoint", choices=["chat", "completions"], default="chat",
                   help="completions for a model without a chat template (e.g. a synthetic pack)")
    g.add_argument("--stream-share", type=float, default=0.5)
    g.add_argument("--disconnect-share", type=float, default=0.1, help="of the streamed requests")
    g.add_argument("--min-tokens", type=int, default=16)
    g.add_argument("--max-tokens", type=int, default=64)
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--long-tokens", type=int, default=2048, help="long prompts: at most this many tokens ...")
    g.add_argument("--long-fraction", type=float, default=0.5, help="... and at most this share of the context")
    g.add_argument("--timeout", type=float, default=300.0, help="per request, seconds")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--max-rss-growth", type=float, default=0.05, help="exit 2 above this last/first RSS growth")
    g.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    counts = [int(x) for x in args.clients.split(",") if x.strip()]
    sweep = len(counts) > 1
    server = None
    try:
        if args.base_url:
            target, pid = Target(args.base_url, args.api_key), args.pid
        else:
            moe = args.moe or default_moe_binary()
            model = args.model or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                               "models", "tiny-moe")
            parallel = [] if any(a.startswith("--parallel") for a in args.server_arg) else ["--parallel", str(max(counts))]
            cache = [] if any(a.startswith("--prefix-cache") for a in args.server_arg) else ["--prefix-cache", args.prefix_cache]
            server = MoeServer(moe, ["--model", model] + parallel + cache + args.server_arg, api_key=args.api_key)
            server.start()
            print(f"serve-load: started {' '.join(server.cmd)} (pid {server.pid})")
            target, pid = Target(server.base_url, args.api_key), server.pid
        st, data = target.get(target.prefix + "/models")
        if st != 200:
            raise SystemExit(f"serve-load: GET /v1/models: HTTP {st}: {data[:200]!r}")
        model_id = json.loads(data)["data"][0]["id"]
        context = int(target.metrics().get("moe_context_tokens", 0)) or 4096
        turns, per_turn = size_long_prompt(target, args, model_id, context)
        print(f"serve-load: model {model_id}, context {context}; long prompts: {turns} turns "
              f"(~{turns * per_turn:.0f} tokens), short: one question; max_tokens {args.min_tokens}-{args.max_tokens}")
        results = []
        if not sweep:
            r = run_phase(target, args, model_id, counts[0], args.duration, args.stream_share, args.disconnect_share,
                          turns, pid, args.warmup)
            print_mixed(r, args)
            results.append(r)
        else:
            print(f"{'clients':>7} {'requests':>8} {'errors':>6} {'tok/s':>8} {'TTFT p50':>9} {'TTFT p99':>9} "
                  f"{'ITL p50':>8} {'ITL p99':>8}   (ms; all streamed, {min(args.warmup, 5.0):.0f} s warm-up + {args.duration:.0f} s each)")
            for n in counts:
                r = run_phase(target, args, model_id, n, args.duration, 1.0, 0.0, turns, pid, min(args.warmup, 5.0))
                results.append(r)
                print(f"{n:>7} {r['requests']:>8} {r['errors']:>6} {r['tokens_per_s']:>8.1f} {r['ttft_p50_ms']:>9.1f} "
                      f"{r['ttft_p99_ms']:>9.1f} {r['itl_p50_ms']:>8.2f} {r['itl_p99_ms']:>8.2f}", flush=True)
                for e in r["error_samples"]:
                    print(f"  error: {e}")
    finally:
        rc = server.stop() if server else None
        if server:
            print(f"serve-load: moe serve exited with {rc}")
            if rc != 0:
                print(server.log_tail(3000))
            server.cleanup()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if any(r["errors"] for r in results):
        return 1
    if not sweep:
        r = results[0]
        if r["rss_first_kib"] and (r["rss_last_kib"] - r["rss_first_kib"]) / r["rss_first_kib"] > args.max_rss_growth:
            print(f"serve-load: RSS grew more than {args.max_rss_growth:.0%} after the warm-up")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
