#!/usr/bin/env python3
"""Differential check of moe::Tokenizer against Hugging Face `tokenizers` (dev-time only; CI does
not run it).

Generates random strings (mixed scripts, whitespace, emoji, combining marks, control characters,
added tokens) and random id lists, then compares encode (with and without special tokens),
decode (with and without skip_special_tokens) and streaming decode with the C++ implementation
run through the `tokenizer_dump` helper.

  python3 tests/tokenizer/differential.py --dump build/tests/tokenizer/tokenizer_dump \
      tests/fixtures/qwen3_moe /path/to/other/tokenizer_dir ...

make_dev_tokenizers.py builds more tokenizer configurations (DeepSeek-V3, Metaspace, ...) to
run this against.

A directory argument must hold tokenizer.json (tokenizer_config.json optional). With no
directories, every tests/fixtures/* directory is used.
"""
import argparse
import glob
import json
import os
import random
import subprocess
import sys
import time

from tokenizers import Tokenizer

SCRIPTS = {
    'latin': 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ',
    'latin_ext': 'éèêëàâäôöûüçñßøåæœÉÈÀÇÑÖÜĳſİıŁłŠšŽžK',
    'greek': 'αβγδεζηθικλμνξοπρσςτυφχψωΑΒΓΔΕΣΩάέή',
    'cyr': 'абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗИЙ',
    'cjk': '的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学',
    'kana': 'あいうえおかきくけこさしすせそたちつてとなにぬねのアイウエオカキクケコサシスセソー',
    'hangul': '가나다라마바사아자차카타파하한국어대학교서울사람',
    'arabic': 'ابتثجحخدذرزسشصضطظعغفقكلمنهوي',
    'hebrew': 'אבגדהוזחטיכלמנסעפצקרשת',
    'deva': 'कखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसह्िीुूेैोौं',
    'thai': 'กขคงจฉชซญดตถทนบปผพฟภมยรลวสหอฮะาิีึืุู่้',
    'digits': '0123456789',
    'digits_other': '٠١٢٣٤٥٦٧٨٩０１２３４５６７８９²³½Ⅻ①',
    'punct': '.,;:!?\'"()[]{}<>-_=+*/\\|@#$%^&~`',
    'punct_u': '“”‘’«»—–…·•€£¥©®™°±×÷≠≤≥∞√∑∫',
    'emoji': ['😀', '😂', '🤔', '👍', '👍🏽', '❤️', '🎉', '🚀', '👨‍👩‍👧', '🇫🇷', '🏳️‍🌈', '✨', '🔥', '🙏'],
    'combining': ['e\u0301', 'a\u0308', 'n\u0303', 'o\u0302\u0323', '\u1100\u1161\u11a8', 'A\u030a',
                  '\u0301x', '\u0130', 'Ω\u0345'],
    'ws': [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', '\r', '\u00a0', '\u3000', '\u2028', '\u0085',
           '\u180e', '\u2009', ' \n ', '\u200b', '\x0b', '\x0c', '\u1680', '\u202f'],
    'ctrl': ['\x00', '\x07', '\x1b', '\x7f', '\ufeff', '\ue000', '\U0010ffff', '\u0378', '\uffff',
             '\ufffd', '\U0001f9ff', '\U0002a700'],
    'contr': ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re", "’s", "'ſ", "'K"],
}
WEIGHTS = {'latin': 30, 'latin_ext': 4, 'greek': 3, 'cyr': 3, 'cjk': 5, 'kana': 3, 'hangul': 2,
           'arabic': 2, 'hebrew': 1, 'deva': 2, 'thai': 1, 'digits': 5, 'digits_other': 1,
           'punct': 8, 'punct_u': 2, 'emoji': 3, 'combining': 2, 'ws': 12, 'ctrl': 1, 'contr': 3}


def random_word(rng, script):
    src = SCRIPTS[script]
    if isinstance(src, list):
        return rng.choice(src)
    n = rng.choice([1, 1, 2, 3, 3, 4, 5, 6, 8, 12])
    return ''.join(rng.choice(src) for _ in range(n))


def random_text(rng, extra_tokens=(), max_words=20):
    keys = list(WEIGHTS)
    weights = [WEIGHTS[k] for k in keys]
    out = []
    for _ in range(rng.randint(0, max_words)):
        if extra_tokens and rng.random() < 0.06:
            out.append(rng.choice(extra_tokens))
        else:
            out.append(random_word(rng, rng.choices(keys, weights)[0]))
        if rng.random() < 0.5:
            out.append(rng.choice([' ', ' ', ' ', '\n', '  ']))
    return ''.join(out)


def random_ids(rng, tok, encodings, specials):
    vocab = tok.get_vocab_size(with_added_tokens=True)
    kind = rng.random()
    if kind < 0.4 and encodings:
        ids = list(rng.choice(encodings))
    elif kind < 0.7:
        ids = [rng.randrange(vocab) for _ in range(rng.randint(0, 30))]
    else:  # pieces of real encodings glued with specials / random ids (byte tokens, etc.)
        ids = []
        for _ in range(rng.randint(1, 5)):
            if encodings:
                e = rng.choice(encodings)
                a = rng.randint(0, len(e))
                ids += e[a:a + rng.randint(0, 12)]
            if specials and rng.random() < 0.5:
                ids.append(rng.choice(specials))
            if rng.random() < 0.3:
                ids.append(rng.randrange(vocab))
    return ids


def prefix_stable(tok, ids):
    """False when later ids change the text of earlier ones (e.g. an invalid byte joining a run
    of ByteFallback byte tokens turns the whole run into U+FFFD). A streaming decoder that returns
    complete characters as soon as they appear cannot equal decode() there (HF's DecodeStream
    neither), so such sequences are not stream-checked."""
    full = tok.decode(ids, skip_special_tokens=False)
    for k in range(1, len(ids)):
        part = tok.decode(ids[:k], skip_special_tokens=False).rstrip('\ufffd')
        if not full.startswith(part):
            return False
    return True


def check_dir(d, dump, n, seed, verbose):
    tj = os.path.join(d, 'tokenizer.json')
    cj = os.path.join(d, 'tokenizer_config.json')
    tok = Tokenizer.from_file(tj)
    rng = random.Random(seed)
    added = [t.content for t in tok.get_added_tokens_decoder().values()]
    specials = [i for i, t in tok.get_added_tokens_decoder().items() if t.special]
    texts = [random_text(rng, added) for _ in range(n)]
    texts += ['', ' ', '  ', '\n', 'Hello world', ' Hello', 'Hello  world ', "I'm fine, isn't it? He'LL go.",
              '\u00e9\u0065\u0301', 'a' * 3000, ' ' * 100 + 'x', '🤔' * 20, ''.join(added)]
    texts += ['\n'.join(open(f, encoding='utf-8', errors='replace').read()[:4000]
                        for f in sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), 'json', '*.py'))))]
    t0 = time.time()
    hf_enc = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    hf_enc_sp = [tok.encode(t, add_special_tokens=True).ids for t in texts]
    hf_secs = time.time() - t0
    id_lists = [random_ids(rng, tok, hf_enc, specials) for _ in range(n)]
    hf_dec = [tok.decode(ids, skip_special_tokens=False) for ids in id_lists]
    hf_dec_skip = [tok.decode(ids, skip_special_tokens=True) for ids in id_lists]

    args = [dump, tj] + ([cj] if os.path.exists(cj) else [])
    req = json.dumps({'texts': texts, 'id_lists': id_lists})
    res = subprocess.run(args, input=req.encode(), capture_output=True)
    if res.returncode != 0:
        print(f'{d}: tokenizer_dump failed: {res.stderr.decode()}')
        return False
    out = json.loads(res.stdout)
    bad = 0
    unstable = [not prefix_stable(tok, ids) for ids in id_lists]
    for name, mine, ref, inputs in [('encode', out['encode'], hf_enc, texts),
                                    ('encode_special', out['encode_special'], hf_enc_sp, texts),
                                    ('decode', out['decode'], hf_dec, id_lists),
                                    ('decode_skip', out['decode_skip'], hf_dec_skip, id_lists),
                                    ('stream', out['stream'], hf_dec, id_lists)]:
        for i, (a, b) in enumerate(zip(mine, ref)):
            if name == 'stream' and unstable[i]:
                continue
            if a != b:
                bad += 1
                if bad <= verbose:
                    print(f'  {name} mismatch: input={inputs[i]!r}\n    moe={a!r}\n    hf ={b!r}')
    nbytes = sum(len(t.encode()) for t in texts)
    print(f'{d}: {len(texts)} texts, {len(id_lists)} id lists ({sum(unstable)} not stream-checkable), {bad} mismatches; '
          f'moe encode {nbytes / max(out["seconds_encode"], 1e-9) / 1e6:.1f} MB/s '
          f'(HF single-threaded loop {nbytes / hf_secs / 1e6:.1f} MB/s)')
    return bad == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('dirs', nargs='*')
    ap.add_argument('--dump', default='build/tests/tokenizer/tokenizer_dump')
    ap.add_argument('-n', type=int, default=3000)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--verbose', type=int, default=5)
    a = ap.parse_args()
    dirs = a.dirs or sorted(os.path.dirname(p) for p in glob.glob('tests/fixtures/*/tokenizer.json'))
    ok = all([check_dir(d, a.dump, a.n, a.seed, a.verbose) for d in dirs])
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
