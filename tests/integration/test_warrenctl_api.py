"""warrenctl as a second door onto the management API: `warrenctl api METHOD PATH [BODY]` gives
the same status and JSON as HTTP; users, vhosts and permissions changed through warrenctl are
what the HTTP API shows (and the reverse); the policy, operator policy, vhost limit and
definitions commands send their API calls and report an API error (404 "Object Not Found" while
a route does not exist) cleanly, with rabbitmqctl's exit status; the admin protocol's request
body (announced by "body_bytes" after the request line) is bounded and checked.

When the policy, vhost-limit and definitions routes exist, the same tests check their effect
through HTTP instead of the 404.
"""

import json
import os
import socket
import subprocess
import tempfile
import unittest

import harness

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_SOFTWARE = 64, 65, 67, 70

_broker = None
_counter = [0]


def unique(prefix):
    _counter[0] += 1
    return "wapi.%s.%d.%d" % (prefix, os.getpid(), _counter[0])


def warrenctl_path():
    explicit = os.environ.get("WARREN_WARRENCTL")
    if explicit:
        return explicit
    return os.path.join(os.path.dirname(os.path.abspath(harness.broker_binary())), "warrenctl")


def setUpModule():
    global _broker
    if harness.external_url():
        raise unittest.SkipTest("external broker (WARREN_TEST_URL): the admin socket is local")
    if not os.access(warrenctl_path(), os.X_OK):
        raise AssertionError("warrenctl is not an executable: %s" % warrenctl_path())
    _broker = harness.Broker(management=True).start()


def tearDownModule():
    if _broker is not None:
        _broker.stop()


def socket_path():
    return os.path.join(_broker.data_dir, "data", "warren.sock")


def ctl(*args, expect=0, stdin=None):
    command = [warrenctl_path(), "--socket", socket_path()] + list(args)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                            universal_newlines=True, input=stdin)
    if expect is not None and result.returncode != expect:
        raise AssertionError("%s exited %d, expected %d\nstdout: %s\nstderr: %s"
                             % (" ".join(command), result.returncode, expect, result.stdout,
                                result.stderr))
    return result


def api_json(*args, expect=0, stdin=None):
    """`warrenctl --formatter json api ...` parsed (None when it printed nothing)."""
    out = ctl("--formatter", "json", "api", *args, expect=expect, stdin=stdin).stdout
    return json.loads(out) if out.strip() else None


def route_exists(path):
    status, _ = _broker.http_get(path)
    return status != 404


def raw(data):
    """Sends data to the admin socket, ends the sending side, returns the parsed answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(socket_path())
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return json.loads(answer)
            answer += chunk


class ApiCommandTest(unittest.TestCase):
    def test_overview_is_the_http_answer(self):
        out = ctl("api", "GET", "/api/overview").stdout
        overview = json.loads(out)
        self.assertTrue(out.startswith("{\n"), out)  # indented for people; compact with --formatter json
        status, http = _broker.http_get("/api/overview")
        self.assertEqual(status, 200)
        self.assertEqual(set(overview), set(http))
        self.assertEqual(overview["node"], http["node"])
        self.assertEqual(api_json("GET", "/api/users"), _broker.http_get("/api/users")[1])

    def test_put_then_get_then_delete(self):
        vhost = unique("v")
        path = "/api/vhosts/" + vhost
        self.assertIsNone(api_json("PUT", path))
        self.assertEqual(_broker.http_get(path)[1]["name"], vhost)
        self.assertEqual(api_json("GET", path)["name"], vhost)
        self.assertIsNone(api_json("DELETE", path))
        self.assertEqual(_broker.http_get(path)[0], 404)

    def test_body_from_argument_and_from_stdin(self):
        user = unique("u")
        self.addCleanup(ctl, "delete_user", user, expect=None)
        api_json("PUT", "/api/users/" + user, '{"password":"pw","tags":"monitoring"}')
        self.assertEqual(_broker.http_get("/api/users/" + user)[1]["tags"], ["monitoring"])
        api_json("PUT", "/api/users/" + user, "-", stdin='{"password":"pw2","tags":["management"]}')
        self.assertEqual(_broker.http_get("/api/users/" + user)[1]["tags"], ["management"])
        status, _ = _broker.http_request("GET", "/api/whoami", user=user, password="pw2")
        self.assertEqual(status, 200)

    def test_a_body_larger_than_the_request_line_limit(self):
        user = unique("big")
        self.addCleanup(ctl, "delete_user", user, expect=None)
        body = json.dumps({"password": "pw", "tags": "", "padding": "x" * 200000})
        api_json("PUT", "/api/users/" + user, "-", stdin=body)
        self.assertEqual(_broker.http_get("/api/users/" + user)[0], 200)

    def test_errors_keep_the_api_answer_and_map_to_exit_statuses(self):
        result = ctl("api", "GET", "/api/no-such-thing", expect=EX_DATAERR)
        self.assertIn("Object Not Found", result.stderr)
        self.assertEqual(json.loads(result.stdout), {"error": "Object Not Found", "reason": "Not Found"})
        result = ctl("api", "PUT", "/api/users/x", "{not json", expect=EX_DATAERR)
        self.assertIn("not JSON", result.stderr)
        ctl("api", "PUT", "/api/users/x", '["a list"]', expect=EX_DATAERR)  # the API's 400
        ctl("api", "PATCH", "/api/overview", expect=EX_USAGE)
        ctl("api", "GET", "overview", expect=EX_USAGE)
        ctl("api", "PUT", "/api/overview", expect=EX_USAGE)  # 405 Method Not Allowed
        ctl("api", "GET", expect=EX_USAGE)


class AccessThroughTheApiTest(unittest.TestCase):
    def test_users_match_http_both_ways(self):
        user = unique("u")
        ctl("add_user", user, "pw")
        self.addCleanup(ctl, "delete_user", user, expect=None)
        status, http = _broker.http_get("/api/users/" + user)
        self.assertEqual((status, http["tags"]), (200, []))
        ctl("set_user_tags", user, "administrator", "monitoring")
        self.assertEqual(_broker.http_get("/api/users/" + user)[1]["tags"], ["administrator", "monitoring"])
        # Setting tags keeps the password; changing the password keeps the tags.
        self.assertEqual(_broker.http_request("GET", "/api/whoami", user=user, password="pw")[0], 200)
        ctl("change_password", user, "new")
        self.assertEqual(_broker.http_request("GET", "/api/whoami", user=user, password="new")[0], 200)
        self.assertEqual(_broker.http_get("/api/users/" + user)[1]["tags"], ["administrator", "monitoring"])
        _broker.http_request("PUT", "/api/users/" + user, body={"password": "x", "tags": "policymaker"})
        self.assertIn({"user": user, "tags": ["policymaker"]},
                      json.loads(ctl("--formatter", "json", "list_users").stdout))
        ctl("add_user", user, "again", expect=EX_SOFTWARE)
        ctl("set_user_tags", user, "a,b", expect=EX_DATAERR)
        ctl("add_user", "", "pw", expect=EX_DATAERR)
        ctl("delete_user", user)
        self.assertEqual(_broker.http_get("/api/users/" + user)[0], 404)
        ctl("delete_user", user, expect=EX_NOUSER)
        ctl("change_password", user, "x", expect=EX_NOUSER)

    def test_names_that_need_escaping_in_a_path(self):
        vhost, user = unique("a/b?c d%"), unique("u/x")
        ctl("add_vhost", vhost)
        self.addCleanup(ctl, "delete_vhost", vhost, expect=None)
        ctl("add_user", user, "pw")
        self.addCleanup(ctl, "delete_user", user, expect=None)
        ctl("set_permissions", "-p", vhost, user, "^a", "^b", "^c")
        self.assertIn({"user": user, "configure": "^a", "write": "^b", "read": "^c"},
                      json.loads(ctl("--formatter", "json", "list_permissions", "-p", vhost).stdout))
        self.assertIn({"name": vhost}, json.loads(ctl("--formatter", "json", "list_vhosts").stdout))
        ctl("clear_permissions", "-p", vhost, user)
        ctl("clear_permissions", "-p", vhost, user)  # an absent grant: done, as RabbitMQ
        ctl("set_permissions", "-p", "", user, ".*", ".*", ".*", expect=EX_DATAERR)
        ctl("list_permissions", "-p", unique("none"), expect=EX_DATAERR)
        ctl("delete_vhost", vhost)
        ctl("delete_vhost", vhost, expect=EX_DATAERR)


class PolicyCommandTest(unittest.TestCase):
    def check_missing_route(self, result):
        self.assertIn("Object Not Found", result.stderr)

    def test_policies(self):
        for kind, route in (("policy", "policies"), ("operator_policy", "operator-policies")):
            name = unique("p")
            result = ctl("set_" + kind, "--priority", "3", "--apply-to", "queues", name, "^q\\.",
                         '{"max-length": 10}', expect=None)
            if not route_exists("/api/%s/%%2F" % route):
                self.assertEqual(result.returncode, EX_DATAERR, result.stderr)
                self.check_missing_route(result)
                self.check_missing_route(ctl("clear_" + kind, name, expect=EX_DATAERR))
                listing = "list_policies" if kind == "policy" else "list_operator_policies"
                self.check_missing_route(ctl(listing, expect=EX_DATAERR))
            else:
                self.assertEqual(result.returncode, 0, result.stderr)
                status, policy = _broker.http_get("/api/%s/%%2F/%s" % (route, name))
                self.assertEqual((status, policy["pattern"], policy["definition"], policy["priority"],
                                  policy["apply-to"]), (200, "^q\\.", {"max-length": 10}, 3, "queues"))
                listing = "list_policies" if kind == "policy" else "list_operator_policies"
                rows = json.loads(ctl("--formatter", "json", listing).stdout)
                self.assertIn(name, [row["name"] for row in rows])
                ctl("clear_" + kind, name)
                self.assertEqual(_broker.http_get("/api/%s/%%2F/%s" % (route, name))[0], 404)
            # Checked before any call: the vhost, the definition, the priority, the arguments.
            ctl("set_" + kind, "-p", unique("none"), name, ".*", "{}", expect=EX_DATAERR)
            self.assertIn("JSON object", ctl("set_" + kind, name, ".*", "[1]", expect=EX_DATAERR).stderr)
            ctl("set_" + kind, "--priority", "high", name, ".*", "{}", expect=EX_DATAERR)
            ctl("set_" + kind, name, ".*", expect=EX_USAGE)

    def test_banners_are_rabbitmqctl_s(self):
        result = ctl("set_policy", "-p", "/", "--priority", "2", "ttl", "^a", '{"message-ttl":1}', expect=None)
        self.assertEqual(result.stdout.split("\n")[0],
                         'Setting policy "ttl" for pattern "^a" to "{"message-ttl":1}" with priority "2" '
                         'for vhost "/" ...')
        ctl("clear_policy", "ttl", expect=None)
        self.assertEqual(ctl("clear_policy", "ttl", expect=None).stdout,
                         'Clearing policy "ttl" on vhost "/" ...\n')
        self.assertEqual(ctl("clear_vhost_limits", expect=None).stdout, 'Clearing vhost "/" limits ...\n')

    def test_vhost_limits(self):
        vhost = unique("lim")
        ctl("add_vhost", vhost)
        self.addCleanup(ctl, "delete_vhost", vhost, expect=None)
        result = ctl("set_vhost_limits", "-p", vhost, '{"max-connections": 5, "max-queues": 7}', expect=None)
        if not route_exists("/api/vhost-limits/%2F"):
            self.assertEqual(result.returncode, EX_DATAERR, result.stderr)
            self.check_missing_route(result)
            self.check_missing_route(ctl("list_vhost_limits", "-p", vhost, expect=EX_DATAERR))
            self.check_missing_route(ctl("list_vhost_limits", "--global", expect=EX_DATAERR))
            self.check_missing_route(ctl("clear_vhost_limits", "-p", vhost, expect=EX_DATAERR))
        else:
            self.assertEqual(result.returncode, 0, result.stderr)
            limits = json.loads(ctl("-q", "list_vhost_limits", "-p", vhost).stdout)
            self.assertEqual(limits, {"max-connections": 5, "max-queues": 7})
            rows = json.loads(ctl("--formatter", "json", "list_vhost_limits", "--global").stdout)
            self.assertIn({"vhost": vhost, "limits": limits}, rows)
            ctl("clear_vhost_limits", "-p", vhost)
            self.assertEqual(ctl("-q", "list_vhost_limits", "-p", vhost).stdout, "")
        ctl("set_vhost_limits", "-p", vhost, "5", expect=EX_DATAERR)
        ctl("set_vhost_limits", "-p", unique("none"), "{}", expect=EX_DATAERR)
        ctl("list_vhost_limits", "-p", unique("none"), expect=EX_DATAERR)

    def test_definitions(self):
        with tempfile.TemporaryDirectory() as tmp:
            target = os.path.join(tmp, "defs.json")
            result = ctl("export_definitions", target, expect=None)
            if not route_exists("/api/definitions"):
                self.assertEqual(result.returncode, EX_DATAERR, result.stderr)
                self.check_missing_route(result)
                self.assertFalse(os.path.exists(target))
                self.check_missing_route(ctl("import_definitions", "-", stdin='{"vhosts": []}',
                                             expect=EX_DATAERR))
            else:
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(result.stdout, 'Exporting definitions in JSON to a file at "%s" ...\n' % target)
                with open(target) as f:
                    exported = json.load(f)
                self.assertIn("/", [v["name"] for v in exported["vhosts"]])
                self.assertEqual(json.loads(ctl("export_definitions", "-").stdout)["vhosts"], exported["vhosts"])
                vhost = unique("imported")
                self.addCleanup(ctl, "delete_vhost", vhost, expect=None)
                ctl("import_definitions", "-", stdin=json.dumps({"vhosts": [{"name": vhost}]}))
                self.assertEqual(_broker.http_get("/api/vhosts/" + vhost)[0], 200)
            ctl("import_definitions", "-", stdin="not json", expect=EX_DATAERR)
            ctl("import_definitions", os.path.join(tmp, "missing.json"), expect=EX_DATAERR)


class ProtocolTest(unittest.TestCase):
    def test_request_body_is_bounded_and_checked(self):
        line = {"command": "api", "args": ["GET", "/api/overview"]}
        answer = raw(json.dumps(dict(line, body_bytes=10)).encode() + b"\n{}")
        self.assertEqual((answer["ok"], answer["reason"]), (False, "bad_request"))
        self.assertIn("body ended", answer["error"])
        answer = raw(json.dumps(dict(line, body_bytes=1 << 40)).encode() + b"\n")
        self.assertEqual(answer["reason"], "bad_request")
        answer = raw(json.dumps(dict(line, body_bytes="3")).encode() + b"\n")
        self.assertEqual(answer["reason"], "bad_request")
        answer = raw(json.dumps({"command": "import_definitions", "args": [], "body_bytes": 4}).encode()
                     + b"\n[1,")
        self.assertEqual(answer["reason"], "bad_request")
        answer = raw(json.dumps({"command": "api", "args": ["PUT", "/api/vhosts/x"], "body_bytes": 3})
                     .encode() + b"\n{x}")
        self.assertEqual(answer["reason"], "invalid")
        harness.assert_broker_alive(self, _broker)

    def test_lone_surrogates_are_refused_but_warrenctl_mends_them(self):
        answer = raw(b'{"command":"add_vhost","args":["\\udcff"]}\n')
        self.assertEqual((answer["ok"], answer["reason"]), (False, "bad_request"))
        name = os.fsdecode(b"wapi-\xff")
        ctl("add_vhost", name)
        self.addCleanup(ctl, "delete_vhost", name, expect=None)
        self.assertIn({"name": "wapi-\ufffd"}, json.loads(ctl("--formatter", "json", "list_vhosts").stdout))


if __name__ == "__main__":
    unittest.main()
