"""The management API's router and its rules, over real HTTP: authentication and RabbitMQ's tag
rules (the authorisation matrix), status codes and error shapes (401, 404, 405, 400, 413),
list shaping (sort, pages, columns), users/vhosts/permissions, and hostile HTTP clients that
must not stop the broker or the API from serving others.

Needs a broker the harness owns (the HTTP listeners are opened on free ports)."""
import base64
import os
import socket
import time
import unittest

import harness

ADMIN = ("guest", "guest")


class ManagementApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.environ.get("WARREN_TEST_URL"):
            raise unittest.SkipTest("needs a broker the harness owns")
        cls.broker = harness.Broker(management=True, extra_args=["--collect_statistics_interval", "200"]).start()
        users = {"mon": "monitoring", "mgmt": "management", "pol": "policymaker", "none": ""}
        for name, tags in users.items():
            status, _ = cls.broker.http_request("PUT", "/api/users/" + name, {"password": name + "pw", "tags": tags})
            assert status == 201, status
        cls.broker.http_request("PUT", "/api/vhosts/other", {})
        for name in ("mgmt", "pol"):
            cls.broker.http_request("PUT", "/api/permissions/%2F/" + name,
                                    {"configure": ".*", "write": ".*", "read": ".*"})

    @classmethod
    def tearDownClass(cls):
        cls.broker.terminate()

    def call(self, method, path, body=None, who=ADMIN):
        user, password = who if who else (False, None)
        return self.broker.http_request(method, path, body, user=user, password=password)

    def as_user(self, name):
        return (name, name + "pw")

    # ---- authentication -------------------------------------------------------------------

    def test_no_credentials_is_401_with_a_basic_challenge(self):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.broker.management_port, timeout=5)
        conn.request("GET", "/api/overview")
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        self.assertEqual(resp.status, 401)
        self.assertIn("Basic", resp.getheader("WWW-Authenticate", ""))
        self.assertIn(b"not_authorised", body)

    def test_wrong_password_is_401_and_logged_without_the_password(self):
        status, body = self.call("GET", "/api/overview", who=("guest", "S3cretWrong"))
        self.assertEqual(status, 401)
        self.assertEqual(body["error"], "not_authorised")
        log = self.broker.stderr_text()
        self.assertIn("login failed for user 'guest'", log)
        self.assertNotIn("S3cretWrong", log)

    def test_user_without_a_management_tag_is_refused(self):
        status, body = self.call("GET", "/api/overview", who=self.as_user("none"))
        self.assertEqual(status, 401)
        self.assertEqual(body["reason"], "Not management user")

    # ---- authorisation matrix (RabbitMQ answers 401 for every refusal) ----------------------

    def test_authorisation_matrix(self):
        reads = {
            # path: (administrator, monitoring, policymaker, management)
            "/api/overview": (200, 200, 200, 200),
            "/api/whoami": (200, 200, 200, 200),
            "/api/nodes": (200, 200, 401, 401),
            "/api/users": (200, 401, 401, 401),
            "/api/permissions": (200, 401, 401, 401),
            "/api/vhosts": (200, 200, 200, 200),
            "/api/vhosts/other": (200, 200, 401, 401),
            "/api/health/checks/alarms": (200, 200, 200, 200),
            "/api/queues": (200, 200, 200, 200),
            # A monitor sees every vhost, connection and channel, but the objects of the vhosts
            # it may use only (RabbitMQ's filter_vhost): "mon" has no permissions.
            "/api/queues/%2F": (200, 401, 200, 200),
            "/api/queues/other": (200, 401, 401, 401),
            "/api/exchanges": (200, 200, 200, 200),
            "/api/exchanges/%2F/amq.direct": (200, 401, 200, 200),
            "/api/bindings": (200, 200, 200, 200),
            "/api/connections": (200, 200, 200, 200),
            "/api/channels": (200, 200, 200, 200),
            "/api/consumers": (200, 200, 200, 200),
            "/api/policies": (200, 200, 200, 200),  # a listing of the caller's vhosts' policies
            "/api/policies/other": (200, 401, 401, 401),
            "/api/operator-policies": (200, 401, 401, 401),
            "/api/vhost-limits": (200, 200, 200, 200),
            "/api/definitions": (200, 401, 401, 401),
            "/api/definitions/%2F": (200, 401, 401, 401),
            "/api/users/guest/permissions": (200, 401, 401, 401),
        }
        who = [ADMIN, self.as_user("mon"), self.as_user("pol"), self.as_user("mgmt")]
        for path, expected in reads.items():
            for user, want in zip(who, expected):
                status, _ = self.call("GET", path, who=user)
                self.assertEqual(status, want, "%s as %s" % (path, user[0]))
        writes = [("PUT", "/api/users/x", {"password": "p", "tags": ""}),
                  ("PUT", "/api/vhosts/x", {}),
                  ("DELETE", "/api/vhosts/other", None),
                  ("PUT", "/api/permissions/%2F/mon", {"configure": "", "write": "", "read": ""}),
                  ("POST", "/api/definitions", {}),
                  ("PUT", "/api/operator-policies/%2F/op", {"pattern": ".", "definition": {"max-length": 1}}),
                  ("PUT", "/api/vhost-limits/%2F/max-queues", {"value": 5})]
        for method, path, body in writes:
            for user in who[1:]:
                status, answer = self.call(method, path, body, who=user)
                self.assertEqual(status, 401, "%s %s as %s" % (method, path, user[0]))
                self.assertEqual(answer["reason"], "Not administrator user")
        # policies: policymakers in their vhosts (and administrators), nobody else
        body = {"pattern": "^nothing$", "definition": {"max-length": 1}}
        for user, want in zip(who, (201, 401, 204, 401)):
            status, _ = self.call("PUT", "/api/policies/%2F/matrix", body, who=user)
            self.assertEqual(status, want, "PUT policy as %s" % user[0])
        self.assertEqual(self.call("DELETE", "/api/policies/%2F/matrix", who=self.as_user("mgmt"))[0], 401)
        self.assertEqual(self.call("DELETE", "/api/policies/%2F/matrix", who=self.as_user("pol"))[0], 204)

    def test_management_user_sees_only_its_vhosts(self):
        status, vhosts = self.call("GET", "/api/vhosts", who=self.as_user("mgmt"))
        self.assertEqual(status, 200)
        self.assertEqual([v["name"] for v in vhosts], ["/"])
        status, vhosts = self.call("GET", "/api/vhosts", who=self.as_user("mon"))
        self.assertEqual(sorted(v["name"] for v in vhosts), ["/", "other"])

    def test_whoami_shows_tags(self):
        status, body = self.call("GET", "/api/whoami", who=self.as_user("mon"))
        self.assertEqual((status, body), (200, {"name": "mon", "tags": ["monitoring"]}))

    # ---- status codes -----------------------------------------------------------------------

    def test_listener_health_checks(self):
        # RabbitMQ's health checks of one listener, by port and by protocol.
        amqp = self.broker.port
        self.assertEqual(self.call("GET", "/api/health/checks/port-listener/%d" % amqp), (200, {"status": "ok", "port": amqp}))
        self.assertEqual(self.call("GET", "/api/health/checks/port-listener/%d" % self.broker.management_port)[0], 200)
        status, body = self.call("GET", "/api/health/checks/port-listener/1")
        self.assertEqual((status, body["status"], body["reason"], body["missing"]), (503, "failed", "No active listener", 1))
        self.assertIn(amqp, body["ports"])
        self.assertEqual(self.call("GET", "/api/health/checks/port-listener/x")[0], 400)
        for name in ("amqp", "amqp091", "http"):
            status, body = self.call("GET", "/api/health/checks/protocol-listener/" + name)
            self.assertEqual((status, body["status"]), (200, "ok"), name)
        status, body = self.call("GET", "/api/health/checks/protocol-listener/mqtt")
        self.assertEqual((status, body["missing"]), (503, "mqtt"))
        self.assertIn("amqp", body["protocols"])

    def test_unknown_path_is_404_json(self):
        # (a path outside /api is the web console's: a plain 404 there, test_console)
        for path in ("/api/nothing-here", "/api/users/a/b/c/d", "/api/vhosts/nosuch/permissions"):
            status, body = self.call("GET", path)
            self.assertEqual(status, 404, path)
            self.assertEqual(body, {"error": "Object Not Found", "reason": "Not Found"})

    def test_wrong_method_is_405_with_allow(self):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.broker.management_port, timeout=5)
        token = base64.b64encode(b"guest:guest").decode()
        conn.request("POST", "/api/overview", headers={"Authorization": "Basic " + token})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        self.assertEqual(resp.status, 405)
        self.assertIn("GET", resp.getheader("Allow", ""))

    def test_bad_json_is_400_with_a_reason(self):
        status, body = self.call("PUT", "/api/users/badjson", '{"password": ')
        self.assertEqual(status, 400)
        self.assertEqual(body["error"], "bad_request")
        self.assertTrue(body["reason"])
        status, _ = self.call("GET", "/api/users/badjson")
        self.assertEqual(status, 404)

    def test_body_over_the_limit_is_413_and_the_api_still_serves(self):
        sock = socket.create_connection(("127.0.0.1", self.broker.management_port), timeout=10)
        token = base64.b64encode(b"guest:guest").decode()
        size = 21 * 1024 * 1024  # over the 20 MiB limit (RabbitMQ's http_max_body_size default)
        sock.sendall(("PUT /api/users/huge HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (token, size)).encode())
        chunk = b" " * (1 << 20)
        answer = b""
        try:
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
            answer = sock.recv(4096)
        except OSError:
            pass  # the server may answer early and close: fine
        sock.close()
        if answer:
            self.assertIn(b" 413 ", answer.split(b"\r\n")[0])
        status, _ = self.call("GET", "/api/overview")
        self.assertEqual(status, 200)

    def test_a_strangers_body_is_refused_before_it_is_read(self):
        """Unauthenticated uploads cost no memory: the 401 comes once the headers are in."""
        for auth in ("", "Authorization: Basic %s\r\n" % base64.b64encode(b"guest:wrong").decode()):
            sock = socket.create_connection(("127.0.0.1", self.broker.management_port), timeout=5)
            sock.sendall(("POST /api/definitions HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n"
                          "Content-Length: 10000000\r\n\r\n" % auth).encode())  # within the limit
            answer = sock.recv(4096)  # nothing of the body was sent
            sock.close()
            self.assertIn(b" 401 ", answer.split(b"\r\n")[0])
        sock = socket.create_connection(("127.0.0.1", self.broker.management_port), timeout=5)
        token = base64.b64encode(b"guest:guest").decode()
        sock.sendall(("POST /api/definitions HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n"
                      "Content-Length: 900000000\r\n\r\n" % token).encode())
        answer = sock.recv(4096)
        sock.close()
        self.assertIn(b" 413 ", answer.split(b"\r\n")[0])
        self.assertEqual(self.call("GET", "/api/overview")[0], 200)

    # ---- users, vhosts, permissions ------------------------------------------------------------

    def test_user_lifecycle_with_password_hash(self):
        status, _ = self.call("PUT", "/api/users/hashed", {"password": "first", "tags": ["management"]})
        self.assertEqual(status, 201)
        status, user = self.call("GET", "/api/users/hashed")
        self.assertEqual(status, 200)
        self.assertEqual(user["hashing_algorithm"], "rabbit_password_hashing_sha256")
        self.assertEqual(user["tags"], ["management"])
        # Another user given that hash logs in with the same password.
        status, _ = self.call("PUT", "/api/users/copy", {"password_hash": user["password_hash"],
                                                         "hashing_algorithm": "rabbit_password_hashing_sha256",
                                                         "tags": "management"})
        self.assertEqual(status, 201)
        status, me = self.call("GET", "/api/whoami", who=("copy", "first"))
        self.assertEqual((status, me["name"]), (200, "copy"))
        status, body = self.call("PUT", "/api/users/copy", {"password_hash": "AAAA", "tags": ""})
        self.assertEqual(status, 400)
        status, body = self.call("PUT", "/api/users/copy", {"password_hash": user["password_hash"],
                                                            "hashing_algorithm": "rabbit_password_hashing_md5"})
        self.assertEqual(status, 400)
        self.assertIn("not supported", body["reason"])
        status, _ = self.call("PUT", "/api/users/copy", {"password": "second", "tags": "management"})
        self.assertEqual(status, 204)
        self.assertEqual(self.call("GET", "/api/whoami", who=("copy", "first"))[0], 401)
        self.assertEqual(self.call("GET", "/api/whoami", who=("copy", "second"))[0], 200)
        self.assertEqual(self.call("DELETE", "/api/users/copy")[0], 204)
        self.assertEqual(self.call("DELETE", "/api/users/copy")[0], 404)
        self.assertEqual(self.call("POST", "/api/users/bulk-delete", {"users": ["hashed", "nobody"]})[0], 204)
        self.assertEqual(self.call("GET", "/api/users/hashed")[0], 404)

    def test_vhost_and_permission_lifecycle(self):
        self.assertEqual(self.call("PUT", "/api/vhosts/v%2Fslash", {})[0], 201)
        self.assertEqual(self.call("PUT", "/api/vhosts/v%2Fslash", {})[0], 204)
        status, v = self.call("GET", "/api/vhosts/v%2Fslash")
        self.assertEqual((status, v["name"], v["messages"]), (200, "v/slash", 0))
        perm = {"configure": "^a", "write": "^b", "read": "^c"}
        self.assertEqual(self.call("PUT", "/api/permissions/v%2Fslash/mon", perm)[0], 201)
        status, got = self.call("GET", "/api/permissions/v%2Fslash/mon")
        self.assertEqual(status, 200)
        self.assertEqual({k: got[k] for k in ("user", "vhost", "configure", "write", "read")},
                         dict(perm, user="mon", vhost="v/slash"))
        status, body = self.call("PUT", "/api/permissions/v%2Fslash/mon", {"configure": "(", "write": "", "read": ""})
        self.assertEqual(status, 400)
        status, body = self.call("PUT", "/api/permissions/v%2Fslash/mon", {"configure": ".*"})
        self.assertEqual(status, 400)
        status, listed = self.call("GET", "/api/vhosts/v%2Fslash/permissions")
        # guest created the vhost: RabbitMQ's API gives the creator full permissions on it.
        self.assertEqual([p["user"] for p in listed], ["guest", "mon"])
        self.assertEqual([(p["configure"], p["write"], p["read"]) for p in listed if p["user"] == "guest"],
                         [(".*", ".*", ".*")])
        self.assertEqual(self.call("GET", "/api/permissions/nosuch/mon")[0], 404)
        self.assertEqual(self.call("DELETE", "/api/permissions/v%2Fslash/mon")[0], 204)
        self.assertEqual(self.call("GET", "/api/permissions/v%2Fslash/mon")[0], 404)
        self.assertEqual(self.call("DELETE", "/api/vhosts/v%2Fslash")[0], 204)
        self.assertEqual(self.call("GET", "/api/vhosts/v%2Fslash")[0], 404)

    def test_changes_survive_a_restart(self):
        self.assertEqual(self.call("PUT", "/api/users/durable", {"password": "d", "tags": "monitoring"})[0], 201)
        broker = self.broker
        broker.terminate()
        data_dir = broker.data_dir
        # restart on the same data directory
        restarted = harness.Broker(management=True, extra_args=["--data-dir", os.path.join(data_dir, "data")])
        restarted.start()
        try:
            status, me = restarted.http_request("GET", "/api/whoami", user="durable", password="d")
            self.assertEqual((status, me["tags"]), (200, ["monitoring"]))
        finally:
            restarted.terminate()
            type(self).broker = harness.Broker(management=True, extra_args=["--data-dir", os.path.join(data_dir, "data"),
                                                                            "--collect_statistics_interval", "200"])
            type(self).broker.start()

    # ---- figures ---------------------------------------------------------------------------------

    def test_overview_and_vhost_counters_follow_real_traffic(self):
        import pika
        _, before = self.call("GET", "/api/overview")
        conn = pika.BlockingConnection(self.broker.pika_parameters())
        ch = conn.channel()
        ch.confirm_delivery()
        q = ch.queue_declare("", exclusive=True).method.queue
        for i in range(10):
            ch.basic_publish("", q, b"x")
        with self.assertRaises(pika.exceptions.UnroutableError):  # returned, unroutable
            ch.basic_publish("", "no-such-queue", b"x", mandatory=True)
        got = sum(1 for _ in range(4) if ch.basic_get(q, auto_ack=True)[0] is not None)
        self.assertEqual(got, 4)
        time.sleep(0.6)  # a few sampler ticks
        # ages and increments in seconds, as RabbitMQ's API and console send them
        _, after = self.call("GET", "/api/overview?lengths_age=60&lengths_incr=1&msg_rates_age=60&msg_rates_incr=1")
        conn.close()
        delta = lambda key: after["message_stats"][key] - before["message_stats"].get(key, 0)
        self.assertEqual(delta("publish"), 11)
        self.assertEqual(delta("confirm"), 11)
        self.assertEqual(delta("get_no_ack"), 4)
        self.assertEqual(delta("return_unroutable"), 1)
        self.assertGreaterEqual(after["queue_totals"]["messages_ready"], 6)
        self.assertTrue(after["queue_totals"]["messages_details"]["samples"])
        self.assertTrue(after["message_stats"]["publish_details"]["samples"])
        # seconds, not ms: two seconds of a 200 ms sampler hold several samples, one a second fewer
        _, recent = self.call("GET", "/api/overview?lengths_age=2")
        stamps = [s["timestamp"] for s in recent["queue_totals"]["messages_details"]["samples"]]
        self.assertGreaterEqual(len(stamps), 2)
        self.assertLessEqual(stamps[0] - stamps[-1], 2000)
        _, sparse = self.call("GET", "/api/overview?lengths_age=60&lengths_incr=1")
        stamps = [s["timestamp"] for s in sparse["queue_totals"]["messages_details"]["samples"]]
        self.assertTrue(all(a - b >= 1000 for a, b in zip(stamps, stamps[1:])), stamps)
        self.assertGreaterEqual(after["churn_rates"]["connection_created"], 1)
        status, vhost = self.call("GET", "/api/vhosts/%2F")
        self.assertGreaterEqual(vhost["message_stats"]["publish"], 11)

    # ---- lists ---------------------------------------------------------------------------------

    def test_sort_pages_and_columns(self):
        for i in range(5):
            self.call("PUT", "/api/vhosts/page-%d" % i, {})
        try:
            status, page = self.call("GET", "/api/vhosts?page=2&page_size=2&name=page-&sort=name&sort_reverse=true")
            self.assertEqual(status, 200)
            self.assertEqual(page["filtered_count"], 5)
            self.assertEqual(page["page_count"], 3)
            self.assertEqual([v["name"] for v in page["items"]], ["page-2", "page-1"])
            status, page = self.call("GET", "/api/vhosts?page=1&name=%5Epage-%5B34%5D&use_regex=true")
            self.assertEqual(sorted(v["name"] for v in page["items"]), ["page-3", "page-4"])
            # Items that tie on the sort key (here: none has it) come in name order, as RabbitMQ's
            status, listed = self.call("GET", "/api/vhosts?sort=no_such_key&name=page-&page=1")
            self.assertEqual([v["name"] for v in listed["items"]], ["page-%d" % i for i in range(5)])
            status, listed = self.call("GET", "/api/vhosts?sort=no_such_key&sort_reverse=true&name=page-&page=1")
            self.assertEqual([v["name"] for v in listed["items"]], ["page-%d" % i for i in reversed(range(5))])
            # RabbitMQ's name filter ignores case, as a substring and as a regex
            status, page = self.call("GET", "/api/vhosts?page=1&name=PAGE-3")
            self.assertEqual([v["name"] for v in page["items"]], ["page-3"])
            status, page = self.call("GET", "/api/vhosts?page=1&name=%5EPAGE-%5B4%5D&use_regex=true")
            self.assertEqual([v["name"] for v in page["items"]], ["page-4"])
            status, cut = self.call("GET", "/api/vhosts?columns=name,cluster_state")
            self.assertTrue(all(set(v) <= {"name", "cluster_state"} for v in cut))
            self.assertEqual(self.call("GET", "/api/vhosts?page=0")[0], 400)
            self.assertEqual(self.call("GET", "/api/vhosts?page=1&page_size=501")[0], 400)
            self.assertEqual(self.call("GET", "/api/vhosts?page=99")[0], 400)
        finally:
            for i in range(5):
                self.call("DELETE", "/api/vhosts/page-%d" % i)

    # ---- hostile HTTP clients -------------------------------------------------------------------

    def test_silent_and_garbage_clients_do_not_stop_the_api(self):
        silent = [socket.create_connection(("127.0.0.1", self.broker.management_port)) for _ in range(20)]
        half = socket.create_connection(("127.0.0.1", self.broker.management_port))
        half.sendall(b"GET /api/overview HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        garbage = socket.create_connection(("127.0.0.1", self.broker.management_port), timeout=5)
        garbage.sendall(b"\x00\xff\r\n\r\nNOT HTTP AT ALL\r\n\r\n" * 10)
        try:
            garbage.recv(4096)
        except OSError:
            pass
        start = time.monotonic()
        status, _ = self.call("GET", "/api/overview")
        self.assertEqual(status, 200)
        self.assertLess(time.monotonic() - start, 5)
        # AMQP is served meanwhile too
        import pika
        conn = pika.BlockingConnection(self.broker.pika_parameters())
        conn.close()
        for s in silent + [half, garbage]:
            s.close()

    def test_odd_paths_are_answered_not_crashed(self):
        for path in ("/api/users/%00", "/api/users/%ff%fe", "/api/vhosts/%", "/api//users", "/api/users/" + "a" * 5000,
                     "/api/permissions/%2F/%00x", "/api/" + "x/" * 50):
            status, _ = self.call("GET", path)
            self.assertIn(status, (400, 404, 414, 431), path)
        status, _ = self.call("GET", "/api/overview")
        self.assertEqual(status, 200)


if __name__ == "__main__":
    unittest.main()
