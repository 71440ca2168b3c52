"""Runs the rabbitmq-c client test (test_rabbitmqc.c) against the module's broker.

The C program's path comes from $WARREN_RABBITMQC_BIN (set by CMake), else
<repo>/build/tests/integration/test_integration_rabbitmqc; the test is skipped when it is not
built."""

import unittest

import harness


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


class RabbitmqCTest(unittest.TestCase):
    def test_rabbitmq_c_client(self):
        harness.run_c_program(self, "WARREN_RABBITMQC_BIN", "test_integration_rabbitmqc", "0 failed", 120)


if __name__ == "__main__":
    unittest.main()
