"""Message content: 5 MiB bodies over many body frames (frame_max 131072 and 4096, the server
splitting to the client's frame_max), empty bodies, and every basic property and field-table
type round-tripping unchanged; user_id must name the authenticated user.

Every expectation was checked against RabbitMQ 3.10.8 (WARREN_TEST_URL).
"""

import datetime
import decimal
import random
import struct
import unittest

import pika
import pika.exceptions

import harness
from harness import (RawConnection, Reader, method_frame, header_frame, frame, short, long_,
                     shortstr, longstr, octet, FRAME_BODY, FRAME_HEADER)
from test_messaging_support import (
    Inbox, MessagingTestCase, connect, pump_until, publish_frames, declare_queue_args,
    BASIC_GET, BASIC_GET_EMPTY, BASIC_GET_OK, BASIC_PUBLISH, HEADERS_FLAG, QUEUE_DECLARE,
    QUEUE_DECLARE_OK)


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


# ---------------------------------------------------------------------------------------------
# Large messages and properties


def seeded_body(size, seed=7):
    return random.Random(seed).randbytes(size)


class LargeMessageTest(MessagingTestCase):
    SIZE = 5 * 1024 * 1024

    def round_trip(self, connection):
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        body = seeded_body(self.SIZE)
        channel.basic_publish("", queue, body)
        inbox = Inbox()
        channel.basic_consume(queue, inbox, auto_ack=True)
        pump_until(connection, lambda: len(inbox) == 1, timeout=20)
        self.assertEqual(len(inbox.deliveries[0][2]), self.SIZE)
        self.assertTrue(inbox.deliveries[0][2] == body, "5 MiB body corrupted")

    def test_5_mib_body_round_trips_with_the_default_frame_max(self):
        self.assertEqual(self.connection._impl.params.frame_max, harness.DEFAULT_FRAME_MAX)
        self.round_trip(self.connection)

    def test_5_mib_body_round_trips_with_frame_max_4096(self):
        connection = connect(frame_max=4096)
        try:
            self.round_trip(connection)
        finally:
            connection.close()

    def test_server_splits_bodies_to_the_negotiated_frame_max_of_4096(self):
        body = seeded_body(self.SIZE, seed=11)
        with RawConnection(timeout=20) as raw:
            raw.handshake(frame_max=4096)
            raw.open_channel(1)
            raw.send(method_frame(1, QUEUE_DECLARE, declare_queue_args()))
            queue = raw.read_method(QUEUE_DECLARE_OK).args.shortstr()
            # The client's own body frames vary in size (1 byte up to the limit).
            raw.send(publish_frames(1, "", queue, body, frame_max=4096, varied=True))
            raw.send(method_frame(1, BASIC_GET, short(0) + shortstr(queue) + octet(1)))
            raw.read_method(BASIC_GET_OK)
            header = raw.read_frame()
            self.assertEqual(header.type, FRAME_HEADER)
            self.assertEqual(struct.unpack(">Q", header.payload[4:12])[0], self.SIZE)
            chunks = []
            received = 0
            while received < self.SIZE:
                f = raw.read_frame()
                self.assertEqual(f.type, FRAME_BODY)
                self.assertLessEqual(len(f.payload) + 8, 4096, "body frame over frame_max")
                chunks.append(f.payload)
                received += len(f.payload)
            self.assertEqual(received, self.SIZE)
            self.assertTrue(b"".join(chunks) == body, "body corrupted")
            raw.close_connection()

    def test_empty_body_round_trips_without_body_frames(self):
        with RawConnection() as raw:
            raw.handshake()
            raw.open_channel(1)
            raw.send(method_frame(1, QUEUE_DECLARE, declare_queue_args()))
            queue = raw.read_method(QUEUE_DECLARE_OK).args.shortstr()
            raw.send(publish_frames(1, "", queue, b""))
            raw.send(method_frame(1, BASIC_GET, short(0) + shortstr(queue) + octet(1)))
            raw.read_method(BASIC_GET_OK)
            header = raw.read_frame()
            self.assertEqual((header.type, struct.unpack(">Q", header.payload[4:12])[0]),
                             (FRAME_HEADER, 0))
            raw.send(method_frame(1, BASIC_GET, short(0) + shortstr(queue) + octet(1)))
            self.assertEqual(raw.read_method().method, BASIC_GET_EMPTY)  # not a body frame
            raw.close_connection()


class PropertiesTest(MessagingTestCase):
    def test_every_basic_property_round_trips_unchanged(self):
        queue = self.queue()
        headers = {
            "string": "s", "utf8": "h\u00e9llo \u2603", "bytes": b"\x00\xff", "int": -5,
            "int32-max": 2 ** 31 - 1, "int64": 2 ** 40, "true": True, "false": False,
            "decimal": decimal.Decimal("3.14"),
            "timestamp": datetime.datetime(2020, 1, 2, 3, 4, 5),
            "table": {"a": {"b": [1, "x", None]}}, "empty-table": {},
            "array": [1, 2 ** 40, "s", b"b", True, {"k": "v"}, [1, [2]]], "empty-array": [],
            "void": None,
            # pika decodes a negative 64-bit 'l' as unsigned, so none is sent here; the raw
            # test below covers it.
        }
        sent = pika.BasicProperties(
            content_type="application/json", content_encoding="gzip", headers=headers,
            delivery_mode=2, priority=7, correlation_id="corr-1", reply_to="reply-queue",
            expiration="60000", message_id="msg-1", timestamp=1700000000, type="kind",
            user_id=harness.module_broker().user, app_id="app-1", cluster_id="cluster-1")
        self.channel.basic_publish("", queue, b"body", sent)
        (_, received, body), = self.drain(queue)
        self.assertEqual(body, b"body")
        for name in ("content_type", "content_encoding", "delivery_mode", "priority",
                     "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                     "type", "user_id", "app_id", "cluster_id"):
            self.assertEqual(getattr(received, name), getattr(sent, name), name)
        self.assertEqual(received.headers, headers)

    def test_absent_properties_stay_absent(self):
        queue = self.queue()
        self.channel.basic_publish("", queue, b"plain")
        (_, received, _), = self.drain(queue)
        for name in ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
                     "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                     "type", "user_id", "app_id", "cluster_id"):
            self.assertIsNone(getattr(received, name), name)

    def test_user_id_must_equal_the_authenticated_user(self):
        queue = self.queue()
        self.channel.basic_publish("", queue, b"ok",
                                   pika.BasicProperties(user_id=harness.module_broker().user))
        self.assertEqual(self.drain_bodies(queue), ["ok"])
        other = self.connection.channel()
        other.basic_publish("", queue, b"forged", pika.BasicProperties(user_id="not-guest"))
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            other.queue_declare("", exclusive=True)
        self.assertEqual((caught.exception.reply_code, caught.exception.reply_text),
                         (406, "PRECONDITION_FAILED - user_id property set to 'not-guest' but "
                               "authenticated user was '%s'" % harness.module_broker().user))
        self.assertEqual(self.drain_bodies(queue), [])

    def test_every_field_table_type_round_trips_byte_for_byte(self):
        # Types pika cannot send: b B s u i f d (and a negative 'l'); in one header table.
        fields = (field("b", b"b", struct.pack(">b", -3))
                  + field("B", b"B", struct.pack(">B", 200))
                  + field("s", b"s", struct.pack(">h", -300))
                  + field("u", b"u", struct.pack(">H", 60000))
                  + field("I", b"I", struct.pack(">i", -70000))
                  + field("i", b"i", struct.pack(">I", 4000000000))
                  + field("l", b"l", struct.pack(">q", -2 ** 40))
                  + field("f", b"f", struct.pack(">f", 1.5))
                  + field("d", b"d", struct.pack(">d", 2.25))
                  + field("D", b"D", struct.pack(">Bi", 2, 314))
                  + field("S", b"S", longstr("str"))
                  + field("x", b"x", longstr(b"\x01\x02"))
                  + field("t", b"t", b"\x01")
                  + field("T", b"T", struct.pack(">Q", 1700000000))
                  + field("V", b"V", b"")
                  + field("A", b"A", longstr(b"b\x05" + b"S" + longstr("a")))
                  + field("F", b"F", long_(0)))
        properties = long_(len(fields)) + fields
        queue = self.shared_queue()
        with RawConnection() as raw:
            raw.handshake()
            raw.open_channel(1)
            raw.send(method_frame(1, BASIC_PUBLISH, short(0) + shortstr("") + shortstr(queue)
                                  + octet(0)))
            raw.send(header_frame(1, 60, 4, flags=HEADERS_FLAG, properties=properties))
            raw.send(frame(FRAME_BODY, 1, b"body"))
            raw.close_connection()
        with RawConnection() as raw:
            raw.handshake()
            raw.open_channel(1)
            raw.send(method_frame(1, BASIC_GET, short(0) + shortstr(queue) + octet(1)))
            raw.read_method(BASIC_GET_OK)
            header = raw.read_frame()
            self.assertEqual(struct.unpack(">H", header.payload[12:14])[0], HEADERS_FLAG)
            decoded = Reader(header.payload[14:]).table()
            self.assertEqual(decoded, {
                "b": -3, "B": 200, "s": -300, "u": 60000, "I": -70000, "i": 4000000000,
                "l": -2 ** 40, "f": 1.5, "d": 2.25, "D": (2, 314), "S": "str", "x": b"\x01\x02",
                "t": True, "T": 1700000000, "V": None, "A": [5, "a"], "F": {}})
            self.assertEqual(header.payload[14:], properties, "field types re-encoded")
            self.assertEqual(raw.read_frame().payload, b"body")
            raw.close_connection()


def field(name, tag, value):
    return shortstr(name) + tag + value


if __name__ == "__main__":
    unittest.main()
