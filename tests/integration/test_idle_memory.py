"""Memory per idle connection (issue 12): many connections opened and held idle (logged in with
heartbeat 0, channel 1 open: idle_clients.py) cost the broker less than 4 KiB of RSS each over
plain TCP and less than 40 KiB over TLS, and a new client still gets a working round trip
(declare, publish, get) while they are open.

Each transport gets a broker of its own, so that memory the first run freed does not hide the
second one's cost. The figure is the broker's VmRSS growth from just before opening the idle
connections (after a few warm-up connections, which allocate what is allocated once) to just
after, divided by their number.

CI size: 2,000 connections per transport. WARREN_IDLE_CONNECTIONS=N opens N instead (the full
size is 19900, just under this machine's per-process limit of 20,000 descriptors); the test
raises its soft RLIMIT_NOFILE to the hard limit first, and the broker, started from this
process, inherits it. Under a sanitizer (WARREN_SANITIZE=1) the memory assertions are skipped
(redzones and quarantine are not the broker's memory) and only the round trip is checked."""
import os
import ssl
import sys
import time
import unittest

import harness
import idle_clients
import tls_certs

CONNECTIONS = int(os.environ.get("WARREN_IDLE_CONNECTIONS") or 2000)
PLAIN_GOAL_KIB = 4.0
TLS_GOAL_KIB = 40.0
SANITIZED = os.environ.get("WARREN_SANITIZE") == "1"

certs = None


def setUpModule():
    global certs
    if os.environ.get("WARREN_TEST_URL"):
        raise unittest.SkipTest("measures the memory of a broker the harness owns")
    limit = idle_clients.raise_fd_limit(CONNECTIONS + 100)
    if limit < CONNECTIONS + 50:
        raise unittest.SkipTest("RLIMIT_NOFILE is %d: too low for %d connections" % (limit, CONNECTIONS))
    certs = tls_certs.Certificates()


def tearDownModule():
    if certs:
        certs.cleanup()


def client_tls():
    return ssl.create_default_context(cafile=certs.path("ca"))


class IdleConnections(unittest.TestCase):
    def start_broker(self):
        broker = harness.Broker(tls=True, extra_args=[
            "--tls_certfile", certs.path("server"), "--tls_keyfile", certs.path("server", "key"),
            "--tls_cacertfile", certs.path("ca"), "--tls_verify_peer", "false",
            "--tls_handshake_timeout", "20000"]).start()
        self.addCleanup(broker.stop)
        return broker

    def settled_rss(self, pid):
        """VmRSS once it stops growing (the last handshakes are still being answered)."""
        last = harness.vm_rss_kib(pid)
        for _ in range(10):
            time.sleep(0.3)
            now = harness.vm_rss_kib(pid)
            if abs(now - last) < 64:
                return now
            last = now
        return last

    def round_trip(self, params, queue):
        import pika

        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            channel.queue_declare(queue)
            channel.basic_publish("", queue, b"while the idle ones are open")
            method, _, body = channel.basic_get(queue, auto_ack=True)
            self.assertIsNotNone(method, "basic.get found the queue empty")
            self.assertEqual(body, b"while the idle ones are open")
            channel.queue_delete(queue)
        finally:
            connection.close()

    def hold_idle(self, tls, goal_kib):
        import pika

        broker = self.start_broker()
        port = broker.tls_port if tls else broker.port
        context = client_tls() if tls else None
        idle_clients.close_all(idle_clients.open_many(20, broker.host, port, ssl_context=context))
        time.sleep(0.5)
        before = harness.vm_rss_kib(broker.process.pid)
        started = time.monotonic()
        sockets = idle_clients.open_many(CONNECTIONS, broker.host, port, ssl_context=context)
        try:
            opened_s = time.monotonic() - started
            held = self.settled_rss(broker.process.pid)
            per_connection = (held - before) / CONNECTIONS
            print("\n%s: %d idle connections opened in %.1f s; broker RSS %.1f -> %.1f MiB, "
                  "%.2f KiB per connection" % ("tls" if tls else "plain", CONNECTIONS, opened_s,
                                               before / 1024, held / 1024, per_connection),
                  file=sys.stderr)
            params = broker.pika_parameters(socket_timeout=15)
            if tls:
                params = pika.ConnectionParameters(
                    host="127.0.0.1", port=broker.tls_port, connection_attempts=1, socket_timeout=15,
                    ssl_options=pika.SSLOptions(client_tls(), "localhost"),
                    credentials=pika.PlainCredentials(broker.user, broker.password))
            self.round_trip(params, "idle-round-trip-%s" % ("tls" if tls else "plain"))
            if not SANITIZED:
                self.assertLess(per_connection, goal_kib)
        finally:
            idle_clients.close_all(sockets)

    def test_idle_plain_connections_cost_under_4_kib_each(self):
        self.hold_idle(tls=False, goal_kib=PLAIN_GOAL_KIB)

    def test_idle_tls_connections_cost_under_40_kib_each(self):
        self.hold_idle(tls=True, goal_kib=TLS_GOAL_KIB)


if __name__ == "__main__":
    unittest.main()
