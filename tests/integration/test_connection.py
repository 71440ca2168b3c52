"""Connection lifecycle: handshake, server properties, tune negotiation, authentication, close
from either side. Every expectation was checked against RabbitMQ 3.10.8 (WARREN_TEST_URL)."""

import signal
import socket
import time
import unittest

import pika
import pika.exceptions

import harness
from harness import RawConnection, method_frame


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


class HandshakeTest(unittest.TestCase):
    def test_pika_connects_opens_channel_and_disconnects(self):
        connection = pika.BlockingConnection(harness.module_broker().pika_parameters())
        self.assertTrue(connection.is_open)
        channel = connection.channel()
        self.assertTrue(channel.is_open)
        channel.close()
        connection.close()
        self.assertTrue(connection.is_closed)

    def test_start_announces_0_9_server_properties_mechanisms_and_locales(self):
        with RawConnection() as raw:
            start = raw.read_start()
        self.assertEqual((start["version_major"], start["version_minor"]), (0, 9))
        properties = start["server_properties"]
        for key in ("product", "version", "platform"):
            self.assertIsInstance(properties.get(key), str, key)
            self.assertTrue(properties[key], key)
        # RabbitMQ 3.10 also advertises consumer_priorities and sends cluster_name, copyright and
        # information; only the capabilities Warren promises are pinned here.
        capabilities = properties.get("capabilities")
        self.assertIsInstance(capabilities, dict)
        for capability in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                           "consumer_cancel_notify", "connection.blocked",
                           "authentication_failure_close", "per_consumer_qos", "direct_reply_to"):
            self.assertIs(capabilities.get(capability), True, capability)
        self.assertIn("PLAIN", start["mechanisms"])
        self.assertIn("AMQPLAIN", start["mechanisms"])
        self.assertIn("en_US", start["locales"])

    def test_tune_proposes_rabbitmq_defaults(self):
        with RawConnection() as raw:
            tune = raw.handshake()
        self.assertEqual(tune, (harness.DEFAULT_CHANNEL_MAX, harness.DEFAULT_FRAME_MAX,
                                harness.DEFAULT_HEARTBEAT))

    def test_handshake_sent_one_byte_per_write_is_reassembled(self):
        with RawConnection() as raw:
            for byte in harness.PROTOCOL_HEADER:
                raw.send(bytes([byte]))
            raw.read_method(harness.CONNECTION_START)
            script = (method_frame(0, harness.CONNECTION_START_OK, harness.start_ok_args())
                      + method_frame(0, harness.CONNECTION_TUNE_OK,
                                     harness.tune_ok_args(2047, 131072, 0))
                      + method_frame(0, harness.CONNECTION_OPEN, harness.open_args()))
            for i in range(len(script)):
                raw.send(script[i:i + 1])
            raw.read_method(harness.CONNECTION_TUNE)
            raw.read_method(harness.CONNECTION_OPEN_OK)
            raw.open_channel(1)
            raw.close_connection()

    def test_amqplain_login_is_accepted(self):
        # AMQPLAIN's response is a field table without its length prefix.
        response = harness.table({"LOGIN": "guest", "PASSWORD": "guest"})[4:]
        args = (harness.table({"product": "t"}) + harness.shortstr("AMQPLAIN")
                + harness.longstr(response) + harness.shortstr("en_US"))
        with RawConnection() as raw:
            raw.read_start()
            raw.send(method_frame(0, harness.CONNECTION_START_OK, args))
            raw.read_method(harness.CONNECTION_TUNE)


class TuneNegotiationTest(unittest.TestCase):
    """pika 1.2 sends its own heartbeat value in tune-ok whenever one is given (0 disables,
    even above the server's 60); only heartbeat=None takes the server's proposal."""

    def negotiated(self, **kwargs):
        connection = pika.BlockingConnection(harness.module_broker().pika_parameters(**kwargs))
        try:
            params = connection._impl.params
            return params.heartbeat, params.channel_max, params.frame_max
        finally:
            connection.close()

    def test_pika_without_heartbeat_takes_the_servers_60(self):
        self.assertEqual(self.negotiated(heartbeat=None), (60, 2047, 131072))

    def test_pika_heartbeat_5_gets_5(self):
        self.assertEqual(self.negotiated(heartbeat=5)[0], 5)

    def test_pika_heartbeat_0_disables_heartbeats(self):
        self.assertEqual(self.negotiated(heartbeat=0)[0], 0)

    def test_tune_ok_heartbeat_above_the_proposal_is_accepted(self):
        # RabbitMQ does not cap the client's heartbeat at its own 60 (pika sends 120 as asked).
        with RawConnection() as raw:
            raw.handshake(heartbeat=120)
            raw.open_channel(1)

    def test_lower_channel_max_and_frame_max_are_accepted(self):
        with RawConnection() as raw:
            raw.handshake(channel_max=10, frame_max=4096)
            raw.open_channel(1)
            raw.close_connection()


class AuthenticationTest(unittest.TestCase):
    def tearDown(self):
        harness.assert_broker_alive(self)

    def test_wrong_password_is_refused_with_403(self):
        broker = harness.module_broker()
        parameters = broker.pika_parameters(
            credentials=pika.PlainCredentials(broker.user, "wrong-password"))
        with self.assertRaises(pika.exceptions.ProbableAuthenticationError) as caught:
            pika.BlockingConnection(parameters)
        self.assertIn("(403)", str(caught.exception))

    def test_wrong_password_raw_gets_connection_close_403(self):
        # Sent because the client announces authentication_failure_close. RabbitMQ's text:
        # "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details
        # see the broker logfile."; it then closes the socket ~3 s later whatever the client does.
        with RawConnection() as raw:
            raw.read_start()
            raw.send(method_frame(0, harness.CONNECTION_START_OK,
                                  harness.start_ok_args("guest", "wrong-password")))
            close = raw.expect_connection_close(reply=False)
            self.assertEqual(close.reply_code, harness.ACCESS_REFUSED)
            self.assertTrue(close.reply_text.startswith("ACCESS_REFUSED"), close.reply_text)
            self.assertTrue(raw.wait_closed(6.0))

    def test_wrong_password_without_capability_closes_socket_silently(self):
        # Without authentication_failure_close RabbitMQ sends nothing and closes the socket
        # after a 3-s delay (its brute-force brake), as the 0-9-1 spec asks.
        properties = {"product": "t", "capabilities": {"authentication_failure_close": False}}
        with RawConnection() as raw:
            raw.read_start()
            raw.send(method_frame(0, harness.CONNECTION_START_OK, harness.start_ok_args(
                "guest", "wrong-password", client_properties=properties)))
            with self.assertRaises(harness.PeerClosed):
                raw.read_frame(timeout=6.0)

    def test_unknown_user_is_refused_with_403(self):
        parameters = harness.module_broker().pika_parameters(
            credentials=pika.PlainCredentials("no-such-user", "x"))
        with self.assertRaises(pika.exceptions.ProbableAuthenticationError) as caught:
            pika.BlockingConnection(parameters)
        self.assertIn("(403)", str(caught.exception))

    def test_unsupported_mechanism_gets_no_tune_and_socket_closes(self):
        # RabbitMQ closes the socket without connection.close (after 3 s).
        with RawConnection() as raw:
            raw.read_start()
            raw.send(method_frame(0, harness.CONNECTION_START_OK,
                                  harness.start_ok_args(mechanism="CRAM-MD5")))
            try:
                close = raw.expect_connection_close(timeout=6.0, reply=False)
                self.assertIn(close.reply_code, (harness.ACCESS_REFUSED, harness.NOT_ALLOWED,
                                                 harness.COMMAND_INVALID))
            except harness.PeerClosed:
                pass
            self.assertTrue(raw.wait_closed(6.0))

    def test_unknown_vhost_is_refused_with_530(self):
        parameters = harness.module_broker().pika_parameters(virtual_host="no-such-vhost")
        with self.assertRaises(pika.exceptions.ProbableAccessDeniedError) as caught:
            pika.BlockingConnection(parameters)
        self.assertIn("(530)", str(caught.exception))

    def test_unknown_vhost_raw_close_names_connection_open(self):
        # RabbitMQ: 530 "NOT_ALLOWED - vhost no-such-vhost not found", class 10 method 40.
        with RawConnection() as raw:
            raw.read_start()
            raw.send(method_frame(0, harness.CONNECTION_START_OK, harness.start_ok_args()))
            raw.read_method(harness.CONNECTION_TUNE)
            raw.send(method_frame(0, harness.CONNECTION_TUNE_OK,
                                  harness.tune_ok_args(2047, 131072, 0)))
            raw.send(method_frame(0, harness.CONNECTION_OPEN, harness.open_args("no-such-vhost")))
            close = raw.expect_connection_close()
            self.assertEqual(close.reply_code, harness.NOT_ALLOWED)
            self.assertEqual((close.class_id, close.method_id), harness.CONNECTION_OPEN)
            self.assertTrue(raw.wait_closed(5.0))


class CloseTest(unittest.TestCase):
    def test_client_close_gets_close_ok(self):
        # RabbitMQ answers close-ok and then waits for the client to close the socket (it drops
        # it itself only after 30 s), so the client closing first is the normal ending.
        with RawConnection() as raw:
            raw.handshake()
            raw.open_channel(1)
            raw.open_channel(2)
            raw.send(method_frame(0, harness.CONNECTION_CLOSE, harness.close_args()))
            raw.assert_channel(raw.read_method(harness.CONNECTION_CLOSE_OK), 0)

    def test_frames_after_client_close_are_ignored(self):
        # Between connection.close and close-ok the server discards everything but close/close-ok.
        with RawConnection() as raw:
            raw.handshake()
            raw.open_channel(1)
            raw.send(method_frame(0, harness.CONNECTION_CLOSE, harness.close_args())
                     + method_frame(2, harness.CHANNEL_OPEN, harness.shortstr("")))
            raw.read_method(harness.CONNECTION_CLOSE_OK)
            try:
                frame = raw.read_frame(timeout=1.0)
            except (socket.timeout, harness.PeerClosed):
                return
            self.fail("unexpected frame after close-ok: %r" % frame)

    def test_client_closing_socket_without_close_leaves_broker_serving(self):
        for _ in range(3):
            raw = RawConnection()
            raw.handshake()
            raw.open_channel(1)
            raw.close_socket()
        harness.assert_broker_alive(self)


class ServerShutdownTest(unittest.TestCase):
    @harness.skip_if_external("needs its own broker process to SIGTERM")
    def test_sigterm_closes_connections_with_320_and_exits_0(self):
        # RabbitMQ 3.10 on SIGTERM: connection.close 320 "CONNECTION_FORCED - broker forced
        # connection closure with reason 'shutdown'", class 0 method 0.
        broker = harness.Broker().start()
        try:
            raw = RawConnection(broker)
            raw.handshake()
            raw.open_channel(1)
            half_open = RawConnection(broker)
            half_open.send(harness.PROTOCOL_HEADER)
            client = pika.BlockingConnection(broker.pika_parameters())
            client.channel()

            broker.process.send_signal(signal.SIGTERM)
            close = raw.expect_connection_close(timeout=10.0)
            self.assertEqual(close.reply_code, harness.CONNECTION_FORCED)
            self.assertTrue(close.reply_text.startswith("CONNECTION_FORCED"), close.reply_text)
            self.assertEqual((close.class_id, close.method_id), (0, 0))
            self.assertTrue(raw.wait_closed(10.0))

            with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as caught:
                deadline = time.monotonic() + 10.0
                while time.monotonic() < deadline:
                    client.process_data_events(time_limit=0.2)
            self.assertEqual(caught.exception.reply_code, harness.CONNECTION_FORCED)
            self.assertTrue(half_open.wait_closed(10.0))
            raw.close_socket()
            half_open.close_socket()
        finally:
            broker.stop()  # asserts exit status 0 and, when sanitizing, a clean stderr


if __name__ == "__main__":
    unittest.main()
