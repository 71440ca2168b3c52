"""Durability with the real broker: what survives a restart and a kill -9.

- A graceful restart keeps durable exchanges, queues (with arguments), bindings and persistent
  messages in durable queues, with their properties; transient messages, non-durable queues and
  exclusive queues are gone.
- The crash test runs a confirm-mode publisher that also consumes and acks on the same channel,
  kills the broker with SIGKILL at a random moment, restarts it on the same data directory and
  checks the invariants:
    * every message whose publish was confirmed and that was not acked is there exactly once;
    * no message acked before a later publish was confirmed comes back (the broker handles one
      channel's frames in order and syncs batches in order, so that ack was durable);
    * messages acked after the last confirm, or published without a confirm yet, may or may not
      be there, but never twice.
  Rounds: $WARREN_CRASH_ROUNDS (default 5); run with a large value by hand for a long soak.

Not runnable against an external broker: the test must own, kill and restart the process.
"""

import os
import random
import shutil
import signal
import subprocess
import threading
import time
import unittest

import pika

import harness


class RestartableBroker(harness.Broker):
    """A harness broker that can be killed and started again on the same port and data dir."""

    def relaunch(self, timeout=15.0):
        binary = harness.broker_binary()
        self._stderr_file = open(self.stderr_path, "ab")
        command = [binary, "--bind", "127.0.0.1", "--port", str(self.port),
                   "--data-dir", os.path.join(self.data_dir, "data"),
                   "--management_port", "0", "--prometheus_port", "0"] + self.extra_args
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._stderr_file,
                                        stderr=self._stderr_file, env=env)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError("broker exited with %d on restart\n%s"
                                     % (self.process.returncode, self.stderr_text()[-5000:]))
            try:
                import socket
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("broker did not come back\n" + self.stderr_text()[-5000:])
                time.sleep(0.05)

    def sigkill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._stderr_file.close()
        self._stderr_file = None

    def graceful_restart(self):
        status = self.terminate()
        if status != 0:
            raise AssertionError("exit status %s on SIGTERM\n%s" % (status, self.stderr_text()[-5000:]))
        self._stderr_file.close()
        self._stderr_file = None
        self.relaunch()


@harness.skip_if_external("kills and restarts the broker process")
class RestartTest(unittest.TestCase):
    def setUp(self):
        self.broker = RestartableBroker().start()

    def tearDown(self):
        self.broker.stop()

    def connect(self):
        return pika.BlockingConnection(self.broker.pika_parameters())

    def test_durable_definitions_and_persistent_messages_survive_restart(self):
        conn = self.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare("orders", "topic", durable=True)
        ch.exchange_declare("transient-x", "fanout", durable=False)
        ch.queue_declare("durable-q", durable=True, arguments={"x-max-priority": 5, "x-message-ttl": 600000})
        ch.queue_declare("transient-q", durable=False)
        ch.queue_bind("durable-q", "orders", "order.*")
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json", correlation_id="c-1",
                                     headers={"k": "v", "n": 7}, priority=3, message_id="m-1")
        for i in range(50):
            ch.basic_publish("orders", "order.new", b"persistent-%d" % i, props)
        ch.basic_publish("orders", "order.new", b"transient", pika.BasicProperties(delivery_mode=1))
        ch.basic_publish("", "transient-q", b"gone", pika.BasicProperties(delivery_mode=2))
        conn.close()

        self.broker.graceful_restart()

        conn = self.connect()
        ch = conn.channel()
        ok = ch.queue_declare("durable-q", passive=True)
        self.assertEqual(ok.method.message_count, 50)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            ch.queue_declare("transient-q", passive=True)
        self.assertEqual(caught.exception.reply_code, 404)
        ch = conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker):
            ch.exchange_declare("transient-x", passive=True)
        ch = conn.channel()
        # The redeclare must be equivalent, so the arguments survived too.
        ch.queue_declare("durable-q", durable=True, arguments={"x-max-priority": 5, "x-message-ttl": 600000})
        bodies = []
        for i in range(50):
            method, got, body = ch.basic_get("durable-q", auto_ack=True)
            self.assertIsNotNone(method)
            bodies.append(body)
            self.assertEqual(got.delivery_mode, 2)
            self.assertEqual(got.content_type, "application/json")
            self.assertEqual(got.correlation_id, "c-1")
            self.assertEqual(got.headers, {"k": "v", "n": 7})
            self.assertEqual(got.priority, 3)
        self.assertEqual(bodies, [b"persistent-%d" % i for i in range(50)])
        # The binding survived: routing through the durable exchange still reaches the queue.
        ch.basic_publish("orders", "order.late", b"late")
        method, _, body = ch.basic_get("durable-q", auto_ack=True)
        self.assertEqual(body, b"late")
        conn.close()

    def test_durable_server_named_queue_survives_restart(self):
        conn = self.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        name = ch.queue_declare("", durable=True).method.queue
        self.assertTrue(name.startswith("amq.gen-"))
        ch.basic_publish("", name, b"kept", pika.BasicProperties(delivery_mode=2))
        conn.close()
        self.broker.graceful_restart()
        conn = self.connect()
        ch = conn.channel()
        self.assertEqual(ch.queue_declare(name, passive=True).method.message_count, 1)
        conn.close()
        self.assertNotIn("skipped", self.broker.stderr_text())

    def test_unacked_messages_come_back_redelivered_after_kill(self):
        conn = self.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("redeliver-q", durable=True)
        for i in range(3):
            ch.basic_publish("", "redeliver-q", b"m%d" % i, pika.BasicProperties(delivery_mode=2))
        method, _, _ = ch.basic_get("redeliver-q", auto_ack=False)  # delivered, never acked
        self.assertFalse(method.redelivered)
        ch.basic_publish("", "redeliver-q", b"sync", pika.BasicProperties(delivery_mode=2))
        self.broker.sigkill()
        self.broker.relaunch()
        conn = self.connect()
        ch = conn.channel()
        got = []
        while True:
            method, _, body = ch.basic_get("redeliver-q", auto_ack=True)
            if method is None:
                break
            got.append((body, method.redelivered))
        self.assertEqual(got, [(b"m0", True), (b"m1", False), (b"m2", False), (b"sync", False)])
        conn.close()


@harness.skip_if_external("kills and restarts the broker process")
class CrashTest(unittest.TestCase):
    QUEUE = "crash-q"
    BROKER_ARGS = ()  # subclasses run the same test under other settings

    def setUp(self):
        self.broker = RestartableBroker(extra_args=self.BROKER_ARGS).start()
        self.rounds = int(os.environ.get("WARREN_CRASH_ROUNDS", "5"))
        self.rng = random.Random(int(os.environ.get("WARREN_CRASH_SEED", str(int(time.time())))))

    def tearDown(self):
        self.broker.stop()

    def workload(self, state, stop):
        """Publishes (confirm mode) and consumes+acks on one channel until the broker dies."""
        try:
            conn = pika.BlockingConnection(self.broker.pika_parameters(socket_timeout=2))
            ch = conn.channel()
            ch.confirm_delivery()
            ch.queue_declare(self.QUEUE, durable=True)
            while not stop.is_set():
                n = state["next"]
                state["next"] += 1
                state["in_flight"] = n
                ch.basic_publish("", self.QUEUE, b"%d" % n, pika.BasicProperties(delivery_mode=2))
                state["in_flight"] = None
                state["confirmed"].add(n)
                # Acks sent before this confirm were handled (and synced) before it.
                state["acked_safe"] |= state["acked_pending"]
                state["acked_pending"] = set()
                if self.rng.random() < 0.5:
                    method, _, body = ch.basic_get(self.QUEUE, auto_ack=False)
                    if method is not None:
                        ch.basic_ack(method.delivery_tag)
                        m = int(body)
                        state["confirmed"].discard(m)
                        state["acked_pending"].add(m)
        except Exception:  # the broker was killed under us
            pass

    def drain(self):
        """All messages in the queue after a restart, as a list of ids (acks them)."""
        conn = pika.BlockingConnection(self.broker.pika_parameters())
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(self.QUEUE, durable=True)
        ch.queue_declare("crash-marker", durable=True)
        ch.queue_purge("crash-marker")
        ids = []
        while True:
            method, _, body = ch.basic_get(self.QUEUE, auto_ack=False)
            if method is None:
                break
            ids.append(int(body))
            ch.basic_ack(method.delivery_tag)
        # A confirmed publish after the acks makes them durable; the marker is then removed.
        ch.basic_publish("", "crash-marker", b"", pika.BasicProperties(delivery_mode=2))
        conn.close()
        return ids

    def test_confirmed_messages_survive_sigkill_and_acked_ones_stay_gone(self):
        state = {"next": 0, "confirmed": set(), "acked_safe": set(), "acked_pending": set(), "in_flight": None}
        totals = {"confirmed": 0, "recovered": 0}
        for round_ in range(self.rounds):
            stop = threading.Event()
            worker = threading.Thread(target=self.workload, args=(state, stop))
            worker.start()
            time.sleep(self.rng.uniform(0.3, 1.2))
            self.broker.sigkill()
            stop.set()
            worker.join(10)
            self.assertFalse(worker.is_alive())
            self.broker.relaunch()
            ids = self.drain()
            counts = {}
            for i in ids:
                counts[i] = counts.get(i, 0) + 1
            duplicates = sorted(i for i, c in counts.items() if c > 1)
            missing = sorted(state["confirmed"] - counts.keys())
            resurrected = sorted(state["acked_safe"] & counts.keys())
            self.assertEqual(duplicates, [], "round %d: messages recovered twice" % round_)
            self.assertEqual(missing, [], "round %d: confirmed messages lost" % round_)
            self.assertEqual(resurrected, [], "round %d: acked messages came back" % round_)
            unexpected = sorted(counts.keys() - state["confirmed"] - state["acked_pending"]
                                - {state["in_flight"]})
            self.assertEqual(unexpected, [], "round %d: messages nobody published" % round_)
            totals["confirmed"] += len(state["confirmed"])
            totals["recovered"] += len(ids)
            # Everything drained was acked and made durable by the marker publish.
            state["acked_safe"] |= set(ids) | state["acked_pending"]
            state["acked_pending"] = set()
            state["confirmed"] = set()
        print("\ncrash test: %d rounds, %d messages published, %d confirmed-unacked checked, %d recovered"
              % (self.rounds, state["next"], totals["confirmed"], totals["recovered"]))


if __name__ == "__main__":
    unittest.main()
