"""By hand, not a test: how long a declare and a passive declare take through each node of a
three-node cluster on loopback (docs/cluster.md, "Visibility on other nodes").

    /usr/bin/python3 tests/integration/cluster_declare_latency.py build/warren

Prints, per node (leader or follower), the median and the maximum of 20 durable queue.declare
round trips and of 20 passive ones, measured by a pika client on that node.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if len(sys.argv) > 1:
    os.environ["WARREN_BIN"] = os.path.abspath(sys.argv[1])

import test_cluster  # noqa: E402  (needs WARREN_BIN set first)

ROUNDS = 20


def timed(call):
    start = time.monotonic()
    call()
    return (time.monotonic() - start) * 1000


def main():
    cluster = test_cluster.Cluster().start()
    try:
        leader = cluster.leader()
        for node in cluster.nodes:
            connection, channel = test_cluster.channel_on(node)
            names = ["latency.%d.%d" % (node.port, i) for i in range(ROUNDS)]
            declare = sorted(timed(lambda n=n: channel.queue_declare(n, durable=True)) for n in names)
            passive = sorted(timed(lambda n=n: channel.queue_declare(n, passive=True)) for n in names)
            connection.close()
            print("%-8s declare median %.1f ms, max %.1f; passive median %.1f ms, max %.1f"
                  % ("leader" if node is leader else "follower", declare[ROUNDS // 2], declare[-1],
                     passive[ROUNDS // 2], passive[-1]))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
