#!/usr/bin/env python3
"""Dev-time helper (not run by CI): trains small tokenizers with HF `tokenizers` that mirror the
configurations of real model families (Qwen2/3, GPT-NeoX/OLMoE, GPT-2 with add_prefix_space,
DeepSeek-V3, Llama-3 ignore_merges, Mixtral/Llama-2 byte-fallback BPE, Metaspace variants,
CLIP-like and ##-prefix BPEs, and added tokens with lstrip/rstrip/single_word/normalized), so
that differential.py can compare them with moe::Tokenizer:

  python3 tests/tokenizer/make_dev_tokenizers.py /tmp/moe_dev_tokenizers
  python3 tests/tokenizer/differential.py --dump <build>/tests/tokenizer/tokenizer_dump /tmp/moe_dev_tokenizers/*
"""
import glob
import json
import os
import random
import sys

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from differential import random_text  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else '/tmp/moe_dev_tokenizers'
rng = random.Random(1)
texts = [random_text(rng, max_words=30) for _ in range(15000)]
# plus python source
for f in sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), '*.py')))[:120]:
    texts.extend(open(f, encoding='utf-8', errors='replace').read().splitlines())

QWEN_RE = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
DS_RE3 = r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

def save(name, tok, config, patch=None):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    j = json.loads(tok.to_str())
    if patch: patch(j)
    with open(f'{d}/tokenizer.json', 'w') as f: json.dump(j, f, ensure_ascii=False, indent=1)
    with open(f'{d}/tokenizer_config.json', 'w') as f: json.dump(config, f, ensure_ascii=False, indent=1)
    Tokenizer.from_file(f'{d}/tokenizer.json')  # sanity: HF can load it

def byte_level_trained(pre, vocab_size=3000, normalizer=None):
    tok = Tokenizer(models.BPE())
    if normalizer: tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tr = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, tr)
    tok.decoder = decoders.ByteLevel()
    return tok

# 1. Qwen2/3
qwen_pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN_RE), behavior='isolated', invert=False),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
tok = byte_level_trained(qwen_pre, normalizer=normalizers.NFC())
tok.post_processor = processors.ByteLevel(trim_offsets=False)
tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ['<|endoftext|>', '<|im_start|>', '<|im_end|>']])
tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ['<think>', '</think>', '<tool_call>']])
qcfg = {'bos_token': None, 'eos_token': '<|im_end|>', 'chat_template': "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"}
save('qwen', tok, qcfg)

# 1b. Qwen with added-token flags
tok.add_special_tokens([AddedToken('<mask>', lstrip=True, special=True, normalized=False)])
tok.add_tokens([AddedToken('<R>', rstrip=True, normalized=False), AddedToken('<LR>', lstrip=True, rstrip=True, normalized=False),
                AddedToken('word', single_word=True, normalized=False), AddedToken('Ünï', normalized=True),
                AddedToken('e\u0301t\u00e9', normalized=True), AddedToken('  ', normalized=True),
                AddedToken('<sw>', single_word=True, normalized=True, lstrip=True)])
save('qwen_flags', tok, qcfg)

# 2. GPT-NeoX / OLMoE
tok = byte_level_trained(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), normalizer=normalizers.NFC())
tok.post_processor = processors.ByteLevel(trim_offsets=True)
tok.add_special_tokens([AddedToken('<|endoftext|>', special=True, normalized=False), AddedToken('<|padding|>', special=True, normalized=False)])
tok.add_tokens([AddedToken(' ' * n, normalized=True) for n in (24, 2, 3, 4, 8)] + [AddedToken('|||EMAIL_ADDRESS|||', normalized=True)])
save('neox', tok, {'bos_token': '<|endoftext|>', 'eos_token': '<|endoftext|>'})

# 2b. GPT-2 style with add_prefix_space and an EOS template
tok = byte_level_trained(pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True))
tok.add_special_tokens([AddedToken('<|endoftext|>', special=True, normalized=False)])
eid = tok.token_to_id('<|endoftext|>')
tok.post_processor = processors.TemplateProcessing(single='$A <|endoftext|>', special_tokens=[('<|endoftext|>', eid)])
save('gpt2_prefix', tok, {'eos_token': {'content': '<|endoftext|>', '__type': 'AddedToken'}})

# 2c. DeepSeek-V3 style
ds_pre = pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(r"\p{N}{1,3}"), behavior='isolated', invert=False),
    pre_tokenizers.Split(Regex(r"[一-龥぀-ゟ゠-ヿ]+"), behavior='isolated', invert=False),
    pre_tokenizers.Split(Regex(DS_RE3), behavior='isolated', invert=False),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
tok = byte_level_trained(ds_pre)
tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ['<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<｜User｜>']])
bid = tok.token_to_id('<｜begin▁of▁sentence｜>')
tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False),
    processors.TemplateProcessing(single='<｜begin▁of▁sentence｜> $A', special_tokens=[('<｜begin▁of▁sentence｜>', bid)])])
save('deepseek', tok, {'bos_token': '<｜begin▁of▁sentence｜>', 'eos_token': '<｜end▁of▁sentence｜>'})

# 2d. Llama-3 style: ignore_merges
def patch_ignore(j): j['model']['ignore_merges'] = True
tok = byte_level_trained(qwen_pre)
save('ignore_merges', tok, {}, patch_ignore)

# 3. Llama/Mixtral SentencePiece-style BPE with byte fallback
bytes_toks = [f'<0x{b:02X}>' for b in range(256)]
def sp_trained():
    tok = Tokenizer(models.BPE(unk_token='<unk>', byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement='▁', prepend_scheme='first', split=True)
    tr = trainers.BpeTrainer(vocab_size=3000, special_tokens=['<unk>', '<s>', '</s>'] + bytes_toks, limit_alphabet=250, show_progress=False)
    tok.train_from_iterator(texts, tr)
    return tok
def drop_byte_added(j):
    j['added_tokens'] = [t for t in j['added_tokens'] if t['content'] not in bytes_toks]
    for t in j['added_tokens']: t['normalized'] = False
tok = sp_trained()
tok.pre_tokenizer = None
tok.normalizer = normalizers.Sequence([normalizers.Prepend('▁'), normalizers.Replace(' ', '▁')])
tok.decoder = decoders.Sequence([decoders.Replace('▁', ' '), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(' ', 1, 0)])
tok.post_processor = processors.TemplateProcessing(single='<s> $A', pair='<s> $A <s> $B', special_tokens=[('<s>', 1)])
mcfg = {'bos_token': '<s>', 'eos_token': '</s>', 'add_bos_token': True, 'add_eos_token': False, 'chat_template': "{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}"}
save('mixtral', tok, mcfg, drop_byte_added)
# 3b. with a normalized added token (its pattern gets the Prepend) and a lstrip one
def patch_mixtral_extra(j):
    drop_byte_added(j)
    n = max(j['model']['vocab'].values()) + 1
    j['added_tokens'] += [
        {'id': n, 'content': '<extra>', 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': True, 'special': False},
        {'id': n + 1, 'content': '[INST]', 'single_word': False, 'lstrip': True, 'rstrip': True, 'normalized': False, 'special': True}]
save('mixtral_extra', tok, mcfg, patch_mixtral_extra)

# 3c. Metaspace variants
for scheme in ['first', 'always', 'never']:
    for split in [True, False]:
        tok = sp_trained()
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement='▁', prepend_scheme=scheme, split=split)
        tok.decoder = decoders.Metaspace(replacement='▁', prepend_scheme=scheme, split=split)
        tok.add_tokens([AddedToken('<tool>', normalized=False)])
        save(f'metaspace_{scheme}_{int(split)}', tok, {'bos_token': '<s>', 'eos_token': '</s>'}, drop_byte_added)

# 4. CLIP-ish: lowercase + whitespace + end_of_word_suffix
tok = Tokenizer(models.BPE(end_of_word_suffix='</w>', unk_token='<unk>'))
tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)])
tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=2000, end_of_word_suffix='</w>', special_tokens=['<unk>'], show_progress=False))
tok.decoder = decoders.BPEDecoder(suffix='</w>')
save('clip_like', tok, {})

# 5. continuing_subword_prefix + WhitespaceSplit + Punctuation + strip accents
tok = Tokenizer(models.BPE(continuing_subword_prefix='##', unk_token='<unk>', fuse_unk=False))
tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Strip()])
tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=2000, continuing_subword_prefix='##', special_tokens=['<unk>'], limit_alphabet=200, show_progress=False))
save('prefix_like', tok, {})
print('ok')
