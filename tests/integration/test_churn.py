"""Connection churn: 1,000 full connect/close cycles, then abrupt disconnects at every
handshake stage. Run against the sanitizer build (WARREN_BIN=<asan build>/warren,
WARREN_SANITIZE=1) the module teardown's stderr check turns any leaked connection, buffer or
channel into a failure; against any build it proves the broker keeps serving."""

import time
import unittest

import harness
from harness import RawConnection, method_frame, shortstr

CYCLES = 1000


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


class ChurnTest(unittest.TestCase):
    def tearDown(self):
        harness.assert_broker_alive(self)

    def test_1000_connect_open_channel_close_cycles(self):
        started = time.monotonic()
        for cycle in range(CYCLES):
            with RawConnection() as raw:
                raw.handshake()
                if cycle % 2:
                    raw.open_channel(1)
                raw.close_connection()
        # Bounded so a broker that stalls per connection fails here rather than in ctest's
        # timeout; RabbitMQ takes about 5 s.
        self.assertLess(time.monotonic() - started, 60.0)

    def test_abrupt_disconnects_at_every_stage(self):
        def connected(raw):
            pass

        def partial_header(raw):
            raw.send(b"AMQP\x00")

        def after_start(raw):
            raw.read_start()

        def after_start_ok(raw):
            raw.read_start()
            raw.send(method_frame(0, harness.CONNECTION_START_OK, harness.start_ok_args(
                raw.broker.user, raw.broker.password)))
            raw.read_method(harness.CONNECTION_TUNE)

        def after_tune_ok(raw):
            after_start_ok(raw)
            raw.send(method_frame(0, harness.CONNECTION_TUNE_OK,
                                  harness.tune_ok_args(2047, 131072, 0)))

        def open_with_channels(raw):
            raw.handshake()
            raw.send(b"".join(method_frame(n, harness.CHANNEL_OPEN, shortstr(""))
                              for n in range(1, 11)))
            for _ in range(10):
                raw.read_method(harness.CHANNEL_OPEN_OK)

        def mid_frame(raw):
            raw.handshake()
            raw.open_channel(1)
            raw.send(method_frame(1, harness.CHANNEL_FLOW, harness.octet(1))[:6])

        def pending_replies(raw):
            # Requests whose replies the broker is still writing when the socket goes away.
            raw.handshake()
            raw.send(b"".join(method_frame(n, harness.CHANNEL_OPEN, shortstr(""))
                              for n in range(1, 201)))

        def after_close_sent(raw):
            raw.handshake()
            raw.send(method_frame(0, harness.CONNECTION_CLOSE, harness.close_args()))

        stages = [connected, partial_header, after_start, after_start_ok, after_tune_ok,
                  open_with_channels, mid_frame, pending_replies, after_close_sent]
        for _ in range(30):
            for stage in stages:
                raw = RawConnection()
                stage(raw)
                raw.close_socket()
        harness.assert_broker_alive(self)


if __name__ == "__main__":
    unittest.main()
