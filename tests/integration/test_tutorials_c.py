"""Runs the rabbitmq-c tutorial program (test_tutorials_c.c: hello world, work queue, RPC)
against the module's broker.

The C program's path comes from $WARREN_TUTORIALS_C_BIN (set by CMake), else
<repo>/build/tests/integration/test_integration_tutorials_c; the test is skipped when it is not
built."""

import os
import subprocess
import unittest

import harness


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


def program():
    return os.environ.get("WARREN_TUTORIALS_C_BIN") or os.path.join(
        harness.REPO_ROOT, "build", "tests", "integration", "test_integration_tutorials_c")


class TutorialsInCTest(unittest.TestCase):
    def test_tutorials_with_rabbitmq_c(self):
        binary = program()
        if not os.access(binary, os.X_OK):
            self.skipTest("rabbitmq-c tutorial program not built: %s" % binary)
        broker = harness.module_broker()
        env = dict(os.environ, WARREN_USER=broker.user, WARREN_PASSWORD=broker.password,
                   WARREN_VHOST=broker.vhost)
        result = subprocess.run([binary, broker.host, str(broker.port)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        output = result.stdout.decode("utf-8", "replace")
        self.assertEqual(result.returncode, 0, "test_tutorials_c failed:\n" + output)
        self.assertIn("3 passed, 0 failed", output)
        harness.assert_broker_alive(self)


if __name__ == "__main__":
    unittest.main()
