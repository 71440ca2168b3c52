"""Policies, operator policies and vhost limits through the management API, checked with real
AMQP clients: a policy applies live to existing queues and to new ones, an operator policy can
only lower limits, limits refuse with RabbitMQ's codes, everything survives a restart, and only
policymakers (in their vhosts) and administrators may change them.

Needs a broker the harness owns."""
import os
import unittest

import pika

import harness


class Policies(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.environ.get("WARREN_TEST_URL"):
            raise unittest.SkipTest("needs a broker the harness owns")
        cls.broker = harness.Broker(management=True).start()
        b = cls.broker
        b.http_request("PUT", "/api/users/pol", {"password": "polpw", "tags": "policymaker"})
        b.http_request("PUT", "/api/users/mgmt", {"password": "mgmtpw", "tags": "management"})
        b.http_request("PUT", "/api/vhosts/private", {})
        for user in ("pol", "mgmt"):
            b.http_request("PUT", "/api/permissions/%2F/" + user, {"configure": ".*", "write": ".*", "read": ".*"})

    @classmethod
    def tearDownClass(cls):
        cls.broker.terminate()

    def setUp(self):
        self.conn = pika.BlockingConnection(self.broker.pika_parameters())
        self.ch = self.conn.channel()

    def tearDown(self):
        if self.conn.is_open:
            self.conn.close()

    def depth(self, queue):
        return self.ch.queue_declare(queue, passive=True).method.message_count

    def publish(self, queue, n):
        for i in range(n):
            self.ch.basic_publish("", queue, b"m%d" % i)
        self.depth(queue)  # a round trip: the publishes before it are routed

    def put_policy(self, name, body, kind="policies", vhost="%2F", **who):
        return self.broker.http_request("PUT", "/api/%s/%s/%s" % (kind, vhost, name), body, **who)

    def test_policy_applies_live_and_to_new_queues(self):
        self.ch.queue_declare("live.a")
        self.publish("live.a", 5)
        status, _ = self.put_policy("cap", {"pattern": "^live\\.", "definition": {"max-length": 2},
                                            "apply-to": "queues", "priority": 1})
        self.assertEqual(status, 201)
        self.assertEqual(self.depth("live.a"), 2)  # lowered live: the head was dropped
        self.ch.queue_declare("live.b")
        self.publish("live.b", 4)
        self.assertEqual(self.depth("live.b"), 2)
        status, got = self.broker.http_get("/api/policies/%2F/cap")
        self.assertEqual(status, 200)
        self.assertEqual((got["pattern"], got["definition"], got["apply-to"], got["priority"]),
                         ("^live\\.", {"max-length": 2}, "queues", 1))
        self.assertEqual(self.put_policy("cap", {"pattern": "^live\\.", "definition": {"max-length": 3}})[0], 204)
        self.assertEqual(self.broker.http_request("DELETE", "/api/policies/%2F/cap")[0], 204)
        self.publish("live.b", 4)
        self.assertEqual(self.depth("live.b"), 6)
        self.assertEqual(self.broker.http_request("DELETE", "/api/policies/%2F/cap")[0], 404)

    def test_operator_policy_only_lowers(self):
        self.put_policy("big", {"pattern": "^op\\.", "definition": {"max-length": 10}})
        status, _ = self.put_policy("small", {"pattern": "^op\\.", "definition": {"max-length": 3}},
                                    kind="operator-policies")
        self.assertEqual(status, 201)
        self.ch.queue_declare("op.q")
        self.publish("op.q", 8)
        self.assertEqual(self.depth("op.q"), 3)
        status, body = self.put_policy("bad", {"pattern": ".", "definition": {"dead-letter-exchange": "x"}},
                                       kind="operator-policies")
        self.assertEqual(status, 400)
        self.assertIn("not recognised", body["reason"])
        for kind, name in (("operator-policies", "small"), ("policies", "big")):
            self.broker.http_request("DELETE", "/api/%s/%%2F/%s" % (kind, name))

    def test_validation_errors_are_400_with_rabbitmq_text(self):
        status, body = self.put_policy("v", {"pattern": ".", "definition": {"foo": "bar"}})
        self.assertEqual(status, 400)
        self.assertIn("are not recognised policy settings", body["reason"])
        self.assertEqual(self.put_policy("v", {"pattern": ".", "definition": {"max-length": -1}})[0], 400)
        self.assertEqual(self.put_policy("v", {"definition": {"max-length": 1}})[0], 400)
        self.assertEqual(self.put_policy("v", {"pattern": ".", "definition": {"max-length": 1}},
                                         vhost="nosuch")[0], 404)

    def test_who_may_manage_policies(self):
        body = {"pattern": "^who$", "definition": {"message-ttl": 1000}}
        self.assertEqual(self.put_policy("p1", body, user="pol", password="polpw")[0], 201)
        self.assertEqual(self.put_policy("p1", body, vhost="private", user="pol", password="polpw")[0], 401)
        self.assertEqual(self.put_policy("p2", body, user="mgmt", password="mgmtpw")[0], 401)
        self.assertEqual(self.put_policy("p3", body, kind="operator-policies", user="pol", password="polpw")[0], 401)
        status, listed = self.broker.http_request("GET", "/api/policies", user="pol", password="polpw")
        self.assertEqual(status, 200)
        self.assertIn("p1", [p["name"] for p in listed])
        self.broker.http_request("DELETE", "/api/policies/%2F/p1")

    def test_vhost_limits(self):
        b = self.broker
        b.http_request("PUT", "/api/vhosts/limited", {})
        b.http_request("PUT", "/api/permissions/limited/guest", {"configure": ".*", "write": ".*", "read": ".*"})
        self.assertEqual(b.http_request("PUT", "/api/vhost-limits/limited/max-connections", {"value": 1})[0], 204)
        self.assertEqual(b.http_request("PUT", "/api/vhost-limits/limited/max-queues", {"value": 1})[0], 204)
        self.assertEqual(b.http_request("PUT", "/api/vhost-limits/limited/max-widgets", {"value": 1})[0], 400)
        status, limits = b.http_get("/api/vhost-limits/limited")
        self.assertEqual(limits, [{"vhost": "limited", "value": {"max-connections": 1, "max-queues": 1}}])
        # RabbitMQ keeps them as a runtime parameter, which /api/parameters (rabbitmqadmin list
        # parameters) shows; a policymaker may read it, a management user may not.
        limited = {"component": "vhost-limits", "name": "limits", "vhost": "limited",
                   "value": {"max-connections": 1, "max-queues": 1}}
        for path in ("/api/parameters", "/api/parameters/vhost-limits", "/api/parameters/vhost-limits/limited"):
            self.assertIn(limited, b.http_get(path)[1], path)
        self.assertEqual(b.http_get("/api/parameters/federation-upstream")[1], [])
        self.assertEqual(b.http_request("GET", "/api/parameters", user="pol", password="polpw")[0], 200)
        self.assertEqual(b.http_request("GET", "/api/parameters", user="mgmt", password="mgmtpw")[0], 401)
        first = pika.BlockingConnection(b.pika_parameters(virtual_host="limited"))
        try:
            # pika reports a close during connection.open as ProbableAccessDeniedError
            with self.assertRaises(pika.exceptions.AMQPConnectionError) as caught:
                pika.BlockingConnection(b.pika_parameters(virtual_host="limited"))
            self.assertIn("(530)", str(caught.exception))
            self.assertIn("connection limit (1) is reached", str(caught.exception))
            ch = first.channel()
            ch.queue_declare("one")
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
                ch.queue_declare("two")
            self.assertEqual(caught.exception.reply_code, 406)
            self.assertIn("queue limit", caught.exception.reply_text)
        finally:
            first.close()
        self.assertEqual(b.http_request("DELETE", "/api/vhost-limits/limited/max-connections")[0], 204)
        c1 = pika.BlockingConnection(b.pika_parameters(virtual_host="limited"))
        c2 = pika.BlockingConnection(b.pika_parameters(virtual_host="limited"))
        c1.close()
        c2.close()
        b.http_request("DELETE", "/api/vhosts/limited")

    def test_policies_and_limits_survive_a_restart(self):
        b = self.broker
        self.put_policy("kept", {"pattern": "^kept$", "definition": {"max-length": 1}, "priority": 7})
        b.http_request("PUT", "/api/vhost-limits/%2F/max-queues", {"value": 1000})
        self.conn.close()
        data = os.path.join(b.data_dir, "data")
        b.terminate()
        type(self).broker = b = harness.Broker(management=True, extra_args=["--data-dir", data]).start()
        self.conn = pika.BlockingConnection(b.pika_parameters())
        self.ch = self.conn.channel()
        status, got = b.http_get("/api/policies/%2F/kept")
        self.assertEqual((status, got["priority"], got["definition"]), (200, 7, {"max-length": 1}))
        status, limits = b.http_get("/api/vhost-limits/%2F")
        self.assertEqual(limits[0]["value"], {"max-queues": 1000})
        self.ch.queue_declare("kept")
        self.publish("kept", 3)
        self.assertEqual(self.depth("kept"), 1)
        b.http_request("DELETE", "/api/policies/%2F/kept")
        b.http_request("DELETE", "/api/vhost-limits/%2F/max-queues")


if __name__ == "__main__":
    unittest.main()
