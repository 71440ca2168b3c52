#!/usr/bin/env python3
"""tests/fuzz/make_corpus.py: writes the seed corpora of the fuzz targets.

    python3 tests/fuzz/make_corpus.py   # rewrites tests/fuzz/corpus/{frame,table,definitions,connection}/

The frames are what a real client and broker exchange: the handshake, a publish with its
header and body, a delivery, heartbeats, close. Encoded here by hand from the 0-9-1 spec,
independently of the C codec, so a seed also pins the wire format. Input layouts follow the
targets: fuzz_frame takes 2 control bytes (frame_max choice, split seed) then the stream;
fuzz_table takes 1 control byte (bit 0: array) then the contents. fuzz_definitions takes the
contents of store/definitions after its header, laid out as broker/amqp/server_vhosts.c and
broker/model/vhost_definitions.c write them. fuzz_connection takes a
setup byte, then either operations (structured mode, see Session below) or, in raw mode, a
split seed and the client's side of the stream.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


# Field values: (type octet, python value).
def shortstr(text):
    data = text.encode() if isinstance(text, str) else text
    assert len(data) <= 255
    return struct.pack(">B", len(data)) + data


def longstr(text):
    data = text.encode() if isinstance(text, str) else text
    return struct.pack(">I", len(data)) + data


def value(kind, v):
    fixed = {"t": ">B", "b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I",
             "l": ">q", "L": ">Q", "f": ">f", "d": ">d", "T": ">Q"}
    head = kind.encode()
    if kind in fixed:
        return head + struct.pack(fixed[kind], v)
    if kind == "D":
        return head + struct.pack(">BI", *v)
    if kind in "Sx":
        return head + longstr(v)
    if kind == "F":
        return head + longstr(table(v))
    if kind == "A":
        return head + longstr(array(v))
    if kind == "V":
        return head
    raise ValueError(kind)


def table(fields):
    return b"".join(shortstr(key) + value(kind, v) for key, kind, v in fields)


def array(values):
    return b"".join(value(kind, v) for kind, v in values)


def method(class_id, method_id, args=b""):
    return struct.pack(">HH", class_id, method_id) + args


def frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def bits(*flags):
    return struct.pack(">B", sum(1 << i for i, flag in enumerate(flags) if flag))


SERVER_PROPERTIES = [
    ("capabilities", "F", [("publisher_confirms", "t", 1), ("exchange_exchange_bindings", "t", 1),
                           ("basic.nack", "t", 1), ("consumer_cancel_notify", "t", 1),
                           ("connection.blocked", "t", 1),
                           ("authentication_failure_close", "t", 1)]),
    ("cluster_name", "S", "warren@localhost"),
    ("product", "S", "Warren"),
    ("version", "S", "0.1.0"),
]

CLIENT_PROPERTIES = [
    ("product", "S", "rabbitmq-c"),
    ("capabilities", "F", [("authentication_failure_close", "t", 1),
                           ("connection.blocked", "t", 1)]),
    ("connection_name", "S", "seed"),
]

ALL_TYPES = [
    ("bool", "t", 1), ("i8", "b", -128), ("u8", "B", 255), ("i16", "s", -32768),
    ("u16", "u", 65535), ("i32", "I", -(2 ** 31)), ("u32", "i", 2 ** 32 - 1),
    ("i64", "l", -(2 ** 63)), ("u64", "L", 2 ** 64 - 1), ("f32", "f", 1.5), ("f64", "d", -2.25),
    ("decimal", "D", (2, 12345)), ("string", "S", "hello"), ("bytes", "x", b"\x00\x01\xce"),
    ("time", "T", 1700000000), ("void", "V", None),
    ("list", "A", [("I", 1), ("S", "two"), ("V", None), ("F", [("k", "B", 3)])]),
    ("nested", "F", [("inner", "F", [("deepest", "A", [("t", 0)])])]),
]


def handshake():
    return (
        frame(1, 0, method(10, 10, struct.pack(">BB", 0, 9) + longstr(table(SERVER_PROPERTIES))
                           + longstr("PLAIN AMQPLAIN") + longstr("en_US")))
        + frame(1, 0, method(10, 11, longstr(table(CLIENT_PROPERTIES)) + shortstr("PLAIN")
                             + longstr(b"\x00guest\x00guest") + shortstr("en_US")))
        + frame(1, 0, method(10, 30, struct.pack(">HIH", 2047, 131072, 60)))
        + frame(1, 0, method(10, 31, struct.pack(">HIH", 2047, 131072, 60)))
        + frame(1, 0, method(10, 40, shortstr("/") + shortstr("") + bits(False)))
        + frame(1, 0, method(10, 41, shortstr("")))
        + frame(1, 1, method(20, 10, shortstr("")))
        + frame(1, 1, method(20, 11, longstr("")))
    )


def publish():
    body = b"hello, warren"
    properties = (shortstr("text/plain") + longstr(table([("x-trace", "S", "abc"), ("n", "I", 7)]))
                  + struct.pack(">B", 2) + shortstr("msg-1") + struct.pack(">Q", 1700000000))
    flags = (1 << 15) | (1 << 13) | (1 << 12) | (1 << 7) | (1 << 6)
    header = struct.pack(">HHQH", 60, 0, len(body), flags) + properties
    return (
        frame(1, 1, method(85, 10, bits(False)))
        + frame(1, 1, method(40, 10, struct.pack(">H", 0) + shortstr("events") + shortstr("topic")
                             + bits(False, True, False, False, False) + longstr(b"")))
        + frame(1, 1, method(50, 10, struct.pack(">H", 0) + shortstr("jobs")
                             + bits(False, True, False, False, False)
                             + longstr(table([("x-max-length", "l", 1000),
                                              ("x-queue-type", "S", "classic")]))))
        + frame(1, 1, method(60, 40, struct.pack(">H", 0) + shortstr("events") + shortstr("a.b")
                             + bits(True, False)))
        + frame(2, 1, header)
        + frame(3, 1, body)
        + frame(8, 0, b"")
    )


def deliver():
    body = b"x" * 40
    return (
        frame(1, 1, method(60, 20, struct.pack(">H", 0) + shortstr("jobs") + shortstr("")
                           + bits(False, False, False, False) + longstr(b"")))
        + frame(1, 1, method(60, 21, shortstr("amq.ctag-1")))
        + frame(1, 1, method(60, 60, shortstr("amq.ctag-1") + struct.pack(">Q", 1) + bits(False)
                             + shortstr("events") + shortstr("a.b")))
        + frame(2, 1, struct.pack(">HHQH", 60, 0, len(body), 0))
        + frame(3, 1, body[:20]) + frame(3, 1, body[20:])
        + frame(1, 1, method(60, 80, struct.pack(">Q", 1) + bits(True)))
        + frame(1, 1, method(60, 120, struct.pack(">Q", 2) + bits(False, True)))
    )


def close():
    return (
        frame(1, 1, method(20, 40, struct.pack(">H", 404) + shortstr("NOT_FOUND - no queue 'q'")
                           + struct.pack(">HH", 50, 10)))
        + frame(1, 1, method(20, 41))
        + frame(1, 0, method(10, 60, shortstr("low on memory")))
        + frame(1, 0, method(10, 61))
        + frame(1, 0, method(10, 50, struct.pack(">H", 320) + shortstr("shutdown")
                             + struct.pack(">HH", 0, 0)))
        + frame(1, 0, method(10, 51))
    )


def exchange(name, kind, arguments=()):
    return ("F", [("name", "S", name), ("type", "S", kind), ("auto_delete", "t", 0),
                  ("internal", "t", 0), ("arguments", "F", list(arguments))])


def queue(name, arguments=()):
    return ("F", [("name", "S", name), ("auto_delete", "t", 0), ("arguments", "F", list(arguments))])


def binding(source, destination, kind, key, arguments=()):
    return ("F", [("source", "S", source), ("destination", "S", destination),
                  ("destination_type", "S", kind), ("routing_key", "S", key),
                  ("arguments", "F", list(arguments))])


def definitions(vhosts, access=True):
    """vhosts: [(name, exchanges, queues, bindings)]."""
    fields = []
    if access:
        fields.append(("access", "F", [
            ("users", "A", [("F", [("name", "S", "guest"), ("password_hash", "S", ""),
                                   ("hashing_algorithm", "S", "rabbit_password_hashing_sha256"),
                                   ("tags", "S", "administrator")])]),
            ("vhosts", "A", [("F", [("name", "S", name)]) for name, _, _, _ in vhosts]),
            ("permissions", "A", [("F", [("vhost", "S", name), ("user", "S", "guest"), ("configure", "S", ".*"),
                                         ("write", "S", ".*"), ("read", "S", ".*")])
                                  for name, _, _, _ in vhosts]),
        ]))
    fields.append(("vhosts", "A", [
        ("F", [("name", "S", name), ("definitions", "F", [("exchanges", "A", exchanges),
                                                          ("queues", "A", queues),
                                                          ("bindings", "A", bindings)])])
        for name, exchanges, queues, bindings in vhosts]))
    return table(fields)


# ---- fuzz_connection ----

# The operation table of tests/fuzz/fuzz_connection_ops.c, in its order (repeats included):
# an operation byte is an index into it. Keep the two in step.
OPERATIONS = [
    "switch_connection", "channel_open", "channel_close", "channel_flow",
    "exchange_declare", "exchange_declare", "exchange_delete", "exchange_bind",
    "queue_declare", "queue_declare", "queue_declare", "queue_bind", "queue_bind",
    "queue_purge", "queue_delete", "qos", "consume", "consume", "cancel",
    "publish", "publish", "publish", "publish", "publish", "get", "get",
    "settle", "settle", "settle", "recover", "confirm_select", "tx", "tx",
    "raw_frame", "raw_bytes", "advance", "advance", "advance", "close_connection",
    "hang_up", "toggle_reading",
]
# The name tables the operations pick from, also as in fuzz_connection_ops.c.
QUEUES = ["q0", "q1", "q2", "dlq", "q0", "q1", "", "@"]
EXCHANGES = ["", "amq.direct", "amq.fanout", "amq.topic", "amq.headers", "ex.d", "ex.f", "ex.t",
             "ex.h", "dlx", "dlx"]
KEYS = ["q0", "q1", "q2", "dlq", "a.b", "a.*", "#", "", "a.b.c", "*.b"]
DECLARED_EXCHANGES = ["ex.d", "ex.f", "ex.t", "ex.h", "dlx", "amq.direct", "amq.bogus"]
DL_EXCHANGES = ["dlx", "dlx", "", "ex.f", "ex.d", "nowhere"]
TTLS = [0, 1, 10, 100, 1000, 60000, -1]
LENGTHS = [1, 2, 3, 10, -1]
OVERFLOWS = ["drop-head", "reject-publish", "reject-publish-dlx", "bogus"]
EXPIRES = [0, 1, 100, 1000, 5000]
SIZES = [0, 1, 10, 255, 256, 257, 1000, 4088, 4089, 5000, 20000]
CHUNKS = ["max", "max", "max", 1, 100, 1000]
STEPS_MS = [1, 10, 60, 100, 500, 1000, 2100, 5000, 30000, 120000]
COUNTS = [0, 1, 2, 3, 10]
TX = ["select", "commit", "commit", "rollback"]


class Session:
    """Builds a structured fuzz_connection input: the setup byte, then operations.

    Setup bits: 0-1 mode (3 is raw), 2 frame_max 4096, 3-5 write pieces, 6 tiny memory
    watermark, 7 heartbeat 2 s. An operation on a connection that is not open is preceded by
    a handshake variant byte (0: plain guest/guest), as fuzz_connection_ops.c reads it."""

    def __init__(self, setup=0):
        self.data = bytearray([setup])
        self.connected = [False, False]
        self.current = 0

    def op(self, name, *args, wait=True):
        code = OPERATIONS.index(name) | (0 if wait else 0x80)
        self.data.append(code)
        if name == "switch_connection":
            self.current ^= 1
            return self
        if not self.connected[self.current]:
            self.data.append(0)
            self.connected[self.current] = True
        if name in ("close_connection", "hang_up"):
            self.connected[self.current] = False
        self.data += bytes(args)
        return self

    @staticmethod
    def pick(table, value):
        return table.index(value)

    def queue_declare(self, ch, name, flags=0, dlx=None, dl_key=None, ttl=None, max_length=None,
                      overflow=None, expires=None):
        mask = ((dlx is not None) | (dl_key is not None) << 1 | (ttl is not None) << 2
                | (max_length is not None) << 3 | (overflow is not None) << 4
                | (expires is not None) << 5)
        args = [ch, flags, self.pick(QUEUES, name), mask & 0xff, mask >> 8]
        if dlx is not None:
            args.append(self.pick(DL_EXCHANGES, dlx))
        if dl_key is not None:
            args.append(self.pick(KEYS, dl_key))
        if ttl is not None:
            args += [self.pick(TTLS, ttl), 0]  # value, then its type (0: long)
        if max_length is not None:
            args += [self.pick(LENGTHS, max_length), 0]
        if overflow is not None:
            args.append(self.pick(OVERFLOWS, overflow))
        if expires is not None:
            args += [self.pick(EXPIRES, expires), 0]
        return self.op("queue_declare", *args)

    def exchange_declare(self, ch, name, flags=0):
        return self.op("exchange_declare", ch, self.pick(DECLARED_EXCHANGES, name), flags, 0)

    def queue_bind(self, ch, queue, exchange, key):
        return self.op("queue_bind", ch, 0, 0, self.pick(QUEUES, queue), self.pick(EXCHANGES, exchange),
                       self.pick(KEYS, key))

    def publish(self, ch, exchange, key, size=10, mandatory=False, chunk="max", persistent=False,
                expiration=None, k1=None, wait=True):
        props = (1 if persistent else 0) | (4 if expiration is not None else 0) | (8 if k1 else 0)
        args = [ch, int(mandatory), self.pick(EXCHANGES, exchange), self.pick(KEYS, key),
                self.pick(SIZES, size), self.pick(CHUNKS, chunk), 31, props]
        if persistent:
            args.append(1)
        if expiration is not None:
            args.append(["0", "1", "10", "100", "1000", "60000", "-1", "abc", ""].index(expiration))
        if k1:
            args += [1, ["v1", "v2"].index(k1)]  # headers: just k1
        return self.op("publish", *args, wait=wait)

    def exchange_bind(self, ch, destination, source, key):
        return self.op("exchange_bind", ch, 0, 0, self.pick(EXCHANGES, destination),
                       self.pick(EXCHANGES, source), self.pick(KEYS, key))

    def consume(self, ch, queue, no_ack=False, tag=0):
        return self.op("consume", ch, int(no_ack), self.pick(QUEUES, queue), tag)

    def settle(self, ch, kind, latest=0, multiple=False, requeue=False):
        flags = {"ack": 0, "nack": 2, "reject": 3}[kind] | multiple << 2 | requeue << 3
        return self.op("settle", ch, flags, latest)

    def advance(self, ms, heartbeat=True):
        return self.op("advance", int(heartbeat), self.pick(STEPS_MS, ms))

    def bytes(self):
        return bytes(self.data)


def connection_seeds():
    seeds = {}
    s = Session()
    s.exchange_declare(1, "dlx").queue_declare(1, "dlq").queue_bind(1, "dlq", "dlx", "")
    s.queue_declare(1, "q0", dlx="dlx", ttl=100).publish(1, "", "q0", size=257).advance(1000)
    s.consume(2, "dlq").settle(2, "ack").op("get", 2, 0, s.pick(QUEUES, "dlq"))
    seeds["dead_letter_ttl"] = s.bytes()

    s = Session(setup=0x04)  # frame_max 4096
    s.queue_declare(1, "q1", dlx="dlx", max_length=1, overflow="reject-publish-dlx")
    s.exchange_declare(1, "dlx").queue_declare(1, "dlq").queue_bind(1, "dlq", "dlx", "")
    s.op("confirm_select", 1, 0)
    for size in (0, 5000, 20000):
        s.publish(1, "", "q1", size=size, chunk=1000)
    s.publish(1, "amq.direct", "a.b", mandatory=True)
    s.op("tx", 3, 0).publish(3, "", "q1").op("tx", 3, 1).publish(3, "", "q1").op("tx", 3, 3)
    seeds["max_length_confirms_tx"] = s.bytes()

    s = Session()
    s.queue_declare(1, "q0").op("qos", 1, 0, s.pick(COUNTS, 1)).consume(1, "q0", tag=1)
    s.consume(2, "q0", tag=2)
    for _ in range(4):
        s.publish(3, "", "q0", wait=False)
    s.publish(3, "", "q0")
    s.settle(1, "nack", requeue=True).settle(2, "reject", requeue=False).settle(1, "ack", multiple=True)
    s.op("recover", 2, 1).op("cancel", 1, 0, 1).op("channel_close", 2)
    seeds["consumers_qos"] = s.bytes()

    s = Session()
    s.queue_declare(1, "q2", flags=8 | 16, expires=100)  # exclusive, auto-delete
    s.op("switch_connection").consume(1, "q2").publish(1, "", "q2")
    s.op("switch_connection").op("hang_up").op("switch_connection").advance(1000)
    seeds["two_connections"] = s.bytes()

    s = Session(setup=0x80 | 0x40)  # heartbeat 2 s, tiny memory watermark
    s.queue_declare(1, "q0", ttl=1000, max_length=10, overflow="drop-head")
    for _ in range(8):
        s.publish(1, "", "q0", size=4089, persistent=True, expiration="100", wait=False)
    s.advance(500).advance(2100).consume(1, "q0", no_ack=True).advance(5000, heartbeat=False)
    seeds["heartbeat_alarm"] = s.bytes()

    s = Session()
    for name in ("ex.h", "ex.t", "ex.f"):
        s.exchange_declare(1, name)
    s.exchange_bind(1, "ex.t", "ex.f", "").queue_declare(1, "q0").queue_declare(1, "q1")
    s.queue_bind(1, "q0", "ex.t", "a.*")
    s.op("queue_bind", 1, 0, 3, 1, 0, s.pick(QUEUES, "q1"), s.pick(EXCHANGES, "ex.h"), s.pick(KEYS, ""))
    s.publish(1, "ex.f", "a.b").publish(1, "ex.h", "", k1="v1").publish(1, "ex.h", "", k1="v2")
    s.op("get", 1, 1, s.pick(QUEUES, "q0")).op("get", 1, 1, s.pick(QUEUES, "q1"))
    seeds["exchange_graph"] = s.bytes()

    # Raw mode: setup 0x07 (raw, handshake sent), a split seed, then the client's frames.
    body = b"raw body"
    raw = (frame(1, 1, method(20, 10, shortstr("")))
           + frame(1, 1, method(50, 10, struct.pack(">H", 0) + shortstr("q0")
                                + bits(False, False, False, False, False) + longstr(b"")))
           + frame(1, 1, method(60, 40, struct.pack(">H", 0) + shortstr("") + shortstr("q0")
                                + bits(False, False)))
           + frame(2, 1, struct.pack(">HHQH", 60, 0, len(body), 0)) + frame(3, 1, body)
           + frame(1, 1, method(60, 70, struct.pack(">H", 0) + shortstr("q0") + bits(False)))
           + frame(8, 0, b"")
           + frame(1, 0, method(10, 50, struct.pack(">H", 200) + shortstr("bye")
                                + struct.pack(">HH", 0, 0))))
    seeds["raw_after_handshake"] = b"\x07\x2b" + raw
    # Raw mode without the handshake: the client's whole side, protocol header first.
    hello = (b"AMQP\x00\x00\x09\x01"
             + frame(1, 0, method(10, 11, longstr(table(CLIENT_PROPERTIES)) + shortstr("PLAIN")
                                  + longstr(b"\x00guest\x00guest") + shortstr("en_US")))
             + frame(1, 0, method(10, 31, struct.pack(">HIH", 2047, 131072, 0)))
             + frame(1, 0, method(10, 40, shortstr("/") + shortstr("") + bits(False))))
    seeds["raw_whole_stream"] = b"\x03\x11" + hello + raw
    return seeds

def amqp_0_8():
    """The methods whose AMQP 0-8 form (RabbitMQ's framing) differs from 0-9-1: connection.close
    at 10/60 and close-ok at 10/61, channel.open-ok without a field, access.request, and
    basic.consume without an arguments table. test_corpus decodes this seed as 0-8."""
    return (
        frame(1, 0, method(10, 60, struct.pack(">H", 320) + shortstr("bye") + struct.pack(">HH", 0, 0)))
        + frame(1, 0, method(10, 61))
        + frame(1, 1, method(20, 11))
        + frame(1, 1, method(30, 10, shortstr("/data") + bits(False, False, True, True, True)))
        + frame(1, 1, method(60, 20, struct.pack(">H", 1) + shortstr("q") + shortstr("tag")
                             + bits(False, True, False, False)))
    )


def write(directory, name, data):
    path = os.path.join(HERE, "corpus", directory)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as handle:
        handle.write(data)


def qq_snapshot(messages, returned=(), requeued=(), consumers=(), next_new=None, limit=-1, limits=None):
    """A quorum queue's state as broker/cluster/qq_snapshot.c lays it out: messages are
    (id, delivery count, content), consumers (serial, node, channel, tag, prefetch, detached,
    checked ids)."""
    next_id = (max(m[0] for m in messages) + 1) if messages else 1
    fields = [
        ("version", "B", 1), ("seq", "L", 7), ("next_id", "L", next_id),
        ("next_new", "L", next_new if next_new is not None else next_id),
        ("next_consumer", "L", len(consumers) + 1), ("delivery_limit", "l", limit),
        ("sessions", "A", []),
        ("messages", "A", [("F", [("id", "L", i), ("count", "i", c), ("content", "x", body)])
                           for i, c, body in messages]),
        ("returned", "A", [("L", i) for i in returned]),
        ("requeued", "A", [("F", [("id", "L", i), ("behind", "L", b)]) for i, b in requeued]),
        ("consumers", "A", [("F", [("serial", "L", serial), ("node", "S", node), ("channel", "L", channel),
                                   ("tag", "S", tag), ("prefetch", "i", prefetch), ("detached", "t", detached),
                                   ("checked", "A", [("L", i) for i in checked])])
                            for serial, node, channel, tag, prefetch, detached, checked in consumers]),
    ]
    if limits:  # (max_length, max_bytes, reject_publish, over_limit)
        fields += [("max_length", "l", limits[0]), ("max_bytes", "l", limits[1]),
                   ("reject_publish", "t", limits[2]), ("over_limit", "t", limits[3])]
    return table(fields)


def qq_snapshot_seeds():
    return {
        "empty": qq_snapshot([]),
        "ready": qq_snapshot([(1, 0, b"one"), (2, 0, b"two"), (3, 0, b"")], next_new=1),
        "held_and_returned": qq_snapshot(
            [(1, 1, b"back"), (2, 0, b"held"), (3, 0, b"held too"), (4, 0, b"new")],
            returned=[1], next_new=4,
            consumers=[(1, "127.0.0.1:25672", 1 << 40, "ctag", 2, False, [2, 3])]),
        "requeued_and_detached": qq_snapshot(
            [(1, 0, b"held"), (2, 2, b"requeued"), (3, 0, b"new")], requeued=[(2, 3)], next_new=3, limit=5,
            consumers=[(1, "n1", 7, "gone", 0, True, [1])]),
        "limits": qq_snapshot([(1, 0, b"a"), (2, 0, b"bb"), (3, 0, b"ccc")], next_new=1,
                              limits=(3, 100, True, True)),
    }


def main():
    # Control bytes: frame_max choice (0 none, 1 4096, 2 131072) and split seed.
    write("frame", "handshake", b"\x02\x01" + handshake())
    write("frame", "publish", b"\x02\x07" + publish())
    write("frame", "deliver", b"\x01\x33" + deliver())
    write("frame", "close", b"\x00\x10" + close())
    write("frame", "heartbeat", b"\x01\x00" + frame(8, 0, b""))
    write("frame", "amqp_0_8", b"\x02\x07" + amqp_0_8())
    write("frame", "protocol_header", b"\x01\x00" + b"AMQP\x00\x00\x09\x01")
    write("table", "all_types", b"\x00" + table(ALL_TYPES))
    write("table", "server_properties", b"\x00" + table(SERVER_PROPERTIES))
    write("table", "array", b"\x01" + array([("S", "a"), ("A", [("A", [("u", 1)])]), ("d", 0.5)]))
    write("table", "empty", b"\x00")
    write("definitions", "typical", definitions([
        ("/",
         [exchange("orders", "topic"), exchange("dlx", "fanout"),
          exchange("ae", "direct", [("alternate-exchange", "S", "dlx")]), exchange("match", "headers")],
         [queue("jobs", [("x-max-priority", "B", 5), ("x-message-ttl", "I", 60000)]),
          queue("dead", [("x-dead-letter-exchange", "S", "dlx"), ("x-max-length", "l", 1000)])],
         [binding("orders", "jobs", "queue", "order.*"), binding("dlx", "dead", "queue", ""),
          binding("orders", "ae", "exchange", "#"),
          binding("match", "jobs", "queue", "", [("x-match", "S", "all"), ("kind", "S", "a")])]),
        ("staging", [exchange("logs", "fanout")], [queue("log")], [binding("logs", "log", "queue", "")]),
    ]))
    write("definitions", "bad_entries", definitions([
        ("/",
         [exchange("x" * 300, "direct"), exchange("ok", "x-unknown"), ("S", "not a table")],
         [queue("q" * 300), queue("a\0b"), ("F", [("name", "F", [])])],
         [binding("ok", "q" * 300, "queue", "k"), binding("amq.direct", "q", "neither", "r" * 300)]),
        ("v" * 300, [], [], []),
    ], access=False))
    write("definitions", "empty", definitions([]))
    for name, data in connection_seeds().items():
        write("connection", name, data)
    for name, data in qq_snapshot_seeds().items():
        write("qq_snapshot", name, data)


if __name__ == "__main__":
    main()
