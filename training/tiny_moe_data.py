"""Corpus and synthetic tool-call chats for the tiny MoE model (models/tiny-moe).

Shared by training/train_tiny_moe.py and training/eval_tiny_moe.py. Everything is
deterministic given the seed.

Chat format (Qwen/ChatML style, the chat template of models/tiny-moe):

    <|im_start|>user
    What is the median of 3, 10, 4, 9?<|im_end|>
    <|im_start|>assistant
    <tool_call>
    {"name": "median", "arguments": {"numbers": [3, 10, 4, 9]}}
    </tool_call><|im_end|>
    <|im_start|>tool
    <tool_response>
    6.5
    </tool_response><|im_end|>
    <|im_start|>assistant
    The median is 6.5.<|im_end|>
"""

from __future__ import annotations

import ast
import datetime as _dt
import glob
import hashlib
import html
import html.parser
import json
import os
import random
import re
import statistics

STDLIB_DIR = "/root/.pyenv/versions/3.11.7/lib/python3.11"
DOC_DIR = "/usr/share/doc/python3.11/html"

# ----------------------------------------------------------------------------
# Text / code corpus
# ----------------------------------------------------------------------------

# Directories skipped entirely (third-party packages, huge generated files).
_SKIP_PARTS = ("site-packages", "__pycache__", "lib2to3/tests/data", "/config-3.11")
_SKIP_PREFIXES = ("test/", "encodings/", "site-packages/", "lib2to3/tests/", "pydoc_data/")
MAX_FILE_CHARS = 200_000


def _heldout(relpath: str, modulus: int) -> bool:
    h = int(hashlib.sha256(relpath.encode()).hexdigest()[:8], 16)
    return h % modulus == 0


def stdlib_files() -> list[tuple[str, str]]:
    """(relative path, text) of the stdlib sources, sorted by path."""
    out = []
    for path in sorted(glob.glob(os.path.join(STDLIB_DIR, "**", "*.py"), recursive=True)):
        rel = os.path.relpath(path, STDLIB_DIR)
        if any(p in path for p in _SKIP_PARTS) or rel.startswith(_SKIP_PREFIXES) or "/tests/" in rel \
                or "idle_test" in rel:
            continue
        try:
            with open(path, "r", encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        if not text.strip() or len(text) > MAX_FILE_CHARS:
            continue
        out.append((rel, text))
    return out


class _TextExtractor(html.parser.HTMLParser):
    SKIP = {"script", "style", "head", "nav"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        if tag in ("p", "div", "pre", "li", "h1", "h2", "h3", "h4", "dt", "dd", "br", "tr", "section"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip:
            self.skip -= 1
        if tag in ("p", "pre", "li", "h1", "h2", "h3", "h4", "dt", "dd", "tr"):
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_text(src: str) -> str:
    p = _TextExtractor()
    p.feed(src)
    text = "".join(p.parts).replace("\u00b6", "")
    lines = [ln.rstrip() for ln in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def doc_files() -> list[tuple[str, str]]:
    """(relative path, plain text) of the Python HTML documentation, if installed."""
    out = []
    if not os.path.isdir(DOC_DIR):
        return out
    for path in sorted(glob.glob(os.path.join(DOC_DIR, "**", "*.html"), recursive=True)):
        rel = os.path.relpath(path, DOC_DIR)
        if rel.startswith(("_static", "genindex", "py-modindex", "search")):
            continue
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            src = f.read()
        m = re.search(r'<div class="body" role="main">(.*?)<footer|<div class="body" role="main">(.*)', src, re.S)
        body = (m.group(1) or m.group(2)) if m else src
        text = html_to_text(body)
        if len(text) < 200:
            continue
        out.append(("doc/" + rel, text))
    return out


def corpus_split(use_docs: bool = True):
    """Return (train_docs, heldout_docs), each a list of (name, text).

    Held out: stdlib files / doc pages whose sha256(path) % 40 == 0."""
    files = stdlib_files()
    if use_docs:
        files += doc_files()
    train, held = [], []
    for rel, text in files:
        (held if _heldout(rel, 40) else train).append((rel, text))
    return train, held


# ----------------------------------------------------------------------------
# Tools
# ----------------------------------------------------------------------------

def fmt_num(x) -> str:
    """Canonical number formatting used in tool results and answers."""
    if isinstance(x, int):
        return str(x)
    if abs(x - round(x)) < 1e-9 and abs(x) < 1e15:
        return str(int(round(x)))
    s = f"{x:.4f}".rstrip("0").rstrip(".")
    return s


def safe_eval(expr: str):
    node = ast.parse(expr, mode="eval")

    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
            return n.value
        if isinstance(n, ast.BinOp):
            a, b = ev(n.left), ev(n.right)
            if isinstance(n.op, ast.Add):
                return a + b
            if isinstance(n.op, ast.Sub):
                return a - b
            if isinstance(n.op, ast.Mult):
                return a * b
            if isinstance(n.op, ast.Div):
                return a / b
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        raise ValueError(expr)

    return ev(node)


UNITS = {
    # (from, to): factor or function
    ("km", "mi"): lambda v: v * 0.621371,
    ("mi", "km"): lambda v: v * 1.609344,
    ("kg", "lb"): lambda v: v * 2.204623,
    ("lb", "kg"): lambda v: v * 0.453592,
    ("m", "ft"): lambda v: v * 3.28084,
    ("ft", "m"): lambda v: v * 0.3048,
    ("c", "f"): lambda v: v * 9 / 5 + 32,
    ("f", "c"): lambda v: (v - 32) * 5 / 9,
    ("l", "gal"): lambda v: v * 0.264172,
    ("gal", "l"): lambda v: v * 3.785412,
    ("cm", "in"): lambda v: v / 2.54,
    ("in", "cm"): lambda v: v * 2.54,
}
UNIT_WORDS = {
    "km": ["km", "kilometers", "kilometres"],
    "mi": ["miles", "mi"],
    "kg": ["kg", "kilograms"],
    "lb": ["pounds", "lb"],
    "m": ["meters", "metres", "m"],
    "ft": ["feet", "ft"],
    "c": ["degrees Celsius", "Celsius", "C"],
    "f": ["degrees Fahrenheit", "Fahrenheit", "F"],
    "l": ["liters", "litres", "L"],
    "gal": ["gallons", "gal"],
    "cm": ["centimeters", "cm"],
    "in": ["inches", "in"],
}
UNIT_NAME = {"km": "kilometers", "mi": "miles", "kg": "kilograms", "lb": "pounds", "m": "meters",
             "ft": "feet", "c": "degrees Celsius", "f": "degrees Fahrenheit", "l": "liters",
             "gal": "gallons", "cm": "centimeters", "in": "inches"}

COUNTRIES = {
    # country: (capital, currency, language)
    "France": ("Paris", "euro", "French"),
    "Germany": ("Berlin", "euro", "German"),
    "Italy": ("Rome", "euro", "Italian"),
    "Spain": ("Madrid", "euro", "Spanish"),
    "Portugal": ("Lisbon", "euro", "Portuguese"),
    "Japan": ("Tokyo", "yen", "Japanese"),
    "China": ("Beijing", "renminbi", "Chinese"),
    "India": ("New Delhi", "rupee", "Hindi"),
    "Brazil": ("Brasilia", "real", "Portuguese"),
    "Canada": ("Ottawa", "Canadian dollar", "English"),
    "Mexico": ("Mexico City", "peso", "Spanish"),
    "Egypt": ("Cairo", "Egyptian pound", "Arabic"),
    "Kenya": ("Nairobi", "shilling", "Swahili"),
    "Norway": ("Oslo", "krone", "Norwegian"),
    "Sweden": ("Stockholm", "krona", "Swedish"),
    "Poland": ("Warsaw", "zloty", "Polish"),
    "Greece": ("Athens", "euro", "Greek"),
    "Turkey": ("Ankara", "lira", "Turkish"),
    "Russia": ("Moscow", "ruble", "Russian"),
    "Australia": ("Canberra", "Australian dollar", "English"),
    "Argentina": ("Buenos Aires", "peso", "Spanish"),
    "Peru": ("Lima", "sol", "Spanish"),
    "Chile": ("Santiago", "peso", "Spanish"),
    "Thailand": ("Bangkok", "baht", "Thai"),
    "Vietnam": ("Hanoi", "dong", "Vietnamese"),
    "South Korea": ("Seoul", "won", "Korean"),
    "Indonesia": ("Jakarta", "rupiah", "Indonesian"),
    "Nigeria": ("Abuja", "naira", "English"),
    "Ireland": ("Dublin", "euro", "Irish"),
    "Austria": ("Vienna", "euro", "German"),
    "Switzerland": ("Bern", "Swiss franc", "German"),
    "Netherlands": ("Amsterdam", "euro", "Dutch"),
    "Belgium": ("Brussels", "euro", "Dutch"),
    "Finland": ("Helsinki", "euro", "Finnish"),
    "Denmark": ("Copenhagen", "krone", "Danish"),
    "Hungary": ("Budapest", "forint", "Hungarian"),
    "Czechia": ("Prague", "koruna", "Czech"),
    "United Kingdom": ("London", "pound sterling", "English"),
    "New Zealand": ("Wellington", "New Zealand dollar", "English"),
    "Morocco": ("Rabat", "dirham", "Arabic"),
}
ELEMENTS = {
    "hydrogen": 1, "helium": 2, "lithium": 3, "carbon": 6, "nitrogen": 7, "oxygen": 8, "sodium": 11,
    "aluminium": 13, "silicon": 14, "sulfur": 16, "chlorine": 17, "calcium": 20, "iron": 26,
    "copper": 29, "zinc": 30, "silver": 47, "tin": 50, "gold": 79, "mercury": 80, "lead": 82,
    "uranium": 92, "neon": 10, "argon": 18, "potassium": 19, "nickel": 28,
}
PLANETS_MOONS = {"mercury": 0, "venus": 0, "earth": 1, "mars": 2, "jupiter": 95, "saturn": 146,
                 "uranus": 28, "neptune": 16}


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def kv_store() -> dict[str, str]:
    kv = {}
    for c, (cap, cur, lang) in COUNTRIES.items():
        kv[f"capital_of_{slug(c)}"] = cap
        kv[f"currency_of_{slug(c)}"] = cur
        kv[f"language_of_{slug(c)}"] = lang
    for e, z in ELEMENTS.items():
        kv[f"atomic_number_of_{e}"] = str(z)
    for p, n in PLANETS_MOONS.items():
        kv[f"moons_of_{p}"] = str(n)
    return kv


KV = kv_store()


def run_tool(name: str, args: dict) -> str:
    if name == "calculator":
        return fmt_num(safe_eval(args["expression"]))
    if name == "median":
        return fmt_num(statistics.median(args["numbers"]))
    if name == "mean":
        return fmt_num(statistics.fmean(args["numbers"]))
    if name == "convert":
        return fmt_num(round(UNITS[(args["from"], args["to"])](args["value"]), 2))
    if name == "date_diff":
        a = _dt.date.fromisoformat(args["start"])
        b = _dt.date.fromisoformat(args["end"])
        return str((b - a).days)
    if name == "lookup":
        return KV.get(args["key"], "unknown key")
    raise ValueError(name)


TOOL_NAMES = ["calculator", "median", "mean", "convert", "date_diff", "lookup"]

# ----------------------------------------------------------------------------
# Question generators: each returns (user_text, tool_name, args, answer_fn)
# answer_fn(result_str) -> assistant final sentence
# ----------------------------------------------------------------------------


def _polite(rng: random.Random, q: str) -> str:
    r = rng.random()
    if r < 0.15:
        return "Please, " + q[0].lower() + q[1:]
    if r < 0.25:
        return "Hi! " + q
    if r < 0.32:
        return "Quick question: " + q[0].lower() + q[1:]
    if r < 0.38:
        return q.rstrip("?.") + ", please."
    if r < 0.44:
        return q.lower()
    return q


def _num_list(rng: random.Random) -> list[int]:
    n = rng.randint(3, 8)
    hi = rng.choice([10, 20, 50, 100, 1000])
    return [rng.randint(0, hi) for _ in range(n)]


def _list_text(rng: random.Random, nums: list[int]) -> str:
    s = [str(x) for x in nums]
    r = rng.random()
    if r < 0.5:
        return ", ".join(s)
    if r < 0.7:
        return ", ".join(s[:-1]) + " and " + s[-1]
    if r < 0.85:
        return " ".join(s)
    return "[" + ", ".join(s) + "]"


def _expr(rng: random.Random) -> str:
    def atom():
        if rng.random() < 0.8:
            return str(rng.randint(1, 99 if rng.random() < 0.7 else 999))
        return f"{rng.randint(0, 99)}.{rng.randint(1, 9)}"

    n_ops = rng.randint(1, 3)
    parts = [atom()]
    for _ in range(n_ops):
        parts.append(rng.choice(["+", "-", "*", "/", "+", "*"]))
        parts.append(atom())
    if n_ops >= 2 and rng.random() < 0.3:
        # parenthesise the first operation
        parts = ["(" + parts[0]] + parts[1:2] + [parts[2] + ")"] + parts[3:]
    sep = " " if rng.random() < 0.3 else ""
    return sep.join(parts)


def gen_calculator(rng):
    while True:
        e = _expr(rng)
        try:
            v = safe_eval(e)
        except ZeroDivisionError:
            continue
        if abs(v) < 1e9:
            break
    q = rng.choice([
        "What is {e}?", "Calculate {e}.", "Compute {e}", "How much is {e}?", "What's {e}?",
        "Can you work out {e}?", "Evaluate {e} for me.", "{e} = ?", "Use the calculator: {e}",
        "I need the result of {e}.",
    ]).format(e=e)
    ans = lambda r: rng.choice([
        "{e} = {r}.", "The result is {r}.", "{e} equals {r}.", "It comes to {r}.", "The answer is {r}.",
    ]).format(e=e, r=r)
    return _polite(rng, q), "calculator", {"expression": e.replace(" ", "")}, ans


def gen_stat(rng, which):
    nums = _num_list(rng)
    lt = _list_text(rng, nums)
    if which == "median":
        q = rng.choice([
            "What is the median of {l}?", "Find the median of {l}.", "Median of {l}?",
            "Give me the median of these numbers: {l}", "What's the middle value of {l}?",
            "Compute the median of {l}.",
        ]).format(l=lt)
        ans = lambda r: rng.choice(["The median is {r}.", "The median of those numbers is {r}.",
                                    "Median: {r}.", "It is {r}."]).format(r=r)
    else:
        q = rng.choice([
            "What is the mean of {l}?", "Find the average of {l}.", "Average of {l}?",
            "What's the mean of these numbers: {l}", "Compute the arithmetic mean of {l}.",
            "What is the average of {l}?",
        ]).format(l=lt)
        ans = lambda r: rng.choice(["The mean is {r}.", "The average is {r}.",
                                    "Their mean is {r}.", "It is {r}."]).format(r=r)
    return _polite(rng, q), which, {"numbers": nums}, ans


def gen_convert(rng):
    src, dst = rng.choice(sorted(UNITS))
    if rng.random() < 0.75:
        v = rng.randint(1, 500)
    else:
        v = round(rng.uniform(0.1, 200), 1)
    vw = fmt_num(v)
    sw = rng.choice(UNIT_WORDS[src])
    dw = rng.choice(UNIT_WORDS[dst])
    q = rng.choice([
        "Convert {v} {s} to {d}.", "How many {d} is {v} {s}?", "What is {v} {s} in {d}?",
        "{v} {s} in {d}?", "Please convert {v} {s} into {d}.", "How much is {v} {s} in {d}?",
    ]).format(v=vw, s=sw, d=dw)
    ans = lambda r: rng.choice([
        "{v} {s} is {r} {d}.", "That is {r} {d}.", "{v} {s} equals about {r} {d}.",
        "It is approximately {r} {d}.",
    ]).format(v=vw, s=UNIT_NAME[src], d=UNIT_NAME[dst], r=r)
    return _polite(rng, q), "convert", {"value": v, "from": src, "to": dst}, ans


def _rand_date(rng):
    start = _dt.date(1990, 1, 1)
    return start + _dt.timedelta(days=rng.randint(0, 365 * 40))


def gen_date(rng):
    a = _rand_date(rng)
    b = a + _dt.timedelta(days=rng.randint(1, 1500 if rng.random() < 0.5 else 120))
    A, B = a.isoformat(), b.isoformat()
    q = rng.choice([
        "How many days are there between {a} and {b}?", "Days from {a} to {b}?",
        "What is the number of days between {a} and {b}?", "How many days from {a} until {b}?",
        "Count the days between {a} and {b}.", "How long is it from {a} to {b} in days?",
    ]).format(a=A, b=B)
    ans = lambda r: rng.choice([
        "There are {r} days between {a} and {b}.", "It is {r} days.", "From {a} to {b} is {r} days.",
        "The difference is {r} days.",
    ]).format(a=A, b=B, r=r)
    return _polite(rng, q), "date_diff", {"start": A, "end": B}, ans


def gen_lookup(rng):
    kind = rng.random()
    if kind < 0.6:
        c = rng.choice(sorted(COUNTRIES))
        attr = rng.choice(["capital", "currency", "language"])
        key = f"{attr}_of_{slug(c)}"
        if attr == "capital":
            q = rng.choice(["What is the capital of {c}?", "Which city is the capital of {c}?",
                            "Capital of {c}?", "Look up the capital of {c}.", "Tell me the capital of {c}."])
            ans = lambda r: rng.choice(["The capital of {c} is {r}.", "It is {r}.", "{r} is the capital of {c}."])
        elif attr == "currency":
            q = rng.choice(["What is the currency of {c}?", "Which currency is used in {c}?",
                            "Currency of {c}?", "Look up the currency of {c}."])
            ans = lambda r: rng.choice(["The currency of {c} is the {r}.", "It is the {r}.", "{c} uses the {r}."])
        else:
            q = rng.choice(["What language is spoken in {c}?", "What is the main language of {c}?",
                            "Language of {c}?", "Look up the language of {c}."])
            ans = lambda r: rng.choice(["The main language of {c} is {r}.", "It is {r}.", "People in {c} speak {r}."])
        qq = q.format(c=c)
        return _polite(rng, qq), "lookup", {"key": key}, (lambda r, ans=ans: ans(r).format(c=c, r=r))
    if kind < 0.8:
        e = rng.choice(sorted(ELEMENTS))
        key = f"atomic_number_of_{e}"
        q = rng.choice(["What is the atomic number of {e}?", "Atomic number of {e}?",
                        "Look up the atomic number of {e}."]).format(e=e)
        return _polite(rng, q), "lookup", {"key": key}, (
            lambda r: rng.choice(["The atomic number of {e} is {r}.", "It is {r}."]).format(e=e, r=r))
    p = rng.choice(sorted(PLANETS_MOONS))
    key = f"moons_of_{p}"
    pn = p.capitalize()
    q = rng.choice(["How many moons does {p} have?", "Number of moons of {p}?",
                    "Look up how many moons {p} has."]).format(p=pn)
    return _polite(rng, q), "lookup", {"key": key}, (
        lambda r: rng.choice(["{p} has {r} known moons.", "It has {r} moons.", "The answer is {r}."]).format(p=pn, r=r))


GENERATORS = [
    ("calculator", gen_calculator),
    ("median", lambda r: gen_stat(r, "median")),
    ("mean", lambda r: gen_stat(r, "mean")),
    ("convert", gen_convert),
    ("date_diff", gen_date),
    ("lookup", gen_lookup),
]

SMALLTALK = [
    ("Hello!", "Hello! How can I help you today?"),
    ("Hi there.", "Hi! What can I do for you?"),
    ("Thanks!", "You're welcome!"),
    ("Thank you, that helps.", "Glad I could help."),
    ("Who are you?", "I am a tiny assistant that can use tools such as a calculator, statistics, unit conversion, date arithmetic and a lookup table."),
    ("What can you do?", "I can call tools: calculator, median, mean, convert, date_diff and lookup."),
    ("Good morning.", "Good morning! How can I help?"),
]

TOOL_DESCRIPTIONS = {
    "calculator": ("Evaluate an arithmetic expression (+, -, *, / and parentheses).",
                   {"expression": {"type": "string", "description": "for example 12*7+3"}}),
    "median": ("Median of a list of numbers.", {"numbers": {"type": "array", "items": {"type": "number"}}}),
    "mean": ("Arithmetic mean of a list of numbers.", {"numbers": {"type": "array", "items": {"type": "number"}}}),
    "convert": ("Convert a value between units (km/mi, kg/lb, m/ft, c/f, l/gal, cm/in).",
                {"value": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}}),
    "date_diff": ("Number of days from start to end (ISO dates).",
                  {"start": {"type": "string"}, "end": {"type": "string"}}),
    "lookup": ("Look up a fact by key, e.g. capital_of_france, currency_of_japan, language_of_peru, "
               "atomic_number_of_gold, moons_of_mars.", {"key": {"type": "string"}}),
}

# The tools in the OpenAI "tools" request format (what an OpenAI client sends to `moe serve`).
TOOLS = [{"type": "function", "function": {"name": n, "description": TOOL_DESCRIPTIONS[n][0],
                                           "parameters": {"type": "object", "properties": TOOL_DESCRIPTIONS[n][1],
                                                          "required": list(TOOL_DESCRIPTIONS[n][1])}}}
         for n in TOOL_NAMES]


def system_prompt_for(names: list[str]) -> str:
    """The system message the chat template writes when a request has tools but no system message."""
    return "You are a helpful assistant. Tools: " + ", ".join(names) + "."


SYSTEM_PROMPT = system_prompt_for(TOOL_NAMES)
assert SYSTEM_PROMPT == "You are a helpful assistant. Tools: calculator, median, mean, convert, date_diff, lookup."

# The chat template of models/tiny-moe (tokenizer_config.json, written by train_tiny_moe.py).
# OpenAI message shapes: assistant messages with "tool_calls" (content null or text; function.arguments a
# JSON string as OpenAI sends it, or a mapping, which is written with tojson), "tool" messages with the raw
# result (the template wraps it in <tool_response>), content as a string, null or a list of text parts,
# and a "tools" list: without a system message the template writes one naming the tools. render() below
# is the same function in Python; training/check_chat_template.py checks that the two agree.
CHAT_TEMPLATE = (
    "{%- if tools and (messages | length == 0 or messages[0]['role'] != 'system') -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant. Tools: ' -}}"
    "{%- for t in tools -%}"
    "{%- if t['function'] is defined -%}{{- t['function']['name'] -}}{%- else -%}{{- t['name'] -}}{%- endif -%}"
    "{%- if not loop.last -%}{{- ', ' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{{- '.<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{%- set content = message['content'] -%}"
    "{%- elif message['content'] is iterable and message['content'] is not mapping -%}"
    "{%- set content = message['content'] | map(attribute='text') | join('') -%}"
    "{%- else -%}{%- set content = '' -%}{%- endif -%}"
    "{%- if message['role'] == 'tool' -%}"
    "{{- '<|im_start|>tool\\n<tool_response>\\n' + content + '\\n</tool_response><|im_end|>\\n' -}}"
    "{%- elif message['role'] == 'assistant' and message['tool_calls'] is defined and message['tool_calls'] -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if content -%}{{- content + '\\n' -}}{%- endif -%}"
    "{%- for tool_call in message['tool_calls'] -%}"
    "{%- if tool_call['function'] is defined -%}{%- set call = tool_call['function'] -%}"
    "{%- else -%}{%- set call = tool_call -%}{%- endif -%}"
    "{%- if not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    "{{- '<tool_call>\\n{\"name\": ' + (call['name'] | tojson) + ', \"arguments\": ' -}}"
    "{%- if call['arguments'] is string -%}{{- call['arguments'] -}}"
    "{%- else -%}{{- call['arguments'] | tojson -}}{%- endif -%}"
    "{{- '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def tool_call_text(name: str, args) -> str:
    """How the model writes one call: args is a mapping, or a JSON string (OpenAI's function.arguments)."""
    a = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return "<tool_call>\n{\"name\": " + json.dumps(name, ensure_ascii=False) + ", \"arguments\": " + a + "}\n</tool_call>"


def tool_response_text(result: str) -> str:
    return "<tool_response>\n" + result + "\n</tool_response>"


def tool_call_message(name: str, args: dict) -> dict:
    """An assistant message that calls one tool, as an OpenAI client sends it back (arguments: JSON string)."""
    return {"role": "assistant", "content": None,
            "tool_calls": [{"type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}


def tool_result_message(result: str) -> dict:
    return {"role": "tool", "content": result}


def _content(m: dict) -> str:
    c = m.get("content")
    if isinstance(c, str):
        return c
    if isinstance(c, (list, tuple)):
        return "".join(p.get("text", "") if isinstance(p, dict) else "" for p in c)
    return ""


def render(messages: list[dict], add_generation_prompt: bool = False, tools: list[dict] | None = None) -> str:
    """Same output as CHAT_TEMPLATE (the chat template in tokenizer_config.json)."""
    s = ""
    if tools and (not messages or messages[0]["role"] != "system"):
        s += "<|im_start|>system\n" + system_prompt_for(
            [t["function"]["name"] if "function" in t else t["name"] for t in tools]) + "<|im_end|>\n"
    for m in messages:
        c = _content(m)
        if m["role"] == "tool":
            s += "<|im_start|>tool\n" + tool_response_text(c) + "<|im_end|>\n"
        elif m["role"] == "assistant" and m.get("tool_calls"):
            calls = [tc.get("function", tc) for tc in m["tool_calls"]]
            s += "<|im_start|>assistant\n" + (c + "\n" if c else "") + \
                "\n".join(tool_call_text(f["name"], f["arguments"]) for f in calls) + "<|im_end|>\n"
        else:
            s += f"<|im_start|>{m['role']}\n{c}<|im_end|>\n"
    if add_generation_prompt:
        s += "<|im_start|>assistant\n"
    return s


def make_chat(rng: random.Random) -> dict:
    """One multi-turn chat. Returns {"messages": [...], "target": {...}} where
    target describes the LAST tool exchange (used for evaluation)."""
    msgs = []
    if rng.random() < 0.3:
        msgs.append({"role": "system", "content": SYSTEM_PROMPT})
    n_ex = 1 if rng.random() < 0.6 else 2
    if rng.random() < 0.2:
        u, a = rng.choice(SMALLTALK[:2] + SMALLTALK[4:])
        msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    target = None
    for i in range(n_ex):
        _, gen = rng.choice(GENERATORS)
        q, name, args, ans = gen(rng)
        result = run_tool(name, args)
        prefix_len = len(msgs) + 1  # messages up to and including the user turn
        msgs.append({"role": "user", "content": q})
        msgs.append(tool_call_message(name, args))
        msgs.append(tool_result_message(result))
        final = ans(result)
        msgs.append({"role": "assistant", "content": final})
        target = {"prefix_messages": prefix_len, "name": name, "arguments": args, "result": result,
                  "final": final}
    if rng.random() < 0.1:
        u, a = rng.choice(SMALLTALK[2:4])
        msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    return {"messages": msgs, "target": target}


# Chat mix 2 (stage 5, training only; the held-out chats are always mix 1): the tools the model got
# wrong most often (calculator operators, long lists of 3-digit numbers, similar country names) more
# often, up to 3 tool exchanges per chat, and sometimes the system message the chat template writes
# for a request's "tools" list, with the tools in another order or only some of them.
MIX2_TOOL_WEIGHTS = {"calculator": 3.0, "median": 1.5, "mean": 1.5, "convert": 1.0, "date_diff": 0.5, "lookup": 2.0}


def make_chat_mix2(rng: random.Random) -> dict:
    gens = [g for _, g in GENERATORS]
    weights = [MIX2_TOOL_WEIGHTS[n] for n, _ in GENERATORS]
    r = rng.random()
    n_ex = 1 if r < 0.5 else (2 if r < 0.85 else 3)
    exchanges = []
    for _ in range(n_ex):
        q, name, args, ans = rng.choices(gens, weights)[0](rng)
        result = run_tool(name, args)
        exchanges.append((q, name, args, result, ans(result)))
    msgs = []
    r = rng.random()
    if r < 0.25:
        msgs.append({"role": "system", "content": SYSTEM_PROMPT})
    elif r < 0.35:
        used = sorted({e[1] for e in exchanges}, key=TOOL_NAMES.index)
        names = used + [n for n in TOOL_NAMES if n not in used and rng.random() < 0.5]
        rng.shuffle(names)
        msgs.append({"role": "system", "content": system_prompt_for(names)})
    if rng.random() < 0.15:
        u, a = rng.choice(SMALLTALK[:2] + SMALLTALK[4:])
        msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    target = None
    for q, name, args, result, final in exchanges:
        prefix_len = len(msgs) + 1
        msgs += [{"role": "user", "content": q}, tool_call_message(name, args), tool_result_message(result),
                 {"role": "assistant", "content": final}]
        target = {"prefix_messages": prefix_len, "name": name, "arguments": args, "result": result,
                  "final": final}
    if rng.random() < 0.1:
        u, a = rng.choice(SMALLTALK[2:4])
        msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    return {"messages": msgs, "target": target}


def make_chats(n: int, seed: int, mix: int = 1) -> list[dict]:
    rng = random.Random(seed)
    make = make_chat if mix == 1 else make_chat_mix2
    return [make(rng) for _ in range(n)]


def chat_questions(chat: dict) -> list[str]:
    """The user turns that ask for a tool (each is followed by an assistant tool call)."""
    m = chat["messages"]
    return [m[i]["content"] for i in range(len(m) - 1) if m[i]["role"] == "user" and m[i + 1].get("tool_calls")]


TEST_SEED = 987654  # held-out chats: separate generator seed, and de-duplicated against training


def chat_key(chat: dict) -> str:
    t = chat["target"]
    return chat["messages"][t["prefix_messages"] - 1]["content"]
