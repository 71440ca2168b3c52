"""Paged durable queues (bounded memory) with the real broker and pika.

The broker runs with a small `queue_ram_messages`, so a durable queue keeps only that many ready
messages in memory and the rest (its "tail") on disk only. Every test checks what a client can
see: counts, order, bodies, properties, redelivered flags, TTL, length limits and purge across
the boundary between memory and disk, before and after restarts and a kill -9. The memory tests
check the broker's resident size with a backlog much larger than what it may keep in memory, by
count and by bytes (queue_ram_bytes).

Not runnable against an external broker: the tests set the broker's options and restart it.
"""

import os
import subprocess
import time
import unittest

import pika

import harness
import test_durability
from test_durability import RestartableBroker

RAM = 100  # ready messages a queue keeps in memory in these tests


def persistent(**kwargs):
    return pika.BasicProperties(delivery_mode=2, **kwargs)


@harness.skip_if_external("sets broker options and restarts the broker process")
class PagingTest(unittest.TestCase):
    def setUp(self):
        self.broker = RestartableBroker(extra_args=["--queue_ram_messages", str(RAM)]).start()
        self.conn = None

    def tearDown(self):
        if self.conn and self.conn.is_open:
            self.conn.close()
        self.broker.stop()

    def channel(self, confirm=True):
        if self.conn is None or not self.conn.is_open:
            self.conn = pika.BlockingConnection(self.broker.pika_parameters())
        ch = self.conn.channel()
        if confirm:
            ch.confirm_delivery()
        return ch

    def restart(self, kill=False):
        if self.conn and self.conn.is_open:
            self.conn.close()
        self.conn = None
        if kill:
            self.broker.sigkill()
            self.broker.relaunch()
        else:
            self.broker.graceful_restart()

    def publish(self, ch, queue, bodies, props=None):
        for body in bodies:
            ch.basic_publish("", queue, body, props or persistent())

    def count(self, ch, queue):
        return ch.queue_declare(queue, passive=True).method.message_count

    def drain(self, ch, queue, ack=True):
        """Consumes everything with prefetch 50 and returns [(body, redelivered, properties)]."""
        got = []
        ch.basic_qos(prefetch_count=50)
        for method, props, body in ch.consume(queue, auto_ack=not ack, inactivity_timeout=1.0):
            if method is None:
                break
            got.append((body, method.redelivered, props))
            if ack:
                ch.basic_ack(method.delivery_tag)
        ch.cancel()
        return got

    def test_order_bodies_and_properties_across_the_tail(self):
        ch = self.channel()
        ch.queue_declare("p-order", durable=True)
        bodies = [b"m-%04d-" % i + bytes([i % 256]) * (i % 300) for i in range(1000)]
        for i, body in enumerate(bodies):
            ch.basic_publish("", "p-order", body,
                             persistent(correlation_id="c%d" % i, headers={"i": i}, content_type="x/y"))
        self.assertEqual(self.count(ch, "p-order"), 1000)
        got = self.drain(ch, "p-order")
        self.assertEqual([g[0] for g in got], bodies)
        self.assertTrue(all(not g[1] for g in got))
        self.assertEqual([g[2].correlation_id for g in got], ["c%d" % i for i in range(1000)])
        self.assertEqual([g[2].headers for g in got], [{"i": i} for i in range(1000)])
        self.assertEqual(self.count(ch, "p-order"), 0)

    def test_basic_get_walks_the_tail_and_requeue_keeps_the_place(self):
        ch = self.channel()
        ch.queue_declare("p-get", durable=True)
        self.publish(ch, "p-get", [b"%d" % i for i in range(300)])
        first, _, body = ch.basic_get("p-get", auto_ack=False)
        self.assertEqual(body, b"0")
        seen = [body]
        for _ in range(149):
            method, _, body = ch.basic_get("p-get", auto_ack=True)
            seen.append(body)
        ch.basic_nack(first.delivery_tag, requeue=True)  # back to its place: the head
        method, _, body = ch.basic_get("p-get", auto_ack=True)
        self.assertEqual((body, method.redelivered), (b"0", True))
        rest = []
        while True:
            method, _, body = ch.basic_get("p-get", auto_ack=True)
            if method is None:
                break
            rest.append(body)
        self.assertEqual(seen + rest, [b"%d" % i for i in range(300)])

    def test_transient_messages_in_the_tail_are_served_but_do_not_survive_a_restart(self):
        ch = self.channel()
        ch.queue_declare("p-mixed", durable=True)
        bodies = [b"%d" % i for i in range(400)]
        for i, body in enumerate(bodies):
            ch.basic_publish("", "p-mixed", body, pika.BasicProperties(delivery_mode=2 if i % 2 else 1))
        self.assertEqual([g[0] for g in self.drain(ch, "p-mixed")], bodies)

        for i, body in enumerate(bodies):
            ch.basic_publish("", "p-mixed", body, pika.BasicProperties(delivery_mode=2 if i % 2 else 1))
        self.restart()
        ch = self.channel()
        got = self.drain(ch, "p-mixed")
        self.assertEqual([g[0] for g in got], [b for i, b in enumerate(bodies) if i % 2])
        self.assertTrue(all(g[2].delivery_mode == 2 for g in got))

    def test_kill_brings_back_the_tail_in_order_with_unacked_ones_redelivered(self):
        ch = self.channel()
        ch.queue_declare("p-kill", durable=True)
        self.publish(ch, "p-kill", [b"%d" % i for i in range(500)])
        held = [ch.basic_get("p-kill", auto_ack=False)[2] for _ in range(10)]  # delivered, not acked
        self.assertEqual(held, [b"%d" % i for i in range(10)])
        for _ in range(5):
            ch.basic_get("p-kill", auto_ack=True)  # 10..14 gone for good
        self.publish(ch, "p-kill", [b"sync"])  # confirmed: everything before it is on disk
        self.restart(kill=True)
        ch = self.channel()
        self.assertEqual(self.count(ch, "p-kill"), 10 + 485 + 1)
        got = self.drain(ch, "p-kill")
        expected = [(b"%d" % i, True) for i in range(10)] + [(b"%d" % i, False) for i in range(15, 500)]
        self.assertEqual([(g[0], g[1]) for g in got], expected + [(b"sync", False)])

    def test_purge_removes_the_tail_but_not_unacked_messages(self):
        ch = self.channel()
        ch.queue_declare("p-purge", durable=True)
        self.publish(ch, "p-purge", [b"%d" % i for i in range(500)])
        for _ in range(5):
            ch.basic_get("p-purge", auto_ack=False)
        self.assertEqual(ch.queue_purge("p-purge").method.message_count, 495)
        self.assertEqual(self.count(ch, "p-purge"), 0)
        self.publish(ch, "p-purge", [b"after"])
        ch.close()  # the five unacked ones return to the queue
        self.restart()
        ch = self.channel()
        got = self.drain(ch, "p-purge")
        self.assertEqual(sorted(g[0] for g in got), sorted([b"%d" % i for i in range(5)] + [b"after"]))

    def test_max_length_drop_head_counts_the_tail(self):
        ch = self.channel()
        ch.queue_declare("p-maxlen", durable=True, arguments={"x-max-length": 250})
        self.publish(ch, "p-maxlen", [b"%d" % i for i in range(700)])
        self.assertEqual(self.count(ch, "p-maxlen"), 250)
        self.assertEqual([g[0] for g in self.drain(ch, "p-maxlen")], [b"%d" % i for i in range(450, 700)])

    def test_reject_publish_counts_the_tail(self):
        ch = self.channel()
        ch.queue_declare("p-reject", durable=True, arguments={"x-max-length": 250, "x-overflow": "reject-publish"})
        self.publish(ch, "p-reject", [b"%d" % i for i in range(250)])
        with self.assertRaises(pika.exceptions.NackError):
            ch.basic_publish("", "p-reject", b"one too many", persistent())
        self.assertEqual(self.count(ch, "p-reject"), 250)

    def test_ttl_of_paged_messages_counts_from_publication(self):
        ch = self.channel()
        ch.queue_declare("p-ttl", durable=True, arguments={"x-message-ttl": 1500})
        self.publish(ch, "p-ttl", [b"%d" % i for i in range(400)])
        time.sleep(0.8)
        self.restart()  # the tail is read back after the restart: its clock still runs
        time.sleep(1.2)
        ch = self.channel()
        method, _, _ = ch.basic_get("p-ttl", auto_ack=True)
        self.assertIsNone(method)
        self.assertEqual(self.count(ch, "p-ttl"), 0)

    def test_fanout_to_paged_and_memory_queues(self):
        ch = self.channel()
        ch.exchange_declare("p-fan", "fanout", durable=True)
        ch.queue_declare("p-fan-durable", durable=True)
        ch.queue_declare("p-fan-transient", durable=False)
        ch.queue_bind("p-fan-durable", "p-fan")
        ch.queue_bind("p-fan-transient", "p-fan")
        bodies = [b"%d" % i for i in range(400)]
        for body in bodies:
            ch.basic_publish("p-fan", "", body, persistent())
        self.assertEqual([g[0] for g in self.drain(ch, "p-fan-durable")], bodies)
        self.assertEqual([g[0] for g in self.drain(ch, "p-fan-transient")], bodies)

    def test_deleting_a_paged_queue_leaves_nothing_behind(self):
        ch = self.channel()
        ch.queue_declare("p-del", durable=True)
        self.publish(ch, "p-del", [b"%d" % i for i in range(500)])
        self.assertEqual(ch.queue_delete("p-del").method.message_count, 500)
        ch.queue_declare("p-del", durable=True)
        self.restart()
        ch = self.channel()
        self.assertEqual(self.count(ch, "p-del"), 0)


class PagedCrashTest(test_durability.CrashTest):
    """The kill -9 crash test of test_durability with a queue that keeps only 20 messages in
    memory, so confirmed messages are often in the tail (on disk only) when the broker dies."""

    BROKER_ARGS = ["--queue_ram_messages", "20"]


@harness.skip_if_external("sets broker options and restarts the broker process")
class PagingBytesTest(unittest.TestCase):
    """queue_ram_bytes: a queue of large messages pages by the bytes it holds, not only by count."""

    def test_large_messages_page_by_bytes_and_come_back_in_order(self):
        broker = RestartableBroker(extra_args=["--queue_ram_bytes", str(1 << 20)]).start()
        try:
            conn = pika.BlockingConnection(broker.pika_parameters())
            ch = conn.channel()
            ch.confirm_delivery()
            ch.queue_declare("p-big", durable=True)
            bodies = [bytes([i]) * (100 * 1024 + i) for i in range(60)]  # 6 MiB: 1 MiB stays in memory
            for i, body in enumerate(bodies):
                ch.basic_publish("", "p-big", body, persistent(message_id=str(i)))
            self.assertEqual(ch.queue_declare("p-big", passive=True).method.message_count, 60)
            got = []
            for _ in range(25):  # basic.get walks into the tail, refilled a few messages at a time
                method, props, body = ch.basic_get("p-big", auto_ack=True)
                got.append((props.message_id, body))
            # A publish confirmed after them on the same channel makes those removals durable
            # (storage.md, The guarantee); without it the kill may bring them back, as RabbitMQ may.
            ch.queue_declare("p-marker", durable=True)
            ch.basic_publish("", "p-marker", b"after the gets", persistent())
            conn.close()
            broker.sigkill()
            broker.relaunch()
            conn = pika.BlockingConnection(broker.pika_parameters())
            ch = conn.channel()
            ch.basic_qos(prefetch_count=7)
            for method, props, body in ch.consume("p-big", inactivity_timeout=2.0):
                if method is None:
                    break
                got.append((props.message_id, body))
                ch.basic_ack(method.delivery_tag)
            conn.close()
            self.assertEqual([m for m, _ in got], [str(i) for i in range(60)])
            self.assertTrue(all(body == bodies[i] for i, (_, body) in enumerate(got)))
        finally:
            broker.stop()


def start_measurable(extra_args):
    """A broker whose RSS means what it means in a normal build: under AddressSanitizer freed
    memory sits in a quarantine, kept small here."""
    broker = RestartableBroker(extra_args=extra_args)
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    saved = os.environ["ASAN_OPTIONS"]
    os.environ["ASAN_OPTIONS"] = saved + ":quarantine_size_mb=8:malloc_context_size=2"
    try:
        return broker.start()
    finally:
        os.environ["ASAN_OPTIONS"] = saved


@harness.skip_if_external("reads the broker's resident memory")
class PagingMemoryTest(unittest.TestCase):
    """A backlog far larger than the in-memory limit costs the broker little memory."""

    COUNT = 100000
    SIZE = 1024

    def test_backlog_stays_on_disk(self):
        perf = os.environ.get("WARREN_PERF_BIN")
        if not perf:
            self.skipTest("WARREN_PERF_BIN (the warren-perf client) is not set; ctest sets it")
        broker = start_measurable(["--queue_ram_messages", "1000"])
        try:
            base = harness.vm_rss_kib(broker.process.pid)
            url = broker.url
            subprocess.run([perf, "--uri", url, "--producers", "1", "--consumers", "0", "--count", str(self.COUNT),
                            "--size", str(self.SIZE), "--persistent", "--durable", "--confirm", "500",
                            "--queue", "p-mem", "--max-time", "240"],
                           check=True, stdout=subprocess.DEVNULL, timeout=300)
            grown = harness.vm_rss_kib(broker.process.pid) - base
            bodies_kib = self.COUNT * self.SIZE // 1024
            conn = pika.BlockingConnection(broker.pika_parameters())
            ch = conn.channel()
            self.assertEqual(ch.queue_declare("p-mem", durable=True, passive=True).method.message_count, self.COUNT)
            conn.close()
            # 1000 bodies in memory plus the store's index of the rest: far below the bodies'
            # own size (about 100 MiB), which a broker keeping everything in memory would add
            # (half of it leaves room for the sanitizer build's redzones).
            self.assertLess(grown, bodies_kib // 2,
                            "RSS grew by %d KiB for %d KiB of message bodies" % (grown, bodies_kib))
            done = subprocess.run([perf, "--uri", url, "--producers", "0", "--consumers", "1", "--count",
                                   str(self.COUNT), "--durable", "--prefetch", "200", "--multi-ack", "50",
                                   "--queue", "p-mem", "--max-time", "240"],
                                  check=True, stdout=subprocess.PIPE, timeout=300, text=True)
            result = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
            self.assertTrue(result and " delivered=%d " % self.COUNT in result[-1], result)
        finally:
            broker.stop()

    def test_a_backlog_of_large_messages_stays_on_disk(self):
        """400 messages of 256 KiB (100 MiB) are far under queue_ram_messages: queue_ram_bytes
        (4 MiB here) is what keeps them on disk."""
        perf = os.environ.get("WARREN_PERF_BIN")
        if not perf:
            self.skipTest("WARREN_PERF_BIN (the warren-perf client) is not set; ctest sets it")
        count, size = 400, 256 * 1024
        broker = start_measurable(["--queue_ram_bytes", str(4 << 20)])
        try:
            base = harness.vm_rss_kib(broker.process.pid)
            subprocess.run([perf, "--uri", broker.url, "--producers", "1", "--consumers", "0", "--count", str(count),
                            "--size", str(size), "--persistent", "--durable", "--confirm", "20",
                            "--queue", "p-large", "--max-time", "240"],
                           check=True, stdout=subprocess.DEVNULL, timeout=300)
            grown = harness.vm_rss_kib(broker.process.pid) - base
            bodies_kib = count * size // 1024
            self.assertLess(grown, bodies_kib // 2,
                            "RSS grew by %d KiB for %d KiB of message bodies" % (grown, bodies_kib))
            done = subprocess.run([perf, "--uri", broker.url, "--producers", "0", "--consumers", "1", "--count",
                                   str(count), "--durable", "--prefetch", "20", "--multi-ack", "5",
                                   "--queue", "p-large", "--max-time", "240"],
                                  check=True, stdout=subprocess.PIPE, timeout=300, text=True)
            result = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
            self.assertTrue(result and " delivered=%d " % count in result[-1], result)
        finally:
            broker.stop()


if __name__ == "__main__":
    unittest.main()
