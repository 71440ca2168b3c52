"""The broker's systemd readiness protocol (sd_notify without libsystemd): with NOTIFY_SOCKET
naming a Unix datagram socket this test owns, READY=1 arrives only once the AMQP port and the
admin socket accept, and STOPPING=1 when a clean shutdown begins (SIGTERM or warrenctl stop).
Both a path and an abstract ('@') socket name are exercised.

  cd tests/integration && /usr/bin/python3 -m unittest -v test_service_notify
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness


def warrenctl_path():
    return os.environ.get("WARREN_WARRENCTL") or os.path.join(
        os.path.dirname(os.path.abspath(harness.broker_binary())), "warrenctl")


@harness.skip_if_external("the test starts the broker with its own environment")
class ServiceNotifyTest(unittest.TestCase):
    def setUp(self):
        if not os.access(harness.broker_binary(), os.X_OK):
            self.skipTest("broker binary not built: %s" % harness.broker_binary())
        self.dir = tempfile.mkdtemp(prefix="warren-notify-")
        self.process = None
        self.stderr = open(os.path.join(self.dir, "broker.stderr"), "wb")

    def tearDown(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stderr_text(self):
        self.stderr.flush()
        with open(os.path.join(self.dir, "broker.stderr"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def start(self, notify_socket):
        self.port = harness.free_port()
        self.data_dir = os.path.join(self.dir, "data")
        env = dict(os.environ, NOTIFY_SOCKET=notify_socket)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.process = subprocess.Popen(
            [harness.broker_binary(), "--bind", "127.0.0.1", "--port", str(self.port),
             "--data-dir", self.data_dir, "--management_port", "0", "--prometheus_port", "0"], stdin=subprocess.DEVNULL, stdout=self.stderr,
            stderr=self.stderr, env=env)

    def receive(self, listener, timeout=20.0):
        listener.settimeout(timeout)
        try:
            return listener.recv(4096)
        except socket.timeout:
            self.fail("no notification within %.0f s\n%s" % (timeout, self.stderr_text()))

    def assert_clean_exit(self):
        self.assertEqual(self.process.wait(30), 0, self.stderr_text())
        if os.environ.get("WARREN_SANITIZE") == "1":
            for marker in harness.SANITIZER_MARKERS:
                self.assertNotIn(marker, self.stderr_text())

    def assert_ready_means_serving(self, listener):
        self.assertEqual(self.receive(listener), b"READY=1")
        # Ready means ready: one attempt, no retry loop.
        socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        status = harness.admin_request_path(os.path.join(self.data_dir, "warren.sock"),
                                            b'{"command":"status"}\n')
        self.assertIn(b'"ok":true', status)

    def test_ready_after_the_port_accepts_and_stopping_on_sigterm(self):
        path = os.path.join(self.dir, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(path)
            self.start(path)
            self.assert_ready_means_serving(listener)
            self.process.send_signal(signal.SIGTERM)
            self.assertEqual(self.receive(listener), b"STOPPING=1")
            self.assert_clean_exit()

    def test_abstract_socket_and_warrenctl_stop(self):
        name = "warren-test-notify-%d-%d" % (os.getpid(), int(time.monotonic() * 1000))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind("\0" + name)
            self.start("@" + name)
            self.assert_ready_means_serving(listener)
            tool = warrenctl_path()
            if not os.access(tool, os.X_OK):
                self.skipTest("warrenctl not built: %s" % tool)
            result = subprocess.run([tool, "--data-dir", self.data_dir, "-t", "20", "stop"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    universal_newlines=True, timeout=60)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(self.receive(listener), b"STOPPING=1")
            self.assert_clean_exit()
            self.assertIn("admin: stop requested", self.stderr_text())

    def test_unreachable_notify_socket_does_not_stop_start_up(self):
        self.start(os.path.join(self.dir, "nobody-listens-here"))
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                self.assertIsNone(self.process.poll(), self.stderr_text())
                self.assertLess(time.monotonic(), deadline, self.stderr_text())
                time.sleep(0.05)
        # The port accepts as soon as it is bound; the notification is tried once start-up is
        # done, a moment later.
        while "cannot notify the service manager" not in self.stderr_text():
            self.assertIsNone(self.process.poll(), self.stderr_text())
            self.assertLess(time.monotonic(), deadline, self.stderr_text())
            time.sleep(0.05)
        self.process.send_signal(signal.SIGTERM)
        self.assert_clean_exit()


if __name__ == "__main__":
    unittest.main()
