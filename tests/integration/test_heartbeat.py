"""Heartbeats and the handshake timeout, timed on raw sockets. Checked against RabbitMQ 3.10.8:
with heartbeat 1 it sends a heartbeat frame every 0.5 s while idle and drops a silent client
3.0 s after its last byte (no connection.close); a connection that stalls anywhere before
connection.open-ok is dropped 10 s after the TCP accept (no connection.close)."""

import socket
import threading
import time
import unittest

import harness
from harness import RawConnection, method_frame


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


class HeartbeatTest(unittest.TestCase):
    def tearDown(self):
        harness.assert_broker_alive(self)

    def test_server_sends_heartbeats_at_the_negotiated_1_s(self):
        with RawConnection() as raw:
            raw.handshake(heartbeat=1)
            arrivals = []
            start = time.monotonic()
            while time.monotonic() - start < 4.0:
                frame = raw.read_frame(timeout=2.0)
                self.assertEqual((frame.type, frame.channel, frame.payload),
                                 (harness.FRAME_HEARTBEAT, 0, b""))
                arrivals.append(time.monotonic())
                raw.send(harness.heartbeat_frame())  # keep our side of the bargain
            # RabbitMQ sends every 0.5 s (half the interval); 1.6 s leaves a server that sends
            # once a second room for timer slack, but not one that skips an interval.
            gaps = [b - a for a, b in zip([start] + arrivals, arrivals)]
            self.assertGreaterEqual(len(arrivals), 3, gaps)
            self.assertLessEqual(max(gaps), 1.6, gaps)
            raw.open_channel(1)  # still alive: our heartbeats counted as traffic
            raw.close_connection()

    def test_silent_client_with_heartbeat_1_is_dropped_within_seconds(self):
        # The spec allows dropping after two silent intervals; RabbitMQ takes 3.0 s.
        with RawConnection() as raw:
            raw.handshake(heartbeat=1)
            silent_since = time.monotonic()
            try:
                while True:
                    frame = raw.read_frame(timeout=6.0)
                    if frame.type == harness.FRAME_METHOD:
                        self.assertEqual(frame.method, harness.CONNECTION_CLOSE, frame)
            except harness.PeerClosed:
                elapsed = time.monotonic() - silent_since
            except socket.timeout:
                self.fail("silent client still connected 6 s after heartbeat 1 was agreed")
            self.assertGreaterEqual(elapsed, 1.5)
            self.assertLessEqual(elapsed, 5.0)

    def test_client_traffic_other_than_heartbeats_keeps_connection_alive(self):
        with RawConnection() as raw:
            raw.handshake(heartbeat=1)
            raw.open_channel(1)
            for _ in range(8):  # 4 s of flow requests, no heartbeat frames from us
                raw.send(method_frame(1, harness.CHANNEL_FLOW, harness.octet(1)))
                raw.read_method(harness.CHANNEL_FLOW_OK)
                time.sleep(0.5)
            raw.close_connection()

    def test_heartbeat_0_means_no_heartbeats_and_no_timeout(self):
        with RawConnection() as raw:
            raw.handshake(heartbeat=0)
            with self.assertRaises(socket.timeout):
                frame = raw.read_frame(timeout=4.0)
                self.fail("server sent %r with heartbeats disabled" % frame)
            raw.open_channel(1)
            raw.close_connection()


class HandshakeTimeoutTest(unittest.TestCase):
    """All stalls run at once so the test costs one timeout (~10 s), not six."""

    def test_connections_stalled_before_open_ok_are_dropped_after_about_10_s(self):
        def accept_only(raw):
            pass

        def partial_header(raw):
            raw.send(b"AMQ")

        def header_only(raw):
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

        stalls = [accept_only, partial_header, header_only, after_start_ok, after_tune_ok]
        results = {}

        def run(stall):
            started = time.monotonic()
            try:
                with RawConnection(timeout=20.0) as raw:
                    stall(raw)
                    closed = raw.wait_closed(20.0)
                    results[stall.__name__] = (closed, time.monotonic() - started)
            except Exception as error:  # reported below, with the stall's name
                results[stall.__name__] = (error, time.monotonic() - started)

        threads = [threading.Thread(target=run, args=(s,)) for s in stalls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30.0)
        for stall in stalls:
            closed, elapsed = results.get(stall.__name__, ("thread did not finish", None))
            with self.subTest(stall=stall.__name__):
                self.assertIs(closed, True, "%s after %s s" % (closed, elapsed))
                self.assertGreaterEqual(elapsed, 8.0)
                self.assertLessEqual(elapsed, 15.0)
        harness.assert_broker_alive(self)


if __name__ == "__main__":
    unittest.main()
