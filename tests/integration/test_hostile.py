"""Hostile topologies: inputs that once crashed or froze the broker, each against a broker of
its own (a crash or a freeze must not take the next test down with it).

- Re-entrant settles: a nack/reject without requeue dead-letters the message, the dead-letter
  queue is dispatched at once, and when the same channel consumes from it with its
  unacknowledged ring full (64 deliveries), the ring grows while the settle is still using it.
  The same shape on basic.recover and on a requeue into a queue with x-max-length.
- Dead-letter cycles: x-max-length 0 (or TTL) queues whose dead-letter exchange routes back to
  them. RabbitMQ drops a message that would be dead-lettered into a queue already in its
  x-death path when no death on that path was a rejection; cycles with a client rejecting in
  them go on.

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
        self.frozen = False
        self.addCleanup(self.stop_broker)
        self.connection = self.connect()
        self.addCleanup(self.close_quietly, self.connection)
        self.channel = self.connection.channel()

    def connect(self, timeout=5):
        # stack_timeout: a broker that never sends connection.start fails the test in time.
        return pika.BlockingConnection(self.broker.pika_parameters(stack_timeout=timeout))

    def responds(self):
        """connection.start within 3 s to a new socket (a frozen loop accepts nothing)."""
        try:
            with harness.RawConnection(self.broker, timeout=3) as raw:
                raw.read_start()
            return True
        except Exception:
            return False

    def close_quietly(self, connection):
        # pika's close waits for close-ok without a deadline: never ask a frozen broker.
        if self.broker.process.poll() is None and not self.responds():
            self.frozen = True
            return
        try:
            if connection.is_open:
                connection.close()
        except Exception:  # a broker that died: stop_broker reports it
            pass

    def stop_broker(self):
        if self.frozen:
            self.broker.kill()
            self.fail("the broker's loop froze (no connection.start in 3 s)\n" + self.broker.stderr_text()[-5000:])
        self.broker.stop()

    def assert_alive(self, timeout=5):
        """The broker still runs and a new client gets through the handshake in time."""
        if self.broker.process.poll() is not None:
            self.fail("broker process died (status %d)\n%s"
                      % (self.broker.process.returncode, self.broker.stderr_text()[-20000:]))
        connection = self.connect(timeout)
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

    # ---- dead-letter cycles ----

    def test_max_length_zero_queue_dead_lettering_to_itself_drops_the_message(self):
        dlx = self.fanout("hostile-dlx")
        queue = self.declare("hostile-self", **{"x-max-length": 0, "x-dead-letter-exchange": dlx})
        self.channel.queue_bind(queue, dlx)
        self.channel.basic_publish("", queue, b"once")
        self.assert_alive()
        self.assertEqual(self.message_count(queue), 0)

    def test_two_queue_max_length_cycle_drops_the_message(self):
        dlx_a, dlx_b = self.fanout("hostile-dlx-a"), self.fanout("hostile-dlx-b")
        a = self.declare("hostile-a", **{"x-max-length": 0, "x-dead-letter-exchange": dlx_b})
        b = self.declare("hostile-b", **{"x-max-length": 0, "x-dead-letter-exchange": dlx_a})
        self.channel.queue_bind(a, dlx_a)
        self.channel.queue_bind(b, dlx_b)
        started = time.monotonic()
        self.channel.basic_publish("", a, b"once")
        self.assert_alive()
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(self.message_count(a) + self.message_count(b), 0)

    def test_expired_message_dead_lettered_back_to_its_queue_is_dropped_after_one_cycle(self):
        dlx = self.fanout("hostile-ttl-dlx")
        queue = self.declare("hostile-ttl", **{"x-message-ttl": 50, "x-dead-letter-exchange": dlx})
        self.channel.queue_bind(queue, dlx)
        self.channel.basic_publish("", queue, b"once")
        # Without cycle detection it would come back every 50 ms forever.
        time.sleep(0.4)
        self.assertEqual(self.message_count(queue), 0)
        self.assert_alive()

    def test_ttl_zero_queue_dead_lettering_to_itself_drops_the_message(self):
        dlx = self.fanout("hostile-ttl0-dlx")
        queue = self.declare("hostile-ttl0", **{"x-message-ttl": 0, "x-dead-letter-exchange": dlx})
        self.channel.queue_bind(queue, dlx)
        self.channel.basic_publish("", queue, b"once")
        self.assert_alive()
        self.assertEqual(self.message_count(queue), 0)

    def test_fanout_of_max_length_zero_queues_is_bounded(self):
        # Every queue dead-letters to a fanout bound to all of them: without a bound on the work
        # one publish causes, the simple paths through 12 queues number in the hundreds of
        # millions even with cycle detection.
        dlx = self.fanout("hostile-mesh")
        queues = [self.declare("hostile-mesh-q", **{"x-max-length": 0, "x-dead-letter-exchange": dlx})
                  for _ in range(12)]
        for q in queues:
            self.channel.queue_bind(q, dlx)
        started = time.monotonic()
        self.channel.basic_publish("", queues[0], b"once")
        # The budget's pass takes a fraction of a second in a release build, some seconds
        # under the sanitizers; without it, hours.
        self.assert_alive(timeout=30)
        self.assertLess(time.monotonic() - started, 30)
        self.assertTrue(any("dead letters from queue" in line for line in self.broker.stderr_text().splitlines()),
                        "the refused dead letters are logged")

    def test_rejected_cycle_goes_on(self):
        # A client in the loop: RabbitMQ lets the message cycle, x-death counting the rounds.
        dlx = self.fanout("hostile-rej-dlx")
        queue = self.declare("hostile-rej", **{"x-dead-letter-exchange": dlx})
        self.channel.queue_bind(queue, dlx)
        self.channel.basic_publish("", queue, b"again")
        counts = []

        def on_message(ch, method, props, body):
            deaths = (props.headers or {}).get("x-death") or [{"count": 0}]
            counts.append(deaths[0]["count"])
            ch.basic_reject(method.delivery_tag, requeue=False)

        self.channel.basic_consume(queue, on_message)
        self.assertTrue(self.pump_until(lambda: len(counts) >= 4), counts)
        self.assertEqual(counts[:4], [0, 1, 2, 3])
        self.assert_alive()

    def test_retry_through_a_ttl_queue_goes_on(self):
        # The usual retry pattern: rejected to a wait queue whose TTL sends it back. The path
        # holds a rejection, so it is not a fully automatic cycle.
        work_dlx, wait_dlx = self.fanout("hostile-work-dlx"), self.fanout("hostile-wait-dlx")
        work = self.declare("hostile-work", **{"x-dead-letter-exchange": wait_dlx})
        wait = self.declare("hostile-wait", **{"x-message-ttl": 10, "x-dead-letter-exchange": work_dlx})
        self.channel.queue_bind(work, work_dlx)
        self.channel.queue_bind(wait, wait_dlx)
        self.channel.basic_publish("", work, b"retry")
        seen = []

        def on_message(ch, method, props, body):
            seen.append(body)
            ch.basic_reject(method.delivery_tag, requeue=False)

        self.channel.basic_consume(work, on_message)
        self.assertTrue(self.pump_until(lambda: len(seen) >= 3), seen)
        self.assert_alive()


if __name__ == "__main__":
    unittest.main()
