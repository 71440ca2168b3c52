"""Messaging semantics seen by consumers and publishers: prefetch (per consumer and global),
round-robin dispatch and ordering, requeue and redelivery, basic.get/recover/purge/delete
counts, queue lifetimes (auto-delete, exclusive, x-expires), consumer cancel notifications,
mandatory returns, publisher confirms and transactions.

Every expectation was checked against RabbitMQ 3.10.8 (WARREN_TEST_URL). "Nothing more
arrives" checks wait QUIET (300 ms) after the expected deliveries.
"""

import time
import unittest

import pika
import pika.exceptions

import harness
from harness import RawConnection, method_frame, octet
from test_messaging_support import (
    Inbox, MessagingTestCase, assert_random_names, connect, consume_args, pump, pump_until,
    unique, publish_frames, declare_queue_args, BASIC_ACK, BASIC_CONSUME, BASIC_CONSUME_OK,
    CONFIRM_SELECT, CONFIRM_SELECT_OK, PASSIVE, QUEUE_DECLARE, QUEUE_DECLARE_OK)


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


# ---------------------------------------------------------------------------------------------
# Prefetch


class PrefetchTest(MessagingTestCase):
    def settle(self, predicate):
        """Wait (up to 5 s) for the expected deliveries, then QUIET more for any the limit
        should stop; the caller's assertion reports what arrived."""
        try:
            pump_until(self.connection, predicate)
        except AssertionError:
            pass
        pump(self.connection, self.QUIET)

    def consume_two_queues(self, expected_total, *qos_calls):
        """Two queues of 10 messages consumed on one channel after qos_calls(channel) ran;
        returns (channel, inbox_a, inbox_b) once expected_total deliveries settled."""
        queue_a, queue_b = self.queue(), self.queue()
        self.publish(queue_a, range(10))
        self.publish(queue_b, range(10))
        channel = self.connection.channel()
        for call in qos_calls:
            call(channel)
        inbox_a, inbox_b = Inbox(), Inbox()
        channel.basic_consume(queue_a, inbox_a)
        channel.basic_consume(queue_b, inbox_b)
        self.settle(lambda: len(inbox_a) + len(inbox_b) >= expected_total)
        return channel, inbox_a, inbox_b

    def test_prefetch_n_keeps_exactly_n_unacked_deliveries_in_flight(self):
        queue = self.queue()
        self.publish(queue, range(10))
        self.channel.basic_qos(prefetch_count=3)
        inbox = Inbox()
        self.channel.basic_consume(queue, inbox)
        self.settle(lambda: len(inbox) >= 3)
        self.assertEqual(inbox.bodies, ["0", "1", "2"])
        self.assertEqual(self.message_count(queue), 7)  # ready only: the 3 unacked not counted
        self.channel.basic_ack(inbox.deliveries[0][0].delivery_tag)
        self.settle(lambda: len(inbox) >= 4)
        self.assertEqual(inbox.bodies, ["0", "1", "2", "3"])
        self.channel.basic_ack(0, multiple=True)
        self.settle(lambda: len(inbox) >= 7)
        self.assertEqual(inbox.bodies, [str(n) for n in range(7)])

    def test_prefetch_0_is_unlimited(self):
        _, inbox_a, inbox_b = self.consume_two_queues(
            20, lambda ch: ch.basic_qos(prefetch_count=0))
        self.assertEqual((len(inbox_a), len(inbox_b)), (10, 10))

    def test_per_consumer_prefetch_applies_to_each_consumer_of_the_channel(self):
        _, inbox_a, inbox_b = self.consume_two_queues(
            4, lambda ch: ch.basic_qos(prefetch_count=2))
        self.assertEqual((len(inbox_a), len(inbox_b)), (2, 2))

    def test_global_prefetch_is_shared_by_all_consumers_of_the_channel(self):
        channel, inbox_a, inbox_b = self.consume_two_queues(
            3, lambda ch: ch.basic_qos(prefetch_count=3, global_qos=True))
        self.assertEqual(len(inbox_a) + len(inbox_b), 3)
        channel.basic_ack(0, multiple=True)
        self.settle(lambda: len(inbox_a) + len(inbox_b) >= 6)
        self.assertEqual(len(inbox_a) + len(inbox_b), 6)

    def test_per_consumer_and_global_prefetch_both_apply(self):
        _, inbox_a, inbox_b = self.consume_two_queues(
            3, lambda ch: ch.basic_qos(prefetch_count=2),
            lambda ch: ch.basic_qos(prefetch_count=3, global_qos=True))
        self.assertEqual(len(inbox_a) + len(inbox_b), 3)
        self.assertLessEqual(len(inbox_a), 2)
        self.assertLessEqual(len(inbox_b), 2)

    def test_per_consumer_qos_after_a_global_qos_removes_the_global_limit(self):
        # RabbitMQ 3.10 (rabbit_channel: "Ensures that if default was set, it's overridden"):
        # basic.qos global=false also unlimits the channel-wide prefetch set before it.
        _, inbox_a, inbox_b = self.consume_two_queues(
            4, lambda ch: ch.basic_qos(prefetch_count=3, global_qos=True),
            lambda ch: ch.basic_qos(prefetch_count=2))
        self.assertEqual((len(inbox_a), len(inbox_b)), (2, 2))

    def test_qos_applies_to_consumers_started_after_it(self):
        queue_a, queue_b = self.queue(), self.queue()
        self.publish(queue_a, range(10))
        self.publish(queue_b, range(10))
        inbox_a, inbox_b = Inbox(), Inbox()
        self.channel.basic_qos(prefetch_count=1)
        self.channel.basic_consume(queue_a, inbox_a)
        self.channel.basic_qos(prefetch_count=4)
        self.channel.basic_consume(queue_b, inbox_b)
        self.settle(lambda: len(inbox_a) + len(inbox_b) >= 5)
        self.assertEqual((len(inbox_a), len(inbox_b)), (1, 4))


# ---------------------------------------------------------------------------------------------
# Dispatch, ordering, requeue


class DispatchTest(MessagingTestCase):
    def test_round_robin_between_consumers_on_two_channels(self):
        queue = self.queue()
        first, second = Inbox(), Inbox()
        self.connection.channel().basic_consume(queue, first, auto_ack=True)
        self.connection.channel().basic_consume(queue, second, auto_ack=True)
        self.publish(queue, range(10))
        pump_until(self.connection, lambda: len(first) + len(second) == 10)
        pump(self.connection, self.QUIET)
        halves = sorted([first.bodies, second.bodies])
        self.assertEqual(halves, [["0", "2", "4", "6", "8"], ["1", "3", "5", "7", "9"]])

    def test_round_robin_among_three_consumers_on_one_channel(self):
        queue = self.queue()
        inboxes = [Inbox(), Inbox(), Inbox()]
        for inbox in inboxes:
            self.channel.basic_consume(queue, inbox, auto_ack=True)
        self.publish(queue, range(9))
        pump_until(self.connection, lambda: sum(map(len, inboxes)) == 9)
        self.assertEqual(sorted(inbox.bodies for inbox in inboxes),
                         [["0", "3", "6"], ["1", "4", "7"], ["2", "5", "8"]])

    def deliver_one_by_one(self, queue, bodies, inboxes):
        for body in bodies:
            expected = sum(map(len, inboxes)) + 1
            self.publish(queue, [body])
            pump_until(self.connection, lambda: sum(map(len, inboxes)) == expected)

    def test_a_consumer_added_later_waits_behind_the_one_just_served(self):
        # RabbitMQ's round-robin is a queue: the consumer served goes to the back, and so does
        # one added, behind it (found by tests/diff).
        queue = self.queue()
        first, second = Inbox(), Inbox()
        self.channel.basic_consume(queue, first, auto_ack=True)
        self.deliver_one_by_one(queue, ["0"], [first, second])
        self.channel.basic_consume(queue, second, auto_ack=True)
        self.deliver_one_by_one(queue, ["1", "2", "3"], [first, second])
        self.assertEqual((first.bodies, second.bodies), (["0", "1", "3"], ["2"]))

    def test_a_consumer_that_gets_credit_back_goes_to_the_back(self):
        queue = self.queue()
        inboxes = [Inbox(), Inbox(), Inbox()]
        channels = [self.connection.channel() for _ in inboxes]
        for channel, inbox in zip(channels, inboxes):
            channel.basic_qos(prefetch_count=1)
            channel.basic_consume(queue, inbox)
        self.deliver_one_by_one(queue, ["0", "1", "2"], inboxes)
        self.publish(queue, ["3", "4"])  # nobody has credit: all three are set aside
        pump(self.connection, self.QUIET)
        for index in (2, 0, 1):  # credit comes back in this order, and so they take turns
            channels[index].basic_ack(inboxes[index].deliveries[0][0].delivery_tag)
            pump(self.connection, self.QUIET)
        self.assertEqual([inbox.bodies for inbox in inboxes], [["0", "4"], ["1"], ["2", "3"]])

    def test_1000_messages_arrive_in_publish_order(self):
        queue = self.queue()
        self.publish(queue, range(1000))
        inbox = Inbox(ack=True)
        self.channel.basic_qos(prefetch_count=50)
        self.channel.basic_consume(queue, inbox)
        pump_until(self.connection, lambda: len(inbox) == 1000, timeout=20)
        self.assertEqual(inbox.bodies, [str(n) for n in range(1000)])
        self.assertEqual([m.delivery_tag for m, _, _ in inbox.deliveries], list(range(1, 1001)))

    def test_requeued_messages_return_to_their_original_position_marked_redelivered(self):
        queue = self.queue()
        self.publish(queue, range(1, 6))
        tags = [self.channel.basic_get(queue)[0].delivery_tag for _ in range(3)]
        self.channel.basic_reject(tags[2], requeue=True)  # "3" first, then "1": order by origin
        self.channel.basic_nack(tags[0], requeue=True)
        got = self.drain(queue)
        self.assertEqual([(b.decode(), m.redelivered) for m, _, b in got],
                         [("1", True), ("3", True), ("4", False), ("5", False)])
        self.channel.basic_nack(tags[1], requeue=True)
        got = self.drain(queue)
        self.assertEqual([(b.decode(), m.redelivered) for m, _, b in got], [("2", True)])

    def test_nack_multiple_requeues_every_delivery_up_to_the_tag(self):
        queue = self.queue()
        self.publish(queue, range(1, 5))
        tags = [self.channel.basic_get(queue)[0].delivery_tag for _ in range(3)]
        self.channel.basic_nack(tags[1], multiple=True, requeue=True)
        got = self.drain(queue)
        self.assertEqual([(b.decode(), m.redelivered) for m, _, b in got],
                         [("1", True), ("2", True), ("4", False)])
        self.channel.basic_ack(tags[2])  # "3" is still unacked on this channel

    def test_reject_without_requeue_discards_the_message(self):
        queue = self.queue()
        self.publish(queue, ["a", "b"])
        method, _, _ = self.channel.basic_get(queue)
        self.channel.basic_reject(method.delivery_tag, requeue=False)
        self.assertEqual(self.drain_bodies(queue), ["b"])

    def test_requeued_message_is_redelivered_to_a_consumer(self):
        queue = self.queue()
        self.publish(queue, ["only"])
        inbox = Inbox()
        self.channel.basic_consume(queue, inbox)
        pump_until(self.connection, lambda: len(inbox) == 1)
        self.channel.basic_nack(inbox.deliveries[0][0].delivery_tag, requeue=True)
        pump_until(self.connection, lambda: len(inbox) == 2)
        self.assertEqual(inbox.bodies, ["only", "only"])
        self.assertEqual(inbox.redelivered, [False, True])
        self.assertNotEqual(inbox.deliveries[0][0].delivery_tag,
                            inbox.deliveries[1][0].delivery_tag)

    def test_unacked_messages_return_in_order_when_their_channel_closes(self):
        queue = self.queue()
        self.publish(queue, range(1, 9))
        consumer_channel = self.connection.channel()
        for _ in range(5):
            consumer_channel.basic_get(queue)
        self.assertEqual(self.message_count(queue), 3)
        consumer_channel.close()
        got = self.drain(queue)
        self.assertEqual([b.decode() for _, _, b in got], [str(n) for n in range(1, 9)])
        self.assertEqual([m.redelivered for m, _, _ in got], [True] * 5 + [False] * 3)

    def test_unacked_messages_return_when_the_consumer_connection_closes(self):
        queue = self.shared_queue()
        self.publish(queue, range(3))
        other = connect()
        inbox = Inbox()
        other.channel().basic_consume(queue, inbox)
        pump_until(other, lambda: len(inbox) == 3)
        other.close()
        got = self.drain(queue)
        self.assertEqual([(b.decode(), m.redelivered) for m, _, b in got],
                         [("0", True), ("1", True), ("2", True)])


class GetRecoverPurgeDeleteTest(MessagingTestCase):
    def test_get_ok_counts_the_messages_left_and_get_empty_ends(self):
        queue = self.queue()
        self.publish(queue, ["a", "b", "c"])
        counts = []
        while True:
            method, _, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            counts.append((body.decode(), method.message_count, method.redelivered,
                           method.exchange, method.routing_key))
        self.assertEqual(counts, [("a", 2, False, "", queue), ("b", 1, False, "", queue),
                                  ("c", 0, False, "", queue)])

    def test_get_without_ack_leaves_the_message_unacked_not_ready(self):
        queue = self.queue()
        self.publish(queue, ["a"])
        method, _, _ = self.channel.basic_get(queue)
        self.assertEqual(self.message_count(queue), 0)
        self.assertEqual(self.channel.basic_get(queue), (None, None, None))
        self.channel.basic_ack(method.delivery_tag)

    def test_recover_redelivers_unacked_messages_to_the_consumer(self):
        queue = self.queue()
        self.publish(queue, ["a", "b", "c"])
        inbox = Inbox()
        self.channel.basic_consume(queue, inbox)
        pump_until(self.connection, lambda: len(inbox) == 3)
        self.channel.basic_ack(inbox.deliveries[1][0].delivery_tag)
        self.channel.basic_recover(requeue=True)
        pump_until(self.connection, lambda: len(inbox) == 5)
        pump(self.connection, self.QUIET)
        self.assertEqual(inbox.bodies, ["a", "b", "c", "a", "c"])
        self.assertEqual(inbox.redelivered, [False, False, False, True, True])

    def test_recover_puts_basic_get_deliveries_back_in_the_queue(self):
        queue = self.queue()
        self.publish(queue, ["a", "b"])
        self.channel.basic_get(queue)
        self.channel.basic_recover(requeue=True)
        got = self.drain(queue)
        self.assertEqual([(b.decode(), m.redelivered) for m, _, b in got],
                         [("a", True), ("b", False)])

    def test_purge_returns_the_ready_count_and_keeps_unacked_messages(self):
        queue = self.queue()
        self.publish(queue, range(5))
        getter = self.connection.channel()
        getter.basic_get(queue)
        getter.basic_get(queue)
        self.assertEqual(self.channel.queue_purge(queue).method.message_count, 3)
        self.assertEqual(self.message_count(queue), 0)
        getter.close()
        self.assertEqual(self.drain_bodies(queue), ["0", "1"])

    def test_delete_returns_the_message_count(self):
        queue = self.shared_queue()
        self.publish(queue, range(4))
        self.assertEqual(self.channel.queue_delete(queue).method.message_count, 4)
        self.assertQueueMissing(queue)

    def test_declare_ok_reports_ready_messages_and_consumers(self):
        queue = self.queue(name=unique("counted"))
        self.publish(queue, range(5))
        self.channel.basic_get(queue)  # one unacked: not counted
        declare_ok = self.channel.queue_declare(queue, passive=True).method
        self.assertEqual((declare_ok.queue, declare_ok.message_count, declare_ok.consumer_count),
                         (queue, 4, 0))
        consumer_channel = self.connection.channel()
        consumer_channel.basic_qos(prefetch_count=1)
        inboxes = [Inbox(), Inbox()]
        for inbox in inboxes:
            consumer_channel.basic_consume(queue, inbox)
        pump_until(self.connection, lambda: len(inboxes[0]) + len(inboxes[1]) == 2)
        declare_ok = self.channel.queue_declare(queue, exclusive=True).method  # active redeclare
        self.assertEqual((declare_ok.message_count, declare_ok.consumer_count), (2, 2))


# ---------------------------------------------------------------------------------------------
# Queue lifetimes and cancel notification


class QueueLifetimeTest(MessagingTestCase):
    def test_auto_delete_queue_lives_until_its_last_consumer_cancels(self):
        queue = unique("auto-delete")
        self.channel.queue_declare(queue, auto_delete=True)
        time.sleep(0.2)
        self.assertEqual(self.message_count(queue), 0)  # never consumed: not deleted
        consumer_channel = self.connection.channel()
        first = consumer_channel.basic_consume(queue, Inbox())
        second = consumer_channel.basic_consume(queue, Inbox())
        consumer_channel.basic_cancel(first)
        self.assertEqual(self.channel.queue_declare(queue, passive=True).method.consumer_count, 1)
        consumer_channel.basic_cancel(second)
        self.assertQueueMissing(queue)

    def test_auto_delete_queue_goes_when_its_consumer_channel_closes(self):
        queue = unique("auto-delete")
        self.channel.queue_declare(queue, auto_delete=True)
        consumer_channel = self.connection.channel()
        consumer_channel.basic_consume(queue, Inbox())
        consumer_channel.close()
        self.assertQueueMissing(queue)

    def test_exclusive_queue_lives_with_its_connection_not_its_channel(self):
        owner = connect()
        owner_channel = owner.channel()
        queue = owner_channel.queue_declare(unique("excl"), exclusive=True).method.queue
        owner_channel.close()
        self.assertEqual(owner.channel().queue_declare(queue, passive=True).method.queue, queue)
        owner.close()
        self.assertQueueMissing(queue)

    def test_x_expires_deletes_an_unused_queue(self):
        queue = unique("expires")
        self.channel.queue_declare(queue, arguments={"x-expires": 300})
        self.assertEqual(self.message_count(queue), 0)
        time.sleep(0.8)
        self.assertQueueMissing(queue)

    def test_x_expires_spares_a_queue_with_a_consumer(self):
        queue = unique("expires")
        self.channel.queue_declare(queue, arguments={"x-expires": 200})
        consumer_channel = self.connection.channel()
        tag = consumer_channel.basic_consume(queue, Inbox())
        pump(self.connection, 0.6)
        self.assertEqual(self.channel.queue_declare(queue, passive=True).method.consumer_count, 1)
        consumer_channel.basic_cancel(tag)
        time.sleep(0.6)
        self.assertQueueMissing(queue)

    def test_deleting_a_consumed_queue_sends_basic_cancel_to_the_consumer(self):
        queue = self.shared_queue()
        consumer_channel = self.connection.channel()
        cancels = []
        consumer_channel.add_on_cancel_callback(cancels.append)
        tag = consumer_channel.basic_consume(queue, Inbox())
        self.channel.queue_delete(queue)
        pump_until(self.connection, lambda: cancels)
        self.assertIsInstance(cancels[0].method, pika.spec.Basic.Cancel)
        self.assertEqual(cancels[0].method.consumer_tag, tag)
        self.assertTrue(consumer_channel.is_open)
        consumer_channel.queue_declare("", exclusive=True)  # the channel still works


# ---------------------------------------------------------------------------------------------
# Returns, confirms, transactions


class ReturnConfirmTest(MessagingTestCase):
    def test_mandatory_unroutable_message_comes_back_as_basic_return_312(self):
        returned = []
        self.channel.add_on_return_callback(
            lambda ch, method, properties, body: returned.append((method, properties, body)))
        key = unique("nobody")
        self.channel.basic_publish("amq.direct", key, b"lost", pika.BasicProperties(
            message_id="m1", headers={"h": "v"}), mandatory=True)
        pump_until(self.connection, lambda: returned)
        method, properties, body = returned[0]
        self.assertEqual((method.reply_code, method.reply_text, method.exchange,
                          method.routing_key), (312, "NO_ROUTE", "amq.direct", key))
        self.assertEqual((properties.message_id, properties.headers, body),
                         ("m1", {"h": "v"}, b"lost"))

    def test_mandatory_routable_message_is_not_returned(self):
        returned = []
        self.channel.add_on_return_callback(lambda *args: returned.append(args))
        queue = self.queue()
        self.channel.basic_publish("", queue, b"kept", mandatory=True)
        pump(self.connection, self.QUIET)
        self.assertEqual(returned, [])
        self.assertEqual(self.drain_bodies(queue), ["kept"])

    def test_mandatory_unroutable_with_confirms_raises_unroutable_error(self):
        self.channel.confirm_delivery()
        with self.assertRaises(pika.exceptions.UnroutableError) as caught:
            self.channel.basic_publish("amq.direct", unique("nobody"), b"x", mandatory=True)
        self.assertEqual(len(caught.exception.messages), 1)
        self.assertEqual(caught.exception.messages[0].method.reply_code, 312)
        self.assertEqual(caught.exception.messages[0].body, b"x")

    def test_unroutable_message_without_mandatory_is_confirmed(self):
        self.channel.confirm_delivery()
        self.channel.basic_publish("amq.direct", unique("nobody"), b"x")  # raises on nack

    def test_1000_confirmed_publishes_are_all_acked(self):
        queue = self.queue()
        self.channel.confirm_delivery()
        for n in range(1000):
            self.channel.basic_publish("", queue, str(n).encode())  # raises on nack/return
        self.assertEqual(self.message_count(queue), 1000)

    def test_1000_pipelined_publishes_are_acked_with_increasing_tags(self):
        with RawConnection() as raw:
            raw.handshake()
            raw.open_channel(1)
            raw.send(method_frame(1, QUEUE_DECLARE, declare_queue_args()))
            queue = raw.read_method(QUEUE_DECLARE_OK).args.shortstr()
            raw.send(method_frame(1, CONFIRM_SELECT, octet(0)))
            raw.read_method(CONFIRM_SELECT_OK)
            raw.send(b"".join(publish_frames(1, "", queue, str(n).encode())
                              for n in range(1000)))
            confirmed, last = 0, 0
            while confirmed < 1000:
                f = raw.read_method()
                self.assertEqual(f.method, BASIC_ACK, "expected basic.ack, got %r" % f)
                tag, multiple = f.args.longlong(), f.args.octet() & 1
                self.assertGreater(tag, last)
                confirmed = tag if multiple else confirmed + 1
                if not multiple:
                    self.assertEqual(tag, confirmed, "single ack skipped a tag")
                last = tag
            self.assertEqual(last, 1000)
            raw.send(method_frame(1, QUEUE_DECLARE, declare_queue_args(queue, PASSIVE)))
            declare_ok = raw.read_method(QUEUE_DECLARE_OK).args
            declare_ok.shortstr()
            self.assertEqual(declare_ok.long(), 1000)
            raw.close_connection()


class TransactionTest(MessagingTestCase):
    def test_rolled_back_publishes_never_arrive_and_committed_ones_do(self):
        queue = self.queue()
        tx = self.connection.channel()
        tx.tx_select()
        self.publish(queue, ["rolled-back-1", "rolled-back-2"], channel=tx)
        self.assertEqual(self.message_count(queue), 0)
        tx.tx_rollback()
        self.publish(queue, ["committed"], channel=tx)
        self.assertEqual(self.message_count(queue), 0)  # invisible until commit
        tx.tx_commit()
        self.assertEqual(self.drain_bodies(queue), ["committed"])

    def ack_in_a_transaction(self):
        """A queue holding one message "m", fetched and acked on a new channel in a transaction:
        (queue, that channel, the get's method)."""
        queue = self.queue()
        self.publish(queue, ["m"])
        tx = self.connection.channel()
        tx.tx_select()
        method, _, _ = tx.basic_get(queue)
        tx.basic_ack(method.delivery_tag)
        return queue, tx, method

    def test_acks_in_a_rolled_back_transaction_are_not_applied(self):
        queue, tx, method = self.ack_in_a_transaction()
        tx.tx_rollback()
        self.assertEqual(self.message_count(queue), 0)  # still unacked, not requeued
        tx.close()  # so closing the channel requeues it
        got = self.drain(queue)
        self.assertEqual([(b, m.redelivered) for m, _, b in got], [(b"m", True)])

    def test_acks_in_a_committed_transaction_are_applied(self):
        queue, tx, method = self.ack_in_a_transaction()
        tx.tx_commit()
        tx.close()
        self.assertEqual(self.drain_bodies(queue), [])

    def test_an_ack_rolled_back_can_be_made_again(self):
        queue, tx, method = self.ack_in_a_transaction()
        tx.tx_rollback()
        tx.basic_ack(method.delivery_tag)  # outstanding again, so no 406
        tx.tx_commit()
        tx.close()
        self.assertEqual(self.drain_bodies(queue), [])

    def test_recover_leaves_what_the_transaction_acked(self):
        # RabbitMQ's basic.recover requeues its unacked list, which the transaction's ack left.
        queue = self.queue()
        self.publish(queue, ["acked", "unacked"])
        tx = self.connection.channel()
        tx.tx_select()
        first, _, _ = tx.basic_get(queue)
        tx.basic_get(queue)
        tx.basic_ack(first.delivery_tag)
        tx.basic_recover(requeue=True)
        tx.tx_commit()
        tx.close()
        self.assertEqual(self.drain_bodies(queue), ["unacked"])

    def test_uncommitted_ack_is_dropped_when_the_channel_closes(self):
        queue, tx, method = self.ack_in_a_transaction()
        tx.close()
        self.assertEqual(self.drain_bodies(queue), ["m"])


# ---------------------------------------------------------------------------------------------
# Names the broker makes up


class GeneratedNameTest(MessagingTestCase):
    """Server-named queues and generated consumer tags are amq.gen-/amq.ctag- and 128 random
    bits, as RabbitMQ makes them: no counter, no address, nothing another client can guess."""

    def test_server_named_queues_are_random(self):
        names = [self.channel.queue_declare("", exclusive=True).method.queue for _ in range(4)]
        assert_random_names(self, "amq.gen-", names)

    def test_generated_consumer_tags_are_random(self):
        # pika always names its consumers, so this speaks raw AMQP with an empty tag.
        with RawConnection() as raw:
            raw.handshake()
            raw.open_channel(1)
            raw.send(method_frame(1, QUEUE_DECLARE, declare_queue_args()))
            queue = raw.read_method(QUEUE_DECLARE_OK).args.shortstr()
            tags = []
            for _ in range(4):
                raw.send(method_frame(1, BASIC_CONSUME, consume_args(queue, "")))
                tags.append(raw.read_method(BASIC_CONSUME_OK).args.shortstr())
            # The direct reply-to consumer's tag too (it must not reveal the reply address).
            raw.open_channel(2)
            raw.send(method_frame(2, BASIC_CONSUME, consume_args("amq.rabbitmq.reply-to", "",
                                                                 no_ack=True)))
            tags.append(raw.read_method(BASIC_CONSUME_OK).args.shortstr())
            raw.close_connection()
        assert_random_names(self, "amq.ctag-", tags)


if __name__ == "__main__":
    unittest.main()
