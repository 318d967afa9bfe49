#!/usr/bin/env python3
"""Errors as the OpenAI API reports them: the right HTTP status (so the openai client raises the
right exception) and a body {"error": {"message", "type", "param", "code"}}."""
import json

import openai

from common import ServerTestCase, main, raw_request, tiny_args, user

WHO = user("Who are you?")


class ErrorCase(ServerTestCase):
    def assert_error_body(self, err, status):
        self.assertEqual(err.status_code, status)
        self.assertIsInstance(err.body, dict, f"error body is not a JSON object: {err.body!r}")
        self.assertIsInstance(err.body.get("message"), str)
        self.assertTrue(err.body["message"])
        self.assertIsInstance(err.body.get("type"), str)
        for k in ("param", "code"):
            self.assertIn(k, err.body)  # present, may be null
        raw = json.loads(err.response.text)
        self.assertIn("error", raw)

    def assert_bad_request(self, **req):
        req.setdefault("model", self.model)
        req.setdefault("messages", WHO)
        req.setdefault("max_tokens", 8)
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.chat.completions.create(**req)
        self.assert_error_body(cm.exception, 400)
        return cm.exception

    def assert_raw_error(self, status, method, path, body, headers=None):
        st, hdrs, data = raw_request(self.server, method, path, body, headers)
        self.assertEqual(st, status, f"{method} {path} {body!r}: {data[:300]!r}")
        err = json.loads(data)["error"]
        self.assertIsInstance(err["message"], str)
        self.assertTrue(err["message"])
        self.assertIsInstance(err["type"], str)
        return err


class BadRequests(ErrorCase):
    def test_malformed_json(self):
        for body in (b'{"model": "m", "messages": [', b"not json at all", b"", b'{"messages": [{"role": "user", '
                     b'"content": "hi"}],}', b"\xff\xfe{}"):
            with self.subTest(body=body):
                err = self.assert_raw_error(400, "POST", "/v1/chat/completions", body)
                self.assertEqual(err["type"], "invalid_request_error")
        self.assert_raw_error(400, "POST", "/v1/completions", b'{"prompt": ')
        # a JSON value that is not an object
        self.assert_raw_error(400, "POST", "/v1/chat/completions", b"[1, 2, 3]")
        # the server is still fine
        self.assertTrue(self.client.chat.completions.create(model=self.model, messages=WHO, max_tokens=4).choices)

    def test_wrong_types(self):
        cases = [
            {"temperature": "hot"}, {"max_tokens": "ten"}, {"max_tokens": 0}, {"max_tokens": -5},
            {"messages": "Who are you?"}, {"messages": [{"role": "user", "content": 5}]},
            {"messages": [{"role": "user"}]}, {"messages": []}, {"messages": [{"content": "hi"}]},
            {"stream": "yes"}, {"stop": 7}, {"top_p": "x"}, {"seed": "abc"}, {"tools": {"type": "function"}},
            {"logprobs": "yes"},
        ]
        for extra in cases:
            with self.subTest(extra=extra):
                self.assert_bad_request(extra_body=extra)

    def test_out_of_range(self):
        for extra in ({"temperature": 3}, {"temperature": -1}, {"top_p": 1.5}, {"top_logprobs": 100, "logprobs": True},
                      {"presence_penalty": 5}, {"frequency_penalty": -3}):
            with self.subTest(extra=extra):
                self.assert_bad_request(extra_body=extra)

    def test_unknown_role(self):
        e = self.assert_bad_request(messages=[{"role": "wizard", "content": "hi"}])
        self.assertIn("role", (e.body.get("param") or "") + e.body["message"])

    def test_n_2(self):
        e = self.assert_bad_request(n=2)
        self.assertEqual(e.body.get("param"), "n")
        with self.assertRaises(openai.BadRequestError):
            self.client.completions.create(model=self.model, prompt="def f(", max_tokens=4, n=2)
        # n=1 is fine
        self.assertEqual(len(self.client.chat.completions.create(model=self.model, messages=WHO, max_tokens=4,
                                                                 n=1).choices), 1)

    def test_prompt_over_context(self):
        long_text = "hello world " * 1500  # about 3000 tokens; the model's context is 1024
        e = self.assert_bad_request(messages=user(long_text))
        self.assertEqual(e.code, "context_length_exceeded")
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.completions.create(model=self.model, prompt=long_text, max_tokens=4)
        self.assertEqual(cm.exception.code, "context_length_exceeded")
        # streamed: still an HTTP 400 before any event
        with self.assertRaises(openai.BadRequestError):
            for _ in self.client.chat.completions.create(model=self.model, messages=user(long_text), max_tokens=4,
                                                         stream=True):
                pass
        # prompt + max_tokens over the context
        self.assert_bad_request(max_tokens=5000)

    def test_not_found(self):
        with self.assertRaises(openai.NotFoundError) as cm:
            self.client.models.retrieve("no-such-model")
        self.assert_error_body(cm.exception, 404)
        with self.assertRaises(openai.NotFoundError):
            self.client.post("/no/such/endpoint", cast_to=object, body={})
        self.assert_raw_error(404, "GET", "/v1/nothing-here", None)

    def test_server_survives(self):
        # after all of the above, a plain request still works
        r = self.client.chat.completions.create(model=self.model, messages=WHO, max_tokens=4)
        self.assertEqual(len(r.choices), 1)


class Authentication(ErrorCase):
    API_KEY = "sk-test-0123456789"
    SERVER_ARGS = tiny_args()

    def test_wrong_key(self):
        bad = openai.OpenAI(base_url=self.server.base_url, api_key="sk-wrong", max_retries=0)
        with self.assertRaises(openai.AuthenticationError) as cm:
            bad.chat.completions.create(model=self.model, messages=WHO, max_tokens=4)
        self.assert_error_body(cm.exception, 401)
        with self.assertRaises(openai.AuthenticationError):
            bad.models.list()
        with self.assertRaises(openai.AuthenticationError):
            bad.completions.create(model=self.model, prompt="x", max_tokens=2)
        with self.assertRaises(openai.AuthenticationError):
            for _ in bad.chat.completions.create(model=self.model, messages=WHO, max_tokens=4, stream=True):
                pass

    def test_missing_key(self):
        self.assert_raw_error(401, "POST", "/v1/chat/completions",
                              json.dumps({"model": self.model, "messages": WHO, "max_tokens": 4}).encode())
        self.assert_raw_error(401, "GET", "/v1/models", None)
        self.assert_raw_error(401, "POST", "/v1/chat/completions",
                              json.dumps({"model": self.model, "messages": WHO}).encode(),
                              {"Authorization": "Basic " + self.API_KEY})

    def test_right_key(self):
        r = self.client.chat.completions.create(model=self.model, messages=WHO, max_tokens=4)
        self.assertEqual(len(r.choices), 1)


if __name__ == "__main__":
    main()
