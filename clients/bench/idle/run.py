#!/usr/bin/python3
"""Memory per idle connection, plain and TLS, Warren against RabbitMQ 3.10 (issue 12).

For each broker: start it with a plain and a TLS listener (throw-away certificates from
tests/integration/tls_certs.py; each started as clients/bench/compare starts it,
compare_brokers.py), open and close a few warm-up connections, read the
broker's RSS, open N idle connections (tests/integration/idle_clients.py: logged in with
heartbeat 0, channel 1 open), wait for the RSS to settle, read it again, close them, and do the
same over TLS. Prints KiB of RSS per connection (for RabbitMQ: beam.smp and its children).

  /usr/bin/python3 clients/bench/idle/run.py --warren build/warren --connections 10000
  /usr/bin/python3 clients/bench/idle/run.py --brokers warren --connections 19900
"""
import argparse
import os
import shutil
import ssl
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import idle_clients  # noqa: E402
import tls_certs  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "clients", "bench"))
# The brokers and /proc readings clients/bench/compare uses (one copy of each).
from compare_brokers import RabbitMQ, Warren, rss_kib  # noqa: E402


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
                broker = Warren(workdir, os.path.abspath(args.warren)) if name == "warren" else RabbitMQ(workdir)
                broker.certs = certs  # a plain and a TLS listener
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
