#!/usr/bin/env python3
"""Enforced structured output through the openai client: response_format json_schema and
json_object, tool_choice "required" and a named function, the grammar/regex extensions, and
the 400s for what cannot be enforced. Every output is checked with the `jsonschema` package
(tests/openai/requirements.txt) against the schema the request sent; the rate the same requests
reach without enforcement is printed beside it (the tiny model is weak: that rate is low, which
is what enforcement is for)."""
import json
import re
import sys
import urllib.request

import jsonschema
import openai

from common import TOOLS, ServerTestCase, main, parse_metrics, run_concurrently, stream_chat, user

# Simple to recursive; bounded so that a sampled document ends within max_tokens.
SCHEMAS = [
    {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 40}}, "required": ["answer"],
     "additionalProperties": False},
    {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "born": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b", "c"]}, "maxItems": 3}},
     "required": ["name", "age"], "additionalProperties": False},
    {"type": "object", "properties": {
        "unit": {"enum": ["km", "mi", "kg"]}, "value": {"type": "number"},
        "when": {"type": "string", "format": "date"}, "ok": {"type": "boolean"}, "note": {"type": ["string", "null"], "maxLength": 20}},
     "required": ["unit", "value", "when", "ok", "note"], "additionalProperties": False},
    {"type": "array", "items": {"type": "object", "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": 999},
        "label": {"type": "string", "pattern": "^[a-z]{1,8}$"}}, "required": ["id", "label"],
        "additionalProperties": False}, "minItems": 1, "maxItems": 4},
    {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer", "minimum": 0, "maximum": 9},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
        "required": ["v"], "additionalProperties": False}},
     "$ref": "#/$defs/node"},
]
PROMPTS = ["Reply in JSON.", "Describe a person as JSON.", "Give me some data.", "List a few items.", "Hello!"]
TOOL_PROMPTS = ["What is the median of 3, 10, 4 and 9?", "Convert 12 km to mi.", "What is 17*23?",
                "How many days from 2024-01-01 to 2024-03-01?", "What is the capital of France?", "Hello!",
                "Average of 2, 4 and 9?", "Tell me a joke."]
PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def valid(doc, schema):
    try:
        jsonschema.validate(doc, schema, format_checker=jsonschema.FormatChecker())
        return True
    except jsonschema.ValidationError:
        return False


def parse_and_validate(text, schema):
    try:
        return valid(json.loads(text), schema)
    except (ValueError, TypeError):
        return False


class StructuredOutput(ServerTestCase):
    def schema_chat(self, i, constrained, schema_index=None):
        k = i % len(SCHEMAS) if schema_index is None else schema_index
        kw = {}
        if constrained:
            kw["response_format"] = {"type": "json_schema", "json_schema": {"name": f"s{k}", "schema": SCHEMAS[k], "strict": True}}
        r = self.client.chat.completions.create(model=self.model, messages=user(PROMPTS[i % len(PROMPTS)]),
                                                temperature=1.0, seed=i, max_tokens=300, **kw)
        c = r.choices[0]
        return k, c.message.content or "", c.finish_reason

    def test_json_schema_200_outputs_validate(self):
        results = run_concurrently(lambda i: self.schema_chat(i, True), [(i,) for i in range(200)], workers=8)
        bad = [(k, text, fin) for k, text, fin in results if fin != "stop" or not parse_and_validate(text, SCHEMAS[k])]
        free = run_concurrently(lambda i: self.schema_chat(i, False), [(i,) for i in range(50)], workers=8)
        free_ok = sum(parse_and_validate(text, SCHEMAS[k]) for k, text, _ in free)
        sys.stderr.write(f"\nresponse_format json_schema: {200 - len(bad)}/200 valid enforced; "
                         f"{free_ok}/50 without enforcement\n")
        self.assertEqual(bad, [], "every enforced output parses and validates")

    def test_stream_json_schema(self):
        for k in range(len(SCHEMAS)):
            _, text, finishes, _ = stream_chat(
                self.client, model=self.model, messages=user("Data please."), temperature=1.0, seed=100 + k, max_tokens=300,
                response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMAS[k]}})
            self.assertEqual(finishes, ["stop"])
            self.assertTrue(parse_and_validate(text, SCHEMAS[k]), text)

    def test_json_object(self):
        outs = run_concurrently(lambda i: self.client.chat.completions.create(
            model=self.model, messages=user(PROMPTS[i % 5]), temperature=1.0, seed=i, max_tokens=300,
            response_format={"type": "json_object"}).choices[0], [(i,) for i in range(16)], workers=8)
        for c in outs:
            if c.finish_reason == "length":  # any object may be long; the prefix must still be one
                continue
            self.assertIsInstance(json.loads(c.message.content), dict, c.message.content)
        self.assertGreater(sum(c.finish_reason == "stop" for c in outs), 0)

    def tool_chat(self, i, choice):
        r = self.client.chat.completions.create(model=self.model, messages=user(TOOL_PROMPTS[i % len(TOOL_PROMPTS)]),
                                                tools=TOOLS, tool_choice=choice, temperature=0.8, seed=i, max_tokens=400)
        return r.choices[0]

    def calls_valid(self, c, only=None):
        calls = c.message.tool_calls or []
        if c.finish_reason != "tool_calls" or not calls:
            return False
        for tc in calls:
            if tc.function.name not in PARAMS or (only and tc.function.name != only):
                return False
            try:
                args = json.loads(tc.function.arguments)
            except ValueError:
                return False
            if not valid(args, PARAMS[tc.function.name]):
                return False
        return True

    def test_tool_choice_required(self):
        outs = run_concurrently(lambda i: self.tool_chat(i, "required"), [(i,) for i in range(100)], workers=8)
        bad = [(c.finish_reason, c.message.content, c.message.tool_calls) for c in outs if not self.calls_valid(c)]
        free = run_concurrently(lambda i: self.tool_chat(i, "auto"), [(i,) for i in range(48)], workers=8)
        free_ok = sum(self.calls_valid(c) for c in free)
        sys.stderr.write(f"\ntool_choice required: {100 - len(bad)}/100 with valid calls; "
                         f"{free_ok}/48 with tool_choice auto\n")
        self.assertEqual(bad, [])

    def test_named_function(self):
        for i, name in enumerate(["median", "lookup", "convert", "date_diff"]):
            c = self.tool_chat(i, {"type": "function", "function": {"name": name}})
            self.assertTrue(self.calls_valid(c, only=name), c.message)
            self.assertEqual(len(c.message.tool_calls), 1)  # a named function: one call

    def test_grammar_and_regex_extensions(self):
        for i in range(6):
            r = self.client.chat.completions.create(
                model=self.model, messages=user("Yes or no?"), temperature=1.0, seed=i, max_tokens=10,
                extra_body={"grammar": 'root ::= ("yes" | "no") ("!")?'})
            self.assertRegex(r.choices[0].message.content, r"^(yes|no)!?$")
            r = self.client.completions.create(model=self.model, prompt="Phone: ", temperature=1.0, seed=i,
                                               max_tokens=16, extra_body={"regex": "[0-9]{3}-[0-9]{4}"})
            self.assertRegex(r.choices[0].text, r"^[0-9]{3}-[0-9]{4}$")
            self.assertEqual(r.choices[0].finish_reason, "stop")

    def expect_400(self, fragment, **kw):
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.chat.completions.create(model=self.model, messages=user("hi"), max_tokens=8, **kw)
        self.assertIn(fragment, str(cm.exception))

    def test_refusals_name_what_is_wrong(self):
        self.expect_400("'if'", response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "object", "if": {"type": "object"}}}})
        self.expect_400("lookahead", extra_body={"regex": "a(?=b)"})
        self.expect_400("undefined_rule", extra_body={"grammar": "root ::= undefined_rule"})
        self.expect_400("Only one output constraint", response_format={"type": "json_object"}, extra_body={"regex": "a"})
        self.expect_400("no tool named", tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}})

    def test_metrics_count_constrained_requests(self):
        self.client.chat.completions.create(model=self.model, messages=user("hi"), max_tokens=40,
                                            response_format={"type": "json_object"})
        self.client.chat.completions.create(model=self.model, messages=user("hi"), max_tokens=40,
                                            response_format={"type": "json_object"})
        with urllib.request.urlopen(self.server.base_url.replace("/v1", "") + "/metrics", timeout=30) as r:
            m = parse_metrics(r.read().decode())
        self.assertGreaterEqual(m['moe_constrained_requests_total{kind="json_object"}'], 2)
        self.assertGreaterEqual(m["moe_grammar_cache_hits_total"], 1)
        self.assertGreaterEqual(m["moe_grammar_compiles_total"], 1)


if __name__ == "__main__":
    main()
