"""A data directory written by a stranger: the broker starts, says what it skipped, and serves.

store/definitions and the segments are read back at start-up; everything in them is checked as
if a stranger wrote it (docs/storage.md, Recovery). These tests write crafted files into the
data directory of a stopped broker, start it again and check that it stays up, logs each
problem with what and where, recreates the good entries beside the bad ones and serves AMQP:

- definitions with a 1000-byte exchange name, a 700-byte durable queue name, a 300-byte binding
  key, a 1000-byte vhost name and fields of the wrong type, beside good entries;
- a segment with an ENQUEUE record for a 700-byte queue name and MESSAGE records whose stored
  exchange length or content header lies, enqueued on a good queue;
- definitions files that are truncated, fail their checksum, or hold a table whose lengths lie:
  the broker starts with the defaults and keeps the file as store/definitions.damaged.

Not runnable against an external broker: the test must own the process and its data dir.
"""

import os
import struct
import unittest

import pika

import harness
from test_durability import RestartableBroker

# ---- CRC32C (Castagnoli), as storage/crc32c.c computes it -------------------------------------

_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---- field tables, with exact control over every type and length --------------------------------

def s(value):
    """A long string value ('S')."""
    value = value.encode() if isinstance(value, str) else value
    return b"S" + struct.pack(">I", len(value)) + value


def flag(value):
    return b"t" + bytes([1 if value else 0])


def table_value(fields):
    body = table(fields)
    return b"F" + struct.pack(">I", len(body)) + body


def array(items):
    body = b"".join(items)
    return b"A" + struct.pack(">I", len(body)) + body


def table(fields):
    """Contents of a table (no length prefix); fields is a list of (key, encoded value)."""
    out = b""
    for key, value in fields:
        key = key.encode()
        out += bytes([len(key)]) + key + value
    return out


def exchange(name, kind="direct"):
    return table_value([("name", s(name)), ("type", s(kind)), ("auto_delete", flag(False)),
                        ("internal", flag(False)), ("arguments", table_value([]))])


def queue(name, arguments=None):
    return table_value([("name", s(name)), ("auto_delete", flag(False)),
                        ("arguments", arguments if arguments is not None else table_value([]))])


def binding(source, destination, key):
    return table_value([("source", s(source)), ("destination", s(destination)),
                        ("destination_type", s("queue")), ("routing_key", s(key)),
                        ("arguments", table_value([]))])


def definitions_file(blob):
    """The bytes of store/definitions holding blob (storage/definitions.c)."""
    header = b"WRNDEF\r\n" + struct.pack("<IIQ", 1, 0, len(blob))
    return header + struct.pack("<II", crc32c(header + blob), 0) + blob


# ---- segment records (storage/segment_log.c) ------------------------------------------------

REC_MESSAGE, REC_ENQUEUE = 1, 2


def segment_header(segment_id, max_msg_id):
    head = b"WRNSEG\r\n" + struct.pack("<IIQQ", 1, 0, segment_id, max_msg_id)
    return head + struct.pack("<II", crc32c(head), 0)


def record(rec_type, payload):
    length = struct.pack("<I", 1 + len(payload))
    body = bytes([rec_type]) + payload
    return length + struct.pack("<I", crc32c(length + body)) + body


def enqueue(msg_id, vhost, queue_name):
    key = vhost.encode() + b"\0" + (queue_name.encode() if isinstance(queue_name, str) else queue_name)
    return record(REC_ENQUEUE, struct.pack("<QI", msg_id, len(key)) + key)


def stored_message(msg_id, exchange_name=b"", routing_key=b"", header=None, body=b"", exchange_len=None):
    """A MESSAGE record as broker/model/message.c serialises one; the lengths may be made to lie."""
    if header is None:
        header = struct.pack(">HHQH", 60, 0, len(body), 0x1000) + bytes([2])  # delivery_mode 2
    data = bytes([1]) + struct.pack(">Q", 0)
    data += bytes([len(exchange_name) if exchange_len is None else exchange_len]) + exchange_name
    data += bytes([len(routing_key)]) + routing_key
    data += struct.pack(">I", len(header)) + header + body
    return record(REC_MESSAGE, struct.pack("<Q", msg_id) + data)


@harness.skip_if_external("writes into the broker's data directory")
class CraftedStoreTest(unittest.TestCase):
    def setUp(self):
        self.broker = RestartableBroker().start()
        self.store = os.path.join(self.broker.data_dir, "data", "store")

    def tearDown(self):
        self.broker.stop()  # exit status 0, no sanitizer report

    def connect(self):
        return pika.BlockingConnection(self.broker.pika_parameters())

    def stop_broker(self):
        status = self.broker.terminate()
        self.assertEqual(status, 0, self.broker.stderr_text()[-5000:])
        self.broker._stderr_file.close()
        self.broker._stderr_file = None

    def log_since(self, offset):
        return self.broker.stderr_text()[offset:]

    def restart_with(self, files):
        """Stops the broker, writes {name in store/: bytes}, starts it again; returns its new log."""
        self.stop_broker()
        offset = len(self.broker.stderr_text())
        for name, data in files.items():
            with open(os.path.join(self.store, name), "wb") as f:
                f.write(data)
        self.broker.relaunch()
        harness.assert_broker_alive(self, self.broker)
        return lambda: self.log_since(offset)

    def test_crafted_definitions_and_segment_records_are_skipped_with_a_log_line(self):
        conn = self.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare("good-x", "direct", durable=True)
        ch.queue_declare("good-q", durable=True)
        ch.queue_bind("good-q", "good-x", "k")
        for i in range(3):
            ch.basic_publish("good-x", "k", b"kept-%d" % i, pika.BasicProperties(delivery_mode=2))
        conn.close()

        long_queue = "q" * 700
        vhost_defs = table([
            ("exchanges", array([exchange("x" * 1000), exchange("good-x"), exchange("other-x", "fanout")])),
            ("queues", array([queue(long_queue), queue("good-q"),
                              queue("bad-args", arguments=s("\x05hello")), queue("a\0b")])),
            ("bindings", array([binding("good-x", "good-q", "k"), binding("good-x", "good-q", "r" * 300),
                                binding("other-x", long_queue, "")])),
        ])
        blob = table([
            ("vhosts", array([
                table_value([("name", s("/")), ("definitions", table_value_raw(vhost_defs))]),
                table_value([("name", s("v" * 1000)), ("definitions", table_value([]))]),
                table_value([("name", s("/")), ("definitions", s("not a table"))]),
            ])),
        ])
        existing = sorted(n for n in os.listdir(self.store) if n.endswith(".seg"))
        newest = int(existing[-1].split(".")[0])
        bad_ids = (1_000_001, 1_000_002, 1_000_003)
        segment = segment_header(newest + 1, 1_000_000)
        segment += enqueue(1, "/", long_queue)  # message 1 is one of the three published above
        segment += stored_message(bad_ids[0], b"good-x", b"k", body=b"liar", exchange_len=250)
        segment += enqueue(bad_ids[0], "/", "good-q")
        header_lies = struct.pack(">HHQH", 60, 0, 1 << 40, 0)  # announces a 1 TiB body
        segment += stored_message(bad_ids[1], b"good-x", b"k", header=header_lies, body=b"liar")
        segment += enqueue(bad_ids[1], "/", "good-q")
        wrong_class = struct.pack(">HHQH", 10, 0, 4, 0)
        segment += stored_message(bad_ids[2], b"good-x", b"k", header=wrong_class, body=b"liar")
        segment += enqueue(bad_ids[2], "/", "good-q")

        log = self.restart_with({"definitions": definitions_file(blob), "%020d.seg" % (newest + 1): segment})

        conn = self.connect()
        ch = conn.channel()
        bodies = []
        while True:
            method, _, body = ch.basic_get("good-q", auto_ack=True)
            if method is None:
                break
            bodies.append(body)
        self.assertEqual(sorted(bodies), [b"kept-0", b"kept-1", b"kept-2"])
        # The good binding was recreated; the good exchange routes.
        ch.confirm_delivery()
        ch.basic_publish("good-x", "k", b"after", pika.BasicProperties(delivery_mode=2))
        method, _, body = ch.basic_get("good-q", auto_ack=True)
        self.assertEqual(body, b"after")
        ch.exchange_declare("other-x", "fanout", durable=True, passive=True)
        for missing in ("bad-args",):
            ch = conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
                ch.queue_declare(missing, passive=True)
            self.assertEqual(caught.exception.reply_code, 404)
        conn.close()

        text = log()
        expected = [
            "exchanges entry 0 ('" + "x" * 64 + "...') skipped: 'name' of 1000 bytes: the name is longer than 255",
            "queues entry 0 ('" + "q" * 64 + "...') skipped: 'name' of 700 bytes: the name is longer than 255",
            "queues entry 2 ('bad-args') skipped: 'arguments' is not a table",
            "queues entry 3 ('a\\x00b') skipped: 'name' of 3 bytes: the name contains a zero byte",
            "bindings entry 1 ('good-q') skipped: 'routing_key' of 300 bytes: longer than 255 bytes",
            "bindings entry 2 ('" + "q" * 64 + "...') skipped: 'destination' of 700 bytes",
            "vhost entry 1 ('" + "v" * 64 + "...') of the definitions skipped: the name is longer than 255",
            "vhost entry 2 ('/') of the definitions skipped: 'definitions' is missing or not a table",
            "name a queue that cannot exist ('/\\x00" + "q" * 62 + "...', 702 bytes: the name is longer than 255",
        ]
        for line in expected:
            self.assertIn(line, text)
        for msg_id in bad_ids:
            self.assertIn("message %d does not decode; dropped" % msg_id, text)

    def test_unreadable_definitions_leave_the_defaults(self):
        good = table([("vhosts", array([table_value([("name", s("/")), ("definitions", table_value([
            ("queues", array([queue("from-file")]))]))])]))])
        lying = table([("vhosts", b"A" + struct.pack(">I", 0xFFFFFFF0))])  # an array past the end
        deep = table_value([])
        for _ in range(600):  # past the 512 levels a table may nest (protocol/proto.h)
            deep = table_value([("a", deep)])
        too_deep = table([("vhosts", array([deep]))])
        unknown_type = table([("vhosts", b"Z\0\0\0\0")])
        bad_crc = bytearray(definitions_file(good))
        bad_crc[-1] ^= 1
        huge_length = bytearray(definitions_file(good))
        huge_length[16:24] = struct.pack("<Q", 1 << 62)
        cases = [
            ("truncated", definitions_file(good)[:-3], "bad header or checksum"),
            ("bad checksum", bytes(bad_crc), "bad header or checksum"),
            ("length lies", bytes(huge_length), "bad header or checksum"),
            ("header only", definitions_file(good)[:20], "bad header or checksum"),
            ("table lengths lie", definitions_file(lying), "definitions malformed"),
            ("nested too deep", definitions_file(too_deep), "definitions malformed"),
            ("unknown field type", definitions_file(unknown_type), "definitions malformed"),
        ]
        for what, data, message in cases:
            with self.subTest(what):
                log = self.restart_with({"definitions": data})
                text = log()
                self.assertIn(message, text)
                self.assertIn("kept as", text)  # set aside for inspection, not overwritten later
                with open(os.path.join(self.store, "definitions.damaged"), "rb") as f:
                    self.assertEqual(f.read(), data)
                conn = self.connect()
                ch = conn.channel()
                with self.assertRaises(pika.exceptions.ChannelClosedByBroker):
                    ch.queue_declare("from-file", passive=True)
                conn.close()
        # And the file the broker accepts, to show the cases above failed for their flaw alone.
        self.restart_with({"definitions": definitions_file(good)})
        conn = self.connect()
        conn.channel().queue_declare("from-file", passive=True)
        conn.close()


def table_value_raw(contents):
    """A table value from already-encoded contents."""
    return b"F" + struct.pack(">I", len(contents)) + contents


if __name__ == "__main__":
    unittest.main()
