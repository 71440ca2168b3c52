"""Shared helpers of the test_messaging_* and test_tutorials modules (no tests of its own):
pika connections to the module's broker, a callback pump that waits for deliveries, an inbox
consumer, a TestCase base with queue/exchange factories, and raw-frame builders for what pika
cannot send (pipelined publishes, chosen body-frame sizes, every field-table type).

One RabbitMQ subtlety shapes `MessagingTestCase.publish`: a passive queue.declare reports
message_count from a call that RabbitMQ's queue process serves before casts already queued
(gen_server2 priorities), so a count read right after an unconfirmed publish can miss it. The
helper therefore publishes on a confirm-mode channel: once the publish is confirmed, the queue
holds the message and every later count includes it.
"""

import base64
import re
import time
import unittest
import uuid

import pika
import pika.exceptions

import harness
from harness import method_frame, header_frame, frame, short, shortstr, octet, FRAME_BODY


def connect(**kwargs):
    """A pika BlockingConnection to the module's broker; kwargs go to ConnectionParameters."""
    return pika.BlockingConnection(harness.module_broker().pika_parameters(**kwargs))


def unique(prefix):
    """A name no other test (or earlier run against the same broker) uses."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def pump(connection, seconds):
    """Dispatch I/O and callbacks for `seconds` (process_data_events may return early)."""
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        connection.process_data_events(time_limit=remaining)


def pump_until(connection, predicate, timeout=5.0):
    """Dispatch until predicate() holds; AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached within %.1f s" % timeout)
        connection.process_data_events(time_limit=0.05)


TOKEN = re.compile(r"[A-Za-z0-9_-]{22}\Z")


def assert_random_names(test, prefix, names):
    """Each name is prefix and a 22-character URL-safe base64 token (128 bits, RabbitMQ's
    rabbit_guid shape), and any two tokens differ in at least 30 bits: random bits differ in
    64 +- 5.7, while a counter or an address leaves most of them equal."""
    bits = []
    for name in names:
        test.assertTrue(name.startswith(prefix), name)
        token = name[len(prefix):]
        test.assertRegex(token, TOKEN, name)
        bits.append(int.from_bytes(base64.urlsafe_b64decode(token + "=="), "big"))
    for i in range(len(bits)):
        for j in range(i):
            differing = bin(bits[i] ^ bits[j]).count("1")
            test.assertGreaterEqual(differing, 30, "%s and %s differ in %d bits only"
                                    % (names[i], names[j], differing))


class Inbox:
    """A consumer callback that records (method, properties, body) and optionally acks."""

    def __init__(self, ack=False):
        self.ack = ack
        self.deliveries = []

    def __call__(self, channel, method, properties, body):
        self.deliveries.append((method, properties, body))
        if self.ack:
            channel.basic_ack(method.delivery_tag)

    def __len__(self):
        return len(self.deliveries)

    @property
    def bodies(self):
        return [body.decode() for _, _, body in self.deliveries]

    @property
    def redelivered(self):
        return [method.redelivered for method, _, _ in self.deliveries]


class MessagingTestCase(unittest.TestCase):
    """A connection and channel per test; named queues and exchanges are deleted afterwards."""

    QUIET = 0.3  # seconds to wait to be sure nothing more arrives

    def setUp(self):
        self.connection = connect()
        self.channel = self.connection.channel()
        self._publisher = None
        self.cleanups_queue = []
        self.cleanups_exchange = []

    def tearDown(self):
        if self.connection.is_open:
            self.connection.close()
        if self.cleanups_queue or self.cleanups_exchange:
            connection = connect()
            channel = connection.channel()
            for name in self.cleanups_queue:
                channel.queue_delete(name)
            for name in self.cleanups_exchange:
                channel.exchange_delete(name)
            connection.close()

    def queue(self, arguments=None, name=""):
        """A fresh exclusive queue (server-named unless name is given)."""
        return self.channel.queue_declare(name, exclusive=True,
                                          arguments=arguments).method.queue

    def shared_queue(self, arguments=None, **kwargs):
        """A named non-exclusive queue, deleted after the test."""
        name = unique("q")
        self.channel.queue_declare(name, arguments=arguments, **kwargs)
        self.cleanups_queue.append(name)
        return name

    def exchange(self, exchange_type, arguments=None, **kwargs):
        """A named exchange of exchange_type, deleted after the test."""
        name = unique("x-" + exchange_type)
        self.channel.exchange_declare(name, exchange_type, arguments=arguments, **kwargs)
        self.cleanups_exchange.append(name)
        return name

    @property
    def publisher(self):
        """A confirm-mode channel: its publishes return once the broker holds the message."""
        if self._publisher is None:
            self._publisher = self.connection.channel()
            self._publisher.confirm_delivery()
        return self._publisher

    def publish(self, queue, bodies, channel=None, **properties):
        """Publish str(body) for each body to queue through the default exchange, confirmed
        (see the module comment) unless another channel is given."""
        channel = channel or self.publisher
        for body in bodies:
            channel.basic_publish("", queue, str(body).encode(),
                                  pika.BasicProperties(**properties) if properties else None)

    def drain(self, queue, channel=None):
        """basic.get with auto-ack until get-empty: [(method, properties, body)]."""
        channel = channel or self.channel
        result = []
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return result
            result.append((method, properties, body))

    def drain_bodies(self, queue, channel=None):
        return [body.decode() for _, _, body in self.drain(queue, channel)]

    def message_count(self, queue):
        """Ready messages (unacked ones excluded), from a passive declare."""
        return self.channel.queue_declare(queue, passive=True).method.message_count

    def assertQueueMissing(self, queue):
        channel = self.connection.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            channel.queue_declare(queue, passive=True)
        self.assertEqual(caught.exception.reply_code, 404)


# ---------------------------------------------------------------------------------------------
# Raw frames

QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
BASIC_CONSUME = (60, 20)
BASIC_CONSUME_OK = (60, 21)
BASIC_PUBLISH = (60, 40)
BASIC_GET = (60, 70)
BASIC_GET_OK = (60, 71)
BASIC_GET_EMPTY = (60, 72)
BASIC_ACK = (60, 80)
CONFIRM_SELECT = (85, 10)
CONFIRM_SELECT_OK = (85, 11)
PASSIVE = 1  # queue.declare bits
EXCLUSIVE = 4
HEADERS_FLAG = 1 << 13  # basic property flag of `headers`


def declare_queue_args(name="", bits=EXCLUSIVE):
    return short(0) + shortstr(name) + octet(bits) + harness.table({})


def consume_args(queue, tag, no_ack=False, exclusive=False):
    bits = (2 if no_ack else 0) | (4 if exclusive else 0)
    return short(0) + shortstr(queue) + shortstr(tag) + octet(bits) + harness.table({})


def publish_frames(channel, exchange, routing_key, body, frame_max=harness.DEFAULT_FRAME_MAX,
                   varied=False, bits=0):
    """basic.publish + content header + body frames no larger than frame_max; varied=True cuts
    the body into pieces of growing sizes (1, 2, ... 64 bytes, then up to the limit)."""
    frames = [method_frame(channel, BASIC_PUBLISH,
                           short(0) + shortstr(exchange) + shortstr(routing_key) + octet(bits)),
              header_frame(channel, 60, len(body))]
    limit = frame_max - 8
    position, piece = 0, 1
    while position < len(body):
        size = min(piece, limit) if varied else limit
        frames.append(frame(FRAME_BODY, channel, body[position:position + size]))
        position += size
        piece = piece + 1 if piece < 64 else limit
    return b"".join(frames)
