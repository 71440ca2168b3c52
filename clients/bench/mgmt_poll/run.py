#!/usr/bin/python3
"""Does a management poller disturb messaging? (issue 10's performance goal)

Starts a release warren with the management API on a free port, declares Q queues (10,000 by
default) through AMQP, then measures, each in its own window with set-up outside it:
  1. GET /api/queues with Q queues: wall time of each answer (median, p90, max of N requests);
  2. W1 (warren-perf: 1 producer, 1 consumer, 64 B, transient) for T seconds, without and with
     a poller fetching /api/queues once a second, alternating runs (R each) so that machine
     noise falls on both; reported as messages per broker CPU-second (utime+stime of the
     broker process over the window) and the ratio.
A benchmark that prints figures, never a test with a threshold.

usage: clients/bench/mgmt_poll/run.py [--queues 10000] [--time 10] [--rounds 3] [--build build]
"""
import argparse
import base64
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PATH = "/api/queues"


def get_queues(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    token = base64.b64encode(b"guest:guest").decode()
    start = time.monotonic()
    conn.request("GET", PATH, headers={"Authorization": "Basic " + token})
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.monotonic() - start
    conn.close()
    if resp.status != 200:
        raise SystemExit("GET /api/queues answered %d" % resp.status)
    return elapsed, len(body)


def declare_queues(amqp_port, count):
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", amqp_port))
    ch = conn.channel()
    for i in range(count):
        ch.queue_declare("poll-bench-%05d" % i, durable=False)
    conn.close()


class Poller(threading.Thread):
    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.times = port, threading.Event(), []

    def run(self):
        while not self.stop.is_set():
            self.times.append(get_queues(self.port)[0])
            self.stop.wait(1.0)


def w1(perf, amqp_port, seconds, pid):
    before = cpu_seconds(pid)
    out = subprocess.run([perf, "--uri", "amqp://guest:guest@127.0.0.1:%d/" % amqp_port, "--time", str(seconds),
                          "--size", "64"], stdout=subprocess.PIPE, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - before
    result = dict(kv.split("=", 1) for kv in out.strip().splitlines()[-1].split()[1:])
    delivered = int(result["delivered"])
    return delivered / cpu if cpu > 0 else float("nan"), float(result["del_rate"]), cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queues", type=int, default=10000)
    ap.add_argument("--time", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--columns", help="poll /api/queues?columns=COLUMNS (as rabbitmqadmin does) instead of every field")
    args = ap.parse_args()
    global PATH
    if args.columns:
        PATH = "/api/queues?columns=" + args.columns
    binary, perf = os.path.join(args.build, "warren"), os.path.join(args.build, "warren-perf")
    data = tempfile.mkdtemp(prefix="mgmt-poll-")
    amqp_port, http_port = free_port(), free_port()
    broker = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(amqp_port), "--data-dir", data,
                               "--management_port", str(http_port), "--prometheus_port", "0",
                               "--log-level", "warning"])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", amqp_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        print("load average before: %s" % open("/proc/loadavg").read().strip())
        declare_queues(amqp_port, args.queues)
        get_queues(http_port)  # warm
        times, size = [], 0
        for _ in range(args.requests):
            t, size = get_queues(http_port)
            times.append(t)
        times.sort()
        print("GET %s with %d queues (%d bytes): median %.1f ms, p90 %.1f ms, max %.1f ms over %d requests"
              % (PATH, args.queues, size, statistics.median(times) * 1e3, times[int(len(times) * 0.9) - 1] * 1e3,
                 times[-1] * 1e3, len(times)))
        plain, polled = [], []
        for r in range(args.rounds):
            for with_poller in (False, True):
                poller = Poller(http_port) if with_poller else None
                if poller:
                    poller.start()
                per_cpu, rate, cpu = w1(perf, amqp_port, args.time, broker.pid)
                if poller:
                    poller.stop.set()
                    poller.join()
                (polled if with_poller else plain).append(per_cpu)
                print("round %d %-14s W1 %8.0f msg/s delivered, broker CPU %.2f s, %8.0f msg per broker CPU-s%s"
                      % (r + 1, "with poller" if with_poller else "without poller", rate, cpu, per_cpu,
                         " (%d polls, median %.1f ms)" % (len(poller.times), statistics.median(poller.times) * 1e3)
                         if poller and poller.times else ""))
        a, b = statistics.median(plain), statistics.median(polled)
        print("median msg per broker CPU-s: without poller %.0f, with poller %.0f: %+.1f%%" % (a, b, (b - a) / a * 100))
        print("load average after: %s" % open("/proc/loadavg").read().strip())
    finally:
        broker.terminate()
        broker.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
