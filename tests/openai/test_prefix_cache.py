#!/usr/bin/env python3
"""Prefix reuse: a request that shares a prefix with an earlier one, finished or still running,
reports usage.prompt_tokens_details.cached_tokens > 0 and gives the same output as a server with
--prefix-cache 0 (which reports 0 cached tokens)."""
from common import MOE_BIN, MoeServer, ServerTestCase, main, make_client, run_concurrently, tiny_args

SYSTEM = {"role": "system", "content": "You are a helpful assistant. Tools: calculator, median, mean, convert, date_diff, lookup."}
HISTORY = [SYSTEM]
for q, a in [("Hello!", "Hello! How can I help you today?"),
             ("Who are you?", "I am a tiny assistant that can use tools such as a calculator, statistics, unit "
                              "conversion, date arithmetic and a lookup table."),
             ("What can you do?", "I can call tools: calculator, median, mean, convert, date_diff and lookup."),
             ("Good morning.", "Good morning! How can I help?"),
             ("Thank you, that helps.", "Glad I could help.")]:
    HISTORY += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


class PrefixCache(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()  # prefix cache on (the default)
        cls.nocache = MoeServer(MOE_BIN, tiny_args("--prefix-cache", "0"))
        cls.nocache.start()
        cls.addClassCleanup(cls.nocache.cleanup)
        cls.nc_client = make_client(cls.nocache)

    def ask(self, client, messages, **kw):
        return client.chat.completions.create(model=self.model, messages=messages, temperature=0,
                                              max_tokens=kw.pop("max_tokens", 24), **kw)

    def test_identical_request_reuses_prefix(self):
        msgs = HISTORY + [{"role": "user", "content": "Hi there."}]
        first = self.ask(self.client, msgs)
        second = self.ask(self.client, msgs)
        ref = self.ask(self.nc_client, msgs)
        self.assertGreater(second.usage.prompt_tokens_details.cached_tokens, 0)
        self.assertLessEqual(second.usage.prompt_tokens_details.cached_tokens, second.usage.prompt_tokens)
        self.assertEqual(second.usage.prompt_tokens, first.usage.prompt_tokens)
        self.assertEqual(ref.usage.prompt_tokens_details.cached_tokens, 0)
        self.assertEqual(second.choices[0].message.content, first.choices[0].message.content)
        self.assertEqual(second.choices[0].message.content, ref.choices[0].message.content)

    def test_shared_prefix_next_turn(self):
        # turn 1, then turn 2 = turn 1 + the answer + a new question: turn 2's prompt starts with
        # turn 1's whole prompt
        t1 = HISTORY[:5] + [{"role": "user", "content": "What is the median of 3, 10, 4 and 9?"}]
        r1 = self.ask(self.client, t1, max_tokens=48)
        t2 = t1 + [{"role": "assistant", "content": r1.choices[0].message.content or ""},
                   {"role": "user", "content": "Thanks!"}]
        r2 = self.ask(self.client, t2)
        ref2 = self.ask(self.nc_client, t2)
        self.assertGreater(r2.usage.prompt_tokens_details.cached_tokens, 0, "turn 2 reuses turn 1's prefix")
        self.assertLessEqual(r2.usage.prompt_tokens_details.cached_tokens, r2.usage.prompt_tokens)
        self.assertEqual(ref2.usage.prompt_tokens_details.cached_tokens, 0)
        self.assertEqual(r2.usage.prompt_tokens, ref2.usage.prompt_tokens)
        self.assertEqual(r2.choices[0].message.content, ref2.choices[0].message.content)
        self.assertEqual(r2.choices[0].finish_reason, ref2.choices[0].finish_reason)

    def test_streamed_usage_reports_cached_tokens(self):
        msgs = HISTORY + [{"role": "user", "content": "Who are you?"}]
        self.ask(self.client, msgs)
        usage = None
        text = []
        for chunk in self.client.chat.completions.create(model=self.model, messages=msgs, temperature=0, max_tokens=24,
                                                         stream=True, stream_options={"include_usage": True}):
            if chunk.usage:
                usage = chunk.usage
            for ch in chunk.choices:
                text.append(ch.delta.content or "")
        self.assertIsNotNone(usage)
        self.assertGreater(usage.prompt_tokens_details.cached_tokens, 0)
        self.assertEqual("".join(text), self.ask(self.nc_client, msgs).choices[0].message.content)

    def test_concurrent_shared_prefix(self):
        # 6 requests that share the long prefix, sent together after it was cached: every output
        # equals the uncached server's
        questions = ["Hello!", "Who are you?", "What can you do?", "Thanks!", "Good morning.", "Hi there."]
        msgs = [HISTORY + [{"role": "user", "content": q}] for q in questions]
        self.ask(self.client, msgs[0])
        got = run_concurrently(lambda m: self.ask(self.client, m), [(m,) for m in msgs])
        want = [self.ask(self.nc_client, m).choices[0].message.content for m in msgs]
        self.assertEqual([g.choices[0].message.content for g in got], want)
        self.assertTrue(any(g.usage.prompt_tokens_details.cached_tokens > 0 for g in got))

    def test_together_with_a_new_preamble(self):
        # 6 requests sent at once with a long system prompt no request had before: the first
        # computes it, the others reuse it from a running request (or, if one finished first, from
        # the cache); every output equals the uncached server's
        system = {"role": "system", "content": "You are a careful assistant for a warehouse team. " +
                  " ".join(f"Rule {i}: check shelf {i * 7 % 31} before answering." for i in range(40))}
        questions = ["Hello!", "Who are you?", "What can you do?", "Thanks!", "Good morning.", "Hi there."]
        msgs = [[system, {"role": "user", "content": q}] for q in questions]
        got = run_concurrently(lambda m: self.ask(self.client, m), [(m,) for m in msgs])
        want = [self.ask(self.nc_client, m).choices[0].message.content for m in msgs]
        self.assertEqual([g.choices[0].message.content for g in got], want)
        cached = [g.usage.prompt_tokens_details.cached_tokens for g in got]
        self.assertGreaterEqual(sum(c > 100 for c in cached), len(msgs) - 1, cached)


if __name__ == "__main__":
    main()
