"""Per-user limits, as RabbitMQ 3.10 has them: "max-connections" and "max-channels" per user.

- A connection over the user's max-connections is refused at connection.open with 530
  NOT_ALLOWED "Connection refused for user 'u': user connection limit (N) is reached"; 0 allows
  none; clearing the limit lets the user in again.
- Opening a channel over max-channels (counted over all the user's connections) is a
  connection error 530 "number of channels opened for user 'u' has reached the maximum allowed
  user limit of (N)"; closed channels give their room back.
- The limits are set and shown through /api/user-limits (PUT {"value": N} and DELETE per
  limit), through warrenctl set_user_limits / clear_user_limits / list_user_limits, appear in
  /api/users as "limits" and in the definitions as users[].limits, and survive a restart.
"""

import json
import os
import subprocess
import time
import unittest

import pika
import pika.exceptions

import harness

EX_DATAERR = 65


class RestartableBroker(harness.Broker):
    """A management-enabled harness broker that can stop and start again on its data dir."""

    def restart(self, timeout=15.0):
        status = self.terminate()
        if status != 0:
            raise AssertionError("exit status %s on SIGTERM\n%s" % (status, self.stderr_text()[-5000:]))
        self._stderr_file.close()
        self._stderr_file = open(self.stderr_path, "ab")
        command = [harness.broker_binary(), "--bind", "127.0.0.1", "--port", str(self.port),
                   "--data-dir", os.path.join(self.data_dir, "data"),
                   "--management_port", str(self.management_port),
                   "--prometheus_port", str(self.prometheus_port)]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._stderr_file,
                                        stderr=self._stderr_file)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError("broker exited on restart\n" + self.stderr_text()[-5000:])
            try:
                if self.http_get("/api/overview")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("broker did not come back\n" + self.stderr_text()[-5000:])
            time.sleep(0.05)


@harness.skip_if_external("starts its own broker with the management API and warrenctl")
class UserLimits(unittest.TestCase):
    def setUp(self):
        self.broker = RestartableBroker(management=True).start()
        self.connections = []

    def tearDown(self):
        for c in self.connections:
            try:
                if c.is_open:
                    c.close()
            except Exception:
                pass
        self.broker.stop()

    def api(self, method, path, body=None):
        return self.broker.http_request(method, path, body)

    def add_user(self, name):
        self.assertEqual(self.api("PUT", "/api/users/" + name, {"password": "pw", "tags": ""})[0], 201)
        self.assertEqual(self.api("PUT", "/api/permissions/%2F/" + name,
                                  {"configure": ".*", "write": ".*", "read": ".*"})[0], 201)

    def connect(self, user):
        c = pika.BlockingConnection(self.broker.pika_parameters(
            credentials=pika.PlainCredentials(user, "pw")))
        self.connections.append(c)
        return c

    def refused(self, user):
        """The close a connection attempt got at connection.open: '(530) "NOT_ALLOWED - ..."'."""
        # pika reports a close during the handshake as a ProbableAccessDeniedError wrapping it
        with self.assertRaises(pika.exceptions.AMQPConnectionError) as refused:
            self.connect(user)
        return str(refused.exception).split(": ", 1)[1]

    def ctl(self, *args, expect=0):
        binary = os.path.join(os.path.dirname(os.path.abspath(harness.broker_binary())), "warrenctl")
        sock = os.path.join(self.broker.data_dir, "data", "warren.sock")
        result = subprocess.run([binary, "--socket", sock] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, timeout=30, universal_newlines=True)
        self.assertEqual(result.returncode, expect, (args, result.stdout, result.stderr))
        return result

    def test_max_connections_refuses_at_connection_open_with_rabbitmq_text(self):
        self.add_user("ul-conn")
        self.assertEqual(self.api("PUT", "/api/user-limits/ul-conn/max-connections", {"value": 2})[0], 204)
        first, second = self.connect("ul-conn"), self.connect("ul-conn")
        self.assertEqual(self.refused("ul-conn"),
                         '(530) "NOT_ALLOWED - Connection refused for user \'ul-conn\': user connection limit (2) '
                         'is reached"')
        # other users are not counted against it
        guest = pika.BlockingConnection(self.broker.pika_parameters())
        self.connections.append(guest)
        # a connection that goes gives its room back
        first.close()
        third = self.connect("ul-conn")
        self.assertTrue(third.is_open and second.is_open)
        # 0 allows none; clearing the limit lifts it
        self.assertEqual(self.api("PUT", "/api/user-limits/ul-conn/max-connections", {"value": 0})[0], 204)
        self.assertIn("user connection limit (0) is reached", self.refused("ul-conn"))
        self.assertEqual(self.api("DELETE", "/api/user-limits/ul-conn/max-connections")[0], 204)
        for _ in range(3):
            self.connect("ul-conn")

    def test_max_channels_counts_all_the_users_connections(self):
        self.add_user("ul-chan")
        self.ctl("set_user_limits", "ul-chan", '{"max-channels": 3}')
        a, b = self.connect("ul-chan"), self.connect("ul-chan")
        a_channels = [a.channel(), a.channel()]
        b.channel()
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as refused:
            b.channel()
        self.assertEqual(refused.exception.reply_code, 530)
        self.assertEqual(refused.exception.reply_text,
                         "NOT_ALLOWED - number of channels opened for user 'ul-chan' has reached the maximum "
                         "allowed user limit of (3)")
        # b's channel went with b: one channel free again; a closed channel frees another
        c = self.connect("ul-chan")
        c.channel()
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker):
            c.channel()
        a_channels[0].close()
        a.channel().queue_declare("", exclusive=True)
        self.ctl("clear_user_limits", "ul-chan", "max-channels")
        for _ in range(5):
            a.channel()

    def test_api_warrenctl_definitions_and_restart_round_trip(self):
        self.add_user("ul-rt")
        self.add_user("ul-other")
        # warrenctl: set (one PUT per limit), list one user, list all users
        self.ctl("set_user_limits", "ul-rt", '{"max-connections": 4, "max-channels": 9}')
        self.assertEqual(json.loads(self.ctl("-q", "list_user_limits", "ul-rt").stdout),
                         {"max-connections": 4, "max-channels": 9})
        self.assertEqual(self.ctl("-q", "list_user_limits", "ul-other").stdout, "")
        rows = json.loads(self.ctl("--formatter", "json", "list_user_limits").stdout)
        self.assertEqual(rows, [{"user": "ul-rt", "limits": {"max-connections": 4, "max-channels": 9}}])
        # the API: the list, one user, the user object
        self.assertEqual(self.api("GET", "/api/user-limits"),
                         (200, [{"user": "ul-rt", "value": {"max-connections": 4, "max-channels": 9}}]))
        self.assertEqual(self.api("GET", "/api/user-limits/ul-other"), (200, []))
        self.assertEqual(self.api("GET", "/api/users/ul-rt")[1]["limits"],
                         {"max-connections": 4, "max-channels": 9})
        # errors: unknown user, unknown limit, a value that is not an integer
        self.assertEqual(self.api("GET", "/api/user-limits/ul-nobody")[0], 404)
        self.assertEqual(self.api("PUT", "/api/user-limits/ul-nobody/max-channels", {"value": 1})[0], 404)
        status, body = self.api("PUT", "/api/user-limits/ul-rt/max-queues", {"value": 1})
        self.assertEqual(status, 400, body)
        self.assertIn("max-queues is not a recognised user limit", body["reason"])
        self.assertEqual(self.api("PUT", "/api/user-limits/ul-rt/max-channels", {"value": "9"})[0], 400)
        self.ctl("set_user_limits", "ul-nobody", '{"max-channels": 1}', expect=67)
        self.ctl("set_user_limits", "ul-rt", "[1]", expect=EX_DATAERR)
        self.ctl("set_user_limits", "ul-rt", '{"max-queues": 1}', expect=EX_DATAERR)
        # definitions: exported in users[].limits and imported back from there
        defs = self.api("GET", "/api/definitions")[1]
        exported = {u["name"]: u["limits"] for u in defs["users"]}
        self.assertEqual(exported["ul-rt"], {"max-connections": 4, "max-channels": 9})
        self.assertEqual(exported["ul-other"], {})
        self.ctl("clear_user_limits", "ul-rt", "all")
        self.assertEqual(self.api("GET", "/api/user-limits"), (200, []))
        self.assertEqual(self.api("POST", "/api/definitions", defs)[0], 204)
        self.assertEqual(self.api("GET", "/api/users/ul-rt")[1]["limits"],
                         {"max-connections": 4, "max-channels": 9})
        # kept with the users across a restart
        self.ctl("clear_user_limits", "ul-rt", "max-connections")
        self.broker.restart()
        self.assertEqual(self.api("GET", "/api/user-limits"), (200, [{"user": "ul-rt", "value": {"max-channels": 9}}]))
        conn = self.connect("ul-rt")
        conn.channel()


if __name__ == "__main__":
    unittest.main()
