"""Tokenizer corpus and the byte-level BPE tokenizers of the fixtures (development-time only).

Holds the seeded training corpus (`corpus_texts`: a fixed, sorted selection of the running
Python's standard library sources plus repeated multilingual sentences), the builders of the
four tokenizer.json flavours the fixtures ship -- `qwen` (Qwen2/3: Split regex + ByteLevel,
merges as pairs), `neox` (GPT-NeoX: ByteLevel, normalized whitespace added tokens, legacy merge
strings), `llama` (Mixtral: SentencePiece-style BPE with byte fallback, Prepend/Replace
normalizer) and `o200k` (gpt-oss: tiktoken's o200k pattern, the harmony added tokens) -- their
tokenizer_config.json contents and chat templates, `write_tokenizer_json`, and `_resolve`, which
turns the token strings of a fixture spec into ids.
"""

from __future__ import annotations

import glob
import json
import os
import sysconfig

import fixture_env  # noqa: F401  (offline, quiet Hugging Face libraries)
from tokenizers import (
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


# ----------------------------------------------------------------------------
# Tokenizer: o200k-style byte-level BPE, as gpt-oss's tokenizer.json
# ----------------------------------------------------------------------------

# The o200k / o200k_harmony split pattern (tiktoken's, also the Split regex of the
# gpt-oss tokenizer.json).
O200K_SPLIT_REGEX = "|".join(
    [
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"\p{N}{1,3}",
        r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
        r"\s*[\r\n]+",
        r"\s+(?!\S)",
        r"\s+",
    ]
)

# gpt-oss's added tokens from <|startoftext|> (199998) to <|endofprompt|> (200018), in id
# order, reserved ones included; here they follow the BPE vocabulary the same way.
HARMONY_ADDED = [
    "<|startoftext|>",
    "<|endoftext|>",
    "<|reserved_200000|>",
    "<|reserved_200001|>",
    "<|return|>",
    "<|constrain|>",
    "<|reserved_200004|>",
    "<|channel|>",
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|reserved_200009|>",
    "<|reserved_200010|>",
    "<|reserved_200011|>",
    "<|call|>",
    "<|reserved_200013|>",
    "<|reserved_200014|>",
    "<|reserved_200015|>",
    "<|reserved_200016|>",
    "<|reserved_200017|>",
    "<|endofprompt|>",
]
O200K_MODEL_VOCAB = 1500 - len(HARMONY_ADDED)  # 1479 + 21 added = 1500

TOKENIZER_DESCRIPTION = (
    "byte-level BPE trained on make_fixtures.corpus_texts() (vocab 1479) + 21 special added tokens "
    "<|startoftext|> .. <|endofprompt|> in gpt-oss's id order (reserved ones included). tokenizer.json built "
    "like transformers' TikTokenConverter (which made the gpt-oss one): normalizer null; pre_tokenizer "
    "Sequence[Split(Regex(o200k pattern), behavior Isolated, invert false), ByteLevel(add_prefix_space false, "
    "trim_offsets true, use_regex false)]; decoder ByteLevel (defaults); post_processor ByteLevel(trim_offsets "
    "false), which adds no tokens"
)


def build_o200k_tokenizer(texts: list[str]) -> dict:
    tok = Tokenizer(models.BPE())
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(O200K_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=O200K_MODEL_VOCAB,
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.get_vocab_size(with_added_tokens=False) != O200K_MODEL_VOCAB:
        raise RuntimeError(f"BPE vocab {tok.get_vocab_size(with_added_tokens=False)} != {O200K_MODEL_VOCAB}")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in HARMONY_ADDED])
    j = json.loads(tok.to_str())
    # What TikTokenConverter's objects serialise to (the Python constructors of the
    # ByteLevel decoder / post-processor ignore some flags; spell them out).
    j["normalizer"] = None
    j["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    j["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    j["model"]["unk_token"] = None
    j["model"]["continuing_subword_prefix"] = None
    j["model"]["end_of_word_suffix"] = None
    j["model"]["fuse_unk"] = False
    j["model"]["byte_fallback"] = False
    for i, a in enumerate(j["added_tokens"]):
        if a["content"] != HARMONY_ADDED[i] or a["id"] != O200K_MODEL_VOCAB + i:
            raise RuntimeError(f"unexpected added token {a}")
    return j


def gpt_oss_tokenizer_config(tok_json: dict) -> dict:
    """As openai/gpt-oss-20b's tokenizer_config.json (its chat template is chat_template.jinja)."""
    return {
        "added_tokens_decoder": _added_tokens_decoder(tok_json),
        "bos_token": "<|startoftext|>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|return|>",
        "extra_special_tokens": {},
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


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
