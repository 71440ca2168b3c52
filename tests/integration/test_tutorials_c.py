"""Runs the rabbitmq-c tutorial program (test_tutorials_c.c: hello world, work queue, RPC)
against the module's broker.

The C program's path comes from $WARREN_TUTORIALS_C_BIN (set by CMake), else
<repo>/build/tests/integration/test_integration_tutorials_c; the test is skipped when it is not
built."""

import unittest

import harness


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


class TutorialsInCTest(unittest.TestCase):
    def test_tutorials_with_rabbitmq_c(self):
        harness.run_c_program(self, "WARREN_TUTORIALS_C_BIN", "test_integration_tutorials_c", "3 passed, 0 failed", 60)


if __name__ == "__main__":
    unittest.main()
