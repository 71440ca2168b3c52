"""Debian's nagios-plugins-rabbitmq checks against Warren's management API: aliveness,
overview, queue and connections report OK (exit status 0) with the broker's real figures, and
a threshold the figures cross turns them CRITICAL (so an OK means the numbers were read).

The checks are Perl scripts (LWP, Monitoring::Plugin) that read /api/aliveness-test/<vhost>,
/api/overview (queue_totals), /api/queues/<vhost>/<queue> (messages, messages_ready,
messages_unacknowledged, consumers) and /api/connections (user, state, recv_oct_details.rate,
send_oct_details.rate); they send credentials only after a 401 naming the realm
"RabbitMQ Management".

Not runnable against an external broker: the management port is the harness's.
"""

import os
import re
import subprocess
import time
import unittest

import pika

import harness

CHECKS = "/usr/bin/check_rabbitmq_%s"
OK, WARNING, CRITICAL = 0, 1, 2


@harness.skip_if_external("runs the checks against the broker's own management port")
@unittest.skipUnless(os.access(CHECKS % "overview", os.X_OK), "nagios-plugins-rabbitmq is not installed")
class NagiosChecksTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # check_rabbitmq_server, _partition and _watermark read /api/nodes/rabbit@NAME (NAME: -n):
        # RabbitMQ's node naming, which node_name gives Warren.
        cls.broker = harness.Broker(management=True, extra_args=["--node_name", "rabbit@nagios"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()

    def setUp(self):
        self.conn = pika.BlockingConnection(self.broker.pika_parameters())
        self.ch = self.conn.channel()

    def tearDown(self):
        self.conn.close()

    def check(self, name, *args):
        """(exit status, first output line) of check_rabbitmq_<name> against the broker."""
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        proc = subprocess.run([CHECKS % name, "-H", "127.0.0.1", "--port", str(self.broker.management_port),
                               "-u", "guest", "-p", "guest", "-t", "10", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=30)
        return proc.returncode, proc.stdout.decode("utf-8", "replace").strip()

    def assert_ok(self, name, *args):
        status, out = self.check(name, *args)
        self.assertEqual(status, OK, out)
        self.assertIn(" OK - ", out)
        return out

    def fill(self, queue, n):
        self.ch.queue_declare(queue)
        self.ch.queue_purge(queue)
        for i in range(n):
            self.ch.basic_publish("", queue, b"m%d" % i)
        deadline = time.monotonic() + 5
        while self.ch.queue_declare(queue, passive=True).method.message_count != n:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)

    def test_server_partition_and_watermark(self):
        # The node's resources, its partitions and its memory alarm: OK on a healthy node. The
        # server check was CRITICAL on any Warren ("Process CRITICAL (100.00%)": proc_used and
        # proc_total were both 1).
        for name in ("server", "partition", "watermark"):
            self.assert_ok(name, "-n", "nagios")

    def test_aliveness(self):
        out = self.assert_ok("aliveness")
        self.assertIn("vhost: /", out)

    def test_aliveness_of_an_unknown_vhost_is_not_ok(self):
        status, out = self.check("aliveness", "--vhost", "no-such-vhost")
        self.assertNotEqual(status, OK, out)

    def test_overview(self):
        self.fill("nagios-overview", 4)
        out = self.assert_ok("overview")
        counts = dict(re.findall(r"(\w+)=(\d+);", out))
        self.assertGreaterEqual(int(counts["messages"]), 4, out)
        self.assertGreaterEqual(int(counts["messages_ready"]), 4, out)
        # thresholds: messages,ready,unacked; the messages are counted, so a critical of 1 trips
        status, out = self.check("overview", "-c", "1,-1,-1")
        self.assertEqual(status, CRITICAL, out)

    def test_queue(self):
        self.fill("nagios-queue", 3)
        out = self.assert_ok("queue", "--queue", "nagios-queue")
        self.assertIn("messages OK (3)", out)
        self.assertIn("messages_ready OK (3)", out)
        self.assertIn("messages_unacknowledged OK (0)", out)
        self.assertIn("consumers OK (0)", out)
        status, out = self.check("queue", "--queue", "nagios-queue", "-w", "2,-1,-1,-1", "-c", "5,-1,-1,-1")
        self.assertEqual(status, WARNING, out)

    def test_queue_that_does_not_exist_is_critical(self):
        status, out = self.check("queue", "--queue", "nagios-absent")
        self.assertEqual(status, CRITICAL, out)

    def test_connections(self):
        out = self.assert_ok("connections")
        counts = dict(re.findall(r"(\w+)=(\d+);", out))
        self.assertGreaterEqual(int(counts["connections"]), 1, out)  # this test's own
        self.assertEqual(counts["connections_notrunning"], "0", out)
        out = self.assert_ok("connections", "--clientuser", "guest")
        status, out = self.check("connections", "-c", "0,-1,-1,-1")
        self.assertEqual(status, CRITICAL, out)


if __name__ == "__main__":
    unittest.main()
