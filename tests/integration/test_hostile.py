"""Hostile topologies: inputs that once crashed or froze the broker, each against a broker of
its own (a crash or a freeze must not take the next test down with it).

- Re-entrant settles: a nack/reject without requeue dead-letters the message, the dead-letter
  queue is dispatched at once, and when the same channel consumes from it with its
  unacknowledged ring full (64 deliveries), the ring grows while the settle is still using it.
  The same shape on basic.recover and on a requeue into a queue with x-max-length.

Each test ends by checking that a new client still gets through the handshake and that the
broker exits cleanly (status 0, no sanitizer report) on SIGTERM.
"""

import time
import unittest

import pika

import harness
from test_messaging_support import unique

RING_SLOTS = 64  # the channel's unacked ring starts with this many slots


@harness.skip_if_external("each test owns its broker process")
class HostileTestCase(unittest.TestCase):
    def setUp(self):
        self.broker = harness.Broker().start()
        self.addCleanup(self.broker.stop)
        self.connection = self.connect()
        self.addCleanup(self.close_quietly, self.connection)
        self.channel = self.connection.channel()

    def connect(self):
        # stack_timeout: a broker that never sends connection.start fails the test in 5 s.
        return pika.BlockingConnection(self.broker.pika_parameters(stack_timeout=5))

    @staticmethod
    def close_quietly(connection):
        try:
            if connection.is_open:
                connection.close()
        except Exception:  # a broker that died or froze: stop() reports it
            pass

    def assert_alive(self):
        """The broker still runs and a new client gets through the handshake in time."""
        harness.assert_broker_alive(self, self.broker)
        connection = self.connect()
        try:
            self.assertTrue(connection.channel().is_open)
        finally:
            connection.close()

    def declare(self, prefix, **arguments):
        name = unique(prefix)
        self.channel.queue_declare(name, arguments=arguments or None)
        return name

    def fanout(self, prefix):
        name = unique(prefix)
        self.channel.exchange_declare(name, "fanout")
        return name

    def message_count(self, queue):
        return self.channel.queue_declare(queue, passive=True).method.message_count

    def pump_until(self, predicate, seconds=5):
        deadline = time.monotonic() + seconds
        while not predicate() and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.05)
        return predicate()

    def fill_ring_with_dead_letter_consumer(self, **source_arguments):
        """A source queue whose dead letters go to dlq, both consumed by self.channel, with
        RING_SLOTS unacknowledged deliveries of the source outstanding (the ring is full)."""
        dlq = self.declare("hostile-dlq")
        source = self.declare("hostile-src", **{"x-dead-letter-exchange": "",
                                                "x-dead-letter-routing-key": dlq},
                              **source_arguments)
        dead, deliveries = [], []
        self.channel.basic_consume(dlq, lambda ch, method, props, body: dead.append(body))
        # Consuming first: with x-max-length 0 a message reaches only a waiting consumer.
        self.channel.basic_consume(source, lambda ch, method, props, body: deliveries.append(method))
        for i in range(RING_SLOTS):
            self.channel.basic_publish("", source, b"m%d" % i)
        self.assertTrue(self.pump_until(lambda: len(deliveries) == RING_SLOTS), len(deliveries))
        self.assertEqual(dead, [])
        return source, dlq, dead, deliveries

    # ---- re-entrant settles (the unacked ring grows under a settle) ----

    def test_reject_dead_letters_to_a_queue_this_channel_consumes_with_a_full_ring(self):
        _, _, dead, deliveries = self.fill_ring_with_dead_letter_consumer()
        self.channel.basic_reject(deliveries[0].delivery_tag, requeue=False)
        self.assertTrue(self.pump_until(lambda: dead == [b"m0"]), dead)
        # The ring still tracks every delivery: the rest can be acknowledged one by one.
        for d in deliveries[1:]:
            self.channel.basic_ack(d.delivery_tag)
        self.assert_alive()

    def test_nack_multiple_dead_letters_with_a_full_ring(self):
        source, _, dead, deliveries = self.fill_ring_with_dead_letter_consumer()
        self.channel.basic_nack(deliveries[9].delivery_tag, multiple=True, requeue=False)
        self.assertTrue(self.pump_until(lambda: len(dead) == 10), len(dead))
        self.assertEqual(sorted(dead), sorted(b"m%d" % i for i in range(10)))
        self.channel.basic_ack(0, multiple=True)
        self.assertTrue(self.pump_until(lambda: self.message_count(source) == 0))
        self.assert_alive()

    def test_requeue_into_a_max_length_queue_dead_letters_with_a_full_ring(self):
        # x-max-length 0: every requeued message is dropped (maxlen) and dead-lettered.
        _, _, dead, deliveries = self.fill_ring_with_dead_letter_consumer(**{"x-max-length": 0})
        self.channel.basic_nack(deliveries[0].delivery_tag, requeue=True)
        self.assertTrue(self.pump_until(lambda: dead == [b"m0"]), dead)
        self.assert_alive()

    def test_recover_dead_letters_with_a_full_ring(self):
        _, _, dead, _ = self.fill_ring_with_dead_letter_consumer(**{"x-max-length": 0})
        self.channel.basic_recover(requeue=True)
        self.assertTrue(self.pump_until(lambda: len(dead) == RING_SLOTS), len(dead))
        self.assertEqual(sorted(dead), sorted(b"m%d" % i for i in range(RING_SLOTS)))
        # Dead letters delivered while recover ran are still tracked, and can be acknowledged.
        self.channel.basic_ack(0, multiple=True)
        self.assert_alive()


if __name__ == "__main__":
    unittest.main()
