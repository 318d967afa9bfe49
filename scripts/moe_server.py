"""Start and stop a `moe serve` process for client-side scripts and tests (standard library only).

    from moe_server import MoeServer
    with MoeServer("build/tools/moe", ["--model", "models/tiny-moe"]) as srv:
        print(srv.base_url)          # http://127.0.0.1:PORT/v1
        print(srv.rss_kib())         # the server's VmRSS

The port is picked here (a free loopback port), passed with --port, and /health is polled until it
answers 200. The server's stdout and stderr go to a log file; `log_tail()` returns its end, and a
server that exits before it is healthy raises ServerStartError with that tail. `stop()` sends SIGTERM
and waits (then SIGKILL), also when the `with` body raised.
"""
import http.client
import os
import json
import signal
import socket
import subprocess
import tempfile
import time

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MOE = os.path.join(SOURCE_DIR, "models", "tiny-moe")


class ServerStartError(RuntimeError):
    pass


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def http_get(host, port, path, timeout=5.0, headers=None):
    """(status, body bytes) of GET path; raises OSError when nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def default_moe_binary():
    for d in ("build-http", "build", "build-client"):
        p = os.path.join(SOURCE_DIR, d, "tools", "moe")
        if os.access(p, os.X_OK):
            return p
    return os.path.join(SOURCE_DIR, "build", "tools", "moe")


class MoeServer:
    """One `moe serve` child process on a free loopback port."""

    def __init__(self, moe, args, host="127.0.0.1", port=None, start_timeout=180.0, log_path=None,
                 api_key=None):
        self.moe = moe
        self.args = list(args)
        self.host = host
        self.port = port
        self.start_timeout = start_timeout
        self.api_key = api_key
        self.proc = None
        self._own_log = log_path is None
        self.log_path = log_path
        self.returncode = None

    # -- life cycle --------------------------------------------------------------------------
    def start(self):
        attempts = 1 if self.port else 3  # a port picked here may be taken by someone else meanwhile
        last = None
        for _ in range(attempts):
            port = self.port or free_port(self.host)
            try:
                self._start_once(port)
                return self
            except ServerStartError as e:
                last = e
                if "address" not in str(e).lower() and "bind" not in str(e).lower():
                    raise
        raise last

    def _start_once(self, port):
        if self._own_log:
            fd, self.log_path = tempfile.mkstemp(prefix="moe-serve-", suffix=".log")
            os.close(fd)
        cmd = [self.moe, "serve"] + self.args + ["--host", self.host, "--port", str(port)]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        self.cmd = cmd
        self._log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.pop("MOE_API_KEY", None)  # moe serve's default --api-key: only what is passed here counts
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        self.port = port
        deadline = time.monotonic() + self.start_timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self._log.close()
                self.returncode = rc
                self.proc = None
                msg = f"moe serve exited with {rc} before it was healthy: {' '.join(cmd)}\n" + self.log_tail()
                self._drop_log()
                raise ServerStartError(msg)
            try:
                headers = {"Authorization": "Bearer " + self.api_key} if self.api_key else None
                status, _ = http_get(self.host, port, "/health", timeout=2.0, headers=headers)
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                msg = f"moe serve not healthy after {self.start_timeout:.0f} s: {' '.join(cmd)}\n" + self.log_tail()
                self._drop_log()
                raise ServerStartError(msg)
            time.sleep(0.1)

    def stop(self, sig=signal.SIGTERM, timeout=60.0):
        """Signals the server and waits; returns its exit code (SIGKILL after `timeout`: -9)."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.returncode = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.returncode = self.proc.wait()
        else:
            self.returncode = self.proc.returncode
        self.proc = None
        try:
            self._log.close()
        except Exception:
            pass
        return self.returncode

    def cleanup(self):
        self.stop()
        self._drop_log()

    def _drop_log(self):
        if self._own_log and self.log_path and os.path.exists(self.log_path):
            os.unlink(self.log_path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- helpers -----------------------------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def base_url(self):
        return f"http://{self.host}:{self.port}/v1"

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
            return data[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def rss_kib(self):
        return rss_kib(self.pid)


def rss_kib(pid):
    """VmRSS of a process in KiB (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, TypeError):
        return None
    return None


def parse_metrics(text):
    """{series: value} of a Prometheus text page (labels kept in the key)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def sse_events(response):
    """The JSON events of an OpenAI SSE stream ("data: {json}" lines), until "data: [DONE]" (then
    a final None is yielded) or the end of the response."""
    while True:
        line = response.readline()
        if not line:
            return
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            yield None
            return
        yield json.loads(payload)
