#!/usr/bin/env python3
"""Build tiny random-weight Hugging Face MoE checkpoints and golden outputs.

Development-time tool only: CI never runs it. Its output (tests/fixtures/*) is
committed, and the C++ tests compare the engine against it.

Regenerate everything with exactly:

    python3 training/make_fixtures.py --out tests/fixtures

Versions used to produce the committed fixtures (see training/requirements-dev.txt):
    Python 3.11.7, torch 2.15.0 (CPU only), transformers 5.24.0,
    tokenizers 0.23.3, safetensors 0.8.0, numpy 2.4.6, huggingface_hub 2.4.0

Everything is seeded; re-running with the same versions gives the same files.
The tokenizer training corpus is a fixed, sorted selection of the Python
standard library sources of the running interpreter (Python 3.11.7 here) plus
the multilingual sentences below, so a different Python version gives
different (but equally valid) tokenizers.

Per fixture directory:
    config.json, generation_config.json, model*.safetensors[, index json],
    tokenizer.json, tokenizer_config.json,
    golden/golden.json, golden/logits_<i>.npy (float32, [len, vocab])

All golden numbers are computed by re-loading the saved directory with
from_pretrained(dir, dtype=float32, attn_implementation="eager",
experts_implementation="eager"), i.e. bf16/fp16 weights are upcast exactly as a
reader of the safetensors files would do.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import sysconfig

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from tokenizers import (  # noqa: E402
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (  # noqa: E402
    AutoTokenizer,
    GenerationConfig,
    MixtralConfig,
    MixtralForCausalLM,
    OlmoeConfig,
    OlmoeForCausalLM,
    Qwen2MoeConfig,
    Qwen2MoeForCausalLM,
    Qwen3MoeConfig,
    Qwen3MoeForCausalLM,
)

transformers.logging.set_verbosity_error()
try:
    transformers.utils.logging.disable_progress_bar()
except Exception:  # pragma: no cover - older/newer API
    pass

# ----------------------------------------------------------------------------
# Tokenizer corpus
# ----------------------------------------------------------------------------

# Sentences repeated several times: their characters become part of every
# vocabulary (including the SentencePiece-style one).
COMMON_SENTENCES = [
    "The quick brown fox jumps over the lazy dog. I'm sure they'll say it's fine, can't they?",
    "Café, naïve, jalapeño, façade, über, São Paulo, crème brûlée, señor, Zürich, Ærø.",
    "Der schnelle braune Fuchs springt über den faulen Hund. Größe, Straße, schön, Mädchen.",
    "Les élèves ont déjà mangé à l'école. Où est la bibliothèque ? Ça va très bien, merci.",
    "我爱自然语言处理。今天天气很好，我们去公园散步吧。中文分词很有趣。",
    "今日は良い天気ですね。日本語の文章を書きます。ありがとうございます。",
    "Привет, мир! Как дела? Это тестовое предложение на русском языке.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14159 1,000,000 -7 +8 1e-5",
    "Emoji are fun 😀 😂 ❤️ 🎉",
    "Quotes “like this” and ‘this’ — dashes – and ellipsis…",
]

# Sentences that appear only once: their rarest characters (emoji modifiers,
# ZWJ sequences, unusual CJK) are deliberately NOT part of the SentencePiece
# style alphabet, so the llama tokenizer has to use byte fallback for them.
RARE_SENTENCES = [
    "Thumbs up 👍🏽 family 👨‍👩‍👧 unicorn 🦄 rocket 🚀",
    "龘靐齉 鬱 𠀀 東京タワー 富士山",
    "Ελληνικά: καλημέρα κόσμε. עברית: שלום. العربية: مرحبا",
]

MULTILINGUAL_REPEAT = 50
CORPUS_MAX_CHARS = 600_000

# Characters always kept in the llama (SentencePiece-style) alphabet.
def _llama_alphabet() -> list[str]:
    chars = set(chr(c) for c in range(0x20, 0x7F))
    for s in COMMON_SENTENCES:
        chars.update(s)
    chars.discard(" ")
    chars.add("\u2581")
    return sorted(chars)


def corpus_texts() -> list[str]:
    stdlib = sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(os.path.join(stdlib, "*.py")))
    if not files:
        raise SystemExit(f"no Python sources found under {stdlib}")
    texts: list[str] = []
    total = 0
    for path in files:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            data = f.read()
        if len(data) > 120_000:
            continue
        texts.append(data)
        total += len(data)
        if total >= CORPUS_MAX_CHARS:
            break
    for _ in range(MULTILINGUAL_REPEAT):
        texts.extend(COMMON_SENTENCES)
    texts.extend(RARE_SENTENCES)
    return texts


def corpus_lines(texts: list[str]) -> list[str]:
    lines = []
    for t in texts:
        for line in t.split("\n"):
            if line.strip():
                lines.append(line)
    return lines


# ----------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------

QWEN_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

QWEN_MODEL_VOCAB = 1495  # + 5 added tokens = 1500
NEOX_MODEL_VOCAB = 1493  # includes <|endoftext|>=0, <|padding|>=1; + 7 whitespace tokens = 1500
LLAMA_VOCAB = 1500  # includes <unk>, <s>, </s> and the 256 byte tokens

NEOX_WHITESPACE_RUNS = [" " * n for n in range(8, 1, -1)]


def _merges_to_legacy_strings(tok_json: dict) -> None:
    """Rewrite merges [["a","b"], ...] into the legacy "a b" string format.

    Older hub files (Mixtral, GPT-NeoX) use this format, newer ones (Qwen3)
    use pairs; the fixtures cover both.
    """
    merges = tok_json["model"]["merges"]
    out = []
    for m in merges:
        if isinstance(m, str):
            out.append(m)
            continue
        a, b = m
        if " " in a or " " in b:
            raise RuntimeError(f"merge part contains a space, cannot use legacy format: {m!r}")
        out.append(f"{a} {b}")
    tok_json["model"]["merges"] = out


def build_qwen_tokenizer(texts: list[str]) -> dict:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=QWEN_MODEL_VOCAB,
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens(
        [
            AddedToken("<|endoftext|>", special=True, normalized=False),
            AddedToken("<|im_start|>", special=True, normalized=False),
            AddedToken("<|im_end|>", special=True, normalized=False),
        ]
    )
    # Qwen3 also has non-special added tokens such as <think> / </think>.
    tok.add_tokens(
        [
            AddedToken("<think>", special=False, normalized=False),
            AddedToken("</think>", special=False, normalized=False),
        ]
    )
    return qwen_tokenizer_json(tok)


def qwen_tokenizer_json(tok) -> dict:
    """tokenizer.json of a trained Qwen-style byte-level BPE, with the fields the real files have."""
    j = json.loads(tok.to_str())
    # (the Python decoders.ByteLevel constructor ignores its flags; set them as in the real file)
    j["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    j["model"]["unk_token"] = None
    j["model"]["continuing_subword_prefix"] = ""
    j["model"]["end_of_word_suffix"] = ""
    j["model"]["fuse_unk"] = False
    j["model"]["byte_fallback"] = False
    return j


def build_neox_tokenizer(texts: list[str]) -> dict:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=NEOX_MODEL_VOCAB,
        min_frequency=2,
        show_progress=False,
        special_tokens=[
            AddedToken("<|endoftext|>", special=True, normalized=False),
            AddedToken("<|padding|>", special=True, normalized=False),
        ],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # GPT-NeoX-20B has non-special, *normalized* added tokens for runs of spaces.
    tok.add_tokens([AddedToken(ws, special=False, normalized=True) for ws in NEOX_WHITESPACE_RUNS])
    j = json.loads(tok.to_str())
    j["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    j["model"]["unk_token"] = None
    j["model"]["continuing_subword_prefix"] = None
    j["model"]["end_of_word_suffix"] = None
    j["model"]["fuse_unk"] = False
    j["model"]["byte_fallback"] = False
    _merges_to_legacy_strings(j)
    return j


def build_llama_tokenizer(texts: list[str]) -> dict:
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    alphabet = _llama_alphabet()
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    # Training only: split words the way SentencePiece does (whitespace is
    # "▁" and starts a piece).  The saved tokenizer has no pre-tokenizer and
    # a Prepend+Replace normalizer, exactly like Mixtral's tokenizer.json.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=LLAMA_VOCAB,
        min_frequency=2,
        show_progress=False,
        special_tokens=[AddedToken(s, special=True, normalized=False) for s in specials + byte_tokens],
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
    )
    tok.train_from_iterator(corpus_lines(texts), trainer=trainer)
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    for i, s in enumerate(specials + byte_tokens):
        if vocab.get(s) != i:
            raise RuntimeError(f"unexpected id for {s}: {vocab.get(s)}")
    j["added_tokens"] = [a for a in j["added_tokens"] if a["content"] in specials]
    for a in j["added_tokens"]:
        a.update(special=True, normalized=False, lstrip=False, rstrip=False, single_word=False)
    j["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        ],
    }
    j["pre_tokenizer"] = None
    j["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": "<s>", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
        ],
        "pair": [
            {"SpecialToken": {"id": "<s>", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": "<s>", "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    }
    j["decoder"] = {
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ],
    }
    j["model"]["unk_token"] = "<unk>"
    j["model"]["fuse_unk"] = True
    j["model"]["byte_fallback"] = True
    j["model"]["continuing_subword_prefix"] = None
    j["model"]["end_of_word_suffix"] = None
    _merges_to_legacy_strings(j)
    return j


def write_tokenizer_json(j: dict, path: str) -> Tokenizer:
    text = json.dumps(j, ensure_ascii=False, indent=2) + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Tokenizer.from_file(path)


QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)

NEOX_CHAT_TEMPLATE = (
    "{{ eos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def _added_tokens_decoder(tok_json: dict) -> dict:
    out = {}
    for a in tok_json["added_tokens"]:
        out[str(a["id"])] = {
            "content": a["content"],
            "lstrip": a["lstrip"],
            "normalized": a["normalized"],
            "rstrip": a["rstrip"],
            "single_word": a["single_word"],
            "special": a["special"],
        }
    return out


def tokenizer_config(family: str, tok_json: dict, eos: str) -> dict:
    if family == "qwen":
        return {
            "add_bos_token": False,
            "add_prefix_space": False,
            "added_tokens_decoder": _added_tokens_decoder(tok_json),
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
            "bos_token": None,
            "chat_template": QWEN_CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": eos,
            "errors": "replace",
            "model_max_length": 32768,
            "pad_token": "<|endoftext|>",
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        }
    if family == "neox":
        return {
            "add_bos_token": False,
            "add_eos_token": False,
            "added_tokens_decoder": _added_tokens_decoder(tok_json),
            "bos_token": None,
            "chat_template": NEOX_CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": True,
            "eos_token": eos,
            "model_max_length": 4096,
            "pad_token": "<|padding|>",
            "tokenizer_class": "GPTNeoXTokenizer",
            "unk_token": None,
        }
    if family == "llama":
        return {
            "add_bos_token": True,
            "add_eos_token": False,
            "added_tokens_decoder": _added_tokens_decoder(tok_json),
            "additional_special_tokens": [],
            "bos_token": "<s>",
            "chat_template": LLAMA_CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": eos,
            "legacy": True,
            # Same (huge) value as the real Mixtral tokenizer_config.json: it does
            # not fit in int64, a JSON reader must cope with it.
            "model_max_length": 1000000000000000019884624838656,
            "pad_token": None,
            "sp_model_kwargs": {},
            "spaces_between_special_tokens": False,
            "tokenizer_class": "LlamaTokenizer",
            "unk_token": "<unk>",
            "use_default_system_prompt": False,
        }
    raise ValueError(family)


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


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------

INIT_RANGE = 0.15


def perturb_small_params(model: torch.nn.Module, seed: int) -> None:
    """Norm weights are initialised to 1 and biases to 0; randomise them so a
    C++ implementation that forgets to apply them fails the golden test."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name:
                p.copy_(0.6 + 0.8 * torch.rand(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
        # nn.Embedding(padding_idx=...) zeroes the pad row at init; a real
        # checkpoint has no such zero row.
        for mod in model.modules():
            if isinstance(mod, torch.nn.Embedding) and mod.padding_idx is not None:
                row = mod.weight[mod.padding_idx]
                row.copy_(INIT_RANGE * torch.randn(row.shape, generator=g))


def expert_param_count(model_type: str, cfg) -> int:
    if model_type == "mixtral":
        inter = cfg.intermediate_size
    elif model_type == "olmoe":
        inter = cfg.intermediate_size
    else:
        inter = cfg.moe_intermediate_size
    return 3 * cfg.hidden_size * inter


def moe_layer_indices(model_type: str, cfg) -> list[int]:
    n = cfg.num_hidden_layers
    if model_type in ("mixtral", "olmoe"):
        return list(range(n))
    return [
        i
        for i in range(n)
        if i not in cfg.mlp_only_layers and cfg.num_experts > 0 and (i + 1) % cfg.decoder_sparse_step == 0
    ]


def num_experts_of(model_type: str, cfg) -> int:
    if model_type == "mixtral":
        return cfg.num_local_experts
    return cfg.num_experts


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


def check_expert_layout(fixture_dir: str, ref, spec: dict) -> None:
    """Assert how the file layout maps onto the in-memory fused experts:
    gate_up_proj[e] == cat([gate (w1), up (w3)], dim=0), down_proj[e] == w2."""
    files = sorted(glob.glob(os.path.join(fixture_dir, "*.safetensors")))
    tensors = {}
    for fn in files:
        with safe_open(fn, "pt") as f:
            for k in f.keys():
                tensors[k] = f.get_tensor(k).float()
    mt = spec["model_type"]
    cfg = ref.config
    for li in moe_layer_indices(mt, cfg):
        ex = ref.model.layers[li].mlp.experts
        if not spec["save_original_format"]:
            assert torch.equal(ex.gate_up_proj, tensors[f"model.layers.{li}.mlp.experts.gate_up_proj"])
            assert torch.equal(ex.down_proj, tensors[f"model.layers.{li}.mlp.experts.down_proj"])
            continue
        inter = ex.down_proj.shape[-1]
        for e in range(num_experts_of(mt, cfg)):
            if mt == "mixtral":
                pre = f"model.layers.{li}.block_sparse_moe.experts.{e}."
                g, u, d = pre + "w1.weight", pre + "w3.weight", pre + "w2.weight"
            else:
                pre = f"model.layers.{li}.mlp.experts.{e}."
                g, u, d = pre + "gate_proj.weight", pre + "up_proj.weight", pre + "down_proj.weight"
            assert torch.equal(ex.gate_up_proj[e, :inter], tensors[g])
            assert torch.equal(ex.gate_up_proj[e, inter:], tensors[u])
            assert torch.equal(ex.down_proj[e], tensors[d])


def golden_provenance(ref) -> dict:
    """The first keys of every golden.json: which HF class and library versions made it."""
    return {
        "architecture": ref.__class__.__name__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "tokenizers_version": tokenizers.__version__,
        "safetensors_version": safetensors.__version__,
    }


def load_reference(fixture_dir: str, cls):
    model = cls.from_pretrained(
        fixture_dir,
        dtype=torch.float32,
        attn_implementation="eager",
        experts_implementation="eager",
    )
    model.eval()
    return model


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


def rope_summary(model) -> dict:
    rot = model.model.rotary_emb
    return {
        "rope_type": rot.rope_type,
        "inv_freq": [float(v) for v in rot.inv_freq.tolist()],
        "attention_scaling": float(rot.attention_scaling),
    }


def config_summary(model_type: str, cfg, model) -> dict:
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    s = {
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": head_dim,
        "hidden_act": cfg.hidden_act,
        "rms_norm_eps": cfg.rms_norm_eps,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rope_parameters": dict(cfg.rope_parameters),
        "rope_effective": rope_summary(model),
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "num_experts": num_experts_of(model_type, cfg),
        "num_experts_per_tok": cfg.num_experts_per_tok,
        "moe_layers": moe_layer_indices(model_type, cfg),
        "expert_intermediate_size": expert_param_count(model_type, cfg) // (3 * cfg.hidden_size),
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "attention_scale": head_dim ** -0.5,
    }
    if model_type == "mixtral":
        s.update(
            sliding_window=cfg.sliding_window,
            norm_topk_prob=True,  # Mixtral always renormalises the top-k weights
            router_softmax="float32 softmax over all experts, top-k, renormalise",
        )
    if model_type in ("qwen3_moe", "qwen2_moe"):
        s.update(
            norm_topk_prob=cfg.norm_topk_prob,
            mlp_only_layers=list(cfg.mlp_only_layers),
            decoder_sparse_step=cfg.decoder_sparse_step,
            dense_intermediate_size=cfg.intermediate_size,
            moe_intermediate_size=cfg.moe_intermediate_size,
            sliding_window=cfg.sliding_window,
            use_sliding_window=cfg.use_sliding_window,
        )
    if model_type == "qwen3_moe":
        s.update(attention_bias=cfg.attention_bias, qk_norm="per-head RMSNorm over head_dim, before RoPE")
    if model_type == "qwen2_moe":
        s.update(
            qkv_bias=cfg.qkv_bias,
            shared_expert_intermediate_size=cfg.shared_expert_intermediate_size,
            layer_types=list(cfg.layer_types),
        )
    if model_type == "olmoe":
        s.update(
            norm_topk_prob=cfg.norm_topk_prob,
            clip_qkv=cfg.clip_qkv,
            attention_bias=cfg.attention_bias,
            qk_norm="RMSNorm over the whole q_proj output (num_heads*head_dim) / k_proj output "
            "(num_kv_heads*head_dim), before clip_qkv and RoPE",
        )
    return s


FIXTURES = [
    {
        "name": "mixtral",
        "cls": MixtralForCausalLM,
        "cfg_cls": MixtralConfig,
        "model_type": "mixtral",
        "tokenizer": "llama",
        "dtype": torch.bfloat16,
        "seed": 1001,
        "save_original_format": True,
        "max_shard_size": None,
        "config": dict(
            hidden_size=64,
            intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_local_experts=8,
            num_experts_per_tok=2,
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6},
            sliding_window=None,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=None,
            initializer_range=INIT_RANGE,
        ),
        "generation": dict(bos_token_id=1, eos_token_id=2),
        "eos_text": "</s>",
    },
    {
        "name": "mixtral_fused",
        "cls": MixtralForCausalLM,
        "cfg_cls": MixtralConfig,
        "model_type": "mixtral",
        "tokenizer": "llama",
        "dtype": torch.float32,
        "seed": 1002,
        "save_original_format": False,
        "max_shard_size": None,
        "config": dict(
            hidden_size=64,
            intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_local_experts=8,
            num_experts_per_tok=2,
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6},
            sliding_window=None,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=None,
            initializer_range=INIT_RANGE,
        ),
        "generation": dict(bos_token_id=1, eos_token_id=2),
        "eos_text": "</s>",
    },
    {
        "name": "qwen3_moe",
        "cls": Qwen3MoeForCausalLM,
        "cfg_cls": Qwen3MoeConfig,
        "model_type": "qwen3_moe",
        "tokenizer": "qwen",
        "dtype": torch.float32,
        "seed": 2001,
        "save_original_format": True,
        "max_shard_size": None,
        # Real Qwen3-MoE hub configs spell the expert count "num_experts";
        # transformers 5 writes "num_local_experts".  This fixture keeps the
        # hub spelling (qwen3_moe_fused keeps the transformers 5 one).
        "rename_config_keys": {"num_local_experts": "num_experts"},
        "config": dict(
            hidden_size=64,
            intermediate_size=96,
            moe_intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            num_experts=8,
            num_experts_per_tok=4,
            norm_topk_prob=True,
            mlp_only_layers=[1],
            decoder_sparse_step=1,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            rope_parameters={
                "rope_type": "yarn",
                "rope_theta": 1e6,
                "factor": 4.0,
                "original_max_position_embeddings": 64,
            },
            use_sliding_window=False,
            tie_word_embeddings=False,
            initializer_range=INIT_RANGE,
        ),
        "special_ids": {"bos_token_id": "<|endoftext|>", "eos_token_id": "<|im_end|>", "pad_token_id": None},
        "generation": {"bos_token_id": "<|endoftext|>", "eos_token_id": ["<|im_end|>", "<|endoftext|>"],
                       "pad_token_id": "<|endoftext|>"},
        "eos_text": "<|im_end|>",
    },
    {
        "name": "qwen3_moe_fused",
        "cls": Qwen3MoeForCausalLM,
        "cfg_cls": Qwen3MoeConfig,
        "model_type": "qwen3_moe",
        "tokenizer": "qwen",
        "dtype": torch.bfloat16,
        "seed": 2002,
        "save_original_format": False,
        "max_shard_size": None,
        "config": dict(
            hidden_size=64,
            intermediate_size=96,
            moe_intermediate_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=1,
            num_experts=8,
            num_experts_per_tok=3,
            norm_topk_prob=False,
            mlp_only_layers=[],
            decoder_sparse_step=2,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6},
            use_sliding_window=False,
            tie_word_embeddings=True,
            initializer_range=INIT_RANGE,
        ),
        "special_ids": {"bos_token_id": "<|endoftext|>", "eos_token_id": "<|endoftext|>", "pad_token_id": None},
        "generation": {"bos_token_id": "<|endoftext|>", "eos_token_id": "<|endoftext|>"},
        "eos_text": "<|endoftext|>",
    },
    {
        "name": "olmoe",
        "cls": OlmoeForCausalLM,
        "cfg_cls": OlmoeConfig,
        "model_type": "olmoe",
        "tokenizer": "neox",
        "dtype": torch.float16,
        "seed": 3001,
        "save_original_format": True,
        "max_shard_size": None,
        "config": dict(
            hidden_size=64,
            intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_experts=16,
            num_experts_per_tok=3,
            norm_topk_prob=False,
            clip_qkv=2.0,
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            tie_word_embeddings=False,
            initializer_range=INIT_RANGE,
        ),
        "special_ids": {"bos_token_id": None, "eos_token_id": "<|endoftext|>", "pad_token_id": "<|padding|>"},
        "generation": {"eos_token_id": "<|endoftext|>", "pad_token_id": "<|padding|>"},
        "eos_text": "<|endoftext|>",
    },
    {
        "name": "qwen2_moe",
        "cls": Qwen2MoeForCausalLM,
        "cfg_cls": Qwen2MoeConfig,
        "model_type": "qwen2_moe",
        "tokenizer": "qwen",
        "dtype": torch.bfloat16,
        "seed": 4001,
        "save_original_format": True,
        "max_shard_size": "400KB",
        "config": dict(
            hidden_size=64,
            intermediate_size=96,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=64,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_experts=8,
            num_experts_per_tok=4,
            norm_topk_prob=False,
            mlp_only_layers=[0],
            decoder_sparse_step=1,
            qkv_bias=True,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6},
            use_sliding_window=False,
            tie_word_embeddings=False,
            initializer_range=INIT_RANGE,
        ),
        "special_ids": {"bos_token_id": "<|endoftext|>", "eos_token_id": "<|endoftext|>", "pad_token_id": None},
        "generation": {"bos_token_id": "<|endoftext|>", "eos_token_id": "<|endoftext|>"},
        "eos_text": "<|endoftext|>",
    },
]

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


def _resolve(tok: Tokenizer, v):
    if v is None:
        return None
    if isinstance(v, list):
        return [_resolve(tok, x) for x in v]
    if isinstance(v, str):
        i = tok.token_to_id(v)
        if i is None:
            raise RuntimeError(f"token {v!r} not in vocab")
        return i
    return v


def save_json(obj, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def build_fixture(spec: dict, out_root: str, tok_jsons: dict) -> None:
    name = spec["name"]
    fdir = os.path.join(out_root, name)
    if os.path.exists(fdir):
        shutil.rmtree(fdir)
    os.makedirs(fdir)
    family = spec["tokenizer"]
    tok_json = tok_jsons[family]
    tok = write_tokenizer_json(tok_json, os.path.join(fdir, "tokenizer.json"))
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    save_json(tokenizer_config(family, tok_json, spec["eos_text"]), os.path.join(fdir, "tokenizer_config.json"))

    cfg_kwargs = dict(spec["config"])
    cfg_kwargs["vocab_size"] = vocab_size
    for k, v in spec.get("special_ids", {}).items():
        cfg_kwargs[k] = _resolve(tok, v)
    cfg = spec["cfg_cls"](**cfg_kwargs)

    torch.manual_seed(spec["seed"])
    model = spec["cls"](cfg)
    perturb_small_params(model, spec["seed"] + 7)
    model.eval()
    model = model.to(spec["dtype"])
    model.generation_config = GenerationConfig(**{k: _resolve(tok, v) for k, v in spec["generation"].items()})
    save_kwargs = {"save_original_format": spec["save_original_format"]}
    if spec["max_shard_size"]:
        save_kwargs["max_shard_size"] = spec["max_shard_size"]
    model.save_pretrained(fdir, **save_kwargs)
    saved_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    del model

    if spec.get("rename_config_keys"):
        cpath = os.path.join(fdir, "config.json")
        with open(cpath, encoding="utf-8") as f:
            cj = json.load(f)
        cj = {spec["rename_config_keys"].get(k, k): v for k, v in cj.items()}
        save_json(dict(sorted(cj.items())), cpath)

    # ---------------- golden, from the saved directory ----------------
    ref = load_reference(fdir, spec["cls"])
    # Sanity: reloaded fp32 weights equal the saved low-precision weights.
    ref_state = ref.state_dict()
    for k, v in saved_state.items():
        if k not in ref_state:
            raise RuntimeError(f"{name}: {k} missing after reload")
        if not torch.equal(ref_state[k], v.float()):
            raise RuntimeError(f"{name}: {k} differs after reload")

    check_expert_layout(fdir, ref, spec)

    gdir = os.path.join(fdir, "golden")
    os.makedirs(gdir)
    rng = np.random.default_rng(spec["seed"] + 100)
    logits_entries = []
    for i, n in enumerate(LOGIT_LENGTHS):
        ids = [int(x) for x in rng.integers(0, vocab_size, size=n)]
        lg = full_logits(ref, ids).numpy().astype(np.float32)
        assert lg.shape == (n, vocab_size)
        fn = f"logits_{i}.npy"
        np.save(os.path.join(gdir, fn), lg)
        logits_entries.append(
            {"tokens": ids, "file": fn, "shape": list(lg.shape),
             "logit_std": float(lg.std()), "argmax": [int(a) for a in lg.argmax(-1)]}
        )

    # Incremental (KV cache) vs full forward consistency, informative only.
    with torch.no_grad():
        ids = logits_entries[2]["tokens"]
        full = full_logits(ref, ids)
        out = ref(input_ids=torch.tensor([ids[:10]]), use_cache=True)
        cache = out.cache
        step = ref(input_ids=torch.tensor([ids[10:]]), cache=cache, use_cache=True).logits[0]
        kv_diff = float((step - full[10:]).abs().max())

    # Greedy: choose the 2 best-conditioned prompts among deterministic candidates.
    candidates = []
    for t in GREEDY_PROMPT_TEXTS:
        ids = tok.encode(t, add_special_tokens=True).ids
        candidates.append(("text", t, ids))
    prng = np.random.default_rng(spec["seed"] + 200)
    for _ in range(N_RANDOM_PROMPTS):
        n = int(prng.integers(3, 12))
        candidates.append(("random", None, [int(x) for x in prng.integers(0, vocab_size, size=n)]))
    scored = []
    for kind, text, ids in candidates:
        new, mm, scale = greedy(ref, ids, GREEDY_NEW_TOKENS)
        scored.append((mm / max(scale, 1e-9), kind, text, ids, new, mm, scale))
    # Prefer non-degenerate continuations (random tiny models easily fall into
    # a single repeated token), then the largest relative top1-top2 margin.
    scored.sort(key=lambda s: (len(set(s[4])) < GREEDY_MIN_DISTINCT, -s[0]))
    greedy_entries = []
    for rel, kind, text, ids, new, mm, scale in scored[:2]:
        if not greedy_generate_check(ref, ids, new):
            raise RuntimeError(f"{name}: generate() disagrees with the manual greedy loop")
        e = {"prompt": ids, "tokens": new, "min_margin": mm, "logit_std_max": scale,
             "distinct_tokens": len(set(new)),
             "min_margin_relative": rel, "prompt_kind": kind}
        if text is not None:
            e["prompt_text"] = text
        greedy_entries.append(e)

    tokenization, auto_info = tokenization_golden(tok, fdir, family)

    cfg_loaded = ref.config
    mt = spec["model_type"]
    n_params = int(ref.num_parameters())
    n_exp = num_experts_of(mt, cfg_loaded)
    k = cfg_loaded.num_experts_per_tok
    moe_layers = moe_layer_indices(mt, cfg_loaded)
    active = n_params - len(moe_layers) * (n_exp - k) * expert_param_count(mt, cfg_loaded)

    summary = config_summary(mt, cfg_loaded, ref)
    if mt == "olmoe":
        # Show that clip_qkv actually changes the output.
        clip = ref.config.clip_qkv
        assert clip is not None
        with torch.no_grad():
            x = torch.tensor([logits_entries[2]["tokens"]])
            clipped = ref(input_ids=x, use_cache=False).logits[0]
            ref.config.clip_qkv = None
            unclipped = ref(input_ids=x, use_cache=False).logits[0]
            ref.config.clip_qkv = clip
            summary["clip_qkv_effect_max_abs_logit_diff"] = float((clipped - unclipped).abs().max())
            # fraction of clipped q/k/v entries in layer 0
            layer = ref.model.layers[0]
            h = layer.input_layernorm(ref.model.embed_tokens(x))
            att = layer.self_attn
            q = att.q_norm(att.q_proj(h))
            kk = att.k_norm(att.k_proj(h))
            v = att.v_proj(h)
            summary["clip_qkv_fraction_clipped_layer0"] = {
                "q": float((q.abs() > clip).float().mean()),
                "k": float((kk.abs() > clip).float().mean()),
                "v": float((v.abs() > clip).float().mean()),
            }

    with open(os.path.join(fdir, "config.json"), encoding="utf-8") as f:
        saved_config = json.load(f)

    golden = {
        **golden_provenance(ref),
        "storage_dtype": str(spec["dtype"]).replace("torch.", ""),
        "expert_layout": "per_expert" if spec["save_original_format"] else "fused",
        "num_parameters": n_params,
        "active_parameters": int(active),
        "config_summary": summary,
        "saved_config_json": saved_config,
        "tensor_names": tensor_listing(fdir),
        "logits": logits_entries,
        "kv_cache_vs_full_max_abs_diff": kv_diff,
        "greedy": greedy_entries,
        "tokenization": tokenization,
        "tokenizer_check": auto_info,
    }
    save_json(golden, os.path.join(gdir, "golden.json"))
    print(
        f"[{name}] vocab={vocab_size} params={n_params} active={active} "
        f"greedy min_margin={[round(g['min_margin'], 5) for g in greedy_entries]} "
        f"kv_diff={kv_diff:.2e} auto_tok_ok={auto_info['autotokenizer_matches_tokenizers']}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="tests/fixtures", help="output root directory")
    ap.add_argument("--only", nargs="*", help="only build these fixtures")
    args = ap.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)

    texts = corpus_texts()
    tok_jsons = {
        "qwen": build_qwen_tokenizer(texts),
        "neox": build_neox_tokenizer(texts),
        "llama": build_llama_tokenizer(texts),
    }
    for spec in FIXTURES:
        if args.only and spec["name"] not in args.only:
            continue
        build_fixture(spec, args.out, tok_jsons)
    return 0


if __name__ == "__main__":
    sys.exit(main())
