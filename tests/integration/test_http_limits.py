"""The management listener against clients that hold its connections: a burst past its
connection limit, and a client that trickles its request headers (a slowloris). RabbitMQ's
listener (cowboy) keeps answering through both; Warren's must too."""

import socket
import time
import unittest

import harness


class HttpLimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.skip_if_external("starts its own broker with the management API")
        cls.broker = harness.Broker(management=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.broker.management_port), timeout=5)
        self.addCleanup(s.close)
        return s

    def test_the_port_serves_again_after_a_burst_past_the_connection_limit(self):
        # 140 connections that send nothing (the limit is 128): the ones past the limit are
        # closed at once. Before, the listener stopped accepting for good once the burst was
        # over (libmicrohttpd's own limit took the listening socket out of its epoll set).
        held = [self.connect() for _ in range(140)]
        refused = 0
        for s in held[128:]:
            s.settimeout(5)
            try:
                refused += s.recv(1) == b""  # closed by the broker: end of file at once
            except (ConnectionResetError, socket.timeout):
                refused += 1
        self.assertGreaterEqual(refused, 12)
        for s in held:
            s.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                status = self.broker.http_request("GET", "/api/overview", timeout=2)[0]
            except OSError:
                status = None
            if status == 200:
                break
            self.assertLess(time.monotonic(), deadline, "the listener does not serve after the burst")
            time.sleep(0.2)
        harness.assert_broker_alive(self, self.broker)

    def test_a_client_trickling_its_headers_is_cut_off(self):
        # One byte of headers every second resets any idle timeout; the headers' deadline (10 s
        # from the connection's start: cowboy's request_timeout is 5 s) closes it all the same.
        s = self.connect()
        request = b"GET /api/overview HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
        started = time.monotonic()
        closed = False
        for byte in request:
            try:
                s.sendall(bytes([byte]))
                s.settimeout(1.0)
                if s.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        self.assertTrue(closed, "a trickling client kept its connection")
        self.assertLess(time.monotonic() - started, 16)
        self.assertEqual(self.broker.http_request("GET", "/api/overview")[0], 200)

    def test_a_kept_alive_connection_serves_requests_one_after_another(self):
        # The deadline counts again from each answer: a client that keeps its connection for
        # several prompt requests is served each time.
        s = self.connect()
        for _ in range(3):
            s.sendall(b"GET /api/aliveness-test/%2F HTTP/1.1\r\nHost: x\r\n"
                      b"Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n")
            s.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                chunk = s.recv(4096)
                self.assertTrue(chunk, data)
                data += chunk
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
            time.sleep(1)

    def raw(self, request):
        """Sends request as is; the status of the answer and whether the broker closed after it."""
        s = self.connect()
        s.sendall(request)
        s.settimeout(5)
        data = b""
        while True:
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                return int(data.split()[1]), False
            if not chunk:
                return int(data.split()[1]), True
            data += chunk

    def test_a_request_that_reads_two_ways_is_refused_and_its_connection_closed(self):
        # Request smuggling behind a proxy needs a request two parsers read differently:
        # RabbitMQ's cowboy answers 400 to each of these, and so does Warren now (it ran the
        # first one, creating the vhost, and waited for a body after the second).
        auth = b"Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n"
        self.assertEqual(self.raw(b"PUT /api/vhosts/smuggled HTTP/1.1\r\nHost: x\r\n" + auth +
                                  b"Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}"),
                         (400, True))
        self.assertEqual(self.broker.http_request("GET", "/api/vhosts/smuggled")[0], 404)
        self.assertEqual(self.raw(b"POST /api/definitions HTTP/1.1\r\nHost: x\r\n" + auth +
                                  b"Transfer-Encoding: gzip\r\n\r\n"), (400, True))
        self.assertEqual(self.raw(b"POST /api/definitions HTTP/1.1\r\nHost: x\r\n" + auth +
                                  b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"), (400, True))
        for path in (b"/api/queues/%ZZ", b"/api/queues/%2", b"/api/vhosts/%"):
            self.assertEqual(self.raw(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")[0], 400, path)
        self.assertEqual(self.broker.http_request("GET", "/api/queues/%2F")[0], 200)


if __name__ == "__main__":
    unittest.main()
