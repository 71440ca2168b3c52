#!/usr/bin/python3
"""Memory per idle connection, plain and TLS, Warren against RabbitMQ 3.10 (issue 12).

For each broker: start it with a plain and a TLS listener (throw-away certificates from
tests/integration/tls_certs.py; RabbitMQ as a private node with a temporary HOME, mnesia and
log directory and a rabbitmq.conf for TLS), open and close a few warm-up connections, read the
broker's RSS, open N idle connections (tests/integration/idle_clients.py: logged in with
heartbeat 0, channel 1 open), wait for the RSS to settle, read it again, close them, and do the
same over TLS. Prints KiB of RSS per connection (for RabbitMQ: beam.smp and its children).

  /usr/bin/python3 clients/bench/idle/run.py --warren build/warren --connections 10000
  /usr/bin/python3 clients/bench/idle/run.py --brokers warren --connections 19900
"""
import argparse
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import idle_clients  # noqa: E402
import tls_certs  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "clients", "bench"))
# The /proc readings and port helpers clients/bench/compare uses (one copy of each).
from compare_brokers import process_tree, rss_kib, spare_port  # noqa: E402
from compare_brokers import wait_for_port as wait_port  # noqa: E402


class Broker:
    def __init__(self, workdir, certs):
        self.workdir, self.certs = workdir, certs
        self.port, self.tls_port = spare_port(), spare_port()
        self.proc = None

    def pids(self):
        return process_tree(self.proc.pid)

    def spawn(self, argv, env=None, timeout=60):
        log = open(os.path.join(self.workdir, self.name + ".log"), "ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.workdir, start_new_session=True)
        log.close()
        for port in (self.port, self.tls_port):
            if not wait_port(port, self.proc, timeout):
                self.stop()
                raise RuntimeError(f"{self.name} did not open port {port}; see {self.workdir}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            pids = self.pids()
            os.kill(pids[-1] if self.name == "rabbitmq" else self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                for pid in reversed(pids):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.proc.wait(10)


class Warren(Broker):
    name = "warren"

    def __init__(self, workdir, certs, binary):
        super().__init__(workdir, certs)
        self.binary = os.path.abspath(binary)

    def start(self):
        c = self.certs
        self.spawn([self.binary, "--bind", "127.0.0.1", "--port", str(self.port),
                    "--data-dir", os.path.join(self.workdir, "warren-data"), "--log-level", "warning",
                    "--management_port", "0", "--prometheus_port", "0", "--management_tls_port", "0",
                    "--tls_port", str(self.tls_port), "--tls_certfile", c.path("server"),
                    "--tls_keyfile", c.path("server", "key"), "--tls_cacertfile", c.path("ca"),
                    "--tls_verify_peer", "false"])


class RabbitMQ(Broker):
    name = "rabbitmq"
    script = "/usr/lib/rabbitmq/bin/rabbitmq-server"

    def pids(self):
        """beam.smp and its children (the shell script above it is not the broker)."""
        for pid in process_tree(self.proc.pid):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "beam.smp":
                        return process_tree(pid)
            except OSError:
                pass
        return [self.proc.pid]

    def start(self):
        home = os.path.join(self.workdir, "rabbitmq-home")
        os.makedirs(home, exist_ok=True)
        with open(os.path.join(home, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        c = self.certs
        config = os.path.join(home, "rabbitmq.conf")
        with open(config, "w") as f:
            f.write(f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
                    f"listeners.ssl.1 = 127.0.0.1:{self.tls_port}\n"
                    f"ssl_options.cacertfile = {c.path('ca')}\n"
                    f"ssl_options.certfile = {c.path('server')}\n"
                    f"ssl_options.keyfile = {c.path('server', 'key')}\n"
                    "ssl_options.verify = verify_none\n"
                    "ssl_options.fail_if_no_peer_cert = false\n")
        env = dict(os.environ, HOME=home,
                   RABBITMQ_NODENAME=f"rabbit-idle-{self.port}@localhost",
                   RABBITMQ_DIST_PORT=str(spare_port()),
                   RABBITMQ_CONFIG_FILE=config,
                   RABBITMQ_MNESIA_BASE=os.path.join(home, "mnesia"),
                   RABBITMQ_LOG_BASE=os.path.join(home, "log"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(home, "enabled_plugins"))
        self.spawn([self.script], env=env, timeout=180)
        time.sleep(3)  # boot steps finish after the listeners open


def settled_rss(broker, seconds=3.0):
    """The broker's RSS once it stops moving (the last of the handshakes and GC settle)."""
    last = rss_kib(broker.pids())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = rss_kib(broker.pids())
        if abs(now - last) < 64:
            return now
        last = now
    return last


def measure(broker, count, tls_context):
    port = broker.tls_port if tls_context else broker.port
    idle_clients.close_all(idle_clients.open_many(20, "127.0.0.1", port, ssl_context=tls_context))
    time.sleep(1)
    before = settled_rss(broker)
    start = time.monotonic()
    sockets = idle_clients.open_many(count, "127.0.0.1", port, ssl_context=tls_context)
    opened = time.monotonic() - start
    held = settled_rss(broker)
    idle_clients.close_all(sockets)
    return {"before": before, "held": held, "per_conn": (held - before) / count, "open_s": opened}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warren", default=os.path.join(REPO, "build", "warren"))
    parser.add_argument("--brokers", default="warren,rabbitmq")
    parser.add_argument("--connections", type=int, default=10000)
    args = parser.parse_args()
    limit = idle_clients.raise_fd_limit(args.connections + 100)
    if limit < args.connections + 50:
        sys.exit(f"the fd limit is {limit}: too low for {args.connections} connections")
    certs = tls_certs.Certificates()
    client_tls = ssl.create_default_context(cafile=certs.path("ca"))
    rows = []
    try:
        for name in args.brokers.split(","):
            # A fresh broker for each transport: memory freed by the first run would otherwise
            # be reused by the second and hide part of its cost.
            for kind, ctx in (("plain", None), ("tls", client_tls)):
                workdir = tempfile.mkdtemp(prefix=f"idle-{name}-")
                broker = Warren(workdir, certs, args.warren) if name == "warren" else RabbitMQ(workdir, certs)
                broker.start()
                try:
                    r = measure(broker, args.connections, ctx)
                finally:
                    broker.stop()
                    shutil.rmtree(workdir, ignore_errors=True)
                rows.append((name, kind, r))
                print(f"{name} {kind}: {args.connections} connections opened in {r['open_s']:.1f} s; "
                      f"RSS {r['before'] / 1024:.1f} -> {r['held'] / 1024:.1f} MiB; "
                      f"{r['per_conn']:.2f} KiB per connection", flush=True)
    finally:
        certs.cleanup()
    print("\n| broker | transport | connections | RSS before MiB | RSS held MiB | KiB per connection |")
    print("|---|---|---:|---:|---:|---:|")
    for name, kind, r in rows:
        print(f"| {name} | {kind} | {args.connections} | {r['before'] / 1024:.1f} | {r['held'] / 1024:.1f} "
              f"| {r['per_conn']:.2f} |")


if __name__ == "__main__":
    main()
