"""Crash loop at the load where the store's background machinery runs, with the real broker.

Each round: several confirm-mode publishers (512 B persistent messages, a window of 256) and
fewer acking consumers on one durable queue, against a broker with 1 MiB log segments and a
small in-memory share per queue, so that within every round a backlog pages to disk, segments
are retired and sparse segments are compacted (the round asserts each happened); a second
durable queue keeps a few never-consumed messages, so old segments are always sparse. The
broker is killed with SIGKILL at a random instant, restarted on the same data directory and
drained (tests/integration/crash_load.c writes the journals). Checked every round:

  * every message the broker confirmed and no consumer acked is recovered;
  * no message is recovered twice;
  * no message acked more than a second before the kill comes back;
  * nothing is recovered that was not published in the round (earlier rounds were drained
    and their acks made durable);
  * the never-consumed messages are all still there.

CrashLoopTest runs it on classic queues with persistent messages; QuorumCrashLoopTest on quorum
queues (both of them) with transient messages, which a quorum queue stores all the same and must
keep once confirmed (the load declares with x-queue-type quorum, so a queue that came back
classic fails the round's redeclare).

$WARREN_CRASH_ROUNDS rounds of each (default 3: each variant takes 5 to 15 s, with or without ASan),
$WARREN_CRASH_SECONDS the longest time before a kill (default 4), $WARREN_CRASH_SEED the seed. A
long soak by hand (test_crash.QuorumCrashLoopTest for one variant):
    WARREN_CRASH_ROUNDS=100 WARREN_CRASH_SECONDS=12 WARREN_BIN=build/warren \\
      WARREN_CRASH_LOAD_BIN=build/tests/integration/test_integration_crash_load \\
      /usr/bin/python3 -m unittest -v test_crash
"""

import collections
import glob
import os
import random
import re
import subprocess
import time
import unittest

import pika

import harness
from test_durability import RestartableBroker

QUEUE = "crash-load"
STICKY = "crash-sticky"


def crash_load_binary():
    path = os.environ.get("WARREN_CRASH_LOAD_BIN") or os.path.join(
        harness.REPO_ROOT, "build", "tests", "integration", "test_integration_crash_load")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest("crash_load not built: %s (set WARREN_CRASH_LOAD_BIN)" % path)
    return path


def segment_ids(broker):
    store = os.path.join(broker.data_dir, "data", "store")
    return sorted(int(os.path.basename(p)[:-4]) for p in glob.glob(os.path.join(store, "*.seg")))


@harness.skip_if_external("kills and restarts the broker process")
class CrashLoopTest(unittest.TestCase):
    PUBLISHERS, CONSUMERS, WINDOW, SIZE = 4, 2, 256, 512
    RAM_MESSAGES = 2000
    QUEUE_TYPE, DELIVERY_MODE = "classic", 2  # of both queues and of every message in them

    def setUp(self):
        self.binary = crash_load_binary()
        self.broker = RestartableBroker(extra_args=[
            "--segment_bytes", str(1 << 20), "--queue_ram_messages", str(self.RAM_MESSAGES)]).start()
        self.rounds = int(os.environ.get("WARREN_CRASH_ROUNDS", "3"))
        self.longest = float(os.environ.get("WARREN_CRASH_SECONDS", "4"))
        seed = int(os.environ.get("WARREN_CRASH_SEED", str(int(time.time()))))
        print("\ncrash loop seed %d (%s queues, delivery mode %d)" % (seed, self.QUEUE_TYPE, self.DELIVERY_MODE))
        self.rng = random.Random(seed)
        self.work = os.path.join(self.broker.data_dir, "journals")
        os.makedirs(self.work)

    def tearDown(self):
        self.broker.stop()

    def queue_arguments(self):
        return {"x-queue-type": self.QUEUE_TYPE} if self.QUEUE_TYPE != "classic" else None

    def load_environment(self):
        return dict(os.environ, CRASH_LOAD_QUEUE_TYPE=self.QUEUE_TYPE, CRASH_LOAD_DELIVERY_MODE=str(self.DELIVERY_MODE))

    def sticky_messages(self, n):
        conn = pika.BlockingConnection(self.broker.pika_parameters())
        ch = conn.channel()
        ch.confirm_delivery()
        # not passive: after a restart this also checks the queue came back with its type
        ch.queue_declare(STICKY, durable=True, arguments=self.queue_arguments())
        for i in range(n):
            ch.basic_publish("", STICKY, b"sticky-%d" % i, pika.BasicProperties(delivery_mode=self.DELIVERY_MODE))
        depth = ch.queue_declare(STICKY, passive=True).method.message_count
        conn.close()
        return depth

    def read_journals(self):
        confirmed, acked = set(), {}
        for path in glob.glob(os.path.join(self.work, "p*.log")):
            with open(path) as f:
                for line in f:
                    kind, ident = line.split()
                    if kind == "c":
                        confirmed.add(ident)
        for path in glob.glob(os.path.join(self.work, "c*.log")):
            with open(path) as f:
                for line in f:
                    _, ident, ms = line.split()
                    acked[ident] = int(ms) / 1000.0
        return confirmed, acked

    def test_confirmed_messages_survive_kill_during_compaction_retirement_and_paging(self):
        sticky = 0
        totals = collections.Counter()
        for round_ in range(self.rounds):
            for path in glob.glob(os.path.join(self.work, "*.log")):
                os.remove(path)
            sticky = self.sticky_messages(3)
            log_mark = len(self.broker.stderr_text())
            first_segment = segment_ids(self.broker)[0]
            load = subprocess.Popen([self.binary, "127.0.0.1", str(self.broker.port), QUEUE, self.work,
                                     str(self.PUBLISHERS), str(self.CONSUMERS), str(self.WINDOW),
                                     str(self.SIZE), str(round_),
                                     str(self.rng.randint(500, 1500))], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=self.load_environment())
            # Run until the queue has paged and a compaction has run, then a random while longer.
            deadline = time.monotonic() + 60
            paged = 0
            while not paged or "compacted segment" not in self.broker.stderr_text()[log_mark:]:
                if load.poll() is not None:
                    self.fail("the load stopped early: %s" % load.stderr.read().decode())
                self.assertLess(time.monotonic(), deadline, "no paging and compaction within 60 s")
                paged = max(paged, harness.admin_status(self.broker)["messages_paged"])
                time.sleep(0.05)
            time.sleep(self.rng.uniform(0.0, self.longest))
            retired = segment_ids(self.broker)[0] > first_segment
            kill_time = time.monotonic()
            self.broker.sigkill()
            try:
                load.wait(30)
            except subprocess.TimeoutExpired:
                load.kill()
                load.wait()
                self.fail("the load did not stop after the broker died")
            confirmed, acked = self.read_journals()
            self.broker.relaunch()
            drained_path = os.path.join(self.work, "drained.txt")
            drain = subprocess.run([self.binary, "drain", "127.0.0.1", str(self.broker.port), QUEUE,
                                    drained_path], capture_output=True, timeout=300, env=self.load_environment())
            self.assertEqual(drain.returncode, 0, "drain failed: %s" % drain.stderr.decode())
            with open(drained_path) as f:
                recovered = collections.Counter(line.split()[0] for line in f)

            backlog = len(confirmed - acked.keys())
            self.assertTrue(retired, "round %d: no segment was retired" % round_)
            missing = sorted(confirmed - acked.keys() - recovered.keys())
            self.assertEqual(missing[:20], [], "round %d: %d confirmed messages lost\n%s"
                             % (round_, len(missing), self.broker.stderr_text()[log_mark:][-4000:]))
            duplicated = sorted(i for i, c in recovered.items() if c > 1)
            self.assertEqual(duplicated[:20], [], "round %d: %d messages recovered twice"
                             % (round_, len(duplicated)))
            resurrected = sorted(i for i in recovered if i in acked and acked[i] < kill_time - 1.0)
            self.assertEqual(resurrected[:20], [], "round %d: %d messages acked over 1 s before the kill "
                             "came back" % (round_, len(resurrected)))
            published = re.compile(r"^%d\.\d+-\d+$" % round_)
            strangers = sorted(i for i in recovered if not published.match(i))
            self.assertEqual(strangers[:20], [], "round %d: messages nobody published" % round_)
            conn = pika.BlockingConnection(self.broker.pika_parameters())
            depth = conn.channel().queue_declare(STICKY, passive=True).method.message_count
            conn.close()
            self.assertEqual(depth, sticky, "round %d: never-consumed messages lost" % round_)

            compactions = self.broker.stderr_text()[log_mark:].count("compacted segment")
            # the restart's replay: how many segments, how many of them from their summaries
            replays = re.findall(r"replayed the log: (\d+) segments \((\d+) from their summaries\)",
                                 self.broker.stderr_text()[log_mark:])
            segments, summarized = (int(replays[-1][0]), int(replays[-1][1])) if replays else (0, 0)
            totals.update(rounds=1, confirmed=len(confirmed), acked=len(acked), recovered=sum(recovered.values()),
                          backlog=backlog, compactions=compactions, segments=segments, summarized=summarized)
            print("round %d: %d confirmed, %d acked, %d recovered, backlog %d, %d compactions, %d paged at most, "
                  "restart replayed %d segments (%d from summaries)"
                  % (round_, len(confirmed), len(acked), sum(recovered.values()), backlog, compactions, paged,
                     segments, summarized))
        print("crash loop: %(rounds)d rounds, %(confirmed)d confirmed, %(acked)d acked, %(recovered)d recovered, "
              "%(compactions)d compactions, %(segments)d segments replayed at restarts, %(summarized)d of them "
              "from summaries" % totals)


class QuorumCrashLoopTest(CrashLoopTest):
    """The same loop and invariants with both queues quorum queues and every message transient:
    a quorum queue stores each message whatever its delivery mode, through a path classic
    queues do not take (transient messages outside a tail), and must keep each it confirmed."""
    QUEUE_TYPE, DELIVERY_MODE = "quorum", 1


if __name__ == "__main__":
    unittest.main()
