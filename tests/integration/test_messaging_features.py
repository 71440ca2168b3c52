"""Queue and exchange features: message TTL (per queue, per message, 0), length limits
(drop-head, reject-publish, bytes), dead-lettering with the x-death header, priority queues,
single active consumer, consumer priorities, exchange-to-exchange bindings, auto-delete
exchanges, alternate exchanges and the headers exchange.

Every expectation was checked against RabbitMQ 3.10.8 (WARREN_TEST_URL). TTLs are 50-300 ms
and the tests wait at least twice as long.
"""

import calendar
import datetime
import time
import unittest

import pika
import pika.exceptions

import harness
from test_messaging_support import Inbox, MessagingTestCase, pump, pump_until, unique


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


# ---------------------------------------------------------------------------------------------
# TTL and length limits


class TimeToLiveTest(MessagingTestCase):
    def test_queue_message_ttl_drops_messages_after_it(self):
        queue = self.queue({"x-message-ttl": 150})
        self.publish(queue, ["a", "b", "c"])
        self.assertEqual(self.drain_bodies(queue)[:1], ["a"])
        time.sleep(0.4)
        self.assertEqual(self.message_count(queue), 0)
        self.assertEqual(self.drain_bodies(queue), [])

    def test_per_message_expiration_drops_only_that_message(self):
        queue = self.queue()
        self.publish(queue, ["short"], expiration="150")
        self.publish(queue, ["forever"])
        time.sleep(0.4)
        self.assertEqual(self.drain_bodies(queue), ["forever"])

    def test_the_shorter_of_queue_and_message_ttl_applies(self):
        queue = self.queue({"x-message-ttl": 150})
        self.publish(queue, ["long-per-message"], expiration="60000")
        time.sleep(0.4)
        self.assertEqual(self.drain_bodies(queue), [])

    def test_expiration_0_drops_a_message_no_consumer_can_take_at_once(self):
        queue = self.queue()
        self.publish(queue, ["zero"], expiration="0")
        self.assertEqual(self.drain_bodies(queue), [])

    def test_get_ok_does_not_count_an_expired_message_right_behind(self):
        # RabbitMQ's fetch drops the expired heads behind the message it takes before counting
        # (found by tests/diff).
        queue = self.queue()
        self.publish(queue, ["kept"])
        self.publish(queue, ["zero"], expiration="0")
        method, _, body = self.channel.basic_get(queue, auto_ack=True)
        self.assertEqual((body, method.message_count), (b"kept", 0))
        self.assertEqual(self.message_count(queue), 0)

    def test_expiration_0_reaches_a_waiting_consumer(self):
        queue = self.queue()
        inbox = Inbox()
        self.connection.channel().basic_consume(queue, inbox, auto_ack=True)
        self.publish(queue, ["zero"], expiration="0")
        pump_until(self.connection, lambda: len(inbox) == 1)
        self.assertEqual(inbox.bodies, ["zero"])

    def test_expiration_0_is_dropped_when_the_consumer_has_no_credit(self):
        queue = self.queue()
        inbox = Inbox()
        consumer_channel = self.connection.channel()
        consumer_channel.basic_qos(prefetch_count=1)
        consumer_channel.basic_consume(queue, inbox)
        self.publish(queue, ["first"])
        pump_until(self.connection, lambda: len(inbox) == 1)
        self.publish(queue, ["zero"], expiration="0")
        pump(self.connection, 0.1)
        consumer_channel.basic_ack(inbox.deliveries[0][0].delivery_tag)
        pump(self.connection, self.QUIET)
        self.assertEqual(inbox.bodies, ["first"])

    def test_queue_message_ttl_0_behaves_like_expiration_0(self):
        queue = self.queue({"x-message-ttl": 0})
        self.publish(queue, ["zero"])
        self.assertEqual(self.drain_bodies(queue), [])
        inbox = Inbox()
        self.connection.channel().basic_consume(queue, inbox, auto_ack=True)
        self.publish(queue, ["delivered"])
        pump_until(self.connection, lambda: len(inbox) == 1)
        self.assertEqual(inbox.bodies, ["delivered"])

    def test_expiration_is_delivered_unchanged(self):
        queue = self.queue()
        self.publish(queue, ["m"], expiration="60000")
        (_, properties, _), = self.drain(queue)
        self.assertEqual(properties.expiration, "60000")


class LengthLimitTest(MessagingTestCase):
    def test_max_length_drop_head_drops_the_oldest(self):
        queue = self.queue({"x-max-length": 3})
        self.publish(queue, range(1, 6))
        self.assertEqual(self.message_count(queue), 3)
        self.assertEqual(self.drain_bodies(queue), ["3", "4", "5"])

    def test_explicit_drop_head_overflow_drops_the_oldest(self):
        queue = self.queue({"x-max-length": 2, "x-overflow": "drop-head"})
        self.publish(queue, range(1, 6))
        self.assertEqual(self.drain_bodies(queue), ["4", "5"])

    def test_max_length_reject_publish_nacks_the_overflowing_publishes(self):
        queue = self.queue({"x-max-length": 2, "x-overflow": "reject-publish"})
        self.channel.confirm_delivery()
        outcomes = []
        for n in range(1, 5):
            try:
                self.channel.basic_publish("", queue, str(n).encode())
                outcomes.append("ack")
            except pika.exceptions.NackError:
                outcomes.append("nack")
        self.assertEqual(outcomes, ["ack", "ack", "nack", "nack"])
        self.assertEqual(self.drain_bodies(queue), ["1", "2"])
        self.channel.basic_publish("", queue, b"room again")  # acked once there is room

    def test_max_length_reject_publish_without_confirms_drops_silently(self):
        queue = self.queue({"x-max-length": 1, "x-overflow": "reject-publish"})
        self.publish(queue, ["kept", "dropped"], channel=self.channel)
        self.assertEqual(self.drain_bodies(queue), ["kept"])

    def test_max_length_bytes_drops_the_oldest_until_the_bodies_fit(self):
        queue = self.queue({"x-max-length-bytes": 10})
        self.publish(queue, ["m001", "m002", "m003", "m004"])  # 4 bytes each: 2 fit in 10
        self.assertEqual(self.drain_bodies(queue), ["m003", "m004"])

    def test_unacked_messages_do_not_count_toward_max_length(self):
        queue = self.queue({"x-max-length": 2})
        self.publish(queue, ["1"])
        self.channel.basic_get(queue)  # "1" unacked
        self.publish(queue, ["2", "3"])
        self.assertEqual(self.message_count(queue), 2)
        self.channel.basic_nack(0, multiple=True, requeue=False)
        self.assertEqual(self.drain_bodies(queue), ["2", "3"])


# ---------------------------------------------------------------------------------------------
# Dead-lettering


class DeadLetterTest(MessagingTestCase):
    def setUp(self):
        super().setUp()
        self.dlx = self.exchange("fanout", auto_delete=True)
        self.dead = self.queue()
        self.channel.queue_bind(self.dead, self.dlx)

    def dead_letters(self, count, timeout=3.0):
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < count and time.monotonic() < deadline:
            got += self.drain(self.dead)
            if len(got) < count:
                time.sleep(0.05)
        self.assertEqual(len(got), count, "dead letters: %r" % (got,))
        return got

    def assertDeath(self, properties, reason, queue, count=1, routing_keys=None, extra=None):
        headers = properties.headers
        (death,) = headers["x-death"]
        stamp = death.pop("time")
        self.assertIsInstance(stamp, datetime.datetime)
        # A wall-clock timestamp (seconds since the epoch), as RabbitMQ writes it.
        self.assertLess(abs(calendar.timegm(stamp.timetuple()) - time.time()), 60, stamp)
        expected = {"count": count, "reason": reason, "queue": queue, "exchange": "",
                    "routing-keys": routing_keys or [queue]}
        expected.update(extra or {})
        self.assertEqual(death, expected)
        self.assertEqual((headers["x-first-death-reason"], headers["x-first-death-queue"],
                          headers["x-first-death-exchange"]), (reason, queue, ""))

    def test_rejected_message_is_dead_lettered_with_x_death(self):
        source = self.queue({"x-dead-letter-exchange": self.dlx})
        self.channel.basic_publish("", source, b"r", pika.BasicProperties(
            headers={"mine": 1}, expiration="60000", message_id="id-1"))
        method, _, _ = self.channel.basic_get(source)
        self.channel.basic_reject(method.delivery_tag, requeue=False)
        (method, properties, body), = self.dead_letters(1)
        self.assertEqual((body, method.exchange, method.routing_key, method.redelivered),
                         (b"r", self.dlx, source, False))
        self.assertEqual((properties.message_id, properties.headers["mine"]), ("id-1", 1))
        # The per-message TTL moves into x-death so the dead letter does not expire again.
        self.assertIsNone(properties.expiration)
        self.assertDeath(properties, "rejected", source, extra={"original-expiration": "60000"})

    def test_nacked_message_is_dead_lettered_as_rejected(self):
        source = self.queue({"x-dead-letter-exchange": self.dlx})
        self.publish(source, ["n"])
        method, _, _ = self.channel.basic_get(source)
        self.channel.basic_nack(method.delivery_tag, requeue=False)
        (_, properties, body), = self.dead_letters(1)
        self.assertDeath(properties, "rejected", source)

    def test_expired_message_is_dead_lettered_with_the_dead_letter_routing_key(self):
        source = self.queue({"x-dead-letter-exchange": self.dlx,
                             "x-dead-letter-routing-key": "new-key", "x-message-ttl": 100})
        self.publish(source, ["queue-ttl"])
        self.publish(source, ["message-ttl"], expiration="50")
        got = self.dead_letters(2)
        self.assertEqual(sorted(b.decode() for _, _, b in got), ["message-ttl", "queue-ttl"])
        for method, properties, body in got:
            self.assertEqual(method.routing_key, "new-key")
            extra = {"original-expiration": "50"} if body == b"message-ttl" else None
            self.assertDeath(properties, "expired", source, routing_keys=[source], extra=extra)

    def test_message_dropped_by_max_length_is_dead_lettered_as_maxlen(self):
        source = self.queue({"x-dead-letter-exchange": self.dlx, "x-max-length": 1})
        self.publish(source, ["oldest", "newest"])
        (_, properties, body), = self.dead_letters(1)
        self.assertEqual(body, b"oldest")
        self.assertDeath(properties, "maxlen", source)
        self.assertEqual(self.drain_bodies(source), ["newest"])

    def test_repeated_dead_lettering_through_the_same_queue_counts_up(self):
        source = self.queue(name=unique("cycle"))
        self.channel.queue_delete(source)
        self.channel.queue_declare(source, exclusive=True, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": source})
        self.publish(source, ["again"])
        seen = []
        for _ in range(3):
            deadline = time.monotonic() + 3
            while True:
                method, properties, _ = self.channel.basic_get(source)
                if method is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            self.assertIsNotNone(method, "dead letter did not come back")
            seen.append(properties.headers)
            self.channel.basic_reject(method.delivery_tag, requeue=False)
        self.assertIsNone(seen[0])
        self.assertDeath(pika.BasicProperties(headers=seen[1]), "rejected", source, count=1)
        self.assertDeath(pika.BasicProperties(headers=seen[2]), "rejected", source, count=2)

    def test_dead_lettering_through_two_queues_lists_the_newest_death_first(self):
        second_dlx = self.exchange("fanout", auto_delete=True)
        first = self.queue({"x-dead-letter-exchange": second_dlx, "x-message-ttl": 50})
        second = self.queue({"x-dead-letter-exchange": self.dlx})
        self.channel.queue_bind(second, second_dlx)
        self.publish(first, ["hop"])
        deadline = time.monotonic() + 3
        while True:
            method, _, _ = self.channel.basic_get(second)
            if method is not None or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.assertIsNotNone(method)
        self.channel.basic_reject(method.delivery_tag, requeue=False)
        (method, properties, _), = self.dead_letters(1)
        deaths = properties.headers["x-death"]
        self.assertEqual([(d["queue"], d["reason"], d["exchange"], d["routing-keys"], d["count"])
                          for d in deaths],
                         [(second, "rejected", second_dlx, [first], 1),
                          (first, "expired", "", [first], 1)])
        self.assertEqual((properties.headers["x-first-death-queue"],
                          properties.headers["x-first-death-reason"]), (first, "expired"))


# ---------------------------------------------------------------------------------------------
# Priorities and single active consumer


class PriorityTest(MessagingTestCase):
    def test_higher_priority_ready_messages_are_delivered_first(self):
        queue = self.queue({"x-max-priority": 10})
        # (index, priority); above the maximum counts as the maximum, no priority as 0.
        published = [(0, 1), (1, 5), (2, None), (3, 10), (4, 0), (5, 20), (6, 5), (7, 255),
                     (8, 3)]
        for index, priority in published:
            self.channel.basic_publish("", queue, str(index).encode(),
                                       pika.BasicProperties(priority=priority))
        self.assertEqual(self.drain_bodies(queue), ["3", "5", "7", "1", "6", "8", "0", "2", "4"])

    def test_priority_is_ignored_without_x_max_priority(self):
        queue = self.queue()
        for index, priority in enumerate([1, 9, 5]):
            self.channel.basic_publish("", queue, str(index).encode(),
                                       pika.BasicProperties(priority=priority))
        self.assertEqual(self.drain_bodies(queue), ["0", "1", "2"])

    def test_requeued_messages_keep_their_priority(self):
        queue = self.queue({"x-max-priority": 5})
        self.channel.basic_publish("", queue, b"low", pika.BasicProperties(priority=1))
        self.channel.basic_publish("", queue, b"high", pika.BasicProperties(priority=5))
        method, _, body = self.channel.basic_get(queue)
        self.assertEqual(body, b"high")
        self.channel.basic_publish("", queue, b"mid", pika.BasicProperties(priority=3))
        self.channel.basic_nack(method.delivery_tag, requeue=True)
        self.assertEqual(self.drain_bodies(queue), ["high", "mid", "low"])


class ConsumerSelectionTest(MessagingTestCase):
    def test_single_active_consumer_receives_everything_until_it_cancels(self):
        queue = self.queue({"x-single-active-consumer": True})
        first, second = Inbox(ack=True), Inbox(ack=True)
        first_channel, second_channel = self.connection.channel(), self.connection.channel()
        first_tag = first_channel.basic_consume(queue, first)
        second_channel.basic_consume(queue, second)
        self.assertEqual(self.channel.queue_declare(queue, passive=True).method.consumer_count, 2)
        self.publish(queue, range(4))
        pump_until(self.connection, lambda: len(first) == 4)
        first_channel.basic_cancel(first_tag)
        self.publish(queue, range(4, 8))
        pump_until(self.connection, lambda: len(second) == 4)
        pump(self.connection, self.QUIET)
        self.assertEqual((first.bodies, second.bodies),
                         (["0", "1", "2", "3"], ["4", "5", "6", "7"]))

    def test_single_active_consumer_with_full_prefetch_blocks_the_others(self):
        queue = self.queue({"x-single-active-consumer": True})
        first, second = Inbox(), Inbox()
        first_channel = self.connection.channel()
        first_channel.basic_qos(prefetch_count=1)
        first_channel.basic_consume(queue, first)
        self.connection.channel().basic_consume(queue, second)
        self.publish(queue, range(3))
        pump_until(self.connection, lambda: len(first) >= 1)
        pump(self.connection, self.QUIET)
        self.assertEqual((first.bodies, second.bodies), (["0"], []))
        self.assertEqual(self.message_count(queue), 2)

    def test_single_active_consumer_fails_over_with_its_unacked_messages(self):
        queue = self.queue({"x-single-active-consumer": True})
        first, second = Inbox(), Inbox()
        first_channel = self.connection.channel()
        first_channel.basic_consume(queue, first)
        self.connection.channel().basic_consume(queue, second)
        self.publish(queue, range(3))
        pump_until(self.connection, lambda: len(first) == 3)
        first_channel.close()
        pump_until(self.connection, lambda: len(second) == 3)
        self.assertEqual((second.bodies, second.redelivered),
                         (["0", "1", "2"], [True, True, True]))

    def test_higher_priority_consumer_is_served_while_it_has_credit(self):
        queue = self.queue()
        low, high = Inbox(), Inbox()
        self.connection.channel().basic_consume(queue, low, arguments={"x-priority": 1})
        high_channel = self.connection.channel()
        high_channel.basic_qos(prefetch_count=2)
        high_channel.basic_consume(queue, high, arguments={"x-priority": 10})
        self.publish(queue, range(6))
        pump_until(self.connection, lambda: len(low) + len(high) == 6)
        self.assertEqual((high.bodies, low.bodies), (["0", "1"], ["2", "3", "4", "5"]))

    def test_higher_priority_consumer_without_limit_takes_everything(self):
        queue = self.queue()
        low, high = Inbox(), Inbox()
        self.connection.channel().basic_consume(queue, low, arguments={"x-priority": -5})
        self.connection.channel().basic_consume(queue, high, arguments={"x-priority": 0})
        self.publish(queue, range(5))
        pump_until(self.connection, lambda: len(high) == 5)
        pump(self.connection, self.QUIET)
        self.assertEqual(low.bodies, [])


# ---------------------------------------------------------------------------------------------
# Exchanges: exchange-to-exchange, alternate, headers


class ExchangeRoutingTest(MessagingTestCase):
    def test_exchange_to_exchange_binding_routes_by_the_source_binding_key(self):
        source = self.exchange("direct")
        destination = self.exchange("fanout")
        self.channel.exchange_bind(destination, source, "k")
        queue = self.queue()
        self.channel.queue_bind(queue, destination)
        self.channel.basic_publish(source, "k", b"matched")
        self.channel.basic_publish(source, "other", b"unmatched")
        self.channel.basic_publish(destination, "anything", b"direct-to-destination")
        self.assertEqual(self.drain_bodies(queue), ["matched", "direct-to-destination"])
        self.channel.exchange_unbind(destination, source, "k")
        self.channel.basic_publish(source, "k", b"after unbind")
        self.assertEqual(self.drain_bodies(queue), [])

    def test_auto_delete_exchange_goes_with_its_last_binding(self):
        exchange = self.exchange("direct", auto_delete=True)
        queue = self.queue()
        time.sleep(0.1)
        self.channel.exchange_declare(exchange, "direct", passive=True)  # never bound: kept
        self.channel.queue_bind(queue, exchange, "a")
        self.channel.queue_bind(queue, exchange, "b")
        self.channel.queue_unbind(queue, exchange, "a")
        self.channel.exchange_declare(exchange, "direct", passive=True)
        self.channel.queue_unbind(queue, exchange, "b")
        channel = self.connection.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            channel.exchange_declare(exchange, "direct", passive=True)
        self.assertEqual(caught.exception.reply_code, 404)

    def test_unbinding_nothing_keeps_an_auto_delete_exchange(self):
        # Only removing a binding makes it go, as in RabbitMQ (found by tests/diff).
        exchange = self.exchange("direct", auto_delete=True)
        source = self.exchange("direct", auto_delete=True)
        queue = self.queue()
        self.channel.queue_unbind(queue, exchange, "never-bound")
        self.channel.exchange_unbind("amq.direct", source, "never-bound")
        self.channel.exchange_declare(exchange, "direct", passive=True)
        self.channel.exchange_declare(source, "direct", passive=True)

    def test_a_queue_reached_by_several_paths_gets_one_copy(self):
        first = self.exchange("fanout", auto_delete=True)
        second = self.exchange("fanout", auto_delete=True)
        self.channel.exchange_bind(second, first)
        self.channel.exchange_bind(first, second)  # a cycle
        queue = self.queue()
        self.channel.queue_bind(queue, first)
        self.channel.queue_bind(queue, second)
        self.channel.queue_bind(queue, "amq.direct", queue)
        self.channel.queue_bind(queue, "amq.direct", queue)  # duplicate binding
        self.channel.basic_publish(first, "", b"once")
        self.channel.basic_publish("amq.direct", queue, b"direct once")
        self.assertEqual(self.drain_bodies(queue), ["once", "direct once"])

    def test_alternate_exchange_receives_what_the_main_exchange_cannot_route(self):
        alternate = self.exchange("fanout", auto_delete=True)
        main = self.exchange("direct", auto_delete=True,
                             arguments={"alternate-exchange": alternate})
        alternate_queue, main_queue = self.queue(), self.queue()
        self.channel.queue_bind(alternate_queue, alternate)
        self.channel.queue_bind(main_queue, main, "k")
        returned = []
        self.channel.add_on_return_callback(lambda *args: returned.append(args))
        self.channel.basic_publish(main, "k", b"routed", mandatory=True)
        self.channel.basic_publish(main, "other", b"unrouted", mandatory=True)
        pump(self.connection, self.QUIET)
        self.assertEqual(self.drain_bodies(main_queue), ["routed"])
        self.assertEqual(self.drain_bodies(alternate_queue), ["unrouted"])
        self.assertEqual(returned, [])  # routed by the alternate exchange: no basic.return

    def test_headers_exchange_behind_an_exchange_binding_or_an_alternate_sees_the_headers(self):
        # The headers are the message's wherever on the path the headers exchange stands, not
        # only when it is the exchange published to.
        matching = self.exchange("headers", auto_delete=True)
        front = self.exchange("fanout", auto_delete=True)
        self.channel.exchange_bind(matching, front)
        main = self.exchange("direct", auto_delete=True, arguments={"alternate-exchange": matching})
        queue = self.queue()
        self.channel.queue_bind(queue, matching, "", arguments={"x-match": "all", "k": "v"})
        self.channel.basic_publish(front, "", b"through e2e", pika.BasicProperties(headers={"k": "v"}))
        self.channel.basic_publish(main, "nothing bound", b"as alternate", pika.BasicProperties(headers={"k": "v"}))
        self.channel.basic_publish(front, "", b"no match", pika.BasicProperties(headers={"k": "w"}))
        self.assertEqual(self.drain_bodies(queue), ["through e2e", "as alternate"])

    def test_missing_alternate_exchange_leaves_the_message_unroutable(self):
        main = self.exchange("direct", auto_delete=True,
                             arguments={"alternate-exchange": unique("missing")})
        returned = []
        self.channel.add_on_return_callback(lambda ch, m, p, b: returned.append(m.reply_code))
        self.channel.basic_publish(main, "k", b"lost", mandatory=True)
        pump_until(self.connection, lambda: returned)
        self.assertEqual(returned, [312])

    # (binding arguments, message headers by name); expected matches per binding below.
    HEADER_BINDINGS = {
        "all-ab": {"x-match": "all", "a": 1, "b": "two"},
        "any-ab": {"x-match": "any", "a": 1, "b": "two"},
        "default-ab": {"a": 1, "b": "two"},  # x-match defaults to all
        "no-args": {},  # matches every message
        "any-nothing": {"x-match": "any"},  # matches nothing
        "x-keys-ignored": {"x-match": "all", "x-foo": "bar"},  # like no-args
        "present-v": {"x-match": "all", "v": None},  # a void value tests presence only
        "string-1": {"x-match": "all", "a": "1"},  # values compare with their types
        "nested": {"x-match": "all", "t": {"k": 1}},
        "bool": {"x-match": "all", "f": True},
    }
    HEADER_MESSAGES = {
        "m-ab": {"a": 1, "b": "two"},
        "m-a": {"a": 1},
        "m-b": {"b": "two"},
        "m-abc": {"a": 1, "b": "two", "c": 3},
        "m-none": None,
        "m-empty": {},
        "m-a2": {"a": 2, "b": "two"},
        "m-astr": {"a": "1", "b": "two"},
        "m-v": {"v": "anything"},
        "m-xfoo": {"x-foo": "bar"},
        "m-nest": {"t": {"k": 1}},
        "m-bool": {"f": True},
        "m-bool-as-int": {"f": 1},
    }
    HEADER_EXPECTED = {
        "all-ab": ["m-ab", "m-abc"],
        "any-ab": ["m-ab", "m-a", "m-b", "m-abc", "m-a2", "m-astr"],
        "default-ab": ["m-ab", "m-abc"],
        "no-args": list(HEADER_MESSAGES),
        "any-nothing": [],
        "x-keys-ignored": list(HEADER_MESSAGES),
        "present-v": ["m-v"],
        "string-1": ["m-astr"],
        "nested": ["m-nest"],
        "bool": ["m-bool"],
    }

    def test_headers_exchange_matches_all_and_any(self):
        exchange = self.exchange("headers", auto_delete=True)
        queues = {}
        for name, arguments in self.HEADER_BINDINGS.items():
            queues[name] = self.queue()
            self.channel.queue_bind(queues[name], exchange, "ignored", arguments=arguments)
        for name, headers in self.HEADER_MESSAGES.items():
            self.channel.basic_publish(exchange, "any-key", name.encode(),
                                       pika.BasicProperties(headers=headers))
        for name, expected in self.HEADER_EXPECTED.items():
            with self.subTest(binding=name, arguments=self.HEADER_BINDINGS[name]):
                self.assertEqual(self.drain_bodies(queues[name]), expected)


if __name__ == "__main__":
    unittest.main()
