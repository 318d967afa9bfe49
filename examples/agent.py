#!/usr/bin/env python3
"""A tool-calling agent loop with the `openai` Python client against `moe serve`.

    build/tools/moe serve --model models/tiny-moe --port 8080 &
    python3 examples/agent.py --base-url http://127.0.0.1:8080/v1 --question "What is the median of 3, 10, 4 and 9?"

    python3 examples/agent.py --start-server build/tools/moe      # starts and stops the server itself

The script defines the six tools of models/tiny-moe (calculator, median, mean, convert, date_diff,
lookup) as OpenAI function tools, implements them in Python, asks the question, runs every tool the
model calls and sends the result back as a `role: tool` message with the call's `tool_call_id`, until
the model answers in text. It prints the transcript. Exit status 0 when the loop completed (at least one
tool call, then a text answer); with --check also only when the final answer contains the last tool
result. Needs `pip install -r tests/openai/requirements.txt`.
"""
import argparse
import ast
import datetime as _dt
import json
import operator
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

try:
    import openai
except ImportError:
    sys.exit("agent.py: the openai package is missing: pip install -r tests/openai/requirements.txt")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------------------------
# Tools: the OpenAI definitions the model sees, and their Python implementations.
# ---------------------------------------------------------------------------------------------

_NUMBERS = {"type": "array", "items": {"type": "number"}, "description": "the numbers"}
TOOLS = [
    {"type": "function", "function": {
        "name": "calculator", "description": "Evaluate an arithmetic expression (+, -, *, / and parentheses).",
        "parameters": {"type": "object", "properties": {
            "expression": {"type": "string", "description": "for example 12*7+3"}}, "required": ["expression"]}}},
    {"type": "function", "function": {
        "name": "median", "description": "Median of a list of numbers.",
        "parameters": {"type": "object", "properties": {"numbers": _NUMBERS}, "required": ["numbers"]}}},
    {"type": "function", "function": {
        "name": "mean", "description": "Arithmetic mean of a list of numbers.",
        "parameters": {"type": "object", "properties": {"numbers": _NUMBERS}, "required": ["numbers"]}}},
    {"type": "function", "function": {
        "name": "convert", "description": "Convert a value between units (km/mi, kg/lb, m/ft, c/f, l/gal, cm/in).",
        "parameters": {"type": "object", "properties": {
            "value": {"type": "number"},
            "from": {"type": "string", "enum": ["km", "mi", "kg", "lb", "m", "ft", "c", "f", "l", "gal", "cm", "in"]},
            "to": {"type": "string", "enum": ["km", "mi", "kg", "lb", "m", "ft", "c", "f", "l", "gal", "cm", "in"]}},
            "required": ["value", "from", "to"]}}},
    {"type": "function", "function": {
        "name": "date_diff", "description": "Number of days from start to end (ISO dates).",
        "parameters": {"type": "object", "properties": {
            "start": {"type": "string", "format": "date"}, "end": {"type": "string", "format": "date"}},
            "required": ["start", "end"]}}},
    {"type": "function", "function": {
        "name": "lookup", "description": "Look up a fact by key, e.g. capital_of_france, currency_of_japan, "
                                        "language_of_peru, atomic_number_of_gold, moons_of_mars.",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}}},
]


def fmt_num(x):
    """Numbers as the model saw them in training: integers bare, else at most 4 decimals."""
    if isinstance(x, bool):
        raise ValueError("not a number")
    if isinstance(x, int):
        return str(x)
    if abs(x - round(x)) < 1e-9 and abs(x) < 1e15:
        return str(int(round(x)))
    return f"{x:.4f}".rstrip("0").rstrip(".")


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNOPS = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def calculator(expression):
    """+, -, *, / and parentheses over numbers, parsed with ast: nothing else is evaluated."""
    if not isinstance(expression, str) or len(expression) > 200:
        raise ValueError("expression must be a short string")

    def ev(n, depth=0):
        if depth > 50:
            raise ValueError("expression too deep")
        if isinstance(n, ast.Expression):
            return ev(n.body, depth + 1)
        if isinstance(n, ast.Constant) and type(n.value) in (int, float):
            return n.value
        if isinstance(n, ast.BinOp) and type(n.op) in _BINOPS:
            return _BINOPS[type(n.op)](ev(n.left, depth + 1), ev(n.right, depth + 1))
        if isinstance(n, ast.UnaryOp) and type(n.op) in _UNOPS:
            return _UNOPS[type(n.op)](ev(n.operand, depth + 1))
        raise ValueError(f"unsupported syntax in {expression!r}")

    return fmt_num(ev(ast.parse(expression, mode="eval")))


def _numbers(numbers):
    if not isinstance(numbers, list) or not numbers or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        raise ValueError("numbers must be a non-empty list of numbers")
    return numbers


_UNITS = {
    ("km", "mi"): lambda v: v * 0.621371, ("mi", "km"): lambda v: v * 1.609344,
    ("kg", "lb"): lambda v: v * 2.204623, ("lb", "kg"): lambda v: v * 0.453592,
    ("m", "ft"): lambda v: v * 3.28084, ("ft", "m"): lambda v: v * 0.3048,
    ("c", "f"): lambda v: v * 9 / 5 + 32, ("f", "c"): lambda v: (v - 32) * 5 / 9,
    ("l", "gal"): lambda v: v * 0.264172, ("gal", "l"): lambda v: v * 3.785412,
    ("cm", "in"): lambda v: v / 2.54, ("in", "cm"): lambda v: v * 2.54,
}


def convert(value, **kw):
    src, dst = str(kw.get("from", "")).lower(), str(kw.get("to", "")).lower()
    if (src, dst) not in _UNITS:
        raise ValueError(f"cannot convert {src!r} to {dst!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("value must be a number")
    return fmt_num(round(_UNITS[(src, dst)](value), 2))


def date_diff(start, end):
    return str((_dt.date.fromisoformat(end) - _dt.date.fromisoformat(start)).days)


# A small fact table (the one the tiny model was trained with).
_COUNTRIES = {
    "France": ("Paris", "euro", "French"), "Germany": ("Berlin", "euro", "German"),
    "Italy": ("Rome", "euro", "Italian"), "Spain": ("Madrid", "euro", "Spanish"),
    "Portugal": ("Lisbon", "euro", "Portuguese"), "Japan": ("Tokyo", "yen", "Japanese"),
    "China": ("Beijing", "renminbi", "Chinese"), "India": ("New Delhi", "rupee", "Hindi"),
    "Brazil": ("Brasilia", "real", "Portuguese"), "Canada": ("Ottawa", "Canadian dollar", "English"),
    "Mexico": ("Mexico City", "peso", "Spanish"), "Egypt": ("Cairo", "Egyptian pound", "Arabic"),
    "Kenya": ("Nairobi", "shilling", "Swahili"), "Norway": ("Oslo", "krone", "Norwegian"),
    "Sweden": ("Stockholm", "krona", "Swedish"), "Poland": ("Warsaw", "zloty", "Polish"),
    "Greece": ("Athens", "euro", "Greek"), "Turkey": ("Ankara", "lira", "Turkish"),
    "Russia": ("Moscow", "ruble", "Russian"), "Australia": ("Canberra", "Australian dollar", "English"),
    "Argentina": ("Buenos Aires", "peso", "Spanish"), "Peru": ("Lima", "sol", "Spanish"),
    "Chile": ("Santiago", "peso", "Spanish"), "Thailand": ("Bangkok", "baht", "Thai"),
    "Vietnam": ("Hanoi", "dong", "Vietnamese"), "South Korea": ("Seoul", "won", "Korean"),
    "Indonesia": ("Jakarta", "rupiah", "Indonesian"), "Nigeria": ("Abuja", "naira", "English"),
    "Ireland": ("Dublin", "euro", "Irish"), "Austria": ("Vienna", "euro", "German"),
    "Switzerland": ("Bern", "Swiss franc", "German"), "Netherlands": ("Amsterdam", "euro", "Dutch"),
    "Belgium": ("Brussels", "euro", "Dutch"), "Finland": ("Helsinki", "euro", "Finnish"),
    "Denmark": ("Copenhagen", "krone", "Danish"), "Hungary": ("Budapest", "forint", "Hungarian"),
    "Czechia": ("Prague", "koruna", "Czech"), "United Kingdom": ("London", "pound sterling", "English"),
    "New Zealand": ("Wellington", "New Zealand dollar", "English"), "Morocco": ("Rabat", "dirham", "Arabic"),
}
_ELEMENTS = {
    "hydrogen": 1, "helium": 2, "lithium": 3, "carbon": 6, "nitrogen": 7, "oxygen": 8, "sodium": 11,
    "aluminium": 13, "silicon": 14, "sulfur": 16, "chlorine": 17, "calcium": 20, "iron": 26,
    "copper": 29, "zinc": 30, "silver": 47, "tin": 50, "gold": 79, "mercury": 80, "lead": 82,
    "uranium": 92, "neon": 10, "argon": 18, "potassium": 19, "nickel": 28,
}
_MOONS = {"mercury": 0, "venus": 0, "earth": 1, "mars": 2, "jupiter": 95, "saturn": 146, "uranus": 28, "neptune": 16}


def _slug(s):
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


FACTS = {}
for _c, (_cap, _cur, _lang) in _COUNTRIES.items():
    FACTS[f"capital_of_{_slug(_c)}"], FACTS[f"currency_of_{_slug(_c)}"], FACTS[f"language_of_{_slug(_c)}"] = _cap, _cur, _lang
FACTS.update({f"atomic_number_of_{e}": str(z) for e, z in _ELEMENTS.items()})
FACTS.update({f"moons_of_{p}": str(n) for p, n in _MOONS.items()})


def lookup(key):
    return FACTS.get(str(key), "unknown key")


IMPLEMENTATIONS = {
    "calculator": lambda a: calculator(a["expression"]),
    "median": lambda a: fmt_num(statistics.median(_numbers(a["numbers"]))),
    "mean": lambda a: fmt_num(statistics.fmean(_numbers(a["numbers"]))),
    "convert": lambda a: convert(a["value"], **{"from": a["from"], "to": a["to"]}),
    "date_diff": lambda a: date_diff(a["start"], a["end"]),
    "lookup": lambda a: lookup(a["key"]),
}


def run_tool(name, arguments):
    """A tool's result text; a tool that fails or does not exist answers with an error text (as an
    agent would send it back to the model) instead of raising."""
    if name not in IMPLEMENTATIONS:
        return f"error: unknown tool {name!r}"
    try:
        args = json.loads(arguments) if isinstance(arguments, str) else arguments
        if not isinstance(args, dict):
            raise ValueError("arguments must be a JSON object")
        return IMPLEMENTATIONS[name](args)
    except (ValueError, KeyError, TypeError, ZeroDivisionError, SyntaxError, OverflowError) as e:
        return f"error: {type(e).__name__}: {e}"


# ---------------------------------------------------------------------------------------------
# The server (--start-server) and the loop.
# ---------------------------------------------------------------------------------------------

def start_server(moe, model, extra_args, timeout=180.0):
    """Starts `moe serve` on a free loopback port and waits for /health; returns (process, base_url)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [moe, "serve", "--model", model, "--host", "127.0.0.1", "--port", str(port)] + extra_args
    print("$ " + " ".join(cmd), file=sys.stderr)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moe serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"moe serve was not healthy after {timeout:.0f} s")


def stop_server(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def complete(client, model, messages, args):
    """One assistant turn: (content, tool_calls as dicts, finish_reason); streamed when --stream."""
    req = dict(model=model, messages=messages, tools=TOOLS, temperature=args.temperature,
               max_tokens=args.max_tokens)
    if args.seed is not None:
        req["seed"] = args.seed
    if not args.stream:
        choice = client.chat.completions.create(**req).choices[0]
        calls = [{"id": tc.id, "type": "function",
                  "function": {"name": tc.function.name, "arguments": tc.function.arguments}}
                 for tc in (choice.message.tool_calls or [])]
        return choice.message.content, calls, choice.finish_reason
    content, calls, finish = [], {}, None
    for chunk in client.chat.completions.create(stream=True, **req):
        for ch in chunk.choices:
            d = ch.delta
            if d.content:
                content.append(d.content)
            for tc in d.tool_calls or []:  # id and name come once, the arguments in fragments
                c = calls.setdefault(tc.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
                if tc.id:
                    c["id"] = tc.id
                if tc.function and tc.function.name:
                    c["function"]["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    c["function"]["arguments"] += tc.function.arguments
            if ch.finish_reason:
                finish = ch.finish_reason
    return ("".join(content) or None), [calls[i] for i in sorted(calls)], finish


def agent_loop(client, model, question, args, out=sys.stdout):
    """Returns (final answer or None, [(name, arguments, result), ...])."""
    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": question})
    print(f"user: {question}", file=out)
    results = []
    for _ in range(args.max_steps):
        content, calls, finish = complete(client, model, messages, args)
        if not calls:
            print(f"assistant: {content or ''}   [finish_reason={finish}]", file=out)
            return content, results
        if content and content.strip():
            print(f"assistant: {content.strip()}", file=out)
        messages.append({"role": "assistant", "content": content, "tool_calls": calls})
        for c in calls:
            name, arguments = c["function"]["name"], c["function"]["arguments"]
            print(f"assistant -> {name}({arguments})   [id={c['id']}, finish_reason={finish}]", file=out)
            result = run_tool(name, arguments)
            print(f"tool {name} -> {result}", file=out)
            results.append((name, arguments, result))
            messages.append({"role": "tool", "tool_call_id": c["id"], "content": result})
    print(f"agent: no text answer after {args.max_steps} turns", file=out)
    return None, results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1"))
    ap.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "none"),
                    help="the server's --api-key (any text when it has none)")
    ap.add_argument("--question", default="What is the median of 3, 10, 4 and 9?")
    ap.add_argument("--system", default=None, help="a system message (the tiny model's template names the tools itself)")
    ap.add_argument("--start-server", metavar="MOE", help="start `MOE serve` on a free port for the run, then stop it")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "tiny-moe"), help="with --start-server")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra `moe serve` argument with --start-server (repeat), e.g. --server-arg=--tool-parser=hermes")
    ap.add_argument("--stream", action="store_true", help="stream each turn and reassemble the tool calls")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--max-steps", type=int, default=4, help="model turns at most")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless the final answer contains the last tool result")
    args = ap.parse_args(argv)

    proc = None
    try:
        if args.start_server:
            proc, args.base_url = start_server(args.start_server, args.model, args.server_arg)
        client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=300)
        model = client.models.list().data[0].id
        print(f"model: {model} at {args.base_url}")
        answer, results = agent_loop(client, model, args.question, args)
    finally:
        if proc is not None:
            rc = stop_server(proc)
            print(f"moe serve exited with {rc}", file=sys.stderr)
    if not results:
        print("agent: FAILED: the model called no tool")
        return 1
    if answer is None:
        print("agent: FAILED: no final answer")
        return 1
    if args.check and results[-1][2] not in answer:
        print(f"agent: FAILED: the final answer does not contain the tool result {results[-1][2]!r}")
        return 1
    print(f"agent: done ({len(results)} tool call(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
