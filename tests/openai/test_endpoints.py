#!/usr/bin/env python3
"""POST /v1/completions (logprobs, echo, streaming), GET /v1/models, GET /health, GET /metrics."""
import json
import math
import re
import subprocess
import time

from common import MOE_BIN, TINY_MOE, ServerTestCase, main, raw_request, run_concurrently, user

CODE = 'def read_config(path):\n    """Read a configuration file."""\n    with open(path'

# One Prometheus text-format sample line: name{labels} value [timestamp]
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+-?\d+)?$')


def parse_metrics(text):
    """{series name (with labels): value}, {family: type}; raises on a malformed line."""
    values, types = {}, {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(f"not a Prometheus sample line: {line!r}")
        v = m.group(3)
        values[m.group(1) + (m.group(2) or "")] = float(v) if v not in ("+Inf", "-Inf", "NaN") else float(v.replace("Inf", "inf"))
    return values, types


class Completions(ServerTestCase):
    def complete(self, **kw):
        kw.setdefault("temperature", 0)
        kw.setdefault("max_tokens", 16)
        kw.setdefault("prompt", CODE)
        return self.client.completions.create(model=self.model, **kw)

    def test_shape(self):
        r = self.complete()
        self.assertEqual(r.object, "text_completion")
        self.assertTrue(r.id)
        self.assertEqual(r.model, self.model)
        self.assertEqual(len(r.choices), 1)
        c = r.choices[0]
        self.assertEqual(c.index, 0)
        self.assertIsInstance(c.text, str)
        self.assertIn(c.finish_reason, ("stop", "length"))
        self.assertIsNone(c.logprobs)
        u = r.usage
        self.assertEqual(u.total_tokens, u.prompt_tokens + u.completion_tokens)
        self.assertGreater(u.prompt_tokens, 0)

    def test_logprobs_and_echo(self):
        n_top = 3
        plain = self.complete()
        r = self.complete(logprobs=n_top, echo=True)
        c = r.choices[0]
        self.assertEqual(c.text, CODE + plain.choices[0].text, "echo: prompt + the same completion")
        lp = c.logprobs
        self.assertIsNotNone(lp)
        n = len(lp.tokens)
        self.assertEqual(len(lp.token_logprobs), n)
        self.assertEqual(len(lp.top_logprobs), n)
        self.assertEqual(len(lp.text_offset), n)
        self.assertEqual("".join(lp.tokens), c.text)
        # prompt tokens, then the completion's
        p = r.usage.prompt_tokens
        self.assertEqual(n, p + r.usage.completion_tokens)
        self.assertEqual("".join(lp.tokens[:p]), CODE)
        # offsets: where each token starts in the text
        self.assertEqual(lp.text_offset[0], 0)
        for i in range(n):
            self.assertEqual(lp.text_offset[i], len("".join(lp.tokens[:i])), f"text_offset[{i}]")
        # the first prompt token has no logprob; every other one has
        self.assertIsNone(lp.token_logprobs[0])
        self.assertIsNone(lp.top_logprobs[0])
        for i in range(1, n):
            self.assertTrue(math.isfinite(lp.token_logprobs[i]) and lp.token_logprobs[i] <= 0, f"token_logprobs[{i}]")
            top = lp.top_logprobs[i]
            self.assertIsInstance(top, dict)
            self.assertGreaterEqual(len(top), 1)
            self.assertLessEqual(len(top), n_top + 1)  # OpenAI may add the chosen token
            self.assertGreaterEqual(max(top.values()) + 1e-4, lp.token_logprobs[i])
        # greedy: each generated token is the most likely one
        for i in range(p, n):
            self.assertAlmostEqual(lp.token_logprobs[i], max(lp.top_logprobs[i].values()), places=4)
            self.assertIn(lp.tokens[i], lp.top_logprobs[i])
        # without echo: only the completion's tokens, the same values
        r2 = self.complete(logprobs=n_top)
        self.assertEqual(r2.choices[0].text, plain.choices[0].text)
        self.assertEqual(r2.choices[0].logprobs.tokens, lp.tokens[p:])
        for a, b in zip(r2.choices[0].logprobs.token_logprobs, lp.token_logprobs[p:]):
            self.assertAlmostEqual(a, b, places=4)
        self.assertEqual(r2.choices[0].logprobs.text_offset[0], len(CODE), "offsets count from the prompt's start")

    def test_echo_without_logprobs(self):
        plain = self.complete()
        r = self.complete(echo=True)
        self.assertEqual(r.choices[0].text, CODE + plain.choices[0].text)

    def test_stream_matches(self):
        ref = self.complete(max_tokens=24)
        text, finishes, usage = [], [], None
        for chunk in self.complete(max_tokens=24, stream=True, stream_options={"include_usage": True}):
            self.assertEqual(chunk.object, "text_completion")
            if chunk.usage:
                usage = chunk.usage
            for ch in chunk.choices:
                text.append(ch.text)
                if ch.finish_reason:
                    finishes.append(ch.finish_reason)
        self.assertEqual("".join(text), ref.choices[0].text)
        self.assertEqual(finishes, [ref.choices[0].finish_reason])
        self.assertIsNotNone(usage)
        self.assertEqual(usage.completion_tokens, ref.usage.completion_tokens)

    def test_length_and_stop(self):
        full = self.complete(max_tokens=32).choices[0].text
        r = self.complete(max_tokens=5)
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(r.usage.completion_tokens, 5)
        self.assertTrue(full.startswith(r.choices[0].text))
        if len(full) >= 12:
            k = len(full) // 2
            stop = full[k:k + 3]
            s = self.complete(max_tokens=32, stop=[stop]).choices[0]
            self.assertEqual(s.text, full[:full.find(stop)])
            self.assertEqual(s.finish_reason, "stop")

    def test_seed_batch_invariance(self):
        req = dict(temperature=1.0, max_tokens=24, seed=4242)
        alone = self.complete(**req).choices[0].text
        self.assertEqual(run_concurrently(lambda: self.complete(**req).choices[0].text, [()] * 8), [alone] * 8)

    def test_token_prompt(self):
        # the prompt as token ids (from `moe tokenize`): the same completion as the text prompt
        out = subprocess.run([MOE_BIN, "tokenize", "--model", TINY_MOE, "--text", CODE], check=True,
                             capture_output=True, text=True).stdout
        ids = json.loads(out)
        self.assertTrue(ids and all(isinstance(i, int) for i in ids))
        text = self.complete(max_tokens=12)
        tok = self.complete(prompt=ids, max_tokens=12)
        self.assertEqual(tok.choices[0].text, text.choices[0].text)
        self.assertEqual(tok.usage.prompt_tokens, len(ids))
        echo = self.complete(prompt=ids, max_tokens=12, echo=True)
        self.assertEqual(echo.choices[0].text, CODE + text.choices[0].text)


class ModelsHealthMetrics(ServerTestCase):
    def test_models(self):
        models = self.client.models.list()
        self.assertGreaterEqual(len(models.data), 1)
        m = models.data[0]
        self.assertEqual(m.object, "model")
        self.assertTrue(m.id)
        self.assertIsInstance(m.created, int)
        self.assertIsInstance(m.owned_by, str)
        st, _, body = raw_request(self.server, "GET", "/v1/models", None)
        self.assertEqual(st, 200)
        self.assertIn(b'"object"', body)

    def test_health(self):
        st, _, body = raw_request(self.server, "GET", "/health", None)
        self.assertEqual(st, 200)

    def test_metrics(self):
        st, headers, body = raw_request(self.server, "GET", "/metrics", None)
        self.assertEqual(st, 200)
        ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        before, types = parse_metrics(body.decode())
        self.assertTrue(types, "no # TYPE lines")
        # one chat and one completion request, then the counters must have grown
        self.client.chat.completions.create(model=self.model, messages=user("Hello!"), max_tokens=8, temperature=0)
        self.client.completions.create(model=self.model, prompt=CODE, max_tokens=8, temperature=0)
        # a handler may count its request just after the client has the answer: scrape until the
        # two requests show (at most ~10 s), then check exact figures
        for _ in range(100):
            st, _, body = raw_request(self.server, "GET", "/metrics", None)
            after, types = parse_metrics(body.decode())
            done = [k for k in after if k.startswith("moe_requests_total") and 'status="200"' in k
                    and ("/v1/completions" in k or "/v1/chat/completions" in k)]
            if sum(after[k] - before.get(k, 0) for k in done) >= 2:
                break
            time.sleep(0.1)
        text = body.decode()

        def series(name, **labels):
            want = [f'{k}="{v}"' for k, v in labels.items()]
            return sum(v for k, v in after.items() if k.split("{")[0] == name and all(w in k for w in want))

        def before_sum(name, **labels):
            want = [f'{k}="{v}"' for k, v in labels.items()]
            return sum(v for k, v in before.items() if k.split("{")[0] == name and all(w in k for w in want))

        # the main series (serve/http/metrics.cpp), each with a TYPE, and the counters grew
        for name, typ in [("moe_requests_total", "counter"), ("moe_request_finish_total", "counter"),
                          ("moe_prompt_tokens_total", "counter"), ("moe_generation_tokens_total", "counter"),
                          ("moe_cached_prompt_tokens_total", "counter"), ("moe_client_disconnects_total", "counter"),
                          ("moe_time_to_first_token_seconds", "histogram"),
                          ("moe_inter_token_latency_seconds", "histogram"),
                          ("moe_request_duration_seconds", "histogram"), ("moe_queue_depth", "gauge"),
                          ("moe_running_sequences", "gauge"), ("moe_kv_cache_bytes", "gauge"),
                          ("moe_prefix_cache_bytes", "gauge"), ("moe_prefix_cache_hits_total", "counter"),
                          ("moe_prefix_running_shares_total", "counter")]:
            with self.subTest(series=name):
                self.assertEqual(types.get(name), typ, f"# TYPE of {name}:\n{text[:3000]}")
        self.assertEqual(series("moe_requests_total", endpoint="/v1/chat/completions", status="200")
                         - before_sum("moe_requests_total", endpoint="/v1/chat/completions", status="200"), 1)
        self.assertEqual(series("moe_requests_total", endpoint="/v1/completions", status="200")
                         - before_sum("moe_requests_total", endpoint="/v1/completions", status="200"), 1)
        self.assertGreater(series("moe_prompt_tokens_total"), before_sum("moe_prompt_tokens_total"))
        self.assertGreaterEqual(series("moe_generation_tokens_total") - before_sum("moe_generation_tokens_total"), 2)
        self.assertEqual(series("moe_time_to_first_token_seconds_count")
                         - before_sum("moe_time_to_first_token_seconds_count"), 2)
        self.assertEqual(series("moe_request_finish_total") - before_sum("moe_request_finish_total"), 2)
        # histogram buckets are cumulative and end at +Inf == _count
        for h in ("moe_time_to_first_token_seconds", "moe_inter_token_latency_seconds", "moe_request_duration_seconds"):
            buckets = [(k, v) for k, v in after.items() if k.startswith(h + "_bucket")]
            self.assertTrue(buckets, h)
            vals = [v for _, v in buckets]
            self.assertEqual(vals, sorted(vals), f"{h} buckets not cumulative")
            inf = [v for k, v in buckets if 'le="+Inf"' in k]
            self.assertEqual(inf, [after[h + "_count"]], h)
        # nothing runs now
        self.assertEqual(series("moe_running_sequences"), 0)
        self.assertEqual(series("moe_queue_depth"), 0)

if __name__ == "__main__":
    main()
