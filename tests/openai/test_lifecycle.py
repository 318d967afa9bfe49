#!/usr/bin/env python3
"""Clients that go away mid-stream must not break later requests; SIGTERM ends the server with
exit code 0 (idle, and with a stream in flight)."""
import http.client
import json
import signal
import socket
import struct
import sys
import threading
import time
import unittest

import openai

from common import MOE_BIN, parse_metrics, MoeServer, ServerTestCase, main, make_client, raw_request, run_concurrently, tiny_args, user

CODE = user('def read_config(path):\n    """Read a configuration file."""\n    with open(path')
WHO = user("Who are you?")


def metrics(server):
    """{series: value} of GET /metrics (labels kept in the key)."""
    st, _, body = raw_request(server, "GET", "/metrics", None)
    return parse_metrics(body.decode())


class Disconnects(ServerTestCase):
    def reference(self):
        return self.client.chat.completions.create(model=self.model, messages=WHO, temperature=0, max_tokens=32)

    def test_disconnect_mid_stream(self):
        before = self.reference().choices[0].message.content
        disconnects_before = metrics(self.server).get("moe_client_disconnects_total", 0)
        # openai clients that stop reading after two chunks and close the response
        for i in range(4):
            stream = self.client.chat.completions.create(model=self.model, messages=CODE, temperature=0.8, seed=i,
                                                         max_tokens=400, stream=True)
            got = 0
            for _ in stream:
                got += 1
                if got == 2:
                    break
            stream.close()
            self.assertEqual(got, 2)
        # a raw client that resets the connection after the first bytes of the stream
        for _ in range(2):
            s = socket.create_connection((self.server.host, self.server.port), timeout=60)
            body = json.dumps({"model": self.model, "messages": CODE, "max_tokens": 400, "stream": True}).encode()
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            self.assertTrue(s.recv(64))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
            s.close()
        # a client that sends the request and leaves before the answer
        s = socket.create_connection((self.server.host, self.server.port), timeout=60)
        body = json.dumps({"model": self.model, "messages": CODE, "max_tokens": 400, "stream": True}).encode()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        s.close()

        # the server noticed (moe_client_disconnects_total) and nothing is left running
        deadline = time.monotonic() + 120
        while True:
            m = metrics(self.server)
            if (m.get("moe_running_sequences", 0) == 0 and m.get("moe_queue_depth", 0) == 0) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(m.get("moe_running_sequences"), 0)
        self.assertEqual(m.get("moe_queue_depth"), 0)
        self.assertGreater(m.get("moe_client_disconnects_total", 0), disconnects_before)
        sys.stderr.write(f"moe_client_disconnects_total: {disconnects_before:.0f} -> {m['moe_client_disconnects_total']:.0f}\n")

        # the server answers as before, alone and concurrently
        self.assertEqual(self.reference().choices[0].message.content, before)
        got = run_concurrently(lambda: self.reference().choices[0].message.content, [()] * 6)
        self.assertEqual(got, [before] * 6)
        st_conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=10)
        st_conn.request("GET", "/health")
        self.assertEqual(st_conn.getresponse().status, 200)
        st_conn.close()
        self.assertIsNone(self.server.proc.poll(), "the server is still running")

    def test_disconnect_non_stream(self):
        # a client that gives up on a non-streamed request (the server notices when it writes)
        before = self.reference().choices[0].message.content
        impatient = make_client(self.server, timeout=0.2)
        gave_up = 0
        for i in range(3):
            try:
                impatient.completions.create(model=self.model, prompt=CODE[0]["content"], temperature=0.8, seed=i,
                                             max_tokens=900)
            except (openai.APITimeoutError, openai.APIConnectionError):
                gave_up += 1
        self.assertEqual(self.reference().choices[0].message.content, before)
        if not gave_up:
            self.skipTest("every request finished within the client's timeout: nothing was abandoned")

class Sigterm(unittest.TestCase):
    def test_sigterm_idle(self):
        srv = MoeServer(MOE_BIN, tiny_args())
        srv.start()
        try:
            make_client(srv).models.list()
            rc = srv.stop(signal.SIGTERM, timeout=60)
            log = srv.log_tail()
        finally:
            srv.cleanup()
        self.assertEqual(rc, 0, log)

    def test_sigterm_with_stream_in_flight(self):
        srv = MoeServer(MOE_BIN, tiny_args())
        srv.start()
        try:
            client = make_client(srv)
            model = client.models.list().data[0].id
            first = threading.Event()
            outcome = {}

            def reader():
                finishes, err = [], None
                try:
                    for chunk in client.chat.completions.create(model=model, messages=CODE, temperature=0.8, seed=1,
                                                                max_tokens=300, stream=True):
                        first.set()
                        for ch in chunk.choices:
                            if ch.finish_reason:
                                finishes.append(ch.finish_reason)
                except Exception as e:  # the stream may be cut by the shutdown
                    err = e
                outcome.update(finishes=finishes, err=err)
                first.set()

            t = threading.Thread(target=reader)
            t.start()
            self.assertTrue(first.wait(120))
            rc = srv.stop(signal.SIGTERM, timeout=120)  # one SIGTERM: a second may mean "quit now"
            t.join(60)
            log = srv.log_tail()
        finally:
            srv.cleanup()
        self.assertEqual(rc, 0, log)
        self.assertFalse(t.is_alive(), "the client was left hanging")
        # a stream that ended normally has exactly one finish_reason
        if outcome.get("err") is None:
            self.assertEqual(len(outcome["finishes"]), 1)


if __name__ == "__main__":
    main()
