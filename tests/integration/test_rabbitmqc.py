"""Runs the rabbitmq-c client test (test_rabbitmqc.c) against the module's broker.

The C program's path comes from $WARREN_RABBITMQC_BIN (set by CMake), else
<repo>/build/tests/integration/test_integration_rabbitmqc; the test is skipped when it is not
built."""

import os
import subprocess
import unittest

import harness


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


def client_binary():
    return os.environ.get("WARREN_RABBITMQC_BIN") or os.path.join(
        harness.REPO_ROOT, "build", "tests", "integration", "test_integration_rabbitmqc")


class RabbitmqCTest(unittest.TestCase):
    def test_rabbitmq_c_client(self):
        binary = client_binary()
        if not os.access(binary, os.X_OK):
            self.skipTest("rabbitmq-c test program not built: %s" % binary)
        broker = harness.module_broker()
        env = dict(os.environ, WARREN_USER=broker.user, WARREN_PASSWORD=broker.password,
                   WARREN_VHOST=broker.vhost)
        result = subprocess.run([binary, broker.host, str(broker.port)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        output = result.stdout.decode("utf-8", "replace")
        self.assertEqual(result.returncode, 0, "test_rabbitmqc failed:\n" + output)
        self.assertIn("0 failed", output)
        harness.assert_broker_alive(self)


if __name__ == "__main__":
    unittest.main()
