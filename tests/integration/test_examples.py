"""The tutorial examples (clients/examples, docs/tutorial.md) run against the broker the way a
user runs them: every scenario in C (rabbitmq-c) and in Python (pika), receivers started first as
subprocesses and awaited until they print their " [*] Waiting" line, then the senders; what each
program printed is the result checked. Receivers find the broker through $AMQP_URL, senders
through --host/--port/--user/--password, so both ways of configuring a program are exercised.

Environment (besides harness.py's):
  WARREN_EXAMPLES_DIR  the built C examples; CMake sets it to <build>/examples (default
                       <repo>/build/examples). Without the variable, C tests are skipped when the
                       binaries are missing; with it, a missing binary is a failure.

  cd tests/integration && /usr/bin/python3 -m unittest -v test_examples
  WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5697/ /usr/bin/python3 -m unittest -v test_examples
"""

import contextlib
import os
import signal
import subprocess
import threading
import time
import unittest

import pika

import harness

PYTHON_EXAMPLES = os.path.join(harness.REPO_ROOT, "clients", "examples", "python")
# The queues with fixed names the examples declare; emptied before each test.
NAMED_QUEUES = ("hello", "task_queue", "rpc_queue")
READY_PREFIX = " [*] Waiting for "
START_TIMEOUT = 15.0  # seconds for a receiver to connect, declare, bind and consume
RUN_TIMEOUT = 20.0  # seconds any one program may run; receivers also get it as --timeout
FIBONACCI = {10: 55, 30: 832040, 93: 12200160415121876738}


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


def examples_dir():
    return os.environ.get("WARREN_EXAMPLES_DIR") or os.path.join(harness.REPO_ROOT, "build",
                                                                  "examples")


class Program:
    """One example program running as a child process. Owns the process; stdout lines are
    collected by a reader thread as they are printed."""

    def __init__(self, command, env):
        self.command = command
        self.lines = []
        self.stderr = ""
        self._changed = threading.Condition()
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, errors="replace")
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self):
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def _read_stderr(self):
        self.stderr = self.process.stderr.read()

    def describe(self):
        return "%s (status %s)\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(self.command), self.process.poll(), "\n".join(self.lines), self.stderr)

    def wait_for(self, predicate, timeout):
        """True once predicate(lines) holds, False after `timeout` seconds or when the program
        has exited without it holding."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and
                                 not self._threads[0].is_alive()):
                    return False
                self._changed.wait(min(left, 0.1))
        return True

    def wait_ready(self, test):
        if not self.wait_for(lambda lines: any(l.startswith(READY_PREFIX) for l in lines),
                             START_TIMEOUT):
            test.fail("never became ready: " + self.describe())

    def interrupt(self):
        """CTRL+C, which the receivers treat as a normal way to stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def finish(self, test, timeout=RUN_TIMEOUT):
        """Waits for the exit and asserts status 0; returns stdout without the ready line."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            test.fail("still running after %.0f s: %s" % (timeout, self.describe()))
        for thread in self._threads:
            thread.join(5)
        test.assertEqual(self.process.returncode, 0, self.describe())
        return [line for line in self.lines if not line.startswith(READY_PREFIX)]

    def kill(self):
        """Ends the program if it still runs and releases its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for thread in self._threads:
            thread.join(5)
        self.process.stdout.close()
        self.process.stderr.close()


class ExamplesTestCase(unittest.TestCase):
    """Starting example programs by language and name, and inspecting the broker with pika."""

    language = None

    def setUp(self):
        self.broker = harness.module_broker()
        self.programs = []
        with self.channel() as channel:
            for queue in NAMED_QUEUES:
                channel.queue_delete(queue)

    def tearDown(self):
        for program in self.programs:
            program.kill()

    @contextlib.contextmanager
    def channel(self):
        connection = pika.BlockingConnection(self.broker.pika_parameters())
        try:
            yield connection.channel()
        finally:
            if connection.is_open:
                connection.close()

    def command(self, language, name):
        if language == "python":
            return [os.path.join(PYTHON_EXAMPLES, name + ".py")]
        binary = os.path.join(examples_dir(), name)
        if not os.access(binary, os.X_OK):
            if os.environ.get("WARREN_EXAMPLES_DIR"):
                self.fail("C example not built: %s" % binary)
            self.skipTest("C examples not built: %s (set WARREN_EXAMPLES_DIR)" % binary)
        return [binary]

    def start(self, name, *args, language=None, receiver=True):
        """Starts an example. A receiver finds the broker through $AMQP_URL and is bounded by
        --timeout; anything else gets the connection flags."""
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env.pop("AMQP_URL", None)
        env.pop("WORKER_DELAY", None)
        command = self.command(language or self.language, name)
        if receiver:
            env["AMQP_URL"] = self.broker.url
            command += ["--timeout", "%g" % RUN_TIMEOUT]
        else:
            command += ["--host", self.broker.host, "--port", str(self.broker.port),
                        "--user", self.broker.user, "--password", self.broker.password,
                        "--vhost", self.broker.vhost]
        program = Program(command + list(args), env)
        self.programs.append(program)
        return program

    def start_receiver(self, name, *args, language=None):
        program = self.start(name, *args, language=language)
        program.wait_ready(self)
        return program

    def send(self, name, *args, language=None):
        """Runs a sender to completion; returns its output lines."""
        return self.start(name, *args, language=language, receiver=False).finish(self)

    def wait_all(self, condition, programs, what, timeout=RUN_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.fail("timed out waiting for %s:\n%s"
                          % (what, "\n".join(p.describe() for p in programs)))
            time.sleep(0.02)

    def message_count(self, queue):
        with self.channel() as channel:
            return channel.queue_declare(queue, passive=True).method.message_count

    def rpc_round(self, client, server_language=None, client_language=None):
        """One rpc_server answering three concurrent `client` programs."""
        server = self.start_receiver("rpc_server", "--count", str(len(FIBONACCI)),
                                     language=server_language)
        clients = {n: self.start(client, str(n), language=client_language)
                   for n in FIBONACCI}  # concurrently
        for n, program in clients.items():
            self.assertEqual(program.finish(self),
                             [" [x] Requesting fib(%d)" % n, " [.] Got %d" % FIBONACCI[n]])
        self.assertEqual(sorted(server.finish(self)),
                         sorted(" [.] fib(%d)" % n for n in FIBONACCI))
        self.assertEqual(self.message_count("rpc_queue"), 0)


class Scenarios:
    """Every tutorial scenario; the TestCase subclasses below choose the language."""

    def test_hello_world_receiver_prints_exactly_what_was_sent(self):
        receiver = self.start_receiver("receive", "--count", "3")
        messages = ["Hello World!", "second message", "it's the third"]
        self.assertEqual(self.send("send"), [" [x] Sent 'Hello World!'"])
        for message in messages[1:]:
            self.assertEqual(self.send("send", *message.split(" ")),
                             [" [x] Sent '%s'" % message])
        self.assertEqual(receiver.finish(self), [" [x] Received '%s'" % m for m in messages])
        self.assertEqual(self.message_count("hello"), 0)

    def test_new_task_publishes_persistent_messages_to_a_durable_queue(self):
        self.assertEqual(self.send("new_task", "keep", "me.."), [" [x] Sent 'keep me..'"])
        with self.channel() as channel:
            method, properties, body = channel.basic_get("task_queue", auto_ack=True)
            self.assertIsNotNone(method, "task_queue is empty")
            self.assertEqual(body, b"keep me..")
            self.assertEqual(properties.delivery_mode, 2)
            # Redeclaring with different durability fails only if the queue is durable.
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
                channel.queue_declare("task_queue", durable=False)
            self.assertEqual(caught.exception.reply_code, 406)

    def test_work_queue_gives_busy_worker_no_second_task(self):
        # Prefetch 1: while one worker is busy with a long task, every short task published
        # meanwhile goes to the other worker. Without prefetch, round robin would hand the busy
        # worker every second short task.
        workers = [self.start_receiver("worker", "--delay", "0.05") for _ in range(2)]
        long_task = "long" + "." * 60  # 3 s of work
        self.send("new_task", long_task)
        received_long = " [x] Received '%s'" % long_task
        self.wait_all(lambda: any(received_long in w.lines for w in workers), workers,
                      "a worker to take the long task")
        busy, idle = workers if received_long in workers[0].lines else workers[::-1]
        short_tasks = ["short %d." % i for i in range(1, 5)]
        senders = [self.start("new_task", *task.split(" "), receiver=False)
                   for task in short_tasks]
        for task, sender in zip(short_tasks, senders):
            self.assertEqual(sender.finish(self), [" [x] Sent '%s'" % task])
        self.assertNotIn(" [x] Done", busy.lines,
                         "precondition: the long task ended before the short ones were sent")
        self.wait_all(lambda: sum(w.lines.count(" [x] Done") for w in workers) == 5, workers,
                      "all five tasks to be done")
        for worker in workers:
            worker.interrupt()
        self.assertEqual(busy.finish(self), [received_long, " [x] Done"])
        idle_lines = idle.finish(self)
        self.assertEqual(sorted(idle_lines[0::2]),
                         sorted(" [x] Received '%s'" % task for task in short_tasks))
        self.assertEqual(idle_lines[1::2], [" [x] Done"] * 4)
        self.assertEqual(self.message_count("task_queue"), 0)

    def test_fanout_copies_each_log_to_every_running_subscriber(self):
        self.assertEqual(self.send("emit_log", "before", "anyone", "listens"),
                         [" [x] Sent 'before anyone listens'"])
        subscribers = [self.start_receiver("receive_logs", "--count", "3") for _ in range(2)]
        logs = ["info: Hello World!", "warning: disk almost full", "error: disk full"]
        self.send("emit_log")
        for log in logs[1:]:
            self.assertEqual(self.send("emit_log", *log.split(" ")), [" [x] Sent '%s'" % log])
        expected = [" [x] Received '%s'" % log for log in logs]
        for subscriber in subscribers:
            self.assertEqual(subscriber.finish(self), expected)

    def test_direct_exchange_routes_each_severity_to_its_subscribers(self):
        errors_only = self.start_receiver("receive_logs_direct", "--count", "1", "error")
        everything = self.start_receiver("receive_logs_direct", "--count", "3",
                                         "info", "warning", "error")
        # "debug" has no binding and is dropped; the last message reaches both subscribers, so
        # a wrongly routed earlier message would show up before their final line.
        logs = [("debug", "cache miss"), ("info", "user logged in"),
                ("warning", "disk almost full"), ("error", "disk full")]
        for severity, message in logs:
            self.assertEqual(self.send("emit_log_direct", severity, *message.split(" ")),
                             [" [x] Sent %s:'%s'" % (severity, message)])
        self.assertEqual(errors_only.finish(self), [" [x] Received error:'disk full'"])
        self.assertEqual(everything.finish(self),
                         [" [x] Received %s:'%s'" % log for log in logs[1:]])

    def test_topic_exchange_matches_star_and_hash(self):
        bindings = {
            "kern": ["kern.*"],
            "critical": ["*.critical"],
            "all": ["#"],
            "app_or_critical": ["app.#", "#.critical"],
        }
        # routing key -> the subscribers that must get it; the last reaches all of them.
        logs = [
            ("cron.info", {"all"}),
            ("kern.disk.full", {"all"}),                       # "*" is exactly one word
            ("app", {"all", "app_or_critical"}),               # "#" may be zero words
            ("app.db.critical", {"all", "app_or_critical"}),   # both patterns match: once
            ("kern.info", {"kern", "all"}),
            ("critical", {"all", "app_or_critical"}),          # "*.critical" needs a word
            ("kern.critical", {"kern", "critical", "all", "app_or_critical"}),
        ]
        subscribers = {}
        for name, patterns in bindings.items():
            count = sum(1 for _, names in logs if name in names)
            subscribers[name] = self.start_receiver("receive_logs_topic", "--count", str(count),
                                                    *patterns)
        for key, _ in logs:
            self.assertEqual(self.send("emit_log_topic", key, "message", "for", key),
                             [" [x] Sent %s:'message for %s'" % (key, key)])
        for name, subscriber in subscribers.items():
            self.assertEqual(subscriber.finish(self),
                             [" [x] Received %s:'message for %s'" % (key, key)
                              for key, names in logs if name in names],
                             "subscriber bound to %s" % bindings[name])

    def test_rpc_with_callback_queues_answers_three_concurrent_clients(self):
        self.rpc_round("rpc_client")

    def test_rpc_with_direct_reply_to_answers_three_concurrent_clients(self):
        self.rpc_round("rpc_client_direct")


class CExamplesTest(Scenarios, ExamplesTestCase):
    language = "c"


class PythonExamplesTest(Scenarios, ExamplesTestCase):
    language = "python"


class CrossLanguageTest(ExamplesTestCase):
    """The C and Python programs are interchangeable: same queues, properties and bodies."""

    def test_c_server_answers_python_clients(self):
        self.rpc_round_mixed("c", "python")

    def test_python_server_answers_c_clients(self):
        self.rpc_round_mixed("python", "c")

    def rpc_round_mixed(self, server_language, client_language):
        self.rpc_round("rpc_client", server_language, client_language)
        self.rpc_round("rpc_client_direct", server_language, client_language)

    def test_python_worker_takes_c_tasks_and_c_worker_python_tasks(self):
        for worker_language, task_language in (("python", "c"), ("c", "python")):
            worker = self.start_receiver("worker", "--count", "1", "--delay", "0",
                                         language=worker_language)
            self.send("new_task", "from", task_language + "...", language=task_language)
            self.assertEqual(worker.finish(self),
                             [" [x] Received 'from %s...'" % task_language, " [x] Done"])


if __name__ == "__main__":
    unittest.main()
