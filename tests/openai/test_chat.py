#!/usr/bin/env python3
"""POST /v1/chat/completions through the openai client: response shape, streaming against
non-streaming, stop strings, max_tokens, seeds, batch invariance, tool calls and logprobs.
No model output is written down here: the server is compared with itself (stream against
non-stream, alone against concurrent, one run against another)."""
import json
import math

from common import TOOL_NAMES, TOOLS, ServerTestCase, agent, main, run_concurrently, stream_chat, user

WHO = user("Who are you?")                                # a long text answer
MEDIAN = user("What is the median of 3, 10, 4 and 9?")    # a tool question
PROMPTS = [  # different lengths, for the mixed-batch test
    user("Hello!"),
    WHO,
    user("What can you do?"),
    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": "Good morning."}, {"role": "assistant", "content": "Good morning! How can I help?"},
     {"role": "user", "content": "Who are you?"}],
    user("def read_config(path):\n    \"\"\"Read a configuration file.\"\"\"\n    with open(path"),
    user("Thanks!"),
]


class ChatCompletions(ServerTestCase):
    def check_usage(self, usage):
        self.assertIsNotNone(usage)
        self.assertGreater(usage.prompt_tokens, 0)
        self.assertGreaterEqual(usage.completion_tokens, 0)
        self.assertEqual(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens)
        self.assertIsNotNone(usage.prompt_tokens_details, "usage.prompt_tokens_details missing")
        cached = usage.prompt_tokens_details.cached_tokens
        self.assertIsInstance(cached, int)
        self.assertGreaterEqual(cached, 0)
        self.assertLessEqual(cached, usage.prompt_tokens)

    def test_non_stream_shape(self):
        r = self.chat(WHO)
        self.assertEqual(r.object, "chat.completion")
        self.assertTrue(r.id)
        self.assertIsInstance(r.created, int)
        self.assertEqual(r.model, self.model)
        self.assertEqual(len(r.choices), 1)
        c = r.choices[0]
        self.assertEqual(c.index, 0)
        self.assertEqual(c.message.role, "assistant")
        self.assertIsInstance(c.message.content, str)
        self.assertTrue(c.message.content)
        self.assertIn(c.finish_reason, ("stop", "length"))
        self.assertFalse(c.message.tool_calls)  # no tools given
        self.check_usage(r.usage)
        self.assertGreater(r.usage.completion_tokens, 0)
        # the raw JSON too: usage.prompt_tokens_details.cached_tokens is part of the body
        raw = self.client.chat.completions.with_raw_response.create(
            model=self.model, messages=WHO, temperature=0, max_tokens=8)
        body = json.loads(raw.http_response.text)
        self.assertIn("cached_tokens", body["usage"]["prompt_tokens_details"])
        self.assertTrue(raw.http_response.headers["content-type"].startswith("application/json"))

    def test_content_parts_equal_string(self):
        parts = [{"role": "user", "content": [{"type": "text", "text": "Who are you?"}]}]
        self.assertEqual(self.chat(parts).choices[0].message.content, self.chat(WHO).choices[0].message.content)

    def test_stream_matches_non_stream(self):
        for messages in (WHO, PROMPTS[3], PROMPTS[4]):
            with self.subTest(messages=messages[-1]["content"][:30]):
                ref = self.chat(messages, max_tokens=40)
                chunks, text, finishes, _ = stream_chat(
                    self.client, model=self.model, messages=messages, temperature=0, max_tokens=40,
                    stream_options={"include_usage": True})
                self.assertEqual(text, ref.choices[0].message.content)
                self.assertEqual(finishes, [ref.choices[0].finish_reason], "exactly one finish_reason")
                ids = {c.id for c in chunks}
                self.assertEqual(len(ids), 1, "all chunks share one id")
                for c in chunks:
                    self.assertEqual(c.object, "chat.completion.chunk")
                    self.assertEqual(c.model, self.model)
                self.assertEqual(chunks[0].choices[0].delta.role, "assistant", "the first delta carries the role")
                # include_usage: one last chunk with empty choices and the usage; none before it
                last = chunks[-1]
                self.assertEqual(last.choices, [])
                self.check_usage(last.usage)
                self.assertEqual(last.usage.prompt_tokens, ref.usage.prompt_tokens)
                self.assertEqual(last.usage.completion_tokens, ref.usage.completion_tokens)
                for c in chunks[:-1]:
                    self.assertIsNone(c.usage)
                    self.assertEqual(len(c.choices), 1)
                # the finish_reason sits on the last chunk with a choice
                self.assertIsNotNone(chunks[-2].choices[0].finish_reason)

    def test_stream_without_include_usage(self):
        chunks, text, finishes, _ = stream_chat(self.client, model=self.model, messages=WHO, temperature=0, max_tokens=16)
        self.assertTrue(text)
        self.assertEqual(len(finishes), 1)
        for c in chunks:
            self.assertIsNone(c.usage)
            self.assertEqual(len(c.choices), 1)

    def test_max_tokens_length(self):
        full = self.chat(WHO, max_tokens=64)
        if full.usage.completion_tokens <= 3:
            self.skipTest("the model's answer is too short for a length cut")
        r = self.chat(WHO, max_tokens=3)
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(r.usage.completion_tokens, 3)
        self.assertTrue(full.choices[0].message.content.startswith(r.choices[0].message.content))
        # max_completion_tokens is the newer name of the same limit
        r2 = self.chat(WHO, max_tokens=None, max_completion_tokens=3)
        self.assertEqual(r2.choices[0].finish_reason, "length")
        self.assertEqual(r2.choices[0].message.content, r.choices[0].message.content)
        # streamed: the same text and finish_reason
        _, text, finishes, _ = stream_chat(self.client, model=self.model, messages=WHO, temperature=0, max_tokens=3)
        self.assertEqual(text, r.choices[0].message.content)
        self.assertEqual(finishes, ["length"])

    def test_stop_string(self):
        full = self.chat(WHO, max_tokens=48).choices[0].message.content
        if len(full) < 12:
            self.skipTest(f"answer too short for a stop string: {full!r}")
        # a stop string taken from the middle of the real output: the text must end right before
        # its first occurrence
        k = len(full) // 2
        stop = full[k:k + 3]
        cut = full[:full.find(stop)]
        r = self.chat(WHO, max_tokens=48, stop=[stop])
        self.assertEqual(r.choices[0].message.content, cut)
        self.assertEqual(r.choices[0].finish_reason, "stop")
        self.assertNotIn(stop, r.choices[0].message.content)
        # a plain string works like a list of one; an unmatched one changes nothing
        self.assertEqual(self.chat(WHO, max_tokens=48, stop=stop).choices[0].message.content, cut)
        self.assertEqual(self.chat(WHO, max_tokens=48, stop=["\x01never\x02"]).choices[0].message.content, full)
        # streamed: the stop string is held back, never sent
        _, text, finishes, _ = stream_chat(self.client, model=self.model, messages=WHO, temperature=0, max_tokens=48,
                                           stop=[stop])
        self.assertEqual(text, cut)
        self.assertEqual(finishes, ["stop"])

    def test_seed_determinism(self):
        req = dict(messages=WHO, temperature=1.0, max_tokens=32, seed=1234)
        a = self.chat(**req).choices[0].message.content
        b = self.chat(**req).choices[0].message.content
        self.assertEqual(a, b, "same seed, same text")
        _, s, _, _ = stream_chat(self.client, model=self.model, stream_options={"include_usage": True}, **req)
        self.assertEqual(s, a, "streamed with the same seed: same text")

    def test_batch_invariance_same_seed(self):
        req = dict(messages=WHO, temperature=1.0, max_tokens=32, seed=77)
        alone = self.chat(**req)
        results = run_concurrently(lambda: self.chat(**req), [()] * 8)
        for i, r in enumerate(results):
            self.assertEqual(r.choices[0].message.content, alone.choices[0].message.content, f"client {i}")
            self.assertEqual(r.usage.completion_tokens, alone.usage.completion_tokens, f"client {i}")

    def test_batch_invariance_mixed(self):
        # different prompts (different lengths, so prefill and decode share steps), greedy and
        # seeded: each one's text among others equals its text alone
        reqs = [dict(messages=p, temperature=0, max_tokens=32) for p in PROMPTS]
        reqs += [dict(messages=p, temperature=0.9, top_p=0.95, max_tokens=32, seed=5 + i) for i, p in enumerate(PROMPTS[:2])]
        alone = [self.chat(**r).choices[0].message.content for r in reqs]
        together = run_concurrently(lambda r: self.chat(**r).choices[0].message.content, [(r,) for r in reqs])
        self.assertEqual(together, alone)
        # and streamed, concurrently
        together_s = run_concurrently(lambda r: stream_chat(self.client, model=self.model, **r)[1], [(r,) for r in reqs])
        self.assertEqual(together_s, alone)

    def test_tool_call_round_trip(self):
        r = self.chat(MEDIAN, tools=TOOLS, max_tokens=96)
        c = r.choices[0]
        self.assertEqual(c.finish_reason, "tool_calls", f"message: {c.message}")
        self.assertTrue(c.message.tool_calls)
        tc = c.message.tool_calls[0]
        self.assertEqual(tc.type, "function")
        self.assertTrue(tc.id)
        self.assertIn(tc.function.name, TOOL_NAMES)
        args = json.loads(tc.function.arguments)  # arguments: a JSON object's text
        self.assertIsInstance(args, dict)
        self.assertFalse((c.message.content or "").strip(), "the call is not repeated as content")
        self.assertNotIn("<tool_call>", c.message.content or "")
        ids = [t.id for t in c.message.tool_calls]
        self.assertEqual(len(ids), len(set(ids)), "tool call ids are unique")

        # the result goes back as a tool message; the model answers in text
        result = agent.run_tool(tc.function.name, tc.function.arguments)
        messages = MEDIAN + [
            {"role": "assistant", "content": c.message.content,
             "tool_calls": [{"id": tc.id, "type": "function",
                             "function": {"name": tc.function.name, "arguments": tc.function.arguments}}]},
            {"role": "tool", "tool_call_id": tc.id, "content": result},
        ]
        r2 = self.chat(messages, tools=TOOLS, max_tokens=64)
        self.assertIn(r2.choices[0].finish_reason, ("stop", "length", "tool_calls"))
        self.assertGreater(r2.usage.prompt_tokens, r.usage.prompt_tokens)
        if r2.choices[0].finish_reason != "tool_calls":
            self.assertTrue(r2.choices[0].message.content)
        # the same conversation streamed gives the same answer
        _, text, finishes, calls = stream_chat(self.client, model=self.model, messages=messages, tools=TOOLS,
                                               temperature=0, max_tokens=64)
        self.assertEqual(finishes, [r2.choices[0].finish_reason])
        if not calls:
            self.assertEqual(text, r2.choices[0].message.content)

    def test_streamed_tool_call_matches(self):
        ref = self.chat(MEDIAN, tools=TOOLS, max_tokens=96).choices[0]
        self.assertEqual(ref.finish_reason, "tool_calls")
        chunks, text, finishes, calls = stream_chat(self.client, model=self.model, messages=MEDIAN, tools=TOOLS,
                                                    temperature=0, max_tokens=96)
        self.assertEqual(finishes, ["tool_calls"])
        self.assertFalse(text.strip(), f"content streamed besides the call: {text!r}")
        self.assertEqual(sorted(calls), list(range(len(ref.message.tool_calls))))
        for i, want in enumerate(ref.message.tool_calls):
            got = calls[i]
            self.assertEqual(got["id_count"], 1, "a call's id is sent once")
            self.assertEqual(got["name_count"], 1, "a call's name is sent once")
            self.assertTrue(got["id"])
            self.assertEqual(got["name"], want.function.name)
            self.assertEqual(json.loads(got["arguments"]), json.loads(want.function.arguments))
        # a client that accumulates the stream gets a well-formed call too (openai's helper)
        with self.client.chat.completions.stream(model=self.model, messages=MEDIAN, tools=TOOLS,
                                                 temperature=0, max_tokens=96) as s:
            final = s.get_final_completion()
        fc = final.choices[0]
        self.assertEqual(fc.finish_reason, "tool_calls")
        self.assertEqual(fc.message.tool_calls[0].function.name, ref.message.tool_calls[0].function.name)
        self.assertEqual(json.loads(fc.message.tool_calls[0].function.arguments),
                         json.loads(ref.message.tool_calls[0].function.arguments))

    def test_tool_choice_none(self):
        r = self.chat(MEDIAN, tools=TOOLS, tool_choice="none", max_tokens=96).choices[0]
        self.assertFalse(r.message.tool_calls)
        self.assertNotEqual(r.finish_reason, "tool_calls")
        _, _, finishes, calls = stream_chat(self.client, model=self.model, messages=MEDIAN, tools=TOOLS,
                                            tool_choice="none", temperature=0, max_tokens=96)
        self.assertEqual(calls, {})
        self.assertNotEqual(finishes, ["tool_calls"])
        # tool_choice "auto" is the default with tools
        auto = self.chat(MEDIAN, tools=TOOLS, tool_choice="auto", max_tokens=96).choices[0]
        dflt = self.chat(MEDIAN, tools=TOOLS, max_tokens=96).choices[0]
        self.assertEqual(auto.finish_reason, dflt.finish_reason)

    def test_logprobs(self):
        r = self.chat(WHO, max_tokens=12, logprobs=True, top_logprobs=3)
        c = r.choices[0]
        self.assertIsNotNone(c.logprobs, "logprobs requested")
        toks = c.logprobs.content
        self.assertTrue(toks)
        self.assertLessEqual(len(toks), r.usage.completion_tokens)
        self.assertEqual("".join(t.token for t in toks), c.message.content)
        for t in toks:
            self.assertLessEqual(t.logprob, 0.0)
            self.assertTrue(math.isfinite(t.logprob))
            self.assertEqual(len(t.top_logprobs), 3)
            tops = [a.logprob for a in t.top_logprobs]
            self.assertEqual(tops, sorted(tops, reverse=True), "top_logprobs best first")
            # greedy: the chosen token is the most likely one
            self.assertAlmostEqual(t.logprob, tops[0], places=4)
            self.assertEqual(t.token, t.top_logprobs[0].token)
            if t.bytes is not None:
                self.assertEqual(bytes(t.bytes), t.token.encode("utf-8"))
        # logprobs do not change the text
        self.assertEqual(c.message.content, self.chat(WHO, max_tokens=12).choices[0].message.content)
        # without logprobs: none
        self.assertIsNone(self.chat(WHO, max_tokens=4).choices[0].logprobs)
        # streamed: the chunks' logprobs concatenate to the same list
        got = []
        for chunk in self.client.chat.completions.create(model=self.model, messages=WHO, temperature=0, max_tokens=12,
                                                         logprobs=True, top_logprobs=3, stream=True):
            for ch in chunk.choices:
                if ch.logprobs and ch.logprobs.content:
                    got += [(t.token, round(t.logprob, 4)) for t in ch.logprobs.content]
        self.assertEqual(got, [(t.token, round(t.logprob, 4)) for t in toks])


if __name__ == "__main__":
    main()
