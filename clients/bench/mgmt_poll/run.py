#!/usr/bin/python3
"""Does a management poller disturb messaging? (issue 10's performance goal)

Warren and RabbitMQ side by side in one run. For each broker in turn (Warren, then Debian's
RabbitMQ 3.10 as a private node with the management plugin; --brokers chooses), with all set-up
outside the measured windows:
  0. start the broker on free ports, declare Q queues (10,000 by default) through AMQP with pika,
     wait until its management API lists all of them, and read its idle CPU for a few seconds;
  1. GET /api/queues with Q queues: wall time of each answer (median, p90, max of N requests)
     and the broker's CPU per answer (its idle share taken out);
  2. W1 (warren-perf: 1 producer, 1 consumer, 64 B, transient) for T seconds, without and with
     a poller fetching /api/queues once a second (a fetch starts every second, or at once when
     the previous answer took longer), alternating runs (R each) so that machine noise falls
     on both; reported as delivered msg/s and as messages per broker CPU-second (utime+stime
     summed over the broker's whole process tree, read from /proc: for RabbitMQ the
     rabbitmq-server shell script, beam.smp and its helpers) and the with/without ratio. A pause
     (--settle) before each run keeps the previous run's queue deletion out of the window.
The brokers run one after the other, not at the same time: an idle RabbitMQ with 10,000 queues
keeps a core partly busy (statistics), which would land on Warren's figures on a 2-core machine.
Then one table for both, and the load average before, between and after.
A benchmark that prints figures, never a test with a threshold.

usage: clients/bench/mgmt_poll/run.py [--queues 10000] [--time 10] [--rounds 3] [--build build]
                                      [--columns name,messages] [--brokers warren,rabbitmq]
                                      [--requests 20] [--idle 5] [--settle 3]
"""
import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# The /proc readings and port helpers clients/bench/compare uses (one copy of each).
from compare_brokers import cpu_seconds, process_tree, wait_for_port  # noqa: E402
from compare_brokers import spare_port as free_port  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def log(message):
    print("[mgmt_poll] %s" % message, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---- the brokers ------------------------------------------------------------------------------

class Warren:
    name = "warren"

    def __init__(self, build):
        self.binary = os.path.join(build, "warren")
        self.home = tempfile.mkdtemp(prefix="mgmt-poll-warren-")
        self.amqp_port, self.http_port = free_port(), free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([self.binary, "--bind", "127.0.0.1", "--port", str(self.amqp_port),
                                      "--data-dir", self.home, "--management_port", str(self.http_port),
                                      "--prometheus_port", "0", "--log-level", "warning"])
        if not wait_for_port(self.amqp_port, self.proc, 20):
            raise SystemExit("warren did not start")
        return self

    def pids(self):
        return process_tree(self.proc.pid)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.home, ignore_errors=True)


class RabbitMQ:
    """Debian's RabbitMQ as a private node (the way clients/bench/compare and
    tests/integration/test_mgmt_definitions.py start it): its own node name, ports, epmd (started
    here, so that its pid is known), management plugin on a free port, data and logs in a
    temporary directory."""
    name = "rabbitmq"

    def __init__(self):
        self.home = tempfile.mkdtemp(prefix="mgmt-poll-rabbitmq-")
        self.amqp_port, self.http_port, self.epmd_port = free_port(), free_port(), free_port()
        with open(os.path.join(self.home, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_management].\n")
        with open(os.path.join(self.home, "rabbitmq.conf"), "w") as f:
            f.write("listeners.tcp.default = 127.0.0.1:%d\n" % self.amqp_port)
            f.write("management.tcp.port = %d\n" % self.http_port)
            f.write("management.tcp.ip = 127.0.0.1\n")
        self.env = dict(os.environ, HOME=self.home,
                        RABBITMQ_NODENAME="mgmt-poll-%d@localhost" % self.amqp_port,
                        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                        RABBITMQ_NODE_PORT=str(self.amqp_port),
                        RABBITMQ_DIST_PORT=str(free_port()),
                        ERL_EPMD_PORT=str(self.epmd_port),
                        RABBITMQ_MNESIA_BASE=os.path.join(self.home, "mnesia"),
                        RABBITMQ_LOG_BASE=os.path.join(self.home, "log"),
                        RABBITMQ_CONFIG_FILE=os.path.join(self.home, "rabbitmq.conf"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.home, "enabled_plugins"))
        self.proc = self.epmd = None

    def start(self, timeout=180):
        out = open(os.path.join(self.home, "server.out"), "wb")
        # epmd in the foreground as our child: the node finds it on ERL_EPMD_PORT and starts none
        self.epmd = subprocess.Popen(["epmd", "-port", str(self.epmd_port)], env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_for_port(self.epmd_port, self.epmd, 10):
            raise SystemExit("epmd did not start")
        self.proc = subprocess.Popen([RABBITMQ_SERVER], env=self.env, cwd=self.home, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("rabbitmq-server exited: see %s" % self.home)
            try:
                if http_get(self.http_port, "/api/overview", timeout=5)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit("RabbitMQ's management API did not answer within %d s" % timeout)

    def pids(self):
        return process_tree(self.proc.pid)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            tree = self.pids()
            beam = [p for p in tree if comm(p) == "beam.smp"]
            for pid in beam or [self.proc.pid]:
                os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                log("rabbitmq did not stop in 60 s; killing its pids %s" % tree)
            for pid in reversed(tree):  # whatever of the tree is left (erl_child_setup, ...)
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if self.proc.poll() is None:
                self.proc.wait(10)
        if self.epmd and self.epmd.poll() is None:
            self.epmd.terminate()
            try:
                self.epmd.wait(10)
            except subprocess.TimeoutExpired:
                self.epmd.kill()
                self.epmd.wait(10)
        shutil.rmtree(self.home, ignore_errors=True)


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


# ---- the management API -----------------------------------------------------------------------

def http_get(port, path, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    token = base64.b64encode(b"guest:guest").decode()
    start = time.monotonic()
    conn.request("GET", path, headers={"Authorization": "Basic " + token})
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.monotonic() - start
    conn.close()
    return resp.status, body, elapsed


def get_queues(port, path):
    status, body, elapsed = http_get(port, path)
    if status != 200:
        raise SystemExit("GET %s answered %d" % (path, status))
    return elapsed, len(body)


def declare_queues(amqp_port, count):
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", amqp_port))
    ch = conn.channel()
    for i in range(count):
        ch.queue_declare("poll-bench-%05d" % i, durable=False)
    conn.close()


def wait_listed(port, count, timeout=300):
    """Until the management API lists all count queues (RabbitMQ's may lag behind the declares)."""
    deadline = time.monotonic() + timeout
    listed = -1
    while time.monotonic() < deadline:
        status, body, _ = http_get(port, "/api/queues?columns=name")
        if status == 200:
            listed = sum(1 for q in json.loads(body) if q["name"].startswith("poll-bench-"))
            if listed >= count:
                return
        time.sleep(1)
    raise SystemExit("the management API lists %d of %d queues after %d s" % (listed, count, timeout))


class Poller(threading.Thread):
    def __init__(self, port, path):
        super().__init__(daemon=True)
        self.port, self.path, self.stop, self.times = port, path, threading.Event(), []

    def run(self):
        due = time.monotonic()
        while not self.stop.is_set():
            self.times.append(get_queues(self.port, self.path)[0])
            due += 1.0
            self.stop.wait(max(0.0, due - time.monotonic()))
            due = max(due, time.monotonic() - 1.0)  # an answer slower than 1 s: start the next at once


def w1(perf, broker, seconds):
    before = cpu_seconds(broker.pids())
    out = subprocess.run([perf, "--uri", "amqp://guest:guest@127.0.0.1:%d/" % broker.amqp_port, "--time",
                          str(seconds), "--size", "64"], stdout=subprocess.PIPE, text=True, check=True).stdout
    cpu = cpu_seconds(broker.pids()) - before
    result = dict(kv.split("=", 1) for kv in out.strip().splitlines()[-1].split()[1:])
    delivered = int(result["delivered"])
    return delivered / cpu if cpu > 0 else float("nan"), float(result["del_rate"]), cpu


def measure(broker, args, path, perf):
    """Set-up (outside every window), then the GET latencies and the alternating W1 runs."""
    t0 = time.monotonic()
    broker.start()
    log("%s started in %.1f s" % (broker.name, time.monotonic() - t0))
    t0 = time.monotonic()
    declare_queues(broker.amqp_port, args.queues)
    log("%s: %d queues declared in %.1f s" % (broker.name, args.queues, time.monotonic() - t0))
    wait_listed(broker.http_port, args.queues)
    log("%s: all listed by the management API after %.1f s" % (broker.name, time.monotonic() - t0))
    time.sleep(5)  # let the declares' aftermath (statistics, ...) settle
    before = cpu_seconds(broker.pids())
    time.sleep(args.idle)
    idle = (cpu_seconds(broker.pids()) - before) / args.idle
    r = {"name": broker.name, "idle": idle, "load_before": loadavg()}
    print("%s: idle with %d queues, broker CPU %.1f%% of a core; load average %s"
          % (broker.name, args.queues, idle * 100, r["load_before"]), flush=True)
    get_queues(broker.http_port, path)  # warm
    times, size = [], 0
    cpu_before, started = cpu_seconds(broker.pids()), time.monotonic()
    for _ in range(args.requests):
        t, size = get_queues(broker.http_port, path)
        times.append(t)
    # the broker's CPU per answer, its idle share over the same time taken out
    spent = cpu_seconds(broker.pids()) - cpu_before - idle * (time.monotonic() - started)
    times.sort()
    r.update(size=size, median=statistics.median(times), p90=times[int(len(times) * 0.9) - 1], max=times[-1],
             cpu_per_get=max(spent, 0.0) / len(times))
    print("%s: GET %s with %d queues (%d bytes): median %.1f ms, p90 %.1f ms, max %.1f ms over %d requests; "
          "broker CPU %.1f ms per answer"
          % (broker.name, path, args.queues, size, r["median"] * 1e3, r["p90"] * 1e3, r["max"] * 1e3,
             len(times), r["cpu_per_get"] * 1e3), flush=True)
    runs = {False: [], True: []}
    for n in range(args.rounds):
        for with_poller in (False, True):
            time.sleep(args.settle)  # outside the window: the previous run's queue deletion, backlog
            poller = Poller(broker.http_port, path) if with_poller else None
            if poller:
                poller.start()
            per_cpu, rate, cpu = w1(perf, broker, args.time)
            if poller:
                poller.stop.set()
                poller.join()
            runs[with_poller].append((per_cpu, rate))
            print("%s: round %d %-14s W1 %8.0f msg/s delivered, broker CPU %.2f s, %8.0f msg per broker CPU-s%s"
                  % (broker.name, n + 1, "with poller" if with_poller else "without poller", rate, cpu, per_cpu,
                     " (%d polls, median %.1f ms)" % (len(poller.times), statistics.median(poller.times) * 1e3)
                     if poller and poller.times else ""), flush=True)
    for key, label in ((False, "plain"), (True, "polled")):
        r[label + "_cpu"] = statistics.median(x[0] for x in runs[key])
        r[label + "_rate"] = statistics.median(x[1] for x in runs[key])
    r["load_after"] = loadavg()
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queues", type=int, default=10000)
    ap.add_argument("--time", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--idle", type=int, default=5, help="seconds of idle CPU measured before the GETs")
    ap.add_argument("--settle", type=float, default=3, help="seconds of pause before each W1 run")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--brokers", default="warren,rabbitmq")
    ap.add_argument("--columns", help="poll /api/queues?columns=COLUMNS (as rabbitmqadmin does) instead of every field")
    args = ap.parse_args()
    path = "/api/queues" + ("?columns=" + args.columns if args.columns else "")
    perf = os.path.join(args.build, "warren-perf")
    names = args.brokers.split(",")
    if "rabbitmq" in names and not os.access(RABBITMQ_SERVER, os.X_OK):
        raise SystemExit("%s is not installed; run with --brokers warren" % RABBITMQ_SERVER)
    print("poll %s; %d queues; W1 %d s x %d rounds; %d CPUs; load average before: %s"
          % (path, args.queues, args.time, args.rounds, os.cpu_count(), loadavg()), flush=True)
    results = []
    for name in names:
        broker = Warren(args.build) if name == "warren" else RabbitMQ() if name == "rabbitmq" else None
        if broker is None:
            raise SystemExit("unknown broker %s" % name)
        try:
            results.append(measure(broker, args, path, perf))
        finally:
            broker.stop()
    print()
    print("GET %s with %d queues; W1 (1 producer, 1 consumer, 64 B, %d s) medians of %d rounds, without / with "
          "a poller once a second" % (path, args.queues, args.time, args.rounds))
    print("%-9s %9s %7s %15s %12s %11s %21s %21s %9s %17s %17s"
          % ("broker", "JSON", "idle", "GET median/p90", "GET max", "CPU per GET", "W1 msg/s w/o / with",
             "msg/CPU-s w/o / with", "ratio", "load before", "load after"))
    for r in results:
        print("%-9s %7.2fMB %6.1f%% %7.0f/%4.0f ms %9.0f ms %8.1f ms %10.0f/%10.0f %10.0f/%10.0f %8.3f %17s %17s"
              % (r["name"], r["size"] / 1e6, r["idle"] * 100, r["median"] * 1e3, r["p90"] * 1e3, r["max"] * 1e3,
                 r["cpu_per_get"] * 1e3, r["plain_rate"], r["polled_rate"], r["plain_cpu"], r["polled_cpu"],
                 r["polled_cpu"] / r["plain_cpu"], r["load_before"], r["load_after"]))
    print("ratio = msg per broker CPU-s with the poller / without; idle = broker CPU with the queues declared, "
          "no clients")
    print("load average after: %s" % loadavg())


if __name__ == "__main__":
    main()
