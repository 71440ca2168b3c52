"""The management API's object resources (queues, exchanges, bindings, connections, channels,
consumers, aliveness) over real HTTP, with pika and Debian's rabbitmqadmin as clients."""

import json
import os
import subprocess
import time
import unittest
import urllib.parse

import pika

import harness

RABBITMQADMIN = "/usr/bin/rabbitmqadmin"


def q(name):
    return urllib.parse.quote(name, safe="")


class ObjectsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.skip_if_external("starts its own broker with the management API")
        cls.broker = harness.Broker(management=True).start()
        b = cls.broker
        # a management user with permissions in vhost "v1" only, limited to "mine.*" names
        assert b.http_request("PUT", "/api/vhosts/v1")[0] in (201, 204)
        # RabbitMQ's API gives the vhost's creator (guest) full permissions: this class wants an
        # administrator with none in v1.
        assert b.http_request("DELETE", "/api/permissions/v1/guest")[0] == 204
        assert b.http_request("PUT", "/api/users/mgr", {"password": "pw", "tags": "management"})[0] == 201
        assert b.http_request("PUT", "/api/users/mon", {"password": "pw", "tags": "monitoring"})[0] == 201
        assert b.http_request("PUT", "/api/permissions/v1/mgr",
                              {"configure": "^mine\\.", "write": "^mine\\.", "read": "^mine\\."})[0] == 201

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()

    def api(self, method, path, body=None, **kw):
        return self.broker.http_request(method, "/api" + path, body, **kw)

    def admin(self, *args, user="guest", password="guest"):
        out = subprocess.run([RABBITMQADMIN, "-H", "127.0.0.1", "-P", str(self.broker.management_port),
                              "-u", user, "-p", password] + list(args),
                             capture_output=True, text=True, timeout=30)
        return out.returncode, out.stdout + out.stderr

    def pika(self, vhost="/", user="guest", password="guest"):
        params = self.broker.pika_parameters(virtual_host=vhost,
                                             credentials=pika.PlainCredentials(user, password))
        return pika.BlockingConnection(params)

    # ---- queues ------------------------------------------------------------------------------

    def test_queue_declare_equivalence_and_delete(self):
        self.assertEqual(self.api("PUT", "/queues/%2F/qa", {"durable": True, "arguments": {"x-max-length": 5}})[0], 201)
        self.assertEqual(self.api("PUT", "/queues/%2F/qa", {"durable": True, "arguments": {"x-max-length": 5}})[0], 204)
        status, body = self.api("PUT", "/queues/%2F/qa", {"durable": False})
        self.assertEqual(status, 400)
        self.assertIn("inequivalent arg 'durable'", body["reason"])
        status, body = self.api("GET", "/queues/%2F/qa")
        self.assertEqual(status, 200)
        for key, value in (("name", "qa"), ("vhost", "/"), ("durable", True), ("auto_delete", False),
                           ("exclusive", False), ("state", "running"), ("type", "classic"), ("messages", 0),
                           ("consumers", 0), ("arguments", {"x-max-length": 5})):
            self.assertEqual(body[key], value, key)
        self.assertEqual(body["consumer_details"], [])
        self.assertEqual(self.api("DELETE", "/queues/%2F/qa")[0], 204)
        self.assertEqual(self.api("GET", "/queues/%2F/qa")[0], 404)
        self.assertEqual(self.api("DELETE", "/queues/%2F/qa")[0], 404)
        self.assertEqual(self.api("GET", "/queues/nosuchvhost/qa")[0], 404)
        self.assertEqual(self.api("POST", "/queues/%2F/qa")[0], 405)

    def test_queue_delete_if_empty_if_unused(self):
        self.api("PUT", "/queues/%2F/qd", {})
        self.assertEqual(self.api("POST", "/exchanges/%2F/amq.default/publish",
                                  {"properties": {}, "routing_key": "qd", "payload": "x",
                                   "payload_encoding": "string"})[1], {"routed": True})
        self.assertEqual(self.api("DELETE", "/queues/%2F/qd?if-empty=true")[0], 400)
        conn = self.pika()
        ch = conn.channel()
        ch.basic_consume("qd", lambda *a: None)
        self.assertEqual(self.api("DELETE", "/queues/%2F/qd?if-unused=true")[0], 400)
        conn.close()
        self.assertEqual(self.api("DELETE", "/queues/%2F/qd/contents")[0], 204)
        self.assertEqual(self.api("GET", "/queues/%2F/qd")[1]["messages"], 0)
        self.assertEqual(self.api("DELETE", "/queues/%2F/qd?if-empty=true&if-unused=true")[0], 204)

    def test_publish_get_ackmodes(self):
        self.api("PUT", "/queues/%2F/qg", {})
        for i in range(3):
            status, body = self.api("POST", "/exchanges/%2F/amq.default/publish",
                                    {"properties": {"headers": {"h": 1}, "delivery_mode": 2, "content_type": "text/plain"},
                                     "routing_key": "qg", "payload": "m%d" % i, "payload_encoding": "string"})
            self.assertEqual((status, body), (200, {"routed": True}))
        status, msgs = self.api("POST", "/queues/%2F/qg/get",
                                {"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000})
        self.assertEqual(status, 200)
        self.assertEqual([m["payload"] for m in msgs], ["m0", "m1"])
        self.assertEqual(msgs[0]["message_count"], 2)
        self.assertEqual(msgs[0]["properties"], {"content_type": "text/plain", "delivery_mode": 2, "headers": {"h": 1}})
        self.assertEqual(self.api("POST", "/exchanges/%2F/amq.default/publish",
                                  {"properties": {}, "routing_key": "qg", "payload": "bare",
                                   "payload_encoding": "string"})[1], {"routed": True})
        self.assertEqual(msgs[0]["exchange"], "")
        self.assertEqual(msgs[0]["routing_key"], "qg")
        self.assertEqual(msgs[0]["payload_bytes"], 2)
        self.assertFalse(msgs[0]["redelivered"])
        status, msgs = self.api("POST", "/queues/%2F/qg/get",
                                {"count": 5, "ackmode": "ack_requeue_false", "encoding": "base64"})
        self.assertEqual([m["payload"] for m in msgs], ["bTA=", "bTE=", "bTI=", "YmFyZQ=="])
        self.assertTrue(msgs[0]["redelivered"])
        self.assertEqual(msgs[3]["properties"], [])  # none: RabbitMQ's empty list
        self.assertEqual(self.api("GET", "/queues/%2F/qg")[1]["messages"], 0)
        self.assertEqual(self.api("POST", "/queues/%2F/qg/get",
                                  {"count": 1, "ackmode": "nope", "encoding": "auto"})[0], 400)
        self.assertEqual(self.api("POST", "/queues/%2F/" + "n" * 300 + "/get",
                                  {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})[0], 404)
        self.assertEqual(self.api("POST", "/queues/%2F/nosuch/get",
                                  {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})[0], 404)
        # The get runs as the user: read permission is checked as for its own channel.
        self.assertEqual(self.api("PUT", "/permissions/v1/guest", {"configure": ".*", "write": ".*", "read": ".*"})[0],
                         201)
        self.addCleanup(self.api, "DELETE", "/permissions/v1/guest")
        self.assertEqual(self.api("PUT", "/queues/v1/theirs", {"durable": False})[0], 201)
        self.addCleanup(self.api, "DELETE", "/queues/v1/theirs")
        get = {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}
        self.assertEqual(self.api("POST", "/queues/v1/theirs/get", get, user="mgr", password="pw")[0], 401)
        self.assertEqual(self.api("POST", "/queues/v1/mine.nosuch/get", get, user="mgr", password="pw")[0], 404)
        self.assertEqual(self.api("POST", "/queues/v1/theirs/get", get), (200, []))
        self.assertEqual(self.api("POST", "/exchanges/%2F/nosuch/publish",
                                  {"properties": {}, "routing_key": "", "payload": "", "payload_encoding": "string"})[0], 404)
        self.assertEqual(self.api("POST", "/exchanges/%2F/amq.direct/publish",
                                  {"properties": {}, "routing_key": "nowhere", "payload": "",
                                   "payload_encoding": "string"})[1], {"routed": False})

    def test_list_paging_sort_columns(self):
        for name in ("pa", "pb", "pc"):
            self.api("PUT", "/queues/%2F/" + name, {})
        status, page = self.api("GET", "/queues/%2F?page=1&page_size=2&name=p&sort=name&sort_reverse=true&columns=name")
        self.assertEqual(status, 200)
        self.assertEqual(page["items"], [{"name": "pc"}, {"name": "pb"}])
        self.assertEqual(page["filtered_count"], 3)
        self.assertEqual(page["page_count"], 2)
        self.assertEqual(self.api("GET", "/queues?page=9")[0], 400)
        for name in ("pa", "pb", "pc"):
            self.api("DELETE", "/queues/%2F/" + name)

    # ---- exchanges and bindings ----------------------------------------------------------------

    def test_exchanges(self):
        self.assertEqual(self.api("PUT", "/exchanges/%2F/xa", {"type": "topic", "durable": True})[0], 201)
        self.assertEqual(self.api("PUT", "/exchanges/%2F/xa", {"type": "topic", "durable": True})[0], 204)
        self.assertEqual(self.api("PUT", "/exchanges/%2F/xa", {"type": "fanout", "durable": True})[0], 400)
        status, x = self.api("GET", "/exchanges/%2F/xa")
        self.assertEqual((x["name"], x["type"], x["durable"], x["internal"]), ("xa", "topic", True, False))
        status, default = self.api("GET", "/exchanges/%2F/amq.default")
        self.assertEqual((status, default["name"], default["type"]), (200, "", "direct"))
        self.assertEqual(self.api("DELETE", "/exchanges/%2F/amq.direct")[0], 401)
        self.assertEqual(self.api("PUT", "/exchanges/%2F/amq.mine", {"type": "direct"})[0], 401)
        self.assertEqual(self.api("PUT", "/exchanges/%2F/xbad", {"type": "nosuchtype"})[0], 400)
        self.api("PUT", "/queues/%2F/qx", {})
        self.assertEqual(self.api("POST", "/bindings/%2F/e/xa/q/qx", {"routing_key": "a.#"})[0], 201)
        self.assertEqual(self.api("DELETE", "/exchanges/%2F/xa?if-unused=true")[0], 400)
        self.assertEqual(self.api("DELETE", "/exchanges/%2F/xa")[0], 204)
        self.assertEqual(self.api("DELETE", "/exchanges/%2F/xa")[0], 404)
        self.api("DELETE", "/queues/%2F/qx")

    def test_bindings(self):
        self.api("PUT", "/exchanges/%2F/xb", {"type": "direct"})
        self.api("PUT", "/exchanges/%2F/xb2", {"type": "fanout"})
        self.api("PUT", "/queues/%2F/qb", {})
        self.assertEqual(self.api("POST", "/bindings/%2F/e/xb/q/qb", {"routing_key": "k 1~"})[0], 201)
        self.assertEqual(self.api("POST", "/bindings/%2F/e/xb/q/qb", {"routing_key": "k2", "arguments": {"a": "b"}})[0], 201)
        self.assertEqual(self.api("POST", "/bindings/%2F/e/xb/e/xb2", {"routing_key": ""})[0], 201)
        status, items = self.api("GET", "/bindings/%2F/e/xb/q/qb")
        keys = sorted(b["properties_key"] for b in items)
        self.assertEqual(len(items), 2)
        self.assertIn("k+1%7E", keys)
        with_args = [b for b in items if b["routing_key"] == "k2"][0]
        self.assertTrue(with_args["properties_key"].startswith("k2~"))
        self.assertEqual(with_args["arguments"], {"a": "b"})
        self.assertEqual(with_args["destination_type"], "queue")
        status, one = self.api("GET", "/bindings/%2F/e/xb/q/qb/k%2B1%257E")
        self.assertEqual((status, one["routing_key"]), (200, "k 1~"))
        self.assertEqual(self.api("GET", "/bindings/%2F/e/xb/e/xb2")[1][0]["properties_key"], "~")
        status, src = self.api("GET", "/exchanges/%2F/xb/bindings/source")
        self.assertEqual(len(src), 3)
        status, dst = self.api("GET", "/queues/%2F/qb/bindings")
        self.assertEqual(sorted(b["source"] for b in dst), ["", "xb", "xb"])  # the default binding too
        self.assertEqual(self.api("DELETE", "/bindings/%2F/e/xb/q/qb/" + q(with_args["properties_key"]))[0], 204)
        self.assertEqual(self.api("GET", "/bindings/%2F/e/xb/q/qb/" + q(with_args["properties_key"]))[0], 404)
        self.assertEqual(self.api("POST", "/bindings/%2F/e/nosuch/q/qb", {})[0], 404)
        for path in ("/exchanges/%2F/xb", "/exchanges/%2F/xb2", "/queues/%2F/qb"):
            self.api("DELETE", path)

    # ---- connections, channels, consumers -----------------------------------------------------

    def wait_for(self, fn, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = fn()
            if value:
                return value
            time.sleep(0.05)
        self.fail("condition not met")

    def test_connections_and_close(self):
        conn = self.pika()
        ch = conn.channel()
        ch.queue_declare("qc")
        ch.basic_consume("qc", lambda *a: None, consumer_tag="ctag1")
        items = self.wait_for(lambda: self.api("GET", "/connections")[1])
        c = [i for i in items if i["user"] == "guest"][0]
        self.assertEqual(c["protocol"], "AMQP 0-9-1")
        self.assertEqual(c["client_properties"]["product"], "Pika Python Client Library")
        self.assertEqual(c["auth_mechanism"], "PLAIN")
        self.assertEqual((c["vhost"], c["state"], c["channels"], c["ssl"]), ("/", "running", 1, False))
        self.assertEqual(c["port"], self.broker.port)
        self.assertGreater(c["connected_at"], 1.6e12)
        status, one = self.api("GET", "/connections/" + q(c["name"]))
        self.assertEqual((status, one["name"]), (200, c["name"]))
        status, chans = self.api("GET", "/connections/" + q(c["name"]) + "/channels")
        self.assertEqual((len(chans), chans[0]["number"], chans[0]["consumer_count"]), (1, 1, 1))
        self.assertEqual(self.api("GET", "/channels/" + q(chans[0]["name"]))[0], 200)
        self.assertEqual(len(self.api("GET", "/vhosts/%2F/channels")[1]), 1)
        consumers = self.api("GET", "/consumers/%2F")[1]
        self.assertEqual([(x["consumer_tag"], x["queue"]["name"]) for x in consumers], [("ctag1", "qc")])
        details = self.api("GET", "/queues/%2F/qc")[1]["consumer_details"]
        self.assertEqual(details[0]["consumer_tag"], "ctag1")
        status, _ = self.api("DELETE", "/connections/" + q(c["name"]), headers={"X-Reason": "go away"})
        self.assertEqual(status, 204)
        with self.assertRaises(pika.exceptions.ConnectionClosed) as caught:
            conn.process_data_events(time_limit=2)
            conn.process_data_events(time_limit=2)
        self.assertIn("320", str(caught.exception))
        self.assertIn("go away", str(caught.exception))
        self.wait_for(lambda: self.api("GET", "/connections")[1] == [])
        self.assertEqual(self.api("GET", "/connections/" + q(c["name"]))[0], 404)
        self.api("DELETE", "/queues/%2F/qc")

    # ---- a management user ----------------------------------------------------------------------

    def test_management_user_sees_own(self):
        self.api("PUT", "/queues/%2F/guestq", {})
        # An administrator acts with its own AMQP permissions, as in RabbitMQ: guest has none in v1.
        self.assertEqual(self.api("PUT", "/queues/v1/mine.q", {})[0], 401)
        self.assertEqual(self.api("PUT", "/queues/v1/mine.q", {}, user="mgr", password="pw")[0], 201)
        mine = self.pika("v1", "mgr", "pw")
        theirs = self.pika()
        try:
            status, queues = self.api("GET", "/queues", user="mgr", password="pw")
            self.assertEqual(status, 200)
            self.assertEqual({x["vhost"] for x in queues}, {"v1"})
            self.assertEqual(self.api("GET", "/queues/%2F", user="mgr", password="pw")[0], 401)
            conns = self.wait_for(lambda: self.api("GET", "/connections", user="mgr", password="pw")[1])
            self.assertEqual([x["user"] for x in conns], ["mgr"])
            all_conns = self.api("GET", "/connections")[1]
            other = [x["name"] for x in all_conns if x["user"] == "guest"][0]
            # another user's connection: RabbitMQ's 401, to read it and to close it
            self.assertEqual(self.api("GET", "/connections/" + q(other), user="mgr", password="pw")[0], 401)
            self.assertEqual(self.api("DELETE", "/connections/" + q(other), user="mgr", password="pw")[0], 401)
            self.assertEqual(self.api("DELETE", "/connections/" + q(other), user="mon", password="pw")[0], 401)
            self.assertEqual(self.api("GET", "/connections/" + q(other), user="mon", password="pw")[0], 200)
            self.assertEqual(self.api("GET", "/connections/" + q(other) + "/channels", user="mgr", password="pw")[0], 401)
            self.assertEqual(self.api("GET", "/connections/" + q(other) + "/channels", user="mon", password="pw")[0], 200)
            self.assertTrue(theirs.is_open)
            # permissions as RabbitMQ checks them through its channel: 401 "Access refused."
            status, body = self.api("PUT", "/queues/v1/other", {}, user="mgr", password="pw")
            self.assertEqual((status, body["reason"]), (401, "Access refused."))
            self.assertEqual(self.api("PUT", "/queues/v1/mine.new", {}, user="mgr", password="pw")[0], 201)
            self.assertEqual(self.api("POST", "/exchanges/v1/amq.direct/publish",
                                      {"properties": {}, "routing_key": "x", "payload": "",
                                       "payload_encoding": "string"}, user="mgr", password="pw")[0], 401)
            self.assertEqual(self.api("POST", "/bindings/v1/e/amq.direct/q/mine.new", {},
                                      user="mgr", password="pw")[0], 401)
            self.assertEqual(self.api("DELETE", "/queues/v1/mine.new", user="mgr", password="pw")[0], 204)
        finally:
            mine.close()
            theirs.close()
            self.api("DELETE", "/queues/%2F/guestq")
            self.api("DELETE", "/queues/v1/mine.q")

    def test_monitoring_user_sees_connections_but_only_its_vhosts_objects(self):
        # RabbitMQ: a monitor sees every vhost, connection and channel, but queues, exchanges,
        # bindings and consumers only in the vhosts it may log in to (filter_vhost), and a
        # management user sees its own consumers only (filter_user).
        self.assertEqual(self.api("PUT", "/queues/%2F/monq", {})[0], 201)
        self.addCleanup(self.api, "DELETE", "/queues/%2F/monq")
        theirs = self.pika()
        self.addCleanup(theirs.close)
        ch = theirs.channel()
        ch.basic_consume("monq", lambda *a: None)
        mon = {"user": "mon", "password": "pw"}
        self.assertEqual({v["name"] for v in self.api("GET", "/vhosts", **mon)[1]}, {"/", "v1"})
        self.assertTrue(self.wait_for(lambda: [c for c in self.api("GET", "/connections", **mon)[1]
                                               if c["user"] == "guest"]))
        self.assertTrue(self.api("GET", "/channels", **mon)[1])
        for path in ("/queues", "/exchanges", "/bindings"):
            self.assertEqual(self.api("GET", path, **mon)[:2], (200, []), path)
        self.assertEqual(self.api("GET", "/queues/%2F", **mon)[0], 401)
        self.assertEqual(self.api("GET", "/queues/%2F/monq", **mon)[0], 401)
        self.assertEqual(self.api("GET", "/consumers", **mon)[1][0]["queue"]["name"], "monq")  # monitors: all
        mgr = {"user": "mgr", "password": "pw"}
        self.assertEqual(self.api("GET", "/consumers", **mgr)[1], [])
        self.assertEqual(len(self.api("GET", "/consumers")[1]), 1)
        # Policies: any management user lists those of its vhosts; one policy is a policymaker's.
        self.assertEqual(self.api("GET", "/policies", **mgr)[0], 200)
        self.assertEqual(self.api("GET", "/policies/v1/nosuch", **mgr)[0], 401)

    def test_aliveness(self):
        self.assertEqual(self.api("GET", "/aliveness-test/%2F"), (200, {"status": "ok"}))
        self.assertEqual(self.api("GET", "/aliveness-test/nosuch")[0], 404)
        self.assertEqual(self.api("GET", "/aliveness-test/v1", user="mgr", password="pw")[0], 401)

    # ---- rabbitmqadmin ------------------------------------------------------------------------

    def test_rabbitmqadmin_export_and_import(self):
        import json
        import tempfile
        self.assertEqual(self.admin("declare", "queue", "name=ex.q", "durable=true",
                                    'arguments={"x-max-length": 7}')[0], 0)
        self.assertEqual(self.admin("declare", "exchange", "name=ex.x", "type=topic", "durable=true")[0], 0)
        self.assertEqual(self.admin("declare", "binding", "source=ex.x", "destination=ex.q",
                                    "routing_key=a.#")[0], 0)
        with tempfile.TemporaryDirectory() as tmp:
            exported = os.path.join(tmp, "defs.json")
            rc, out = self.admin("export", exported)
            self.assertEqual(rc, 0, out)
            with open(exported) as f:
                defs = json.load(f)
            self.assertIn({"name": "ex.q", "vhost": "/", "durable": True, "auto_delete": False,
                           "arguments": {"x-max-length": 7}},
                          [{k: q[k] for k in ("name", "vhost", "durable", "auto_delete", "arguments")}
                           for q in defs["queues"]])
            key = self.api("GET", "/bindings/%2F/e/ex.x/q/ex.q")[1][0]["properties_key"]
            for path in ("/bindings/%2F/e/ex.x/q/ex.q/" + q(key), "/queues/%2F/ex.q", "/exchanges/%2F/ex.x"):
                self.assertEqual(self.api("DELETE", path)[0], 204, path)
            rc, out = self.admin("import", exported)
            self.assertEqual(rc, 0, out)
        status, q_ = self.api("GET", "/queues/%2F/ex.q")
        self.assertEqual((status, q_["arguments"]), (200, {"x-max-length": 7}))
        status, bindings = self.api("GET", "/exchanges/%2F/ex.x/bindings/source")
        self.assertEqual([(b["destination"], b["routing_key"]) for b in bindings], [("ex.q", "a.#")])
        for path in ("/queues/%2F/ex.q", "/exchanges/%2F/ex.x"):
            self.api("DELETE", path)

    def test_rabbitmqadmin(self):
        self.assertEqual(self.admin("declare", "queue", "name=ra.q", "durable=false")[0], 0)
        self.assertEqual(self.admin("declare", "exchange", "name=ra.x", "type=fanout")[0], 0)
        self.assertEqual(self.admin("declare", "binding", "source=ra.x", "destination=ra.q")[0], 0)
        rc, out = self.admin("publish", "exchange=ra.x", "routing_key=any", "payload=hello admin")
        self.assertEqual(rc, 0, out)
        self.assertIn("Message published", out)
        rc, out = self.admin("list", "queues", "name", "messages")
        self.assertIn("ra.q", out)
        rc, out = self.admin("list", "exchanges", "name", "type")
        self.assertIn("ra.x", out)
        self.assertIn("fanout", out)
        rc, out = self.admin("list", "bindings", "source", "destination")
        self.assertIn("ra.x", out)
        rc, out = self.admin("get", "queue=ra.q", "ackmode=ack_requeue_true")
        self.assertEqual(rc, 0, out)
        self.assertIn("hello admin", out)
        rc, out = self.admin("purge", "queue", "name=ra.q")
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.api("GET", "/queues/%2F/ra.q")[1]["messages"], 0)
        conn = self.pika()
        ch = conn.channel()
        ch.basic_consume("ra.q", lambda *a: None, consumer_tag="ra.tag")
        rc, out = self.admin("list", "connections", "name", "user")
        self.assertIn("guest", out)
        rc, out = self.admin("list", "channels", "name")
        self.assertIn("(1)", out)
        rc, out = self.admin("list", "consumers")
        self.assertIn("ra.tag", out)
        name = self.api("GET", "/connections")[1][0]["name"]
        rc, out = self.admin("close", "connection", "name=" + name)
        self.assertEqual(rc, 0, out)
        with self.assertRaises(pika.exceptions.ConnectionClosed) as caught:
            conn.process_data_events(time_limit=2)
            conn.process_data_events(time_limit=2)
        self.assertIn("Closed via management plugin", str(caught.exception))
        self.wait_for(lambda: self.api("GET", "/connections")[1] == [])
        self.assertEqual(self.admin("delete", "binding", "source=ra.x", "destination=ra.q",
                                    "destination_type=queue", "properties_key=~")[0], 0)
        self.assertEqual(self.api("GET", "/exchanges/%2F/ra.x/bindings/source")[1], [])
        self.assertEqual(self.admin("delete", "exchange", "name=ra.x")[0], 0)
        self.assertEqual(self.admin("delete", "queue", "name=ra.q")[0], 0)
        self.assertEqual(self.api("GET", "/queues/%2F/ra.q")[0], 404)


if __name__ == "__main__":
    unittest.main()


class InnerClientTest(unittest.TestCase):
    """Get messages and the aliveness test run on the broker's own AMQP connection
    (inner_client.h): what walks the broker's connections meanwhile (listings, the statistics
    sampler every 100 ms) must take it in its stride, the broker must stop cleanly with runs in
    flight, and an alarm does not block it."""

    def test_the_aliveness_test_answers_during_an_alarm(self):
        # RabbitMQ's alarms block network readers; its management plugin's direct connection has
        # none, so the aliveness test passes while /api/health/checks/alarms reports the alarm.
        # Warren's own connection was blocked like a publisher's: 503 after 30 s.
        harness.skip_if_external("starts its own broker with a disk alarm")
        broker = harness.Broker(management=True, extra_args=["--disk_free_limit", str(1 << 60)]).start()
        try:
            self.assertEqual(broker.http_request("GET", "/api/health/checks/alarms")[0], 503)
            started = time.monotonic()
            self.assertEqual(broker.http_request("GET", "/api/aliveness-test/%2F", timeout=40)[:2],
                             (200, {"status": "ok"}))
            self.assertLess(time.monotonic() - started, 5)
            self.assertEqual(broker.http_request("POST", "/api/queues/%2F/aliveness-test/get",
                                                 {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})[:2],
                             (200, []))
        finally:
            broker.stop()

    def test_runs_under_load_hurt_no_listing_and_no_shutdown(self):
        # The same with nothing held: runs come and go from four clients while the listings
        # and the sampler walk the connections, and the broker stops in the middle of them.
        harness.skip_if_external("starts its own broker")
        broker = harness.Broker(management=True, extra_args=["--collect_statistics_interval", "100"]).start()
        stopped = False
        try:
            import threading

            stop = threading.Event()
            answers = []

            def run():
                while not stop.is_set():
                    try:
                        answers.append(broker.http_request("GET", "/api/aliveness-test/%2F", timeout=10)[0])
                    except OSError:
                        answers.append("closed")

            threads = [threading.Thread(target=run, daemon=True) for _ in range(4)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                for path in ("/api/connections", "/api/channels", "/api/overview"):
                    self.assertEqual(broker.http_request("GET", path)[0], 200, path)
            self.assertIn(200, answers)
            direct = [c for c in broker.http_request("GET", "/api/connections")[1] if c.get("type") == "direct"]
            for c in direct:  # one in flight, if any: listed as RabbitMQ lists its direct connections
                self.assertEqual(c["protocol"], "Direct 0-9-1")
            broker.stop()  # with runs in flight: exit status 0, no sanitizer report
            stopped = True
            stop.set()
            for t in threads:
                t.join(15)
        finally:
            stop.set()
            if not stopped:
                broker.stop()
