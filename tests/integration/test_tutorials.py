"""The six RabbitMQ tutorials, written here with pika as small programs, each run in its own
process with its own connection, as a reader of the tutorials would run them: hello world,
work queues, publish/subscribe, routing, topics and RPC, plus direct reply-to.

The programs follow the tutorials' shape; the only changes are that they take the broker URL
and names on the command line, print what they do on flushed stdout lines the test reads, and
stop after a given number of messages (or on a body "end") instead of running forever.

Every expectation was checked against RabbitMQ 3.10.8 (WARREN_TEST_URL).
"""

import json
import os
import queue as queue_module
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import pika
import pika.exceptions

import harness
from test_messaging_support import assert_random_names, connect, unique

PRELUDE = """
import json, sys, time, uuid
import pika
parameters = pika.URLParameters(sys.argv[1])
args = sys.argv[2:]
def say(*words):
    print(*words, flush=True)
"""

# Tutorial 1: "Hello World!"
SEND = """
queue = args[0]
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
channel.queue_declare(queue=queue)
channel.basic_publish(exchange='', routing_key=queue, body='Hello World!')
say("sent Hello World!")
connection.close()
"""

RECEIVE = """
queue, count = args[0], int(args[1])
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
channel.queue_declare(queue=queue)
received = []
def callback(ch, method, properties, body):
    say("received", body.decode())
    received.append(body)
    if len(received) == count:
        ch.stop_consuming()
channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=True)
say("ready")
channel.start_consuming()
connection.close()
"""

# Tutorial 2: work queues. A task's dots are seconds of work, times args[1].
NEW_TASK = """
queue, messages = args[0], args[1:]
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
channel.queue_declare(queue=queue, durable=True)
for message in messages:
    channel.basic_publish(exchange='', routing_key=queue, body=message,
                          properties=pika.BasicProperties(delivery_mode=2))
    say("sent", message)
connection.close()
"""

WORKER = """
queue, seconds_per_dot, prefetch = args[0], float(args[1]), int(args[2])
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
channel.queue_declare(queue=queue, durable=True)
if prefetch:
    channel.basic_qos(prefetch_count=prefetch)
def callback(ch, method, properties, body):
    say(json.dumps({"received": body.decode(), "redelivered": method.redelivered,
                    "delivery_mode": properties.delivery_mode}))
    time.sleep(body.count(b'.') * seconds_per_dot)
    ch.basic_ack(delivery_tag=method.delivery_tag)
    say(json.dumps({"done": body.decode()}))
channel.basic_consume(queue=queue, on_message_callback=callback)
say("ready")
channel.start_consuming()
"""

# Tutorial 3: publish/subscribe. Tutorial 4: routing. Tutorial 5: topics.
EMIT_LOG = """
exchange, exchange_type, pairs = args[0], args[1], args[2:]
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
channel.exchange_declare(exchange=exchange, exchange_type=exchange_type)
for pair in pairs:
    routing_key, message = pair.split("=", 1)
    channel.basic_publish(exchange=exchange, routing_key=routing_key, body=message)
say("sent", len(pairs))
connection.close()
"""

RECEIVE_LOGS = """
exchange, exchange_type, binding_keys = args[0], args[1], args[2:] or ['']
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
channel.exchange_declare(exchange=exchange, exchange_type=exchange_type)
result = channel.queue_declare(queue='', exclusive=True)
queue_name = result.method.queue
for binding_key in binding_keys:
    channel.queue_bind(exchange=exchange, queue=queue_name, routing_key=binding_key)
def callback(ch, method, properties, body):
    if body == b"end":
        ch.stop_consuming()
    else:
        say(json.dumps([method.routing_key, body.decode()]))
channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)
say("ready", queue_name)
channel.start_consuming()
connection.close()
"""

# Tutorial 6: RPC.
RPC_SERVER = """
queue = args[0]
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
channel.queue_declare(queue=queue)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def on_request(ch, method, props, body):
    n = int(body)
    say(json.dumps({"request": n, "reply_to": props.reply_to}))
    ch.basic_publish(exchange='', routing_key=props.reply_to,
                     properties=pika.BasicProperties(correlation_id=props.correlation_id),
                     body=str(fib(n)))
    ch.basic_ack(delivery_tag=method.delivery_tag)
channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue=queue, on_message_callback=on_request)
say("ready")
channel.start_consuming()
"""

# One client sends all its requests at once and matches answers by correlation_id. With
# args[1] == "direct" it uses direct reply-to instead of its own callback queue.
RPC_CLIENT = """
queue, mode, numbers = args[0], args[1], [int(n) for n in args[2:]]
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
if mode == "direct":
    callback_queue = "amq.rabbitmq.reply-to"
else:
    callback_queue = channel.queue_declare(queue='', exclusive=True).method.queue
pending, answers, foreign = {}, {}, []
def on_response(ch, method, props, body):
    if props.correlation_id in pending:
        answers[pending.pop(props.correlation_id)] = int(body)
    else:
        foreign.append(props.correlation_id)
channel.basic_consume(queue=callback_queue, on_message_callback=on_response, auto_ack=True)
for n in numbers:
    corr_id = str(uuid.uuid4())
    pending[corr_id] = n
    channel.basic_publish(exchange='', routing_key=queue, body=str(n),
                          properties=pika.BasicProperties(reply_to=callback_queue,
                                                          correlation_id=corr_id))
deadline = time.monotonic() + 15
while pending and time.monotonic() < deadline:
    connection.process_data_events(time_limit=0.1)
connection.process_data_events(time_limit=0.2)  # any stray answer arrives now
say(json.dumps({"callback_queue": callback_queue,
                "answers": {str(n): a for n, a in answers.items()},
                "missing": sorted(pending.values()), "foreign": foreign}))
connection.close()
"""


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class Program:
    """A tutorial program in its own Python process. Its stdout lines are queued as they come;
    stderr goes to a file shown when a test fails. Killed at cleanup if still running."""

    def __init__(self, test, source, *args):
        self.stderr = tempfile.TemporaryFile()
        url = harness.module_broker().url
        self.process = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + source, url] + [str(a) for a in args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.lines = queue_module.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        test.addCleanup(self.stop)

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def errors(self):
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-3000:]

    def line(self, timeout=10.0):
        """The next stdout line; AssertionError at timeout or when the program ended."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue_module.Empty:
            raise AssertionError("program printed nothing for %.0f s\n%s"
                                 % (timeout, self.errors())) from None
        if line is None:
            self.lines.put(None)
            raise AssertionError("program exited (status %s)\n%s"
                                 % (self.process.wait(), self.errors()))
        return line

    def expect(self, prefix, timeout=10.0):
        line = self.line(timeout)
        if not line.startswith(prefix):
            raise AssertionError("expected a line starting %r, got %r" % (prefix, line))
        return line

    def json_line(self, timeout=10.0):
        return json.loads(self.line(timeout))

    def finish(self, timeout=20.0):
        """Wait for a clean exit; returns the remaining stdout lines."""
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("program still running after %.0f s\n%s"
                                 % (timeout, self.errors())) from None
        lines = []
        while True:
            line = self.lines.get(timeout=5)
            if line is None:
                break
            lines.append(line)
        if status != 0:
            raise AssertionError("program exited with status %d\n%s" % (status, self.errors()))
        return lines

    def kill(self):
        """SIGKILL: the connection drops without close, leaving unacked messages to the broker."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self):
        self.kill()
        self.process.stdout.close()
        self.stderr.close()


def run(test, source, *args):
    """Run a program to completion and return its stdout lines."""
    return Program(test, source, *args).finish()


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


class TutorialTestCase(unittest.TestCase):
    def setUp(self):
        self.connection = connect()
        self.channel = self.connection.channel()

    def tearDown(self):
        if self.connection.is_open:
            self.connection.close()

    def delete_queue_later(self, name):
        def delete():
            connection = connect()
            connection.channel().queue_delete(name)
            connection.close()
        self.addCleanup(delete)
        return name

    def message_count(self, name):
        return self.channel.queue_declare(name, passive=True).method.message_count


class HelloWorldTest(TutorialTestCase):
    def test_send_then_receive(self):
        queue = self.delete_queue_later(unique("hello"))
        self.assertEqual(run(self, SEND, queue), ["sent Hello World!"])
        receiver = Program(self, RECEIVE, queue, 1)
        self.assertEqual(receiver.finish(), ["ready", "received Hello World!"])
        self.assertEqual(self.message_count(queue), 0)

    def test_receiver_waiting_before_the_sender_runs(self):
        queue = self.delete_queue_later(unique("hello"))
        receiver = Program(self, RECEIVE, queue, 2)
        receiver.expect("ready")
        run(self, SEND, queue)
        run(self, SEND, queue)
        self.assertEqual(receiver.finish(), ["received Hello World!"] * 2)


class WorkQueueTest(TutorialTestCase):
    def workers(self, queue, *specs):
        """Start one worker per (seconds_per_dot, prefetch) and wait until each consumes."""
        programs = [Program(self, WORKER, queue, seconds, prefetch) for seconds, prefetch in specs]
        for program in programs:
            program.expect("ready")
        return programs

    def collect(self, programs, total, timeout=20.0):
        """Read the workers' lines until `total` tasks are done; per worker, the tasks done."""
        done = [[] for _ in programs]
        deadline = time.monotonic() + timeout
        while sum(map(len, done)) < total:
            for index, program in enumerate(programs):
                try:
                    event = json.loads(program.lines.get(timeout=0.05))
                except queue_module.Empty:
                    continue
                if "done" in event:
                    done[index].append(event["done"])
            if time.monotonic() > deadline:
                raise AssertionError("only %r done after %.0f s" % (done, timeout))
        return done

    def test_durable_queue_and_persistent_tasks(self):
        queue = self.delete_queue_later(unique("task_queue"))
        run(self, NEW_TASK, queue, "first.", "second..")
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            self.connection.channel().queue_declare(queue, passive=False, durable=False)
        self.assertEqual(caught.exception.reply_code, 406)  # it is durable
        self.assertEqual(self.message_count(queue), 2)
        worker = Program(self, WORKER, queue, 0, 1)
        worker.expect("ready")
        events = [worker.json_line() for _ in range(4)]
        self.assertEqual([e for e in events if "received" in e], [
            {"received": "first.", "redelivered": False, "delivery_mode": 2},
            {"received": "second..", "redelivered": False, "delivery_mode": 2}])

    def test_without_prefetch_tasks_alternate_whatever_the_workers_speed(self):
        queue = self.delete_queue_later(unique("task_queue"))
        slow, fast = self.workers(queue, (0.05, 0), (0, 0))
        tasks = ["task%d." % n for n in range(8)]
        run(self, NEW_TASK, queue, *tasks)
        done_slow, done_fast = self.collect([slow, fast], len(tasks))
        self.assertEqual(sorted([done_slow, done_fast]), [tasks[0::2], tasks[1::2]])

    def test_fair_dispatch_with_prefetch_1_gives_the_fast_worker_more(self):
        queue = self.delete_queue_later(unique("task_queue"))
        slow, fast = self.workers(queue, (0.3, 1), (0, 1))
        tasks = ["task%d." % n for n in range(20)]
        run(self, NEW_TASK, queue, *tasks)
        done_slow, done_fast = self.collect([slow, fast], len(tasks))
        self.assertEqual(sorted(done_slow + done_fast), sorted(tasks))  # each exactly once
        self.assertGreater(len(done_fast), len(done_slow), (done_fast, done_slow))
        self.assertLessEqual(len(done_slow), 5, done_slow)

    def test_task_of_a_killed_worker_is_redelivered_to_another(self):
        queue = self.delete_queue_later(unique("task_queue"))
        (doomed,) = self.workers(queue, (60, 1))  # takes a minute per dot: never acks in time
        run(self, NEW_TASK, queue, "important.")
        self.assertEqual(doomed.json_line(),
                         {"received": "important.", "redelivered": False, "delivery_mode": 2})
        (survivor,) = self.workers(queue, (0, 1))
        doomed.kill()
        self.assertEqual(survivor.json_line(),
                         {"received": "important.", "redelivered": True, "delivery_mode": 2})
        self.assertEqual(survivor.json_line(), {"done": "important."})
        self.assertEqual(self.message_count(queue), 0)


class PublishSubscribeTest(TutorialTestCase):
    def test_every_subscriber_gets_every_log_and_none_from_before_it_subscribed(self):
        exchange = "logs"
        run(self, EMIT_LOG, exchange, "fanout", "=before anyone listens")
        receivers = [Program(self, RECEIVE_LOGS, exchange, "fanout") for _ in range(2)]
        queues = [receiver.expect("ready").split()[1] for receiver in receivers]
        self.assertNotEqual(queues[0], queues[1])
        for name in queues:
            self.assertTrue(name.startswith("amq.gen-"), name)
        messages = ["info: %d" % n for n in range(5)]
        run(self, EMIT_LOG, exchange, "fanout", *["=" + m for m in messages] + ["=end"])
        for receiver in receivers:
            self.assertEqual([json.loads(line)[1] for line in receiver.finish()], messages)
        for name in queues:  # exclusive: gone with their connections
            channel = self.connection.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
                channel.queue_declare(name, passive=True)
            self.assertEqual(caught.exception.reply_code, 404)


class RoutingTest(TutorialTestCase):
    # receiver -> severities it binds; every receiver also binds "end".
    BINDINGS = {
        "errors-only": ["error"],
        "everything-but-debug": ["info", "warning", "error"],
        "warnings-twice": ["warning", "warning"],  # a duplicate binding delivers once
    }
    # (severity, message, receivers expected to print it)
    CASES = [
        ("info", "starting", ["everything-but-debug"]),
        ("warning", "disk 80%", ["everything-but-debug", "warnings-twice"]),
        ("error", "disk full", ["errors-only", "everything-but-debug"]),
        ("debug", "x=1", []),
        ("Error", "case matters", []),
        ("error ", "spaces matter", []),
        ("", "empty key", []),
    ]

    def test_direct_exchange_routes_by_severity(self):
        exchange = "direct_logs"
        receivers = {name: Program(self, RECEIVE_LOGS, exchange, "direct", *keys + ["end"])
                     for name, keys in self.BINDINGS.items()}
        for receiver in receivers.values():
            receiver.expect("ready")
        run(self, EMIT_LOG, exchange, "direct",
            *["%s=%s" % (severity, message) for severity, message, _ in self.CASES] + ["end=end"])
        for name, receiver in receivers.items():
            expected = [[severity, message] for severity, message, who in self.CASES
                        if name in who]
            with self.subTest(receiver=name):
                self.assertEqual([json.loads(line) for line in receiver.finish()], expected)


class TopicsTest(TutorialTestCase):
    # (binding pattern, routing key, routed?) checked with one queue per pattern.
    CASES = [
        ("*.orange.*", "quick.orange.rabbit", True),
        ("*.orange.*", "lazy.orange.elephant", True),
        ("*.orange.*", "quick.brown.fox", False),
        ("*.orange.*", "orange", False),
        ("*.orange.*", "quick.orange.male.rabbit", False),
        ("*.*.rabbit", "quick.orange.rabbit", True),
        ("*.*.rabbit", "lazy.rabbit", False),
        ("lazy.#", "lazy", True),  # '#' matches zero words
        ("lazy.#", "lazy.orange.male.rabbit", True),
        ("lazy.#", "lazy.", True),  # "lazy." is "lazy" and an empty word
        ("lazy.#", "lazyx.orange", False),
        ("#", "", True),
        ("#", "any.thing.at.all", True),
        ("*", "", False),  # the empty key has no words, '*' needs one
        ("*", "one", True),
        ("*", "one.two", False),
        ("*.*", ".", True),  # two empty words
        ("*.*", "a.", True),
        ("a.*", "a", False),
        ("a.*.c", "a..c", True),  # '*' matches an empty word
        ("a.#.c", "a.c", True),  # '#' in the middle: zero words
        ("a.#.c", "a.b.d.c", True),
        ("a.#.c", "a.b.c.d", False),
        ("a.#.#.c", "a.c", True),
        ("a.#.b.#.c", "a.x.b.y.c", True),
        ("a.#.b.#.c", "a.x.y.c", False),
        ("#.c", "c", True),
        ("#.c", "c.a", False),
        ("#.*", "", False),  # at least one word
        ("#.*", "x", True),
        ("*.#", "", False),
        ("#.#", "", True),
        ("", "", True),  # an empty pattern matches only the empty key
        ("", "a", False),
        ("a.b*", "a.b*", True),  # wildcards only as whole words
        ("a.b*", "a.bc", False),
        ("quick.orange.rabbit", "Quick.orange.rabbit", False),  # case matters
    ]

    def test_topic_table(self):
        exchange = unique("topic_logs")
        self.channel.exchange_declare(exchange, "topic", auto_delete=True)
        queues = {}
        for pattern in {pattern for pattern, _, _ in self.CASES}:
            queues[pattern] = self.channel.queue_declare("", exclusive=True).method.queue
            self.channel.queue_bind(queues[pattern], exchange, pattern)
        for index, (_, key, _) in enumerate(self.CASES):
            self.channel.basic_publish(exchange, key, str(index).encode())
        received = {pattern: set() for pattern in queues}
        for pattern, name in queues.items():
            while True:
                method, _, body = self.channel.basic_get(name, auto_ack=True)
                if method is None:
                    break
                received[pattern].add(self.CASES[int(body)][1])
        for pattern, key, routed in self.CASES:
            with self.subTest(pattern=pattern, key=key):
                self.assertEqual(key in received[pattern], routed)

    def test_tutorial_receivers(self):
        exchange = "topic_logs"
        bindings = {"all": ["#"], "kern": ["kern.*"], "critical": ["*.critical"],
                    "kern-or-critical": ["kern.*", "*.critical"]}
        receivers = {name: Program(self, RECEIVE_LOGS, exchange, "topic", *keys + ["end"])
                     for name, keys in bindings.items()}
        for receiver in receivers.values():
            receiver.expect("ready")
        logs = ["kern.critical", "kern.info", "cron.critical", "cron.info", "kern.disk.critical"]
        run(self, EMIT_LOG, exchange, "topic", *["%s=%s" % (key, key) for key in logs]
            + ["end=end"])
        expected = {
            "all": logs,
            "kern": ["kern.critical", "kern.info"],
            "critical": ["kern.critical", "cron.critical"],
            "kern-or-critical": ["kern.critical", "kern.info", "cron.critical"],
        }
        for name, receiver in receivers.items():
            with self.subTest(receiver=name):
                self.assertEqual([json.loads(line)[1] for line in receiver.finish()],
                                 expected[name])


class RpcTest(TutorialTestCase):
    def test_three_concurrent_clients_each_get_only_their_answers(self):
        rpc_queue = self.delete_queue_later(unique("rpc_queue"))
        server = Program(self, RPC_SERVER, rpc_queue)
        server.expect("ready")
        requests = {"a": [1, 5, 10, 15, 20], "b": [2, 6, 11, 16, 19], "c": [0, 3, 7, 12, 18]}
        clients = {name: Program(self, RPC_CLIENT, rpc_queue, "own", *numbers)
                   for name, numbers in requests.items()}
        results = {name: json.loads(client.finish()[0]) for name, client in clients.items()}
        callback_queues = {result["callback_queue"] for result in results.values()}
        self.assertEqual(len(callback_queues), 3)
        for name, result in results.items():
            with self.subTest(client=name):
                self.assertTrue(result["callback_queue"].startswith("amq.gen-"))
                self.assertEqual(result["missing"], [])
                self.assertEqual(result["foreign"], [])
                self.assertEqual(result["answers"], {str(n): fib(n) for n in requests[name]})
        served = [server.json_line() for _ in range(15)]
        self.assertEqual(sorted(event["request"] for event in served),
                         sorted(n for numbers in requests.values() for n in numbers))
        self.assertEqual({event["reply_to"] for event in served}, callback_queues)
        self.assertEqual(self.message_count(rpc_queue), 0)


class DirectReplyToTest(TutorialTestCase):
    def test_rpc_over_direct_reply_to(self):
        rpc_queue = self.delete_queue_later(unique("rpc_queue"))
        server = Program(self, RPC_SERVER, rpc_queue)
        server.expect("ready")
        clients = [Program(self, RPC_CLIENT, rpc_queue, "direct", *numbers)
                   for numbers in ([4, 8, 12], [5, 9, 13])]
        results = [json.loads(client.finish()[0]) for client in clients]
        for numbers, result in zip(([4, 8, 12], [5, 9, 13]), results):
            self.assertEqual((result["missing"], result["foreign"]), ([], []))
            self.assertEqual(result["answers"], {str(n): fib(n) for n in numbers})
        served = [server.json_line() for _ in range(6)]
        reply_tos = {event["reply_to"] for event in served}
        self.assertEqual(len(reply_tos), 2)  # one pseudo-queue name per client channel
        for reply_to in reply_tos:
            # The broker rewrites reply_to into a name that routes back to the channel.
            self.assertTrue(reply_to.startswith("amq.rabbitmq.reply-to."), reply_to)

    def test_reply_to_consumer_in_process(self):
        # The same exchange without subprocesses, checking the reply's delivery details.
        replies = []
        self.channel.basic_consume("amq.rabbitmq.reply-to",
                                   lambda ch, m, p, b: replies.append((m, p, b)), auto_ack=True)
        request_queue = self.delete_queue_later(unique("requests"))
        self.channel.queue_declare(request_queue)
        self.channel.basic_publish("", request_queue, b"ping", pika.BasicProperties(
            reply_to="amq.rabbitmq.reply-to", correlation_id="c-1"))
        server = connect()
        self.addCleanup(server.close)
        server_channel = server.channel()
        deadline = time.monotonic() + 5
        while True:  # the request travels through another connection
            method, properties, body = server_channel.basic_get(request_queue, auto_ack=True)
            if method is not None or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.assertEqual(body, b"ping")
        self.assertNotEqual(properties.reply_to, "amq.rabbitmq.reply-to")
        server_channel.basic_publish("", properties.reply_to, b"pong", pika.BasicProperties(
            correlation_id=properties.correlation_id))
        deadline = time.monotonic() + 5
        while not replies and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.05)
        (reply_method, reply_properties, reply_body), = replies
        self.assertEqual((reply_body, reply_properties.correlation_id), (b"pong", "c-1"))
        self.assertEqual(reply_method.routing_key, properties.reply_to)

    @harness.skip_if_external("RabbitMQ's reply addresses also encode the node and process")
    def test_reply_addresses_are_random(self):
        # The address is all a replier needs: it must not follow a counter or an address.
        request_queue = self.delete_queue_later(unique("requests"))
        self.channel.queue_declare(request_queue)
        for _ in range(4):
            channel = self.connection.channel()
            channel.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)
            channel.basic_publish("", request_queue, b"ping",
                                  pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
        addresses = []
        deadline = time.monotonic() + 5
        while len(addresses) < 4 and time.monotonic() < deadline:
            method, properties, _ = self.channel.basic_get(request_queue, auto_ack=True)
            if method is not None:
                addresses.append(properties.reply_to)
        assert_random_names(self, "amq.rabbitmq.reply-to.", addresses)

    def test_consuming_reply_to_with_acks_is_406(self):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            self.channel.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=False)
        self.assertEqual((caught.exception.reply_code, caught.exception.reply_text),
                         (406, "PRECONDITION_FAILED - reply consumer cannot acknowledge"))
        self.assertTrue(self.connection.is_open)

    def test_publishing_with_reply_to_before_consuming_it_is_406(self):
        request_queue = self.channel.queue_declare("", exclusive=True).method.queue
        channel = self.connection.channel()
        channel.basic_publish("", request_queue, b"ping",
                              pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            channel.queue_declare("", exclusive=True)
        self.assertEqual((caught.exception.reply_code, caught.exception.reply_text),
                         (406, "PRECONDITION_FAILED - fast reply consumer does not exist"))
        self.assertTrue(self.connection.is_open)
        self.assertEqual(self.message_count(request_queue), 0)  # the request was not routed


if __name__ == "__main__":
    unittest.main()
