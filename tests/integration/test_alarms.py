"""Resource alarms: when messages use more memory than the high watermark, publishing
connections are blocked (connection.blocked to clients that announce the capability, and
their sockets are no longer read) until memory drops again (connection.unblocked), while
consumers keep working, as RabbitMQ does.

Not runnable against an external broker: it sets the watermark on the command line.
"""

import os
import socket
import tempfile
import threading
import time
import unittest

import pika
import pika.exceptions

import harness


@harness.skip_if_external("configures the broker's memory high watermark")
class MemoryAlarmTest(unittest.TestCase):
    def setUp(self):
        fd, self.config = tempfile.mkstemp(prefix="warren-alarm-", suffix=".conf")
        with os.fdopen(fd, "w") as f:
            f.write("# 2 MB of messages raises the alarm\nmemory_high_watermark = 2000000\n")
        self.broker = harness.Broker(extra_args=["--config", self.config]).start()

    def tearDown(self):
        self.broker.stop()
        os.unlink(self.config)

    def test_publisher_is_blocked_above_the_watermark_and_unblocked_after_draining(self):
        events = []
        publisher = pika.BlockingConnection(self.broker.pika_parameters(blocked_connection_timeout=30))
        publisher.add_on_connection_blocked_callback(lambda *a: events.append("blocked"))
        publisher.add_on_connection_unblocked_callback(lambda *a: events.append("unblocked"))
        ch = publisher.channel()
        ch.queue_declare("alarm-q")
        body = b"x" * 100000
        for _ in range(30):  # 3 MB: over the watermark
            ch.basic_publish("", "alarm-q", body)
        deadline = time.monotonic() + 10
        while "blocked" not in events and time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.1)
        self.assertIn("blocked", events)

        # A consumer on another connection is not blocked: it drains the queue.
        consumer = pika.BlockingConnection(self.broker.pika_parameters())
        cch = consumer.channel()
        drained = 0
        while True:
            method, _, got = cch.basic_get("alarm-q", auto_ack=True)
            if method is None:
                break
            drained += 1
            self.assertEqual(len(got), len(body))
        self.assertGreaterEqual(drained, 20)
        deadline = time.monotonic() + 10
        while "unblocked" not in events and time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.1)
        self.assertEqual(events[:2], ["blocked", "unblocked"])
        # The publisher works again.
        ch.basic_publish("", "alarm-q", b"after")
        method, _, got = cch.basic_get("alarm-q", auto_ack=True)
        deadline = time.monotonic() + 5
        while method is None and time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.05)
            method, _, got = cch.basic_get("alarm-q", auto_ack=True)
        self.assertEqual(got, b"after")
        consumer.close()
        publisher.close()

    def test_a_blocked_publisher_is_not_dropped_for_the_heartbeats_it_cannot_send(self):
        # The broker stops reading a blocked connection, so the client's heartbeats wait in the
        # socket. RabbitMQ pauses its heartbeat monitor then (checked against 3.10: a client
        # with a 2 s heartbeat blocked for a minute stays connected); so must Warren.
        events = []
        publisher = pika.BlockingConnection(self.broker.pika_parameters(heartbeat=2, blocked_connection_timeout=60))
        publisher.add_on_connection_blocked_callback(lambda *a: events.append("blocked"))
        publisher.add_on_connection_unblocked_callback(lambda *a: events.append("unblocked"))
        ch = publisher.channel()
        ch.queue_declare("alarm-hb")
        for _ in range(30):  # 3 MB: over the watermark
            ch.basic_publish("", "alarm-hb", b"x" * 100000)
        blocked_at = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.2)  # raises if the broker dropped us
            if blocked_at is None and "blocked" in events:
                blocked_at = time.monotonic()
            if blocked_at is not None and time.monotonic() - blocked_at > 7:  # over 3 heartbeat timeouts
                break
        self.assertIsNotNone(blocked_at)
        self.assertGreater(time.monotonic() - blocked_at, 7)
        self.assertNotIn("missed heartbeats", self.broker.stderr_text())
        consumer = pika.BlockingConnection(self.broker.pika_parameters())
        consumer.channel().queue_purge("alarm-hb")
        consumer.close()
        deadline = time.monotonic() + 10
        while "unblocked" not in events and time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.1)
        self.assertIn("unblocked", events)
        ch.queue_declare("alarm-hb", passive=True)  # the connection still works
        publisher.close()


def rss_bytes(pid):
    return harness.vm_rss_kib(pid) * 1024


@harness.skip_if_external("configures the broker's memory high watermark")
class AnnouncedBodyTest(unittest.TestCase):
    """A content header announces a body size; memory is taken (and counted toward the alarm)
    as the body bytes arrive, not when they are announced, so headers alone cannot block every
    publisher on the broker."""

    CHANNELS = 77
    ANNOUNCED = 128 * 1024 * 1024  # the default max_message_size

    def setUp(self):
        fd, self.config = tempfile.mkstemp(prefix="warren-alarm-", suffix=".conf")
        with os.fdopen(fd, "w") as f:
            f.write("memory_high_watermark = 20000000\n")
        self.addCleanup(os.unlink, self.config)
        self.broker = harness.Broker(extra_args=["--config", self.config]).start()
        self.addCleanup(self.broker.stop)  # after the test's own cleanups (they run first)

    def close_later(self, connection):
        def close():
            try:
                if connection.is_open:
                    connection.close()
            except pika.exceptions.AMQPError:
                pass
        self.addCleanup(close)

    def test_content_headers_alone_do_not_raise_the_memory_alarm(self):
        rss_before = rss_bytes(self.broker.process.pid)
        raw = harness.RawConnection(self.broker)
        self.addCleanup(raw.close_socket)
        raw.handshake()
        for channel in range(1, self.CHANNELS + 1):
            raw.open_channel(channel)
        publish = harness.short(0) + harness.shortstr("") + harness.shortstr("nowhere") + harness.octet(0)
        burst = b"".join(harness.method_frame(channel, harness.BASIC_PUBLISH, publish)
                         + harness.header_frame(channel, 60, self.ANNOUNCED)
                         for channel in range(1, self.CHANNELS + 1))
        # The open-ok for one more channel says every header before it was processed.
        raw.send(burst + harness.method_frame(self.CHANNELS + 1, harness.CHANNEL_OPEN,
                                              harness.shortstr("")))
        try:
            raw.read_method(harness.CHANNEL_OPEN_OK)
        except socket.timeout:
            self.fail("the broker stopped reading the connection that sent only content headers")

        # Another publisher is neither blocked nor stalled.
        events = []
        publisher = pika.BlockingConnection(self.broker.pika_parameters(blocked_connection_timeout=30))
        self.close_later(publisher)
        publisher.add_on_connection_blocked_callback(lambda *a: events.append("blocked"))
        ch = publisher.channel()
        ch.queue_declare("after-headers")
        ch.basic_publish("", "after-headers", b"still flowing")
        consumer = pika.BlockingConnection(self.broker.pika_parameters())
        self.close_later(consumer)
        cch = consumer.channel()
        got = None
        deadline = time.monotonic() + 5
        while got is None and time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.05)
            method, _, body = cch.basic_get("after-headers", auto_ack=True)
            if method is not None:
                got = body
        self.assertEqual(got, b"still flowing")
        publisher.process_data_events(time_limit=0.2)
        self.assertEqual(events, [])
        self.assertNotIn("memory alarm", self.broker.stderr_text())
        grown = rss_bytes(self.broker.process.pid) - rss_before
        self.assertLess(grown, 16 * 1024 * 1024)

        # The half-assembled messages go with their connection.
        raw.close_socket()
        consumer.close()
        publisher.close()
        harness.assert_broker_alive(self, self.broker)


if __name__ == "__main__":
    unittest.main()
