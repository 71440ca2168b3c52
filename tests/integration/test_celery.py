"""Celery (Debian's python3-celery, kombu over py-amqp) with Warren as its broker, as a Celery
user runs it: a real worker process (prefork pool), tasks sent by a real client, results through
the rpc:// backend (a reply queue per client).

- tasks run and their results come back, one by one and as a group of 50;
- an exception in a task reaches the caller;
- a task that retries itself twice succeeds on the third run;
- a countdown holds the task back (Celery keeps it unacked until its time: prefetch raised by
  basic.qos while it waits);
- `celery inspect ping` and `control.broadcast` reach the worker (pidbox: a fanout exchange,
  reply queues with x-expires and x-message-ttl);
- acks_late: the worker killed with SIGKILL in the middle of a task; the broker requeues the
  unacked message when the connection drops and a new worker runs it to completion.

Runs against the harness's broker, or any broker at WARREN_TEST_URL (RabbitMQ passes it too).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import harness

PYTHON = "/usr/bin/python3"

TASKS = textwrap.dedent('''
    import os
    import time

    from celery import Celery

    app = Celery("warren_tasks", broker=os.environ["WARREN_CELERY_URL"], backend="rpc://")
    app.conf.update(broker_connection_retry_on_startup=True, worker_prefetch_multiplier=4,
                    task_acks_late=False, result_expires=60, worker_hijack_root_logger=False)

    @app.task
    def add(x, y):
        return x + y

    @app.task
    def fail(text):
        raise ValueError(text)

    @app.task(bind=True, max_retries=5)
    def flaky(self, marker_dir):
        path = os.path.join(marker_dir, self.request.id)
        with open(path, "a") as f:
            f.write("x")
        with open(path) as f:
            runs = len(f.read())
        if runs < 3:
            raise self.retry(countdown=0.2)
        return runs

    @app.task(acks_late=True, reject_on_worker_lost=True)
    def slow(marker_dir, seconds):
        open(os.path.join(marker_dir, "slow-started-%d" % os.getpid()), "w").close()
        time.sleep(seconds)
        return "slept"
''')


def _celery_available():
    return subprocess.run([PYTHON, "-c", "import celery"], capture_output=True).returncode == 0


@unittest.skipUnless(_celery_available(), "python3-celery not installed for %s" % PYTHON)
class CeleryOnWarren(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        url = harness.external_url()
        cls.broker = harness.Broker(url) if url else harness.Broker().start()
        cls.workdir = tempfile.mkdtemp(prefix="warren-celery-")
        with open(os.path.join(cls.workdir, "warren_tasks.py"), "w") as f:
            f.write(TASKS)
        cls.env = dict(os.environ, WARREN_CELERY_URL=cls.broker.url, PYTHONPATH=cls.workdir,
                       PYTHONDONTWRITEBYTECODE="1")
        # The client side runs in this process: import the tasks module with the same settings.
        os.environ["WARREN_CELERY_URL"] = cls.broker.url
        sys.path.insert(0, cls.workdir)
        import warren_tasks

        cls.tasks = warren_tasks
        cls.workers = []
        cls.worker = cls.start_worker("w1")

    @classmethod
    def tearDownClass(cls):
        for worker in cls.workers:
            cls.stop_worker(worker)
        cls.tasks.app.close()
        sys.path.remove(cls.workdir)
        sys.modules.pop("warren_tasks", None)
        shutil.rmtree(cls.workdir, ignore_errors=True)
        if not cls.broker.external:
            cls.broker.stop()

    @classmethod
    def start_worker(cls, name, timeout=60):
        log_path = os.path.join(cls.workdir, "%s.log" % name)
        log = open(log_path, "wb")
        process = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "warren_tasks", "worker", "--pool", "prefork",
             "--concurrency", "2", "--hostname", "%s@warren-test" % name, "--loglevel", "INFO",
             "--without-gossip", "--without-mingle"],
            cwd=cls.workdir, env=cls.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
        worker = {"name": name, "process": process, "log": log, "log_path": log_path}
        cls.workers.append(worker)
        deadline = time.monotonic() + timeout
        while b"ready." not in cls.worker_log(worker):
            if process.poll() is not None or time.monotonic() > deadline:
                cls.stop_worker(worker)
                raise AssertionError("celery worker %s did not start:\n%s"
                                     % (name, cls.worker_log(worker).decode(errors="replace")[-5000:]))
            time.sleep(0.1)
        return worker

    @staticmethod
    def worker_log(worker):
        worker["log"].flush()
        with open(worker["log_path"], "rb") as f:
            return f.read()

    @classmethod
    def stop_worker(cls, worker, sig=signal.SIGTERM):
        """Stops the worker's process group (the main process and its pool children)."""
        process = worker["process"]
        if process.poll() is None:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if not worker["log"].closed:
            worker["log"].close()
        if worker in cls.workers:
            cls.workers.remove(worker)

    def test_tasks_run_and_results_come_back(self):
        self.assertEqual(self.tasks.add.delay(2, 3).get(timeout=30), 5)
        from celery import group

        results = group(self.tasks.add.s(i, i) for i in range(50)).apply_async()
        self.assertEqual(results.get(timeout=60), [2 * i for i in range(50)])

    def test_a_task_exception_reaches_the_caller(self):
        result = self.tasks.fail.delay("boom from a task")
        with self.assertRaises(ValueError) as ctx:
            result.get(timeout=30)
        self.assertIn("boom from a task", str(ctx.exception))
        self.assertEqual(result.state, "FAILURE")

    def test_a_task_that_retries_succeeds_on_its_third_run(self):
        self.assertEqual(self.tasks.flaky.delay(self.workdir).get(timeout=30), 3)

    def test_a_countdown_holds_the_task_back(self):
        started = time.monotonic()
        result = self.tasks.add.apply_async((20, 22), countdown=2)
        self.assertEqual(result.get(timeout=30), 42)
        self.assertGreaterEqual(time.monotonic() - started, 1.9)

    def test_remote_control_reaches_the_worker(self):
        replies = self.tasks.app.control.inspect(timeout=5).ping() or {}
        self.assertIn("%s@warren-test" % self.worker["name"], replies)
        stats = self.tasks.app.control.inspect(timeout=5).stats() or {}
        self.assertIn("%s@warren-test" % self.worker["name"], stats)
        answers = self.tasks.app.control.broadcast("ping", reply=True, timeout=5)
        self.assertTrue(any("%s@warren-test" % self.worker["name"] in a for a in answers), answers)

    def test_a_late_ack_task_survives_its_worker_killed(self):
        result = self.tasks.slow.delay(self.workdir, 3)
        deadline = time.monotonic() + 30
        while not any(n.startswith("slow-started-") for n in os.listdir(self.workdir)):
            self.assertLess(time.monotonic(), deadline, "the slow task never started")
            time.sleep(0.05)
        for name in os.listdir(self.workdir):
            if name.startswith("slow-started-"):
                os.unlink(os.path.join(self.workdir, name))
        # The whole worker dies at once: its connection drops with the message unacked.
        self.stop_worker(self.worker, sig=signal.SIGKILL)
        type(self).worker = self.start_worker("w2")
        self.assertEqual(result.get(timeout=60), "slept")
        self.assertTrue(any(n.startswith("slow-started-") for n in os.listdir(self.workdir)),
                        "the task was not run again by the new worker")


if __name__ == "__main__":
    unittest.main()
