"""Quorum queues (x-queue-type: quorum) on a single node, as RabbitMQ 3.10 runs them.

- declare: durable only (non-durable, exclusive and auto-delete refused with RabbitMQ's 406
  texts, server-named too), the classic-only arguments refused naming rabbit_quorum_queue, the
  quorum ones validated; a redeclare with another type (or none) is an inequivalent arg;
- deliveries carry x-delivery-count: basic.get always, basic.deliver once a message came back;
  every return (nack, reject, recover, a closed channel) counts;
- a message given back (nack, reject, recover) goes to the back of the queue, as if published
  again; one whose channel closed goes to the front, behind those returned before it (a classic
  queue puts both back in their place);
- x-delivery-limit N: a message returned more than N times is dropped, or dead-lettered with
  reason delivery_limit (the dead letter carries no x-delivery-count);
- basic.consume after a global basic.qos: 540, queue.delete if-unused/if-empty: 540, basic.get
  with single active consumer: 405; an exclusive consume is taken like any other; a basic.get
  not yet settled counts as a consumer in queue.declare-ok, a waiting single active consumer
  does not;
- x-overflow reject-publish refuses once over the limit, until back at 80% of it;
  reject-publish-dlx runs as drop-head;
- every message is stored, transient ones too: confirmed, they survive kill -9;
- the management API, definitions and policies know the type.

Every expectation of the AMQP tests was checked against RabbitMQ 3.10.8 (WARREN_TEST_URL); the
restart and management tests need the broker this harness starts.
"""

import os
import time
import unittest
import urllib.parse

import pika
import pika.exceptions

import harness
from test_durability import RestartableBroker

QUORUM = {"x-queue-type": "quorum"}


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


def unique(name):
    return "qq-%s-%d-%d" % (name, os.getpid(), time.monotonic_ns() % 10**9)


def settle_pause():
    """RabbitMQ applies a return asynchronously (a command to the queue's Raft log), and a
    basic.get can overtake it: give it time before looking at the order (Warren needs none)."""
    time.sleep(0.2)


def quorum(**more):
    args = dict(QUORUM)
    args.update(more)
    return args


class QuorumTestCase(unittest.TestCase):
    def setUp(self):
        self.broker = harness.module_broker()
        self.connection = pika.BlockingConnection(self.broker.pika_parameters())
        self.channel = self.connection.channel()
        self.queues = []

    def tearDown(self):
        if self.connection.is_open:
            self.connection.close()
        connection = pika.BlockingConnection(self.broker.pika_parameters())
        channel = connection.channel()
        for name in self.queues:
            channel.queue_delete(name)
        connection.close()

    def declare(self, name=None, **kwargs):
        name = name or unique("q")
        kwargs.setdefault("durable", True)
        kwargs.setdefault("arguments", QUORUM)
        self.queues.append(name)
        self.channel.queue_declare(name, **kwargs)
        return name

    def refused(self, code, text, action, connection_level=False):
        """action(channel) must close the channel (or the connection) with code and text."""
        channel = self.connection.channel()
        error = pika.exceptions.ConnectionClosedByBroker if connection_level else pika.exceptions.ChannelClosedByBroker
        with self.assertRaises(error) as caught:
            action(channel)
        self.assertEqual((caught.exception.reply_code, caught.exception.reply_text), (code, text))
        if connection_level:
            self.connection = pika.BlockingConnection(self.broker.pika_parameters())
            self.channel = self.connection.channel()

    def publish_confirmed(self, queue, bodies, **properties):
        channel = self.connection.channel()
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish("", queue, body, pika.BasicProperties(**properties))
        channel.close()

    def get(self, queue, channel=None):
        method, props, body = (channel or self.channel).basic_get(queue)
        return (method, props, body) if method else None

    def pump_until(self, condition, timeout=10.0):
        """Processes the connection's events until condition() holds (a sanitizer build under
        load may take a while), then a little longer so that anything extra would show."""
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.05)
        self.connection.process_data_events(time_limit=0.2)

    def dead_letters(self, queue, expected, timeout=5.0):
        """The first `expected` messages of queue (RabbitMQ dead-letters asynchronously)."""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            method, props, body = self.channel.basic_get(queue, auto_ack=True)
            if method:
                got.append((props, body))
            else:
                time.sleep(0.05)
        return got


class DeclareTest(QuorumTestCase):
    def test_properties_refused_in_rabbitmq_order(self):
        name = unique("props")
        text = "PRECONDITION_FAILED - invalid property '%s' for queue '" + name + "' in vhost '/'"
        self.refused(406, text % "non-durable",
                     lambda ch: ch.queue_declare(name, durable=False, arguments=QUORUM))
        self.refused(406, text % "exclusive-owner",
                     lambda ch: ch.queue_declare(name, durable=True, exclusive=True, arguments=QUORUM))
        # auto-delete is looked at before the others
        self.refused(406, text % "auto-delete",
                     lambda ch: ch.queue_declare(name, durable=False, exclusive=True, auto_delete=True,
                                                 arguments=QUORUM))
        self.refused(406, "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue",
                     lambda ch: ch.queue_declare("", durable=True, arguments=QUORUM))

    def test_classic_arguments_refused_after_the_value_checks(self):
        name = unique("args")
        for key, value in (("x-max-priority", 5), ("x-queue-mode", "lazy"), ("x-queue-version", 2),
                           ("x-max-age", "1D")):
            self.refused(406, "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '/' of queue type "
                              "rabbit_quorum_queue" % (key, name),
                         lambda ch: ch.queue_declare(name, durable=True, arguments=quorum(**{key: value})))
        # the arguments a quorum queue takes are checked first, even on a non-durable declare
        self.refused(406, "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue '%s' in vhost '/': "
                          "{value_negative,-1}" % name,
                     lambda ch: ch.queue_declare(name, durable=False,
                                                 arguments=quorum(**{"x-message-ttl": -1, "x-queue-mode": "lazy"})))
        for key, value, term in (("x-quorum-initial-group-size", 0, "{value_zero,0}"),
                                 ("x-dead-letter-strategy", "bogus", "invalid_dlx_strategy"),
                                 ("x-queue-leader-locator", "bogus", "invalid_queue_locator_arg"),
                                 ("x-max-in-memory-length", -1, "{value_negative,-1}")):
            self.refused(406, "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '/': %s"
                              % (key, name, term),
                         lambda ch: ch.queue_declare(name, durable=True, arguments=quorum(**{key: value})))

    def test_quorum_arguments_accepted(self):
        self.declare(arguments=quorum(**{
            "x-delivery-limit": 3, "x-quorum-initial-group-size": 3, "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "dl", "x-dead-letter-strategy": "at-most-once", "x-max-length": 10,
            "x-max-length-bytes": 1000, "x-overflow": "reject-publish", "x-expires": 3600000,
            "x-message-ttl": 60000, "x-single-active-consumer": True, "x-queue-leader-locator": "balanced",
            "x-max-in-memory-length": 5, "x-max-in-memory-bytes": 500}))
        # RabbitMQ 3.10 takes reject-publish-dlx on a quorum queue (and runs it as drop-head)
        self.declare(arguments=quorum(**{"x-overflow": "reject-publish-dlx"}))

    def test_redeclare_with_another_type_is_inequivalent(self):
        name = self.declare()
        prefix = "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '%s' in vhost '/': " % name
        self.refused(406, prefix + "received none but current is the value 'quorum' of type 'longstr'",
                     lambda ch: ch.queue_declare(name, durable=True))
        self.refused(406, prefix + "received 'classic' but current is 'quorum'",
                     lambda ch: ch.queue_declare(name, durable=True, arguments={"x-queue-type": "classic"}))
        self.refused(406, "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue '%s' in vhost '/': "
                          "received the value '3' of type 'signedint' but current is none" % name,
                     lambda ch: ch.queue_declare(name, durable=True, arguments=quorum(**{"x-delivery-limit": 3})))
        self.channel.queue_declare(name, durable=True, arguments=QUORUM)
        self.channel.queue_declare(name, passive=True)
        classic = self.declare(arguments={})
        self.refused(406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '%s' in vhost '/': "
                          "received the value 'quorum' of type 'longstr' but current is none" % classic,
                     lambda ch: ch.queue_declare(classic, durable=True, arguments=QUORUM))


class DeliveryCountTest(QuorumTestCase):
    def test_get_always_counts_and_deliver_once_returned(self):
        name = self.declare()
        self.publish_confirmed(name, [b"m"], headers={"z": 2, "h": 1})
        method, props, _ = self.get(name)
        self.assertFalse(method.redelivered)
        self.assertEqual(props.headers, {"h": 1, "z": 2, "x-delivery-count": 0})
        # the header is set as rabbit_basic:add_header sets one: the table sorted by name
        self.assertEqual(list(props.headers), ["h", "x-delivery-count", "z"])
        self.channel.basic_nack(method.delivery_tag, requeue=True)
        consumer = self.connection.channel()
        got = []
        consumer.basic_consume(name, lambda ch, m, p, b: got.append((m, p)))
        self.pump_until(lambda: got)
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0][0].redelivered)
        self.assertEqual(got[0][1].headers, {"h": 1, "z": 2, "x-delivery-count": 1})
        consumer.close()  # its unacked message goes back: counted again
        method, props, _ = self.get(name)
        self.assertEqual(props.headers["x-delivery-count"], 2)
        self.channel.basic_recover(requeue=True)
        method, props, _ = self.get(name)
        self.assertEqual(props.headers["x-delivery-count"], 3)
        self.channel.basic_ack(method.delivery_tag)

    def test_first_delivery_to_a_consumer_has_no_header(self):
        name = self.declare()
        self.publish_confirmed(name, [b"m"])
        got = []
        self.channel.basic_consume(name, lambda ch, m, p, b: got.append((m, p)), auto_ack=True)
        self.pump_until(lambda: got)
        self.assertEqual(len(got), 1)
        self.assertFalse(got[0][0].redelivered)
        self.assertIsNone(got[0][1].headers)

    def test_returned_messages_go_to_the_back(self):
        name = self.declare()
        self.publish_confirmed(name, [b"b0", b"b1", b"b2", b"b3", b"b4"])
        tags = [self.get(name)[0].delivery_tag for _ in range(4)]
        self.channel.basic_nack(tags[2], requeue=True)
        self.channel.basic_reject(tags[0], requeue=True)
        self.channel.basic_nack(tags[3], requeue=True)
        settle_pause()
        order = []
        for _ in range(4):
            method, props, body = self.get(name)
            order.append(body)
        # a classic queue would give b0 b2 b3 b4: each back in its place
        self.assertEqual(order, [b"b4", b"b2", b"b0", b"b3"])
        # one nack of several: in delivery-tag order; a message published since goes behind
        self.channel.basic_nack(0, multiple=True, requeue=True)
        settle_pause()
        self.publish_confirmed(name, [b"b5"])
        order = [self.get(name)[2] for _ in range(6)]
        self.assertEqual(order, [b"b1", b"b4", b"b2", b"b0", b"b3", b"b5"])
        self.channel.basic_ack(0, multiple=True)


    def test_a_closed_channels_messages_go_to_the_front(self):
        name = self.declare()
        self.publish_confirmed(name, [b"b0", b"b1", b"b2", b"b3", b"b4"])
        first, second = self.connection.channel(), self.connection.channel()
        first.basic_get(name)
        first.basic_get(name)
        second.basic_get(name)
        second.close()  # b2 comes back first, then b0 and b1
        first.close()
        settle_pause()
        order = [self.channel.basic_get(name, auto_ack=True) for _ in range(5)]
        self.assertEqual([body for _, _, body in order], [b"b2", b"b0", b"b1", b"b3", b"b4"])
        self.assertEqual([m.redelivered for m, _, _ in order], [True, True, True, False, False])
        self.assertEqual([p.headers["x-delivery-count"] for _, p, _ in order], [1, 1, 1, 0, 0])


    def test_returned_messages_reach_consumers_before_the_length_limit(self):
        # rabbit_fifo hands out what it can, then applies x-max-length: a classic queue would
        # drop two of the three at once
        name = self.declare(arguments=quorum(**{"x-max-length": 1}))
        first = self.connection.channel()
        got = []
        first.basic_qos(prefetch_count=5)
        first.basic_consume(name, lambda ch, m, p, b: got.append(("first", b)))
        for body in (b"m0", b"m1", b"m2"):
            self.publish_confirmed(name, [body])
            self.pump_until(lambda: len(got) == int(body[1:]) + 1)
        second = self.connection.channel()
        second.basic_qos(prefetch_count=5)
        second.basic_consume(name, lambda ch, m, p, b: got.append(("second", b)))
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker):
            first.queue_declare(unique("missing"), passive=True)  # 404 closes the channel
        self.pump_until(lambda: len(got) == 6)
        self.assertEqual(got[3:], [("second", b"m0"), ("second", b"m1"), ("second", b"m2")])


class DeliveryLimitTest(QuorumTestCase):
    def test_limit_drops_the_message(self):
        name = self.declare(arguments=quorum(**{"x-delivery-limit": 1}))
        self.publish_confirmed(name, [b"m"])
        for count in (0, 1):
            method, props, _ = self.get(name)
            self.assertEqual(props.headers["x-delivery-count"], count)
            self.channel.basic_nack(method.delivery_tag, requeue=True)
        self.assertIsNone(self.get(name))
        self.assertEqual(self.channel.queue_declare(name, passive=True).method.message_count, 0)

    def test_limit_zero_drops_at_the_first_return(self):
        name = self.declare(arguments=quorum(**{"x-delivery-limit": 0}))
        self.publish_confirmed(name, [b"m"])
        self.channel.basic_reject(self.get(name)[0].delivery_tag, requeue=True)
        self.assertIsNone(self.get(name))

    def test_limit_dead_letters_with_reason_delivery_limit(self):
        dead = self.declare(arguments={})
        name = self.declare(arguments=quorum(**{"x-delivery-limit": 1, "x-dead-letter-exchange": "",
                                                "x-dead-letter-routing-key": dead}))
        self.publish_confirmed(name, [b"m"], headers={"h": 1})
        for _ in range(2):
            self.channel.basic_nack(self.get(name)[0].delivery_tag, requeue=True)
        letters = self.dead_letters(dead, 1)
        self.assertEqual(len(letters), 1)
        props, body = letters[0]
        self.assertEqual(body, b"m")
        headers = dict(props.headers)
        death = headers.pop("x-death")
        self.assertEqual(len(death), 1)
        death[0].pop("time")
        self.assertEqual(death[0], {"count": 1, "reason": "delivery_limit", "queue": name, "exchange": "",
                                    "routing-keys": [name]})
        # the count was only ever a delivery's header, never the message's
        self.assertEqual(headers, {"h": 1, "x-first-death-exchange": "", "x-first-death-queue": name,
                                   "x-first-death-reason": "delivery_limit"})

    def test_reject_without_requeue_dead_letters_as_rejected(self):
        dead = self.declare(arguments={})
        name = self.declare(arguments=quorum(**{"x-delivery-limit": 5, "x-dead-letter-exchange": "",
                                                "x-dead-letter-routing-key": dead}))
        self.publish_confirmed(name, [b"m"])
        self.channel.basic_reject(self.get(name)[0].delivery_tag, requeue=False)
        letters = self.dead_letters(dead, 1)
        self.assertEqual(letters[0][0].headers["x-first-death-reason"], "rejected")


class OverflowTest(QuorumTestCase):
    def test_reject_publish_over_the_limit_until_back_at_80_percent(self):
        name = self.declare(arguments=quorum(**{"x-max-length": 10, "x-overflow": "reject-publish"}))
        channel = self.connection.channel()
        channel.confirm_delivery()

        def publish():
            try:
                channel.basic_publish("", name, b"m")
                return "a"
            except pika.exceptions.NackError:
                return "n"
        # the 11th is taken (the queue was not over its limit yet), then it refuses
        self.assertEqual("".join(publish() for _ in range(13)), "a" * 11 + "nn")
        outcomes = []
        for _ in range(3):
            self.channel.basic_get(name, auto_ack=True)
            settle_pause()
            outcomes.append(publish())
        # 10 and 9 ready: still refused; 8 (80% of 10): taken again
        self.assertEqual("".join(outcomes), "nna")
        self.assertEqual(self.channel.queue_declare(name, passive=True).method.message_count, 9)

    def test_reject_publish_dlx_runs_as_drop_head(self):
        dead = self.declare(arguments={})
        name = self.declare(arguments=quorum(**{"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}))
        self.publish_confirmed(name, [b"a", b"b"])
        letters = self.dead_letters(dead, 1)
        self.assertEqual([body for _, body in letters], [b"a"])
        self.assertEqual(letters[0][0].headers["x-first-death-reason"], "maxlen")
        self.assertEqual(self.get(name)[2], b"b")


class RefusedOperationsTest(QuorumTestCase):
    def test_global_qos_consume_closes_the_connection(self):
        name = self.declare()

        def consume(ch):
            ch.basic_qos(prefetch_count=5, global_qos=True)
            ch.basic_consume(name, lambda *a: None)
        self.refused(540, "NOT_IMPLEMENTED - queue '%s' in vhost '/' does not support global qos" % name, consume,
                     connection_level=True)
        # a per-consumer prefetch, or a global one of 0, is fine
        self.channel.basic_qos(prefetch_count=5)
        self.channel.basic_consume(name, lambda *a: None)

    def test_conditional_delete_closes_the_connection(self):
        name = self.declare()
        text = ("NOT_IMPLEMENTED - cannot delete queue '%s' in vhost '/'. queue.delete operations with %s flag set "
                "are not supported by quorum queues")
        self.refused(540, text % (name, "if-unused"), lambda ch: ch.queue_delete(name, if_unused=True),
                     connection_level=True)
        self.refused(540, text % (name, "if-empty"), lambda ch: ch.queue_delete(name, if_empty=True),
                     connection_level=True)
        self.assertEqual(self.channel.queue_delete(name).method.message_count, 0)

    def test_get_with_single_active_consumer_is_locked(self):
        name = self.declare(arguments=quorum(**{"x-single-active-consumer": True}))
        self.refused(405, "RESOURCE_LOCKED - cannot obtain access to locked queue '%s' in vhost '/'. basic.get "
                          "operations are not supported by quorum queues with single active consumer" % name,
                     lambda ch: ch.basic_get(name))

    def test_unsettled_gets_count_as_consumers(self):
        name = self.declare()
        self.publish_confirmed(name, [b"a", b"b", b"c"])
        other = self.connection.channel()
        first = self.get(name)[0].delivery_tag
        self.get(name)
        self.get(name, channel=other)
        settle_pause()
        self.assertEqual(self.channel.queue_declare(name, passive=True).method.consumer_count, 3)
        self.channel.basic_ack(first)
        other.basic_nack(0, multiple=True, requeue=True)
        settle_pause()
        self.assertEqual(self.channel.queue_declare(name, passive=True).method.consumer_count, 1)
        self.channel.basic_get(name, auto_ack=True)  # settled at once: not counted
        self.channel.close()
        settle_pause()
        self.assertEqual(other.queue_declare(name, passive=True).method.consumer_count, 0)

    def test_single_active_consumer_counts_the_active_one_only(self):
        name = self.declare(arguments=quorum(**{"x-single-active-consumer": True}))
        consumer = self.connection.channel()
        first = consumer.basic_consume(name, lambda *a: None)
        consumer.basic_consume(name, lambda *a: None)
        consumer.basic_consume(name, lambda *a: None)
        settle_pause()
        self.assertEqual(self.channel.queue_declare(name, passive=True).method.consumer_count, 1)
        consumer.basic_cancel(first)
        settle_pause()
        self.assertEqual(self.channel.queue_declare(name, passive=True).method.consumer_count, 1)
        consumer.close()
        settle_pause()
        self.assertEqual(self.channel.queue_declare(name, passive=True).method.consumer_count, 0)

    def test_exclusive_consume_is_not_exclusive(self):
        name = self.declare()
        self.channel.basic_consume(name, lambda *a: None, exclusive=True)
        other = self.connection.channel()
        other.basic_consume(name, lambda *a: None)
        other.basic_consume(name, lambda *a: None, exclusive=True)
        self.assertEqual(self.channel.queue_declare(name, passive=True).method.consumer_count, 3)


@harness.skip_if_external("kills and restarts the broker process")
class KillTest(unittest.TestCase):
    def setUp(self):
        self.broker = RestartableBroker().start()

    def tearDown(self):
        self.broker.stop()

    def test_confirmed_transient_messages_survive_kill_9(self):
        conn = pika.BlockingConnection(self.broker.pika_parameters())
        ch = conn.channel()
        ch.queue_declare("qq", durable=True, arguments=QUORUM)
        ch.queue_declare("classic", durable=True)
        ch.confirm_delivery()
        for i in range(50):
            ch.basic_publish("", "qq", b"t%d" % i, pika.BasicProperties(delivery_mode=1, headers={"i": i}))
            ch.basic_publish("", "classic", b"t%d" % i, pika.BasicProperties(delivery_mode=1))
        # returned once before the crash: it comes back redelivered. A delivery is recorded
        # with the next batch the store syncs: the confirmed publish after it is that batch.
        method, _, body = ch.basic_get("qq")
        self.assertEqual(body, b"t0")
        ch.basic_nack(method.delivery_tag, requeue=True)
        ch.basic_publish("", "qq", b"t50", pika.BasicProperties(delivery_mode=1))
        self.broker.sigkill()
        self.broker.relaunch()
        conn = pika.BlockingConnection(self.broker.pika_parameters())
        ch = conn.channel()
        self.assertEqual(ch.queue_declare("qq", passive=True).method.message_count, 51)
        # a transient message in a classic durable queue is gone, as in RabbitMQ
        self.assertEqual(ch.queue_declare("classic", passive=True).method.message_count, 0)
        bodies = []
        for i in range(51):
            method, props, body = ch.basic_get("qq", auto_ack=True)
            bodies.append(body)
            self.assertEqual(props.delivery_mode, 1)
            if body == b"t0":
                self.assertTrue(method.redelivered)
        self.assertEqual(sorted(bodies), sorted(b"t%d" % i for i in range(51)))
        conn.close()


@harness.skip_if_external("starts its own broker with the management API")
class ManagementTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.broker = harness.Broker(management=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()

    def setUp(self):
        self.connection = pika.BlockingConnection(self.broker.pika_parameters())
        self.channel = self.connection.channel()

    def tearDown(self):
        self.connection.close()

    def queue_json(self, name):
        status, body = self.broker.http_get("/api/queues/%2F/" + urllib.parse.quote(name, safe=""))
        self.assertEqual(status, 200, body)
        return body

    def test_type_leader_and_members(self):
        self.channel.queue_declare("mgmt.qq", durable=True, arguments=QUORUM)
        self.channel.queue_declare("mgmt.cq", durable=True)
        q = self.queue_json("mgmt.qq")
        self.assertEqual(q["type"], "quorum")
        self.assertEqual(q["leader"], q["node"])
        self.assertEqual(q["members"], [q["node"]])
        self.assertEqual(q["online"], [q["node"]])
        c = self.queue_json("mgmt.cq")
        self.assertEqual(c["type"], "classic")
        self.assertNotIn("leader", c)
        status, listing = self.broker.http_get("/api/queues")
        types = {q["name"]: q["type"] for q in listing}
        self.assertEqual((types["mgmt.qq"], types["mgmt.cq"]), ("quorum", "classic"))
        status, text = self.broker.http_request("GET", "/metrics/per-object", port=self.broker.prometheus_port)
        self.assertEqual(status, 200)
        self.assertIn('queue="mgmt.qq",queue_type="rabbit_quorum_queue"', text)
        self.assertIn('queue="mgmt.cq",queue_type="rabbit_classic_queue"', text)

    def test_definitions_keep_the_type(self):
        self.channel.queue_declare("defs.qq", durable=True, arguments=quorum(**{"x-delivery-limit": 2}))
        status, defs = self.broker.http_get("/api/definitions")
        self.assertEqual(status, 200)
        exported = [q for q in defs["queues"] if q["name"] == "defs.qq"]
        self.assertEqual(len(exported), 1)
        self.assertEqual(exported[0]["arguments"], {"x-queue-type": "quorum", "x-delivery-limit": 2})
        self.assertEqual(exported[0]["type"], "quorum")
        self.channel.queue_delete("defs.qq")
        defs = {"queues": [dict(exported[0])]}
        status, body = self.broker.http_request("POST", "/api/definitions", defs)
        self.assertIn(status, (200, 204), body)
        self.assertEqual(self.queue_json("defs.qq")["type"], "quorum")
        self.channel.queue_delete("defs.qq")

    def test_policies_apply_to_quorum_queues(self):
        self.channel.queue_declare("pol.qq", durable=True, arguments=QUORUM)
        self.channel.queue_declare("pol.cq", durable=True)
        for name, apply_to, definition in (("for-quorum", "quorum_queues", {"delivery-limit": 0}),
                                           ("for-classic", "classic_queues", {"max-length": 7})):
            status, body = self.broker.http_request("PUT", "/api/policies/%2F/" + name, {
                "pattern": "^pol\\.", "apply-to": apply_to, "definition": definition, "priority": 1})
            self.assertIn(status, (201, 204), body)
        try:
            self.assertEqual(self.queue_json("pol.qq")["policy"], "for-quorum")
            self.assertEqual(self.queue_json("pol.cq")["policy"], "for-classic")
            # delivery-limit 0 from the policy: the first return drops the message
            ch = self.connection.channel()
            ch.confirm_delivery()
            ch.basic_publish("", "pol.qq", b"m")
            method, _, _ = ch.basic_get("pol.qq")
            ch.basic_nack(method.delivery_tag, requeue=True)
            self.assertEqual(ch.queue_declare("pol.qq", passive=True).method.message_count, 0)
        finally:
            for name in ("for-quorum", "for-classic"):
                self.broker.http_request("DELETE", "/api/policies/%2F/" + name)
            self.channel.queue_delete("pol.qq")
            self.channel.queue_delete("pol.cq")


if __name__ == "__main__":
    unittest.main()
