#!/usr/bin/env python3
"""Property and completeness tests of the JSON Schema constraint, through `moe grammar` (no model
run: the mask alone, over a model's tokenizer).

- Soundness: random schemas from a seeded generator; `moe grammar --samples` draws documents
  token by token through the mask with random logits; every finished one must parse as JSON and
  validate under the schema with the `jsonschema` package (formats checked too).
- Completeness: hand-made schemas and documents written by json.dumps in the forms the whitespace
  policy allows (compact and ", "/": " separators; indent=2 when flexible; \\uXXXX escapes and raw
  UTF-8); `moe grammar --check` must pass each token by token, with the tokenizers of
  models/tiny-moe, tests/fixtures/qwen3_moe and (when present) build/qwen-vocab. Documents the
  grammar must refuse show that the check can fail.
- Determinism: the same seeds give the same samples.

Environment (ctest sets both): MOE_BIN (default build/tools/moe), MOE_SOURCE_DIR (default two
levels above this file). By hand: python3 tests/grammar/test_schema_properties.py
"""
import collections
import concurrent.futures
import datetime
import functools
import ipaddress
import itertools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import unittest

try:
    from jsonschema import Draft202012Validator, FormatChecker
except ImportError:  # a failure, not a skip: CI must have it (scripts/install-deps.sh installs it)
    sys.exit("tests/grammar/test_schema_properties.py: the jsonschema package is missing: "
             "pip install -r tests/openai/requirements.txt (scripts/install-deps.sh does it)")

SOURCE_DIR = os.environ.get("MOE_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOE_BIN = os.environ.get("MOE_BIN") or os.path.join(SOURCE_DIR, "build", "tools", "moe")
TINY_MOE = os.path.join(SOURCE_DIR, "models", "tiny-moe")
QWEN_FIXTURE = os.path.join(SOURCE_DIR, "tests", "fixtures", "qwen3_moe")
QWEN_VOCAB = os.path.join(SOURCE_DIR, "build", "qwen-vocab")  # scripts/qwen-vocab.py; optional
JOBS = 2                       # the CI machine has 2 cores
SCHEMA_SEEDS = range(1000, 1072)  # 72 random schemas, each sampled compact and flexible
SAMPLES, MAX_TOKENS = 20, 600
MIN_FINISHED = 0.5             # per schema, over both whitespace policies

# ---------------------------------------------------------------- formats, checked strictly here
# (jsonschema's own checker is also applied where the installed version has one; date-time and
# time need the optional rfc3339-validator there, so without this they would pass unchecked).
_TIME = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|[+-]([0-9]{2}):([0-9]{2}))")
_EMAIL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL_LABEL = r"[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*"
_EMAIL = re.compile(rf"{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*@{_EMAIL_LABEL}(?:\.{_EMAIL_LABEL})+")


def _parses(parse, s):
    try:
        parse(s)
        return True
    except ValueError:
        return False


def _date_ok(s):
    return bool(re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", s)) and _parses(datetime.date.fromisoformat, s)


def _time_ok(s):
    m = _TIME.fullmatch(s)
    return bool(m) and int(m[1]) < 24 and int(m[2]) < 60 and int(m[3]) <= 60 and (m[5] in "Zz" or (int(m[6]) < 24 and int(m[7]) < 60))


OWN_FORMATS = {
    "date": _date_ok,
    "time": _time_ok,
    "date-time": lambda s: len(p := re.split("[Tt]", s, maxsplit=1)) == 2 and _date_ok(p[0]) and _time_ok(p[1]),
    "uuid": lambda s: bool(re.fullmatch(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", s)),
    "email": lambda s: bool(_EMAIL.fullmatch(s)),
    "ipv4": lambda s: _parses(ipaddress.IPv4Address, s),
}


def format_checker():
    fc = FormatChecker()
    fc.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)  # draft 2020-12's "time", not draft 3's
    for name, mine in OWN_FORMATS.items():
        theirs = fc.checkers.get(name)

        def both(inst, mine=mine, theirs=theirs):
            if not isinstance(inst, str):
                return True
            if not mine(inst):
                return False
            if theirs:
                func, raises = theirs
                try:
                    return bool(func(inst))
                except raises:
                    return False
            return True
        fc.checkers[name] = (both, ())
    return fc


FORMAT_CHECKER = format_checker()


def validator(schema):
    return Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


def strict_loads(text):
    """JSON with no NaN/Infinity; also returns the objects that repeat a key."""
    dups = []

    def pairs(ps):
        keys = [k for k, _ in ps]
        if len(set(keys)) != len(keys):
            dups.append(keys)
        return dict(ps)

    def no_constant(c):
        raise ValueError(f"not JSON: {c}")
    return json.loads(text, object_pairs_hook=pairs, parse_constant=no_constant), dups


# ---------------------------------------------------------------- the random schema generator
KEYS = ["id", "name", "a", "b", "value", "items", "type", "é", "中文", "with space", 'quo"te', "slash/", "x_1", "Z"]
STRINGS = ["", "a", "é", "中文", "😀", 'say "hi"', "back\\slash", "tab\there", "new\nline", "slash/", '",', '"}', "  "]
# Anchored at the end (or open at both ends only after a ^prefix): a search pattern open at the
# start but not at the end is only finished by luck (the random walk must end on its text).
PATTERNS = [r"^[a-z]{1,6}$", r"^\d{3}-\d{4}$", r"^(foo|bar)+$", r"^ab", r"^[A-Z][a-z0-9_]{0,5}$",
            r"^\w{1,4}@\w{1,4}\.com$", r"^[0-9a-f]{8}$", r"^(\+|-)?[0-9]{1,4}(\.[0-9]{1,2})?$", r"^.{2,4}$",
            r"^\s?[^\s]{1,3}$", r"^(a|b|c)*$", r"^é+中?$", r"^[^a-z]{0,3}$", r"^x+(-y+)*$"]
FORMATS = ["date", "date-time", "uuid", "email", "time", "ipv4"]
THEMES = ["object", "array", "string", "integer", "types", "enum", "const", "any_of", "one_of", "all_of", "ref", "recursive",
          "root_recursive", "prefix", "formats", "patterns", "ap_true", "ap_schema", "any"]
ONE_OF_TYPES = ["object", "array", "string", "integer", "boolean", "null"]  # pairwise disjoint


def json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int) or (isinstance(v, float) and v == int(v) and abs(v) < 9e18):  # the compiler's integers
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}[type(v)]


class SchemaGen:
    """Random schemas within what the compiler supports (serve/grammar/json_schema.h), bounded so
    that random walks finish: nesting depth 3, maxItems / maxLength on most arrays and strings."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        self.defs = {}
        self.building = set()

    def root(self, theme):
        """theme: the root's kind (one of THEMES), so that every feature comes up several times."""
        r = self.r
        if theme == "root_recursive":  # recursion through the root
            s = {"type": "object", "properties": {"v": self.integer(), "next": {"$ref": "#"}},
                 "required": ["v"], "additionalProperties": False}
        elif theme == "formats":
            names = r.sample(FORMATS, r.randint(2, len(FORMATS)))
            s = {"type": "object", "properties": {f: {"type": "string", "format": f} for f in names},
                 "required": [f for f in names if r.random() < 0.6], "additionalProperties": False}
        elif theme == "patterns":
            pats = r.sample(PATTERNS, r.randint(2, 4))
            s = {"type": "object", "properties": {f"p{i}": {"type": "string", "pattern": p} for i, p in enumerate(pats)},
                 "required": [f"p{i}" for i in range(len(pats)) if r.random() < 0.6], "additionalProperties": False}
        elif theme in ("ap_true", "ap_schema"):
            s = self.object(0, True, ap=theme[3:])
        elif theme == "prefix":
            s = self.array(0, True, n_prefix=r.randint(1, 3))
        elif theme in ("object", "array", "string", "integer"):
            s = self.typed(theme, 0)
        elif theme == "any":
            s = self.any(0)
        else:
            s = getattr(self, "k_" + theme)(0)
        return {"$defs": self.defs, **s} if self.defs else s

    def any(self, depth):
        kinds = {"null": 1, "boolean": 2, "integer": 4, "number": 2, "string": 7, "types": 2, "enum": 3,
                 "const": 2, "any_of": 2, "one_of": 2}
        if depth < 3:
            kinds.update({"object": 7, "array": 5, "all_of": 2, "ref": 2, "recursive": 1})
        kind = self.r.choices(list(kinds), weights=list(kinds.values()))[0]
        if kind in ("null", "boolean", "integer", "number", "string", "object", "array"):
            return self.typed(kind, depth)
        return getattr(self, "k_" + kind)(depth)

    def typed(self, t, depth, explicit=False):
        """A schema of type t; explicit: with "type" (else objects/arrays may leave it implied)."""
        make = {"integer": self.integer, "string": self.string, "object": lambda: self.object(depth, explicit),
                "array": lambda: self.array(depth, explicit)}.get(t)
        return make() if make else {"type": t}

    def integer(self):
        r, s = self.r, {"type": "integer"}
        lo = r.choice([r.randint(-1000, 1000), -2**40, 0, 1, 2**31])
        hi = lo + r.choice([0, 1, 9, 10, 99, 1000, 10**6])
        side = r.choice(["none", "min", "max", "both", "both", "exclusive", "float"])
        s.update({"none": {}, "min": {"minimum": lo}, "max": {"maximum": hi}, "both": {"minimum": lo, "maximum": hi},
                  "exclusive": {"exclusiveMinimum": lo - 1, "exclusiveMaximum": hi + 1},
                  "float": {"minimum": lo - 0.5, "maximum": hi + 0.25}}[side])
        return s

    def string(self):
        r, s = self.r, {"type": "string"}
        v = r.random()
        if v < 0.4:
            lo = r.randint(0, 3)
            s["maxLength"] = lo + r.randint(0, 6)
            if r.random() < 0.5:
                s["minLength"] = lo
        elif v < 0.6:
            s["pattern"] = r.choice(PATTERNS)
        elif v < 0.85:
            s["format"] = r.choices(FORMATS, weights=[3, 3, 3, 1, 3, 3])[0]  # emails are long
        elif v < 0.9:
            s["minLength"] = r.randint(0, 2)
        return s  # else: any string

    def object(self, depth, explicit=False, ap=None):
        r = self.r
        keys = r.sample(KEYS, r.randint(0, 4))
        props = {k: self.any(depth + 1) for k in keys}
        if keys and r.random() < 0.1:
            props[keys[-1]] = False  # must be absent
        required = [k for k in keys if props[k] is not False and r.random() < 0.5]
        s = {"type": "object"} if explicit or r.random() < 0.8 else {}  # else implied by the keywords
        if props or r.random() < 0.5:
            s["properties"] = props
        # true: extra members with free keys and any values, long random walks: only near the root
        ap = ap or r.choices(["absent", "false", "true", "schema"], weights=[35, 35, 10 if depth < 2 else 0, 20])[0]
        if ap == "false":
            s["additionalProperties"] = False
        elif ap == "true":
            s["additionalProperties"] = True
        elif ap == "schema":
            s["additionalProperties"] = r.choice([{"type": "integer"}, {"type": "boolean"},
                                                  {"type": "string", "maxLength": 4}, {"enum": [1, "x", None]}])
        if ap != "false" and r.random() < 0.2:
            required.append("req_extra")  # required but not declared: additionalProperties' schema
        if required:
            s["required"] = required
        if not s:
            s["type"] = "object"
        return s

    def array(self, depth, explicit=False, n_prefix=None):
        r = self.r
        s = {"type": "array"} if explicit or r.random() < 0.8 else {}
        n_prefix = r.choice([0, 0, 0, 1, 2, 3]) if n_prefix is None else n_prefix
        if n_prefix:
            s["prefixItems"] = [self.any(depth + 1) for _ in range(n_prefix)]
            items = r.choice(["false", "schema", "schema", "absent"])
            if items == "false":
                s["items"] = False
            elif items == "schema":
                s["items"] = self.any(depth + 1)
        else:
            s["items"] = self.any(depth + 1)
        lo = r.randint(0, min(2, n_prefix) if s.get("items") is False else 2)
        if r.random() < 0.5:
            s["minItems"] = lo
        if r.random() < 0.85:
            s["maxItems"] = lo + r.randint(0, 3)
        if r.random() < 0.1:
            s["uniqueItems"] = False
        if not s:
            s["type"] = "array"
        return s

    def k_types(self, depth):
        r = self.r
        types = r.sample(["string", "integer", "boolean", "null", "number", "array", "object"], r.randint(2, 3))
        s = {"type": types}
        if "string" in types and r.random() < 0.6:
            s["maxLength"] = r.randint(0, 6)
        if "integer" in types and "number" not in types and r.random() < 0.6:
            s.update(minimum=-50, maximum=r.randint(-50, 500))
        if "array" in types:
            s.update(items=self.any(min(depth + 1, 3)), maxItems=r.randint(0, 3))
        if "object" in types:
            keys = r.sample(KEYS, r.randint(1, 3))
            s.update(properties={k: self.any(min(depth + 1, 3)) for k in keys}, additionalProperties=False)
        return s

    def literal(self, depth=0):
        r = self.r
        k = r.random()
        if depth < 2 and k < 0.1:
            return [self.literal(depth + 1) for _ in range(r.randint(0, 2))]
        if depth < 2 and k < 0.2:
            return {r.choice(KEYS): self.literal(depth + 1) for _ in range(r.randint(0, 2))}
        return r.choice([r.choice(STRINGS), r.choice(STRINGS), r.randint(-100, 10**6), r.choice([0.5, -2.25, 0.001, 2.0, 1e21]),
                         r.choice([True, False]), None])

    def k_enum(self, depth):
        values, seen = [], set()
        for _ in range(self.r.randint(1, 5)):
            v = self.literal()
            key = json.dumps(v, sort_keys=True)
            if key not in seen:
                seen.add(key)
                values.append(v)
        s = {"enum": values}
        if self.r.random() < 0.3:
            s = {"type": json_type(self.r.choice(values)), **s}
        return s

    def k_const(self, depth):
        v = self.literal()
        return {"type": json_type(v), "const": v} if self.r.random() < 0.3 else {"const": v}

    def k_any_of(self, depth):
        return {"anyOf": [self.any(depth + 1) for _ in range(self.r.randint(2, 3))]}

    def k_one_of(self, depth):
        # The grammar treats oneOf as anyOf: branches of different types, so exactly one matches.
        return {"oneOf": [self.typed(t, depth + 1, True) for t in self.r.sample(ONE_OF_TYPES, self.r.randint(2, 3))]}

    def k_all_of(self, depth):
        r = self.r
        keys = r.sample(KEYS, r.randint(2, 4))
        half = r.randint(1, len(keys) - 1)
        a = {"type": "object", "properties": {k: self.any(depth + 1) for k in keys[:half]}}
        b = {"properties": {k: self.any(depth + 1) for k in keys[half:]}}
        for part in (a, b):
            req = [k for k in part["properties"] if r.random() < 0.5]
            if req:
                part["required"] = req
        if r.random() < 0.5:  # a key in both branches: its schemas intersect
            lo = r.randint(-20, 20)
            a["properties"]["both"] = {"type": "integer", "minimum": lo}
            b["properties"]["both"] = {"type": "integer", "maximum": lo + r.randint(0, 30)}
        if r.random() < 0.4:
            name = f"base{len(self.defs)}"
            self.defs[name] = a
            a = {"$ref": f"#/$defs/{name}"}
        return {"allOf": [a, b]}

    def k_ref(self, depth):
        done = sorted(set(self.defs) - self.building)  # not one being generated: {"$ref": itself}
        if done and self.r.random() < 0.4:
            return {"$ref": "#/$defs/" + self.r.choice(done)}
        name = f"d{len(self.defs)}"
        self.defs[name] = {}  # reserved: the target may itself add definitions
        self.building.add(name)
        self.defs[name] = self.any(depth + 1)
        self.building.discard(name)
        return {"$ref": f"#/$defs/{name}"}

    def k_recursive(self, depth):
        self.defs["node"] = {"type": "object", "properties": {
            "value": self.integer(),
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
            "required": ["value"], "additionalProperties": False}
        return {"$ref": "#/$defs/node"}


def gen_schema(seed):
    return SchemaGen(seed).root(THEMES[seed % len(THEMES)])


# ---------------------------------------------------------------- running moe grammar
class Moe:
    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="moe-grammar-props-")
        self.n = itertools.count()  # next() is atomic: files are also made from worker threads

    def file(self, text, ext):
        path = os.path.join(self.tmp.name, f"{next(self.n)}.{ext}")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def schema_file(self, schema):
        return self.file(json.dumps(schema, ensure_ascii=False), "json")

    @staticmethod
    def run(args):
        p = subprocess.run([MOE_BIN, "grammar"] + args, capture_output=True, timeout=300)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def sample(self, schema_path, flexible, seed, samples=SAMPLES, model=TINY_MOE):
        args = ["--model", model, "--json-schema", schema_path, "--samples", str(samples), "--seed", str(seed),
                "--max-tokens", str(MAX_TOKENS)] + (["--flexible-whitespace"] if flexible else [])
        return self.run(args)

    def check(self, model, schema_path, flexible, texts):
        """The per-line results of --check, one per text (exit status aside: 1 when one fails)."""
        docs = self.file("".join(json.dumps(t) + "\n" for t in texts), "jsonl")
        args = ["--model", model, "--json-schema", schema_path, "--check", docs] + (["--flexible-whitespace"] if flexible else [])
        rc, out, err = self.run(args)
        lines = [json.loads(x) for x in out.split("\n") if x.strip()]  # not splitlines(): U+2028 is raw
        if len(lines) != len(texts):
            raise AssertionError(f"moe grammar --check ({model}) gave {len(lines)} results for {len(texts)} documents, "
                                 f"exit {rc}: {err.strip()}")
        return lines


def parallel(fn, items):
    with concurrent.futures.ThreadPoolExecutor(JOBS) as ex:
        return list(ex.map(fn, items))


@functools.lru_cache(maxsize=None)
def models():
    out = (TINY_MOE, QWEN_FIXTURE)
    if os.path.exists(os.path.join(QWEN_VOCAB, "tokenizer.json")):
        out += (QWEN_VOCAB,)
    else:
        print(f"grammar_schema_properties: {QWEN_VOCAB}/tokenizer.json is absent (scripts/qwen-vocab.py makes it): "
              "the completeness checks skip the real Qwen vocabulary", file=sys.stderr)
    return out


# ---------------------------------------------------------------- hand-made schemas and documents
# A document written only with raw UTF-8 (ensure_ascii=False): the grammar writes declared keys,
# extra keys and enum/const values in one canonical form, so \uXXXX there is refused.
Raw = collections.namedtuple("Raw", "value")
# A document given as text (forms json.dumps does not write: 1e5, -0, \/, upper-case hex);
# compact=False: only under the flexible policy.
Text = collections.namedtuple("Text", "text compact", defaults=(True,))


TRICKY = ["", '"', "\\", "\n\t\r\b\f", "/", "a/b", "é", "中文", "😀", "emoji😀mix", '",', '"}', '"}}\n', '{"', '":',
          '\n  "', '",\n  "k": 1}', "\u0001\u001f", "\u007f", "\u2028", "end\\"]
NODE = {"type": "object", "properties": {"value": {"type": "integer"},
        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["value"], "additionalProperties": False}
PERSON = {"type": "object", "properties": {
    "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "email": {"type": "string", "format": "email"}, "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
    "address": {"type": "object", "properties": {"street": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["street"], "additionalProperties": False}},
    "required": ["name", "age"], "additionalProperties": False}
FORMATS_OBJ = {"type": "object", "properties": {f: {"type": "string", "format": f} for f in FORMATS},
               "required": FORMATS, "additionalProperties": False}

HAND = {  # name: (schema, documents, \/ allowed in every string)
    "person": (PERSON, [
        {"name": "Zoë \"Z\" O'Neil", "age": 0},
        {"name": "中文 😀", "age": 150, "email": "a.b+c@example.co.uk", "tags": ["x", '",', '"}', '\n  "k": 1'],
         "address": {"street": "1 Main St\\\n", "zip": "01234"}},
        {"name": "", "age": 42, "tags": []}], True),
    "strings": ({"type": "array", "items": {"type": "string"}}, [TRICKY, [], [s * 3 for s in TRICKY[:8]],
                Text(r'["\u00E9\uD83D\uDE00\u00e9","\/\/","\ud83d\ude00"]')], True),
    "numbers": ({"type": "array", "items": {"type": "number"}}, [
        [0, -1, 1.5, -2.5e-3, 1e21, 123456789012345678901234567890, 0.000001],
        Text("[1e5,-2.5E-3,-0,-0.0,1.5e+10,1E-7,0.0e0,-1e-0]"), Text("[1e5, -2.5E-3, -0]")], False),
    "nested": ({"$defs": {"t": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"$ref": "#/$defs/t"}}]}},
                "$ref": "#/$defs/t"}, [[[1, [2, []]]], [], 5, [[[[[]]]]], [1, 2, [3, [4, [5]]]]], False),
    "enum_const": ({"type": "object", "properties": {
        "kind": {"enum": ["a", 'b"c', 1, 2.5, None, True, {"x": [1, 2]}, ["é"]]}, "v": {"const": "fixed/1"},
        "t": {"type": "integer", "enum": [1, "s", 3]}}, "required": ["v"], "additionalProperties": False},
        [{"v": "fixed/1"}, {"kind": {"x": [1, 2]}, "v": "fixed/1", "t": 3}, {"kind": 'b"c', "v": "fixed/1"},
         {"kind": None, "v": "fixed/1", "t": 1}, Raw({"kind": ["é"], "v": "fixed/1"})], False),
    "one_of": ({"type": "array", "items": {"oneOf": [
        {"type": "string", "maxLength": 5}, {"type": "integer", "minimum": -3, "maximum": 1000}, {"type": "null"},
        {"type": "object", "properties": {"k": {"type": "boolean"}}, "required": ["k"], "additionalProperties": False}]},
        "minItems": 1, "maxItems": 6}, [["abcde", -3, 1000, None, {"k": True}], ["é中😀"], [0], ['"}', "\n"]], True),
    "formats": (FORMATS_OBJ, [
        {"date": "2024-02-29", "date-time": "2023-12-31T23:59:59.123+05:30", "uuid": "123e4567-e89b-12d3-a456-426614174000",
         "email": "first.last@sub.example.org", "time": "08:00:00Z", "ipv4": "192.168.0.1"},
        {"date": "2000-02-29", "date-time": "1999-01-01T00:00:00Z", "uuid": "123E4567-E89B-12D3-A456-426614174000",
         "email": "x@y.io", "time": "23:59:59.5-01:00", "ipv4": "0.0.0.0"}], False),
    "all_of": ({"allOf": [{"$ref": "#/$defs/base"}, {"type": "object", "properties": {
        "extra": {"type": "array", "items": {"type": "integer"}}}, "required": ["extra"]}],
        "$defs": {"base": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1}}, "required": ["id"]}}},
        [{"id": 1, "extra": []}, {"id": 99, "extra": [1, -2, 3]}], False),
    "extra_props": ({"type": "object", "properties": {"fixed": {"type": "boolean"}},
                     "additionalProperties": {"type": "string", "maxLength": 10}},
                    [{}, {"fixed": True}, {"other": "x"}, {"fixed": False, "fixe": "", "fixedX": "y", "": "empty"},
                     Raw({"fixed": True, "中文键": "值", "é": "😀"})], False),
    "any": (True, [{"a": [1, {"b": None}], "c": '",\n  "d": 1}', "é": "😀"}, [], "x", 1.5e3, None, True,
                   {"nested": {"deeper": [[], {}, [{"k": "v/w"}]]}}, Text("[1E5,-0]"), Text('{"k":{"k":"v"}}'),
                   Text('{"k":{"k":"v"}}\n', compact=False)], True),
    "recursive": ({"$defs": {"node": NODE}, "$ref": "#/$defs/node"},
                  [{"value": 1}, {"value": -5, "children": [{"value": 2, "children": []}, {"value": 3, "children": [{"value": 4}]}]}],
                  False),
    "tuple": ({"type": "array", "prefixItems": [{"type": "string", "format": "date"}, {"type": "integer"}, {"type": "boolean"}],
               "items": False, "minItems": 1}, [["2024-01-01"], ["2024-01-01", 5, True], ["1970-12-31", -7]], False),
    "lengths": ({"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 3}},
                [["é", "中文字", "a\"\\", "\n\t"], Raw(["😀😀😀", "a😀"])], False),
}

# Documents the grammar must refuse: (schema name, flexible, text, why). Some are valid under the
# schema but outside the policy (key order, whitespace): the grammar accepts a subset.
MUST_FAIL = [
    ("person", False, '{"age":1,"name":"x"}', "wrong key order"),
    ("person", False, '{"name":"x"}', "missing required"),
    ("person", False, '{"name":"x","age":1,"zzz":1}', "extra property"),
    ("person", False, '{"name":"x","age":151}', "integer above maximum"),
    ("person", False, '{"name":"x","age":-1}', "integer below minimum"),
    ("person", False, '{"name":"x","age":1,}', "trailing comma"),
    ("person", False, '{"name":"x","age":1,"email":"nobody"}', "bad email"),
    ("person", False, '{"name":"x","age":1,"address":{"street":"s","zip":"1234"}}', "pattern mismatch"),
    ("person", False, '{\n  "name": "x",\n  "age": 1\n}', "newlines under the compact policy"),
    ("person", False, '{"name":  "x","age":1}', "two spaces under the compact policy"),
    ("person", True, '{"name":' + " " * 21 + '"x","age":1}', "21 spaces under the flexible policy"),
    ("formats", False, json.dumps({**HAND["formats"][1][0], "date": "2023-02-29"}), "not a leap year"),
    ("one_of", False, '[1.5]', "a number where an integer is required"),
    ("tuple", False, '["2024-01-01",5,true,1]', "items false"),
    ("enum_const", False, '{"v":"other"}', "const mismatch"),
    ("strings", False, '["\\x"]', "invalid escape"),
    ("strings", False, '["a\tb"]', "raw control character"),
]


def forms(doc, flexible, slash_ok):
    """The texts of one document the policy allows."""
    if isinstance(doc, Text):
        return [doc.text] if doc.compact or flexible else []
    raw_only = isinstance(doc, Raw)
    v = doc.value if raw_only else doc
    out = []
    for ea in ([False] if raw_only else [True, False]):
        if flexible:
            out += [json.dumps(v, indent=2, ensure_ascii=ea), " \t" + json.dumps(v, separators=(",", ":"), ensure_ascii=ea) + "\r\n"]
        else:
            out += [json.dumps(v, separators=(",", ":"), ensure_ascii=ea), json.dumps(v, ensure_ascii=ea)]
    if slash_ok:  # "/" only occurs inside strings in a JSON text
        out.append(json.dumps(v, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/"))
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- the tests
class SchemaPropertyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(MOE_BIN, os.X_OK):
            raise AssertionError(f"no moe binary at {MOE_BIN}: build it (ninja -C build moe) or set MOE_BIN")
        cls.moe = Moe()

    @classmethod
    def tearDownClass(cls):
        cls.moe.tmp.cleanup()

    def test_random_schemas_sound(self):
        t0 = time.monotonic()
        schemas = [gen_schema(seed) for seed in SCHEMA_SEEDS]
        paths = [self.moe.schema_file(s) for s in schemas]
        jobs = [(i, flex) for i in range(len(schemas)) for flex in (False, True)]
        results = parallel(lambda j: self.moe.sample(paths[j[0]], j[1], seed=7 * j[0] + 1), jobs)
        total = finished = valid = dup_docs = 0
        per_schema = {}
        for (i, flex), (rc, out, err) in zip(jobs, results):
            where = f"schema #{i} (seed {SCHEMA_SEEDS[i]}, {'flexible' if flex else 'compact'}): {json.dumps(schemas[i], ensure_ascii=False)}"
            with self.subTest(schema=i, flexible=flex):
                docs = [json.loads(x) for x in out.split("\n") if x.strip()]
                self.assertEqual(len(docs), SAMPLES, f"{where}\nexit {rc}: {err.strip()}")
                self.assertFalse([d for d in docs if d["empty_mask"]], f"empty mask: {where}")
                self.assertEqual(rc, 0, f"{where}\n{err.strip()}")
                fin = [d for d in docs if d["finished"]]
                total, finished = total + len(docs), finished + len(fin)
                counts = per_schema.setdefault(i, [0, 0])
                counts[0], counts[1] = counts[0] + len(fin), counts[1] + len(docs)
                v = validator(schemas[i])
                for d in fin:
                    try:
                        value, dups = strict_loads(d["text"])
                    except ValueError as e:
                        self.fail(f"not JSON ({e}): {d['text']!r}\n{where}")
                    dup_docs += bool(dups)  # extra members' keys: a context-free grammar cannot keep them apart
                    errors = [f"{e.json_path}: {e.message}" for e in v.iter_errors(value)]
                    self.assertFalse(errors, f"invalid document {d['text']!r}\n{where}")
                    valid += 1
        low = {i: c for i, c in per_schema.items() if c[0] < MIN_FINISHED * c[1]}
        print(f"grammar_schema_properties: {len(schemas)} schemas x 2 whitespace policies, {total} samples, "
              f"{finished} finished, {valid} valid, {dup_docs} with a repeated extra key, "
              f"lowest finish rate {min(c[0] / c[1] for c in per_schema.values()):.2f}, {time.monotonic() - t0:.1f}s",
              file=sys.stderr)
        self.assertFalse(low, "schemas whose samples rarely finish: " +
                         "; ".join(f"#{i} {c[0]}/{c[1]}: {json.dumps(schemas[i], ensure_ascii=False)}" for i, c in low.items()))

    def test_hand_schemas_complete(self):
        t0 = time.monotonic()
        jobs, texts = [], {}
        for name, (schema, docs, slash_ok) in HAND.items():
            path = self.moe.schema_file(schema)
            v = validator(schema)
            for flex in (False, True):
                ts = [t for d in docs for t in forms(d, flex, slash_ok)]
                for t in ts:  # the documents themselves must be right
                    self.assertFalse(list(v.iter_errors(json.loads(t))), f"{name}: test document invalid: {t!r}")
                texts[(name, flex)] = ts
                jobs += [(name, flex, path, m) for m in models()]
        results = parallel(lambda j: self.moe.check(j[3], j[2], j[1], texts[(j[0], j[1])]), jobs)
        n = 0
        for (name, flex, _, model), lines in zip(jobs, results):
            for t, r in zip(texts[(name, flex)], lines):
                n += 1
                with self.subTest(schema=name, flexible=flex, model=os.path.basename(model)):
                    self.assertTrue(r["ok"], f"{name} ({'flexible' if flex else 'compact'}, {model}): refused {t!r}: {r['error']}")
        print(f"grammar_schema_properties: {len(HAND)} hand-made schemas, {n} document checks over {len(models())} "
              f"tokenizers, {time.monotonic() - t0:.1f}s", file=sys.stderr)

    def test_invalid_documents_refused(self):
        paths = {name: self.moe.schema_file(HAND[name][0]) for name in {c[0] for c in MUST_FAIL}}
        groups = {}
        for name, flex, text, why in MUST_FAIL:
            groups.setdefault((name, flex), []).append((text, why))
        jobs = [(key, m) for key in groups for m in models()]
        results = parallel(lambda j: self.moe.check(j[1], paths[j[0][0]], j[0][1], [t for t, _ in groups[j[0]]]), jobs)
        for (key, model), lines in zip(jobs, results):
            for (text, why), r in zip(groups[key], lines):
                with self.subTest(model=os.path.basename(model), why=why):
                    self.assertFalse(r["ok"], f"{key[0]}: {why}: accepted {text!r} ({model})")

    def test_surrogate_pair_is_one_character(self):
        """String minLength/maxLength count code points: a \\uD83D\\uDE00 surrogate-pair escape is one
        (what jsonschema and JSON Schema count; json.dumps(ensure_ascii=True) writes every emoji so).
        A lone surrogate escape is not text and is refused."""
        doc = '"\\ud83d\\ude00"'
        self.assertEqual(len(json.loads(doc)), 1)
        two = self.moe.schema_file({"type": "string", "minLength": 2, "maxLength": 2})
        one = self.moe.schema_file({"type": "string", "maxLength": 1})
        [r2] = self.moe.check(TINY_MOE, two, False, [doc])
        [r1] = self.moe.check(TINY_MOE, one, False, [doc])
        self.assertFalse(r2["ok"], "minLength 2 accepts a single code point written as a surrogate-pair escape")
        self.assertTrue(r1["ok"], f"maxLength 1 refuses one code point written as a surrogate-pair escape: {r1['error']}")
        [lone] = self.moe.check(TINY_MOE, one, False, ['"\\ud83d"'])
        self.assertFalse(lone["ok"], "a lone surrogate escape was accepted")

    def test_deterministic(self):
        for seed in SCHEMA_SEEDS[:2]:
            self.assertEqual(gen_schema(seed), gen_schema(seed), "the schema generator is not deterministic")
        schemas = [gen_schema(seed) for seed in SCHEMA_SEEDS[:4]] + [HAND["any"][0], HAND["person"][0]]
        paths = [self.moe.schema_file(s) for s in schemas]
        jobs = [(p, flex, seed) for p in paths for flex in (False, True) for seed in (5, 5, 6)]
        out = parallel(lambda j: self.moe.sample(j[0], j[1], j[2], samples=8), jobs)
        differs = 0
        for k in range(0, len(jobs), 3):
            a, b, c = out[k], out[k + 1], out[k + 2]
            self.assertEqual(a, b, f"two runs with seed 5 differ: {jobs[k]}")
            differs += a[1] != c[1]
        self.assertGreater(differs, 0, "seeds 5 and 6 give the same samples everywhere")


if __name__ == "__main__":
    unittest.main(verbosity=2)
