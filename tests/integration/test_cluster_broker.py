"""The broker's side of the cluster's metadata group (docs/cluster.md) on a one-member cluster:
every exchange and queue method goes through Raft (the node leads itself), so these tests pin
down the AMQP path without a second process: the answers and refusals RabbitMQ gives, decided
by the apply; methods written back to back (nowait ones too) handled in order while each waits
for the cluster; exclusive queues local; the applied index and the replicated state kept across
a restart; warrenctl cluster_status. Three nodes are tests/integration/test_cluster.py's.
Skipped when the broker was built without clustering (no libraft or libuv)."""

import json
import os
import re
import shutil
import tempfile
import time
import unittest

import pika

import harness


def cluster_args(port):
    return ["--cluster_port", str(port), "--cluster_peers", "127.0.0.1:%d" % port,
            "--node_name", "solo@localhost", "--cluster_secret_file", harness.cluster_secret_file()]


def admin(path, command):
    # The AMQP port accepts before the admin socket is bound (main.c opens it next).
    deadline = time.monotonic() + 5
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    answer = harness.admin_request_path(path, (json.dumps({"command": command}) + "\n").encode())
    return json.loads(answer.decode())


def start_cluster_broker(extra=()):
    port = harness.free_port()
    broker = start_cluster_broker_args(cluster_args(port) + list(extra))
    broker.cluster_port = port
    return broker


def start_cluster_broker_args(args):
    broker = harness.Broker(extra_args=args)
    try:
        broker.start()
    except AssertionError as e:
        if broker._stderr_file:
            broker._stderr_file.close()
        if "built without clustering" in str(e):
            shutil.rmtree(broker.data_dir, ignore_errors=True)
            raise unittest.SkipTest("this warren was built without clustering")
        raise
    return broker


class ClusterPathTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.skip_if_external("starts its own clustered broker")
        cls.broker = start_cluster_broker()

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()

    def connect(self):
        connection = pika.BlockingConnection(self.broker.pika_parameters())
        self.addCleanup(lambda: connection.is_open and connection.close())
        return connection

    def test_declares_binds_and_deletes_answer_as_without_a_cluster(self):
        ch = self.connect().channel()
        ok = ch.queue_declare("cq1", durable=True)
        self.assertEqual((ok.method.queue, ok.method.message_count, ok.method.consumer_count), ("cq1", 0, 0))
        ch.exchange_declare("cx1", "topic")
        ch.queue_bind("cq1", "cx1", "a.*")
        ch.basic_publish("cx1", "a.b", b"m")
        self.assertEqual(ch.queue_declare("cq1", passive=True).method.message_count, 1)
        named = ch.queue_declare("", durable=False).method.queue
        self.assertTrue(named.startswith("amq.gen-"), named)
        ch.queue_declare(named, passive=True)
        ch.queue_unbind("cq1", "cx1", "a.*")
        ch.exchange_declare("cx2", "fanout")
        ch.exchange_bind("cx2", "cx1", "k")
        ch.exchange_unbind("cx2", "cx1", "k")
        self.assertEqual(ch.queue_delete("cq1").method.message_count, 1)
        ch.exchange_delete("cx2")
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("cq1", passive=True)
        self.assertEqual(e.exception.reply_code, 404)

    def test_refusals_carry_rabbitmqs_codes(self):
        connection = self.connect()
        ch = connection.channel()
        ch.queue_declare("cq2", durable=True)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("cq2", durable=False)
        self.assertEqual(e.exception.reply_code, 406)
        self.assertIn("inequivalent arg 'durable'", e.exception.reply_text)
        ch = connection.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_bind("cq2", "no-such-exchange")
        self.assertEqual(e.exception.reply_code, 404)
        # Quorum queues' rules hold on the cluster path too (the name is drawn before proposing).
        ch = connection.channel()
        ch.queue_declare("cq-quorum", durable=True, arguments={"x-queue-type": "quorum"})
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("", durable=True, arguments={"x-queue-type": "quorum"})
        self.assertEqual(e.exception.reply_code, 406)
        self.assertIn("Cannot declare a server-named queue for type rabbit_quorum_queue", e.exception.reply_text)
        ch = connection.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("cq-quorum2", durable=False, arguments={"x-queue-type": "quorum"})
        self.assertEqual(e.exception.reply_code, 406)
        ch = connection.channel()
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as e:
            ch.exchange_declare("cx-bad", "no-such-type")
        self.assertEqual(e.exception.reply_code, 503)

    def test_pipelined_nowait_methods_are_handled_in_order(self):
        connection = self.connect()
        ch, other = connection.channel(), connection.channel()
        # Written back to back: each waits for the cluster before the next frame is parsed, of
        # any channel, so the publish finds the binding and the passive declare the message.
        ch._impl.exchange_declare("cx-pipe", "direct", callback=None)
        ch._impl.queue_declare("cq-pipe", callback=None)
        ch._impl.queue_bind("cq-pipe", "cx-pipe", "k", callback=None)
        ch._impl.basic_publish("cx-pipe", "k", b"m")
        self.assertEqual(other.queue_declare("cq-pipe", passive=True).method.message_count, 1)

    def test_exclusive_queues_stay_with_their_connection(self):
        owner = self.connect().channel()
        owner.queue_declare("cq-excl", exclusive=True)
        owner.queue_bind("cq-excl", "amq.fanout")
        stranger = self.connect().channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            stranger.queue_declare("cq-excl")
        self.assertEqual(e.exception.reply_code, 405)
        owner.queue_delete("cq-excl")

    def test_cluster_status_names_the_node_as_leader(self):
        status = admin(os.path.join(self.broker.data_dir, "data", "warren.sock"), "cluster_status")
        self.assertTrue(status["ok"], status)
        cluster = status["cluster"]
        self.assertTrue(cluster["enabled"])
        self.assertEqual(cluster["node_name"], "solo@localhost")
        self.assertEqual(cluster["state"], "leader")
        self.assertEqual(len(cluster["members"]), 1)
        self.assertTrue(cluster["members"][0]["self"] and cluster["members"][0]["leader"])
        self.assertGreaterEqual(cluster["commit_index"], cluster["last_applied"])


class ClusterRestartTest(unittest.TestCase):
    def test_a_restart_keeps_what_was_applied_transient_objects_too(self):
        harness.skip_if_external("starts its own clustered broker")
        first = start_cluster_broker()
        data = os.path.join(first.data_dir, "data")
        try:
            connection = pika.BlockingConnection(first.pika_parameters())
            ch = connection.channel()
            ch.queue_declare("kept-durable", durable=True)
            ch.queue_declare("kept-transient")
            ch.exchange_declare("kept-x", "direct")
            ch.queue_bind("kept-transient", "kept-x", "k")
            connection.close()
            applied = admin(os.path.join(data, "warren.sock"), "cluster_status")["cluster"]["last_applied"]
            self.assertEqual(first.terminate(), 0)
            # The same cluster address: a member's address is its identity (its Raft id derives
            # from it), so a node restarted elsewhere would be another node, not a member.
            second = harness.Broker(extra_args=cluster_args(first.cluster_port) + ["--data-dir", data]).start()
            try:
                connection = pika.BlockingConnection(second.pika_parameters())
                ch = connection.channel()
                ch.queue_declare("kept-durable", passive=True)
                ch.queue_declare("kept-transient", passive=True)
                ch.basic_publish("kept-x", "k", b"m")
                self.assertEqual(ch.queue_declare("kept-transient", passive=True).method.message_count, 1)
                connection.close()
                # The model saves the index of the last command it applied. Raft's last applied
                # entry may be the barrier the leader appends after commands (cluster_node.c),
                # one past it.
                resumed = re.search(r"resuming after log index (\d+)", second.stderr_text())
                self.assertIsNotNone(resumed, second.stderr_text())
                self.assertIn(int(resumed.group(1)), (applied - 1, applied))
            finally:
                second.stop()
        finally:
            first.kill()
            if first._stderr_file:
                first._stderr_file.close()
            shutil.rmtree(first.data_dir, ignore_errors=True)


class NoClusterTest(unittest.TestCase):
    def test_cluster_status_without_a_cluster(self):
        harness.skip_if_external("starts its own broker")
        broker = harness.Broker().start()
        try:
            status = admin(os.path.join(broker.data_dir, "data", "warren.sock"), "cluster_status")
            self.assertEqual(status, {"ok": True, "cluster": {"enabled": False}})
        finally:
            broker.stop()

    def test_cluster_peers_without_a_port_is_refused_at_start(self):
        harness.skip_if_external("starts its own broker")
        broker = harness.Broker(extra_args=["--cluster_peers", "127.0.0.1:1"])
        with self.assertRaises(AssertionError) as e:
            broker.start()
        self.assertIn("cluster_port is 0", str(e.exception))
        broker._stderr_file.close()
        shutil.rmtree(broker.data_dir, ignore_errors=True)

    def refused_at_start(self, extra_args):
        broker = harness.Broker(extra_args=extra_args)
        try:
            with self.assertRaises(AssertionError) as e:
                broker.start()
            return str(e.exception)
        finally:
            broker._stderr_file.close()
            shutil.rmtree(broker.data_dir, ignore_errors=True)

    def test_a_cluster_without_a_readable_private_secret_is_refused_at_start(self):
        harness.skip_if_external("starts its own broker")
        port = harness.free_port()
        args = ["--cluster_port", str(port), "--cluster_peers", "127.0.0.1:%d" % port]
        self.assertIn("cluster_secret_file is not", self.refused_at_start(args))
        with tempfile.TemporaryDirectory() as d:
            secret = os.path.join(d, "secret")
            with open(secret, "w") as f:
                f.write("0123456789abcdef0123456789abcdef\n")
            os.chmod(secret, 0o640)  # group-readable: refused, as RabbitMQ refuses such a cookie
            self.assertIn("cluster_secret_file", self.refused_at_start(args + ["--cluster_secret_file", secret]))
            os.chmod(secret, 0o600)
            with open(secret, "w") as f:
                f.write("too short\n")
            self.assertIn("cluster_secret_file", self.refused_at_start(args + ["--cluster_secret_file", secret]))
            self.assertIn("cluster_secret_file",
                          self.refused_at_start(args + ["--cluster_secret_file", os.path.join(d, "missing")]))

    def test_a_node_listens_on_cluster_port_and_is_known_by_cluster_address(self):
        """A node behind a forwarded port: peers dial its cluster_address, it binds cluster_port."""
        harness.skip_if_external("starts its own broker")
        import socket

        listen, advertised = harness.free_port(), harness.free_port()
        broker = start_cluster_broker_args(
            ["--cluster_port", str(listen), "--cluster_address", "127.0.0.1:%d" % advertised,
             "--cluster_peers", "127.0.0.1:%d" % advertised, "--node_name", "forwarded@localhost",
             "--cluster_secret_file", harness.cluster_secret_file()])
        try:
            # The node leads itself once its log is open and it listens (soon after the AMQP port).
            deadline = time.monotonic() + 10
            while True:
                status = admin(os.path.join(broker.data_dir, "data", "warren.sock"), "cluster_status")["cluster"]
                if status.get("leader") or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(status["leader"], "127.0.0.1:%d" % advertised)
            socket.create_connection(("127.0.0.1", listen), timeout=2).close()
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", advertised), timeout=2).close()
            self.assertIn("(listening on port %d)" % listen, broker.stderr_text())
        finally:
            broker.stop()

    def test_a_propose_timeout_out_of_range_is_refused_at_start(self):
        harness.skip_if_external("starts its own broker")
        port = harness.free_port()
        self.assertIn("cluster_propose_timeout_ms", self.refused_at_start(
            cluster_args(port) + ["--cluster_propose_timeout_ms", "5"]))


if __name__ == "__main__":
    unittest.main()
