"""Classic queues across the nodes of a three-node cluster (issue 13, docs/cluster.md, "Classic
queues across nodes"), with real pika clients on every node. A classic queue lives on its home
node, the one it was declared through, and is reachable from every node as RabbitMQ's are:
- publishes through any node reach it, each publisher's in order, and a confirm through another
  node comes once the home stored the message (a persistent one survives the home's kill -9);
- consumers and basic.get on any node take its messages; ack, nack with requeue (redelivered, back
  in its place) and reject to a dead-letter exchange act on the home;
- a passive declare through any node gives the home's counts; a purge through any node empties it;
- a channel closed on the consumer's node hands what it held back to other consumers;
- a fanout to queues homed on different nodes confirms once every home has the message;
- the home killed: consumers of its queues on other nodes get basic.cancel, a publish is nacked,
  a passive declare is refused with RabbitMQ's 404 "... down or inaccessible"; back, it serves
  every confirmed message again, and one it had delivered to another node marked redelivered,
  even when killed the moment that delivery arrived.
Not runnable against an external broker: the test owns the three processes.
"""
import json
import threading
import time
import unittest

import pika
import pika.exceptions

import harness
from test_cluster import Cluster, _cluster_built, channel_on, depth, poll_get, take

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def declare_on(node, *queues):
    """Declares each queue durable through node, which becomes its home."""
    connection, channel = channel_on(node)
    for queue in queues:
        channel.queue_declare(queue, durable=True)
    connection.close()


def publish_confirmed(node, routing_key, bodies, exchange="", properties=PERSISTENT):
    """Publishes bodies through node with confirms (pika raises on a nack), then closes."""
    connection, channel = channel_on(node)
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish(exchange, routing_key, body, properties)
    connection.close()


def drain(channel, queue, count, timeout=15.0):
    """Consumes count messages of queue on channel (manual ack): [(body, redelivered)]."""
    got = []
    deadline = time.monotonic() + timeout
    for method, _props, body in channel.consume(queue, inactivity_timeout=0.5):
        if method is not None:
            got.append((body, method.redelivered))
            channel.basic_ack(method.delivery_tag)
        if len(got) >= count or time.monotonic() > deadline:
            break
    channel.cancel()
    return got


def idle(connection, seconds):
    """Serves connection's events for that long (process_data_events returns at the first)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection.process_data_events(time_limit=min(0.2, max(0.0, deadline - time.monotonic())))


def listed_messages(node, queue):
    """The "messages" column of warrenctl list_queues (the admin socket) on node for queue."""
    request = json.dumps({"command": "list_queues", "args": ["name", "messages"], "vhost": "/"}).encode() + b"\n"
    answer = json.loads(harness.admin_request(node, request))
    rows = [row for row in answer.get("rows", []) if row[0] == queue]
    return int(rows[0][1]) if rows else None




@harness.skip_if_external("starts and kills three cluster nodes")
@unittest.skipUnless(_cluster_built(), "broker built without the cluster layer (libraft-dev)")
class ClusterClassicQueues(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster().start()
        self.cluster.leader()

    def tearDown(self):
        self.cluster.stop()

    def test_publish_and_consume_through_other_nodes(self):
        a, b, c = self.cluster.nodes
        declare_on(a, "cc.work")
        # Two publishers on the two other nodes, with confirms: every publish confirmed.
        for node, prefix in ((b, b"b"), (c, b"c")):
            publish_confirmed(node, "cc.work", [prefix + b"%03d" % i for i in range(300)])
        self.assertEqual(depth(c, "cc.work"), 600)
        self.assertEqual(depth(a, "cc.work"), 600)
        # warrenctl list_queues on a node that is not the home shows the home's counts within
        # its refresh (every 5 s), without any client asking for them.
        deadline = time.monotonic() + 12
        while listed_messages(b, "cc.work") != 600:
            self.assertLess(time.monotonic(), deadline, "node b never listed the home's count")
            time.sleep(0.5)
        # Consumed through node c: all of them, each publisher's in order.
        connection, channel = channel_on(c)
        channel.basic_qos(prefetch_count=50)
        got = drain(channel, "cc.work", 600)
        connection.close()
        bodies = [body for body, _ in got]
        self.assertEqual(len(bodies), 600)
        for prefix in (b"b", b"c"):
            mine = [x for x in bodies if x.startswith(prefix)]
            self.assertEqual(mine, [prefix + b"%03d" % i for i in range(300)])
        self.assertEqual(depth(b, "cc.work"), 0)

    def test_get_nack_reject_and_purge_act_on_the_home(self):
        a, b, c = self.cluster.nodes
        ca, cha = channel_on(a)
        cha.exchange_declare("cc.dlx", "fanout")
        cha.queue_declare("cc.dead", durable=True)
        cha.queue_bind("cc.dead", "cc.dlx")
        cha.queue_declare("cc.q", durable=True, arguments={"x-dead-letter-exchange": "cc.dlx"})
        ca.close()
        cb, chb = channel_on(b)
        chb.confirm_delivery()
        for body in (b"one", b"two", b"three"):
            chb.basic_publish("", "cc.q", body)
        # basic.get through b; a nack with requeue puts it back in its place, redelivered.
        method, _p, body = chb.basic_get("cc.q")
        self.assertEqual(body, b"one")
        self.assertFalse(method.redelivered)
        self.assertEqual(method.message_count, 2)
        chb.basic_nack(method.delivery_tag, requeue=True)
        method, _p, body = chb.basic_get("cc.q")
        self.assertEqual(body, b"one")
        self.assertTrue(method.redelivered)
        # Rejected without requeue: dead-lettered by the home into cc.dead.
        chb.basic_reject(method.delivery_tag, requeue=False)
        method, _p, body = chb.basic_get("cc.q", auto_ack=True)
        self.assertEqual(body, b"two")
        cb.close()
        cc, chc = channel_on(c)
        deadline = time.monotonic() + 10
        while True:
            method, props, body = chc.basic_get("cc.dead", auto_ack=True)
            if method is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(body, b"one")
        self.assertEqual(props.headers["x-death"][0]["reason"], "rejected")
        # A purge through c empties the home's queue and says how many went.
        self.assertEqual(chc.queue_purge("cc.q").method.message_count, 1)
        self.assertEqual(depth(a, "cc.q"), 0)
        self.assertIsNone(chc.basic_get("cc.q")[0])
        cc.close()

    def test_a_closed_channel_hands_its_messages_to_other_consumers(self):
        a, b, c = self.cluster.nodes
        ca, cha = channel_on(a)
        cha.queue_declare("cc.handover", durable=True)
        cha.confirm_delivery()
        for i in range(10):
            cha.basic_publish("", "cc.handover", b"m%d" % i)
        # A consumer on b takes two (prefetch 2) and never acks; its channel closes.
        cb, chb = channel_on(b)
        chb.basic_qos(prefetch_count=2)
        self.assertEqual(take(chb, "cc.handover", 2), [b"m0", b"m1"])
        cb.close()
        # A consumer on c gets all ten, the two held ones back in their place, redelivered.
        cc, chc = channel_on(c)
        got = drain(chc, "cc.handover", 10)
        cc.close()
        self.assertEqual([body for body, _ in got], [b"m%d" % i for i in range(10)])
        self.assertEqual([r for _, r in got][:2], [True, True])
        self.assertFalse(any(r for _, r in got[2:]))
        ca.close()

    def test_a_fanout_to_queues_on_every_node_confirms_once_all_have_it(self):
        nodes = self.cluster.nodes
        for i, node in enumerate(nodes):
            connection, channel = channel_on(node)
            if i == 0:
                channel.exchange_declare("cc.fan", "fanout")
            channel.queue_declare("cc.fan%d" % i, durable=True)
            channel.queue_bind("cc.fan%d" % i, "cc.fan")
            connection.close()
        publish_confirmed(nodes[1], "", [b"f%d" % i for i in range(100)], exchange="cc.fan")
        for i in range(3):
            for node in nodes:
                self.assertEqual(depth(node, "cc.fan%d" % i), 100, "queue %d seen from a node" % i)

    def test_the_home_killed_cancels_consumers_elsewhere_and_keeps_confirmed_messages(self):
        a, b, c = self.cluster.nodes
        declare_on(a, "cc.home")
        cb, chb = channel_on(b)
        chb.confirm_delivery()
        for i in range(200):
            chb.basic_publish("", "cc.home", b"p%d" % i, PERSISTENT)
        # A consumer on c that takes nothing yet (prefetch 1, never acks the one it gets).
        cc, chc = channel_on(c)
        chc.basic_qos(prefetch_count=1)
        cancelled = threading.Event()
        first = []
        chc.add_on_cancel_callback(lambda _frame: cancelled.set())
        chc.basic_consume("cc.home", lambda _ch, method, _p, body: first.append(body))
        deadline = time.monotonic() + 10
        while not first and time.monotonic() < deadline:
            cc.process_data_events(time_limit=0.1)
        self.assertEqual(first, [b"p0"])
        a.sigkill()
        deadline = time.monotonic() + 15
        while not cancelled.is_set() and time.monotonic() < deadline:
            cc.process_data_events(time_limit=0.1)
        self.assertTrue(cancelled.is_set(), "the consumer on c was not cancelled when its queue's home died")
        # A publish to it through b is nacked, not confirmed.
        with self.assertRaises(pika.exceptions.NackError):
            chb.basic_publish("", "cc.home", b"lost?", PERSISTENT)
        cb.close()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as ctx:
            chc.queue_declare("cc.home", passive=True)
        self.assertEqual(ctx.exception.reply_code, 404)
        self.assertIn("down or inaccessible", ctx.exception.reply_text)
        cc.close()
        cc, chc = channel_on(c)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as ctx:
            chc.basic_consume("cc.home", lambda *args: None)
        self.assertEqual(ctx.exception.reply_code, 404)
        self.assertTrue(ctx.exception.reply_text.startswith("NOT_FOUND - home node"), ctx.exception.reply_text)
        cc.close()
        # Back: every confirmed message is there, p0 marked redelivered.
        a.relaunch()
        self.cluster.leader()
        deadline = time.monotonic() + 15
        while True:
            try:
                if depth(b, "cc.home") == 200 and depth(c, "cc.home") == 200:
                    break
            except pika.exceptions.ChannelClosedByBroker:
                pass
            self.assertLess(time.monotonic(), deadline, "the home's messages are not reachable again")
            time.sleep(0.2)
        connection, channel = channel_on(c)
        got = drain(channel, "cc.home", 200)
        connection.close()
        self.assertEqual([body for body, _ in got], [b"p%d" % i for i in range(200)])
        self.assertEqual(got[0], (b"p0", True))

    def test_a_delete_through_another_node_counts_the_homes_messages(self):
        a, b, c = self.cluster.nodes
        declare_on(a, "cc.count")
        publish_confirmed(b, "cc.count", [b"d%d" % i for i in range(3)])
        cc, chc = channel_on(c)
        # if-empty is judged on the home's messages, not on c's view of them (no wait here for
        # c's periodic counts): RabbitMQ's 406.
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as ctx:
            chc.queue_delete("cc.count", if_empty=True)
        self.assertEqual(ctx.exception.reply_code, 406)
        chc = cc.channel()
        self.assertEqual(chc.queue_delete("cc.count").method.message_count, 3)
        cc.close()
        self.assertTrue(self.gone_everywhere("cc.count"))

    def test_a_delivery_across_nodes_is_recorded_before_it_arrives(self):
        # The home is killed the moment a consumer on another node has a delivery in hand: back,
        # the home must know it delivered that message (redelivered=true), because that consumer
        # lived on. The home sends a delivery to another node only once its store holds the
        # delivery's record (cluster_classic.c, "what waits for the store").
        a, b, c = self.cluster.nodes
        declare_on(a, "cc.marked", "cc.load")
        for round_ in range(3):
            publish_confirmed(b, "cc.marked", [b"r%d" % round_])
            # Persistent publishes on the home keep its store syncing, so that a record waits
            # for the sync before it is written: the window the home must not deliver in.
            stop = threading.Event()

            def load():
                try:
                    connection, channel = channel_on(a)
                    while not stop.is_set():
                        channel.basic_publish("", "cc.load", b"x" * 4096, PERSISTENT)
                except (pika.exceptions.AMQPError, OSError):
                    pass  # the home is killed under it

            loader = threading.Thread(target=load, daemon=True)
            loader.start()
            time.sleep(0.3)
            cc, chc = channel_on(c)
            chc.basic_qos(prefetch_count=1)
            got = []

            def on_message(_ch, method, _props, body):
                if not got:
                    a.sigkill()  # first thing: nothing else of this delivery may happen before
                got.append((body, method.redelivered))

            chc.basic_consume("cc.marked", on_message)
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                cc.process_data_events(time_limit=0.05)
            stop.set()
            loader.join(10)
            self.assertEqual(got, [(b"r%d" % round_, False)])
            cc.close()
            a.relaunch()
            self.cluster.leader()
            deadline = time.monotonic() + 15
            while True:  # until c reaches the home again (its link is dialled anew)
                cc, chc = channel_on(c)
                try:
                    method, _props, body = chc.basic_get("cc.marked")
                except pika.exceptions.ChannelClosedByBroker as e:
                    self.assertIn("down or inaccessible", e.reply_text)
                    method = None
                if method is not None:
                    break
                cc.close()
                self.assertLess(time.monotonic(), deadline, "the home's message is not reachable again")
                time.sleep(0.2)
            self.assertEqual((body, method.redelivered), (b"r%d" % round_, True), "round %d" % round_)
            chc.basic_ack(method.delivery_tag)
            cc.close()
            # b dials its own link to the home anew: the next round's publish through b would be
            # nacked (as RabbitMQ nacks a publish to a queue whose node is down) until it has.
            self.assertTrue(self.reachable_from(b, "cc.marked"), "b does not reach the home again")

    def reachable_from(self, node, queue, timeout=15.0):
        """True once a passive declare of queue through node is answered: its home is reachable."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            connection, channel = channel_on(node)
            try:
                channel.queue_declare(queue, passive=True)
                return True
            except pika.exceptions.ChannelClosedByBroker as e:
                self.assertIn("down or inaccessible", e.reply_text)
            finally:
                if connection.is_open:
                    connection.close()
            time.sleep(0.2)
        return False

    def gone_everywhere(self, queue, timeout=10.0):
        """True once a passive declare of queue is refused with 404 "no queue" on every node."""
        return self.gone_everywhere_of(queue, self.cluster.nodes, timeout)

    def gone_everywhere_of(self, queue, nodes, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            missing = 0
            for node in nodes:
                connection, channel = channel_on(node)
                try:
                    channel.queue_declare(queue, passive=True)
                except pika.exceptions.ChannelClosedByBroker as e:
                    if e.reply_code == 404 and "down or inaccessible" not in e.reply_text:
                        missing += 1
                finally:
                    if connection.is_open:
                        connection.close()
            if missing == len(nodes):
                return True
            time.sleep(0.2)
        return False

    def test_x_expires_and_auto_delete_count_consumers_on_every_node(self):
        a, b, c = self.cluster.nodes
        ca, cha = channel_on(a)
        cha.queue_declare("cc.lease", arguments={"x-expires": 1500})
        cha.queue_declare("cc.auto", auto_delete=True)
        ca.close()
        # Consumers on b keep both alive: past the lease, every node still has them.
        cb, chb = channel_on(b)
        tag_lease = chb.basic_consume("cc.lease", lambda *args: None)
        tag_auto = chb.basic_consume("cc.auto", lambda *args: None)
        idle(cb, 3.0)
        for node in (a, b, c):
            self.assertEqual(depth(node, "cc.lease"), 0)
            self.assertEqual(depth(node, "cc.auto"), 0)
        # Cancelled: the auto-delete queue goes at once, the other when its lease runs out,
        # from every node (the home proposes the deletion).
        chb.basic_cancel(tag_auto)
        self.assertTrue(self.gone_everywhere("cc.auto"), "the auto-delete queue stayed somewhere")
        chb.basic_cancel(tag_lease)
        idle(cb, 3.0)  # no passive declare meanwhile: one renews the lease
        self.assertTrue(self.gone_everywhere("cc.lease"), "the expired queue stayed somewhere")
        cb.close()

    def test_consumer_priority_holds_across_nodes(self):
        a, b, c = self.cluster.nodes
        declare_on(a, "cc.prio")
        got = {"hi": 0, "lo": 0}
        connections = []
        for node, name, priority in ((b, "hi", 10), (c, "lo", 0)):
            connection, channel = channel_on(node)
            channel.basic_consume("cc.prio", lambda ch, m, p, body, name=name: got.__setitem__(name, got[name] + 1),
                                  auto_ack=True, arguments={"x-priority": priority})
            connections.append(connection)
        for connection in connections:
            idle(connection, 0.5)  # both attached at the home before the first publish
        publish_confirmed(b, "cc.prio", [b"x"] * 50, properties=None)
        deadline = time.monotonic() + 10
        while got["hi"] + got["lo"] < 50 and time.monotonic() < deadline:
            for connection in connections:
                connection.process_data_events(time_limit=0.05)
        for connection in connections:
            connection.close()
        # The higher priority consumer has room for all of them: it takes all (RabbitMQ's rule).
        self.assertEqual(got, {"hi": 50, "lo": 0})

    def test_forgetting_a_node_deletes_the_queues_it_was_home_of(self):
        from test_cluster_membership import change
        a, b, c = self.cluster.nodes
        cc, chc = channel_on(c)
        chc.queue_declare("cc.orphan", durable=True)
        cc.close()
        # Running, it is not forgotten (RabbitMQ refuses so too): that would delete its queues
        # while it serves them. The first answer is "not done" while node a asks node c.
        from test_cluster_membership import admin
        deadline = time.monotonic() + 10
        while True:
            answer = admin(a, "forget_cluster_node", self.cluster.address(c))
            if not answer.get("ok") or time.monotonic() > deadline:
                break
            self.assertFalse(answer["done"])
            time.sleep(0.2)
        self.assertFalse(answer.get("ok"), answer)
        self.assertIn("is running", answer["error"])
        self.assertEqual(depth(a, "cc.orphan"), 0)
        c.sigkill()
        self.cluster.leader(among=[a, b])
        change(a, "forget_cluster_node", self.cluster.address(c))
        # As RabbitMQ's forget_cluster_node: the removed node's queues go (404 "no queue", no
        # longer "its home is down").
        self.assertTrue(self.gone_everywhere_of("cc.orphan", [a, b]), "the removed node's queue stayed")

    def test_an_exclusive_consumer_on_one_node_refuses_consumers_on_others(self):
        a, b, c = self.cluster.nodes
        declare_on(a, "cc.excl")
        cb, chb = channel_on(b)
        chb.basic_consume("cc.excl", lambda *args: None, exclusive=True)
        cc, chc = channel_on(c)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as ctx:
            chc.basic_consume("cc.excl", lambda *args: None)
        self.assertEqual(ctx.exception.reply_code, 403)
        self.assertEqual(ctx.exception.reply_text, "ACCESS_REFUSED - queue 'cc.excl' in vhost '/' in exclusive use")
        cc.close()
        cb.close()

    def test_a_committed_transaction_through_another_node_survives_the_homes_kill(self):
        a, b, _c = self.cluster.nodes
        declare_on(a, "cc.tx")
        cb, chb = channel_on(b)
        chb.tx_select()
        for i in range(20):
            chb.basic_publish("", "cc.tx", b"t%d" % i, PERSISTENT)
        chb.tx_commit()  # a promise like a confirm: on the home's disk
        a.sigkill()
        a.relaunch()
        self.cluster.leader()
        self.assertEqual(depth(a, "cc.tx"), 20)

    def test_direct_reply_to_across_nodes(self):
        a, b, _c = self.cluster.nodes
        ca, cha = channel_on(a)
        cha.queue_declare("cc.rpc", durable=True)
        replies = []
        cha.basic_consume("amq.rabbitmq.reply-to", lambda ch, m, p, body: replies.append(body), auto_ack=True)
        cha.basic_publish("", "cc.rpc", b"question", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
        # The server, on node b, answers to the address the request carries (it names node a).
        cb, chb = channel_on(b)
        _method, props, body = poll_get(chb, "cc.rpc", auto_ack=True)
        self.assertEqual(body, b"question")
        self.assertRegex(props.reply_to, r"^amq\.rabbitmq\.reply-to\.[0-9a-f]{8}\.[A-Za-z0-9_-]+$")
        chb.basic_publish("", props.reply_to, b"answer")
        cb.close()
        deadline = time.monotonic() + 10
        while not replies and time.monotonic() < deadline:
            ca.process_data_events(time_limit=0.1)
        ca.close()
        self.assertEqual(replies, [b"answer"])

    def test_an_exclusive_queue_takes_publishes_from_every_node_and_goes_with_its_connection(self):
        a, b, c = self.cluster.nodes
        # RPC: the client's exclusive, server-named reply queue on node a; the server on node b.
        ca, cha = channel_on(a)
        reply_to = cha.queue_declare("", exclusive=True).method.queue
        cha.exchange_declare("cc.logs", "fanout")
        cha.queue_bind(reply_to, "cc.logs")
        cb, chb = channel_on(b)
        chb.confirm_delivery()
        chb.basic_publish("", reply_to, b"the answer")  # default exchange, by name
        cc, chc = channel_on(c)
        chc.confirm_delivery()
        chc.basic_publish("cc.logs", "", b"a log line")  # through its binding
        got = drain(cha, reply_to, 2)
        self.assertEqual(sorted(body for body, _ in got), [b"a log line", b"the answer"])
        # Another node's clients may not use it, as RabbitMQ refuses another connection's: nor
        # purge it (its home purged it, and the owner lost its messages, before).
        chb.basic_publish("", reply_to, b"kept")
        for channel, use in ((chb, lambda ch: ch.basic_consume(reply_to, lambda *args: None)),
                             (chc, lambda ch: ch.queue_declare(reply_to, passive=True)),
                             (cb.channel(), lambda ch: ch.queue_purge(reply_to))):
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as ctx:
                use(channel)
            self.assertEqual(ctx.exception.reply_code, 405)
        self.assertEqual(drain(cha, reply_to, 1), [(b"kept", False)])
        cb.close()
        cc.close()
        # Its connection gone, it goes from every node.
        ca.close()
        self.assertTrue(self.gone_everywhere(reply_to), "the exclusive queue stayed somewhere")

    def test_a_dead_nodes_exclusive_and_transient_queues_go_with_it(self):
        # RabbitMQ's on_node_down: a node that dies takes its connections' exclusive queues and
        # its non-durable queues with it, everywhere; its durable ones stay, down. Before, they
        # stayed: an RPC client failing over could not declare its reply queue again (405), and
        # every confirmed publish to a fanout bound to one was nacked while the node was down.
        a, b, _c = self.cluster.nodes
        ca, cha = channel_on(a)
        reply_to = cha.queue_declare("cc.rpc-reply", exclusive=True).method.queue
        cha.queue_bind(reply_to, "amq.fanout")
        cha.queue_declare("cc.transient", durable=False)
        cha.queue_declare("cc.kept", durable=True)
        a.sigkill()
        deadline = time.monotonic() + 20
        for queue in (reply_to, "cc.transient"):
            while True:
                cb, chb = channel_on(b)
                try:
                    chb.queue_declare(queue, passive=True)
                    text = "still there"
                except pika.exceptions.ChannelClosedByBroker as e:
                    text = e.reply_text
                if cb.is_open:
                    cb.close()
                if text.startswith("NOT_FOUND - no queue"):
                    break
                self.assertLess(time.monotonic(), deadline, (queue, text))
                time.sleep(0.3)
        cb, chb = channel_on(b)
        chb.queue_declare(reply_to, exclusive=True)  # the client's failover: its queue again
        chb.confirm_delivery()
        chb.basic_publish("amq.fanout", "", b"confirmed")  # pika raises on a nack
        cb.close()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as ctx:
            cb, chb = channel_on(b)
            chb.queue_declare("cc.kept", passive=True)
        self.assertIn("down or inaccessible", ctx.exception.reply_text)  # durable: it waits
        a.relaunch()
        self.cluster.leader()
        self.assertTrue(self.reachable_from(b, "cc.kept"))

    def test_a_restarted_node_routes_to_exclusive_queues_declared_before_it_stopped(self):
        a, _b, c = self.cluster.nodes
        # Pub/sub as RabbitMQ's tutorials do it: each subscriber's exclusive, server-named queue
        # bound to a fanout, the subscribers on node a.
        ca, cha = channel_on(a)
        cha.exchange_declare("cc.fan", "fanout")
        queues = [cha.queue_declare("", exclusive=True).method.queue for _ in range(3)]
        for queue in queues:
            cha.queue_bind(queue, "cc.fan")
        # Node c stops after it has saved those declares (its definitions, then a snapshot of a
        # leader that truncated the log) and comes back: it must still route to them.
        for stop in ("kill", "restart"):
            if stop == "kill":
                c.sigkill()
                c.relaunch()
            else:
                c.graceful_restart()
            self.cluster.leader()
            cc, chc = channel_on(c)
            chc.confirm_delivery()
            chc.basic_publish("cc.fan", "", stop.encode())
            chc.basic_publish("", queues[0], b"by name " + stop.encode())
            cc.close()
            got = [drain(cha, queue, 2 if queue == queues[0] else 1, timeout=5.0) for queue in queues]
            self.assertEqual([sorted(body for body, _ in g) for g in got],
                             [sorted([stop.encode(), b"by name " + stop.encode()])] + [[stop.encode()]] * 2,
                             "node c lost the exclusive queues or their bindings after a " + stop)
            # Still another connection's: refused on node c as on any other.
            cc, chc = channel_on(c)
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as ctx:
                chc.queue_declare(queues[1], passive=True)
            self.assertEqual(ctx.exception.reply_code, 405)
            cc.close()
        ca.close()
        self.assertTrue(self.gone_everywhere(queues[2]), "an exclusive queue outlived its connection")

if __name__ == "__main__":
    unittest.main()
