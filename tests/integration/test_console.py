"""The web console (console/, docs/console.md) in a real browser against the real broker.

Headless Debian Chromium through Selenium (console_browser.py); clients are pika and the HTTP
API. Each test fails on any SEVERE entry in the browser's console (a script error, a request
refused by the Content-Security-Policy, a failed request) except the refusals it provokes.
Screenshots of every page go to $WARREN_ARTIFACTS, else <build dir>/console-screenshots.
Skipped only when Chromium, its driver or Selenium is not installed.
"""

import json
import os
import tempfile
import threading
import time
import unittest
import urllib.parse

import pika

import console_browser
import harness


def q(name):
    return urllib.parse.quote(name, safe="")


def artifacts():
    return os.environ.get("WARREN_ARTIFACTS") or os.path.join(
        os.path.dirname(os.path.abspath(harness.broker_binary())), "console-screenshots")


class ConsoleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        console_browser.skip_unless_available()
        harness.skip_if_external("starts its own broker with the management port")
        # A fast sampler, so that the charts move within seconds.
        cls.broker = harness.Broker(management=True, extra_args=["--collect_statistics_interval", "500"]).start()
        api = cls.broker.http_request
        for vhost in ("team", "routing"):
            assert api("PUT", "/api/vhosts/" + vhost)[0] in (201, 204)
        for vhost in ("team", "routing"):  # administrators act with their AMQP permissions
            assert api("PUT", "/api/permissions/%s/guest" % vhost, {"configure": ".*", "write": ".*", "read": ".*"})[0] in (201, 204)
        assert api("PUT", "/api/users/watcher", {"password": "w", "tags": "monitoring"})[0] == 201
        # a monitor sees the queues of the vhosts it may use (RabbitMQ's filter_vhost): "/" and team
        for vhost in ("%2F", "team"):
            assert api("PUT", "/api/permissions/%s/watcher" % vhost, {"configure": ".*", "write": ".*", "read": ".*"})[0] == 201
        assert api("PUT", "/api/users/manager", {"password": "m", "tags": "management"})[0] == 201
        assert api("PUT", "/api/permissions/team/manager", {"configure": ".*", "write": ".*", "read": ".*"})[0] == 201
        assert api("PUT", "/api/users/nobody", {"password": "n", "tags": ""})[0] == 201
        cls.base = "http://127.0.0.1:%d" % cls.broker.management_port
        try:
            cls.browser = console_browser.Browser(cls.base)
        except Exception:
            cls.broker.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.browser.quit()
        finally:
            cls.broker.stop()

    def setUp(self):
        self.b = self.browser
        self.b.driver.set_window_size(*console_browser.LAPTOP)
        self.b.console_entries()  # what earlier tests left

    def tearDown(self):
        self.assertEqual(self.b.severe(), [], "the browser's console reported errors")

    def api(self, method, path, body=None, **kw):
        return self.broker.http_request(method, "/api" + path, body, **kw)

    def pika(self, vhost="/"):
        return pika.BlockingConnection(self.broker.pika_parameters(virtual_host=vhost))

    def shot(self, name):
        self.b.screenshot(artifacts(), name)

    def cells(self, table, name):
        """The cell texts of the drawn row of `table` that has a cell reading `name`, or None."""
        return self.b.script("""
            const rows = document.querySelectorAll('[data-table="' + arguments[0] + '"][data-state="ready"] tbody tr');
            for (const row of rows) {
              const cells = [...row.cells].map((c) => c.textContent);
              if (cells.includes(arguments[1])) return cells;
            }
            return null;""", table, name)

    def wait_for(self, fn, message, timeout=console_browser.WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = fn()
            if value:
                return value
            time.sleep(0.05)
        self.fail(message)

    # ---- static files ------------------------------------------------------------------------

    def test_files_are_served_with_their_type_and_security_headers(self):
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.broker.management_port, timeout=10)
        try:
            conn.request("GET", "/")
            r = conn.getresponse()
            page = r.read()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.getheader("Content-Type"), "text/html; charset=utf-8")
            csp = r.getheader("Content-Security-Policy")
            self.assertIn("script-src 'self'", csp)
            self.assertNotIn("unsafe-inline", csp)
            self.assertEqual(r.getheader("X-Content-Type-Options"), "nosniff")
            etag = r.getheader("ETag")
            self.assertTrue(etag and etag.startswith('"'))
            self.assertNotIn(b"<script>", page)  # every script is a file (CSP)
            conn.request("GET", "/", headers={"If-None-Match": etag})
            r = conn.getresponse()
            self.assertEqual((r.status, r.read()), (304, b""))
            for path, kind in (("/app.js", "text/javascript; charset=utf-8"), ("/console.css", "text/css; charset=utf-8"),
                               ("/vendor/chart.min.js", "text/javascript; charset=utf-8")):
                conn.request("GET", path)
                r = conn.getresponse()
                self.assertEqual((r.status, r.getheader("Content-Type")), (200, kind), path)
                self.assertGreater(len(r.read()), 100)
            conn.request("GET", "/no/such/file.js")
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 404)
            conn.request("POST", "/index.html", body=b"", headers={"Content-Length": "0"})
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 405)
        finally:
            conn.close()
        # The API is still the API: no credentials, 401 as before.
        self.assertEqual(self.api("GET", "/overview", user=False)[0], 401)

    # ---- logging in and out ----------------------------------------------------------------------

    def test_every_page_renders_for_an_administrator(self):
        conn = self.pika()
        ch = conn.channel()
        ch.queue_declare("console-pages", durable=True)
        ch.basic_publish("", "console-pages", b"hello")
        try:
            self.b.login("guest", "guest")
            self.assertIn("administrator", self.b.wait_visible("#user").text)
            nav = [a.text for a in self.b.find("#nav a")]
            self.assertEqual(nav, ["Overview", "Connections", "Channels", "Exchanges", "Queues", "Topology", "Admin"])
            connection = self.wait_for(lambda: self.api("GET", "/connections")[1], "no connection listed")[0]["name"]
            pages = [
                ("", "overview", "[data-tile=queues]"),
                ("connections", "connections", '[data-table="connections"][data-state="ready"]'),
                ("connections/" + q(connection), "connection", "main h1"),
                ("channels", "channels", '[data-table="channels"][data-state="ready"]'),
                ("exchanges", "exchanges", '[data-table="exchanges"][data-state="ready"]'),
                ("exchanges/%2F/amq.topic", "exchange", "main .facts .fact"),
                ("exchanges/%2F/amq.default", "exchange-default", "main .facts .fact"),
                ("queues", "queues", '[data-table="queues"][data-state="ready"]'),
                ("queues/%2F/console-pages", "queue", "[data-tile=ready]"),
                ("topology", "topology", "svg.topology"),
                ("admin/users", "admin-users", '[data-table="users"][data-state="ready"]'),
                ("admin/users/guest", "admin-user", "main table.list"),
                ("admin/vhosts", "admin-vhosts", '[data-table="vhosts"][data-state="ready"]'),
                ("admin/policies", "admin-policies", '[data-table="policies"][data-state="ready"]'),
                ("admin/operator-policies", "admin-operator-policies", '[data-table="operator-policies"][data-state="ready"]'),
                ("admin/limits", "admin-limits", "main table.list"),
                ("admin/definitions", "admin-definitions", "main form"),
            ]
            for route, name, ready in pages:
                with self.subTest(page=route):
                    self.b.go(route)
                    self.b.wait_visible(ready)
                    self.shot(name)
                    self.assertEqual(self.b.severe(), [], "console errors on #/" + route)
            self.b.go("queues/%2F/console-pages")
            self.b.wait_text("[data-tile=ready]", "1")
            # A phone: one column, nothing wider than the screen.
            self.b.driver.set_window_size(*console_browser.PHONE)
            for route, name, ready in (("", "phone-overview", "[data-tile=queues]"),
                                       ("queues", "phone-queues", '[data-table="queues"][data-state="ready"]')):
                self.b.go(route)
                self.b.wait_visible(ready)
                self.shot(name)
                self.assertLessEqual(self.b.script("return document.documentElement.scrollWidth"),
                                     self.b.script("return window.innerWidth"), "wider than a phone: #/" + route)
        finally:
            conn.close()

    def test_login_refusals_are_explained(self):
        self.b.login("guest", "wrong", expect_success=False)
        self.b.wait_text("#login-message", "Login failed")
        self.b.login("nobody", "n", expect_success=False)
        self.b.wait_text("#login-message", "Not allowed")
        self.assertTrue(self.b.find("#top")[0].get_attribute("hidden") is not None)
        self.shot("login-not-allowed")
        # The two 401s are the refusals asked for.
        self.assertEqual(self.b.severe(allowed=("/api/whoami - Failed to load resource",)), [])

    def test_logout_and_the_idle_session_end(self):
        self.b.login("guest", "guest")
        self.b.logout()
        self.assertIsNone(self.b.script("return sessionStorage.getItem('warren.session')"))
        self.b.open("queues")  # a reload does not bring the session back
        self.b.wait_visible("#login-user")
        # Idle for longer than the limit: the running page notices (it checks every 15 s)...
        self.b.login("guest", "guest")
        self.b.script("sessionStorage.setItem('warren.activity', String(Date.now() - 31 * 60 * 1000))")
        self.b.wait_text("#login-message", "without activity", timeout=25)
        # ...and so does a page loaded later.
        self.b.login("guest", "guest")
        self.b.script("sessionStorage.setItem('warren.activity', String(Date.now() - 31 * 60 * 1000))")
        self.b.open("")
        self.b.wait_text("#login-message", "without activity")
        self.assertIsNone(self.b.script("return sessionStorage.getItem('warren.session')"))

    # ---- who sees what ---------------------------------------------------------------------------

    def assert_read_only(self, route, ready):
        self.b.go(route)
        self.b.wait_visible(ready)
        writes = self.b.script("""return [...document.querySelectorAll(
            'main form, main button.danger, main button.primary, main details.panel')].map(e => e.outerHTML.slice(0, 80))""")
        self.assertEqual(writes, [], "write actions on #/" + route)

    def test_monitoring_user_sees_everything_and_changes_nothing(self):
        self.assertEqual(self.api("PUT", "/queues/team/team-only", {})[0], 201)
        conn = self.pika()
        try:
            self.b.login("watcher", "w")
            nav = [a.text for a in self.b.find("#nav a")]
            self.assertNotIn("Admin", nav)
            self.assert_read_only("", "[data-tile=queues]")
            self.b.wait_text(".facts", "File descriptors")  # the node, for monitors
            self.assert_read_only("queues", '[data-table="queues"][data-state="ready"]')
            rows = self.b.wait_table("queues")
            self.assertTrue(any("team-only" in r for r in rows), rows)  # its vhosts, every user's queues
            self.assert_read_only("queues/team/team-only", "[data-tile=ready]")
            self.shot("monitoring-queue")
            self.assert_read_only("exchanges/%2F/amq.direct", "main .facts .fact")
            self.assert_read_only("connections", '[data-table="connections"][data-state="ready"]')
            self.assertTrue(self.b.wait_table("connections")[0].startswith("127.0.0.1"))  # sees guest's
            self.b.go("admin")
            self.b.wait_text("main .problem", "administrator and policymaker")
        finally:
            conn.close()

    def test_management_user_sees_only_its_vhost(self):
        self.assertEqual(self.api("PUT", "/queues/team/team-queue", {})[0], 201)
        self.assertEqual(self.api("PUT", "/queues/%2F/slash-queue", {})[0], 201)
        self.b.login("manager", "m")
        vhosts = self.b.script("return [...document.querySelectorAll('#vhost option')].map(o => o.value)")
        self.assertEqual(vhosts, ["", "team"])
        self.assertNotIn("Admin", [a.text for a in self.b.find("#nav a")])
        self.b.go("queues")
        rows = self.b.wait_table("queues")
        self.assertTrue(any("team-queue" in r for r in rows), rows)
        self.assertFalse(any("slash-queue" in r for r in rows), rows)
        self.assertTrue(self.b.section("Add a queue").is_displayed())  # management users may declare
        self.b.go("")
        self.b.wait_text(".facts", "monitoring and administrator users")  # no node details
        self.shot("management-overview")

    def test_memory_alarm_is_shown_on_every_page_until_it_clears(self):
        fd, config = tempfile.mkstemp(prefix="warren-console-alarm-", suffix=".conf")
        with os.fdopen(fd, "w") as f:
            f.write("memory_high_watermark = 2000000\n")  # 2 MB of messages
        broker = harness.Broker(management=True, extra_args=["--config", config]).start()
        try:
            def api(method, path, body=None):
                return broker.http_request(method, "/api" + path, body)
            api("PUT", "/queues/%2F/heavy", {})
            for _ in range(30):  # 3 MB
                api("POST", "/exchanges/%2F/amq.default/publish", {"routing_key": "heavy", "properties": {},
                                                                   "payload": "x" * 100000, "payload_encoding": "string"})
            self.wait_for(lambda: api("GET", "/health/checks/alarms")[0] == 503, "no memory alarm")
            self.b.base_url = "http://127.0.0.1:%d" % broker.management_port
            self.b.login("guest", "guest")
            self.b.wait_text("#alarms", "Memory alarm")
            self.b.wait_text(".fact.alarmed", "Message memory")
            self.shot("alarm")
            self.b.go("queues")
            self.assertTrue(self.b.wait_visible("#alarms").is_displayed())
            api("DELETE", "/queues/%2F/heavy/contents")
            self.b.wait(lambda d: not self.b.find("#alarms")[0].is_displayed(), "the banner stayed", timeout=30)
            # The health check's 503 is how the page learns of alarms.
            self.assertEqual(self.b.severe(allowed=("/api/health/checks/alarms - Failed to load resource",)), [])
        finally:
            self.b.base_url = self.base
            broker.stop()
            os.unlink(config)

    # ---- queues ---------------------------------------------------------------------------------

    def test_queue_declared_over_amqp_shows_its_depth(self):
        conn = self.pika()
        try:
            ch = conn.channel()
            ch.queue_declare("amqp-depth")
            for i in range(7):
                ch.basic_publish("", "amqp-depth", b"m%d" % i)
            self.b.login("guest", "guest")
            self.b.go("queues")
            self.b.wait_table("queues")
            self.b.find('[data-table="queues"] input.filter')[0].send_keys("amqp-depth")
            # name, features, state, then ready
            self.b.wait(lambda d: (c := self.cells("queues", "amqp-depth")) and c[c.index("amqp-depth") + 3] == "7",
                        "amqp-depth does not show 7 ready messages")
            self.b.click('[data-table="queues"] a[href="#/queues/%2F/amqp-depth"]')
            self.b.wait_text("[data-tile=ready] .tile-value", "7")
            # Draining over AMQP shows up without a reload (the page polls).
            for _ in range(7):
                ch.basic_get("amqp-depth", auto_ack=True)
            self.b.wait_text("[data-tile=ready] .tile-value", "0")
        finally:
            conn.close()

    def test_queues_table_sorts_filters_and_pages(self):
        for i in range(25):
            self.api("PUT", "/queues/%%2F/paged-%02d" % i, {})
        self.api("POST", "/exchanges/%2F/amq.default/publish", {"routing_key": "paged-07", "properties": {},
                                                                "payload": "x", "payload_encoding": "string"})
        self.b.login("guest", "guest")
        self.b.script("sessionStorage.setItem('warren.table.queues', JSON.stringify({pageSize: 20}))")
        self.b.go("queues")
        self.b.wait_table("queues")
        self.b.find('[data-table="queues"] input.filter')[0].send_keys("^paged-")
        self.b.click('[data-table="queues"] input[type=checkbox]')  # regex
        self.b.wait_text(".pager .page", "Page 1 of 2")
        self.b.wait_text('[data-table="queues"] .count', "25 of")
        self.b.click('[data-table="queues"] button[data-sort="messages_ready"]')  # high to low
        rows = self.b.wait(lambda d: (r := self.b.wait_table("queues")) and "paged-07" in r[0] and r,
                           "sorting by ready did not put paged-07 first")
        self.assertEqual(len(rows), 20)
        self.b.click('.pager button[aria-label="Next page"]')
        self.b.wait_text(".pager .page", "Page 2 of 2")
        self.b.wait(lambda d: len(self.b.wait_table("queues")) == 5, "page 2 does not show the last 5 queues")
        self.shot("queues-paged")

    def test_messages_published_from_the_console_reach_a_pika_consumer(self):
        conn = self.pika()
        try:
            ch = conn.channel()
            ch.queue_declare("console-in")
            ch.exchange_declare("console-x", "topic")
            ch.queue_bind("console-in", "console-x", "orders.#")
            got = []
            ch.basic_consume("console-in", lambda c, m, p, body: got.append((m.routing_key, p.headers, body)), auto_ack=True)
            self.b.login("guest", "guest")
            # from the queue's page: the default exchange, the queue's name as key
            self.b.go("queues/%2F/console-in")
            form = self.b.section("Publish a message")
            form.find_element("css selector", "textarea[name=payload]").send_keys("from the queue page")
            form.find_element("css selector", "button[type=submit]").click()
            self.b.wait_text("form.publish .form-status", "Message published.")
            # from the exchange's page, with a routing key and a header
            self.b.go("exchanges/%2F/console-x")
            form = self.b.section("Publish a message")
            form.find_element("css selector", "input[name=routing_key]").send_keys("orders.eu")
            form.find_element("css selector", ".arg-key").send_keys("origin")
            form.find_element("css selector", ".arg-value").send_keys("console")
            form.find_element("css selector", "textarea[name=payload]").send_keys("from the exchange page")
            form.find_element("css selector", "button[type=submit]").click()
            self.b.wait_text("form.publish .form-status", "Message published.")
            self.shot("exchange-publish")
            deadline = time.monotonic() + console_browser.WAIT
            while len(got) < 2 and time.monotonic() < deadline:
                conn.process_data_events(time_limit=0.1)
            self.assertEqual(got, [("console-in", None, b"from the queue page"),
                                   ("orders.eu", {"origin": "console"}, b"from the exchange page")])
            form.find_element("css selector", "input[name=routing_key]").clear()
            form.find_element("css selector", "input[name=routing_key]").send_keys("nowhere")
            form.find_element("css selector", "button[type=submit]").click()
            self.b.wait_text("form.publish .form-status", "not routed")
        finally:
            conn.close()

    def test_get_messages_purge_and_delete(self):
        conn = self.pika()
        try:
            ch = conn.channel()
            ch.queue_declare("console-get")
            ch.basic_publish("", "console-get", b"peek at me", pika.BasicProperties(content_type="text/plain"))
            ch.basic_publish("", "console-get", b"\xff\xfe binary")
        finally:
            conn.close()
        self.b.login("guest", "guest")
        self.b.go("queues/%2F/console-get")
        form = self.b.section("Get messages")
        count = form.find_element("css selector", "input[name=count]")
        count.clear()
        count.send_keys("2")
        form.find_element("css selector", "button[type=submit]").click()
        self.b.wait_text(".messages", "peek at me")
        payloads = [p.text for p in self.b.find(".messages pre.payload")]
        self.assertEqual(payloads[0], "peek at me")
        self.assertIn("base64", self.b.find(".messages")[0].text)  # the binary one, auto-encoded
        self.shot("queue-get")
        self.assertEqual(self.api("GET", "/queues/%2F/console-get")[1]["messages"], 2)  # requeued
        self.b.click(".danger-zone button.danger")  # purge
        self.b.click("dialog.confirm button[value=ok]")
        self.b.wait_text("#notices", "purged")
        self.assertEqual(self.api("GET", "/queues/%2F/console-get")[1]["messages"], 0)
        self.b.find(".danger-zone button.danger")[1].click()  # delete
        self.b.click("dialog.confirm button[value=ok]")
        self.b.wait(lambda d: d.current_url.endswith("#/queues"), "not back on the queue list")
        self.assertEqual(self.api("GET", "/queues/%2F/console-get")[0], 404)

    # ---- charts ------------------------------------------------------------------------------------

    def test_charts_update_while_a_publisher_runs(self):
        stop = threading.Event()
        conn = self.pika()
        conn.channel().queue_declare("charted")
        conn.close()

        def publish():
            c = self.pika()
            ch = c.channel()
            while not stop.is_set():
                for _ in range(20):
                    ch.basic_publish("", "charted", b"tick")
                c.sleep(0.05)
            c.close()

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        try:
            self.b.login("guest", "guest")
            self.b.go("")
            read = """const c = Chart.getChart(document.querySelector('[data-chart=' + arguments[0] + '] canvas'));
                      return c ? c.data.datasets.map(d => d.data.map(p => [p.x, p.y])) : null;"""
            # A publish rate well above zero (the publisher sends about 400/s; the first sample may
            # cover a window in which it had only just started), and ready messages growing.
            rates = self.b.wait(lambda d: (r := self.b.script(read, "rates")) and r[0] and r[0][-1][1] > 10 and r,
                                "the rates chart never showed publishing", timeout=30)
            first_ready = self.b.script(read, "queued")[0]
            self.b.wait(lambda d: (r := self.b.script(read, "queued")[0]) and r[-1][0] > first_ready[-1][0]
                        and r[-1][1] > 0, "the queued chart did not move on", timeout=30)
            self.shot("overview-charts")
            self.b.go("queues/%2F/charted")
            self.b.wait(lambda d: (r := self.b.script(read, "rates")) and r[0] and r[0][-1][1] > 0,
                        "the queue's rate chart never showed publishing", timeout=30)
            self.shot("queue-charts")
        finally:
            stop.set()
            publisher.join(10)

    # ---- connections ---------------------------------------------------------------------------------

    def test_close_a_connection_with_a_reason(self):
        conn = self.pika()
        try:
            self.b.login("guest", "guest")
            self.b.go("connections")
            self.b.wait_table("connections")
            name = self.api("GET", "/connections")[1][0]["name"]
            self.b.go("connections/" + q(name))
            self.b.wait_text("main .facts", "AMQP 0-9-1")
            self.b.wait_text("main", "product")  # client properties
            self.shot("connection")
            self.b.click(".danger-zone button.danger")
            reason = self.b.wait_visible("dialog.confirm input")
            reason.clear()
            reason.send_keys("maintenance from the console")
            self.b.click("dialog.confirm button[value=ok]")
            with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as caught:
                deadline = time.monotonic() + console_browser.WAIT
                while time.monotonic() < deadline:
                    conn.process_data_events(time_limit=0.1)
            self.assertEqual(caught.exception.reply_code, 320)
            self.assertIn("maintenance from the console", caught.exception.reply_text)
            self.b.wait(lambda d: d.current_url.endswith("#/connections"), "not back on the list")
        finally:
            if conn.is_open:
                conn.close()

    # ---- administration --------------------------------------------------------------------------------

    def test_administrator_manages_users_vhosts_policies_and_definitions(self):
        self.b.login("guest", "guest")
        self.b.go("admin/vhosts")
        self.b.wait_table("vhosts")
        form = self.b.section("Add a virtual host")
        form.find_element("css selector", "input[name=name]").send_keys("made-here")
        form.find_element("css selector", "button[type=submit]").click()
        self.b.wait_text(".form-status", "added")
        self.assertEqual(self.api("GET", "/vhosts/made-here")[0], 200)
        self.b.go("admin/users")
        self.b.wait_table("users")
        form = self.b.section("Add a user")
        form.find_element("css selector", "input[name=name]").send_keys("newbie")
        form.find_element("css selector", "input[name=password]").send_keys("secret")
        form.find_element("xpath", ".//button[normalize-space()='policymaker']").click()
        form.find_element("css selector", "button[type=submit]").click()
        self.b.wait_text(".form-status", "added")
        self.assertEqual(self.api("GET", "/users/newbie")[1]["tags"], ["policymaker"])
        self.b.go("admin/users/newbie")
        grant = self.b.wait_text("main form", "Set permissions")
        from selenium.webdriver.support.ui import Select
        Select(grant.find_element("css selector", "select[name=vhost]")).select_by_value("made-here")
        grant.find_element("css selector", "button[type=submit]").click()
        self.b.wait_text("main table.list", "made-here")
        self.assertEqual(self.api("GET", "/permissions/made-here/newbie")[1]["write"], ".*")
        self.shot("admin-user-permissions")
        # the new policymaker sees policies and limits only
        self.b.login("newbie", "secret")
        self.assertIn("Admin", [a.text for a in self.b.find("#nav a")])
        self.b.go("admin")
        tabs = self.b.script("return [...document.querySelectorAll('.tabs a')].map(a => a.dataset.tab)")
        self.assertEqual(tabs, ["policies", "limits"])
        form = self.b.section("Add or update a policy")
        form.find_element("css selector", "input[name=name]").send_keys("short-lived")
        form.find_element("css selector", "input[name=pattern]").send_keys("^tmp\\.")
        form.find_element("xpath", ".//button[normalize-space()='message-ttl']").click()
        form.find_elements("css selector", ".arg-value")[0].send_keys("60000")
        form.find_element("css selector", "button[type=submit]").click()
        self.b.wait_text(".form-status", "saved")
        policy = self.api("GET", "/policies/made-here/short-lived")[1]
        self.assertEqual((policy["pattern"], policy["definition"]), ("^tmp\\.", {"message-ttl": 60000}))
        # definitions: import a file, then download
        self.b.login("guest", "guest")
        self.b.go("admin/definitions")
        defs = {"queues": [{"name": "imported-q", "vhost": "made-here", "durable": True, "auto_delete": False,
                            "arguments": {}}]}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(defs, f)
        try:
            upload = self.b.wait_text("main form", "Import definitions")
            upload.find_element("css selector", "input[type=file]").send_keys(f.name)
            upload.find_element("css selector", "button[type=submit]").click()
            self.b.wait_text(".form-status", "Imported.")
        finally:
            os.unlink(f.name)
        self.assertEqual(self.api("GET", "/queues/made-here/imported-q")[0], 200)
        download = self.b.wait_text("main form", "Download definitions")
        download.find_element("css selector", "button[type=submit]").click()
        self.b.wait_text(".form-status", "Downloaded:")

    # ---- topology ---------------------------------------------------------------------------------------

    ROUTING_SETUP = [
        ("exchanges", "d", {"type": "direct"}),
        ("exchanges", "t", {"type": "topic"}),
        ("exchanges", "f", {"type": "fanout"}),
        ("exchanges", "h", {"type": "headers"}),
        ("exchanges", "ae", {"type": "fanout"}),
        ("exchanges", "with-ae", {"type": "direct", "arguments": {"alternate-exchange": "ae"}}),
        ("exchanges", "loop-a", {"type": "fanout"}),
        ("exchanges", "loop-b", {"type": "fanout"}),
        ("exchanges", "inner", {"type": "topic", "internal": True}),
    ]
    ROUTING_BINDINGS = [
        ("d", "q", "qd", "red", {}),
        ("t", "q", "qt1", "a.*.c", {}),
        ("t", "q", "qt2", "a.#", {}),
        ("t", "q", "qt3", "#.z", {}),
        ("t", "e", "h", "h.#", {}),
        ("f", "q", "qf", "", {}),
        ("h", "q", "qh-all", "", {"x-match": "all", "k": "v", "n": 1}),
        ("h", "q", "qh-any", "", {"x-match": "any", "k": "v", "x-k": "y"}),
        ("h", "q", "qh-any-x", "", {"x-match": "any-with-x", "x-k": "y"}),
        ("ae", "q", "qae", "", {}),
        ("with-ae", "q", "qd", "blue", {}),
        ("loop-a", "e", "loop-b", "", {}),
        ("loop-b", "e", "loop-a", "", {}),
        ("loop-b", "q", "qloop", "", {}),
        ("d", "e", "inner", "green", {}),
        ("inner", "q", "qinner", "#", {}),
    ]
    MESSAGES = [
        ("d", "red", {}), ("d", "green", {}), ("d", "other", {}), ("d", "x", {"CC": ["red"]}),
        ("t", "a.b.c", {}), ("t", "a", {}), ("t", "z", {}), ("t", "a.z", {}), ("t", "b.c", {}),
        ("t", "h.1", {"k": "v", "n": 1}), ("t", "h.1", {"k": "v"}), ("t", "", {}),
        ("f", "anything", {}), ("h", "", {"k": "v", "n": 1}), ("h", "", {"k": "v", "n": 2}), ("h", "", {"x-k": "y"}),
        ("h", "", {"n": 1.0, "k": "v"}), ("h", "", {}), ("with-ae", "blue", {}), ("with-ae", "nothing", {}),
        ("loop-a", "", {}), ("", "qf", {}), ("", "nosuch", {}),
    ]

    def test_topology_route_agrees_with_the_broker(self):
        v = "routing"
        queues = sorted({b[2] for b in self.ROUTING_BINDINGS if b[1] == "q"})
        for name in queues:
            self.api("PUT", "/queues/%s/%s" % (v, name), {})
        for _, name, body in self.ROUTING_SETUP:
            self.assertIn(self.api("PUT", "/exchanges/%s/%s" % (v, name), body)[0], (201, 204))
        for source, kind, dest, key, args in self.ROUTING_BINDINGS:
            self.assertEqual(self.api("POST", "/bindings/%s/e/%s/%s/%s" % (v, source, kind, dest),
                                      {"routing_key": key, "arguments": args})[0], 201)
        self.b.login("guest", "guest")
        self.b.script("sessionStorage.setItem('warren.vhost', 'routing')")
        self.b.open("topology")
        self.b.wait_visible("svg.topology")
        # the browser's answer for every message, from the page's own modules and API lists
        computed = self.b.async_script("""
            const [messages, done] = arguments;
            (async () => {
              const [{route}, {get, apiPath}] = await Promise.all([import('/lib/route.js'), import('/lib/api.js')]);
              const data = {exchanges: await get(apiPath('exchanges', 'routing')),
                            bindings: await get(apiPath('bindings', 'routing')),
                            policies: await get(apiPath('policies', 'routing'))};
              return messages.map(([x, key, headers]) => route(data, x, key, headers).queues);
            })().then(done, (e) => done({error: String(e)}));""", self.MESSAGES)
        self.assertIsInstance(computed, list, computed)
        # the broker's answer: publish each, see which queues got it
        for (exchange, key, headers), expected in zip(self.MESSAGES, computed):
            with self.subTest(exchange=exchange, key=key, headers=headers):
                for name in queues:
                    self.api("DELETE", "/queues/%s/%s/contents" % (v, name))
                status, _ = self.api("POST", "/exchanges/%s/%s/publish" % (v, exchange or "amq.default"),
                                     {"routing_key": key, "properties": {"headers": headers} if headers else {},
                                      "payload": "p", "payload_encoding": "string"})
                self.assertEqual(status, 200)
                landed = sorted(x["name"] for x in self.api("GET", "/queues/%s?columns=name,messages" % v)[1]
                                if x["messages"] > 0)
                self.assertEqual(expected, landed)
        # the picture: route one through the form, the path lights up
        from selenium.webdriver.support.ui import Select
        Select(self.b.find(".route-form select[name=exchange]")[0]).select_by_value("t")
        self.b.find(".route-form input[name=routing_key]")[0].send_keys("h.1")
        self.b.find(".route-form .arg-key")[0].send_keys("k")
        self.b.find(".route-form .arg-value")[0].send_keys("v")
        self.b.find(".route-form .arg-key")[1].send_keys("n")
        self.b.find(".route-form .arg-value")[1].send_keys("1")
        Select(self.b.find(".route-form .arg-type")[1]).select_by_value("number")
        self.b.click(".route-form button[type=submit]")
        self.b.wait_text(".route-result", "qh-all")
        lit = self.b.script("return [...document.querySelectorAll('svg.topology .node.hit')].map(n => n.dataset.node)")
        self.assertEqual(sorted(lit), sorted(["x:t", "x:h", "q:qh-all", "q:qh-any"]))
        self.assertEqual(len(self.b.find("svg.topology .edge.hit")), 3)
        self.b.driver.set_window_size(1366, 1500)  # the picture and the answer in one shot
        self.b.script("window.scrollTo(0, 0)")
        self.shot("topology-route")
        Select(self.b.find(".route-form select[name=exchange]")[0]).select_by_value("with-ae")
        self.b.find(".route-form input[name=routing_key]")[0].clear()
        self.b.find(".route-form input[name=routing_key]")[0].send_keys("nothing")
        self.b.click(".route-form button[type=submit]")
        self.b.wait_text(".route-answer", 'alternate exchange "ae" took the message')


if __name__ == "__main__":
    unittest.main()
