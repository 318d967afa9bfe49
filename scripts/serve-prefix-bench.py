#!/usr/bin/env python3
"""Time to first token of the 10th turn of a 10-turn agent transcript, with prefix reuse and without.

    python3 scripts/serve-prefix-bench.py --moe build/tools/moe --model models/tiny-moe
    python3 scripts/serve-prefix-bench.py --moe build/tools/moe --model big.moepack --prefix-tokens 3000 \
        --server-arg=--ram-budget=50%

The transcript: a system prompt, the tool definitions (sent as `tools`) and 9 earlier turns, each a
user question, an assistant tool call, the tool's result and the assistant's answer; about
--prefix-tokens tokens in all (default 3000, lowered to fit the model's context: the system prompt's
guidelines are repeated until the rendered turn-10 prompt, measured with the server's own
usage.prompt_tokens, reaches the target). Two servers are run one after the other on a free port:
`--prefix-cache 0` and the default (prefix reuse on). On each, turns 1-9 are sent first (their
prompts: the transcript up to each question, and up to each tool result), then turn 10 is timed
--reps times, each time with a different last question (so each shares the 9-turn prefix; the
cached_tokens shown per rep also count the start of the question that the previous rep cached). TTFT is measured by the
client: from sending a streamed request with max_tokens 1 to its first event with a token or a
finish_reason. The server's own moe_time_to_first_token_seconds (arrival to first token) is shown
beside it. Prints both medians and the ratio (without reuse / with reuse).
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moe_server import MoeServer, default_moe_binary, parse_metrics, sse_events  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOOLS = [
    {"type": "function", "function": {"name": "calculator", "description": "Evaluate an arithmetic expression.",
                                      "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                                                     "required": ["expression"]}}},
    {"type": "function", "function": {"name": "median", "description": "Median of a list of numbers.",
                                      "parameters": {"type": "object", "properties": {
                                          "numbers": {"type": "array", "items": {"type": "number"}}},
                                          "required": ["numbers"]}}},
    {"type": "function", "function": {"name": "mean", "description": "Arithmetic mean of a list of numbers.",
                                      "parameters": {"type": "object", "properties": {
                                          "numbers": {"type": "array", "items": {"type": "number"}}},
                                          "required": ["numbers"]}}},
    {"type": "function", "function": {"name": "convert", "description": "Convert a value between units.",
                                      "parameters": {"type": "object", "properties": {
                                          "value": {"type": "number"}, "from": {"type": "string"},
                                          "to": {"type": "string"}}, "required": ["value", "from", "to"]}}},
    {"type": "function", "function": {"name": "date_diff", "description": "Days from start to end (ISO dates).",
                                      "parameters": {"type": "object", "properties": {
                                          "start": {"type": "string"}, "end": {"type": "string"}},
                                          "required": ["start", "end"]}}},
    {"type": "function", "function": {"name": "lookup", "description": "Look up a fact by key.",
                                      "parameters": {"type": "object", "properties": {"key": {"type": "string"}},
                                                     "required": ["key"]}}},
]

# 9 earlier turns: (question, tool, arguments, result, answer)
TURNS = [
    ("What is the median of 3, 10, 4 and 9?", "median", {"numbers": [3, 10, 4, 9]}, "6.5", "The median is 6.5."),
    ("Convert 169 km to miles.", "convert", {"value": 169, "from": "km", "to": "mi"}, "105.01",
     "169 kilometers equals about 105.01 miles."),
    ("How many days are there between 2024-01-05 and 2024-03-01?", "date_diff",
     {"start": "2024-01-05", "end": "2024-03-01"}, "56", "There are 56 days between 2024-01-05 and 2024-03-01."),
    ("What is the capital of Czechia?", "lookup", {"key": "capital_of_czechia"}, "Prague", "It is Prague."),
    ("What is 12*7+3?", "calculator", {"expression": "12*7+3"}, "87", "12*7+3 = 87."),
    ("What is the mean of 63, 56 and 100?", "mean", {"numbers": [63, 56, 100]}, "73", "The average is 73."),
    ("How many F is 222 degrees Celsius?", "convert", {"value": 222, "from": "c", "to": "f"}, "431.6",
     "That is 431.6 degrees Fahrenheit."),
    ("How many moons does Saturn have?", "lookup", {"key": "moons_of_saturn"}, "146", "Saturn has 146 known moons."),
    ("Find the median of 619, 311, 645 and 493.", "median", {"numbers": [619, 311, 645, 493]}, "556",
     "The median of those numbers is 556."),
]
FINAL_QUESTIONS = [
    "What is the atomic number of gold?", "Convert 5 kg to pounds.", "What is the mean of 4, 6, 0, 5 and 8?",
    "How many days from 1999-09-20 until 1999-11-14?", "What is the currency of Japan?", "What is 8*89+7?",
    "Which city is the capital of Peru?", "What is the median of 17, 7 and 19?", "Convert 53 cm to inches.",
    "What language is spoken in Brazil?", "How many moons does Mars have?", "What is 100/8-3?",
]
GUIDELINE = ("Guideline: when a question needs a number, a conversion, a date difference or a fact, call exactly "
             "one tool with JSON arguments, wait for its result, then answer in one short sentence that quotes "
             "the result. Never guess a value that a tool can give.")


def transcript(n_guidelines):
    """The system prompt and the 9 earlier turns (4 messages each)."""
    sys_text = "You are a helpful assistant that uses tools." + "".join(f"\n{GUIDELINE}" for _ in range(n_guidelines))
    msgs = [{"role": "system", "content": sys_text}]
    for i, (q, tool, args, result, answer) in enumerate(TURNS):
        cid = f"call_{i:02d}"
        msgs += [{"role": "user", "content": q},
                 {"role": "assistant", "content": None, "tool_calls": [
                     {"id": cid, "type": "function", "function": {"name": tool, "arguments": json.dumps(args)}}]},
                 {"role": "tool", "tool_call_id": cid, "content": result},
                 {"role": "assistant", "content": answer}]
    return msgs


def build_messages(n_guidelines, final_question):
    """Turn 10's request: the whole transcript and a new question."""
    return transcript(n_guidelines) + [{"role": "user", "content": final_question}]


def earlier_requests(n_guidelines):
    """What an agent sent during turns 1-9: per turn, the transcript up to its question (the model
    calls the tool) and up to the tool's result (the model answers)."""
    t = transcript(n_guidelines)
    return [t[:1 + 4 * k + j] for k in range(9) for j in (1, 3)]


class Client:
    def __init__(self, base_url):
        u = urllib.parse.urlparse(base_url)
        self.host, self.port, self.prefix = u.hostname, u.port, u.path.rstrip("/")
        self.model = self.get_json(self.prefix + "/models")["data"][0]["id"]

    def get_json(self, path):
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return json.loads(r.read())
        finally:
            c.close()

    def metrics(self):
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
        finally:
            c.close()
        return parse_metrics(text)

    def chat(self, messages, max_tokens=1, stream=False):
        """(ttft seconds, usage, status) of one chat request; ttft None when not streamed."""
        body = {"model": self.model, "messages": messages, "tools": TOOLS, "max_tokens": max_tokens,
                "temperature": 0}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        c = http.client.HTTPConnection(self.host, self.port, timeout=600)
        try:
            t0 = time.perf_counter()
            c.request("POST", self.prefix + "/chat/completions", body=json.dumps(body).encode(),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {r.read()[:300]!r}")
            if not stream:
                return None, json.loads(r.read())["usage"]
            ttft, usage = None, None
            for ev in sse_events(r):
                if ev is None:
                    break
                if ev.get("usage"):
                    usage = ev["usage"]
                for ch in ev.get("choices") or []:
                    d = ch.get("delta") or {}
                    if ttft is None and (d.get("content") or d.get("tool_calls") or ch.get("finish_reason")):
                        ttft = time.perf_counter() - t0
            return ttft, usage
        finally:
            c.close()


def size_transcript(client, target):
    """Guideline repeats that bring the turn-10 prompt closest to `target` tokens (without going over)."""
    base = client.chat(build_messages(0, FINAL_QUESTIONS[0]))[1]["prompt_tokens"]
    one = client.chat(build_messages(1, FINAL_QUESTIONS[0]))[1]["prompt_tokens"] - base
    n = max(0, int((target - base) / max(one, 1)))
    while n > 0 and client.chat(build_messages(n, FINAL_QUESTIONS[0]))[1]["prompt_tokens"] > target:
        n -= 1
    return n, base, one


def measure(client, n_guidelines, reps, earlier=True):
    # turns 1-9, as an agent sends them (without a prefix cache only the last, to warm the RAM
    # tier alike: nothing else of them could be reused, and on a big model they take minutes)
    reqs = list(earlier_requests(n_guidelines))
    for msgs in (reqs if earlier else reqs[-1:]):
        client.chat(msgs, max_tokens=8)
    m0 = client.metrics()
    rows = []
    for i in range(reps):
        ttft, usage = client.chat(build_messages(n_guidelines, FINAL_QUESTIONS[i % len(FINAL_QUESTIONS)]), stream=True)
        rows.append((ttft, usage["prompt_tokens"], (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)))
    m1 = client.metrics()
    n = m1.get("moe_time_to_first_token_seconds_count", 0) - m0.get("moe_time_to_first_token_seconds_count", 0)
    s = m1.get("moe_time_to_first_token_seconds_sum", 0) - m0.get("moe_time_to_first_token_seconds_sum", 0)
    return rows, (s / n if n else float("nan"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moe", default=None, help="the moe binary (default: build-http, build or build-client)")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "tiny-moe"))
    ap.add_argument("--server-arg", action="append", default=[], help="extra `moe serve` argument (repeat)")
    ap.add_argument("--prefix-tokens", type=int, default=3000, help="target size of the turn-10 prompt")
    ap.add_argument("--reps", type=int, default=7, help="timed turn-10 requests per server")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--guidelines", type=int, default=None,
                    help="guideline lines in the system prompt (skips sizing the transcript, which costs full prefills)")
    ap.add_argument("--all-turns-when-off", action="store_true",
                    help="send turns 1-9 to the server without a prefix cache too (default: only turn 9)")
    args = ap.parse_args()
    moe = args.moe or default_moe_binary()

    results = {}
    n_guidelines = None
    for label, extra in (("prefix cache off", ["--prefix-cache", "0"]), ("prefix cache on", [])):
        srv = MoeServer(moe, ["--model", args.model] + extra + args.server_arg)
        srv.start()
        try:
            client = Client(srv.base_url)
            if n_guidelines is None and args.guidelines is not None:
                n_guidelines = args.guidelines
                print(f"model {client.model}: {n_guidelines} guideline lines (given)")
            if n_guidelines is None:  # sized on the cache-off server, so that nothing is cached by it
                context = int(client.metrics().get("moe_context_tokens", 0)) or 4096
                target = min(args.prefix_tokens, context - 64)
                n_guidelines, base, one = size_transcript(client, target)
                final = client.chat(build_messages(n_guidelines, FINAL_QUESTIONS[0]))[1]["prompt_tokens"]
                print(f"model {client.model}, context {context}: turn-10 prompt {final} tokens "
                      f"(target {target}; 9 turns + tools = {base} tokens, + {n_guidelines} guideline lines "
                      f"of {one} tokens in the system prompt)")
            rows, server_ttft = measure(client, n_guidelines, args.reps,
                                        earlier=args.all_turns_when_off or label == "prefix cache on")
        finally:
            rc = srv.stop()
            if rc != 0:
                print(f"moe serve ({label}) exited with {rc}:\n{srv.log_tail(2000)}")
            srv.cleanup()
        ttfts = [r[0] for r in rows]
        results[label] = {"ttft_ms": [t * 1e3 for t in ttfts], "median_ms": statistics.median(ttfts) * 1e3,
                          "prompt_tokens": rows[0][1], "cached_tokens": [r[2] for r in rows],
                          "server_ttft_mean_ms": server_ttft * 1e3}
        print(f"{label:>17}: TTFT median {statistics.median(ttfts) * 1e3:8.1f} ms  (min {min(ttfts) * 1e3:.1f}, "
              f"max {max(ttfts) * 1e3:.1f}; server-side mean {server_ttft * 1e3:.1f} ms; prompt {rows[0][1]} tokens, "
              f"cached per rep {[r[2] for r in rows]}; {len(rows)} reps)", flush=True)
    off, on = results["prefix cache off"]["median_ms"], results["prefix cache on"]["median_ms"]
    print(f"turn-10 TTFT: {off:.1f} ms without prefix reuse, {on:.1f} ms with it: {off / on:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
