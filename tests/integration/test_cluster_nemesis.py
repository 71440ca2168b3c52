"""A Jepsen-style test of quorum queues in a three-node cluster (issue 13, docs/cluster.md
"Quorum queues in a cluster"): publishers with confirms and consumers with acks on every node,
reconnecting to another node whenever theirs dies, while a nemesis kills nodes with SIGKILL and
starts them again on their data directories, or pauses them with SIGSTOP/SIGCONT (a GC pause, or
a partition that heals: the others elect a leader or declare the paused node down meanwhile),
or partitions the network between them (cluster_proxy.py: a node isolated from both others, the
leader half the time, or one pair cut with both still reaching the third, a bridge), healed after
a few seconds. Never more than one node is down, paused or isolated at a time, and each event
ends only once every node names the same leader, so a majority always exists.

Every publish is a unique body "<publisher>:<seq>" (persistent) to one of two quorum queues; the
publisher records the seqs whose basic.ack came (confirmed), the others being uncertain (nacked,
or in flight when the connection broke). Consumers record every delivery (body, redelivered) and
ack it. When the schedule ends every node is up; the load consumers leave and one consumer drains
both queues from one node until every node's copy is empty. The checker then asserts over the
whole history:
  1. every confirmed message was delivered at least once: none lost (the promise under test);
  2. nothing was delivered that no publisher sent;
  3. a message delivered twice is marked redelivered on the later copy, or the consumer that had
     it earlier lost its connection (its ack may have been lost); duplicates are counted;
  4. in the drain, the confirmed messages never delivered before (and not marked redelivered)
     of each publisher come in publish order.

WARREN_NEMESIS_SECONDS (default 60) and WARREN_NEMESIS_EVENTS (default 6) lengthen the run for
long runs by hand; WARREN_NEMESIS_SEED replays a schedule; WARREN_NEMESIS_PARTITIONS=0 leaves
partitions out (kills and pauses only, the schedules a seed gave before partitions existed). Not
runnable against an external broker: the test owns the three processes.
"""

import os
import random
import signal
import sys
import threading
import time
import unittest

import pika
import pika.exceptions

import harness
from test_cluster import Cluster, _cluster_built

QUEUES = ("nemesis.q0", "nemesis.q1")
QQ = {"x-queue-type": "quorum"}
PUBLISHERS = 4
CONSUMERS = 3
# The load consumers take a few ms per message, slower than the publishers together, so a
# backlog builds up and the final drain (check 4) has work to do.
CONSUMER_PACE = 0.004
HEARTBEAT = 2  # a paused node's clients give up on it after two to four seconds


def connect(node):
    """A pika connection to node that notices a paused peer (heartbeat) and does not wait long
    for a node that is down or paused while connecting."""
    return pika.BlockingConnection(node.pika_parameters(heartbeat=HEARTBEAT, socket_timeout=3,
                                                        stack_timeout=6, blocked_connection_timeout=10))


class History:
    """What the clients saw, appended to from every thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempted = {}  # publisher -> set of seqs sent (or about to be)
        self.confirmed = {}  # publisher -> set of seqs acked by the broker
        self.publish_time = {}  # (publisher, seq) -> (monotonic, node index) when sent
        self.deliveries = []  # (publisher, seq, redelivered, connection id, phase, monotonic)
        self.connection_died = set()  # consumer connection ids that ended by an error
        self.errors = []  # (monotonic, who, repr) of every client error, for the report
        self.events = []  # (monotonic, text) from the nemesis

    def note_error(self, who, error):
        with self.lock:
            self.errors.append((time.monotonic(), who, repr(error)[:200]))


class Publisher(threading.Thread):
    def __init__(self, ident, nodes, history, stop):
        super().__init__(name="publisher-%d" % ident, daemon=True)
        self.number, self.nodes, self.history, self.stop_event = ident, nodes, history, stop
        self.queue = QUEUES[ident % len(QUEUES)]
        self.node = ident % len(nodes)
        history.attempted[ident] = set()
        history.confirmed[ident] = set()

    def run(self):
        seq = 0
        properties = pika.BasicProperties(delivery_mode=2)
        while not self.stop_event.is_set():
            connection = None
            try:
                connection = connect(self.nodes[self.node])
                channel = connection.channel()
                # A read barrier: this node may be one the queues' declare did not wait for (just
                # restarted, or marked slow: docs/cluster.md, visibility); once it is applied the
                # node's copy holds them, so no publish is unroutable (and acked).
                channel.queue_declare(self.queue, passive=True)
                channel.confirm_delivery()
                while not self.stop_event.is_set():
                    seq += 1
                    with self.history.lock:
                        self.history.attempted[self.number].add(seq)
                        self.history.publish_time[(self.number, seq)] = (time.monotonic(), self.node)
                    try:
                        channel.basic_publish("", self.queue, b"%d:%d" % (self.number, seq), properties)
                    except pika.exceptions.NackError:
                        continue  # uncertain: the broker may still have it
                    with self.history.lock:
                        self.history.confirmed[self.number].add(seq)
            except Exception as e:  # the connection broke or could not be made: another node
                self.history.note_error(self.name, e)
                self.node = (self.node + 1) % len(self.nodes)
                time.sleep(0.2)
            finally:
                if connection is not None and connection.is_open:
                    try:
                        connection.close()
                    except Exception:
                        pass


class Consumer(threading.Thread):
    """Consumes both queues on one channel, acking every delivery at once. phase names the
    deliveries in the history; connections get ids so a duplicate can be traced to a death."""

    connection_ids = iter(range(1, 1 << 30))
    ids_lock = threading.Lock()

    def __init__(self, ident, nodes, history, stop, phase="load", prefetch=20, pace=0.0):
        super().__init__(name="consumer-%s-%d" % (phase, ident), daemon=True)
        self.nodes, self.history, self.stop_event, self.phase = nodes, history, stop, phase
        self.node = ident % len(nodes)
        self.prefetch = prefetch
        self.pace = pace
        self.failures = 0

    def run(self):
        while not self.stop_event.is_set():
            with Consumer.ids_lock:
                connection_id = next(Consumer.connection_ids)
            connection = None
            try:
                connection = connect(self.nodes[self.node])
                channel = connection.channel()
                channel.basic_qos(prefetch_count=self.prefetch)

                def on_message(ch, method, _properties, body):
                    # pika's ack reads what came meanwhile and dispatches it in the same call:
                    # once told to stop, leave the rest unacked (the close returns it).
                    if self.stop_event.is_set():
                        return
                    publisher, seq = body.split(b":")
                    with self.history.lock:
                        self.history.deliveries.append((int(publisher), int(seq), method.redelivered,
                                                        connection_id, self.phase, time.monotonic()))
                    if self.pace:
                        time.sleep(self.pace)
                    ch.basic_ack(method.delivery_tag)

                for queue in QUEUES:
                    channel.basic_consume(queue, on_message)
                while not self.stop_event.is_set():
                    connection.process_data_events(time_limit=0.2)
                connection.close()  # what it held goes back to the queues' front
            except Exception as e:
                self.failures += 1
                with self.history.lock:
                    self.history.connection_died.add(connection_id)
                self.history.note_error(self.name, e)
                self.node = (self.node + 1) % len(self.nodes)
                time.sleep(0.2)
                if connection is not None and connection.is_open:
                    try:
                        connection.close()
                    except Exception:
                        pass


class Nemesis:
    """Kills, pauses or (in a partitionable cluster) partitions away one node at a time, at
    random, and waits after each event until every node names the same leader."""

    def __init__(self, cluster, history, rng):
        self.cluster, self.history, self.rng = cluster, history, rng
        self.kills = self.pauses = self.partitions = 0
        self.paused = None
        self.partitionable = cluster.proxy is not None

    def note(self, text):
        self.history.events.append((time.monotonic(), text))
        print("nemesis %7.2f %s" % (time.monotonic() - self.history.started, text), file=sys.stderr)

    def victim(self):
        """The leader half the time (elections are the interesting part), else any node. The
        seed fixes the schedule's draws; which node leads at that moment is the run's own."""
        if self.rng.random() < 0.5:
            return self.cluster.leader(timeout=30), " (the leader)"
        return self.rng.choice(self.cluster.nodes), ""

    def event(self):
        node, role = self.victim()
        name = "n%d%s" % (self.cluster.nodes.index(node) + 1, role)
        # Without partitions the draws are those of the schedules before them (same seed, same run).
        draw = self.rng.random()
        if self.partitionable and draw >= 2 / 3:
            self.partition(node, name)
        elif draw < (1 / 3 if self.partitionable else 0.5):
            down = self.rng.uniform(0.5, 4.0)
            self.note("kill %s (down %.1f s)" % (name, down))
            node.sigkill()
            time.sleep(down)
            node.relaunch()
            self.kills += 1
        else:
            paused = self.rng.uniform(0.5, 6.0)
            self.note("pause %s (%.1f s)" % (name, paused))
            self.paused = node
            node.process.send_signal(signal.SIGSTOP)
            time.sleep(paused)
            node.process.send_signal(signal.SIGCONT)
            self.paused = None
            self.pauses += 1
        self.agree()
        self.note("%s back, leader agreed" % name)

    def partition(self, node, name):
        """Isolates node, or cuts it from one other node only (a bridge through the third), then
        heals after a few seconds."""
        cut = self.rng.uniform(0.5, 6.0)
        if self.rng.random() < 0.5:
            self.note("isolate %s (%.1f s)" % (name, cut))
            self.cluster.isolate(node)
        else:
            other = self.rng.choice([n for n in self.cluster.nodes if n is not node])
            self.note("cut %s from n%d, a bridge (%.1f s)" % (name, self.cluster.nodes.index(other) + 1, cut))
            self.cluster.cut(node, other)
        time.sleep(cut)
        self.cluster.heal()
        self.partitions += 1

    def agree(self, timeout=60):
        """Waits until every node names the same leader; the failure says what each node says."""
        try:
            self.cluster.leader(among=self.cluster.nodes, timeout=timeout)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.describe()))

    def describe(self):
        """Each node's cluster status (or why there is none) and the end of its stderr."""
        lines = []
        if self.partitionable:
            lines.append("--- partition proxy: cuts %r, %d connections forwarded, %d refused"
                         % (sorted(tuple(sorted(c)) for c in self.cluster.proxy.cuts),
                            self.cluster.proxy.forwarded, self.cluster.proxy.refused))
        for i, node in enumerate(self.cluster.nodes):
            try:
                status = self.cluster.status(node)
            except Exception as e:
                status = repr(e)
            lines.append("--- n%d (pid %s, exit status %s, %s): %s"
                         % (i + 1, node.process.pid, node.process.poll(), node.stderr_path, status))
            lines.extend(node.stderr_text().splitlines()[-25 if node.process.poll() is None else -80:])
        return "\n".join(lines)

    def resume(self):
        """Teardown: a node left paused by a failure is let go, a partition left by one healed."""
        if self.paused is not None and self.paused.process.poll() is None:
            self.paused.process.send_signal(signal.SIGCONT)
        if self.partitionable:
            self.cluster.heal()


def depths(node):
    """Ready messages of every queue on node, through a passive declare."""
    connection = pika.BlockingConnection(node.pika_parameters(socket_timeout=10))
    try:
        channel = connection.channel()
        return [channel.queue_declare(q, passive=True).method.message_count for q in QUEUES]
    finally:
        connection.close()


def keep_evidence(nodes, history, state=""):
    """Copies every node's stderr, the nemesis schedule and `state` (each node's cluster status)
    out of the data directories (which the cluster's teardown removes) into a new directory;
    returns its path."""
    import shutil
    import tempfile

    kept = tempfile.mkdtemp(prefix="warren-nemesis-")
    for i, node in enumerate(nodes):
        if node.stderr_path and os.path.exists(node.stderr_path):
            shutil.copy(node.stderr_path, os.path.join(kept, "n%d.stderr" % (i + 1)))
    with open(os.path.join(kept, "state.txt"), "w") as out:
        out.write(state)
    with open(os.path.join(kept, "schedule.txt"), "w") as out:
        for when, text in history.events:
            out.write("%7.2f %s\n" % (when - history.started, text))
        for when, who, error in history.errors:
            out.write("%7.2f error %s %s\n" % (when - history.started, who, error))
    return kept


def check(history):
    """The checker: returns (figures, failures) over the whole history."""
    failures = []
    delivered = {}  # (publisher, seq) -> [(redelivered, connection id, phase)]
    phantoms = []
    for publisher, seq, redelivered, connection_id, phase, _when in history.deliveries:
        if seq not in history.attempted.get(publisher, ()):
            phantoms.append((publisher, seq))
        delivered.setdefault((publisher, seq), []).append((redelivered, connection_id, phase))
    confirmed = {(p, s) for p, seqs in history.confirmed.items() for s in seqs}
    attempted = {(p, s) for p, seqs in history.attempted.items() for s in seqs}
    lost = sorted(confirmed - set(delivered))
    if lost:
        lines = []
        for p, s in lost[:20]:
            when, node = history.publish_time[(p, s)]
            lines.append("  %d:%d published through n%d at %.2f s" % (p, s, node + 1, when - history.started))
        failures.append("%d confirmed messages never delivered (lost):\n%s" % (len(lost), "\n".join(lines)))
    if phantoms:
        failures.append("%d deliveries of messages never published: %r" % (len(phantoms), phantoms[:20]))

    # The broker delivers a message unflagged once (its first delivery in log order); every
    # other copy is marked redelivered, unless the consumer that had an unflagged copy lost its
    # connection (its ack may have been lost). Copies are compared as a set, not by arrival
    # time: a node that was paused sends the deliveries of the log it applies late, so its
    # unflagged copy may arrive after a flagged one elsewhere ("late first deliveries").
    duplicates = redelivered_duplicates = after_death = late_first = 0
    unexplained = []
    for key, copies in delivered.items():
        if len(copies) == 1:
            continue
        duplicates += len(copies) - 1
        unflagged = [c for c in copies if not c[0]]
        redelivered_duplicates += len(copies) - len(unflagged) - (0 if unflagged else 1)
        if unflagged and copies[0][0]:
            late_first += 1
        extra = unflagged[1:]
        for i, copy in enumerate(extra):
            if any(c[1] in history.connection_died for c in unflagged[:i + 1]):
                after_death += 1
            else:
                unexplained.append((key, copies))
                break
    if unexplained:
        failures.append("%d messages delivered unflagged twice with no consumer death between: %r"
                        % (len(unexplained), unexplained[:10]))

    # Publish order in the drain: a confirmed message's enqueue was applied before its
    # publisher sent the next one, so those never delivered before come in seq order.
    seen_before = {key for key, copies in delivered.items() if copies[0][2] == "load"}
    last = {}
    out_of_order = []
    for publisher, seq, redelivered, _cid, phase, _when in history.deliveries:
        key = (publisher, seq)
        if phase != "drain" or redelivered or key in seen_before or key not in confirmed:
            continue
        if seq < last.get(publisher, 0):
            out_of_order.append((publisher, last[publisher], seq))
        last[publisher] = max(seq, last.get(publisher, 0))
    if out_of_order:
        failures.append("%d drain deliveries out of publish order (publisher, after seq, seq): %r"
                        % (len(out_of_order), out_of_order[:10]))

    figures = {
        "published": len(attempted), "confirmed": len(confirmed), "uncertain": len(attempted - confirmed),
        "uncertain delivered": len((attempted - confirmed) & set(delivered)),
        "deliveries": len(history.deliveries), "distinct delivered": len(delivered),
        "drain deliveries": sum(1 for d in history.deliveries if d[4] == "drain"),
        "duplicates": duplicates, "duplicates marked redelivered": redelivered_duplicates,
        "unflagged duplicates after a consumer death": after_death,
        "late first deliveries": late_first, "lost": len(lost),
        "consumer connections died": len(history.connection_died), "client errors": len(history.errors),
    }
    return figures, failures


@harness.skip_if_external("starts, kills and pauses three cluster nodes")
@unittest.skipUnless(_cluster_built(), "broker built without the cluster layer (libraft-dev)")
class NemesisTest(unittest.TestCase):
    queue_arguments = QQ

    def setUp(self):
        partitions = os.environ.get("WARREN_NEMESIS_PARTITIONS", "1") != "0"
        self.cluster = Cluster(partitionable=partitions).start()
        self.addCleanup(self.cluster.stop)
        self.cluster.leader()

    def test_no_confirmed_message_is_lost_while_nodes_die_and_pause(self):
        seconds = float(os.environ.get("WARREN_NEMESIS_SECONDS", "60"))
        events = int(os.environ.get("WARREN_NEMESIS_EVENTS", "6"))
        seed = int(os.environ.get("WARREN_NEMESIS_SEED", str(random.randrange(1 << 32))))
        print("\nnemesis seed %d: %.0f s, %d events" % (seed, seconds, events), file=sys.stderr)
        rng = random.Random(seed)
        nodes = self.cluster.nodes
        for i, queue in enumerate(QUEUES):  # through different nodes: a classic queue's home
            connection = pika.BlockingConnection(nodes[i % len(nodes)].pika_parameters())
            connection.channel().queue_declare(queue, durable=True, arguments=self.queue_arguments)
            connection.close()

        history = History()
        history.started = time.monotonic()
        nemesis = Nemesis(self.cluster, history, rng)
        self.addCleanup(nemesis.resume)
        stop_load = threading.Event()
        publishers = [Publisher(i, nodes, history, stop_load) for i in range(PUBLISHERS)]
        consumers = [Consumer(i, nodes, history, stop_load, pace=CONSUMER_PACE) for i in range(CONSUMERS)]
        self.addCleanup(stop_load.set)
        for thread in publishers + consumers:
            thread.start()

        # The schedule: events spread over the load, each at a random point of its slot.
        slot = seconds / max(events, 1)
        for n in range(events):
            start = history.started + n * slot + rng.uniform(0, slot * 0.4)
            time.sleep(max(0.0, start - time.monotonic()))
            nemesis.event()
        time.sleep(max(0.0, history.started + seconds - time.monotonic()))
        nemesis.agree()
        stop_load.set()
        for thread in publishers + consumers:
            thread.join(30)
            self.assertFalse(thread.is_alive(), "%s did not stop" % thread.name)
        load_ended = time.monotonic()

        # The drain: one consumer on one node until every node's copy is empty and everything
        # confirmed was seen (or nothing more comes for a while).
        stop_drain = threading.Event()
        self.addCleanup(stop_drain.set)
        drainer = Consumer(rng.randrange(len(nodes)), nodes, history, stop_drain, phase="drain", prefetch=100)
        drainer.start()
        confirmed = {(p, s) for p, seqs in history.confirmed.items() for s in seqs}
        # 90 s, or more for a long run's backlog: one consumer drains some 10,000 msgs/s (a
        # classic queue's load publishes four times as much as a quorum queue's in a long run)
        deadline = time.monotonic() + max(90.0, len(confirmed) / 5000.0)
        quiet_since = None
        while time.monotonic() < deadline:
            time.sleep(0.5)
            with history.lock:
                seen = {(d[0], d[1]) for d in history.deliveries}
                count = len(history.deliveries)
            try:
                empty = all(depths(node) == [0] * len(QUEUES) for node in nodes)
            except pika.exceptions.AMQPConnectionError:
                # A node just back holds connections until it has caught up with the log
                # (server.h), and its handshake timeout may close one first: not empty yet.
                empty = False
            if empty and confirmed <= seen:
                break
            if empty:  # something confirmed is missing: give it a few seconds to turn up
                if quiet_since is None or quiet_since[1] != count:
                    quiet_since = (time.monotonic(), count)
                elif time.monotonic() - quiet_since[0] > 5:
                    break
        stop_drain.set()
        drainer.join(30)
        self.assertEqual(drainer.failures, 0, "the drain consumer's connection broke with no nemesis")
        ended = time.monotonic()

        figures, failures = check(history)
        # Confirmed publishes per second in the first and the last quarter of the load: the
        # cluster should not slow down as its log grows.
        quarter = (load_ended - history.started) / 4
        first = last = 0
        for (publisher, seq), (when, _node) in history.publish_time.items():
            if seq in history.confirmed[publisher]:
                first += when < history.started + quarter
                last += when >= load_ended - quarter
        figures.update({"confirms/s first quarter": round(first / quarter),
                        "confirms/s last quarter": round(last / quarter)})
        # How long each publisher had gone without a confirmed publish when the load ended: a
        # publisher blocked on a confirm that never comes (pika has no timeout for it, and
        # heartbeats keep its connection up) shows here. Reported, not asserted yet: one long run
        # showed all four silent for the last quarter, and no rerun of its seed did again.
        latest = {}
        for (publisher, seq), (when, _node) in history.publish_time.items():
            if seq in history.confirmed[publisher]:
                latest[publisher] = max(latest.get(publisher, 0.0), when)
        silences = [load_ended - latest.get(p, history.started) for p in history.confirmed]
        figures.update({"longest final silence of a publisher s": round(max(silences), 1),
                        "publishers silent over 15 s at the end": sum(gap > 15 for gap in silences)})
        figures.update({"kills": nemesis.kills, "pauses": nemesis.pauses, "partitions": nemesis.partitions,
                        "seed": seed,
                        "load seconds": round(load_ended - history.started, 1),
                        "drain seconds": round(ended - load_ended, 1),
                        "elapsed": round(ended - history.started, 1)})
        print("nemesis summary: " + ", ".join("%s %s" % kv for kv in figures.items()), file=sys.stderr)
        for node in nodes:
            harness.assert_broker_alive(self, node)
        self.assertGreater(figures["confirmed"], 0, "no publish was confirmed at all")
        self.assertEqual(nemesis.kills + nemesis.pauses + nemesis.partitions, events)
        if failures:
            state = nemesis.describe()
            self.fail("seed %d:\n%s\n%s\nnode logs, state and the schedule kept in %s"
                      % (seed, "\n".join(failures), state, keep_evidence(nodes, history, state)))


class NemesisClassicTest(NemesisTest):
    """The same schedule and checks with durable classic queues, homed on two different nodes
    (docs/cluster.md, "Classic queues across nodes"): publishers and consumers on every node reach
    them through the peer links; a home killed takes its queue away until it is back, and every
    message it confirmed must come back with it."""
    queue_arguments = {}


if __name__ == "__main__":
    unittest.main()
