"""Golden-output helpers shared by the fixture scripts and the tiny model's evaluation.

Holds what every golden.json has besides its model-specific summary: the tokenization texts
(`COMMON_TEXTS`, `FAMILY_TEXTS`, `GPT_OSS_TEXTS`) and `tokenization_golden` (tokenizers'
encodings, checked against AutoTokenizer), `tensor_listing` of the safetensors files,
`golden_provenance` (HF class and library versions), the float32 forward `full_logits`, the
greedy loop `greedy` and its generate() cross-check `greedy_generate_check`, the greedy prompt
choice `greedy_candidates` / `pick_greedy`, the KV-cache check `kv_cache_diff`, the seeded prompt
settings (`LOGIT_LENGTHS`, `GREEDY_NEW_TOKENS`, `GREEDY_PROMPT_TEXTS`, `N_RANDOM_PROMPTS`,
`GREEDY_MIN_DISTINCT`) and `save_json`, the JSON format of every file the fixture scripts write.
"""

from __future__ import annotations

import glob
import json
import os

import fixture_env  # noqa: F401  (offline, quiet Hugging Face libraries)
import numpy as np
import safetensors
import tokenizers
import torch
import transformers
from safetensors import safe_open
from tokenizers import Tokenizer
from transformers import AutoTokenizer


COMMON_TEXTS = [
    "Hello world! This is a simple English sentence.",
    "Café, naïve, jalapeño, señor, über, façade, crème brûlée",
    "Der schnelle braune Fuchs springt über den faulen Hund. Les élèves ont déjà mangé à l'école.",
    "我爱自然语言处理。今日は良い天気ですね。東京タワー 龘",
    "Emoji: 👍🏽 👨‍👩‍👧 🎉🚀 ❤️ and 🦄!",
    "def foo(x):\n    if x > 0:\n        return x * 2\n\treturn None\n",
    "a  b\t\tc\n\n\n  d   ",
    "   leading spaces",
    "12345 3.14159 1,000,000",
    "I'm can't they'll we've she'd you're IT'S",
    "Привет, мир! Ёлка",
    "e\u0301 vs \u00e9 (combining acute vs precomposed)",
    "x          y",
    "“Smart quotes” — and… ellipsis",
    "",
]

FAMILY_TEXTS = {
    "qwen": [
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\nok\n</think>\n\nHello!<|im_end|><|endoftext|>",
        "text<|im_end|>tail<|im_start|>",
    ],
    "neox": [
        "hello<|endoftext|>world<|padding|> end",
    ],
    "llama": [
        "<s> hi </s>",
        "<s>[INST] What is 2+2? [/INST] 4</s>",
        "<unk> unknown",
    ],
}

# gpt-oss's texts: make_gpt_oss_fixtures.py adds them as FAMILY_TEXTS["gpt_oss"].
GPT_OSS_TEXTS = [
    "<|start|>system<|message|>You are ChatGPT.<|end|><|start|>user<|message|>What is 2+2?<|end|>"
    "<|start|>assistant<|channel|>analysis<|message|>Easy.<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>",
    "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>",
    "<|startoftext|>x<|endoftext|> <|reserved_200017|><|endofprompt|>",
    " NASA's GPT-OSS /path/to/file abc/\nfooBAR 123 camelCaseWord HTTPServer",
    "1234567 12.3456 0001 ٣٤٥ ¼ 10,000,000",
    "don'T WE'LL THEY'RE you'Ve I'M",
    "Ünïcödé ÀÉÎ ǅungla ʰʲ x\u0308y \u0915\u093f",
    "line1\r\nline2\n\n  \n\tend  ",
    "a/\n/b //c ...\n\n",
]


def tokenization_golden(tok: Tokenizer, fixture_dir: str, family: str) -> tuple[list, dict]:
    texts = COMMON_TEXTS + FAMILY_TEXTS[family]
    out = []
    auto_ok = True
    auto_notes = []
    try:
        auto = AutoTokenizer.from_pretrained(fixture_dir)
    except Exception as e:  # pragma: no cover - informative only
        auto = None
        auto_ok = False
        auto_notes.append(f"AutoTokenizer failed to load: {e!r}")
    for text in texts:
        enc = tok.encode(text, add_special_tokens=False)
        enc_sp = tok.encode(text, add_special_tokens=True)
        decoded = tok.decode(enc.ids, skip_special_tokens=False)
        out.append(
            {
                "text": text,
                "ids": enc.ids,
                "ids_with_special": enc_sp.ids,
                "tokens": enc.tokens,
                "decoded": decoded,
            }
        )
        if auto is not None:
            a_ids = auto.encode(text, add_special_tokens=False)
            a_sp = auto.encode(text, add_special_tokens=True)
            if a_ids != enc.ids or a_sp != enc_sp.ids:
                auto_ok = False
                auto_notes.append(f"encode mismatch for {text!r}: auto={a_sp} tokenizers={enc_sp.ids}")
    info = {"autotokenizer_class": type(auto).__name__ if auto is not None else None,
            "autotokenizer_matches_tokenizers": auto_ok, "notes": auto_notes}
    return out, info


def tensor_listing(fixture_dir: str) -> list[dict]:
    files = sorted(glob.glob(os.path.join(fixture_dir, "*.safetensors")))
    out = []
    for fn in files:
        with safe_open(fn, "pt") as f:
            for k in f.keys():
                sl = f.get_slice(k)
                out.append(
                    {
                        "name": k,
                        "shape": list(sl.get_shape()),
                        "dtype": sl.get_dtype(),
                        "file": os.path.basename(fn),
                    }
                )
    out.sort(key=lambda d: d["name"])
    return out


def golden_provenance(ref) -> dict:
    """The first keys of every golden.json: which HF class and library versions made it."""
    return {
        "architecture": ref.__class__.__name__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "tokenizers_version": tokenizers.__version__,
        "safetensors_version": safetensors.__version__,
    }


@torch.no_grad()
def full_logits(model, ids: list[int]) -> torch.Tensor:
    x = torch.tensor([ids], dtype=torch.long)
    return model(input_ids=x, use_cache=False).logits[0].float()


@torch.no_grad()
def greedy(model, prompt: list[int], n_new: int) -> tuple[list[int], float, float]:
    """Greedy decoding without EOS stop; full recompute at each step."""
    seq = list(prompt)
    new = []
    min_margin = float("inf")
    scale = 0.0
    for _ in range(n_new):
        logits = full_logits(model, seq)[-1]
        top2 = torch.topk(logits, 2)
        margin = float(top2.values[0] - top2.values[1])
        min_margin = min(min_margin, margin)
        scale = max(scale, float(logits.std()))
        nxt = int(top2.indices[0])
        new.append(nxt)
        seq.append(nxt)
    return new, min_margin, scale


@torch.no_grad()
def greedy_generate_check(model, prompt: list[int], expected: list[int]) -> bool:
    """Cross-check the manual loop with generate() (KV-cache path)."""
    x = torch.tensor([prompt], dtype=torch.long)
    gen = model.generate(
        input_ids=x,
        attention_mask=torch.ones_like(x),
        do_sample=False,
        max_new_tokens=len(expected),
        min_new_tokens=len(expected),
        eos_token_id=None,
        pad_token_id=0,
    )
    return gen[0, len(prompt):].tolist() == expected


@torch.no_grad()
def kv_cache_diff(model, ids: list[int], full: torch.Tensor | None = None, split: int = 10) -> float:
    """Informative KV-cache consistency: a cached forward of ids[:split], then the rest in one
    cached forward, against the full forward (`full`, computed when not given)."""
    if full is None:
        full = full_logits(model, ids)
    out = model(input_ids=torch.tensor([ids[:split]]), use_cache=True)
    step = model(input_ids=torch.tensor([ids[split:]]), cache=out.cache, use_cache=True).logits[0]
    return float((step - full[split:]).abs().max())


LOGIT_LENGTHS = [1, 7, 19]
GREEDY_NEW_TOKENS = 32
GREEDY_PROMPT_TEXTS = [
    "The quick brown fox",
    "def main():\n    return",
    "Der schnelle braune Fuchs",
    "import os\nimport sys\n",
    "Once upon a time, there was",
    "我爱自然语言处理",
    "for i in range(10):",
    "Hello, world!",
]
N_RANDOM_PROMPTS = 16
GREEDY_MIN_DISTINCT = 12


def greedy_candidates(tok: Tokenizer, seed: int, vocab_size: int) -> list[tuple]:
    """The greedy prompts to choose from, as (kind, text or None, ids): GREEDY_PROMPT_TEXTS, then
    N_RANDOM_PROMPTS random ones of 3-11 tokens drawn with `seed`."""
    candidates = [("text", t, tok.encode(t, add_special_tokens=True).ids) for t in GREEDY_PROMPT_TEXTS]
    prng = np.random.default_rng(seed)
    for _ in range(N_RANDOM_PROMPTS):
        n = int(prng.integers(3, 12))
        candidates.append(("random", None, [int(x) for x in prng.integers(0, vocab_size, size=n)]))
    return candidates


def pick_greedy(model, name: str, candidates: list[tuple], extra=None, demote=None) -> list[dict]:
    """The golden greedy entries: every candidate decoded GREEDY_NEW_TOKENS tokens, then the 2
    best kept, checked against generate(). Order: non-degenerate continuations first (random
    tiny models easily fall into one repeated token), then those `demote` does not put last, then
    the largest relative top1-top2 margin. `extra(ids, new)` gives keys added to the entry (and
    handed to `demote`)."""
    scored = []
    for kind, text, ids in candidates:
        new, mm, scale = greedy(model, ids, GREEDY_NEW_TOKENS)
        more = extra(ids, new) if extra else {}
        scored.append((mm / max(scale, 1e-9), kind, text, ids, new, mm, scale, more))
    scored.sort(key=lambda s: (len(set(s[4])) < GREEDY_MIN_DISTINCT, bool(demote and demote(s[7])), -s[0]))
    entries = []
    for rel, kind, text, ids, new, mm, scale, more in scored[:2]:
        if not greedy_generate_check(model, ids, new):
            raise RuntimeError(f"{name}: generate() disagrees with the manual greedy loop")
        e = {"prompt": ids, "tokens": new, "min_margin": mm, "logit_std_max": scale, "distinct_tokens": len(set(new)),
             "min_margin_relative": rel, "prompt_kind": kind, **more}
        if text is not None:
            e["prompt_text"] = text
        entries.append(e)
    return entries


def save_json(obj, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")
