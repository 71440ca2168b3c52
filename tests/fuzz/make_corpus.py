#!/usr/bin/env python3
"""tests/fuzz/make_corpus.py: writes the seed corpora of the fuzz targets.

    python3 tests/fuzz/make_corpus.py    # rewrites tests/fuzz/corpus/{frame,table,definitions}/

The frames are what a real client and broker exchange: the handshake, a publish with its
header and body, a delivery, heartbeats, close. Encoded here by hand from the 0-9-1 spec,
independently of the C codec, so a seed also pins the wire format. Input layouts follow the
targets: fuzz_frame takes 2 control bytes (frame_max choice, split seed) then the stream;
fuzz_table takes 1 control byte (bit 0: array) then the contents. fuzz_definitions takes the
contents of store/definitions after its header, laid out as broker/amqp/server_vhosts.c and
broker/model/vhost_definitions.c write them.
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


def write(directory, name, data):
    path = os.path.join(HERE, "corpus", directory)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as handle:
        handle.write(data)


def main():
    # Control bytes: frame_max choice (0 none, 1 4096, 2 131072) and split seed.
    write("frame", "handshake", b"\x02\x01" + handshake())
    write("frame", "publish", b"\x02\x07" + publish())
    write("frame", "deliver", b"\x01\x33" + deliver())
    write("frame", "close", b"\x00\x10" + close())
    write("frame", "heartbeat", b"\x01\x00" + frame(8, 0, b""))
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


if __name__ == "__main__":
    main()
