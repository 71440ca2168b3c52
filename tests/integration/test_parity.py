"""RabbitMQ 3.10 behaviours that the AMQP 0-9-1 specification leaves open or states otherwise
(issue 15): x-expires and passive declares, amq.* exchange deletion, sender-selected
distribution (CC/BCC, dead letters included), headers-exchange numeric equality, direct
reply-to's pseudo-queue, connection names, old protocol headers and AMQP 0-8. Each
expectation is RabbitMQ's.
"""

import socket
import struct
import time
import unittest

import pika
import pika.exceptions

import harness
from test_durability import RestartableBroker
from test_messaging_support import HEADERS_FLAG, MessagingTestCase, connect, unique


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


class PassiveDeclareTest(MessagingTestCase):
    def test_passive_declare_renews_the_x_expires_lease(self):
        queue = unique("expires")
        self.channel.queue_declare(queue, arguments={"x-expires": 600})
        self.cleanups_queue.append(queue)
        # Passive declares every 200 ms for 1.4 s: each one is use, so the queue outlives
        # its 600 ms lease more than twice over.
        for _ in range(7):
            time.sleep(0.2)
            self.assertEqual(self.channel.queue_declare(queue, passive=True).method.queue, queue)
        time.sleep(1.0)
        self.assertQueueMissing(queue)


class DeepHeadersTest(MessagingTestCase):
    def test_headers_nested_200_levels_are_relayed_as_rabbitmq_relays_them(self):
        queue = unique("deep")
        self.channel.queue_declare(queue)
        self.cleanups_queue.append(queue)
        deep = "leaf"
        for level in range(200):
            deep = {"l%d" % level: deep} if level % 2 else {"a": [deep]}
        self.channel.basic_publish("", queue, b"deep", pika.BasicProperties(headers={"x": deep}))
        method, properties, body = self.channel.basic_get(queue, auto_ack=True)
        self.assertIsNotNone(method)
        self.assertEqual(body, b"deep")
        self.assertEqual(properties.headers, {"x": deep})


class SystemExchangeDeleteTest(MessagingTestCase):
    def assertDeleteRefused(self, name):
        channel = self.connection.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            channel.exchange_delete(name)
        self.assertEqual(caught.exception.reply_code, 403)
        self.assertEqual(caught.exception.reply_text,
                         "ACCESS_REFUSED - deletion of system exchange '%s' in vhost '/' not allowed"
                         % name)

    def test_deleting_a_builtin_amq_exchange_is_refused(self):
        self.assertDeleteRefused("amq.direct")

    def test_deleting_a_missing_amq_exchange_is_refused_too(self):
        # RabbitMQ refuses by the name's prefix, while any other missing exchange deletes fine.
        self.assertDeleteRefused("amq.no-such-exchange")
        self.assertDeleteRefused("amq.")
        self.channel.exchange_delete(unique("no-such-exchange"))


class SenderSelectedDistributionTest(MessagingTestCase):
    """CC and BCC headers (arrays of longstr) add routing keys; BCC is not delivered."""

    def bound_queue(self, exchange, *keys):
        queue = self.queue()
        for key in keys:
            self.channel.queue_bind(queue, exchange, key)
        return queue

    def send(self, exchange, routing_key, headers):
        self.publisher.basic_publish(exchange, routing_key, b"m",
                                     pika.BasicProperties(headers=headers))

    def test_cc_and_bcc_route_through_a_direct_exchange_and_bcc_is_removed(self):
        exchange = self.exchange("direct")
        a, b, c = (self.bound_queue(exchange, key) for key in "abc")
        missed = self.bound_queue(exchange, "d")
        self.send(exchange, "a", {"CC": ["b"], "BCC": ["c"], "other": 1})
        for queue in (a, b, c):
            (_, properties, body), = self.drain(queue)
            self.assertEqual(properties.headers, {"CC": ["b"], "other": 1})
        self.assertEqual(self.drain(missed), [])

    def test_a_queue_matched_by_several_keys_gets_the_message_once(self):
        exchange = self.exchange("direct")
        queue = self.bound_queue(exchange, "a", "b", "c")
        self.send(exchange, "a", {"CC": ["b", "a"], "BCC": ["c"]})
        self.assertEqual(len(self.drain(queue)), 1)

    def test_cc_routes_through_topic_and_default_exchanges(self):
        exchange = self.exchange("topic")
        queue = self.bound_queue(exchange, "x.*")
        self.send(exchange, "nothing", {"CC": ["x.y"]})
        self.assertEqual(len(self.drain(queue)), 1)
        first, second = self.queue(), self.queue()
        self.send("", first, {"BCC": [second]})
        self.assertEqual(len(self.drain(first)), 1)
        (_, properties, _), = self.drain(second)
        self.assertEqual(properties.headers, {})

    def test_elements_that_are_not_strings_are_ignored(self):
        exchange = self.exchange("direct")
        queue = self.bound_queue(exchange, "a")
        self.send(exchange, "none", {"CC": [1, "a"]})
        self.assertEqual(len(self.drain(queue)), 1)

    def test_a_cc_header_that_is_not_an_array_is_refused(self):
        channel = self.connection.channel()
        channel.basic_publish("", "nowhere", b"m", pika.BasicProperties(headers={"CC": "a"}))
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            channel.queue_declare("", exclusive=True)
        self.assertEqual(caught.exception.reply_code, 406)
        self.assertEqual(caught.exception.reply_text,
                         'PRECONDITION_FAILED - invalid message: '
                         '{unacceptable_type_in_header,"CC",longstr}')


class DeadLetterSenderKeysTest(MessagingTestCase):
    """A dead letter routes with the keys its message was published with (rabbit_dead_letter
    keeps the message's routing keys): its routing key, CC and BCC, though BCC left the headers
    at publication; x-death's routing-keys list only the key and CC (what the headers show). A
    dead-letter routing key replaces them all, and CC is removed."""

    def bound_queue(self, exchange, *keys):
        queue = self.queue()
        for key in keys:
            self.channel.queue_bind(queue, exchange, key)
        return queue

    def dead_letter_one(self, arguments, headers):
        source = self.queue(arguments=arguments)
        self.publisher.basic_publish("", source, b"dead", pika.BasicProperties(headers=headers))
        method, _, _ = self.channel.basic_get(source)
        self.assertIsNotNone(method)
        self.channel.basic_reject(method.delivery_tag, requeue=False)
        return source

    def test_cc_and_bcc_keys_route_a_dead_letter(self):
        dlx = self.exchange("direct")
        cc, bcc = unique("cc-key"), unique("bcc-key")
        cc_queue, bcc_queue, missed = (self.bound_queue(dlx, key) for key in (cc, bcc, unique("other")))
        source = self.dead_letter_one({"x-dead-letter-exchange": dlx}, {"CC": [cc], "BCC": [bcc]})
        for queue in (cc_queue, bcc_queue):
            (_, properties, body), = self.drain(queue)
            self.assertEqual(body, b"dead")
            self.assertEqual(properties.headers["CC"], [cc])
            self.assertNotIn("BCC", properties.headers)
            death, = properties.headers["x-death"]
            self.assertEqual(death["routing-keys"], [source, cc])
        self.assertEqual(self.drain(missed), [])

    def test_the_original_routing_key_routes_it_too_and_each_queue_gets_it_once(self):
        dlx = self.exchange("direct")
        bcc = unique("bcc-key")
        source_name = unique("dl-source")
        both = self.queue()
        self.channel.queue_bind(both, dlx, source_name)
        self.channel.queue_bind(both, dlx, bcc)
        self.channel.queue_declare(source_name, exclusive=True, arguments={"x-dead-letter-exchange": dlx})
        self.publisher.basic_publish("", source_name, b"dead", pika.BasicProperties(headers={"BCC": [bcc]}))
        method, _, _ = self.channel.basic_get(source_name)
        self.channel.basic_reject(method.delivery_tag, requeue=False)
        self.assertEqual(len(self.drain(both)), 1)

    def test_a_dead_letter_routing_key_replaces_the_cc_and_bcc_keys(self):
        dlx = self.exchange("direct")
        cc, bcc, dlrk = unique("cc-key"), unique("bcc-key"), unique("dlrk")
        cc_queue, bcc_queue, dlrk_queue = (self.bound_queue(dlx, key) for key in (cc, bcc, dlrk))
        self.dead_letter_one({"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": dlrk},
                             {"CC": [cc], "BCC": [bcc]})
        (_, properties, _), = self.drain(dlrk_queue)
        self.assertNotIn("CC", properties.headers)
        self.assertEqual(self.drain(cc_queue), [])
        self.assertEqual(self.drain(bcc_queue), [])


class HeadersNumericEqualityTest(MessagingTestCase):
    def publish_raw(self, exchange, headers_field, body):
        """Publish with a headers table holding one raw field (pika cannot encode a double)."""
        properties = harness.long_(len(headers_field)) + headers_field
        with harness.RawConnection(harness.module_broker()) as raw:
            raw.handshake()
            raw.open_channel(1)
            raw.send(harness.method_frame(1, harness.BASIC_PUBLISH, harness.short(0) +
                                          harness.shortstr(exchange) + harness.shortstr("") +
                                          harness.octet(0)) +
                     harness.header_frame(1, 60, len(body), HEADERS_FLAG, properties) +
                     harness.frame(harness.FRAME_BODY, 1, body))
            raw.close_connection()

    def test_an_integer_binding_matches_a_double_header_of_the_same_value(self):
        exchange = self.exchange("headers")
        queue = self.queue()
        self.channel.queue_bind(queue, exchange, arguments={"x-match": "all", "a": 1})
        for value in (1.0, 1.5, 2.0):
            self.publish_raw(exchange, harness.shortstr("a") + b"d" + struct.pack(">d", value),
                             str(value).encode())
        self.publish_raw(exchange, harness.shortstr("a") + b"b" + struct.pack(">b", 1), b"byte 1")
        self.assertEqual(self.drain_bodies(queue), ["1.0", "byte 1"])


class DirectReplyToDeclareTest(MessagingTestCase):
    def test_passive_declare_of_the_pseudo_queue_answers_declare_ok(self):
        ok = self.channel.queue_declare("amq.rabbitmq.reply-to", passive=True).method
        self.assertEqual((ok.queue, ok.message_count, ok.consumer_count),
                         ("amq.rabbitmq.reply-to", 0, 0))
        self.assertTrue(self.channel.is_open)


@harness.skip_if_external("restarts the broker process")
class RecoveredTimeToLiveTest(unittest.TestCase):
    def setUp(self):
        self.broker = RestartableBroker().start()

    def tearDown(self):
        self.broker.stop()

    def message_count(self, queue):
        connection = pika.BlockingConnection(self.broker.pika_parameters())
        try:
            return connection.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            connection.close()

    def test_ttl_counts_from_publication_not_from_recovery(self):
        connection = pika.BlockingConnection(self.broker.pika_parameters())
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("ttl", durable=True, arguments={"x-message-ttl": 3000})
        channel.basic_publish("", "ttl", b"m", pika.BasicProperties(delivery_mode=2))
        published = time.monotonic()
        connection.close()
        time.sleep(max(0.0, published + 2.0 - time.monotonic()))
        self.broker.graceful_restart()
        restarted = time.monotonic()
        if restarted - published < 2.8:  # still alive: it was 2 s old at the restart
            self.assertEqual(self.message_count("ttl"), 1)
        # 3 s after publication, well before 3 s after the restart, it must be gone.
        time.sleep(max(0.0, published + 3.6 - time.monotonic()))
        self.assertLess(time.monotonic() - restarted, 2.5)
        self.assertEqual(self.message_count("ttl"), 0)


class RecoveredDeadLetterKeysTest(unittest.TestCase):
    """A persistent message keeps its BCC keys across a restart (the store writes them beside
    the message, since its headers no longer hold them), so its dead letter still routes with
    them, as RabbitMQ's does (its store keeps the message's routing keys)."""

    def setUp(self):
        self.broker = RestartableBroker().start()

    def tearDown(self):
        self.broker.stop()

    def test_bcc_keys_route_a_dead_letter_after_a_restart(self):
        connection = pika.BlockingConnection(self.broker.pika_parameters())
        channel = connection.channel()
        channel.confirm_delivery()
        channel.exchange_declare("dlx", "direct", durable=True)
        for queue, key in (("to-cc", "cc-key"), ("to-bcc", "bcc-key")):
            channel.queue_declare(queue, durable=True)
            channel.queue_bind(queue, "dlx", key)
        channel.queue_declare("source", durable=True, arguments={"x-dead-letter-exchange": "dlx"})
        channel.basic_publish("", "source", b"m", pika.BasicProperties(
            delivery_mode=2, headers={"CC": ["cc-key"], "BCC": ["bcc-key"]}))
        connection.close()
        self.broker.graceful_restart()
        connection = pika.BlockingConnection(self.broker.pika_parameters())
        try:
            channel = connection.channel()
            method, _, _ = channel.basic_get("source")
            self.assertIsNotNone(method)
            channel.basic_reject(method.delivery_tag, requeue=False)
            for queue in ("to-cc", "to-bcc"):
                method, properties, body = channel.basic_get(queue, auto_ack=True)
                self.assertIsNotNone(method, queue)
                self.assertNotIn("BCC", properties.headers)
        finally:
            connection.close()


@harness.skip_if_external("reads the broker's log")
class ConnectionNameTest(unittest.TestCase):
    def test_logs_name_a_connection_peer_then_local_end(self):
        broker = harness.module_broker()
        with harness.RawConnection(broker) as raw:
            raw.handshake()
            port = raw.sock.getsockname()[1]
            raw.open_channel(1)
            queue = unique("missing")
            raw.send(harness.method_frame(1, (50, 10), harness.short(0) + harness.shortstr(queue) +
                                          harness.octet(1) + harness.table({})))
            raw.read_method(harness.CHANNEL_CLOSE)
            raw.send(harness.method_frame(1, harness.CHANNEL_CLOSE_OK))
            raw.close_connection()
        name = "127.0.0.1:%d -> 127.0.0.1:%d" % (port, broker.port)
        deadline = time.monotonic() + 3
        while queue not in broker.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = [line for line in broker.stderr_text().splitlines() if queue in line]
        self.assertTrue(lines, "no log line names %s" % queue)
        self.assertIn(name + ": channel 1 error", lines[0])


class OldProtocolHeaderTest(unittest.TestCase):
    """RabbitMQ serves AMQP 0-9's header ("AMQP" 1 1 0 9) as 0-9-1, its connection.start
    announcing version 0-9 as for 0-9-1 itself. 0-8 has its own test below."""

    def test_amqp_0_9_header_is_served_as_0_9_1(self):
        with harness.RawConnection(harness.module_broker()) as raw:
            raw.send(b"AMQP\x01\x01\x00\x09")
            start = raw.read_method(harness.CONNECTION_START)
            self.assertEqual((start.args.octet(), start.args.octet()), (0, 9))
            raw.send(harness.method_frame(0, harness.CONNECTION_START_OK, harness.start_ok_args()))
            _, frame_max, _ = raw.read_method(harness.CONNECTION_TUNE).args.unpack(">HIH")
            raw.send(harness.method_frame(0, harness.CONNECTION_TUNE_OK,
                                          harness.tune_ok_args(2047, frame_max, 0)))
            raw.send(harness.method_frame(0, harness.CONNECTION_OPEN, harness.open_args()))
            raw.read_method(harness.CONNECTION_OPEN_OK)
            raw.open_channel(1)
            raw.close_connection()

    def test_an_unknown_header_gets_the_0_9_1_header_back(self):
        with harness.RawConnection(harness.module_broker()) as raw:
            raw.send(b"AMQP\x00\x01\x00\x00")
            self.assertEqual(raw.read_exactly(8), harness.PROTOCOL_HEADER)
            self.assertTrue(raw.wait_closed(5.0))


# AMQP 0-8 as RabbitMQ's 0-8 framing numbers it where it differs from 0-9-1.
CLOSE_0_8 = (10, 60)
CLOSE_OK_0_8 = (10, 61)
ACCESS_REQUEST = (30, 10)
ACCESS_REQUEST_OK = (30, 11)


class Amqp08Test(unittest.TestCase):
    """RabbitMQ speaks AMQP 0-8 to "AMQP" 1 1 8 0 (what most 0-8 clients send) and 1 1 9 1 (the
    0-8 spec's own header): connection.start says 8-0, connection.close is 10/60, channel.open-ok
    has no field, basic.consume no arguments table, access.request is granted with ticket 1, and
    the methods its 0-8 lacks (confirm.select, basic.nack, exchange.bind) are unknown (540)."""

    def handshake_0_8(self, raw, header=b"AMQP\x01\x01\x08\x00"):
        raw.send(header)
        start = raw.read_method(harness.CONNECTION_START)
        self.assertEqual((start.args.octet(), start.args.octet()), (8, 0))
        start.args.table()
        self.assertIn(b"PLAIN", start.args.longstr())
        raw.send(harness.method_frame(0, harness.CONNECTION_START_OK,
                                      harness.start_ok_args(raw.broker.user, raw.broker.password)))
        _, frame_max, _ = raw.read_method(harness.CONNECTION_TUNE).args.unpack(">HIH")
        raw.send(harness.method_frame(0, harness.CONNECTION_TUNE_OK, harness.tune_ok_args(2047, frame_max, 0)))
        raw.send(harness.method_frame(0, harness.CONNECTION_OPEN, harness.open_args(raw.broker.vhost)))
        self.assertEqual(raw.read_method(harness.CONNECTION_OPEN_OK).payload[4:], harness.shortstr(""))

    def open_channel_0_8(self, raw, channel):
        raw.send(harness.method_frame(channel, harness.CHANNEL_OPEN, harness.shortstr("")))
        ok = raw.read_method(harness.CHANNEL_OPEN_OK)
        self.assertEqual((ok.channel, ok.payload), (channel, struct.pack(">HH", 20, 11)))

    def close_0_8(self, raw):
        raw.send(harness.method_frame(0, CLOSE_0_8, harness.close_args()))
        self.assertEqual(raw.read_method(CLOSE_OK_0_8).channel, 0)
        raw.close_socket()

    def test_both_0_8_headers_open_a_0_8_session(self):
        for header in (b"AMQP\x01\x01\x08\x00", b"AMQP\x01\x01\x09\x01"):
            with harness.RawConnection(harness.module_broker()) as raw:
                self.handshake_0_8(raw, header)
                self.open_channel_0_8(raw, 1)
                self.close_0_8(raw)

    def test_access_request_declare_publish_get_and_consume(self):
        queue = unique("amqp08")
        with harness.RawConnection(harness.module_broker()) as raw:
            self.handshake_0_8(raw)
            self.open_channel_0_8(raw, 1)
            raw.send(harness.method_frame(1, ACCESS_REQUEST, harness.shortstr("/data") + harness.octet(0x1C)))
            self.assertEqual(raw.read_method(ACCESS_REQUEST_OK).args.short(), 1)
            # queue.declare: ticket, queue, passive durable exclusive auto-delete nowait, arguments.
            raw.send(harness.method_frame(1, (50, 10), harness.short(1) + harness.shortstr(queue) +
                                          harness.octet(0) + harness.table({})))
            declare_ok = raw.read_method((50, 11))
            self.assertEqual(declare_ok.args.shortstr(), queue)
            raw.send(harness.method_frame(1, harness.BASIC_PUBLISH, harness.short(1) + harness.shortstr("") +
                                          harness.shortstr(queue) + harness.octet(0)))
            raw.send(harness.header_frame(1, 60, 5))
            raw.send(harness.frame(harness.FRAME_BODY, 1, b"hello"))
            raw.send(harness.method_frame(1, (60, 70), harness.short(1) + harness.shortstr(queue) +
                                          harness.octet(1)))
            get_ok = raw.read_method((60, 71))
            self.assertEqual(get_ok.args.longlong(), 1)
            self.assertEqual(raw.read_frame().type, harness.FRAME_HEADER)
            self.assertEqual(raw.read_frame().payload, b"hello")
            # basic.consume without the 0-9-1 arguments table: ticket, queue, tag, four bits.
            raw.send(harness.method_frame(1, (60, 20), harness.short(1) + harness.shortstr(queue) +
                                          harness.shortstr("c08") + harness.octet(0x02)))
            self.assertEqual(raw.read_method((60, 21)).args.shortstr(), "c08")
            raw.send(harness.method_frame(1, harness.BASIC_PUBLISH, harness.short(1) + harness.shortstr("") +
                                          harness.shortstr(queue) + harness.octet(0)))
            raw.send(harness.header_frame(1, 60, 2))
            raw.send(harness.frame(harness.FRAME_BODY, 1, b"hi"))
            deliver = raw.read_method((60, 60))
            self.assertEqual(deliver.args.shortstr(), "c08")
            self.assertEqual(raw.read_frame().type, harness.FRAME_HEADER)
            self.assertEqual(raw.read_frame().payload, b"hi")
            # queue.unbind is in RabbitMQ's 0-8 framing (not in the 0-8 spec), as in 0-9-1.
            raw.send(harness.method_frame(1, (50, 20), harness.short(1) + harness.shortstr(queue) +
                                          harness.shortstr("amq.direct") + harness.shortstr("k") +
                                          harness.octet(0) + harness.table({})))
            raw.read_method((50, 21))
            raw.send(harness.method_frame(1, (50, 50), harness.short(1) + harness.shortstr(queue) +
                                          harness.shortstr("amq.direct") + harness.shortstr("k") +
                                          harness.table({})))
            raw.read_method((50, 51))
            raw.send(harness.method_frame(1, (50, 40), harness.short(1) + harness.shortstr(queue) +
                                          harness.octet(0)))
            raw.read_method((50, 41))
            self.close_0_8(raw)

    def test_a_0_9_1_only_method_is_unknown(self):
        for method, args in (((85, 10), harness.octet(0)),
                             ((60, 120), harness.longlong(0) + harness.octet(0)),
                             ((40, 30), harness.short(0) + harness.shortstr("a") + harness.shortstr("b") +
                              harness.shortstr("") + harness.octet(0) + harness.table({}))):
            with harness.RawConnection(harness.module_broker()) as raw:
                self.handshake_0_8(raw)
                self.open_channel_0_8(raw, 1)
                raw.send(harness.method_frame(1, method, args))
                close = raw.read_method(CLOSE_0_8)
                self.assertEqual(harness.ConnectionClose(close.args).reply_code, harness.NOT_IMPLEMENTED)
                raw.send(harness.method_frame(0, CLOSE_OK_0_8))
                self.assertTrue(raw.wait_closed(5.0))

    def test_a_soft_error_closes_the_channel_in_0_8_too(self):
        with harness.RawConnection(harness.module_broker()) as raw:
            self.handshake_0_8(raw)
            self.open_channel_0_8(raw, 1)
            raw.send(harness.method_frame(1, (50, 10), harness.short(1) + harness.shortstr(unique("missing")) +
                                          harness.octet(1) + harness.table({})))
            close = harness.ConnectionClose(raw.read_method(harness.CHANNEL_CLOSE).args)
            self.assertEqual(close.reply_code, 404)
            raw.send(harness.method_frame(1, harness.CHANNEL_CLOSE_OK))
            self.open_channel_0_8(raw, 2)
            self.close_0_8(raw)

    @harness.skip_if_external("starts a broker with the management port")
    def test_the_management_api_names_the_protocol_as_rabbitmq_does(self):
        broker = harness.Broker(management=True).start()
        try:
            with harness.RawConnection(broker) as raw:
                self.handshake_0_8(raw)
                status, connections = broker.http_request("GET", "/api/connections")
                self.assertEqual(status, 200)
                self.assertEqual([c["protocol"] for c in connections], ["AMQP 8-0"])
                self.close_0_8(raw)
        finally:
            broker.stop()
