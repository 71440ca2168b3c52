"""By hand, not in ctest: reproduces a crash the partition nemesis found (seed 2719145133, docs/cluster.md
"The nemesis test"). Under load, the leader is isolated ~5 s, healed, paused ~4 s, killed and
started again 1.8 s later; with the ASan build the restarted node died in libraft (strlen on
0x100 under uv_run, from node_pump) within two minutes of the first attempt; a second attempt
ended after three rounds with one node naming no leader for 30 s. Prints each round and, when a node died, its stderr. Run from tests/integration:
    WARREN_SANITIZE=1 WARREN_BIN=../../build-asan/warren python3 cluster_restart_after_isolation.py 12
"""

import signal
import sys
import threading
import time

sys.path.insert(0, '.')
from test_cluster import Cluster, channel_on
from test_cluster_partition import LoadPublisher
c = Cluster(partitionable=True).start()
stop = threading.Event()
pubs = []
try:
    L = c.leader()
    cc = channel_on(L); cc[1].queue_declare("q", durable=True, arguments={"x-queue-type": "quorum"}); cc[0].close()
    pubs = [LoadPublisher("p%d" % i, n, "q", stop) for i, n in enumerate(c.nodes)]
    for p in pubs: p.start()
    time.sleep(2)
    for rnd in range(int(sys.argv[1])):
        L = c.leader(among=c.nodes, timeout=30)
        i = c.nodes.index(L)
        c.isolate(L); time.sleep(5.3); c.heal(); time.sleep(0.1)
        L.process.send_signal(signal.SIGSTOP); time.sleep(4.1); L.process.send_signal(signal.SIGCONT)
        time.sleep(0.05)
        L.sigkill(); time.sleep(1.8); L.relaunch()
        time.sleep(6)
        dead = [(j + 1, n.process.returncode) for j, n in enumerate(c.nodes) if n.process.poll() is not None]
        print("round %d: n%d; dead %r" % (rnd, i + 1, dead), flush=True)
        if dead:
            for j, n in enumerate(c.nodes):
                if n.process.poll() is not None:
                    print("---- n%d stderr tail" % (j + 1)); print(n.stderr_text()[-6000:])
            break
        c.leader(among=c.nodes, timeout=30)
finally:
    stop.set()
    for p in pubs: p.join(30)
    try:
        c.stop()
    except AssertionError as e:
        print("stop:", str(e)[:3000])
