#!/usr/bin/env python3
"""Mask cost of constrained decoding per token, on one core, for schemas from simple to recursive.

    python3 scripts/grammar-bench.py [--moe build/tools/moe] [--vocab models/tiny-moe --vocab build/qwen-vocab]
                                     [--samples 50] [--markdown]

For each vocabulary (a directory with tokenizer.json: models/tiny-moe, 4,096 tokens; build/qwen-vocab,
the real 151,646-token Qwen vocabulary made by scripts/qwen-vocab.py) and each schema, `moe grammar
--bench` draws --samples random documents through the mask (random logits, as a decode step would
give) and times each mask (computing it and applying it to the logits). Two runs per row:
  lazy:     positions are walked the first time they are on top (what the server does); p99 over all
            samples, and over the first sample alone (nothing cached yet);
  walk-all: every position walked up front and timed as part of the compile.
Prints a table (Markdown with --markdown).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCHEMAS = {
    "simple": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
               "additionalProperties": False},
    "tool arguments": {"type": "object", "properties": {
        "value": {"type": "number"},
        "from": {"type": "string", "enum": ["km", "mi", "kg", "lb", "m", "ft", "c", "f", "l", "gal", "cm", "in"]},
        "to": {"type": "string", "enum": ["km", "mi", "kg", "lb", "m", "ft", "c", "f", "l", "gal", "cm", "in"]}},
        "required": ["value", "from", "to"], "additionalProperties": False},
    "person": {"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "born": {"type": "string", "format": "date"}, "email": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}},
        "required": ["name", "age"], "additionalProperties": False},
    "array of objects": {"type": "array", "items": {"type": "object", "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": 999},
        "label": {"type": "string", "pattern": "^[a-z]{1,8}$"}, "ok": {"type": "boolean"}},
        "required": ["id", "label"], "additionalProperties": False}, "maxItems": 6},
    "recursive tree": {"$defs": {"node": {"type": "object", "properties": {
        "name": {"type": "string"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 3}},
        "required": ["name"], "additionalProperties": False}}, "$ref": "#/$defs/node"},
    "bounded string (maxLength 40)": {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 40}},
                                      "required": ["answer"], "additionalProperties": False},
}


def bench(moe, vocab, schema_path, samples, walk_all):
    cmd = [moe, "grammar", "--model", vocab, "--json-schema", schema_path, "--samples", str(samples), "--max-tokens", "300",
           "--bench", "--json"] + (["--walk-all"] if walk_all else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--moe", default=os.path.join(ROOT, "build", "tools", "moe"))
    ap.add_argument("--vocab", action="append", help="tokenizer directory (repeatable)")
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    vocabs = a.vocab or [os.path.join(ROOT, "models", "tiny-moe"), os.path.join(ROOT, "build", "qwen-vocab")]
    vocabs = [v for v in vocabs if os.path.exists(os.path.join(v, "tokenizer.json"))]
    head = ["vocab", "schema", "compile ms (lazy)", "p50 ms", "p99 ms", "max ms", "first sample p99 ms",
            "positions walked / all", "compile ms (walk all)", "p99 ms (walk all)", "finished"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for v in vocabs:
            for name, schema in SCHEMAS.items():
                path = os.path.join(tmp, "s.json")
                with open(path, "w") as f:
                    json.dump(schema, f)
                lazy = bench(a.moe, v, path, a.samples, False)
                eager = bench(a.moe, v, path, a.samples, True)
                rows.append([f"{lazy['vocab']:,}", name, f"{lazy['compile_ms']:.2f}", f"{lazy['mask_p50_ms']:.3f}",
                             f"{lazy['mask_p99_ms']:.3f}", f"{lazy['mask_max_ms']:.2f}", f"{lazy['first_doc_p99_ms']:.3f}",
                             f"{lazy['positions_walked']} / {lazy['positions']}", f"{eager['compile_ms']:.1f}",
                             f"{eager['mask_p99_ms']:.3f}", f"{lazy['finished']}/{lazy['samples']}"])
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        print("\t".join(head))
        for r in rows:
            print("\t".join(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
