#!/usr/bin/python3
"""Quorum queues on three nodes, Warren next to RabbitMQ 3.10, in one run (issue 13). A benchmark
run by hand, not a test.

For each broker: three nodes on loopback (private ports, data under one temporary directory), one
quorum queue declared on the queue's leader, then
- throughput with confirms: 1 KiB persistent messages from two publishers (on the leader and on a
  follower) and one consumer acking on the other follower, all in one qq-perf process (amqp091-go,
  clients/bench/qq-perf); once with a window of unconfirmed publishes per publisher and no pacing,
  once paced; msgs/s is confirms per second over the measured window, the brokers' CPU seconds are
  read from /proc around it (summed over the three nodes' process trees);
- failover: a publisher (paced) on a follower, a consumer on the other follower; SIGKILL the leader
  (Warren: the metadata leader, which holds every quorum queue's log; RabbitMQ: the node the
  queue's leader is on), time from the kill to the first confirm of a message published after it,
  then start the node again on its data and wait until it is back; N trials;
- with --backlog-steps N: publish-only steps on a queue nobody consumes, msgs/s as it deepens;
- with --queue-type classic: the same throughput with a durable classic queue declared through
  the first node (its home on both brokers), reached from the other two (no failover trials).

Usage: /usr/bin/python3 clients/bench/cluster_quorum_bench.py [--rounds 3] [--trials 10] ...
(from the repository root, after cmake --build build; builds build/qq-perf when missing).
"""

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from compare_brokers import cpu_seconds, process_tree, spare_port, wait_for_port  # noqa: E402

import pika  # noqa: E402  (set-up only: declares and deletes)

QUEUE = "qq-bench"


def log(message):
    print(f"[qq-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def kill_tree(pid):
    """SIGKILL to pid and every descendant at once, as a crash would."""
    for p in reversed(process_tree(pid)):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# Warren: three nodes, one metadata Raft group that also carries every quorum queue.

class WarrenNode:
    def __init__(self, index, workdir, binary, cluster_ports, secret, election_ms, extra=()):
        self.index = index
        self.name = f"warren{index + 1}"
        self.dir = os.path.join(workdir, self.name)
        self.port = spare_port()
        peers = ",".join(f"127.0.0.1:{p}" for p in cluster_ports)
        self.argv = [binary, "--bind", "127.0.0.1", "--port", str(self.port),
                     "--data-dir", os.path.join(self.dir, "data"), "--log-level", "warning",
                     "--management_port", "0", "--prometheus_port", "0",
                     "--node_name", f"n{index + 1}", "--cluster_port", str(cluster_ports[index]),
                     "--cluster_peers", peers, "--cluster_secret_file", secret]
        if election_ms:
            self.argv += ["--cluster_election_timeout_ms", str(election_ms)]
        self.argv += list(extra)
        self.address = f"127.0.0.1:{cluster_ports[index]}"
        self.proc = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        logf = open(os.path.join(self.dir, "warren.log"), "ab")
        self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()

    def wait(self):
        if not wait_for_port(self.port, self.proc, 30):
            raise RuntimeError(f"{self.name} did not open port {self.port}; see {self.dir}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return process_tree(self.proc.pid) if self.alive() else []

    def uri(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def status(self):
        request = json.dumps({"command": "cluster_status", "args": [], "vhost": "/"}).encode() + b"\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(os.path.join(self.dir, "data", "warren.sock"))
            sock.sendall(request)
            answer = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        return json.loads(answer)["cluster"]

    def kill(self):
        kill_tree(self.proc.pid)
        self.proc.wait(30)

    def stop(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pid {self.proc.pid}) ignored SIGTERM for 30 s; killing it")
                self.kill()


class WarrenCluster:
    label = "Warren"

    def __init__(self, workdir, binary, election_ms, extra=()):
        self.workdir = os.path.join(workdir, "warren")
        os.makedirs(self.workdir)
        secret = os.path.join(self.workdir, "cluster-secret")
        with open(secret, "wb") as f:
            f.write(base64.b64encode(os.urandom(32)) + b"\n")
        os.chmod(secret, 0o600)
        ports = [spare_port() for _ in range(3)]
        self.nodes = [WarrenNode(i, self.workdir, binary, ports, secret, election_ms, extra) for i in range(3)]

    def start(self):
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait()
        self.leader()

    def stop(self):
        for node in self.nodes:
            node.stop()

    def pids(self):
        return [p for node in self.nodes for p in node.pids()]

    def leader(self, timeout=30.0):
        """The node every live node names as leader, once they agree (and it is alive)."""
        deadline = time.monotonic() + timeout
        while True:
            views = set()
            for node in self.nodes:
                if not node.alive():
                    continue
                try:
                    views.add(node.status().get("leader"))
                except (OSError, ValueError, KeyError):
                    views.add(None)
            if len(views) == 1 and None not in views:
                address = views.pop()
                for node in self.nodes:
                    if node.address == address and node.alive():
                        return node
            if time.monotonic() > deadline:
                raise RuntimeError(f"Warren: no agreed leader within {timeout:.0f} s: {views!r}")
            time.sleep(0.05)

    def queue_leader(self, declared=True):
        return self.leader()

    def restart(self, node):
        node.start()
        node.wait()
        # Back: every node (the restarted one included) names the same leader.
        self.leader(timeout=60)


# ---------------------------------------------------------------------------------------------
# RabbitMQ 3.10: three nodes joined into one cluster, one Ra group for the queue.

RABBIT_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


class RabbitNode:
    def __init__(self, index, workdir, home):
        self.index = index
        self.nodename = f"qqbench{index + 1}-{os.getpid()}@localhost"
        self.dir = os.path.join(workdir, f"rabbit{index + 1}")
        self.port = spare_port()
        self.env = dict(os.environ, HOME=home,
                        RABBITMQ_NODENAME=self.nodename,
                        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                        RABBITMQ_NODE_PORT=str(self.port),
                        RABBITMQ_DIST_PORT=str(spare_port()),
                        RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
                        RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(home, "enabled_plugins"))
        self.proc = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        logf = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen([RABBIT_SCRIPT], stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env, cwd=self.dir,
                                     start_new_session=True)
        logf.close()

    def ctl(self, *args, timeout=120, check=True):
        out = subprocess.run([RABBITMQCTL, "-n", self.nodename] + list(args), env=self.env,
                             capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {self.nodename} {' '.join(args)}: "
                               f"{out.stdout.strip()} {out.stderr.strip()}")
        return out.stdout

    def wait(self):
        if not wait_for_port(self.port, self.proc, 180):
            raise RuntimeError(f"{self.nodename} did not open port {self.port}; see {self.dir}")
        self.ctl("await_startup", "--timeout", "120")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return process_tree(self.proc.pid) if self.alive() else []

    def uri(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def kill(self):
        kill_tree(self.proc.pid)
        self.proc.wait(30)

    def stop(self):
        if self.alive():
            try:
                self.ctl("stop", timeout=60, check=False)
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                log(f"{self.nodename} did not stop in 60 s; killing pid {self.proc.pid}")
                self.kill()


class RabbitCluster:
    label = "RabbitMQ 3.10"

    def __init__(self, workdir):
        self.workdir = os.path.join(workdir, "rabbitmq")
        home = os.path.join(self.workdir, "home")
        os.makedirs(home)
        cookie = os.path.join(home, ".erlang.cookie")
        with open(cookie, "w") as f:
            f.write(base64.b32encode(os.urandom(20)).decode().rstrip("="))
        os.chmod(cookie, 0o400)
        with open(os.path.join(home, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        self.nodes = [RabbitNode(i, self.workdir, home) for i in range(3)]

    def start(self):
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.nodename)
            node.ctl("start_app")
        running = json.loads(first.ctl("cluster_status", "--formatter", "json"))["running_nodes"]
        if len(running) != 3:
            raise RuntimeError(f"RabbitMQ cluster did not form: running nodes {running}")
        log(f"RabbitMQ cluster formed: {running}")

    def stop(self):
        for node in reversed(self.nodes):
            node.stop()

    def pids(self):
        return [p for node in self.nodes for p in node.pids()]

    def queue_leader(self, declared=True, timeout=60.0):
        """The node the quorum queue's leader is on, asked of a live node; with declared=False
        and no such queue yet, the first node (where a declare puts the leader)."""
        deadline = time.monotonic() + timeout
        while True:
            for node in self.nodes:
                if not node.alive():
                    continue
                try:
                    rows = json.loads(node.ctl("list_queues", "name", "leader", "--formatter", "json",
                                               "-q", timeout=20))
                except (RuntimeError, ValueError, subprocess.TimeoutExpired):
                    continue
                if not declared and not any(row.get("name") == QUEUE for row in rows):
                    return self.nodes[0]
                for row in rows:
                    if row.get("name") == QUEUE:
                        for candidate in self.nodes:
                            if candidate.nodename == row.get("leader") and candidate.alive():
                                return candidate
                break
            if time.monotonic() > deadline:
                raise RuntimeError("RabbitMQ: no live leader for the queue")
            time.sleep(0.2)

    def restart(self, node):
        node.start()
        node.wait()
        # Back in the queue's Ra group: every member online.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = node.ctl("list_queues", "name", "online", "--formatter", "json", "-q", check=False)
            try:
                rows = json.loads(out)
            except ValueError:
                rows = []
            if any(r.get("name") == QUEUE and len(r.get("online", [])) == 3 for r in rows):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{node.nodename} did not rejoin the queue's group within 60 s")


# ---------------------------------------------------------------------------------------------
# Set-up through pika (outside every measured window).

QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}  # --queue-type classic: {} (a durable classic queue)


def declare(node, fresh=True):
    connection = pika.BlockingConnection(pika.URLParameters(node.uri() + "?socket_timeout=30"))
    try:
        channel = connection.channel()
        if fresh:
            channel.queue_delete(QUEUE)
        channel.queue_declare(QUEUE, durable=True, arguments=QUEUE_ARGUMENTS)
    finally:
        connection.close()


def queue_home(cluster):
    """Where the queue's messages live: a quorum queue's leader; a classic queue's home, the
    node it is declared through (both brokers put it there), the first node."""
    return cluster.queue_leader(declared=False) if QUEUE_ARGUMENTS else cluster.nodes[0]


def qq_perf_binary():
    binary = os.path.join(ROOT, "build", "qq-perf")
    source = os.path.join(HERE, "qq-perf", "main.go")
    if not os.access(binary, os.X_OK) or os.path.getmtime(binary) < os.path.getmtime(source):
        log("building build/qq-perf")
        env = dict(os.environ, GO111MODULE="off", GOPROXY="off", GOFLAGS="", GOTOOLCHAIN="local",
                   GOPATH="/usr/share/gocode", GOCACHE=os.path.join(ROOT, "build", "go-cache"))
        subprocess.run(["go", "build", "-o", binary, source], env=env, check=True)
    return binary


def parse_result(line):
    """The key=value pairs after a qq-perf line's first word; numbers (nan included) as floats."""
    def value(text):
        try:
            return float(text)
        except ValueError:
            return text
    return {k: value(v) for k, v in (item.split("=", 1) for item in line.split()[1:])}


class Client:
    """One qq-perf process driven line by line over its stdin and stdout."""

    def __init__(self, args, logpath):
        self.errf = open(logpath, "ab")
        self.proc = subprocess.Popen([qq_perf_binary()] + args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.errf, text=True, bufsize=1)

    def expect(self, prefix):
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"qq-perf ended while waiting for {prefix!r}")
            if line.startswith(prefix):
                return line.strip()

    def send(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self):
        result = parse_result(self.expect("RESULT"))
        self.proc.wait(60)
        self.errf.close()
        return result


# ---------------------------------------------------------------------------------------------
# Measurements

def throughput(cluster, args, rate, workdir):
    """One round: fresh queue, publishers on the leader and a follower, consumer on the other."""
    leader = queue_home(cluster)
    declare(leader)
    if QUEUE_ARGUMENTS and cluster.queue_leader() is not leader:
        raise RuntimeError("the queue's leader moved during set-up")
    followers = [n for n in cluster.nodes if n is not leader]
    client = Client(["--publish", leader.uri(), "--publish", followers[0].uri(),
                     "--consume", followers[1].uri(), "--queue", QUEUE, "--size", str(args.size),
                     "--confirm", str(args.window), "--rate", str(rate), "--time", str(args.time),
                     "--warmup", str(args.warmup), "--prefetch", str(args.prefetch),
                     "--slow-ms", str(args.slow_ms)],
                    os.path.join(workdir, "qq-perf.log"))
    client.expect("ready")
    client.send("go")
    client.expect("measure start")
    cpu0 = cpu_seconds(cluster.pids())
    client.send("")
    client.expect("measure end")
    cpu1 = cpu_seconds(cluster.pids())
    client.send("")
    result = client.finish()
    result["cpu_s"] = cpu1 - cpu0
    result["msgs_s"] = result["confirmed"] / result["seconds"]
    result["leader"] = leader.index + 1
    return result


def backlog(cluster, args, workdir):
    """Publish-only steps of --time seconds on one queue that nobody consumes: msgs/s as the
    queue deepens (a broker whose per-command cost grows with the queue's depth slows down)."""
    leader = queue_home(cluster)
    declare(leader)
    follower = next(n for n in cluster.nodes if n is not leader)
    steps, depth = [], 0
    for step in range(args.backlog_steps):
        client = Client(["--publish", leader.uri(), "--publish", follower.uri(), "--queue", QUEUE,
                         "--size", str(args.size), "--confirm", str(args.window),
                         "--time", str(args.time), "--warmup", "0"],
                        os.path.join(workdir, "qq-perf-backlog.log"))
        client.expect("ready")
        client.send("go")
        client.expect("measure start")
        cpu0 = cpu_seconds(cluster.pids())
        client.send("")
        client.expect("measure end")
        cpu1 = cpu_seconds(cluster.pids())
        client.send("")
        result = client.finish()
        steps.append({"depth_before": depth, "msgs_s": result["confirmed"] / result["seconds"],
                      "conf_p50_us": result["conf_p50_us"], "cpu_s": cpu1 - cpu0})
        log(f"{cluster.label} backlog step {step + 1}: depth about {depth} before, "
            f"{steps[-1]['msgs_s']:.0f} msgs/s, confirm p50 {result['conf_p50_us'] / 1000:.0f} ms, "
            f"cpu {cpu1 - cpu0:.2f} s")
        depth += int(result["confirmed"])  # every publish is confirmed by the end of the step
    return steps


def failover(cluster, args, workdir):
    """N trials: kill the leader under a paced publisher on a follower; the confirm gap."""
    declare(cluster.queue_leader(declared=False))
    trials = []
    for trial in range(args.trials):
        leader = cluster.queue_leader()
        followers = [n for n in cluster.nodes if n is not leader]
        client = Client(["--failover", "--publish", followers[0].uri(), "--consume", followers[1].uri(),
                         "--queue", QUEUE, "--size", str(args.size), "--confirm", str(args.window),
                         "--rate", str(args.failover_rate), "--settle", "60", "--prefetch", str(args.prefetch)],
                        os.path.join(workdir, "qq-perf-failover.log"))
        client.expect("ready")
        client.send("go")
        time.sleep(2)
        # Kill first, then mark: only publishes made after the kill count, and the time runs from
        # the kill (one CLOCK_MONOTONIC for both processes).
        killed_ns = time.monotonic_ns()
        kill_tree(leader.proc.pid)
        client.send(f"mark {killed_ns}")
        leader.proc.wait(30)
        killed_at = killed_ns / 1e9
        try:
            first = client.expect("FIRST")
        except RuntimeError as e:
            first = f"FIRST ms=nan gap_ms=nan ({e})"
        fields = parse_result(first.split("(")[0])
        client.send("settle")
        settled = parse_result(client.expect("SETTLED"))
        client.send("stop")
        result = client.finish()
        trial_result = {"first_ms": fields["ms"], "gap_ms": fields["gap_ms"],
                        "outstanding": settled["outstanding"], "nacked": settled["nacked"],
                        "status": result["status"], "unconfirmed": result["unconfirmed"]}
        trials.append(trial_result)
        log(f"{cluster.label} failover {trial + 1}/{args.trials}: killed node {leader.index + 1}, "
            f"first confirm after {fields['ms']} ms (gap {fields['gap_ms']} ms), "
            f"settled outstanding={settled['outstanding']} nacked={settled['nacked']} "
            f"status={result['status']} unconfirmed={result['unconfirmed']}")
        began = time.monotonic()
        cluster.restart(leader)
        log(f"  node {leader.index + 1} back after {time.monotonic() - killed_at:.1f} s "
            f"(restart {time.monotonic() - began:.1f} s)")
        time.sleep(1)
    return trials


def median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def run_broker(cluster, args, workdir):
    report = {"label": cluster.label}
    log(f"starting {cluster.label}")
    cluster.start()
    try:
        for mode, rate in (("window", 0), ("paced", args.paced_rate / 2)):
            if mode not in args.modes.split(","):
                continue
            rounds = []
            for r in range(args.rounds):
                result = throughput(cluster, args, rate, workdir)
                log(f"{cluster.label} {mode} round {r + 1}: {result['msgs_s']:.0f} msgs/s, confirm "
                    f"p50 {result['conf_p50_us'] / 1000:.1f} ms p99 {result['conf_p99_us'] / 1000:.1f} ms, "
                    f"cpu {result['cpu_s']:.2f} s, leader node {result['leader']}, status {result['status']}")
                rounds.append(result)
            report[mode] = rounds
        if args.backlog_steps > 0:
            report["backlog"] = backlog(cluster, args, workdir)
        if args.trials > 0:
            report["failover"] = failover(cluster, args, workdir)
    finally:
        cluster.stop()
    return report


def summary(rounds):
    msgs = median([r["msgs_s"] for r in rounds])
    cpu = median([r["cpu_s"] for r in rounds])
    per_cpu = median([r["confirmed"] / r["cpu_s"] if r["cpu_s"] else float("nan") for r in rounds])
    delivered = median([r["received"] / r["seconds"] for r in rounds])
    return {"msgs_s": msgs, "delivered_s": delivered, "lat_p50": median([r["lat_p50_us"] for r in rounds]) / 1000,
            "p50": median([r["conf_p50_us"] for r in rounds]) / 1000,
            "p99": median([r["conf_p99_us"] for r in rounds]) / 1000, "cpu": cpu, "per_cpu": per_cpu,
            "status": ",".join(sorted({str(r["status"]) for r in rounds}))}


def print_table(reports, args, load_before, load_after):
    warren, rabbit = reports
    lines = [f"{'Quorum' if QUEUE_ARGUMENTS else 'Durable classic'} queues on three nodes (publishers on the "
             f"queue's {'leader' if QUEUE_ARGUMENTS else 'home'} and on another node, the consumer on the third): "
             f"{args.size}-byte persistent messages, 2 publishers "
             f"(confirm window {args.window} each), 1 consumer (prefetch {args.prefetch}, multi-ack 50); client "
             f"qq-perf (amqp091-go); {args.rounds} round(s) of {args.time:.0f} s after {args.warmup:.0f} s "
             f"warm-up, medians; failover: {args.trials} trial(s), publisher paced at "
             f"{args.failover_rate:.0f} msg/s", ""]
    if args.rounds > 0:
        # msgs/s counts confirms; delivered/s what the consumer received in the same window, and
        # publish -> deliver p50 shows whether it kept up (a growing backlog shows as seconds)
        lines.append("| workload | broker | msgs/s | Warren/RabbitMQ | confirm p50 ms | confirm p99 ms "
                     "| delivered/s | publish→deliver p50 ms | broker CPU s | msgs per CPU-s | status |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for mode, title in (("window", f"window {args.window}, unpaced"),
                        ("paced", f"paced {args.paced_rate:.0f} msg/s total")):
        w = summary(warren[mode]) if warren.get(mode) else None
        r = summary(rabbit[mode]) if rabbit.get(mode) else None
        for who, s in ((warren["label"], w), (rabbit["label"], r)):
            if s is None:
                continue
            ratio = f"{w['msgs_s'] / r['msgs_s']:.2f}×" if s is w and r and r["msgs_s"] else ""
            lines.append(f"| {title} | {who} | {s['msgs_s']:.0f} | {ratio} | {s['p50']:.1f} | {s['p99']:.1f} "
                         f"| {s['delivered_s']:.0f} | {s['lat_p50']:.1f} "
                         f"| {s['cpu']:.2f} | {s['per_cpu']:.0f} | {s['status']} |")
    if "failover" in warren or "failover" in rabbit:
        lines += ["", "| failover (leader SIGKILLed) | broker | trials | first confirm median ms "
                  "| max ms | longest confirm gap median ms | trials with unsettled or nacked |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for rep in reports:
            trials = rep.get("failover", [])
            if not trials:
                continue
            firsts = [t["first_ms"] for t in trials]
            bad = sum(1 for t in trials if t["outstanding"] >= args.window or t["nacked"]
                      or t["unconfirmed"] or t["status"] != "ok")
            lines.append(f"| kill → first confirm of a post-kill publish | {rep['label']} | {len(trials)} "
                         f"| {median(firsts):.0f} | {max((f for f in firsts if f == f), default=float('nan')):.0f} "
                         f"| {median([t['gap_ms'] for t in trials]):.0f} | {bad} |")
    if args.backlog_steps > 0:
        lines += ["", "| publish-only step (no consumer) | " +
                  " | ".join(f"{rep['label']} msgs/s (depth before)" for rep in reports) + " |",
                  "|---|" + "---:|" * len(reports)]
        for i in range(args.backlog_steps):
            cells = []
            for rep in reports:
                steps = rep.get("backlog", [])
                cells.append(f"{steps[i]['msgs_s']:.0f} ({steps[i]['depth_before']})" if i < len(steps) else "")
            lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    lines += ["", f"order: {args.first} first; Warren election timeout: "
              f"{args.election_ms or 'default (1000)'} ms",
              f"load before: {load_before}", f"load after:  {load_after}"]
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warren", default=os.path.join(ROOT, "build", "warren"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--time", type=float, default=10.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--window", type=int, default=256, help="unconfirmed publishes per publisher")
    parser.add_argument("--queue-type", choices=["quorum", "classic"], default="quorum",
                        help="classic: a durable classic queue homed on the first node (no failover trials)")
    parser.add_argument("--prefetch", type=int, default=500, help="the consumer's basic.qos")
    parser.add_argument("--paced-rate", type=float, default=1000.0, help="msg/s, both publishers together")
    parser.add_argument("--trials", type=int, default=10, help="failover trials (0: none)")
    parser.add_argument("--failover-rate", type=float, default=1000.0)
    parser.add_argument("--backlog-steps", type=int, default=0,
                        help="publish-only steps of --time seconds on a queue nobody consumes")
    parser.add_argument("--election-ms", type=int, default=0,
                        help="Warren's cluster_election_timeout_ms (0: the broker's default)")
    parser.add_argument("--warren-arg", action="append", default=[],
                        help="one more argument for every Warren node (repeat: --warren-arg=--KEY --warren-arg=VALUE)")
    parser.add_argument("--only", choices=["warren", "rabbitmq"], help="measure one broker")
    parser.add_argument("--first", choices=["warren", "rabbitmq"], default="warren",
                        help="which broker runs first (the machine's load drifts)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--modes", default="window,paced",
                        help="which throughput workloads to run: window (unpaced), paced, or both")
    parser.add_argument("--slow-ms", type=float, default=0,
                        help="qq-perf.log (in the kept directory) lists every confirm slower than this")
    parser.add_argument("--json", help="also write every round's figures to this file")
    args = parser.parse_args()
    if args.queue_type == "classic":
        QUEUE_ARGUMENTS.clear()
        args.trials = 0  # a classic queue does not fail over: its home's death takes it away

    workdir = tempfile.mkdtemp(prefix="qq-bench-")
    log(f"work directory {workdir}")
    qq_perf_binary()
    load_before = uptime()
    reports = [{"label": "Warren"}, {"label": "RabbitMQ 3.10"}]
    try:
        order = ["warren", "rabbitmq"] if args.first == "warren" else ["rabbitmq", "warren"]
        for which in order:
            if args.only and args.only != which:
                continue
            if which == "warren":
                reports[0] = run_broker(WarrenCluster(workdir, args.warren, args.election_ms, args.warren_arg), args, workdir)
            else:
                reports[1] = run_broker(RabbitCluster(workdir), args, workdir)
    finally:
        load_after = uptime()
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "reports": reports, "load_before": load_before,
                           "load_after": load_after}, f, indent=1)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(reports, args, load_before, load_after)


if __name__ == "__main__":
    main()
