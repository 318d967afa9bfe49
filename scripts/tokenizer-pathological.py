#!/usr/bin/env python3
"""Writes tests/tokenizer/pathological_golden.txt: for each pathological text (long runs of
combining marks, spaces, digits, letters; see tests/tokenizer/pathological_texts.h, which builds
the same texts) and each tokenizer, the token count and FNV-1a hash of the ids that Hugging Face
`tokenizers` gives (encode(text, add_special_tokens=False)). Needs `pip install tokenizers`.
Usage: scripts/tokenizer-pathological.py [--check]   (--check: compare instead of writing)"""
import os
import sys
import time

from tokenizers import Tokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GOLDEN = os.path.join(ROOT, "tests", "tokenizer", "pathological_golden.txt")
TOKENIZERS = ["models/tiny-moe/tokenizer.json", "tests/fixtures/qwen3_moe/tokenizer.json",
              "tests/fixtures/olmoe/tokenizer.json", "tests/fixtures/mixtral/tokenizer.json"]


def repeat_to(head: bytes, unit: bytes, n: int) -> bytes:
    k = max(0, (n - len(head)) // len(unit))
    return head + unit * k


def texts(n=1 << 20):
    return [
        ("marks_run", repeat_to(b"a", "\u0301".encode(), n)),
        ("marks_unsorted", repeat_to(b"a", "\u0301\u0316".encode(), n)),
        ("mark_pairs", repeat_to(b"", "a\u0301x\u0316".encode(), n)),
        ("spaces", repeat_to(b"", b" ", n)),
        ("digits", repeat_to(b"", b"0123456789", n)),
        ("word", repeat_to(b"", b"abcdefghijklmnopqrstuvwxyz", n)),
    ]


def fnv1a(ids):
    h = 0xcbf29ce484222325
    for i in ids:
        for b in (i & 0xFFFFFFFF).to_bytes(4, "little"):
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    lines = ["# tokenizer text count fnv1a64 -- written by scripts/tokenizer-pathological.py"]
    for tok_path in TOKENIZERS:
        tok = Tokenizer.from_file(os.path.join(ROOT, tok_path))
        for name, text in texts():
            t0 = time.time()
            ids = tok.encode(text.decode("utf-8"), add_special_tokens=False).ids
            print(f"{tok_path} {name}: {len(ids)} ids, HF {time.time() - t0:.2f}s", file=sys.stderr)
            lines.append(f"{tok_path} {name} {len(ids)} {fnv1a(ids):016x}")
    out = "\n".join(lines) + "\n"
    if "--check" in sys.argv:
        same = open(GOLDEN).read() == out
        print("golden up to date" if same else "golden DIFFERS", file=sys.stderr)
        sys.exit(0 if same else 1)
    with open(GOLDEN, "w") as f:
        f.write(out)


if __name__ == "__main__":
    main()
