"""warrenctl and the admin socket, against the live broker: every command's output (rabbitmqctl's
shape: a banner, a header line, tab-separated rows; --formatter json), its exit status, and the
effect of user, vhost and permission changes on real AMQP clients (pika, and raw frames where the
exact handshake reply matters). Reply texts are RabbitMQ's: "ACCESS_REFUSED - configure access
to queue 'q' in vhost '/' refused for user 'bob'", "NOT_ALLOWED - access to vhost 'v' refused for
user 'bob'".

Environment: WARREN_WARRENCTL is the tool (default: warrenctl beside $WARREN_BIN, else
<repo>/build/warrenctl). The broker's admin socket is <data-dir>/warren.sock, where the harness
passes --data-dir <tmp>/data. Needs a broker the harness owns (not WARREN_TEST_URL).
"""

import json
import os
import socket
import stat
import subprocess
import time
import unittest

import pika
import pika.exceptions

import harness
from harness import (RawConnection, ConnectionClose, method_frame, start_ok_args, tune_ok_args,
                     open_args, CONNECTION_START_OK, CONNECTION_TUNE, CONNECTION_TUNE_OK,
                     CONNECTION_OPEN, CONNECTION_OPEN_OK, CONNECTION_CLOSE, PeerClosed)

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, EX_SOFTWARE = 64, 65, 67, 69, 70

_counter = [0]


def unique(prefix):
    _counter[0] += 1
    return "wctl.%s.%d.%d" % (prefix, os.getpid(), _counter[0])


def warrenctl_path():
    explicit = os.environ.get("WARREN_WARRENCTL")
    if explicit:
        return explicit
    return os.path.join(os.path.dirname(os.path.abspath(harness.broker_binary())), "warrenctl")


def setUpModule():
    if harness.external_url():
        raise unittest.SkipTest("external broker (WARREN_TEST_URL): the admin socket is local")
    tool = warrenctl_path()
    if not os.access(tool, os.X_OK):
        if os.environ.get("WARREN_WARRENCTL") or os.environ.get("WARREN_BIN"):
            raise AssertionError("warrenctl is not an executable: %s" % tool)
        raise unittest.SkipTest("warrenctl not built: %s (set WARREN_WARRENCTL)" % tool)
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


def socket_path():
    return os.path.join(harness.module_broker().data_dir, "data", "warren.sock")


def ctl(*args, expect=0, test=None):
    """Runs warrenctl against the module broker; asserts the exit status; returns the result."""
    command = [warrenctl_path(), "--socket", socket_path()] + list(args)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                            universal_newlines=True)
    if expect is not None and result.returncode != expect:
        raise AssertionError("%s exited %d, expected %d\nstdout: %s\nstderr: %s"
                             % (" ".join(command), result.returncode, expect, result.stdout,
                                result.stderr))
    return result


def table(*args, vhost=None):
    """`warrenctl -q LIST...` parsed: (header, rows), each row a list of cells."""
    extra = ["-p", vhost] if vhost else []
    lines = ctl("-q", *(list(args) + extra)).stdout.split("\n")
    assert lines[-1] == "", "output does not end with a newline: %r" % lines
    rows = [line.split("\t") for line in lines[:-1]]
    return rows[0], rows[1:]


def records(*args, vhost=None):
    """`warrenctl --formatter json LIST...` parsed with json.loads."""
    extra = ["-p", vhost] if vhost else []
    return json.loads(ctl("--formatter", "json", *(list(args) + extra)).stdout)


def connect(user="guest", password="guest", vhost="/"):
    broker = harness.module_broker()
    return pika.BlockingConnection(broker.pika_parameters(
        credentials=pika.PlainCredentials(user, password), virtual_host=vhost))


def login(user, password, vhost="/"):
    """A raw handshake: (200, "") when connection.open-ok arrives, else the (code, text) of the
    server's connection.close (None, "closed") when it just closes the socket."""
    with RawConnection(harness.module_broker()) as c:
        try:
            c.read_start()
            c.send(method_frame(0, CONNECTION_START_OK, start_ok_args(user, password)))
            f = c.read_method()
            if f.method == CONNECTION_CLOSE:
                close = ConnectionClose(f.args)
                return close.reply_code, close.reply_text
            assert f.method == CONNECTION_TUNE, f
            channel_max, frame_max = f.args.short(), f.args.long()
            c.send(method_frame(0, CONNECTION_TUNE_OK, tune_ok_args(channel_max, frame_max, 0)))
            c.send(method_frame(0, CONNECTION_OPEN, open_args(vhost)))
            f = c.read_method()
            if f.method == CONNECTION_CLOSE:
                close = ConnectionClose(f.args)
                return close.reply_code, close.reply_text
            assert f.method == CONNECTION_OPEN_OK, f
            c.close_connection()
            return 200, ""
        except PeerClosed:
            return None, "closed"


def refused(user, vhost):
    return "NOT_ALLOWED - access to vhost '%s' refused for user '%s'" % (vhost, user)


class SocketTest(unittest.TestCase):
    def test_socket_is_private_to_the_broker_user(self):
        mode = os.stat(socket_path()).st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        self.assertEqual(stat.S_IMODE(mode), 0o600)

    def test_garbage_requests_get_a_json_error_and_the_broker_lives_on(self):
        for garbage in (b"hello\n", b"{\"command\":\n", b"[" * 10000 + b"\n", b"\xff\xfe\x00\n",
                        b"{\"command\":\"\\ud800\",\"args\":[1]}\n", b"{\"command\":5}\n",
                        b"{\"command\":\"add_user\",\"args\":[\"a\\u0000b\",\"p\"]}\n"):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(socket_path())
                s.sendall(garbage)
                answer = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            reply = json.loads(answer.decode())
            self.assertFalse(reply["ok"], garbage)
            self.assertTrue(reply["error"], garbage)
        harness.assert_broker_alive(self)
        ctl("status")

    def test_oversized_request_is_refused(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(socket_path())
            try:
                s.sendall(b"x" * 70000)
                answer = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                answer = b""
        if answer:
            self.assertIn(b"longer than", answer)
        harness.assert_broker_alive(self)

    def test_idle_admin_client_is_disconnected(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(socket_path())
            s.sendall(b"{\"command\"")
            started = time.monotonic()
            self.assertEqual(s.recv(100), b"")
            self.assertLess(time.monotonic() - started, 8)

    def test_unreachable_broker_exits_69(self):
        result = subprocess.run([warrenctl_path(), "--socket", socket_path() + ".missing",
                                 "list_queues"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, timeout=30)
        self.assertEqual(result.returncode, EX_UNAVAILABLE)
        self.assertIn("Error", result.stderr)

    def test_data_dir_option_finds_the_socket(self):
        data_dir = os.path.join(harness.module_broker().data_dir, "data")
        result = subprocess.run([warrenctl_path(), "--data-dir", data_dir, "-q", "list_vhosts"],
                                stdout=subprocess.PIPE, universal_newlines=True, timeout=30)
        self.assertEqual(result.returncode, 0)
        self.assertEqual(result.stdout.split("\n")[0], "name")

    def test_usage_errors_exit_64(self):
        self.assertIn("not found", ctl("no_such_command", expect=EX_USAGE).stderr)
        ctl("add_user", "only-a-name", expect=EX_USAGE)
        ctl("--formatter", "xml", "list_queues", expect=EX_USAGE)
        ctl(expect=EX_USAGE)


class StatusTest(unittest.TestCase):
    def test_status(self):
        out = ctl("status").stdout
        self.assertTrue(out.startswith("Status of node "), out)
        self.assertIn("OS PID: %d" % harness.module_broker().process.pid, out)
        status = json.loads(ctl("--formatter", "json", "status").stdout)
        self.assertEqual(status["pid"], harness.module_broker().process.pid)
        self.assertEqual(status["listener"], "127.0.0.1:%d" % harness.module_broker().port)
        self.assertFalse(status["memory_alarm"])

    def test_environment_is_the_effective_configuration(self):
        broker = harness.module_broker()
        out = ctl("environment").stdout
        self.assertTrue(out.startswith("Application environment of node "), out)
        self.assertIn("\nport = %d\n" % broker.port, out)
        self.assertNotIn("default_pass", out)
        environment = json.loads(ctl("--formatter", "json", "environment").stdout)
        self.assertEqual(environment["bind"], "127.0.0.1")
        self.assertEqual(environment["data_dir"], os.path.join(broker.data_dir, "data"))
        self.assertEqual(environment["heartbeat"], harness.DEFAULT_HEARTBEAT)
        self.assertIs(environment["loopback_only"], True)
        ctl("environment", "extra", expect=EX_USAGE)

    def test_await_startup_on_a_running_broker(self):
        self.assertIn("Waiting for node", ctl("-t", "10", "await_startup").stdout)

    def test_status_reports_the_durable_store(self):
        before = json.loads(ctl("--formatter", "json", "status").stdout)
        conn = connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("ctl-store", durable=True)
        for i in range(5):
            ch.basic_publish("", "ctl-store", b"m%d" % i, pika.BasicProperties(delivery_mode=2))
        status = json.loads(ctl("--formatter", "json", "status").stdout)
        self.assertGreaterEqual(status["store_live_messages"], before["store_live_messages"] + 5)
        self.assertGreater(status["store_syncs"], before["store_syncs"])
        self.assertGreaterEqual(status["store_segments"], 1)
        self.assertGreater(status["store_bytes"], 5 * 40)
        self.assertEqual(status["messages_paged"], 0)  # far below queue_ram_messages
        self.assertIn("Stored messages in queues: %d" % status["store_live_messages"], ctl("status").stdout)
        ch.queue_delete("ctl-store")
        conn.close()


class ObjectListingTest(unittest.TestCase):
    def setUp(self):
        self.connection = connect()
        self.channel = self.connection.channel()

    def tearDown(self):
        if self.connection.is_open:
            self.connection.close()

    def test_list_queues_default_and_chosen_columns(self):
        q = unique("q")
        self.channel.queue_declare(q, durable=True, arguments={"x-max-length": 10})
        self.addCleanup(lambda: connect().channel().queue_delete(q))
        for body in (b"one", b"two", b"three"):
            self.channel.basic_publish("", q, body)
        self.channel.basic_get(q, auto_ack=False)  # one unacknowledged
        banner = ctl("list_queues").stdout.split("\n")
        self.assertEqual(banner[0], "Listing queues for vhost / ...")
        self.assertEqual(banner[1], "name\tmessages")
        header, rows = table("list_queues")
        self.assertEqual(header, ["name", "messages"])
        self.assertIn([q, "3"], rows)
        columns = ["name", "messages", "messages_ready", "messages_unacknowledged", "consumers",
                   "durable", "auto_delete", "exclusive", "arguments", "message_bytes"]
        header, rows = table("list_queues", *columns)
        self.assertEqual(header, columns)
        row = [r for r in rows if r[0] == q]
        self.assertEqual(row, [[q, "3", "2", "1", "0", "true", "false", "false",
                                '[{"x-max-length",10}]', row[0][-1] if row else "?"]])
        self.assertGreaterEqual(int(row[0][-1]), len(b"twothree"))
        record = [r for r in records("list_queues", "name", "arguments", "durable") if r["name"] == q]
        self.assertEqual(record, [{"name": q, "arguments": {"x-max-length": 10}, "durable": True}])

    def test_unknown_column_is_a_usage_error(self):
        result = ctl("list_queues", "name", "colour", expect=EX_USAGE)
        self.assertIn("colour", result.stderr)

    def test_unknown_vhost(self):
        ctl("list_queues", "-p", "no-such-vhost", expect=EX_DATAERR)

    def test_list_exchanges(self):
        x = unique("x")
        self.channel.exchange_declare(x, "topic")
        self.addCleanup(lambda: connect().channel().exchange_delete(x))
        header, rows = table("list_exchanges")
        self.assertEqual(header, ["name", "type"])
        for expected in ([x, "topic"], ["", "direct"], ["amq.direct", "direct"],
                         ["amq.fanout", "fanout"], ["amq.topic", "topic"], ["amq.headers", "headers"]):
            self.assertIn(expected, rows)
        header, rows = table("list_exchanges", "name", "durable", "auto_delete", "internal", "arguments")
        self.assertIn([x, "false", "false", "false", "[]"], rows)

    def test_list_bindings(self):
        x, x2, q = unique("x"), unique("x2"), unique("q")
        self.channel.exchange_declare(x, "topic")
        self.channel.exchange_declare(x2, "fanout")
        self.channel.queue_declare(q, auto_delete=False)
        self.channel.queue_bind(q, x, "a.#")
        self.channel.exchange_bind(x2, x, "b.*")
        self.addCleanup(lambda: [connect().channel().queue_delete(q),
                                 connect().channel().exchange_delete(x),
                                 connect().channel().exchange_delete(x2)])
        header, rows = table("list_bindings")
        self.assertEqual(header, ["source_name", "source_kind", "destination_name", "destination_kind",
                                  "routing_key", "arguments"])
        self.assertIn(["", "exchange", q, "queue", q, "[]"], rows)
        self.assertIn([x, "exchange", q, "queue", "a.#", "[]"], rows)
        self.assertIn([x, "exchange", x2, "exchange", "b.*", "[]"], rows)
        bindings = records("list_bindings")
        self.assertIn({"source_name": x, "source_kind": "exchange", "destination_name": q,
                       "destination_kind": "queue", "routing_key": "a.#", "arguments": {}}, bindings)

    def test_purge_queue(self):
        q = unique("q")
        self.channel.queue_declare(q)
        self.addCleanup(lambda: connect().channel().queue_delete(q))
        for _ in range(5):
            self.channel.basic_publish("", q, b"m")
        self.assertEqual(self.channel.queue_declare(q, passive=True).method.message_count, 5)
        out = ctl("purge_queue", q).stdout
        self.assertEqual(out, "Purging queue '%s' in vhost '/' ...\n" % q)
        self.assertEqual(self.channel.queue_declare(q, passive=True).method.message_count, 0)
        self.assertIn([q, "0"], table("list_queues")[1])
        self.assertIn("no queue", ctl("purge_queue", unique("missing"), expect=EX_DATAERR).stderr)

    def test_delete_queue(self):
        q = unique("q")
        self.channel.queue_declare(q)
        self.channel.basic_publish("", q, b"a")
        self.channel.basic_publish("", q, b"b")
        self.channel.queue_declare(q, passive=True)
        out = ctl("delete_queue", q).stdout
        self.assertEqual(out, "Deleting queue '%s' on vhost '/' ...\n"
                              "Queue was successfully deleted with 2 messages\n" % q)
        self.assertNotIn(q, [row[0] for row in table("list_queues")[1]])
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            self.channel.queue_declare(q, passive=True)
        self.assertEqual(caught.exception.reply_code, 404)
        ctl("delete_queue", q, expect=EX_DATAERR)


class ClientListingTest(unittest.TestCase):
    def test_list_connections(self):
        broker = harness.module_broker()
        with RawConnection(broker) as raw:
            raw.handshake()
            port = raw.sock.getsockname()[1]
            header, rows = table("list_connections")
            self.assertEqual(header, ["user", "peer_host", "peer_port", "state"])
            self.assertIn(["guest", "127.0.0.1", str(port), "running"], rows)
            header, rows = table("list_connections", "name", "peer_port", "vhost", "channels")
            mine = [row for row in rows if row[1] == str(port)]
            self.assertEqual(len(mine), 1, rows)
            # RabbitMQ's name: "peer_ip:peer_port -> local_ip:local_port".
            self.assertEqual(mine[0][0], "127.0.0.1:%d -> 127.0.0.1:%d" % (port, broker.port))
            self.assertEqual(mine[0][2:], ["/", "0"])
            raw.open_channel(1)
            raw.open_channel(2)
            header, rows = table("list_channels", "name", "connection", "number", "user")
            self.assertIn([mine[0][0] + " (1)", mine[0][0], "1", "guest"], rows)
            self.assertIn([mine[0][0] + " (2)", mine[0][0], "2", "guest"], rows)
            self.assertIn({"user": "guest", "peer_host": "127.0.0.1", "peer_port": port,
                           "state": "running"}, records("list_connections"))
            raw.close_connection()
        ports = [row[2] for row in table("list_connections")[1]]
        self.assertNotIn(str(port), ports)

    def test_list_channels_and_consumers(self):
        q = unique("q")
        connection = connect()
        self.addCleanup(connection.close)
        channel = connection.channel()
        channel.queue_declare(q, auto_delete=False)
        self.addCleanup(lambda: connect().channel().queue_delete(q))
        channel.basic_qos(prefetch_count=7)
        tag = unique("tag")
        received = []
        channel.basic_consume(q, lambda ch, method, props, body: received.append(method),
                              consumer_tag=tag)
        channel.basic_publish("", q, b"1")
        channel.basic_publish("", q, b"2")
        deadline = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        self.assertEqual(len(received), 2)

        header, rows = table("list_consumers")
        self.assertEqual(header, ["queue_name", "channel_pid", "consumer_tag", "ack_required",
                                  "prefetch_count", "active", "arguments"])
        mine = [row for row in rows if row[2] == tag]
        self.assertEqual(len(mine), 1, rows)
        queue_name, channel_pid, _, ack, prefetch, active, arguments = mine[0]
        self.assertEqual((queue_name, ack, prefetch, active, arguments),
                         (q, "true", "7", "true", "[]"))
        self.assertRegex(channel_pid, r"^127\.0\.0\.1:\d+.* \(1\)$")

        header, rows = table("list_channels")
        self.assertEqual(header, ["pid", "user", "consumer_count", "messages_unacknowledged"])
        self.assertIn([channel_pid, "guest", "1", "2"], rows)

        # A consumer's priority is the argument it shows, as in rabbitmqctl.
        prioritised = unique("tag")
        channel.basic_consume(q, lambda *a: None, consumer_tag=prioritised, arguments={"x-priority": 5})
        connection.process_data_events(time_limit=0.1)
        _, rows = table("list_consumers", "consumer_tag", "arguments")
        self.assertIn([prioritised, '[{"x-priority",5}]'], rows)
        channel.basic_cancel(prioritised)
        header, rows = table("list_channels", "name", "number", "vhost", "prefetch_count", "confirm")
        self.assertIn([channel_pid, "1", "/", "7", "false"], rows)
        self.assertIn([q, "0", "2", "1"], table("list_queues", "name", "messages_ready",
                                                  "messages_unacknowledged", "consumers")[1])
        json_rows = [r for r in records("list_consumers") if r["consumer_tag"] == tag]
        self.assertEqual(json_rows[0]["arguments"], {})
        self.assertIs(json_rows[0]["ack_required"], True)


class UserTest(unittest.TestCase):
    def test_add_user_then_login(self):
        user = unique("user")
        out = ctl("add_user", user, "s3cret").stdout
        self.assertEqual(out, 'Adding user "%s" ...\n' % user)
        self.addCleanup(ctl, "delete_user", user, expect=None)
        self.assertIn([user, "[]"], table("list_users")[1])
        # A new user has no permissions: RabbitMQ refuses connection.open with 530.
        self.assertEqual(login(user, "s3cret"), (530, refused(user, "/")))
        ctl("set_permissions", user, ".*", ".*", ".*")
        self.assertEqual(login(user, "s3cret"), (200, ""))
        connection = connect(user, "s3cret")
        connection.channel().queue_declare(unique("q"), exclusive=True)
        connection.close()
        self.assertEqual(login(user, "wrong")[0], 403)
        self.assertIn("already exists", ctl("add_user", user, "x", expect=EX_SOFTWARE).stderr)

    def test_change_password(self):
        user = unique("user")
        ctl("add_user", user, "old")
        self.addCleanup(ctl, "delete_user", user, expect=None)
        ctl("set_permissions", user, ".*", ".*", ".*")
        self.assertEqual(login(user, "old"), (200, ""))
        out = ctl("change_password", user, "new").stdout
        self.assertEqual(out, 'Changing password for user "%s" ...\n' % user)
        self.assertEqual(login(user, "old")[0], 403)
        self.assertEqual(login(user, "new"), (200, ""))
        ctl("change_password", unique("nobody"), "x", expect=EX_NOUSER)

    def test_delete_user_refuses_login(self):
        user = unique("user")
        ctl("add_user", user, "pw")
        ctl("set_permissions", user, ".*", ".*", ".*")
        self.assertEqual(login(user, "pw"), (200, ""))
        connection = connect(user, "pw")
        out = ctl("delete_user", user).stdout
        # The deleted user's open connection is closed by the broker.
        deadline = time.monotonic() + 5
        while connection.is_open and time.monotonic() < deadline:
            try:
                connection.process_data_events(time_limit=0.1)
            except pika.exceptions.AMQPConnectionError:
                break
        self.assertFalse(connection.is_open)
        self.assertEqual(out, 'Deleting user "%s" ...\n' % user)
        self.assertEqual(login(user, "pw")[0], 403)
        self.assertNotIn(user, [row[0] for row in table("list_users")[1]])
        self.assertNotIn(user, [row[0] for row in table("list_permissions")[1]])
        self.assertIn("does not exist", ctl("delete_user", user, expect=EX_NOUSER).stderr)

    def test_user_tags(self):
        user = unique("user")
        ctl("add_user", user, "pw")
        self.addCleanup(ctl, "delete_user", user, expect=None)
        out = ctl("set_user_tags", user, "administrator").stdout
        self.assertEqual(out, 'Setting tags for user "%s" to [administrator] ...\n' % user)
        header, rows = table("list_users")
        self.assertEqual(header, ["user", "tags"])
        self.assertIn(["guest", "[administrator]"], rows)
        self.assertIn([user, "[administrator]"], rows)
        ctl("set_user_tags", user, "monitoring", "management")
        self.assertIn([user, "[monitoring, management]"], table("list_users")[1])
        self.assertIn({"user": user, "tags": ["monitoring", "management"]}, records("list_users"))
        ctl("set_user_tags", user)
        self.assertIn([user, "[]"], table("list_users")[1])


class PermissionTest(unittest.TestCase):
    def setUp(self):
        self.user = unique("bob")
        ctl("add_user", self.user, "pw")
        self.addCleanup(ctl, "delete_user", self.user, expect=None)
        self.prefix = self.user + "."
        self.known_generated = {row[0] for row in table("list_queues", "name")[1]}

    def refused_text(self, kind, resource, name):
        return ("ACCESS_REFUSED - %s access to %s '%s' in vhost '/' refused for user '%s'"
                % (kind, resource, name, self.user))

    def assert_channel_refused(self, text, operation):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            operation()
        self.assertEqual((caught.exception.reply_code, caught.exception.reply_text), (403, text))

    def test_restrictive_permissions(self):
        pattern = "^" + self.prefix.replace(".", "\\.")
        out = ctl("set_permissions", self.user, pattern, pattern, pattern).stdout
        self.assertEqual(out, 'Setting permissions for user "%s" in vhost "/" ...\n' % self.user)
        header, rows = table("list_permissions")
        self.assertEqual(header, ["user", "configure", "write", "read"])
        self.assertIn([self.user, pattern, pattern, pattern], rows)
        self.assertIn(["guest", ".*", ".*", ".*"], rows)

        # A queue guest owns, outside the user's patterns.
        guest = connect()
        self.addCleanup(guest.close)
        outside = unique("guest-q")
        guest.channel().queue_declare(outside, auto_delete=False)
        self.addCleanup(lambda: connect().channel().queue_delete(outside))

        connection = connect(self.user, "pw")
        self.addCleanup(lambda: connection.is_open and connection.close())
        channel = connection.channel()
        mine, exchange = self.prefix + "q", self.prefix + "x"
        channel.queue_declare(mine, exclusive=True)
        channel.exchange_declare(exchange, "direct", auto_delete=True)
        channel.basic_publish(exchange, "k", b"allowed")

        forbidden_queue = unique("other")
        self.assert_channel_refused(self.refused_text("configure", "queue", forbidden_queue),
                                    lambda: channel.queue_declare(forbidden_queue))
        channel = connection.channel()
        self.assert_channel_refused(self.refused_text("configure", "exchange", "other.x"),
                                    lambda: channel.exchange_declare("other.x", "fanout"))
        channel = connection.channel()
        channel.basic_publish("amq.direct", "k", b"forbidden")
        self.assert_channel_refused(self.refused_text("write", "exchange", "amq.direct"),
                                    lambda: channel.queue_declare(mine, passive=True))
        # The default exchange is "amq.default" to the write check, as in RabbitMQ.
        channel = connection.channel()
        channel.basic_publish("", mine, b"forbidden")
        self.assert_channel_refused(self.refused_text("write", "exchange", "amq.default"),
                                    lambda: channel.queue_declare(mine, passive=True))
        channel = connection.channel()
        self.assert_channel_refused(self.refused_text("read", "queue", outside),
                                    lambda: channel.basic_consume(outside, lambda *a: None))
        channel = connection.channel()
        self.assert_channel_refused(self.refused_text("read", "queue", outside),
                                    lambda: channel.basic_get(outside))
        connection.close()

        out = ctl("clear_permissions", self.user).stdout
        self.assertEqual(out, 'Clearing permissions for user "%s" in vhost "/" ...\n' % self.user)
        self.assertNotIn(self.user, [row[0] for row in table("list_permissions")[1]])
        self.assertEqual(login(self.user, "pw"), (530, refused(self.user, "/")))

    def permit(self, configure, write, read):
        ctl("set_permissions", self.user, configure, write, read)
        connection = connect(self.user, "pw")
        self.addCleanup(lambda: connection.is_open and connection.close())
        return connection

    def test_server_named_queue_needs_configure_on_its_generated_name(self):
        # RabbitMQ names the queue, then checks configure on that name.
        pattern = "^" + self.prefix.replace(".", "\\.")
        connection = self.permit(pattern, pattern, pattern)
        channel = connection.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            channel.queue_declare("", durable=True)
        self.assertEqual(caught.exception.reply_code, 403)
        self.assertRegex(caught.exception.reply_text,
                         r"\AACCESS_REFUSED - configure access to queue 'amq\.gen-[A-Za-z0-9_-]{22}' "
                         r"in vhost '/' refused for user '%s'\Z" % self.user)
        connection.close()
        self.assertEqual([row for row in table("list_queues", "name")[1] if row[0].startswith("amq.gen-")
                          and row[0] not in self.known_generated], [])
        # RabbitMQ's advice: grant configure on ^amq\.gen- to allow server-named queues.
        connection = self.permit(pattern + "|^amq\\.gen-", pattern, pattern)
        name = connection.channel().queue_declare("", exclusive=True).method.queue
        self.assertTrue(name.startswith("amq.gen-"), name)

    def test_alternate_exchange_needs_read_on_the_exchange_and_write_on_the_ae(self):
        pattern = "^" + self.prefix.replace(".", "\\.")
        connection = self.permit(pattern, pattern, pattern)
        exchange = self.prefix + "x"
        self.assert_channel_refused(
            self.refused_text("write", "exchange", "other.ae"),
            lambda: connection.channel().exchange_declare(
                exchange, "fanout", auto_delete=True, arguments={"alternate-exchange": "other.ae"}))
        connection = self.permit(pattern, ".*", "^nothing$")
        self.assert_channel_refused(
            self.refused_text("read", "exchange", exchange),
            lambda: connection.channel().exchange_declare(
                exchange, "fanout", auto_delete=True, arguments={"alternate-exchange": "amq.fanout"}))
        connection = self.permit(pattern, ".*", pattern)
        channel = connection.channel()
        channel.exchange_declare(exchange, "fanout", auto_delete=True,
                                 arguments={"alternate-exchange": "amq.fanout"})
        self.addCleanup(lambda: connect().channel().exchange_delete(exchange))
        # Only a new exchange is checked (RabbitMQ): redeclaring it needs configure alone.
        connection = self.permit(pattern, pattern, pattern)
        connection.channel().exchange_declare(exchange, "fanout", auto_delete=True,
                                              arguments={"alternate-exchange": "amq.fanout"})

    def test_dead_letter_exchange_needs_read_on_the_queue_and_write_on_the_dlx(self):
        pattern = "^" + self.prefix.replace(".", "\\.")
        connection = self.permit(pattern, pattern, pattern)
        queue = self.prefix + "q"
        self.assert_channel_refused(
            self.refused_text("write", "exchange", "other.dlx"),
            lambda: connection.channel().queue_declare(
                queue, exclusive=True, arguments={"x-dead-letter-exchange": "other.dlx"}))
        # The default exchange as dead-letter exchange is amq.default to the check.
        self.assert_channel_refused(
            self.refused_text("write", "exchange", "amq.default"),
            lambda: connection.channel().queue_declare(
                queue, exclusive=True, arguments={"x-dead-letter-exchange": ""}))
        connection = self.permit(pattern, ".*", "^nothing$")
        self.assert_channel_refused(
            self.refused_text("read", "queue", queue),
            lambda: connection.channel().queue_declare(
                queue, exclusive=True, arguments={"x-dead-letter-exchange": "amq.direct"}))
        connection = self.permit(pattern, ".*", pattern)
        connection.channel().queue_declare(queue, exclusive=True,
                                           arguments={"x-dead-letter-exchange": "amq.direct"})

    def test_permission_errors(self):
        ctl("set_permissions", unique("nobody"), ".*", ".*", ".*", expect=EX_NOUSER)
        ctl("set_permissions", "-p", "no-such-vhost", self.user, ".*", ".*", ".*", expect=EX_DATAERR)
        ctl("set_permissions", self.user, "(", ".*", ".*", expect=EX_DATAERR)
        ctl("set_permissions", self.user, ".*", ".*", expect=EX_USAGE)


class DirectReplyToVhostTest(unittest.TestCase):
    def test_a_reply_from_another_vhost_does_not_reach_the_requester(self):
        # The requester's user and vhost are not the replier's: even knowing the address, a
        # publisher on "/" cannot deliver into it (unroutable, returned when mandatory).
        vhost, user = unique("rpc"), unique("alice")
        ctl("add_vhost", vhost)
        self.addCleanup(ctl, "delete_vhost", vhost, expect=None)
        ctl("add_user", user, "pw")
        self.addCleanup(ctl, "delete_user", user, expect=None)
        ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        requester = connect(user, "pw", vhost)
        self.addCleanup(lambda: requester.is_open and requester.close())
        channel = requester.channel()
        replies = []
        channel.basic_consume("amq.rabbitmq.reply-to", lambda ch, m, p, body: replies.append(body),
                              auto_ack=True)
        requests = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", requests, b"request",
                              pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
        address, deadline = None, time.monotonic() + 5
        while address is None and time.monotonic() < deadline:
            method, properties, _ = channel.basic_get(requests, auto_ack=True)
            if method is not None:
                address = properties.reply_to
        self.assertTrue(address and address.startswith("amq.rabbitmq.reply-to."), address)

        attacker = connect()
        self.addCleanup(lambda: attacker.is_open and attacker.close())
        forger = attacker.channel()
        forger.confirm_delivery()
        with self.assertRaises(pika.exceptions.UnroutableError):
            forger.basic_publish("", address, b"forged", mandatory=True)
        forger.basic_publish("", address, b"forged, not mandatory")
        requester.process_data_events(time_limit=0.3)
        self.assertEqual(replies, [])

        # From the requester's own vhost the address works.
        replier = connect(user, "pw", vhost)
        self.addCleanup(lambda: replier.is_open and replier.close())
        replier.channel().basic_publish("", address, b"reply")
        deadline = time.monotonic() + 5
        while not replies and time.monotonic() < deadline:
            requester.process_data_events(time_limit=0.05)
        self.assertEqual(replies, [b"reply"])


class VhostTest(unittest.TestCase):
    def test_vhost_lifecycle(self):
        vhost = unique("vhost")
        out = ctl("add_vhost", vhost).stdout
        self.assertEqual(out, 'Adding vhost "%s" ...\n' % vhost)
        self.addCleanup(ctl, "delete_vhost", vhost, expect=None)
        header, rows = table("list_vhosts")
        self.assertEqual(header, ["name"])
        self.assertIn(["/"], rows)
        self.assertIn([vhost], rows)
        self.assertIn({"name": vhost}, records("list_vhosts"))
        self.assertIn("already exists", ctl("add_vhost", vhost, expect=EX_SOFTWARE).stderr)

        # guest has no permissions on the new vhost yet.
        self.assertEqual(login("guest", "guest", vhost), (530, refused("guest", vhost)))
        ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        self.assertIn(["guest", ".*", ".*", ".*"], table("list_permissions", vhost=vhost)[1])

        connection = connect(vhost=vhost)
        q = unique("q")
        channel = connection.channel()
        channel.queue_declare(q, auto_delete=False)
        channel.basic_publish("", q, b"in the new vhost")
        channel.queue_declare(q, passive=True)
        connection.close()
        self.assertIn([q, "1"], table("list_queues", vhost=vhost)[1])
        self.assertNotIn(q, [row[0] for row in table("list_queues")[1]])
        self.assertIn(["", "direct"], table("list_exchanges", vhost=vhost)[1])
        ctl("-p", vhost, "purge_queue", q)
        self.assertIn([q, "0"], table("list_queues", vhost=vhost)[1])

        out = ctl("delete_vhost", vhost).stdout
        self.assertEqual(out, 'Deleting vhost "%s" ...\n' % vhost)
        self.assertNotIn([vhost], table("list_vhosts")[1])
        code, text = login("guest", "guest", vhost)
        self.assertEqual(code, 530)
        ctl("list_queues", "-p", vhost, expect=EX_DATAERR)
        ctl("delete_vhost", vhost, expect=EX_DATAERR)
        # Re-created, the vhost starts empty: its queues went with it.
        ctl("add_vhost", vhost)
        self.assertEqual(table("list_queues", vhost=vhost)[1], [])
        self.assertEqual(table("list_permissions", vhost=vhost)[1], [])

    def test_json_formatter_for_every_list(self):
        for command in ("list_queues", "list_exchanges", "list_bindings", "list_connections",
                        "list_channels", "list_consumers", "list_users", "list_vhosts",
                        "list_permissions"):
            parsed = records(command)
            self.assertIsInstance(parsed, list, command)
            for record in parsed:
                self.assertIsInstance(record, dict, command)


if __name__ == "__main__":
    unittest.main()
