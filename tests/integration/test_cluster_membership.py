"""Runtime cluster membership (issue 13, docs/cluster.md "Adding and removing nodes"): a node
joins a running three-node cluster with join_cluster, a stopped member is removed with
forget_cluster_node, and the cluster keeps its quorum by the new configuration.

- A fourth node started with cluster_peers listing the three (not itself) waits, a non-member;
  join_cluster on it makes it a voter on every node's view (4 voters), and it then serves AMQP:
  the quorum queue declared before it existed is there with its 100 confirmed messages, which a
  consumer on it takes.
- A member killed and forgotten from another: every node shows 3 voters; with one more node
  killed (2 of the 3 left) declares and confirmed publishes still work.
- The joined node restarted on its data directory is a member again without any join command
  (its configuration comes from its log).
- Refusals: forgetting the node the command runs on, joining through the node itself; a node
  that is not among cluster_peers and does not name its own cluster_address, at start.
- A join whose leader is killed as it starts: the next leader finishes it when the node asks
  again.

Not runnable against an external broker: the test owns the processes.
"""

import json
import os
import shutil
import subprocess
import time
import unittest

import pika

import harness
from test_cluster import ELECTION_MS, Cluster, _cluster_built, channel_on, distinct_ports, take
from test_cluster_quorum import QQ, depth, drain, publish_confirmed
from test_durability import RestartableBroker
from test_warrenctl import warrenctl_path


def admin(node, command, *args):
    request = json.dumps({"command": command, "args": list(args), "vhost": "/"}).encode() + b"\n"
    return json.loads(harness.admin_request(node, request))


def status(node):
    return admin(node, "cluster_status")["cluster"]


def voters(node):
    """The addresses this node's configuration holds as voters."""
    return sorted(m["address"] for m in status(node)["members"] if m["role"] == "voter")


def wait_for(what, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.2)


def change(node, command, address, timeout=60.0):
    """Runs join_cluster or forget_cluster_node on node until it answers done, as warrenctl does."""
    deadline = time.monotonic() + timeout
    while True:
        answer = admin(node, command, address)
        if not answer.get("ok"):
            raise AssertionError("%s %s: %r" % (command, address, answer))
        if answer["done"]:
            return
        if time.monotonic() > deadline:
            raise AssertionError("%s %s not done within %.0f s" % (command, address, timeout))
        time.sleep(0.5)


def warrenctl(node, *args, timeout=90):
    """Runs warrenctl against node's admin socket; returns the completed process."""
    command = [warrenctl_path(), "--socket", os.path.join(node.data_dir, "data", "warren.sock")] + list(args)
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          universal_newlines=True)


@harness.skip_if_external("starts and kills four cluster nodes")
@unittest.skipUnless(_cluster_built(), "broker built without the cluster layer (libraft-dev)")
class ClusterMembership(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster().start()
        self.addCleanup(self.cluster.stop)
        self.a, self.b, self.c = self.cluster.nodes
        self.cluster.leader()
        self.founders = ["127.0.0.1:%d" % p for p in self.cluster.cluster_ports]

    def start_joiner(self):
        """A fourth node whose cluster_peers lists the three founders, not itself."""
        port = distinct_ports(1, taken=self.cluster.cluster_ports)[0]
        address = "127.0.0.1:%d" % port
        node = RestartableBroker(extra_args=[
            "--node_name", "n4",
            "--cluster_port", str(port),
            "--cluster_address", address,
            "--cluster_peers", ",".join(self.founders),
            "--cluster_election_timeout_ms", str(ELECTION_MS),
            "--cluster_secret_file", harness.cluster_secret_file()])
        node.start()
        self.addCleanup(lambda: node.stop() if node.process.poll() is None else None)
        return node, address

    def test_a_node_joins_serves_the_queue_and_a_forgotten_member_no_longer_counts(self):
        connection, channel = channel_on(self.a)
        channel.queue_declare("members.q", durable=True, arguments=QQ)
        connection.close()
        publish_confirmed(self.b, "members.q", [b"m%d" % i for i in range(100)])

        d, d_address = self.start_joiner()
        wait_for("node d's admin socket", lambda: status(d) is not None, timeout=10)
        st = status(d)
        self.assertEqual(st["members"], [])  # a non-member: no configuration yet
        self.assertEqual(st["voters"], 0)
        # Joining through a follower or the leader alike: any member relays to the leader.
        # warrenctl waits until this node is a voter.
        joined = warrenctl(d, "-t", "60", "join_cluster", self.founders[2])
        self.assertEqual(joined.returncode, 0, joined.stderr)
        self.assertIn("Clustering node", joined.stdout)
        everyone = sorted(self.founders + [d_address])
        for node in (self.a, self.b, self.c, d):
            wait_for("4 voters on every node", lambda node=node: voters(node) == everyone)
        self.assertEqual(status(d)["voters"], 4)
        shown = warrenctl(d, "cluster_status").stdout
        self.assertIn("Voters: 4", shown)
        self.assertIn("%s\tvoter" % d_address, shown)
        # Joining again is harmless: done at once.
        self.assertTrue(admin(d, "join_cluster", self.founders[0])["done"])

        # The new member serves AMQP: the queue declared before it existed, with its messages.
        wait_for("the queue's 100 messages on the new node", lambda: depth(d, "members.q")[0] == 100)
        got = drain(d, "members.q", 100)
        self.assertEqual([g[0] for g in got], [b"m%d" % i for i in range(100)])

        # Refusals: this node itself, and a non-address.
        answer = admin(self.a, "forget_cluster_node", self.founders[0])
        self.assertFalse(answer["ok"])
        self.assertIn("this node", answer["error"])
        self.assertFalse(admin(d, "join_cluster", d_address)["ok"])
        self.assertFalse(admin(self.a, "forget_cluster_node", "local_host:1")["ok"])  # no host name
        refused = warrenctl(self.a, "forget_cluster_node", self.founders[0])
        self.assertEqual(refused.returncode, 65, refused.stderr)  # EX_DATAERR, as for any invalid request

        # Node c stops for good and is forgotten from node a: three voters everywhere.
        self.c.sigkill()
        change(self.a, "forget_cluster_node", self.founders[2])
        three = sorted([self.founders[0], self.founders[1], d_address])
        for node in (self.a, self.b, d):
            wait_for("3 voters on every node left", lambda node=node: voters(node) == three)
        # Forgetting it again: done at once.
        self.assertTrue(admin(self.b, "forget_cluster_node", self.founders[2])["done"])

        # One more node down: 2 of the 3 voters are a majority of the new configuration.
        self.b.sigkill()
        self.assertLeader([self.a, d])
        connection, channel = channel_on(self.a)
        channel.queue_declare("members.after", durable=True, arguments=QQ)
        connection.close()
        publish_confirmed(d, "members.after", [b"after%d" % i for i in range(20)])
        wait_for("20 on node a", lambda: depth(self.a, "members.after")[0] == 20)

        # The joined node restarted on its data directory: a member again, no join needed.
        d.sigkill()
        d.relaunch()
        wait_for("node d a voter again", lambda: voters(d) == three)
        self.assertLeader([self.a, d])
        publish_confirmed(d, "members.after", [b"restart"])
        wait_for("21 on node a", lambda: depth(self.a, "members.after")[0] == 21)
        got = drain(d, "members.after", 21)
        self.assertEqual([g[0] for g in got], [b"after%d" % i for i in range(20)] + [b"restart"])

    def test_a_join_survives_the_leader_killed_as_it_starts(self):
        connection, channel = channel_on(self.a)
        channel.queue_declare("members.k", durable=True, arguments=QQ)
        connection.close()
        publish_confirmed(self.a, "members.k", [b"k%d" % i for i in range(50)])
        d, d_address = self.start_joiner()
        wait_for("node d's admin socket", lambda: status(d) is not None, timeout=10)
        leader = self.cluster.leader()
        via = [n for n in self.cluster.nodes if n is not leader][0]
        via_address = self.founders[self.cluster.nodes.index(via)]
        # The request goes out, then the leader dies: before the node is added, while it is a
        # spare being caught up, or after; whichever, the next leader finishes the join when
        # the node asks again.
        self.assertTrue(admin(d, "join_cluster", via_address)["ok"])
        time.sleep(0.1)
        leader.sigkill()
        change(d, "join_cluster", via_address)
        everyone = sorted(self.founders + [d_address])
        alive = [n for n in self.cluster.nodes if n is not leader] + [d]
        for node in alive:
            wait_for("4 voters on every live node", lambda node=node: voters(node) == everyone)
        # 3 of the 4 are up: a majority.
        wait_for("the queue's 50 messages on the new node", lambda: depth(d, "members.k")[0] == 50)
        publish_confirmed(d, "members.k", [b"k50"])
        got = drain(via, "members.k", 51)
        self.assertEqual([g[0] for g in got], [b"k%d" % i for i in range(51)])

    def assertLeader(self, among, timeout=20.0):
        """Every node in among names the same leader, one of them."""
        addresses = {status(n)["node_name"]: n for n in among}

        def agreed():
            views = {status(n).get("leader") for n in among}
            if len(views) != 1 or None in views:
                return False
            leader = views.pop()
            return any(m["self"] and m["address"] == leader for n in among for m in status(n)["members"])

        wait_for("a leader among %s" % sorted(addresses), agreed, timeout)


@harness.skip_if_external("starts its own broker")
@unittest.skipUnless(_cluster_built(), "broker built without the cluster layer (libraft-dev)")
class JoiningNodeSettings(unittest.TestCase):
    def test_a_node_that_is_not_a_founder_must_name_its_own_address(self):
        # Not among cluster_peers and no cluster_address: its address cannot be guessed.
        broker = harness.Broker(extra_args=[
            "--cluster_port", str(harness.free_port()), "--cluster_peers", "127.0.0.1:1,127.0.0.1:2",
            "--cluster_secret_file", harness.cluster_secret_file()])
        try:
            with self.assertRaises(AssertionError) as e:
                broker.start()
            self.assertIn("set cluster_address", str(e.exception))
        finally:
            broker._stderr_file.close()
            shutil.rmtree(broker.data_dir, ignore_errors=True)

@harness.skip_if_external("starts and kills cluster nodes")
@unittest.skipUnless(_cluster_built(), "broker built without the cluster layer (libraft-dev)")
class RecoverTest(unittest.TestCase):
    """A majority lost for good: the survivor with the longest log restarts once with
    --cluster_recover naming itself (libraft's raft_recover), leads a cluster of one with every
    queue and confirmed message it had, and takes writes again."""

    def setUp(self):
        self.cluster = Cluster().start()
        self.addCleanup(self.cluster.stop)
        self.cluster.leader()

    def test_a_survivor_recovers_the_cluster_alone(self):
        a, b, c = self.cluster.nodes
        connection, channel = channel_on(a)
        channel.queue_declare("recover.qq", durable=True, arguments=QQ)
        channel.queue_declare("recover.classic", durable=True)
        connection.close()
        publish_confirmed(b, "recover.qq", [b"q%d" % i for i in range(50)])
        publish_confirmed(a, "recover.classic", [b"c%d" % i for i in range(20)])
        # A consumer on b holds five, unacked, when everything dies: b never returns, so the
        # recovered cluster must give them back (node_down for the members it left out).
        held_connection, held = channel_on(b)
        held.basic_qos(prefetch_count=5)
        self.assertEqual(len(take(held, "recover.qq", 5)), 5)
        for node in (a, b, c):
            node.sigkill()
        # b and c never come back. Without the recovery a alone has no majority: a declare
        # there fails after the propose timeout (test_cluster covers that). With it:
        a.extra_args = a.extra_args + ["--cluster_recover", self.cluster.address(a)]
        a.relaunch()
        a.extra_args = a.extra_args[:-2]  # once: a later restart must not force it again
        wait_for("node a leads alone", lambda: status(a)["state"] == "leader", timeout=15)
        self.assertEqual([m["address"] for m in status(a)["members"]], [self.cluster.address(a)])
        self.assertIn("configuration was forced", a.stderr_text())
        got = drain(a, "recover.qq", 50)
        self.assertEqual(sorted(g[0] for g in got), sorted(b"q%d" % i for i in range(50)))
        self.assertEqual(len(drain(a, "recover.classic", 20)), 20)
        connection, channel = channel_on(a)
        channel.queue_declare("recover.after", durable=True)  # a change of definitions commits
        connection.close()
        publish_confirmed(a, "recover.qq", [b"after"])
        self.assertEqual(drain(a, "recover.qq", 1)[0][0], b"after")
        a.sigkill()
        a.relaunch()  # without the option: the recovered configuration is the log's now
        wait_for("node a leads alone again", lambda: status(a)["state"] == "leader", timeout=15)

    def test_cluster_recover_is_refused_in_a_configuration_file(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
            conf.write("cluster_recover = 127.0.0.1:25672\n")
            conf.flush()
            done = subprocess.run([harness.broker_binary(), "--config", conf.name], capture_output=True,
                                  timeout=20, text=True)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("command line, once", done.stderr)


if __name__ == "__main__":
    unittest.main()
