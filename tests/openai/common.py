"""Shared set-up of the tests/openai modules: `moe serve` started on a free port per test class,
driven by the real `openai` Python client (tests/openai/requirements.txt).

Environment (ctest sets both; by hand: MOE_BIN=build/tools/moe python3 tests/openai/test_chat.py):
  MOE_BIN         the moe binary (default: build-http/, build/ or build-client/ tools/moe)
  MOE_SOURCE_DIR  the repository (default: two levels above this file)
  MOE_SERVE_ARGS  extra `moe serve` arguments for every server, split on spaces (optional)
"""
import concurrent.futures
import http.client
import importlib.util
import os
import sys
import unittest

SOURCE_DIR = os.environ.get("MOE_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SOURCE_DIR, "scripts"))
from moe_server import MoeServer, default_moe_binary, parse_metrics  # noqa: E402, F401

try:
    import openai  # noqa: F401
except ImportError:  # a failure, not a skip: CI must have it (scripts/install-deps.sh installs it)
    sys.exit("tests/openai: the openai package is missing: pip install -r tests/openai/requirements.txt "
             "(scripts/install-deps.sh does it)")

MOE_BIN = os.environ.get("MOE_BIN") or default_moe_binary()
TINY_MOE = os.path.join(SOURCE_DIR, "models", "tiny-moe")
EXTRA_ARGS = os.environ.get("MOE_SERVE_ARGS", "").split()

# The tiny model's tool definitions and implementations are the ones of examples/agent.py.
_spec = importlib.util.spec_from_file_location("moe_example_agent", os.path.join(SOURCE_DIR, "examples", "agent.py"))
agent = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(agent)
TOOLS = agent.TOOLS
TOOL_NAMES = [t["function"]["name"] for t in TOOLS]


def tiny_args(*more):
    """`moe serve` arguments for models/tiny-moe. --tool-parser hermes: its calls are
    <tool_call>{json}</tool_call>; --parallel 8 so that 8 concurrent requests share batches."""
    return ["--model", TINY_MOE, "--tool-parser", "hermes", "--parallel", "8"] + list(more) + EXTRA_ARGS


def make_client(server, api_key="none", **kw):
    # max_retries=0: a 5xx or a dropped connection must show, not be retried away.
    return openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0, timeout=kw.pop("timeout", 300), **kw)


def raw_request(server, method, path, body=None, headers=None, timeout=120):
    """(status, headers dict, body bytes) of one plain HTTP request (for what the client cannot send)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def run_concurrently(fn, args_list, workers=None):
    """fn(*args) for every args in args_list, all started together; results in order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or len(args_list)) as ex:
        return [f.result() for f in [ex.submit(fn, *a) for a in args_list]]


def stream_chat(client, **req):
    """Streams a chat completion; returns (chunks, content, finish_reasons, tool calls by index)."""
    chunks, content, finishes, calls = [], [], [], {}
    for chunk in client.chat.completions.create(stream=True, **req):
        chunks.append(chunk)
        for ch in chunk.choices:
            d = ch.delta
            if d.content:
                content.append(d.content)
            for tc in d.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": "", "id_count": 0, "name_count": 0})
                if tc.id:
                    c["id"] = tc.id
                    c["id_count"] += 1
                if tc.function is not None and tc.function.name:
                    c["name"] += tc.function.name
                    c["name_count"] += 1
                if tc.function is not None and tc.function.arguments:
                    c["arguments"] += tc.function.arguments
            if ch.finish_reason is not None:
                finishes.append(ch.finish_reason)
    return chunks, "".join(content), finishes, calls


class ServerTestCase(unittest.TestCase):
    """Starts one server for the class (SERVER_ARGS) and stops it at the end, also on failure;
    the server log is printed when a test of the class failed."""
    SERVER_ARGS = None  # list; default tiny_args()
    API_KEY = None

    @classmethod
    def setUpClass(cls):
        cls.server = MoeServer(MOE_BIN, cls.SERVER_ARGS if cls.SERVER_ARGS is not None else tiny_args(),
                               api_key=cls.API_KEY)
        cls.server.start()
        cls.addClassCleanup(cls._cleanup)
        cls.client = make_client(cls.server, api_key=cls.API_KEY or "none")
        cls.model = cls.client.models.list().data[0].id

    @classmethod
    def _cleanup(cls):
        rc = cls.server.stop()
        if getattr(cls, "_failed", False) or rc not in (0, None):
            sys.stderr.write(f"\n--- moe serve log ({' '.join(cls.server.cmd)}; exit {rc}) ---\n"
                             + cls.server.log_tail(6000) + "\n---\n")
        cls.server.cleanup()

    def run(self, result=None):
        result = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return result

    def chat(self, messages, **kw):
        kw.setdefault("temperature", 0)
        kw.setdefault("max_tokens", 48)
        return self.client.chat.completions.create(model=self.model, messages=messages, **kw)


def user(text):
    return [{"role": "user", "content": text}]


def main():
    unittest.main(verbosity=2)
