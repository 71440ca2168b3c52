"""Quorum queues replicated through the cluster's log (issue 13, docs/cluster.md "Quorum queues
in a cluster"): three Warren nodes on loopback, real pika clients on every node.

- A message published with confirms through one node is delivered to a consumer on another, and
  a basic.get on a third sees what is left: the queue is one queue, whichever node a client uses.
- Confirmed messages survive the node they were published through being killed with SIGKILL,
  and then the leader too (with the first node back): none lost, none duplicated, in order.
- A consumer's unacked messages come back, marked redelivered and counted (x-delivery-count),
  to a consumer on another node when its connection dies: first the channel closing, then the
  whole node being killed (the node proposes its own node_down when it starts again).
- A publisher whose connection dies while its enqueue waits for a majority leaves the node
  running when the enqueue is applied later (its confirm has nowhere to go).
- nack/reject with requeue, basic.cancel keeping unacked deliveries settleable, no-ack consumers,
  purge, x-delivery-limit dead-lettering into a replicated queue, queue.delete cancelling
  consumers on every node, x-single-active-consumer with consumers on two nodes, x-message-ttl
  and per-message expiration dead-lettering with reason "expired".

Not runnable against an external broker: the test owns the three processes.
"""

import signal
import threading
import time
import unittest

import pika
import pika.exceptions

import harness
from test_cluster import Cluster, _cluster_built, channel_on, exists, poll_get

QQ = {"x-queue-type": "quorum"}
CONFIRM_SELECT = (85, 10)
CONFIRM_SELECT_OK = (85, 11)


def drain(node, queue, expect, timeout=20.0, ack=True, cancel=True):
    """Consumes from queue on node until `expect` distinct messages arrived; returns [(body, redelivered,
    x-delivery-count)]. cancel False: the connection closes with the consumer still on (pika's
    cancel would nack what it holds, in an order that depends on timing)."""
    connection, channel = channel_on(node)
    got, distinct = [], set()
    deadline = time.monotonic() + timeout
    try:
        channel.basic_qos(prefetch_count=50)
        for method, props, body in channel.consume(queue, inactivity_timeout=0.5):
            if method is not None:
                count = (props.headers or {}).get("x-delivery-count")
                got.append((body, method.redelivered, count))
                distinct.add(body)
                if ack:
                    channel.basic_ack(method.delivery_tag)
            if len(distinct) >= expect or time.monotonic() > deadline:
                break
        if cancel:
            channel.cancel()
    finally:
        connection.close()
    return got


def assert_all_once_in_order(test, got, expected):
    """Every expected body arrived (none lost, none invented). After a crash a message held by a
    consumer of the dead run comes back when that run's node_down applies, possibly after newer
    ones went out, and may come twice: such a copy is marked redelivered. The first copies of
    the messages never redelivered arrive in publish order."""
    bodies = [g[0] for g in got]
    test.assertEqual(sorted(set(bodies)), sorted(expected))
    seen = set()
    for body, redelivered, _count in got:
        if body in seen:
            test.assertTrue(redelivered, "%r delivered twice, the second copy not marked redelivered" % body)
        seen.add(body)
    fresh = [g[0] for g in got if not g[1]]
    test.assertEqual(fresh, [b for b in expected if b in set(fresh)])


def publish_confirmed(node, queue, bodies):
    connection, channel = channel_on(node)
    try:
        # No read barrier first: a declare's -ok comes once every live member applied it
        # (docs/cluster.md, visibility), so the queue routes here at once; a publish that found
        # it missing would be unroutable, acked, and absent from the counts these tests check.
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    finally:
        connection.close()


def depth(node, queue):
    connection, channel = channel_on(node)
    try:
        ok = channel.queue_declare(queue, passive=True).method
        return ok.message_count, ok.consumer_count
    finally:
        connection.close()


def wait_depth(node, queue, ready, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = depth(node, queue)[0]
        if got == ready:
            return
        if time.monotonic() > deadline:
            raise AssertionError("queue %s on node has %d ready, expected %d" % (queue, got, ready))
        time.sleep(0.1)


@unittest.skipUnless(_cluster_built(), "built without the cluster layer (libraft)")
class ReplicatedQuorumQueueTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster().start()
        self.addCleanup(self.cluster.stop)
        self.a, self.b, self.c = self.cluster.nodes
        self.cluster.leader()

    def declare(self, node, queue, arguments=None):
        connection, channel = channel_on(node)
        try:
            channel.queue_declare(queue, durable=True, arguments=dict(QQ, **(arguments or {})))
        finally:
            connection.close()

    def test_one_queue_whichever_node(self):
        self.declare(self.a, "q1")
        publish_confirmed(self.b, "q1", [b"m%d" % i for i in range(100)])
        # Every node's copy holds the hundred confirmed messages.
        for node in self.cluster.nodes:
            wait_depth(node, "q1", 100)
        got = drain(self.c, "q1", 60, cancel=False)
        self.assertEqual([g[0] for g in got[:60]], [b"m%d" % i for i in range(60)])
        self.assertFalse(any(g[1] for g in got))
        # What the consumer held past the sixty (its prefetch) went back when it left; node c
        # proposed that when the connection closed, so node a sees it shortly after.
        wait_depth(self.a, "q1", 40)
        connection, channel = channel_on(self.a)
        try:
            rest = {b"m%d" % i for i in range(60, 100)}
            method, props, body = channel.basic_get("q1", auto_ack=False)
            # Which of the forty comes first depends on how pika's close gave them back (a nack
            # puts a message at the back, the channel's close puts the rest at the front).
            self.assertIn(body, rest)
            self.assertEqual(method.message_count, 39)
            # It had been delivered to the departed consumer: redelivered, and counted (once for
            # the channel's close; pika's close nacks what it holds first, which may count again).
            self.assertTrue(method.redelivered)
            self.assertIn(props.headers.get("x-delivery-count"), (1, 2))
            channel.basic_nack(method.delivery_tag, requeue=True)  # to the back, counted
            first = body
            method, props, body = channel.basic_get("q1", auto_ack=True)
            self.assertIn(body, rest - {first})
            self.assertEqual(channel.queue_purge("q1").method.message_count, 39)
        finally:
            connection.close()
        for node in self.cluster.nodes:
            wait_depth(node, "q1", 0)

    def test_conditional_delete_closes_the_connection_as_on_one_node(self):
        # RabbitMQ 3.10 refuses if-unused/if-empty on a quorum queue with 540, whichever node
        # is asked; the cluster path judges a delete's conditions with the model's own check.
        self.declare(self.a, "q.cond")
        connection, channel = channel_on(self.b)
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as ctx:
            channel.queue_delete("q.cond", if_unused=True)
        self.assertEqual(ctx.exception.reply_code, 540)
        self.assertIn("queue.delete operations with if-unused flag set are not supported by quorum queues",
                      ctx.exception.reply_text)
        for node in self.cluster.nodes:
            self.assertTrue(exists(node, "q.cond"), node)

    def test_confirmed_messages_survive_kill_of_publisher_node_and_leader(self):
        self.declare(self.a, "durable")
        publish_confirmed(self.a, "durable", [b"%05d" % i for i in range(500)])
        self.a.sigkill()
        leader = self.cluster.leader(among=[self.b, self.c])
        publish_confirmed(self.b, "durable", [b"%05d" % i for i in range(500, 700)])
        self.a.relaunch()
        self.cluster.leader()
        leader.sigkill()
        survivor = [n for n in self.cluster.nodes if n is not leader][0]
        self.cluster.leader(among=[n for n in self.cluster.nodes if n is not leader])
        # A passive declare reads the node's copy after a read barrier: it has caught up then.
        wait_depth(survivor, "durable", 700, timeout=30)
        got = drain(survivor, "durable", 700, timeout=30)
        assert_all_once_in_order(self, got, [b"%05d" % i for i in range(700)])
        leader.relaunch()

    def test_whole_cluster_killed_and_restarted_keeps_every_confirmed_message(self):
        self.declare(self.a, "all")
        # Enough messages that snapshots (1,024 log entries at least) are taken and the restart
        # rebuilds the queue from a snapshot and the log after it.
        publish_confirmed(self.b, "all", [b"%05d" % i for i in range(3000)])
        got = drain(self.c, "all", 500)  # some acked, then the rest stays
        self.assertEqual([g[0] for g in got[:500]], [b"%05d" % i for i in range(500)])
        # Acks are not confirmed to a client (AMQP has no ack of an ack): one still on its way
        # when every node dies is lost, and its message comes back, redelivered, as it would
        # with RabbitMQ. What this test checks is the confirmed messages, so the kill waits
        # until every node applied the acks (a CI run under ASan killed three acks in flight).
        for node in self.cluster.nodes:
            wait_depth(node, "all", 2500, timeout=30)
        for node in self.cluster.nodes:
            node.sigkill()
        for node in self.cluster.nodes:
            node.relaunch()
        self.cluster.leader()
        for node in self.cluster.nodes:
            wait_depth(node, "all", 2500, timeout=30)
        got = drain(self.a, "all", 2500, timeout=60)
        # The first drain's consumer held 500.. when everything died: they come back when its
        # node's restart proposes node_down, maybe after later ones (redelivered).
        assert_all_once_in_order(self, got, [b"%05d" % i for i in range(500, 3000)])
        # Then all three stopped gracefully and started again: still empty, nothing comes back.
        publish_confirmed(self.c, "all", [b"last"])
        for node in self.cluster.nodes:
            self.assertEqual(node.terminate(), 0)
            node._stderr_file.close()
            node._stderr_file = None
        for node in self.cluster.nodes:
            node.relaunch()
        self.cluster.leader()
        for node in self.cluster.nodes:
            wait_depth(node, "all", 1, timeout=30)
        self.assertEqual([g[0] for g in drain(self.b, "all", 1)], [b"last"])

    def test_a_restarted_node_serves_only_once_caught_up(self):
        # A queue declared while node a is down; a publish through a the moment it is back must
        # reach it (a stale copy would drop the message as unroutable, and confirm it).
        self.a.sigkill()
        self.cluster.leader(among=[self.b, self.c])
        self.declare(self.b, "late")
        self.a.relaunch()
        publish_confirmed(self.a, "late", [b"first-after-restart"])
        got = drain(self.c, "late", 1, timeout=10)
        self.assertEqual([g[0] for g in got], [b"first-after-restart"])

    def test_unacked_messages_return_when_channel_closes_or_node_dies(self):
        self.declare(self.b, "work")
        publish_confirmed(self.b, "work", [b"w%d" % i for i in range(10)])
        # A consumer on node a takes five and closes its channel without acking.
        connection, channel = channel_on(self.a)
        channel.basic_qos(prefetch_count=5)
        held = []
        for method, _props, body in channel.consume("work", inactivity_timeout=5):
            held.append(body)
            if len(held) == 5:
                break
        channel.close()
        connection.close()
        got = drain(self.c, "work", 10)
        # The returned ones come first (a departed consumer's messages go to the front).
        self.assertEqual([g[0] for g in got[:5]], held)
        self.assertTrue(all(g[1] and g[2] == 1 for g in got[:5]))
        self.assertEqual(sorted(g[0] for g in got), sorted(b"w%d" % i for i in range(10)))

        # Again, but the consumer's whole node dies: its messages come back once it restarts.
        publish_confirmed(self.b, "work", [b"x%d" % i for i in range(4)])
        connection, channel = channel_on(self.a)
        channel.basic_qos(prefetch_count=4)
        held = []
        for method, _props, body in channel.consume("work", inactivity_timeout=5):
            held.append(body)
            if len(held) == 4:
                break
        self.a.sigkill()
        self.a.relaunch()  # it proposes its own node_down when it starts again
        got = drain(self.c, "work", 4)
        self.assertEqual(sorted(g[0] for g in got), sorted(held))
        self.assertTrue(all(g[1] for g in got))

    def test_a_dead_nodes_messages_go_to_consumers_elsewhere_without_its_restart(self):
        self.declare(self.a, "orphans")
        publish_confirmed(self.a, "orphans", [b"o%d" % i for i in range(6)])
        # A consumer on the node that will die holds four messages unacked.
        victim = self.b if self.cluster.leader() is not self.b else self.c
        connection, channel = channel_on(victim)
        channel.basic_qos(prefetch_count=4)
        held = []
        for method, _props, body in channel.consume("orphans", inactivity_timeout=5):
            held.append(body)
            if len(held) == 4:
                break
        victim.sigkill()
        # The leader stops hearing from it and proposes its node_down: the four come back.
        others = [n for n in self.cluster.nodes if n is not victim]
        self.cluster.leader(among=others)
        got = drain(others[0], "orphans", 6, timeout=20)
        self.assertEqual(sorted(g[0] for g in got), sorted(b"o%d" % i for i in range(6)))
        self.assertEqual([g[0] for g in got if g[1]], held)  # redelivered: exactly the held ones
        victim.relaunch()

    def test_a_resumed_node_does_not_deliver_what_went_elsewhere(self):
        # A consumer on a node that is paused is declared down by the leader; the messages the log
        # checked out to it meanwhile go to a consumer on another node, marked redelivered. When
        # the paused node resumes it applies the checkouts and the node_down together: its
        # client must not get those messages too, unmarked (it did, before deliveries waited for
        # the end of the loop pass and were checked against the state).
        self.declare(self.a, "paused")
        victim = self.b if self.cluster.leader() is not self.b else self.c
        others = [n for n in self.cluster.nodes if n is not victim]
        v_connection, v_channel = channel_on(victim)
        got_on_victim = []
        try:
            v_channel.basic_qos(prefetch_count=10)
            v_channel.basic_consume("paused", lambda ch, method, props, body: got_on_victim.append(
                (body, method.redelivered)))
            deadline = time.monotonic() + 10
            while depth(others[0], "paused")[1] != 1:
                self.assertLess(time.monotonic(), deadline, "the consumer never showed up")
                time.sleep(0.05)
            victim.process.send_signal(signal.SIGSTOP)
            try:
                publish_confirmed(others[0], "paused", [b"p%d" % i for i in range(5)])
                # Three election timeouts of silence, then node_down: the five are ready again.
                wait_depth(others[0], "paused", 5, timeout=20)
                got = drain(others[1], "paused", 5, timeout=20)
            finally:
                victim.process.send_signal(signal.SIGCONT)
            self.assertEqual(sorted(g[0] for g in got), [b"p%d" % i for i in range(5)])
            self.assertTrue(all(g[1] for g in got), got)
            # The victim applies what it missed; give its client time to receive anything sent.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                v_connection.process_data_events(time_limit=0.2)
            self.assertEqual(got_on_victim, [], "a resumed node delivered messages another consumer had")
        finally:
            try:
                v_connection.close()
            except Exception:
                pass

    def test_a_publishers_channel_gone_before_its_enqueue_is_applied(self):
        # The publisher's connection dies while its enqueue waits for a majority (the two other
        # nodes paused): the channel is freed, and the confirm's callback, when the enqueue is
        # applied after the others resume, must not reach it (it did: a use-after-free in
        # replica_applied that took the node down, found by test_cluster_nemesis).
        self.declare(self.a, "late")
        others = [self.b, self.c]
        for node in others:
            node.process.send_signal(signal.SIGSTOP)
        try:
            with harness.RawConnection(self.a) as raw:
                raw.handshake()
                raw.open_channel(1)
                raw.send(harness.method_frame(1, CONFIRM_SELECT, harness.octet(0)))
                raw.read_method(CONFIRM_SELECT_OK)
                body = b"confirm of a channel that is gone"
                raw.send(harness.method_frame(1, harness.BASIC_PUBLISH, harness.short(0) + harness.shortstr("")
                                              + harness.shortstr("late") + harness.octet(0))
                         + harness.header_frame(1, 60, len(body), 0x1000, harness.octet(2))
                         + harness.frame(harness.FRAME_BODY, 1, body))
                time.sleep(0.3)
            time.sleep(0.5)  # the node reaps the connection and frees its channel
        finally:
            for node in others:
                node.process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 15
        while True:  # until the enqueue is applied on a: the callback has run
            time.sleep(0.2)
            harness.assert_broker_alive(self, self.a)
            if depth(self.a, "late")[0] == 1:
                break
            self.assertLess(time.monotonic(), deadline, "the enqueue was never applied")
        harness.assert_broker_alive(self, self.a)

    def test_cancel_keeps_unacked_settleable_and_no_ack_consumers(self):
        self.declare(self.a, "c1")
        publish_confirmed(self.a, "c1", [b"%d" % i for i in range(6)])
        connection, channel = channel_on(self.b)
        try:
            channel.basic_qos(prefetch_count=3)
            tags = []
            for method, _props, _body in channel.consume("c1", inactivity_timeout=5):
                tags.append(method.delivery_tag)
                if len(tags) == 3:
                    break
            channel.cancel()  # the three stay with the channel
            for tag in tags:
                channel.basic_ack(tag)
            wait_depth(self.c, "c1", 3)
            # A no-ack consumer takes the rest, which leave the queue at once.
            bodies = []
            for method, _props, body in channel.consume("c1", auto_ack=True, inactivity_timeout=5):
                if method is None:
                    break
                bodies.append(body)
                if len(bodies) == 3:
                    break
            channel.cancel()
            self.assertEqual(bodies, [b"3", b"4", b"5"])
        finally:
            connection.close()
        wait_depth(self.a, "c1", 0)
        self.assertEqual(depth(self.a, "c1"), (0, 0))

    def test_delivery_limit_dead_letters_into_a_replicated_queue(self):
        self.declare(self.a, "dead")
        self.declare(self.a, "poison", {"x-delivery-limit": 1, "x-dead-letter-exchange": "",
                                        "x-dead-letter-routing-key": "dead"})
        publish_confirmed(self.b, "poison", [b"bad"])
        connection, channel = channel_on(self.c)
        try:
            for _ in range(2):  # delivered, rejected with requeue, twice: over the limit
                method, _props, _body = poll_get(channel, "poison")
                self.assertIsNotNone(method)
                channel.basic_reject(method.delivery_tag, requeue=True)
        finally:
            connection.close()
        got = drain(self.b, "dead", 1)
        self.assertEqual(got[0][0], b"bad")
        wait_depth(self.a, "poison", 0)

    def test_a_dead_letter_into_a_durable_classic_queue_survives_its_homes_restart(self):
        # The leader dead-letters (cluster_queues.h) a message rebuilt from the log's bytes into a
        # durable classic queue homed on it: confirmed by nobody, but once there it must survive
        # the home's kill -9 like any persistent message of a durable queue.
        leader = self.cluster.leader()
        others = [n for n in self.cluster.nodes if n is not leader]
        connection, channel = channel_on(leader)
        channel.queue_declare("dlq-classic", durable=True)
        connection.close()
        self.declare(others[0], "to-reject", {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq-classic"})
        publish_confirmed(others[0], "to-reject", [b"keep me"])
        connection, channel = channel_on(others[1])
        method, _props, _body = poll_get(channel, "to-reject")
        self.assertIsNotNone(method)
        channel.basic_reject(method.delivery_tag, requeue=False)
        connection.close()
        wait_depth(leader, "dlq-classic", 1)
        leader.sigkill()
        leader.relaunch()
        self.cluster.leader()
        wait_depth(leader, "dlq-classic", 1, timeout=20)
        got = drain(others[1], "dlq-classic", 1)
        self.assertEqual(got[0][0], b"keep me")

    def test_a_committed_transaction_survives_a_whole_cluster_kill(self):
        # tx.commit-ok is a promise like a confirm: the transaction's messages are on a majority's
        # disk. Every node is killed right after it, then restarted: all twenty are there. (On
        # loopback the log usually wins this race anyway; TransactionInMinorityTest cannot.)
        self.declare(self.a, "tx-q")
        connection, channel = channel_on(self.b)
        channel.tx_select()
        for i in range(20):
            channel.basic_publish("", "tx-q", b"t%d" % i, pika.BasicProperties(delivery_mode=2))
        channel.tx_commit()
        for node in self.cluster.nodes:
            node.sigkill()
        for node in self.cluster.nodes:
            node.relaunch()
        self.cluster.leader()
        wait_depth(self.c, "tx-q", 20, timeout=20)

    def test_length_limits_drop_head_and_reject_publish(self):
        # drop-head: the oldest go, dead-lettered (reason maxlen) where a dead-letter exchange is set.
        self.declare(self.a, "maxlen-dlq")
        self.declare(self.a, "maxlen", {"x-max-length": 3, "x-dead-letter-exchange": "",
                                        "x-dead-letter-routing-key": "maxlen-dlq"})
        publish_confirmed(self.b, "maxlen", [b"m%d" % i for i in range(5)])
        for node in self.cluster.nodes:
            wait_depth(node, "maxlen", 3)
        self.assertEqual([g[0] for g in drain(self.c, "maxlen", 3)], [b"m2", b"m3", b"m4"])
        self.assertEqual(sorted(g[0] for g in drain(self.c, "maxlen-dlq", 2)), [b"m0", b"m1"])
        # reject-publish: the publish that takes the queue over its limit is taken, the next nacked.
        self.declare(self.a, "full", {"x-max-length": 2, "x-overflow": "reject-publish"})
        connection, channel = channel_on(self.c)
        try:
            channel.confirm_delivery()
            for body in (b"r1", b"r2", b"r3"):
                channel.basic_publish("", "full", body)
            with self.assertRaises(pika.exceptions.NackError):
                channel.basic_publish("", "full", b"r4")
        finally:
            connection.close()
        for node in self.cluster.nodes:
            wait_depth(node, "full", 3)

    def test_single_active_consumer_one_at_a_time_across_nodes(self):
        self.declare(self.a, "sac", {"x-single-active-consumer": True})
        first, second = [], []
        conn1, ch1 = channel_on(self.b)
        conn2, ch2 = channel_on(self.c)
        self.addCleanup(conn1.close)
        self.addCleanup(conn2.close)

        def on(got, channel):
            def callback(_ch, method, _props, body):
                got.append(body)
                channel.basic_ack(method.delivery_tag)
            return callback

        def pump(until, timeout=10.0):
            deadline = time.monotonic() + timeout
            while not until() and time.monotonic() < deadline:
                conn1.process_data_events(time_limit=0.05)
                conn2.process_data_events(time_limit=0.05)

        for channel in (ch1, ch2):
            channel.basic_qos(prefetch_count=5)
        tag1 = ch1.basic_consume("sac", on(first, ch1))
        deadline = time.monotonic() + 10
        while depth(self.a, "sac")[1] != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        ch2.basic_consume("sac", on(second, ch2))  # registered second: waits
        publish_confirmed(self.a, "sac", [b"m%d" % i for i in range(20)])
        pump(lambda: len(first) == 20)
        pump(lambda: False, timeout=0.5)  # anything wrongly sent to the second would come now
        self.assertEqual(first, [b"m%d" % i for i in range(20)])
        self.assertEqual(second, [])
        self.assertEqual(depth(self.a, "sac")[1], 1)  # the active one only, as RabbitMQ counts
        # The active one goes: the waiting one takes over, in order.
        ch1.basic_cancel(tag1)
        publish_confirmed(self.b, "sac", [b"n%d" % i for i in range(10)])
        pump(lambda: len(second) == 10)
        self.assertEqual(second, [b"n%d" % i for i in range(10)])
        self.assertEqual(len(first), 20)

    def test_message_ttl_expires_and_dead_letters_on_every_node(self):
        # The retry pattern: a TTL queue dead-letters into the work queue; per-message expiration too.
        self.declare(self.a, "work")
        self.declare(self.a, "retry", {"x-message-ttl": 300, "x-dead-letter-exchange": "",
                                       "x-dead-letter-routing-key": "work"})
        self.declare(self.a, "plain", {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "work"})
        publish_confirmed(self.b, "retry", [b"r%d" % i for i in range(5)])
        connection, channel = channel_on(self.c)
        try:
            channel.confirm_delivery()
            channel.basic_publish("", "plain", b"short", pika.BasicProperties(expiration="200"))
            channel.basic_publish("", "plain", b"long", pika.BasicProperties(expiration="600000"))
        finally:
            connection.close()
        started = time.monotonic()
        for node in self.cluster.nodes:
            wait_depth(node, "retry", 0)
        self.assertGreater(time.monotonic() - started, 0.2)  # not before the TTL
        got = drain(self.c, "work", 6)
        self.assertEqual(sorted(g[0] for g in got), sorted([b"r%d" % i for i in range(5)] + [b"short"]))
        connection, channel = channel_on(self.b)
        try:
            method, props, body = channel.basic_get("plain", auto_ack=True)
            self.assertEqual(body, b"long")  # its own, longer expiration has not passed
        finally:
            connection.close()
        # x-death names the reason, as RabbitMQ's dead-lettering does
        self.declare(self.a, "retry2", {"x-message-ttl": 100, "x-dead-letter-exchange": "",
                                        "x-dead-letter-routing-key": "work"})
        publish_confirmed(self.a, "retry2", [b"d"])
        connection, channel = channel_on(self.a)
        try:
            method = None
            deadline = time.monotonic() + 10
            while method is None and time.monotonic() < deadline:
                method, props, body = channel.basic_get("work", auto_ack=True)
                if method is None:
                    time.sleep(0.05)
            self.assertEqual(body, b"d")
            self.assertEqual(props.headers["x-death"][0]["reason"], "expired")
            self.assertEqual(props.headers["x-death"][0]["queue"], "retry2")
        finally:
            connection.close()

    def test_x_expires_deletes_an_unused_queue_everywhere_and_never_one_in_use(self):
        self.declare(self.a, "lease", {"x-expires": 1000})
        connection, channel = channel_on(self.b)
        channel.basic_consume("lease", lambda *a: None)
        deadline = time.monotonic() + 2.5  # well past the lease, with a consumer attached
        while time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        for node in self.cluster.nodes:
            self.assertTrue(exists(node, "lease"))  # in use: never expires
        connection.close()  # unused from now on
        for node in self.cluster.nodes:
            deadline = time.monotonic() + 10
            while exists(node, "lease") and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertFalse(exists(node, "lease"))

    def test_delete_cancels_consumers_on_every_node(self):
        self.declare(self.a, "gone")
        cancelled = threading.Event()
        connection, channel = channel_on(self.c)
        channel.add_on_cancel_callback(lambda _frame: cancelled.set())
        channel.basic_consume("gone", lambda *a: None)
        other, och = channel_on(self.b)
        och.queue_delete("gone")
        other.close()
        deadline = time.monotonic() + 10
        while not cancelled.is_set() and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.2)
        connection.close()
        self.assertTrue(cancelled.is_set())


@unittest.skipUnless(_cluster_built(), "built without the cluster layer (libraft)")
class TransactionInMinorityTest(unittest.TestCase):
    """tx.commit on a node cut off from the majority: the quorum queue's enqueues cannot commit,
    so neither can the transaction. The node answers after the propose timeout with a connection
    error (541), never with commit-ok (it once sent commit-ok at once: a promise it could not
    keep)."""

    def setUp(self):
        self.cluster = Cluster(partitionable=True, extra_args=["--cluster_propose_timeout_ms", "2000"]).start()
        self.addCleanup(self.cluster.stop)
        self.cluster.leader()

    def test_commit_in_a_minority_is_refused(self):
        a, b, _c = self.cluster.nodes
        connection, channel = channel_on(a)
        channel.queue_declare("tx-minority", durable=True, arguments=QQ)
        connection.close()
        connection, channel = channel_on(b)
        channel.tx_select()
        self.cluster.isolate(b)
        try:
            channel.basic_publish("", "tx-minority", b"cannot commit", pika.BasicProperties(delivery_mode=2))
            with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as ctx:
                channel.tx_commit()
            self.assertEqual(ctx.exception.reply_code, 541)
        finally:
            self.cluster.heal()


if __name__ == "__main__":
    unittest.main()
