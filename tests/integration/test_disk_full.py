"""A really full disk, with the real broker on a small tmpfs (needs root to mount; skipped else).

The data directory sits on a 16 MiB tmpfs and the disk alarm is set as low as it goes
(--disk_free_limit 1), so publishes run into ENOSPC itself. Checked:
  * every publish the broker confirmed is on disk: after kill -9 and a restart it is there,
    and the number confirmed fits the file system (nothing "confirmed" that was never written);
  * the broker stays up, nacks or blocks what it cannot store, and logs the failure a few
    times, not once per publish;
  * consuming frees space: once half the messages are acked the alarm clears and a publish is
    confirmed again, without a restart;
  * nothing acked well before the kill comes back.
"""

import os
import shutil
import subprocess
import tempfile
import time
import unittest

import pika
import pika.exceptions

import harness
from test_durability import RestartableBroker

QUEUE = "disk-full"
BODY = 64 * 1024
SIZE_MIB = 16


class TmpfsBroker(RestartableBroker):
    """A broker whose data directory is a small tmpfs mounted for the test."""

    def start(self, timeout=None):
        self.mount_point = tempfile.mkdtemp(prefix="warren-tmpfs-")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % SIZE_MIB, "tmpfs", self.mount_point],
                                capture_output=True)
        if result.returncode != 0:
            os.rmdir(self.mount_point)
            raise unittest.SkipTest("cannot mount a tmpfs here: %s" % result.stderr.decode().strip())
        saved, tempfile.tempdir = tempfile.tempdir, self.mount_point  # the harness's data dir goes there
        try:
            return super().start(timeout)
        finally:
            tempfile.tempdir = saved

    def stop(self):
        try:
            super().stop()
        finally:
            subprocess.run(["umount", self.mount_point], capture_output=True)
            shutil.rmtree(self.mount_point, ignore_errors=True)


@harness.skip_if_external("fills the broker's own file system")
class DiskFullTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("mounting a tmpfs needs root")
        self.broker = TmpfsBroker(extra_args=["--disk_free_limit", "1", "--segment_bytes", str(1 << 20)])
        self.broker.start()

    def tearDown(self):
        self.broker.stop()

    def connect(self, **kwargs):
        kwargs.setdefault("blocked_connection_timeout", 3)
        return pika.BlockingConnection(self.broker.pika_parameters(**kwargs))

    def fill(self, start):
        """Publishes 64 KiB persistent messages with confirms until the broker refuses; returns
        the indices confirmed and how it ended."""
        conn = self.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(QUEUE, durable=True)
        confirmed, outcome = [], "no refusal"
        body = b"x" * BODY
        try:
            for i in range(start, start + 1000):
                ch.basic_publish("", QUEUE, b"%08d" % i + body[8:], pika.BasicProperties(delivery_mode=2))
                confirmed.append(i)
        except pika.exceptions.NackError:
            outcome = "nack"
        except (pika.exceptions.ConnectionBlockedTimeout, pika.exceptions.AMQPConnectionError):
            outcome = "blocked"
        try:
            conn.close()
        except Exception:
            pass
        return confirmed, outcome

    def test_confirmed_means_on_disk_and_consuming_frees_space_without_restart(self):
        confirmed, outcome = self.fill(0)
        self.assertIn(outcome, ("nack", "blocked"))
        self.assertGreater(len(confirmed), 0)
        self.assertLessEqual(len(confirmed) * BODY, SIZE_MIB << 20,
                             "more confirmed than the file system can hold")
        harness.assert_broker_alive(self, self.broker)
        self.assertTrue(harness.admin_status(self.broker)["disk_alarm"])
        log = self.broker.stderr_text()
        self.assertLess(log.count("No space left on device"), 10, "a full disk logged once per batch")

        # Consume and ack half: their segments retire, space comes back, the alarm clears.
        conn = self.connect()
        ch = conn.channel()
        taken = []
        for _ in range(len(confirmed) // 2):
            method, _, body = ch.basic_get(QUEUE, auto_ack=False)
            self.assertIsNotNone(method)
            ch.basic_ack(method.delivery_tag)
            taken.append(int(body[:8]))
        conn.close()
        self.assertEqual(taken, confirmed[:len(taken)])
        deadline = time.monotonic() + 15
        while harness.admin_status(self.broker)["disk_alarm"]:
            self.assertLess(time.monotonic(), deadline, "the disk alarm stayed on after space was freed\n"
                            + self.broker.stderr_text()[-3000:])
            time.sleep(0.1)
        conn = self.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", QUEUE, b"%08d" % 5000 + b"after", pika.BasicProperties(delivery_mode=2))
        conn.close()

        # Everything confirmed and not acked survives kill -9; nothing acked comes back.
        time.sleep(1.2)
        self.broker.sigkill()
        self.broker.relaunch()
        conn = self.connect()
        ch = conn.channel()
        got = []
        while True:
            method, _, body = ch.basic_get(QUEUE, auto_ack=True)
            if method is None:
                break
            got.append(int(body[:8]))
        conn.close()
        self.assertEqual(got, confirmed[len(taken):] + [5000])

    def test_definitions_save_on_a_full_disk_is_retried_quietly_and_lands_when_space_returns(self):
        filler = os.path.join(self.broker.mount_point, "filler")
        with open(filler, "wb") as f:  # another process takes every byte left
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        conn = self.connect()
        conn.channel().queue_declare("declared-while-full", durable=True)
        time.sleep(2.5)
        log = self.broker.stderr_text()
        self.assertEqual(log.count("cannot save definitions"), 1, log[-3000:])
        os.remove(filler)
        deadline = time.monotonic() + 5
        while "definitions saved again" not in self.broker.stderr_text():
            self.assertLess(time.monotonic(), deadline, "the definitions were not saved once space returned")
            time.sleep(0.1)
        conn.close()
        self.broker.sigkill()
        self.broker.relaunch()
        conn = self.connect()
        conn.channel().queue_declare("declared-while-full", passive=True)
        conn.close()


if __name__ == "__main__":
    unittest.main()
