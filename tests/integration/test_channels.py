"""Channel lifecycle: many channels on one connection, the channel_max limit, reuse of a
closed channel number, channel.flow, and what a client's connection.close releases before its
close-ok. Checked against RabbitMQ 3.10.8 (WARREN_TEST_URL)."""

import unittest

import pika
import pika.exceptions

import harness
from harness import RawConnection, method_frame, octet, shortstr, short, table


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


class ManyChannelsTest(unittest.TestCase):
    def setUp(self):
        self.connection = pika.BlockingConnection(harness.module_broker().pika_parameters())

    def tearDown(self):
        if self.connection.is_open:
            self.connection.close()

    def test_1000_channels_opened_and_closed_one_after_another(self):
        for _ in range(1000):
            channel = self.connection.channel()
            self.assertTrue(channel.is_open)
            channel.close()
        self.assertTrue(self.connection.is_open)
        self.connection.channel().close()

    def test_1000_channels_open_at_once(self):
        channels = [self.connection.channel() for _ in range(1000)]
        self.assertEqual(sorted(c.channel_number for c in channels), list(range(1, 1001)))
        for channel in channels:
            channel.basic_qos(prefetch_count=10)  # each channel answers while all are open
        for channel in channels:
            channel.close()
        self.assertTrue(self.connection.is_open)

    def test_1000_channels_pipelined_on_a_raw_socket(self):
        with RawConnection() as raw:
            raw.handshake()
            raw.send(b"".join(method_frame(n, harness.CHANNEL_OPEN, shortstr(""))
                              for n in range(1, 1001)))
            # Replies on different channels may be reordered (RabbitMQ runs a process per channel).
            opened = [raw.read_method(harness.CHANNEL_OPEN_OK).channel for _ in range(1000)]
            self.assertEqual(sorted(opened), list(range(1, 1001)))
            raw.send(b"".join(method_frame(n, harness.CHANNEL_CLOSE, harness.close_args())
                              for n in range(1, 1001)))
            closed = [raw.read_method(harness.CHANNEL_CLOSE_OK).channel for _ in range(1000)]
            self.assertEqual(sorted(closed), list(range(1, 1001)))
            raw.close_connection()


class ChannelMaxTest(unittest.TestCase):
    """RabbitMQ enforces channel_max as a COUNT of open channels, not as the highest channel
    number: with 2047 negotiated it opens channel 2048 or 65535 on a fresh connection, and
    refuses only the 2048th simultaneously open channel, whatever its number, with connection.close
    530 "NOT_ALLOWED - number of channels opened (2047) has reached the negotiated channel_max
    (2047)", class 0 method 0 (not 504, and not channel.close). Clients never number a channel
    above channel_max, so only the count rule is pinned here."""

    def tearDown(self):
        harness.assert_broker_alive(self)

    def open_until_refused(self, channel_max, negotiate=None):
        with RawConnection() as raw:
            raw.handshake(channel_max=negotiate)
            raw.send(b"".join(method_frame(n, harness.CHANNEL_OPEN, shortstr(""))
                              for n in range(1, channel_max + 1)))
            opened = [raw.read_method(harness.CHANNEL_OPEN_OK).channel
                      for _ in range(channel_max)]
            self.assertEqual(sorted(opened), list(range(1, channel_max + 1)))
            raw.send(method_frame(channel_max + 1, harness.CHANNEL_OPEN, shortstr("")))
            close = raw.expect_connection_close()
            self.assertTrue(raw.wait_closed(5.0))
            return close

    def test_opening_channel_2048_with_2047_open_closes_connection_530(self):
        close = self.open_until_refused(harness.DEFAULT_CHANNEL_MAX)
        self.assertEqual(close.reply_code, harness.NOT_ALLOWED)
        self.assertTrue(close.reply_text.startswith("NOT_ALLOWED"), close.reply_text)

    def test_client_lowered_channel_max_is_enforced(self):
        close = self.open_until_refused(10, negotiate=10)
        self.assertEqual(close.reply_code, harness.NOT_ALLOWED)

    def test_pika_refuses_to_exceed_channel_max_itself(self):
        # pika allocates numbers 1..channel_max and raises NoFreeChannels beyond: no frame sent.
        connection = pika.BlockingConnection(
            harness.module_broker().pika_parameters(channel_max=5))
        try:
            channels = [connection.channel() for _ in range(5)]
            with self.assertRaises(pika.exceptions.NoFreeChannels):
                connection.channel()
            channels[0].close()
            self.assertTrue(connection.channel().is_open)
        finally:
            connection.close()


class ChannelStateTest(unittest.TestCase):
    def tearDown(self):
        harness.assert_broker_alive(self)

    def test_closed_channel_number_can_be_reopened(self):
        with RawConnection() as raw:
            raw.handshake()
            for _ in range(3):
                raw.open_channel(7)
                raw.send(method_frame(7, harness.CHANNEL_CLOSE, harness.close_args()))
                raw.assert_channel(raw.read_method(harness.CHANNEL_CLOSE_OK), 7)
            raw.close_connection()

    def test_channel_open_ok_carries_empty_channel_id(self):
        with RawConnection() as raw:
            raw.handshake()
            frame = raw.open_channel(1)
            self.assertEqual(frame.args.longstr(), b"")
            raw.close_connection()

    def test_channel_flow_active_true_answers_flow_ok_true(self):
        with RawConnection() as raw:
            raw.handshake()
            raw.open_channel(1)
            raw.send(method_frame(1, harness.CHANNEL_FLOW, harness.octet(1)))
            frame = raw.read_method(harness.CHANNEL_FLOW_OK)
            raw.assert_channel(frame, 1)
            self.assertEqual(frame.args.octet() & 1, 1)
            raw.close_connection()

    def test_pika_channel_flow_true(self):
        connection = pika.BlockingConnection(harness.module_broker().pika_parameters())
        try:
            self.assertIs(connection.channel().flow(True), True)
        finally:
            connection.close()

    def test_channel_flow_active_false_is_not_implemented(self):
        # RabbitMQ: connection.close 540 "NOT_IMPLEMENTED - active=false", class 20 method 20 —
        # a hard error, not a channel.close.
        with RawConnection() as raw:
            raw.handshake()
            raw.open_channel(1)
            raw.send(method_frame(1, harness.CHANNEL_FLOW, harness.octet(0)))
            close = raw.expect_connection_close()
            self.assertEqual(close.reply_code, harness.NOT_IMPLEMENTED)
            self.assertEqual((close.class_id, close.method_id), harness.CHANNEL_FLOW)
            self.assertTrue(raw.wait_closed(5.0))



QUEUE_DECLARE, QUEUE_DECLARE_OK = (50, 10), (50, 11)
BASIC_CONSUME, BASIC_CONSUME_OK, BASIC_DELIVER = (60, 20), (60, 21), (60, 60)


class ConnectionCloseTest(unittest.TestCase):
    def tearDown(self):
        harness.assert_broker_alive(self)

    def test_close_ok_comes_after_the_connection_let_go_of_everything(self):
        # As RabbitMQ: once close-ok arrives, the connection's exclusive queues and exclusive
        # consumers are gone and its unacknowledged messages are back, even while its socket
        # stays open (a client that reconnects at once, as amqp091-go's reconnect example does,
        # must not meet its old self: 405 or 403 "in exclusive use").
        connection = pika.BlockingConnection(harness.module_broker().pika_parameters())
        channel = connection.channel()
        channel.queue_declare("cc.shared")
        channel.queue_purge("cc.shared")
        channel.basic_publish("", "cc.shared", b"held")
        with RawConnection() as raw:
            raw.handshake()
            raw.open_channel(1)
            raw.send(method_frame(1, QUEUE_DECLARE, short(0) + shortstr("cc.mine") + octet(4) + table({})))
            raw.read_method(QUEUE_DECLARE_OK)
            raw.send(method_frame(1, BASIC_CONSUME, short(0) + shortstr("cc.shared") + shortstr("t") + octet(4)
                                  + table({})))
            raw.read_method(BASIC_CONSUME_OK)
            raw.read_method(BASIC_DELIVER)  # left unacknowledged
            raw.send(method_frame(0, harness.CONNECTION_CLOSE, harness.close_args()))
            while raw.read_frame().method != harness.CONNECTION_CLOSE_OK:
                pass  # the delivery's header and body
            # The socket is still open: nothing may be left of that connection.
            channel.queue_declare("cc.mine", exclusive=True)
            method, _props, body = channel.basic_get("cc.shared", auto_ack=True)
            self.assertEqual((body, method.redelivered), (b"held", True))
            channel.basic_consume("cc.shared", lambda *args: None, exclusive=True)
        connection.close()

if __name__ == "__main__":
    unittest.main()
