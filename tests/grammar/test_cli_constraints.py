#!/usr/bin/env python3
"""`moe run` with a constraint on models/tiny-moe: --json-schema, --json-object, --grammar, --regex and
--tool-calls outputs follow them whatever the seed and temperature, and a schema we cannot enforce
is one error line naming the keyword (exit 1), before the model loads."""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

try:
    import jsonschema
except ImportError:
    sys.exit("tests/grammar: the jsonschema package is missing: pip install -r tests/openai/requirements.txt "
             "(scripts/install-deps.sh does it)")

SOURCE_DIR = os.environ.get("MOE_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOE_BIN = os.environ.get("MOE_BIN") or os.path.join(SOURCE_DIR, "build", "tools", "moe")
TINY_MOE = os.path.join(SOURCE_DIR, "models", "tiny-moe")
PROMPT = "<|im_start|>user\nDescribe a person as JSON.<|im_end|>\n<|im_start|>assistant\n"
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 16},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120},
                                           "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2}},
          "required": ["name", "age"], "additionalProperties": False}


def run(*args, prompt=PROMPT, n=200):
    r = subprocess.run([MOE_BIN, "run", "--model", TINY_MOE, "--prompt", prompt, "--no-echo", "-t", "1", "-n", str(n)]
                       + list(args), capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout, r.stderr


class MoeRunConstraints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.schema = os.path.join(cls.tmp.name, "schema.json")
        with open(cls.schema, "w") as f:
            json.dump(SCHEMA, f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_json_schema_every_seed(self):
        for seed in range(1, 9):
            rc, out, err = run("--json-schema", self.schema, "--temp", "1.2", "--seed", str(seed))
            self.assertEqual(rc, 0, err)
            jsonschema.validate(json.loads(out), SCHEMA)
            self.assertIn("constraint: compiled", err)
            self.assertNotIn("not complete", err)

    def test_json_object_grammar_regex(self):
        rc, out, err = run("--json-object", "--temp", "0.8", "--seed", "3", n=400)
        self.assertEqual(rc, 0, err)
        if "not complete" not in err:
            self.assertIsInstance(json.loads(out), dict)
        gbnf = os.path.join(self.tmp.name, "g.gbnf")
        with open(gbnf, "w") as f:
            f.write('root ::= answer ("." | "!")\nanswer ::= "yes" | "no" | "maybe"\n')
        for seed in range(1, 5):
            rc, out, err = run("--grammar", gbnf, "--temp", "1.5", "--seed", str(seed), prompt="Answer: ")
            self.assertEqual(rc, 0, err)
            self.assertRegex(out, r"^(yes|no|maybe)[.!]$")
            rc, out, err = run("--regex", "[A-Z][a-z]{2,5} [0-9]{2}", "--temp", "1.5", "--seed", str(seed), prompt="Name: ")
            self.assertEqual(rc, 0, err)
            self.assertRegex(out, r"^[A-Z][a-z]{2,5} [0-9]{2}$")

    def test_tool_calls(self):
        tools = os.path.join(self.tmp.name, "tools.json")
        with open(tools, "w") as f:
            json.dump([{"type": "function", "function": {"name": "median", "parameters": {
                "type": "object", "properties": {"numbers": {"type": "array", "items": {"type": "number"}, "maxItems": 8}},
                "required": ["numbers"], "additionalProperties": False}}}], f)
        prompt = "<|im_start|>user\nWhat is the median of 3, 10, 4 and 9?<|im_end|>\n<|im_start|>assistant\n"
        rc, out, err = run("--tool-calls", tools, "--temp", "0", prompt=prompt)
        self.assertEqual(rc, 0, err)
        m = re.fullmatch(r"<tool_call>\n(.*)\n</tool_call>", out, re.S)
        self.assertTrue(m, out)
        call = json.loads(m.group(1))
        self.assertEqual(call["name"], "median")
        self.assertEqual(call["arguments"], {"numbers": [3, 10, 4, 9]})  # the model's own (correct) answer

    def test_refusals_are_one_line(self):
        bad = os.path.join(self.tmp.name, "bad.json")
        with open(bad, "w") as f:
            json.dump({"type": "object", "patternProperties": {"^x": {}}}, f)
        for args, needle in ((["--json-schema", bad], "patternProperties"),
                             (["--regex", "(a)\\1"], "backreference"),
                             (["--json-object", "--regex", "a"], "one of"),
                             (["--json-object", "--ignore-eos"], "--ignore-eos")):
            rc, out, err = run(*args)
            self.assertEqual(rc, 1, err)
            self.assertIn(needle, err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
