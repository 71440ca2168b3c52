"""Network partitions in a three-node cluster (issue 13, docs/cluster.md "Partitions"): the test
cuts the links between nodes with a userspace proxy in front of each node's cluster port
(cluster_proxy.py); clients keep talking to every node directly.

- The leader isolated (a minority of one): the two others elect a new leader within a few
  election timeouts and keep taking declares and confirmed publishes to a quorum queue. On the
  isolated node a queue.declare fails with 541 "cluster: no quorum" once the propose timeout
  passes, and a publish to the quorum queue is never confirmed (RabbitMQ does not confirm it
  either). Healed, the old leader follows the new one and catches up: every message confirmed on
  either side is on every node's copy, and a drain delivers each exactly once.
- Under load from publishers on every node, a bridge partition (the leader cut from one
  follower, both still reaching the third node) and the leader isolated for longer than the
  propose timeout (its log fills with entries it cannot commit, dropped at the heal): no
  confirmed message is lost, none is delivered twice.

Not runnable against an external broker: the test owns the three processes and the proxy.
"""

import threading
import time
import unittest

import pika
import pika.exceptions

import harness
from test_cluster import ELECTION_MS, Cluster, _cluster_built, channel_on, depth

QQ = {"x-queue-type": "quorum"}
PROPOSE_MS = 2000  # cluster_propose_timeout_ms: how long the minority makes a client wait


def publish_confirmed(node, queue, bodies):
    """Publishes bodies with confirms through node; returns the bodies acked (all, or raises)."""
    connection, channel = channel_on(node)
    try:
        channel.queue_declare(queue, passive=True)  # a read barrier (docs/cluster.md, visibility)
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
        return list(bodies)
    finally:
        if connection.is_open:
            connection.close()




def drain(node, queue, timeout=30.0):
    """Every body consumed (and acked) from queue on node until it stays empty for a second."""
    connection, channel = channel_on(node)
    bodies = []
    deadline = time.monotonic() + timeout
    try:
        channel.basic_qos(prefetch_count=100)
        for method, _props, body in channel.consume(queue, inactivity_timeout=1.0):
            if method is None or time.monotonic() > deadline:
                break
            bodies.append(body)
            channel.basic_ack(method.delivery_tag)
        channel.cancel()
    finally:
        connection.close()
    return bodies


class PendingPublish(threading.Thread):
    """One confirmed publish, in its own thread and connection, whose outcome the test reads
    without blocking on it: None while no confirm came, "ack", "nack", or the error."""

    def __init__(self, node, queue, body):
        super().__init__(name="pending-publish", daemon=True)
        self.node, self.queue, self.body = node, queue, body
        self.outcome = None
        self.sent = threading.Event()
        self.started = self.ended = None  # monotonic: the publish sent, its outcome known

    def run(self):
        connection = None
        try:
            connection, channel = channel_on(self.node)
            channel.confirm_delivery()
            self.sent.set()
            self.started = time.monotonic()
            channel.basic_publish("", self.queue, self.body, pika.BasicProperties(delivery_mode=2))
            self.outcome = "ack"
        except pika.exceptions.NackError:
            self.outcome = "nack"
        except Exception as e:  # the connection closed under it: not confirmed either
            self.outcome = repr(e)
        finally:
            self.ended = time.monotonic()
            self.sent.set()
            if connection is not None and connection.is_open:
                try:
                    connection.close()
                except Exception:
                    pass


class LoadPublisher(threading.Thread):
    """Publishes unique bodies with confirms through one node until stopped, reconnecting after
    an error; records what was acked (confirmed) and everything attempted."""

    def __init__(self, name, node, queue, stop):
        super().__init__(name="publisher-" + name, daemon=True)
        self.tag, self.node, self.queue, self.stop_event = name, node, queue, stop
        self.attempted, self.confirmed, self.errors = [], [], []

    def run(self):
        seq = 0
        while not self.stop_event.is_set():
            connection = None
            try:
                connection = pika.BlockingConnection(self.node.pika_parameters(socket_timeout=5))
                channel = connection.channel()
                channel.queue_declare(self.queue, passive=True)
                channel.confirm_delivery()
                while not self.stop_event.is_set():
                    seq += 1
                    body = b"%s:%d" % (self.tag.encode(), seq)
                    self.attempted.append(body)
                    try:
                        channel.basic_publish("", self.queue, body, pika.BasicProperties(delivery_mode=2))
                    except pika.exceptions.NackError:
                        continue
                    self.confirmed.append(body)
            except Exception as e:  # 541 on the minority side, a reset: try again shortly
                self.errors.append(repr(e)[:120])
                time.sleep(0.2)
            finally:
                if connection is not None and connection.is_open:
                    try:
                        connection.close()
                    except Exception:
                        pass


@harness.skip_if_external("starts three cluster nodes behind a partition proxy")
@unittest.skipUnless(_cluster_built(), "broker built without the cluster layer (libraft-dev)")
class PartitionTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(partitionable=True,
                               extra_args=["--cluster_propose_timeout_ms", str(PROPOSE_MS)]).start()
        self.addCleanup(self.cluster.stop)
        self.cluster.leader()

    def declare(self, node, queue):
        connection, channel = channel_on(node)
        try:
            channel.queue_declare(queue, durable=True, arguments=QQ)
        finally:
            connection.close()

    def assert_every_node_holds_once(self, queue, confirmed, uncertain=()):
        """Every node's copy counts the confirmed messages (plus uncertain ones that made it),
        and a drain delivers each confirmed message exactly once and nothing else."""
        nodes = self.cluster.nodes
        deadline = time.monotonic() + 20
        counts = None
        while time.monotonic() < deadline:
            try:
                counts = [depth(node, queue) for node in nodes]
            except pika.exceptions.AMQPConnectionError:
                counts = None  # a node just healed holds connections until it caught up
            if counts and len(set(counts)) == 1 and counts[0] >= len(confirmed):
                break
            time.sleep(0.2)
        self.assertTrue(counts and len(set(counts)) == 1, "node copies disagree: %r" % (counts,))
        bodies = drain(nodes[1], queue)
        self.assertEqual(len(bodies), counts[0], "drained %d of %d" % (len(bodies), counts[0]))
        duplicates = sorted({b for b in bodies if bodies.count(b) > 1})
        self.assertEqual(duplicates, [], "delivered twice")
        lost = sorted(set(confirmed) - set(bodies))
        self.assertEqual(lost, [], "%d confirmed messages lost" % len(lost))
        strangers = sorted(set(bodies) - set(confirmed) - set(uncertain))
        self.assertEqual(strangers, [], "delivered but never published")
        for node in nodes:
            self.assertEqual(depth(node, queue), 0)
            harness.assert_broker_alive(self, node)

    def test_isolated_leader_refuses_writes_and_catches_up_when_healed(self):
        cluster = self.cluster
        self.declare(cluster.nodes[0], "part.q")
        confirmed = []
        for i, node in enumerate(cluster.nodes):
            confirmed += publish_confirmed(node, "part.q", [b"before-%d-%d" % (i, n) for n in range(20)])

        old = cluster.leader()
        majority = [n for n in cluster.nodes if n is not old]
        cut_at = time.monotonic()
        cluster.isolate(old)

        # (a) The majority elects a leader of its own within a few election timeouts.
        new = cluster.leader(among=majority, timeout=10 * ELECTION_MS / 1000)
        elected_after = time.monotonic() - cut_at
        self.assertIn(new, majority)
        for i, node in enumerate(majority):
            connection, channel = channel_on(node)
            channel.queue_declare("part.majority%d" % i, durable=True, arguments=QQ)
            connection.close()
            confirmed += publish_confirmed(node, "part.q", [b"majority-%d-%d" % (i, n) for n in range(20)])

        # (b) The minority: no declare, no confirm. A publish to the quorum queue first.
        pending = PendingPublish(old, "part.q", b"minority-publish")
        pending.start()
        self.addCleanup(pending.join, 30)
        pending.sent.wait(10)
        started = time.monotonic()
        connection, channel = channel_on(old)
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as caught:
            channel.queue_declare("part.minority", durable=True, arguments=QQ)
        refused_after = time.monotonic() - started
        self.assertEqual(caught.exception.reply_code, 541)
        self.assertIn("no quorum", caught.exception.reply_text)
        self.assertGreaterEqual(refused_after, PROPOSE_MS / 1000 * 0.9)
        self.assertLess(refused_after, PROPOSE_MS / 1000 + 5)
        pending.join(PROPOSE_MS / 1000 + 3)
        self.assertNotEqual(pending.outcome, "ack", "a publish on the minority side was confirmed")
        minority_outcome = "%s after %.2f s" % (pending.outcome, pending.ended - pending.started) \
            if pending.outcome else "not confirmed"

        # (c) Healed: the old leader follows the new one and catches up.
        cluster.heal()
        healed_at = time.monotonic()
        self.assertIs(cluster.leader(among=cluster.nodes, timeout=20), new)
        agreed_after = time.monotonic() - healed_at
        self.assertEqual(cluster.status(old)["state"], "follower")
        for node in cluster.nodes:  # the majority's declares reached the old leader too
            for i in range(len(majority)):
                connection, channel = channel_on(node)
                channel.queue_declare("part.majority%d" % i, passive=True)
                connection.close()
        print("\npartition: new leader after %.2f s, minority declare refused after %.2f s, minority "
              "publish %s, agreed %.2f s after the heal" % (elected_after, refused_after, minority_outcome,
                                                           agreed_after))
        self.assert_every_node_holds_once("part.q", confirmed, uncertain=[b"minority-publish"])

    def partition_under_load(self, queue, partition, seconds):
        """Publishers with confirms through every node; partition(leader, others) seconds long,
        then healed; the load goes on a little; then every confirmed message must be on every
        node once. Returns (confirmed during the partition, leader before, leader after)."""
        cluster = self.cluster
        self.declare(cluster.nodes[0], queue)
        leader = cluster.leader()
        others = [n for n in cluster.nodes if n is not leader]
        stop = threading.Event()
        self.addCleanup(stop.set)
        publishers = [LoadPublisher("p%d" % i, node, queue, stop) for i, node in enumerate(cluster.nodes)]
        for p in publishers:
            p.start()
        time.sleep(1.5)
        partition(leader, others)
        during = sum(len(p.confirmed) for p in publishers)
        time.sleep(seconds)
        during = sum(len(p.confirmed) for p in publishers) - during
        cluster.heal()
        time.sleep(2)
        stop.set()
        for p in publishers:
            p.join(30)
            self.assertFalse(p.is_alive(), "%s did not stop" % p.name)
        after = cluster.leader(among=cluster.nodes, timeout=20)
        confirmed = [b for p in publishers for b in p.confirmed]
        attempted = [b for p in publishers for b in p.attempted]
        print("\n%s: %d confirmed (%d during the partition), %d attempted; per node %r (n%d led, n%d leads after)"
              % (queue, len(confirmed), during, len(attempted), [len(p.confirmed) for p in publishers],
                 cluster.nodes.index(leader) + 1, cluster.nodes.index(after) + 1))
        self.assert_every_node_holds_once(queue, confirmed, uncertain=attempted)
        return during, leader, after

    def test_bridge_partition_under_load_loses_no_confirmed_message(self):
        # The leader loses one follower; that follower still reaches the third node (the bridge).
        during, _, _ = self.partition_under_load(
            "bridge.q", lambda leader, others: self.cluster.cut(leader, others[0]), 6)
        self.assertGreater(during, 0, "nothing was confirmed during the bridge partition")

    def test_leader_isolated_under_load_past_the_propose_timeout_loses_nothing(self):
        # The old leader's log fills with entries it cannot commit, whose publishers are nacked
        # after the propose timeout; the heal replaces them with the new leader's.
        during, before, after = self.partition_under_load(
            "isolated.q", lambda leader, _others: self.cluster.isolate(leader), 3 * PROPOSE_MS / 1000)
        self.assertGreater(during, 0, "the majority confirmed nothing while the leader was cut off")
        self.assertIsNot(after, before)

if __name__ == "__main__":
    unittest.main()
