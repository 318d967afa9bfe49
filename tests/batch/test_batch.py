#!/usr/bin/env python3
"""moe batch on models/tiny-moe: bad lines become error lines and never stop the job; bad files
are one clear error; results equal `moe run` for the same request; and a job killed with SIGKILL at
random points, then resumed, writes every custom_id exactly once, no torn line, and the same
results as an uninterrupted run with the same seeds."""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE_DIR = os.environ.get("MOE_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOE_BIN = os.environ.get("MOE_BIN") or os.path.join(SOURCE_DIR, "build", "tools", "moe")
TINY_MOE = os.path.join(SOURCE_DIR, "models", "tiny-moe")


def chat(cid, text, seed, max_tokens=32, **extra):
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens, "seed": seed,
            "temperature": 0.8}
    body.update(extra)
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}


def completion(cid, prompt, seed, max_tokens=24, temperature=0.8):
    return {"custom_id": cid, "method": "POST", "url": "/v1/completions",
            "body": {"prompt": prompt, "max_tokens": max_tokens, "seed": seed, "temperature": temperature}}


def job(n):
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(completion(f"r{i}", f"def f{i}(x):", i, max_tokens=16 + i % 24))
        else:
            out.append(chat(f"r{i}", f"What is {i} times {i + 1}?", i, max_tokens=16 + i % 40))
    return out


def write_jsonl(path, items):
    with open(path, "w") as f:
        for it in items:
            f.write(it if isinstance(it, str) else json.dumps(it))
            f.write("\n")


def batch(inp, out, *more, timeout=600):
    return subprocess.run([MOE_BIN, "batch", "--model", TINY_MOE, "--input", inp, "--output", out, "-t", "1",
                           "--max-batch", "8"] + list(more), capture_output=True, text=True, timeout=timeout)


def results(path):
    """custom_id (or id) -> what must not depend on the run: the choices (text/content, finish)."""
    out = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            key = r["custom_id"] or r["id"]
            assert key not in out, f"{key} written twice"
            if r["response"] is None:
                out[key] = ("error", r["error"]["message"])
            else:
                b = r["response"]["body"]
                ch = b.get("choices")
                out[key] = (r["response"]["status_code"],
                            json.dumps([{k: c.get(k) for k in ("text", "message", "finish_reason")} for c in ch])
                            if ch else json.dumps(b))
    return out


class Batch(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def p(self, name):
        return os.path.join(self.dir, name)

    def test_bad_lines_become_error_lines(self):
        items = [chat("ok1", "Hello!", 1), "not json", "[1, 2]",
                 {"custom_id": "u", "method": "POST", "url": "/v1/embeddings", "body": {}},
                 {"custom_id": "g", "method": "GET", "url": "/v1/completions", "body": {}},
                 {"method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}},
                 {"custom_id": "nobody", "method": "POST", "url": "/v1/completions"},
                 chat("badmsg", "x", 1) | {"body": {"messages": "x"}},
                 chat("stream", "x", 1, stream=True),
                 chat("long", "word " * 3000, 1),
                 completion("ok2", "import os", 2), ""]
        write_jsonl(self.p("in.jsonl"), items)
        r = batch(self.p("in.jsonl"), self.p("out.jsonl"), "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        res = results(self.p("out.jsonl"))
        self.assertEqual(len(res), 11)  # the blank line is no request
        self.assertEqual(res["ok1"][0], 200)
        self.assertEqual(res["ok2"][0], 200)
        for key, needle in (("u", "'url'"), ("g", "'method'"), ("nobody", "'body'"), ("batch_req_2", "not a JSON object"),
                            ("batch_req_3", "not a JSON object"), ("batch_req_6", "'custom_id'")):
            self.assertEqual(res[key][0], "error", key)
            self.assertIn(needle, res[key][1], key)
        self.assertEqual(res["badmsg"][0], 400)
        self.assertEqual(res["stream"][0], 400)
        self.assertEqual(res["long"][0], 400)
        self.assertIn("context_length_exceeded", res["long"][1])
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual(summary["done"], 11)
        self.assertEqual(summary["errors"], 9)

    def test_bad_files_are_one_clear_error(self):
        write_jsonl(self.p("dup.jsonl"), [chat("a", "x", 1), chat("b", "y", 1), chat("a", "z", 1)])
        write_jsonl(self.p("empty.jsonl"), [])
        for inp, needle in ((self.p("dup.jsonl"), "lines 1 and 3"), (self.p("empty.jsonl"), "no requests"),
                            (self.p("missing.jsonl"), "cannot open"), (self.dir, "directory")):
            r = batch(inp, self.p("out.jsonl"))
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(needle, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertFalse(os.path.exists(self.p("out.jsonl")))
        # An existing output needs --resume; --resume needs the same input.
        write_jsonl(self.p("in.jsonl"), [chat("a", "x", 1)])
        self.assertEqual(batch(self.p("in.jsonl"), self.p("out.jsonl")).returncode, 0)
        r = batch(self.p("in.jsonl"), self.p("out.jsonl"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("--resume", r.stderr)
        write_jsonl(self.p("other.jsonl"), [chat("a", "y", 1)])
        r = batch(self.p("other.jsonl"), self.p("out.jsonl"), "--resume")
        self.assertEqual(r.returncode, 1)
        self.assertIn("input differs", r.stderr)

    def test_kv_notice_counts_only_requests_without_max_tokens(self):
        # Each request without max_tokens reserves the whole context (64 tokens here); the notice
        # says how many such requests the KV budget holds when they are more than that (2 here),
        # and stays silent when the budget holds them all.
        limits = ["--ctx", "64", "--kv-budget", "512KiB"]
        capped = [completion(f"c{i}", f"def f{i}(x):", i, max_tokens=8) for i in range(4)]
        open_ended = [dict(c, custom_id=f"o{i}", body={k: v for k, v in c["body"].items() if k != "max_tokens"})
                      for i, c in enumerate(capped)]
        for name, items, expect in (("capped", capped, None), ("two", capped[:2] + open_ended[:2], None),
                                    ("three", capped[:1] + open_ended[:3], "3 of the 4"),
                                    ("open", open_ended, "4 of the 4")):
            inp, out = self.p(name + ".jsonl"), self.p(name + ".out.jsonl")
            write_jsonl(inp, items)
            r = batch(inp, out, *limits)
            self.assertEqual(r.returncode, 0, r.stderr)
            notice = [l for l in r.stderr.splitlines() if "lack max_tokens" in l]
            if expect is None:
                self.assertEqual(notice, [], r.stderr)
            else:
                self.assertEqual(len(notice), 1, r.stderr)
                self.assertIn(expect + " requests lack max_tokens", notice[0])
                self.assertIn("holds 2 such requests", notice[0])
            res = results(out)
            self.assertEqual(len(res), 4)
            self.assertTrue(all(v[0] == 200 for v in res.values()), res)

    def test_same_tokens_as_moe_run(self):
        prompts = ["def fibonacci(n):", "import os\nimport sys\n", "The"]
        write_jsonl(self.p("in.jsonl"), [completion(f"c{i}", p, 0, max_tokens=20, temperature=0) for i, p in enumerate(prompts)])
        self.assertEqual(batch(self.p("in.jsonl"), self.p("out.jsonl")).returncode, 0)
        with open(self.p("out.jsonl")) as f:
            got = {json.loads(l)["custom_id"]: json.loads(l)["response"]["body"]["choices"][0]["text"] for l in f}
        for i, p in enumerate(prompts):
            r = subprocess.run([MOE_BIN, "run", "--model", TINY_MOE, "--prompt", p, "--no-echo", "--temp", "0", "-n", "20",
                                "-t", "1"], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(got[f"c{i}"], r.stdout[:-1], p)  # moe run ends with a newline

    def test_quantized_pack_same_tokens_whatever_the_batch(self):
        # INT4 experts and int8 dense weights run other kernels for 1, 2-11 and 12+ rows of x (the
        # requests in a step, the tokens routed to an expert): each row must get the same bits
        # from all of them, or a request's tokens would depend on what ran beside it.
        pack = self.p("q.moepack")
        r = subprocess.run([MOE_BIN, "convert", TINY_MOE, pack, "--experts", "int4", "--group-size", "32",
                            "--dense", "int8"], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        write_jsonl(self.p("in.jsonl"), job(16))
        outs = []
        # And offloaded: half the experts in RAM, under batch's default policy (nextuse) and LFU.
        runs = [("1", []), ("3", []), ("16", []), ("16", ["--ram-budget", "50%"]),
                ("16", ["--ram-budget", "50%", "--policy", "lfu"])]
        for i, (n, more) in enumerate(runs):
            out = self.p(f"out{i}.jsonl")
            r = subprocess.run([MOE_BIN, "batch", "--model", pack, "--input", self.p("in.jsonl"), "--output", out,
                                "-t", "2", "--max-batch", n] + more, capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            outs.append(results(out))
        self.assertEqual(len(outs[0]), 16)
        for i in range(1, len(runs)):
            self.assertEqual(outs[i], outs[0], runs[i])

    def test_kill_and_resume_exactly_once(self):
        items = job(60) + ["not json"]
        write_jsonl(self.p("in.jsonl"), items)
        ref = self.p("ref.jsonl")
        t0 = time.monotonic()
        r = batch(self.p("in.jsonl"), ref)
        whole = time.monotonic() - t0  # kills fall inside a run's time, however fast the machine
        self.assertEqual(r.returncode, 0, r.stderr)
        expected = results(ref)
        out = self.p("out.jsonl")
        rng = random.Random(7)
        killed, first = 0, True
        for attempt in range(30):
            cmd = [MOE_BIN, "batch", "--model", TINY_MOE, "--input", self.p("in.jsonl"), "--output", out, "-t", "1",
                   "--max-batch", "8"] + ([] if first else ["--resume"])
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.1, 0.8) * whole)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                killed += 1
                first = False
                continue
            err = proc.communicate()[1].decode()
            self.assertEqual(proc.returncode, 0, err)
            break
        else:
            self.fail("the job never finished")
        with open(out, "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n"), "a torn last line")
        got = results(out)  # raises on a custom_id written twice
        lost = [k for k in expected if k not in got]
        self.assertEqual(lost, [])
        self.assertEqual(len(got), len(expected))
        for k in expected:
            self.assertEqual(got[k], expected[k], k)
        sys.stderr.write(f"\nkill-and-resume: {killed} runs killed, lines lost 0, duplicates 0, "
                         f"{len(got)} results equal the uninterrupted run\n")
        self.assertGreater(killed, 0, "no run was killed: the job is faster than the kill times")


if __name__ == "__main__":
    unittest.main(verbosity=2)
