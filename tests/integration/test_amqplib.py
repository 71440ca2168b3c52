"""amqplib, the Node.js client, against the broker: runs tests/node/amqplib_test.js with Node's
own test runner (`node --test`) against the harness's broker (or WARREN_TEST_URL) and fails with
its report when any of its tests fails. tests/run_all.sh installs Node from Debian when it is
missing and the locked amqplib with `npm ci` in tests/node.
"""

import os
import shutil
import subprocess
import unittest

import harness

NODE_DIR = os.path.join(harness.REPO_ROOT, "tests", "node")


class Amqplib(unittest.TestCase):
    def test_amqplib_suite(self):
        node = shutil.which("node")
        if node is None:
            self.skipTest("node is not installed (tests/run_all.sh installs Debian's nodejs)")
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "amqplib")):
            self.fail("amqplib is not installed: run `npm ci` in tests/node (tests/run_all.sh does)")
        url = harness.external_url()
        broker = harness.Broker(url) if url else harness.Broker().start()
        try:
            result = subprocess.run([node, "--test", "amqplib_test.js"], cwd=NODE_DIR,
                                    env=dict(os.environ, WARREN_AMQP_URL=broker.url),
                                    capture_output=True, text=True, timeout=120)
            report = result.stdout + result.stderr
            self.assertEqual(result.returncode, 0, "amqplib tests failed:\n" + report[-8000:])
            self.assertIn("# fail 0", report)
            self.assertNotIn("# pass 0", report)
            harness.assert_broker_alive(self, broker)
        finally:
            if not broker.external:
                broker.stop()


if __name__ == "__main__":
    unittest.main()
