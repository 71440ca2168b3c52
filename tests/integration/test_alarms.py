"""Resource alarms: when messages use more memory than the high watermark, publishing
connections are blocked (connection.blocked to clients that announce the capability, and
their sockets are no longer read) until memory drops again (connection.unblocked), while
consumers keep working, as RabbitMQ does.

Not runnable against an external broker: it sets the watermark on the command line.
"""

import os
import tempfile
import threading
import time
import unittest

import pika

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


if __name__ == "__main__":
    unittest.main()
