#!/usr/bin/env python3
"""Dev-time helper (not run by CI): builds a Hugging Face tokenizer.json with Qwen's real
151,646-token vocabulary, for benchmarks of the grammar token mask on a large vocabulary
without downloading a model.

Source: the PyPI wheel dashscope==1.20.0 ships dashscope/resources/qwen.tiktoken (Qwen-7B's
byte-level BPE: one "base64(token bytes) rank" per line, 151,643 ranks). This script
  1. downloads the wheel with `pip download` (cached in the output directory),
  2. rebuilds the BPE merges from the ranks: every split (a, b) of a token t with a, b and t all
     in the vocabulary, ordered by t's rank -- tiktoken merges the adjacent pair whose
     concatenation has the lowest rank, which is what a merge list in that order does,
  3. writes tokenizer.json: byte-level BPE with ignore_merges (tiktoken takes a pre-token that
     is itself a token whole), Qwen's pre-tokenizer regex, and <|endoftext|> <|im_start|>
     <|im_end|> as special tokens 151643..151645 (Qwen's ids),
  4. checks it: loads with tokenizers.Tokenizer.from_file and round-trips sample texts; when the
     `tiktoken` package is importable, compares token ids with tiktoken on the same ranks; when
     the moe binary exists, compares `moe tokenize` with the Python ids.

Usage:
  python3 scripts/qwen-vocab.py [--out build/qwen-vocab] [--moe build/tools/moe]
Output: OUT/tokenizer.json (about 9 MB) and OUT/tokenizer_config.json. OUT must lie outside the
repository or in an ignored build*/ directory. Needs `pip` and the `tokenizers` package; for the
tiktoken cross-check: `pip install --user tiktoken`.
"""
import argparse
import base64
import json
import os
import subprocess
import sys
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEEL_SPEC = 'dashscope==1.20.0'
RESOURCE = 'dashscope/resources/qwen.tiktoken'
# Qwen-7B's pre-tokenizer (dashscope/tokenizers/qwen_tokenizer.py, PAT_STR); digits one by one.
QWEN_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
                r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
SAMPLES = [
    'Hello, world! This is a test of the Qwen vocabulary.',
    '{"name": "Ada", "age": 36, "tags": ["math", "engines"], "ok": true}',
    'def f(x):\n    return x ** 2  # square\n\n\n',
    '数字 12345 和中文，日本語のテキスト、한국어 — émojis 😀👍🏽 and ZWJ 👩‍👩‍👧',
    "It's   spaced\t\ttabs\r\nCRLF   ",
    '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|endoftext|>',
    ' leading space, trailing space ',
    '\u00a0nbsp\u2028line sep\u200bzero width',
]


def die(msg):
    print(f'qwen-vocab: {msg}', file=sys.stderr)
    sys.exit(1)


def check_out_dir(out):
    """Refuses a directory inside the repository unless it is an ignored build*/ directory."""
    out = os.path.realpath(out)
    rel = os.path.relpath(out, REPO)
    if rel == '.' or not rel.startswith('..'):
        top = rel.split(os.sep)[0]
        if not top.startswith('build'):
            die(f'--out {out} is inside the repository; use build*/ (ignored) or a directory outside it')
    return out


def fetch_ranks(out):
    """The qwen.tiktoken ranks, from the dashscope wheel (downloaded once into OUT/wheel)."""
    wheel_dir = os.path.join(out, 'wheel')
    wheels = [f for f in os.listdir(wheel_dir) if f.endswith('.whl')] if os.path.isdir(wheel_dir) else []
    if not wheels:
        print(f'qwen-vocab: pip download {WHEEL_SPEC} -> {wheel_dir}')
        r = subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:',
                            '-d', wheel_dir, WHEEL_SPEC])
        if r.returncode != 0:
            die(f'pip download {WHEEL_SPEC} failed (no network? a proxy needs PIP_INDEX_URL)')
        wheels = [f for f in os.listdir(wheel_dir) if f.endswith('.whl')]
        if not wheels:
            die(f'pip download left no wheel in {wheel_dir}')
    with zipfile.ZipFile(os.path.join(wheel_dir, sorted(wheels)[0])) as z:
        data = z.read(RESOURCE)
    ranks = {}
    for line in data.splitlines():
        if not line:
            continue
        tok, rank = line.split()
        ranks[base64.b64decode(tok)] = int(rank)
    if sorted(ranks.values()) != list(range(len(ranks))):
        die(f'{RESOURCE}: ranks are not 0..{len(ranks) - 1} without gaps')
    return ranks


def bytes_to_unicode():
    """GPT-2's byte -> printable character map that byte-level BPE vocabularies are written in."""
    keep = list(range(ord('!'), ord('~') + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def build_tokenizer_json(ranks):
    table = bytes_to_unicode()
    text = {tok: ''.join(table[b] for b in tok) for tok in ranks}
    vocab = {text[tok]: rank for tok, rank in ranks.items()}
    merges = []
    for tok, rank in ranks.items():
        if len(tok) < 2:
            continue
        splits = [(tok[:i], tok[i:]) for i in range(1, len(tok)) if tok[:i] in ranks and tok[i:] in ranks]
        splits.sort(key=lambda ab: (ranks[ab[0]], ranks[ab[1]]))
        merges.extend((rank, a, b) for a, b in splits)
    merges.sort(key=lambda m: m[0])  # stable: the per-token order above stays
    first_special = len(ranks)
    byte_level = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False}
    return {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': [{'id': first_special + i, 'content': s, 'single_word': False, 'lstrip': False,
                          'rstrip': False, 'normalized': False, 'special': True} for i, s in enumerate(SPECIALS)],
        'normalizer': None,  # tiktoken does not normalize (Qwen2's HF files add NFC)
        'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [
            {'type': 'Split', 'pattern': {'Regex': QWEN_PATTERN}, 'behavior': 'Isolated', 'invert': False},
            byte_level]},
        'post_processor': byte_level,
        'decoder': byte_level,
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': '',
                  'end_of_word_suffix': '', 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': True,
                  'vocab': vocab, 'merges': [[text[a], text[b]] for _, a, b in merges]},
    }, len(merges)


def verify(path, ranks, moe):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        die('the tokenizers package is missing: pip install --user tokenizers')
    tk = Tokenizer.from_file(path)
    size = tk.get_vocab_size(with_added_tokens=True)
    if size != len(ranks) + len(SPECIALS):
        die(f'vocab size {size}, expected {len(ranks) + len(SPECIALS)}')
    ids = {}
    for s in SAMPLES:
        ids[s] = tk.encode(s, add_special_tokens=False).ids
        back = tk.decode(ids[s], skip_special_tokens=False)
        if back != s:
            die(f'round trip failed: {s!r} -> {ids[s]} -> {back!r}')
    print(f'qwen-vocab: tokenizers: loads, {len(SAMPLES)} samples round-trip')
    try:
        import tiktoken
    except ImportError:
        tiktoken = None
        print('qwen-vocab: tiktoken not installed: id cross-check skipped (pip install --user tiktoken)')
    if tiktoken:
        enc = tiktoken.Encoding('qwen', pat_str=QWEN_PATTERN, mergeable_ranks=ranks,
                                special_tokens={s: len(ranks) + i for i, s in enumerate(SPECIALS)})
        texts = list(SAMPLES)
        import glob
        for p in [os.path.join(REPO, 'README.md')] + sorted(glob.glob(os.path.join(REPO, 'docs', '*.md')))[:4]:
            if os.path.isfile(p):
                texts.append(open(p, encoding='utf-8', errors='replace').read())
        for t in texts:
            want = enc.encode(t, allowed_special='all')
            got = tk.encode(t, add_special_tokens=False).ids
            if want != got:
                at = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
                die(f'ids differ from tiktoken at token {at}: tiktoken {want[at:at + 5]} vs tokenizers '
                    f'{got[at:at + 5]} in {t[:60]!r}')
        print(f'qwen-vocab: tiktoken: identical ids on {len(texts)} texts')
    if moe and os.path.isfile(moe) and os.access(moe, os.X_OK):
        for s in SAMPLES:
            r = subprocess.run([moe, 'tokenize', '-m', os.path.dirname(path), '--text', s, '--no-special'],
                               capture_output=True, text=True)
            if r.returncode != 0:
                die(f'{moe} tokenize failed: {r.stderr.strip()}')
            if json.loads(r.stdout) != ids[s]:
                die(f'moe tokenize {s!r}: {r.stdout.strip()} vs tokenizers {ids[s]}')
        print(f'qwen-vocab: {moe} tokenize: same ids on {len(SAMPLES)} samples')
    elif moe:
        print(f'qwen-vocab: {moe} not built: C++ check skipped')
    return size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=os.path.join(REPO, 'build', 'qwen-vocab'))
    ap.add_argument('--moe', default=os.path.join(REPO, 'build', 'tools', 'moe'),
                    help="moe binary for the C++ check ('' to skip)")
    args = ap.parse_args()
    t0 = time.time()
    out = check_out_dir(args.out)
    os.makedirs(out, exist_ok=True)
    ranks = fetch_ranks(out)
    tj, n_merges = build_tokenizer_json(ranks)
    path = os.path.join(out, 'tokenizer.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(tj, f, ensure_ascii=False)
    # What loaders that look beside tokenizer.json expect (special tokens, no BOS).
    with open(os.path.join(out, 'tokenizer_config.json'), 'w', encoding='utf-8') as f:
        json.dump({'tokenizer_class': 'PreTrainedTokenizerFast', 'eos_token': '<|endoftext|>',
                   'pad_token': '<|endoftext|>', 'bos_token': None, 'add_bos_token': False,
                   'model_max_length': 32768}, f, indent=2)
    print(f'qwen-vocab: {len(ranks)} ranks, {n_merges} merges -> {path}')
    size = verify(path, ranks, args.moe)
    print(f'qwen-vocab: vocab size {size} ({len(ranks)} BPE + {len(SPECIALS)} special); {time.time() - t0:.1f}s')


if __name__ == '__main__':
    main()
