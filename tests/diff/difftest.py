#!/usr/bin/python3
"""Differential tester: runs the same seeded random AMQP 0-9-1 scenarios on Warren and on RabbitMQ
3.10 and prints every place where what a client observes differs.

Each broker is started afresh on spare loopback ports with its own temporary data directory (the
launching classes are clients/bench/compare_brokers.py's) and stopped by PID at the end. A
scenario is a list of steps (declare, bind, publish, get, consume, ack, tx, confirm, close, ...)
over a small pool of names, so that steps meet each other: the same queue is declared twice with
different arguments, a consumer's delivery is acknowledged twice, a queue is bound to an exchange
that was just deleted. Every step leaves one normalized record: the method's outcome (fields that
are deterministic), the channel.close / connection.close the broker sent (reply code, class id,
method id; the text is shown but not compared), and the deliveries, returns and cancel
notifications that arrived before the connections went quiet. Scenario-specific name prefixes,
server-generated queue names and consumer tags and the time in x-death are normalized away.

The first step whose records differ ends the scenario; the difference is printed with the seed
and a reproduction: the steps up to the divergence, shortened by dropping any step the difference
does not need (--no-minimize keeps them all). The exit status is 1 when any difference was found.

Usage: tests/diff/difftest.py [--warren build/warren] [--seed S] [--scenarios N] [--steps M]
       [--queue-types classic,quorum] [--no-minimize] [--verbose]
Run with /usr/bin/python3 (Debian's, which has pika). Needs /usr/lib/rabbitmq/bin/rabbitmq-server.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time

import pika
import pika.channel
import pika.connection
import pika.exceptions

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "clients", "bench"))
from compare_brokers import RabbitMQ, Warren  # noqa: E402

# ---------------------------------------------------------------------------------------------
# pika keeps the reply code and text of a close but drops its class and method ids: remember them.

_channel_close = pika.channel.Channel._on_close_from_broker
_connection_close = pika.connection.Connection._on_connection_close_from_broker


def _remember_channel_close(self, method_frame):
    self.difftest_close = (method_frame.method.reply_code, method_frame.method.class_id,
                           method_frame.method.method_id, method_frame.method.reply_text)
    return _channel_close(self, method_frame)


def _remember_connection_close(self, method_frame):
    self.difftest_close = (method_frame.method.reply_code, method_frame.method.class_id,
                           method_frame.method.method_id, method_frame.method.reply_text)
    return _connection_close(self, method_frame)


pika.channel.Channel._on_close_from_broker = _remember_channel_close
pika.connection.Connection._on_connection_close_from_broker = _remember_connection_close


class StepTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise StepTimeout()


# ---------------------------------------------------------------------------------------------
# Scenario generation. Names are symbols (q0, x1, ...) made concrete with a per-run prefix; a
# routing key {"q": "q1"} is the concrete name of queue q1 (for the default exchange).

QUEUES = ["q0", "q1", "q2", "q3"]
EXCHANGES = ["x0", "x1", "x2", "x3"]
SYSTEM_EXCHANGES = ["", "amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"]
KEYS = ["", "a", "b", "a.b", "a.b.c", "a.*", "*.b", "a.#", "#", "#.c", "*"]
CHANNELS = ["A0", "A0", "A0", "A1", "A2", "B0"]
TYPES = ["direct", "fanout", "topic", "headers"]


def pick_queue(r, state=None):
    if state and state["queues"] and r.random() < 0.75:
        return r.choice(sorted(state["queues"]))
    roll = r.random()
    if roll < 0.03:
        return "amq.q"          # reserved prefix: 403 on declare
    if roll < 0.05:
        return "@server"        # the last server-named queue this run declared
    if roll < 0.06:
        return "missing"
    return r.choice(QUEUES)


def pick_exchange(r, system=0.15, state=None):
    if state and state["exchanges"] and r.random() < 0.7:
        return r.choice(sorted(state["exchanges"]))
    roll = r.random()
    if roll < system:
        return r.choice(SYSTEM_EXCHANGES)
    if roll < system + 0.04:
        return "missing"
    return r.choice(EXCHANGES)


def pick_key(r, state=None):
    if r.random() < 0.3:
        return {"q": r.choice(sorted(state["queues"]) if state and state["queues"] else QUEUES)}
    return r.choice(KEYS)


def queue_arguments(r):
    if r.random() < 0.5:
        return valid_queue_arguments(r)
    choices = [
        ("x-message-ttl", [0, 3600000, -1, "ten"]),
        ("x-expires", [3600000, 0, -5, "soon"]),
        ("x-max-length", [0, 1, 2, -1, "two"]),
        ("x-max-length-bytes", [0, 10, 100000, -1]),
        ("x-overflow", ["drop-head", "reject-publish", "reject-publish-dlx", "bogus", 7]),
        ("x-dead-letter-exchange", ["@x0", "@x1", "", "@missing", 5]),
        ("x-dead-letter-routing-key", ["a", "b", "@q1", "@q2", 3]),
        ("x-max-priority", [0, 1, 5, 10, 255, 256, -1, "high"]),
        ("x-single-active-consumer", [True, False, "yes"]),
        ("x-queue-type", ["classic", "classic", "quorum", "stream", "bogus", 1]),
        ("x-queue-mode", ["lazy", "default", "bogus"]),
        ("x-unknown-argument", ["kept"]),
    ]
    args = {}
    for name, values in r.sample(choices, r.choice([0, 0, 1, 1, 2, 3])):
        args[name] = r.choice(values)
    return args


def valid_queue_arguments(r):
    """Arguments a queue is meant to work with: limits, dead-lettering, priorities."""
    choices = [
        ("x-message-ttl", [0, 3600000]),
        ("x-max-length", [1, 2, 3]),
        ("x-max-length-bytes", [4, 100000]),
        ("x-overflow", ["drop-head", "reject-publish", "reject-publish-dlx"]),
        ("x-dead-letter-exchange", ["@x0", "@x1", ""]),
        ("x-max-priority", [3, 10]),
        ("x-single-active-consumer", [True]),
    ]
    args = {}
    for name, values in r.sample(choices, r.choice([0, 1, 2, 3])):
        args[name] = r.choice(values)
    if "x-dead-letter-exchange" in args and r.random() < 0.5:
        args["x-dead-letter-routing-key"] = r.choice(["a", "@q1", "@q2"])
    return args


def quorum_queue_arguments(r):
    """A quorum queue meant to work (durable, its own arguments), now and then with an argument
    RabbitMQ refuses on one. Not x-dead-letter-strategy at-least-once: its dead letters wait in
    the source queue until a target confirms them, an internal state no client step observes."""
    choices = [
        ("x-delivery-limit", [0, 1, 2, 3]),
        ("x-dead-letter-exchange", ["@x0", "@x1", "", ""]),
        ("x-max-length", [1, 2, 3]),
        ("x-overflow", ["drop-head", "reject-publish", "reject-publish-dlx"]),
        ("x-message-ttl", [0, 3600000]),
        ("x-single-active-consumer", [True]),
        ("x-max-in-memory-length", [0, 5]),
        ("x-quorum-initial-group-size", [1, 3]),
        ("x-dead-letter-strategy", ["at-most-once"]),
        ("x-queue-leader-locator", ["client-local", "balanced"]),
    ]
    args = {"x-queue-type": "quorum"}
    for name, values in r.sample(choices, r.choice([0, 1, 2, 2, 3])):
        args[name] = r.choice(values)
    if "x-dead-letter-exchange" in args and r.random() < 0.6:
        args["x-dead-letter-routing-key"] = r.choice(["a", "@q1", "@q2", "@q3"])
    if r.random() < 0.05:
        args[r.choice(["x-max-priority", "x-queue-mode", "x-queue-version"])] = r.choice([2, "lazy"])
    return args


def headers_binding(r):
    args = {"x-match": r.choice(["all", "any", "any", "all", "bogus"])} if r.random() < 0.9 else {}
    for name in r.sample(["h1", "h2", "h3"], r.choice([0, 1, 2])):
        args[name] = r.choice([1, "v", True])
    return args


def message_properties(r):
    props = {}
    if r.random() < 0.3:
        props["delivery_mode"] = r.choice([1, 2, 1, 2, 3])
    if r.random() < 0.2:
        props["priority"] = r.choice([0, 1, 5, 9, 12, 255])
    if r.random() < 0.15:
        # "150" waits 0.35 s after publishing, so whether it expired never hangs on timing.
        props["expiration"] = r.choice(["0", "3600000", "150", "-1", "soon"])
    if r.random() < 0.35:
        headers = {}
        for name in r.sample(["h1", "h2", "h3"], r.choice([1, 2])):
            headers[name] = r.choice([1, "v", True, 2])
        if r.random() < 0.2:
            headers["CC"] = [pick_key(r) for _ in range(r.choice([1, 2]))]
        if r.random() < 0.15:
            headers["BCC"] = [pick_key(r)]
        props["headers"] = headers
    if r.random() < 0.15:
        props["content_type"] = "text/plain"
    if r.random() < 0.1:
        props["correlation_id"] = "c1"
        props["reply_to"] = "r1"
    return props


OPS = ["xdecl", "xdel", "qdecl", "qdel", "purge", "qbind", "qunbind", "xbind", "xunbind",
       "publish", "get", "consume", "cancel", "ack", "nack", "reject", "qos", "recover", "confirm",
       "tx_select", "tx_commit", "tx_rollback", "flow", "close_channel", "close_connection",
       "get_return"]
# (get_return last with weight 0: classic-only runs draw the scenarios they always drew)
WEIGHTS = [8, 3, 12, 3, 2, 9, 2, 3, 1,
           22, 8, 6, 2, 5, 3, 3, 2, 1, 2,
           1, 2, 1, 1, 1, 1,
           0]
# With quorum queues: more of what returns messages (requeues, recover, closing with unacked)
# and consumes them again, where quorum queues differ from classic ones; get_return (a get
# given straight back) drives delivery counts up to the delivery limits.
QUORUM_WEIGHTS = [6, 2, 10, 2, 2, 8, 1, 2, 1,
                  22, 10, 8, 3, 5, 7, 6, 2, 3, 2,
                  1, 2, 1, 1, 3, 1,
                  10]


def gen_step(r, state):
    """One random step; state carries what the generator has emitted so far (not outcomes)."""
    ch = r.choice(CHANNELS)
    op = r.choices(OPS, QUORUM_WEIGHTS if "quorum" in QUEUE_TYPES else WEIGHTS)[0]
    step = {"op": op, "ch": ch}
    if op == "xdecl":
        step["x"] = pick_exchange(r, system=0.1, state=state) if r.random() < 0.9 else "amq.mine"
        step["type"] = r.choice(TYPES) if r.random() < 0.93 else r.choice(["x-bogus", "bogus"])
        step["passive"] = r.random() < 0.12
        step["durable"] = r.random() < 0.3
        step["auto_delete"] = r.random() < 0.15
        step["internal"] = r.random() < 0.1
        if step["x"] in EXCHANGES:
            state["exchanges"].add(step["x"])
        if r.random() < 0.15:
            step["args"] = {"alternate-exchange": r.choice(["@x0", "@x1", "@x2", "@missing", 5])}
    elif op == "xdel":
        step["x"] = pick_exchange(r, system=0.2, state=state)
        step["if_unused"] = r.random() < 0.4
    elif op == "qdecl":
        roll = r.random()
        step["q"] = "" if roll < 0.08 else pick_queue(r, state)
        step["passive"] = r.random() < 0.12
        step["durable"] = r.random() < 0.3
        step["exclusive"] = r.random() < 0.2
        step["auto_delete"] = r.random() < 0.15
        step["args"] = queue_arguments(r)
        if "quorum" in QUEUE_TYPES and step["q"] in state["quorum"] and r.random() < 0.7:
            # Its declare again (or nearly): the usual redeclare of a quorum queue.
            step.update(durable=True, exclusive=False, auto_delete=False,
                        args=dict(state["quorum"][step["q"]]))
        elif "quorum" in QUEUE_TYPES and r.random() < 0.3:
            step["durable"] = r.random() < 0.85
            step["exclusive"] = step["exclusive"] and r.random() < 0.3
            step["auto_delete"] = step["auto_delete"] and r.random() < 0.3
            step["args"] = quorum_queue_arguments(r)
            if step["q"] in QUEUES and step["q"] not in state["queues"]:
                state["quorum"][step["q"]] = step["args"]
        if step["q"] == "" and step["args"].get("x-queue-type", "classic") not in ("classic", "quorum", "stream"):
            # RabbitMQ 3.10 fails a server-named queue with an unknown x-queue-type with 541
            # INTERNAL_ERROR on the connection (a crash; a named queue gets 406, as in Warren).
            step["args"]["x-queue-type"] = "classic"
        if step["q"] in QUEUES:
            state["queues"].add(step["q"])
    elif op == "qdel":
        step["q"] = pick_queue(r, state)
        step["if_unused"] = r.random() < 0.3
        step["if_empty"] = r.random() < 0.3
    elif op == "purge":
        step["q"] = pick_queue(r, state)
    elif op in ("qbind", "qunbind"):
        step["q"] = pick_queue(r, state)
        step["x"] = pick_exchange(r, state=state)
        step["key"] = r.choice(KEYS)
        if r.random() < 0.3:
            step["args"] = headers_binding(r)
    elif op in ("xbind", "xunbind"):
        step["dst"] = pick_exchange(r, system=0.08, state=state)
        step["src"] = pick_exchange(r, state=state)
        step["key"] = r.choice(KEYS)
        if r.random() < 0.2:
            step["args"] = headers_binding(r)
    elif op == "publish":
        state["bodies"] += 1
        step["x"] = pick_exchange(r, system=0.35, state=state)
        step["key"] = pick_key(r, state)
        step["mandatory"] = r.random() < 0.35
        step["props"] = message_properties(r)
        step["body"] = "m%d" % state["bodies"]
    elif op == "get":
        step["q"] = pick_queue(r, state)
        step["no_ack"] = r.random() < 0.4
    elif op == "get_return":
        quorum = sorted(state["quorum"])
        step["q"] = r.choice(quorum) if quorum and r.random() < 0.8 else pick_queue(r, state)
        step["reject"] = r.random() < 0.3
        step["requeue"] = r.random() < 0.85
    elif op == "consume":
        step["q"] = pick_queue(r, state)
        step["tag"] = r.choice(["t0", "t1", "t2", ""])
        step["no_ack"] = r.random() < 0.4
        step["exclusive"] = r.random() < 0.15
        if r.random() < 0.1:
            step["args"] = {"x-priority": r.choice([1, 5, "hi"])}
    elif op == "cancel":
        step["tag"] = r.choice(["t0", "t1", "t2", "@server"])
    elif op in ("ack", "nack", "reject"):
        step["tag"] = r.choices(["last", "first", "unknown", "zero"], [6, 3, 1, 1])[0]
        if op != "reject":
            step["multiple"] = r.random() < 0.3
        if op != "ack":
            step["requeue"] = r.random() < 0.5
    elif op == "qos":
        step["count"] = r.choice([0, 1, 2, 3])
        step["global"] = r.random() < 0.2
    elif op == "recover":
        step["requeue"] = r.random() < 0.85
    elif op == "flow":
        step["active"] = r.random() < 0.7
    return step


# The queue types scenarios declare (--queue-types). Warren has classic and quorum queues and
# refuses "stream" (docs/compatibility.md), so a type left out is declared as classic instead:
# every scenario would otherwise stop at it. Quorum queues are only declared (and their steps
# weighted towards requeues) when asked for, so that classic-only runs stay as they were.
QUEUE_TYPES = {"classic"}


def without_other_queue_types(step):
    args = step.get("args")
    if step["op"] == "qdecl" and args and args.get("x-queue-type") in ("quorum", "stream") and \
            args["x-queue-type"] not in QUEUE_TYPES:
        args["x-queue-type"] = "classic"
    return step


def generate(seed, steps):
    r = random.Random(seed)
    # names declared (maybe failed); "quorum": quorum queue -> its declare arguments
    state = {"bodies": 0, "queues": set(), "exchanges": set(), "quorum": {}}
    scenario = []
    # A usual start: a few queues and exchanges bound together, so that later steps find them.
    for i in range(r.choice([1, 2, 3])):
        scenario.append({"op": "xdecl", "ch": "A0", "x": EXCHANGES[i], "type": r.choice(TYPES),
                         "passive": False, "durable": False, "auto_delete": False, "internal": False})
        state["exchanges"].add(EXCHANGES[i])
    for i in range(r.choice([1, 2, 3])):
        args = valid_queue_arguments(r) if r.random() < 0.7 else queue_arguments(r)
        durable = False
        if "quorum" in QUEUE_TYPES and r.random() < 0.6:
            args, durable = quorum_queue_arguments(r), True
            state["quorum"][QUEUES[i]] = args
        scenario.append({"op": "qdecl", "ch": "A0", "q": QUEUES[i], "passive": False, "durable": durable,
                         "exclusive": False, "auto_delete": False, "args": args})
        state["queues"].add(QUEUES[i])
    for _ in range(r.choice([0, 1, 2, 3])):
        step = {"op": "qbind", "ch": "A0", "q": r.choice(sorted(state["queues"])),
                "x": r.choice(sorted(state["exchanges"])), "key": r.choice(KEYS)}
        if r.random() < 0.3:
            step["args"] = headers_binding(r)
        scenario.append(step)
    while len(scenario) < steps:
        scenario.append(gen_step(r, state))
    return [without_other_queue_types(step) for step in scenario][:steps]


# ---------------------------------------------------------------------------------------------
# Running a scenario on one broker.

GEN_NAME = re.compile(r"amq\.gen-[A-Za-z0-9_\-]+")
CTAG_NAME = re.compile(r"amq\.ctag-[A-Za-z0-9_\-]+|ctag\d+\.[0-9a-f]+")  # the broker's or pika's


ASYNC_OPS = ("publish", "ack", "nack", "reject", "get_return")


class Session:
    """One run of one scenario on one broker: two connections (A, B), channels opened on demand,
    a record of every event the broker sent."""

    QUIET = 0.05     # the connections are drained until nothing arrives for this long
    DRAIN_MAX = 0.6  # ... or this long in all
    STEP_TIMEOUT = 5

    def __init__(self, url, prefix):
        self.params = pika.URLParameters(url)
        self.params.heartbeat = 0
        self.prefix = prefix
        self.connections = {}   # "A"/"B" -> BlockingConnection
        self.channels = {}      # "A0" -> BlockingChannel
        self.events = []
        self.tags = {}          # channel -> delivery tags received, in order
        self.server_queue = None
        self.server_tags = []
        self.opened_server_queues = []

    # names ------------------------------------------------------------------------------
    def queue(self, symbol):
        if symbol == "@server":
            return self.server_queue or self.prefix + "no-server-queue"
        if symbol.startswith("amq.") or symbol == "":
            return symbol
        return self.prefix + symbol

    def exchange(self, symbol):
        if symbol == "" or symbol.startswith("amq."):
            return symbol
        return self.prefix + symbol

    def key(self, key):
        return self.queue(key["q"]) if isinstance(key, dict) else key

    def value(self, v):
        """Argument values: "@x0" / "@q1" name a scenario object."""
        if isinstance(v, str) and v.startswith("@"):
            sym = v[1:]
            return self.queue(sym) if sym.startswith("q") else self.exchange(sym)
        if isinstance(v, list):
            return [self.value(x) if not isinstance(x, dict) else self.key(x) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        return v

    def normalize(self, v):
        if isinstance(v, str):
            v = v.replace(self.prefix, "")
            v = GEN_NAME.sub("<gen>", v)
            return CTAG_NAME.sub("<ctag>", v)
        if isinstance(v, bytes):
            return self.normalize(v.decode("utf-8", "replace"))
        if isinstance(v, (list, tuple)):
            return [self.normalize(x) for x in v]
        if isinstance(v, dict):
            return {self.normalize(k): self.normalize(x) for k, x in sorted(v.items())}
        if hasattr(v, "timestamp") and callable(getattr(v, "timestamp")):
            return "<time>"
        return v

    # connections and channels ------------------------------------------------------------
    def connection(self, name):
        conn = self.connections.get(name)
        if conn is None or not conn.is_open:
            conn = pika.BlockingConnection(self.params)
            self.connections[name] = conn
            for key in [k for k in self.channels if k.startswith(name)]:
                del self.channels[key]
        return conn

    def channel(self, name):
        ch = self.channels.get(name)
        if ch is None or not ch.is_open:
            ch = self.connection(name[0]).channel()
            ch.add_on_return_callback(lambda c, m, p, b, n=name: self.events.append(
                ("return", n, m.reply_code, self.normalize(m.exchange), self.normalize(m.routing_key),
                 self.normalize(b))))
            ch.add_on_cancel_callback(lambda frame, n=name: self.events.append(
                ("cancelled-by-broker", n, self.normalize(frame.method.consumer_tag))))
            self.channels[name] = ch
            self.tags[name] = []
        return ch

    def on_message(self, name, ch, method, props, body):
        self.tags.setdefault(name, []).append(method.delivery_tag)
        self.events.append(("deliver", name, self.normalize(method.consumer_tag), method.delivery_tag,
                            method.redelivered, self.normalize(method.exchange),
                            self.normalize(method.routing_key), self.normalize(body),
                            self.properties(props)))

    def properties(self, props):
        out = {}
        for field in ("content_type", "delivery_mode", "priority", "expiration", "correlation_id",
                      "reply_to", "message_id", "type", "app_id", "user_id"):
            value = getattr(props, field, None)
            if value is not None:
                out[field] = value
        if props.headers:
            headers = dict(props.headers)
            if "x-death" in headers:
                headers["x-death"] = [{k: v for k, v in d.items() if k != "time"}
                                      for d in headers["x-death"]]
            out["headers"] = headers
        return self.normalize(out)

    def drain(self):
        """Process events on every open connection until quiet."""
        began = last = time.monotonic()
        while True:
            before = len(self.events)
            for conn in list(self.connections.values()):
                if conn.is_open:
                    try:
                        conn.process_data_events(time_limit=0.01)
                    except pika.exceptions.AMQPError:
                        pass
            now = time.monotonic()
            if len(self.events) != before:
                last = now
            if now - last >= self.QUIET or now - began >= self.DRAIN_MAX:
                break

    def closures(self):
        found = []
        for name, conn in sorted(self.connections.items()):
            if conn.is_closed and not getattr(conn, "difftest_reported", False):
                conn.difftest_reported = True
                close = getattr(conn._impl, "difftest_close", None)
                if close:
                    found.append(("connection-closed", name, close[0], close[1], close[2], "~" + self.normalize(close[3])))
        for name, ch in sorted(self.channels.items()):
            if ch.is_closed and not getattr(ch, "difftest_reported", False):
                ch.difftest_reported = True
                close = getattr(ch._impl, "difftest_close", None)
                if close:
                    found.append(("channel-closed", name, close[0], close[1], close[2], "~" + self.normalize(close[3])))
        return found

    def run_step(self, step):
        """Returns the step's normalized record."""
        self.events = []
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, self.STEP_TIMEOUT)
        try:
            try:
                result = self.perform(step)
            except StepTimeout:
                result = ["timeout"]
                for conn in self.connections.values():
                    conn.difftest_reported = True
                self.connections.clear()
                self.channels.clear()
            except pika.exceptions.UnroutableError as e:
                result = ["unroutable", [m.method.reply_code for m in e.messages]]
            except pika.exceptions.NackError:
                result = ["nacked"]
            except (pika.exceptions.ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker):
                result = ["closed"]
            except (pika.exceptions.DuplicateConsumerTag, pika.exceptions.ChannelWrongStateError,
                    pika.exceptions.UnsupportedAMQPFieldException,
                    pika.exceptions.ConnectionWrongStateError) as e:
                result = ["client-refused", type(e).__name__]
            except (pika.exceptions.AMQPConnectionError, pika.exceptions.ChannelClosed) as e:
                result = ["lost", type(e).__name__]
            if step["op"] in ASYNC_OPS:
                self.barrier(step["ch"])
            try:
                self.drain()
            except StepTimeout:
                pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        events = self.closures() + self.events
        # Events from different channels may interleave differently: group them by channel,
        # keeping each channel's own order; deliveries to different consumers likewise.
        events = [e for _, e in sorted(enumerate(events),
                                       key=lambda ie: (ie[1][1], ie[1][2] if ie[1][0] == "deliver" else "",
                                                       ie[0]))]
        return {"result": self.normalize(result), "events": [list(e) for e in events]}

    def barrier(self, name):
        """A harmless synchronous method after an asynchronous one on the same channel: its reply
        (or the channel.close the asynchronous one caused) arrives in order after it."""
        ch = self.channels.get(name)
        if ch is None or not ch.is_open:
            return
        try:
            ch.exchange_declare("amq.direct", passive=True)
        except (pika.exceptions.AMQPError, StepTimeout):
            pass

    def delivery_tag(self, name, which):
        tags = self.tags.get(name) or []
        if which == "unknown":
            return 9999
        if which == "zero":
            return 0
        if not tags:
            return 1
        return tags[-1] if which == "last" else tags[0]

    def perform(self, step):
        op, name = step["op"], step["ch"]
        if op == "close_connection":
            conn = self.connections.get(name[0])
            if conn is not None and conn.is_open:
                conn.difftest_reported = True
                for key, ch in self.channels.items():
                    if key.startswith(name[0]):
                        ch.difftest_reported = True
                conn.close()
            return ["ok"]
        ch = self.channel(name)
        if op == "xdecl":
            ch.exchange_declare(self.exchange(step["x"]), step["type"], passive=step["passive"],
                                durable=step["durable"], auto_delete=step["auto_delete"],
                                internal=step["internal"], arguments=self.value(step.get("args")))
            return ["ok"]
        if op == "xdel":
            ch.exchange_delete(self.exchange(step["x"]), if_unused=step["if_unused"])
            return ["ok"]
        if op == "qdecl":
            frame = ch.queue_declare(self.queue(step["q"]), passive=step["passive"], durable=step["durable"],
                                     exclusive=step["exclusive"], auto_delete=step["auto_delete"],
                                     arguments=self.value(step["args"]))
            if step["q"] == "":
                self.server_queue = frame.method.queue
                self.opened_server_queues.append(frame.method.queue)
            return ["ok", frame.method.queue, frame.method.message_count, frame.method.consumer_count]
        if op == "qdel":
            frame = ch.queue_delete(self.queue(step["q"]), if_unused=step["if_unused"], if_empty=step["if_empty"])
            return ["ok", frame.method.message_count]
        if op == "purge":
            frame = ch.queue_purge(self.queue(step["q"]))
            return ["ok", frame.method.message_count]
        if op == "qbind":
            ch.queue_bind(self.queue(step["q"]), self.exchange(step["x"]), step["key"],
                          arguments=self.value(step.get("args")))
            return ["ok"]
        if op == "qunbind":
            ch.queue_unbind(self.queue(step["q"]), self.exchange(step["x"]), step["key"],
                            arguments=self.value(step.get("args")))
            return ["ok"]
        if op == "xbind":
            ch.exchange_bind(self.exchange(step["dst"]), self.exchange(step["src"]), step["key"],
                             arguments=self.value(step.get("args")))
            return ["ok"]
        if op == "xunbind":
            ch.exchange_unbind(self.exchange(step["dst"]), self.exchange(step["src"]), step["key"],
                               arguments=self.value(step.get("args")))
            return ["ok"]
        if op == "publish":
            props = dict(step["props"])
            if "headers" in props:
                props["headers"] = self.value(props["headers"])
            ch.basic_publish(self.exchange(step["x"]), self.key(step["key"]), step["body"].encode(),
                             pika.BasicProperties(**props), mandatory=step["mandatory"])
            if props.get("expiration") == "150":
                time.sleep(0.35)
            return ["ok"]
        if op == "get":
            method, props, body = ch.basic_get(self.queue(step["q"]), auto_ack=step["no_ack"])
            if method is None:
                return ["empty"]
            self.tags.setdefault(name, []).append(method.delivery_tag)
            return ["ok", method.delivery_tag, method.redelivered, self.normalize(method.exchange),
                    self.normalize(method.routing_key), method.message_count, self.normalize(body),
                    self.properties(props)]
        if op == "get_return":
            method, props, body = ch.basic_get(self.queue(step["q"]), auto_ack=False)
            if method is None:
                return ["empty"]
            self.tags.setdefault(name, []).append(method.delivery_tag)
            record = ["ok", method.delivery_tag, method.redelivered, self.normalize(method.exchange),
                      self.normalize(method.routing_key), method.message_count, self.normalize(body),
                      self.properties(props)]
            if step["reject"]:
                ch.basic_reject(method.delivery_tag, requeue=step["requeue"])
            else:
                ch.basic_nack(method.delivery_tag, requeue=step["requeue"])
            return record
        if op == "consume":
            tag = step["tag"]
            ctag = ch.basic_consume(self.queue(step["q"]),
                                    lambda c, m, p, b, n=name: self.on_message(n, c, m, p, b),
                                    auto_ack=step["no_ack"], exclusive=step["exclusive"],
                                    consumer_tag=(self.prefix + tag) if tag else None,
                                    arguments=step.get("args"))
            if not tag:
                self.server_tags.append((name, ctag))
            return ["ok", ctag]
        if op == "cancel":
            if step["tag"] == "@server":
                tags = [t for n, t in self.server_tags if n == name]
                tag = tags[-1] if tags else self.prefix + "none"
            else:
                tag = self.prefix + step["tag"]
            return ["ok", ch.basic_cancel(tag)]
        if op == "ack":
            ch.basic_ack(self.delivery_tag(name, step["tag"]), multiple=step["multiple"])
            return ["ok"]
        if op == "nack":
            ch.basic_nack(self.delivery_tag(name, step["tag"]), multiple=step["multiple"], requeue=step["requeue"])
            return ["ok"]
        if op == "reject":
            ch.basic_reject(self.delivery_tag(name, step["tag"]), requeue=step["requeue"])
            return ["ok"]
        if op == "qos":
            ch.basic_qos(prefetch_count=step["count"], global_qos=step["global"])
            return ["ok"]
        if op == "recover":
            ch.basic_recover(requeue=step["requeue"])
            return ["ok"]
        if op == "confirm":
            ch.confirm_delivery()
            return ["ok"]
        if op == "tx_select":
            ch.tx_select()
            return ["ok"]
        if op == "tx_commit":
            ch.tx_commit()
            return ["ok"]
        if op == "tx_rollback":
            ch.tx_rollback()
            return ["ok"]
        if op == "flow":
            return ["ok", ch.flow(step["active"])]
        if op == "close_channel":
            ch.difftest_reported = True
            ch.close()
            return ["ok"]
        raise ValueError("unknown op " + op)

    def close(self):
        """Close this run's connections and delete what it declared (names are unique per run)."""
        for conn in self.connections.values():
            try:
                if conn.is_open:
                    conn.close()
            except Exception:
                pass
        try:
            conn = pika.BlockingConnection(self.params)
            for name in [self.queue(q) for q in QUEUES] + self.opened_server_queues:
                ch = conn.channel()
                try:
                    ch.queue_delete(name)
                except pika.exceptions.AMQPError:
                    pass
            for name in EXCHANGES:
                ch = conn.channel()
                try:
                    ch.exchange_delete(self.exchange(name))
                except pika.exceptions.AMQPError:
                    pass
            conn.close()
        except Exception:
            pass


def run(url, scenario, prefix, upto=None):
    """The records of scenario's steps (up to and including index upto) on the broker at url."""
    session = Session(url, prefix)
    records = []
    try:
        for index, step in enumerate(scenario):
            records.append(session.run_step(step))
            if upto is not None and index >= upto:
                break
    finally:
        signal.setitimer(signal.ITIMER_REAL, 10)
        try:
            session.close()
        except StepTimeout:
            pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return records


def comparable(record):
    """A record without the reply texts (marked "~"), which are shown but not compared."""
    def strip(v):
        if isinstance(v, list):
            return [strip(x) for x in v if not (isinstance(x, str) and x.startswith("~"))]
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items()}
        return v
    return json.dumps(strip(record), sort_keys=True, default=str)


def first_difference(a, b):
    for index, (x, y) in enumerate(zip(a, b)):
        if comparable(x) != comparable(y):
            return index
    return None


class Comparer:
    def __init__(self, urls):
        self.urls = urls   # {"warren": url, "rabbitmq": url}
        self.runs = 0
        self.minimize_seconds = 60

    def compare(self, scenario, upto=None):
        """(index of the first differing step or None, {broker: records})."""
        self.runs += 1
        prefix = "dt%d-%d-" % (os.getpid(), self.runs)  # several testers may share brokers
        records = {name: run(url, scenario, prefix, upto) for name, url in self.urls.items()}
        return first_difference(records["warren"], records["rabbitmq"]), records

    def minimize(self, scenario, index, signature):
        """Drop steps before the divergence one at a time (latest first) while the same step still
        differs in the same way."""
        steps = scenario[:index + 1]
        deadline = time.monotonic() + self.minimize_seconds
        chunk = max(1, (len(steps) - 1) // 2)
        while chunk >= 1 and time.monotonic() < deadline:
            i = len(steps) - 1 - chunk
            while i >= 0 and time.monotonic() < deadline:
                trial = steps[:i] + steps[i + chunk:]
                where, records = self.compare(trial)
                if where == len(trial) - 1 and self.signature(trial, where, records) == signature:
                    steps = trial
                i -= chunk
                i = min(i, len(steps) - 1 - chunk)
            chunk //= 2
        return steps

    @staticmethod
    def signature(scenario, index, records):
        return (scenario[index]["op"], comparable(records["warren"][index]),
                comparable(records["rabbitmq"][index]))


def show_step(step):
    fields = ", ".join("%s=%s" % (k, json.dumps(v)) for k, v in step.items() if k not in ("op", "ch"))
    return "%s %s(%s)" % (step["ch"], step["op"], fields)


def report(seed, scenario, index, records, minimal):
    print("=" * 100)
    print("DIFFERENCE  seed %d  step %d: %s" % (seed, index, show_step(scenario[index])))
    print("  warren:   %s" % json.dumps(records["warren"][index], default=str))
    print("  rabbitmq: %s" % json.dumps(records["rabbitmq"][index], default=str))
    print("  reproduction (%d of %d steps):" % (len(minimal), index + 1))
    for step in minimal:
        print("    " + show_step(step))
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warren", default=os.path.join(ROOT, "build", "warren"), help="Warren binary")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first scenario (default 1)")
    parser.add_argument("--scenarios", type=int, default=25, help="scenarios, seeds seed..seed+N-1")
    parser.add_argument("--steps", type=int, default=25, help="steps per scenario")
    parser.add_argument("--no-minimize", action="store_true", help="print the steps up to the divergence as they are")
    parser.add_argument("--verbose", action="store_true", help="print every scenario's records")
    parser.add_argument("--warren-url", help="use this running Warren instead of starting one")
    parser.add_argument("--rabbitmq-url", help="use this running RabbitMQ instead of starting one")
    parser.add_argument("--queue-types", default="classic",
                        help="comma-separated queue types scenarios declare: classic, quorum, stream "
                             "(default classic; Warren refuses stream by design)")
    parser.add_argument("--all-queue-types", action="store_true", help="the same as --queue-types classic,quorum,stream")
    args = parser.parse_args()
    global QUEUE_TYPES
    QUEUE_TYPES = set(t.strip() for t in args.queue_types.split(",") if t.strip()) | {"classic"}
    if args.all_queue_types:
        QUEUE_TYPES |= {"quorum", "stream"}
    unknown = QUEUE_TYPES - {"classic", "quorum", "stream"}
    if unknown:
        parser.error("unknown queue type(s): " + ", ".join(sorted(unknown)))

    started = []
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit("difftest: signal %d" % signum))
    try:
        urls = {}
        for name, given in (("warren", args.warren_url), ("rabbitmq", args.rabbitmq_url)):
            if given:
                urls[name] = given
                continue
            if name == "warren" and not Warren.available(os.path.abspath(args.warren)):
                sys.exit("difftest: no Warren binary at %s (build it, or pass --warren)" % args.warren)
            if name == "rabbitmq" and not RabbitMQ.available():
                sys.exit("difftest: %s is not installed" % RabbitMQ.script)
            workdir = tempfile.mkdtemp(prefix="warren-difftest-%s-" % name)
            broker = Warren(workdir, os.path.abspath(args.warren)) if name == "warren" else RabbitMQ(workdir)
            started.append(broker)
            broker.start(fresh=True)
            print("[difftest] %s on port %d (pid %d)" % (name, broker.port, broker.proc.pid), file=sys.stderr)
            urls[name] = broker.uri()
        comparer = Comparer(urls)
        seen = set()
        differences = 0
        for seed in range(args.seed, args.seed + args.scenarios):
            scenario = generate(seed, args.steps)
            index, records = comparer.compare(scenario)
            if args.verbose:
                for i, step in enumerate(scenario[:len(records["warren"])]):
                    print("%3d %s\n    W %s\n    R %s" % (i, show_step(step), json.dumps(records["warren"][i]),
                                                      json.dumps(records["rabbitmq"][i])))
            if index is None:
                print("[difftest] seed %d: %d steps, same" % (seed, len(scenario)), file=sys.stderr)
                continue
            differences += 1
            signature = Comparer.signature(scenario, index, records)
            if signature in seen:
                print("[difftest] seed %d: the same difference again at step %d" % (seed, index), file=sys.stderr)
                continue
            seen.add(signature)
            minimal = scenario[:index + 1] if args.no_minimize else comparer.minimize(scenario, index, signature)
            report(seed, scenario, index, records, minimal)
        print("[difftest] %d scenarios, %d with a difference (%d distinct)" % (args.scenarios, differences,
                                                                               len(seen)), file=sys.stderr)
        return 1 if differences else 0
    finally:
        for broker in started:
            broker.stop()
            shutil.rmtree(broker.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
