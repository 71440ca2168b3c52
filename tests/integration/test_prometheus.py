"""The Prometheus endpoint (prometheus_port): rabbitmq_prometheus's metric names and labels,
so RabbitMQ's Grafana dashboards work against Warren. /metrics sums queue metrics over every
queue (RabbitMQ's default), /metrics/per-object has one series per queue labelled vhost and
queue. The text must pass Debian's `promtool check metrics` (parser and linter), and a real
Prometheus server (Debian's `prometheus`) scraping Warren must answer a PromQL query with the
queue depth.

Not runnable against an external broker: the endpoint's port is the harness's.
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.parse

import pika

import harness

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"

# The families RabbitMQ's "RabbitMQ-Overview" dashboard queries that Warren backs today
# (deps/rabbitmq_prometheus/docker/grafana/dashboards/RabbitMQ-Overview.json).
DASHBOARD_FAMILIES = [
    "rabbitmq_identity_info", "rabbitmq_build_info", "rabbitmq_connections", "rabbitmq_channels",
    "rabbitmq_queues", "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked",
    "rabbitmq_global_consumers", "rabbitmq_process_open_fds", "rabbitmq_process_max_fds",
    "rabbitmq_process_resident_memory_bytes", "rabbitmq_resident_memory_limit_bytes",
    "rabbitmq_disk_space_available_bytes", "rabbitmq_disk_space_available_limit_bytes",
    "rabbitmq_erlang_uptime_seconds",
]


def scrape(broker, path="/metrics"):
    """GET path from the Prometheus port without credentials: (status, content type, text)."""
    conn = http.client.HTTPConnection(broker.host, broker.prometheus_port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read().decode("utf-8")
    finally:
        conn.close()


def promtool_check(text):
    """(exit status, output) of `promtool check metrics` on text."""
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode("utf-8"),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def unescape(value):
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(value[i + 1], "\\" + value[i + 1]))
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_labels(text):
    """'a="x",b="y\\"z"' -> {'a': 'x', 'b': 'y"z'} (the exposition format's escaping)."""
    labels, i = {}, 0
    while i < len(text):
        eq = text.index("=", i)
        name = text[i:eq].strip(", ")
        assert text[eq + 1] == '"', text
        j = eq + 2
        while text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        labels[name] = unescape(text[eq + 2:j])
        i = j + 1
    return labels


def parse(text):
    """The samples of an exposition: {name: [(labels dict, value)]}, and the family blocks in
    order [(name, type, help)]."""
    samples, families = {}, []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            families.append([name, None, help_text])
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert families and families[-1][0] == name, line
            families[-1][1] = kind
        elif line and not line.startswith("#"):
            if "{" in line:
                name = line[:line.index("{")]
                labels_text, value = line[line.index("{") + 1:].rsplit("} ", 1)
                labels = parse_labels(labels_text)
            else:
                name, value = line.split(" ")
                labels = {}
            samples.setdefault(name, []).append((labels, float(value)))
    return samples, families


def value_of(samples, name, **labels):
    found = [v for l, v in samples.get(name, []) if l == labels]
    if len(found) != 1:
        raise AssertionError("%s%r: %d samples in %r" % (name, labels, len(found), samples.get(name)))
    return found[0]


@harness.skip_if_external("scrapes the broker's own Prometheus port")
@unittest.skipUnless(os.access(PROMTOOL, os.X_OK), "Debian's prometheus package (promtool) is not installed")
class PrometheusEndpointTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.broker = harness.Broker(management=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()

    def setUp(self):
        self.conn = pika.BlockingConnection(self.broker.pika_parameters())
        self.ch = self.conn.channel()
        self.queues = []

    def tearDown(self):
        for q in self.queues:
            self.ch.queue_delete(q)
        self.conn.close()

    def declare(self, name, messages=0):
        self.ch.queue_declare(name)
        self.queues.append(name)
        for i in range(messages):
            self.ch.basic_publish("", name, b"m%d" % i)

    def wait_ready(self, name, n):
        """Publishes are asynchronous: wait until the queue holds n ready messages."""
        deadline = time.monotonic() + 5
        while self.ch.queue_declare(name, passive=True).method.message_count != n:
            self.assertLess(time.monotonic(), deadline, "queue %r never held %d messages" % (name, n))
            time.sleep(0.02)

    def assert_promtool_passes(self, path):
        status, ctype, text = scrape(self.broker, path)
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        rc, out = promtool_check(text)
        self.assertEqual((rc, out), (0, ""), "promtool check metrics on %s:\n%s" % (path, text))
        return text

    def test_promtool_itself_refuses_bad_text(self):
        # The check below means something: promtool fails on a parse error and on a lint problem.
        self.assertNotEqual(promtool_check('bad{ 1\n')[0], 0)
        self.assertNotEqual(promtool_check('no_help 1\n')[0], 0)

    def test_both_endpoints_pass_promtool(self):
        self.declare("prom-check", messages=2)
        self.wait_ready("prom-check", 2)
        for path in ("/metrics", "/metrics/per-object"):
            with self.subTest(path=path):
                self.assert_promtool_passes(path)

    def test_every_family_is_one_block_with_help_and_type(self):
        self.declare("prom-blocks", messages=1)
        for path in ("/metrics", "/metrics/per-object"):
            _, _, text = scrape(self.broker, path)
            samples, families = parse(text)
            names = [f[0] for f in families]
            self.assertEqual(len(names), len(set(names)), "a family written twice on %s" % path)
            for name, kind, help_text in families:
                self.assertIn(kind, ("gauge", "counter", "untyped"), name)
                self.assertTrue(help_text, name)
            self.assertEqual(set(samples) - set(names), set(), "samples without a family on %s" % path)
            # samples of a family follow its header, nowhere else
            current = None
            for line in text.splitlines():
                if line.startswith("# HELP "):
                    current = line.split(" ")[2]
                elif line and not line.startswith("#"):
                    self.assertEqual(line.split("{")[0].split(" ")[0], current, line)

    def test_queue_depth_per_object_and_aggregated(self):
        self.declare("q", messages=7)
        self.declare("prom-other", messages=5)
        self.wait_ready("q", 7)
        self.wait_ready("prom-other", 5)
        _, _, text = scrape(self.broker, "/metrics/per-object")
        samples, _ = parse(text)
        self.assertEqual(value_of(samples, "rabbitmq_queue_messages_ready", vhost="/", queue="q"), 7)
        self.assertEqual(value_of(samples, "rabbitmq_queue_messages_unacked", vhost="/", queue="q"), 0)
        self.assertEqual(value_of(samples, "rabbitmq_queue_messages", vhost="/", queue="q"), 7)
        self.assertEqual(value_of(samples, "rabbitmq_queue_messages_ready", vhost="/", queue="prom-other"), 5)
        self.assertEqual(value_of(samples, "rabbitmq_queue_info", vhost="/", queue="q",
                                  queue_type="rabbit_classic_queue", membership="leader"), 1)
        self.assertEqual(value_of(samples, "rabbitmq_identity_info", rabbitmq_node=self.node_name(),
                                  rabbitmq_cluster=self.node_name(), rabbitmq_endpoint="per-object"), 1)

        _, _, text = scrape(self.broker, "/metrics")
        samples, _ = parse(text)
        # RabbitMQ's default: one unlabelled sum per family, no per-queue series
        self.assertEqual(value_of(samples, "rabbitmq_queue_messages_ready"), 12)
        self.assertEqual(value_of(samples, "rabbitmq_queue_messages"), 12)
        self.assertEqual(len(samples["rabbitmq_queue_messages_ready"]), 1)
        self.assertNotIn("rabbitmq_queue_info", samples)
        self.assertGreaterEqual(value_of(samples, "rabbitmq_queues"), 2)
        self.assertEqual(value_of(samples, "rabbitmq_identity_info", rabbitmq_node=self.node_name(),
                                  rabbitmq_cluster=self.node_name(), rabbitmq_endpoint="aggregated"), 1)

    def test_unacked_consumers_and_connection_totals(self):
        self.declare("prom-unacked", messages=3)
        self.wait_ready("prom-unacked", 3)
        self.ch.basic_qos(prefetch_count=2)
        self.ch.basic_consume("prom-unacked", lambda *a: None)
        deadline = time.monotonic() + 5
        while True:
            self.conn.process_data_events(time_limit=0.05)
            samples, _ = parse(scrape(self.broker, "/metrics/per-object")[2])
            unacked = value_of(samples, "rabbitmq_queue_messages_unacked", vhost="/", queue="prom-unacked")
            if unacked == 2 or time.monotonic() > deadline:
                break
        self.assertEqual(unacked, 2)
        self.assertEqual(value_of(samples, "rabbitmq_queue_messages_ready", vhost="/", queue="prom-unacked"), 1)
        self.assertEqual(value_of(samples, "rabbitmq_queue_consumers", vhost="/", queue="prom-unacked"), 1)
        self.assertGreaterEqual(value_of(samples, "rabbitmq_connections"), 1)
        self.assertGreaterEqual(value_of(samples, "rabbitmq_channels"), 1)
        self.assertGreaterEqual(value_of(samples, "rabbitmq_consumers"), 1)
        self.assertEqual(value_of(samples, "rabbitmq_global_consumers", protocol="amqp091"),
                         value_of(samples, "rabbitmq_consumers"))

    def test_global_counters_follow_traffic(self):
        def counters():
            samples, _ = parse(scrape(self.broker)[2])
            amqp = {"protocol": "amqp091"}
            classic = dict(amqp, queue_type="rabbit_classic_queue")
            return {
                "received": value_of(samples, "rabbitmq_global_messages_received_total", **amqp),
                "confirmed": value_of(samples, "rabbitmq_global_messages_confirmed_total", **amqp),
                "routed": value_of(samples, "rabbitmq_global_messages_routed_total", **amqp),
                "dropped": value_of(samples, "rabbitmq_global_messages_unroutable_dropped_total", **amqp),
                "get_auto": value_of(samples, "rabbitmq_global_messages_delivered_get_auto_ack_total", **classic),
                "opened": value_of(samples, "rabbitmq_connections_opened_total"),
            }
        before = counters()
        conn = pika.BlockingConnection(self.broker.pika_parameters())
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("prom-counted")
        for _ in range(5):
            ch.basic_publish("", "prom-counted", b"x")
        ch.basic_publish("", "prom-nowhere", b"x")
        for _ in range(2):
            self.assertIsNotNone(ch.basic_get("prom-counted", auto_ack=True)[0])
        after = counters()
        ch.queue_delete("prom-counted")
        conn.close()
        self.assertEqual(after["received"] - before["received"], 6)
        self.assertEqual(after["confirmed"] - before["confirmed"], 6)
        self.assertEqual(after["routed"] - before["routed"], 5)
        self.assertEqual(after["dropped"] - before["dropped"], 1)
        self.assertEqual(after["get_auto"] - before["get_auto"], 2)
        self.assertEqual(after["opened"] - before["opened"], 1)
        self.assertEqual(promtool_check(scrape(self.broker)[2])[0], 0)

    def test_label_values_are_escaped(self):
        names = ['with "quotes"', "back\\slash", "new\nline", 'all \\"\n three', "utf-8 é€😀"]
        for i, name in enumerate(names):
            self.declare(name, messages=i + 1)
            self.wait_ready(name, i + 1)
        text = self.assert_promtool_passes("/metrics/per-object")
        self.assertIn('queue="with \\"quotes\\""', text)
        self.assertIn('queue="back\\\\slash"', text)
        self.assertIn('queue="new\\nline"', text)
        samples, _ = parse(text)
        for i, name in enumerate(names):
            self.assertEqual(value_of(samples, "rabbitmq_queue_messages_ready", vhost="/", queue=name), i + 1)

    def test_node_and_dashboard_families(self):
        text = self.assert_promtool_passes("/metrics")
        samples, families = parse(text)
        kinds = {f[0]: f[1] for f in families}
        for name in DASHBOARD_FAMILIES:
            self.assertIn(name, samples, "the RabbitMQ-Overview dashboard queries %s" % name)
        self.assertGreater(value_of(samples, "rabbitmq_process_open_fds"), 0)
        self.assertGreater(value_of(samples, "rabbitmq_process_resident_memory_bytes"), 0)
        self.assertGreater(value_of(samples, "rabbitmq_disk_space_available_bytes"), 0)
        self.assertEqual(value_of(samples, "rabbitmq_alarms_memory_used_watermark"), 0)
        self.assertEqual(value_of(samples, "rabbitmq_alarms_free_disk_space_watermark"), 0)
        self.assertLess(abs(value_of(samples, "process_start_time_seconds") - time.time()), 600)
        for name, kind in kinds.items():  # counters, and only counters, end in _total
            self.assertEqual(kind == "counter", name.endswith("_total"), name)
        # the same readings as /api/nodes
        _, nodes = self.broker.http_get("/api/nodes")
        self.assertEqual(value_of(samples, "rabbitmq_process_max_fds"), nodes[0]["fd_total"])
        self.assertEqual(value_of(samples, "rabbitmq_disk_space_available_limit_bytes"), nodes[0]["disk_free_limit"])
        self.assertEqual(value_of(samples, "rabbitmq_resident_memory_limit_bytes"), nodes[0]["mem_limit"])
        build = samples["rabbitmq_build_info"][0][0]
        self.assertEqual(build["product_name"], "Warren")
        self.assertTrue(build["rabbitmq_version"])

    def test_no_credentials_needed_and_other_paths(self):
        status, _, _ = scrape(self.broker, "/metrics")  # scrape() sends no Authorization
        self.assertEqual(status, 200)
        self.assertEqual(scrape(self.broker, "/api/overview")[0], 404)
        self.assertEqual(scrape(self.broker, "/metrics/nonsense")[0], 404)
        status, _ = self.broker.http_request("POST", "/metrics", body="x", port=self.broker.prometheus_port)
        self.assertEqual(status, 405)

    def node_name(self):
        _, overview = self.broker.http_get("/api/overview")
        return overview["node"]


@harness.skip_if_external("configures the broker's memory high watermark")
class PrometheusAlarmTest(unittest.TestCase):
    """rabbitmq_alarms_memory_used_watermark follows the broker's memory alarm."""

    def setUp(self):
        fd, self.config = tempfile.mkstemp(prefix="warren-prom-alarm-", suffix=".conf")
        with os.fdopen(fd, "w") as f:
            f.write("memory_high_watermark = 2000000\n")
        self.broker = harness.Broker(management=True, extra_args=["--config", self.config]).start()

    def tearDown(self):
        self.broker.stop()
        os.unlink(self.config)

    def alarm(self):
        samples, _ = parse(scrape(self.broker, "/metrics")[2])
        return value_of(samples, "rabbitmq_alarms_memory_used_watermark"), samples

    def test_memory_alarm_is_reported(self):
        self.assertEqual(self.alarm()[0], 0)
        conn = pika.BlockingConnection(self.broker.pika_parameters(blocked_connection_timeout=30))
        ch = conn.channel()
        ch.queue_declare("prom-alarm")
        for _ in range(30):  # 3 MB of messages: over the 2 MB watermark
            ch.basic_publish("", "prom-alarm", b"x" * 100000)
        deadline = time.monotonic() + 10
        while self.alarm()[0] != 1 and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        value, samples = self.alarm()
        self.assertEqual(value, 1)
        self.assertEqual(value_of(samples, "rabbitmq_resident_memory_limit_bytes"), 2000000)
        self.assertEqual(value_of(samples, "rabbitmq_alarms_free_disk_space_watermark"), 0)
        # Another connection (not blocked: it publishes nothing) deletes the queue; the alarm clears.
        other = pika.BlockingConnection(self.broker.pika_parameters())
        other.channel().queue_delete("prom-alarm")
        other.close()
        deadline = time.monotonic() + 10
        while self.alarm()[0] != 0 and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        self.assertEqual(self.alarm()[0], 0)
        conn.close()


@harness.skip_if_external("points a Prometheus server at the broker's own port")
@unittest.skipUnless(os.access(PROMETHEUS, os.X_OK), "Debian's prometheus package is not installed")
class PrometheusServerScrapeTest(unittest.TestCase):
    """A real Prometheus server scrapes Warren every second; PromQL sees the queue depth."""

    def setUp(self):
        self.broker = harness.Broker(management=True).start()
        self.tmp = tempfile.mkdtemp(prefix="warren-prometheus-")
        self.server = None

    def tearDown(self):
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.broker.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_prometheus(self):
        web_port = harness.free_port()
        config = os.path.join(self.tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n"
                    "  - job_name: warren\n    metrics_path: /metrics\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
                    "  - job_name: warren-per-object\n    metrics_path: /metrics/per-object\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
                    % (self.broker.prometheus_port, self.broker.prometheus_port))
        log = open(os.path.join(self.tmp, "prometheus.log"), "wb")
        self.server = subprocess.Popen(
            [PROMETHEUS, "--config.file", config, "--storage.tsdb.path", os.path.join(self.tmp, "data"),
             "--web.listen-address", "127.0.0.1:%d" % web_port],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.tmp)
        log.close()
        return web_port

    def query(self, port, promql):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/api/v1/query?query=" + urllib.parse.quote(promql))
            resp = conn.getresponse()
            body = json.loads(resp.read())
        finally:
            conn.close()
        self.assertEqual(body.get("status"), "success", body)
        return body["data"]["result"]

    def prometheus_log(self):
        with open(os.path.join(self.tmp, "prometheus.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def test_prometheus_scrapes_the_queue_depth(self):
        conn = pika.BlockingConnection(self.broker.pika_parameters())
        ch = conn.channel()
        ch.queue_declare("q")
        for i in range(9):
            ch.basic_publish("", "q", b"m%d" % i)
        port = self.start_prometheus()
        per_object = 'rabbitmq_queue_messages_ready{job="warren-per-object",queue="q",vhost="/"}'
        aggregated = 'rabbitmq_queue_messages_ready{job="warren"}'
        deadline = time.monotonic() + 20
        results = {}
        while time.monotonic() < deadline:
            self.assertIsNone(self.server.poll(), "prometheus exited:\n" + self.prometheus_log())
            try:
                results = {q: self.query(port, q) for q in (per_object, aggregated, 'up{job=~"warren.*"}')}
            except (OSError, http.client.HTTPException, ValueError):
                results = {}  # not listening yet
            if results and results[per_object] and results[aggregated]:
                break
            time.sleep(0.25)
        self.assertTrue(results and results[per_object] and results[aggregated],
                        "no sample after 20 s: %r\n%s" % (results, self.prometheus_log()))
        self.assertEqual(float(results[per_object][0]["value"][1]), 9)
        self.assertEqual(float(results[aggregated][0]["value"][1]), 9)
        for target in results['up{job=~"warren.*"}']:  # both scrapes succeeded
            self.assertEqual(target["value"][1], "1", target)
        conn.close()


if __name__ == "__main__":
    unittest.main()
