"""Bad input on raw sockets: wrong protocol headers, broken framing, frames out of place, bad
method arguments, bad tune-ok values. Each test then checks that a fresh pika client still
connects and opens a channel. Expected codes and texts are those of RabbitMQ 3.10.8; its exact
reply texts are quoted in comments, only the leading code name is asserted."""

import threading
import unittest

import harness
from harness import (RawConnection, frame, header_frame, method_frame, octet, short, long_,
                     shortstr)

CODE_NAMES = {
    harness.FRAME_ERROR: "FRAME_ERROR",
    harness.SYNTAX_ERROR: "SYNTAX_ERROR",
    harness.COMMAND_INVALID: "COMMAND_INVALID",
    harness.CHANNEL_ERROR: "CHANNEL_ERROR",
    harness.UNEXPECTED_FRAME: "UNEXPECTED_FRAME",
    harness.NOT_ALLOWED: "NOT_ALLOWED",
    harness.NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
}

BASIC_QOS_ARGS = long_(0) + short(10) + octet(0)
PUBLISH_ARGS = short(0) + shortstr("") + shortstr("no-such-queue") + octet(0)


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


class BadInputTest(unittest.TestCase):
    """Base: every test ends by proving the broker still serves a well-behaved client."""

    def tearDown(self):
        harness.assert_broker_alive(self)

    def connected(self, *channels, **handshake):
        raw = RawConnection()
        self.addCleanup(raw.close_socket)
        raw.handshake(**handshake)
        for channel in channels:
            raw.open_channel(channel)
        return raw

    def assert_hard_error(self, raw, code, caused_by=None):
        """connection.close with `code` (text led by the code's name), then, after our
        close-ok, the socket closes. RabbitMQ closes at once, or 3 s later when the stream
        was out of sync and it could not see the close-ok."""
        close = raw.expect_connection_close()
        self.assertEqual(close.reply_code, code, close)
        self.assertTrue(close.reply_text.startswith(CODE_NAMES[code]), close)
        if caused_by is not None:
            self.assertEqual((close.class_id, close.method_id), caused_by, close)
        self.assertTrue(raw.wait_closed(5.0), "socket still open 5 s after the connection.close")
        return close


class ProtocolHeaderTest(BadInputTest):
    """RabbitMQ answers any header it does not speak with its own, AMQP 0-0-9-1, and closes.
    It also speaks AMQP 0-8 ("AMQP\\x01\\x01\\x08\\x00", "AMQP\\x01\\x01\\x09\\x01") and serves 0-9
    ("AMQP\\x01\\x01\\x00\\x09") as 0-9-1, as Warren does (test_parity), so those are left out
    here; AMQP 1.0
    ("AMQP\\x00\\x01\\x00\\x00") without its plugin gets the 0-9-1 header too."""

    def assert_refused(self, data):
        with RawConnection() as raw:
            raw.send(data)
            self.assertEqual(raw.read_exactly(8), harness.PROTOCOL_HEADER)
            self.assertTrue(raw.wait_closed(5.0))

    def test_amqp_0_9_0_header(self):
        self.assert_refused(b"AMQP\x00\x00\x09\x00")

    def test_amqp_0_9_2_header(self):
        self.assert_refused(b"AMQP\x00\x00\x09\x02")

    def test_amqp_0_10_header(self):
        self.assert_refused(b"AMQP\x01\x01\x00\x0a")

    def test_amqp_1_0_header(self):
        self.assert_refused(b"AMQP\x00\x01\x00\x00")

    def test_amqp_0_8_with_zero_class_header(self):
        self.assert_refused(b"AMQP\x00\x00\x08\x00")

    def test_http_request(self):
        self.assert_refused(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")

    def test_wrong_magic(self):
        self.assert_refused(b"AMQX\x00\x00\x09\x01")

    def test_garbage_instead_of_start_ok_closes_socket(self):
        # RabbitMQ sends nothing and drops the socket after its 3-s silent-close delay.
        with RawConnection() as raw:
            raw.read_start()
            raw.send(harness.seeded_garbage(7, 200))
            try:
                close = raw.expect_connection_close(timeout=6.0)
                self.assertEqual(close.reply_code, harness.FRAME_ERROR, close)
            except harness.PeerClosed:
                pass
            self.assertTrue(raw.wait_closed(6.0))


class FramingTest(BadInputTest):
    def test_random_bytes_after_handshake_give_501(self):
        # RabbitMQ reads the garbage as a frame header whose size exceeds frame_max:
        # "FRAME_ERROR - type 34, all octets = <<>>: {frame_too_large,3452112961,131064}".
        for seed, length in ((1, 64), (2, 4096)):
            with self.subTest(seed=seed, length=length):
                raw = self.connected(1)
                raw.send(harness.seeded_garbage(seed, length))
                self.assert_hard_error(raw, harness.FRAME_ERROR)

    def test_unknown_frame_type_gives_501(self):
        # "FRAME_ERROR - type 9, all octets = <<"abc">>: unknown_frame"
        raw = self.connected(1)
        raw.send(frame(9, 1, b"abc"))
        self.assert_hard_error(raw, harness.FRAME_ERROR)

    def test_frame_larger_than_frame_max_gives_501(self):
        # "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,131073,131064}".
        # RabbitMQ tolerates payloads up to frame_max (8 octets more than the spec's
        # frame_max - 8, for old Java clients); only payloads beyond frame_max are pinned.
        raw = self.connected(1)
        raw.send(method_frame(1, harness.BASIC_PUBLISH, b"x" * (harness.DEFAULT_FRAME_MAX - 3)))
        self.assert_hard_error(raw, harness.FRAME_ERROR)

    def test_frame_larger_than_client_lowered_frame_max_gives_501(self):
        # "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}"
        raw = self.connected(1, frame_max=4096)
        raw.send(method_frame(1, harness.BASIC_PUBLISH, PUBLISH_ARGS)
                 + header_frame(1, 60, 4097) + frame(harness.FRAME_BODY, 1, b"y" * 4097))
        self.assert_hard_error(raw, harness.FRAME_ERROR)

    def test_oversized_frame_header_is_refused_before_its_payload_arrives(self):
        raw = self.connected()
        raw.send(b"\x01\x00\x00\x7f\xff\xff\xff")  # a 2 GiB method frame, payload never sent
        self.assert_hard_error(raw, harness.FRAME_ERROR)

    def test_frame_of_exactly_frame_max_is_accepted(self):
        # Body payload frame_max - 8: the whole frame is frame_max octets, the spec's limit.
        size = harness.DEFAULT_FRAME_MAX - 8
        raw = self.connected(1)
        raw.send(method_frame(1, harness.BASIC_PUBLISH, PUBLISH_ARGS)
                 + header_frame(1, 60, size) + frame(harness.FRAME_BODY, 1, b"y" * size))
        raw.send(method_frame(1, harness.CHANNEL_CLOSE, harness.close_args()))
        raw.assert_channel(raw.read_method(harness.CHANNEL_CLOSE_OK), 1)
        raw.close_connection()

    def test_body_beyond_the_announced_size_gives_501(self):
        # Warren's own check, kept while the body's room grows as it arrives: body frames of
        # 4088 octets cross the message's first allocation, then overflow the 20000 announced.
        raw = self.connected(1, frame_max=4096)
        raw.send(method_frame(1, harness.BASIC_PUBLISH, PUBLISH_ARGS) + header_frame(1, 60, 20000)
                 + frame(harness.FRAME_BODY, 1, b"y" * 4088) * 5)
        close = self.assert_hard_error(raw, harness.FRAME_ERROR, harness.BASIC_PUBLISH)
        self.assertIn("exceeds the announced size 20000", close.reply_text)

    def test_bad_frame_end_octet_gives_501(self):
        # "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,0}"
        raw = self.connected()
        raw.send(method_frame(1, harness.CHANNEL_OPEN, shortstr(""))[:-1] + b"\x00")
        self.assert_hard_error(raw, harness.FRAME_ERROR)

    def test_bad_frame_end_octet_on_heartbeat_gives_501(self):
        raw = self.connected()
        raw.send(harness.heartbeat_frame()[:-1] + b"\xff")
        self.assert_hard_error(raw, harness.FRAME_ERROR)

    def test_method_frame_too_short_for_class_and_method_ids_gives_501(self):
        # "FRAME_ERROR - type 1, all octets = <<0,60>>: unknown_frame"
        for payload in (b"", b"\x00\x3c"):
            with self.subTest(payload=payload):
                raw = self.connected(1)
                raw.send(frame(harness.FRAME_METHOD, 1, payload))
                self.assert_hard_error(raw, harness.FRAME_ERROR)

    def test_heartbeat_with_payload_gives_501(self):
        # "FRAME_ERROR - type 8, all octets = <<"xx">>: unknown_frame"
        raw = self.connected()
        raw.send(frame(harness.FRAME_HEARTBEAT, 0, b"xx"))
        self.assert_hard_error(raw, harness.FRAME_ERROR)

    def test_heartbeat_on_nonzero_channel_gives_505(self):
        # "UNEXPECTED_FRAME - type 8, all octets = <<>>"
        raw = self.connected(1)
        raw.send(frame(harness.FRAME_HEARTBEAT, 1, b""))
        self.assert_hard_error(raw, harness.UNEXPECTED_FRAME)


class FrameOutOfPlaceTest(BadInputTest):
    def test_method_on_channel_never_opened_gives_504(self):
        # "CHANNEL_ERROR - expected 'channel.open'", class 60 method 10
        raw = self.connected()
        raw.send(method_frame(5, harness.BASIC_QOS, BASIC_QOS_ARGS))
        self.assert_hard_error(raw, harness.CHANNEL_ERROR, harness.BASIC_QOS)

    def test_channel_method_on_channel_0_gives_504(self):
        # "CHANNEL_ERROR - unexpected method in connection state running"
        for method, args in ((harness.BASIC_QOS, BASIC_QOS_ARGS),
                             (harness.CHANNEL_OPEN, shortstr(""))):
            with self.subTest(method=method):
                raw = self.connected()
                raw.send(method_frame(0, method, args))
                self.assert_hard_error(raw, harness.CHANNEL_ERROR, method)

    def test_second_connection_open_gives_504(self):
        # "CHANNEL_ERROR - unexpected method in connection state running", class 10 method 40
        raw = self.connected()
        raw.send(method_frame(0, harness.CONNECTION_OPEN, harness.open_args()))
        self.assert_hard_error(raw, harness.CHANNEL_ERROR, harness.CONNECTION_OPEN)

    def test_connection_method_on_a_channel_gives_503(self):
        # "COMMAND_INVALID - unimplemented method", class 10 method 40
        raw = self.connected(1)
        raw.send(method_frame(1, harness.CONNECTION_OPEN, harness.open_args()))
        self.assert_hard_error(raw, harness.COMMAND_INVALID, harness.CONNECTION_OPEN)

    def test_channel_open_on_open_channel_gives_504(self):
        # "CHANNEL_ERROR - second 'channel.open' seen", class 20 method 10
        raw = self.connected(1)
        raw.send(method_frame(1, harness.CHANNEL_OPEN, shortstr("")))
        self.assert_hard_error(raw, harness.CHANNEL_ERROR, harness.CHANNEL_OPEN)

    def test_unsolicited_channel_close_ok_gives_503(self):
        # "COMMAND_INVALID - unimplemented method", class 20 method 41
        raw = self.connected(1)
        raw.send(method_frame(1, harness.CHANNEL_CLOSE_OK))
        self.assert_hard_error(raw, harness.COMMAND_INVALID, harness.CHANNEL_CLOSE_OK)

    def test_content_header_without_publish_gives_505(self):
        # "UNEXPECTED_FRAME - expected method frame, got non method frame instead", class 0
        # method 0; the same on an open channel and on one never opened.
        for channel, opened in ((1, (1,)), (3, ())):
            with self.subTest(channel=channel):
                raw = self.connected(*opened)
                raw.send(header_frame(channel, 60, 5))
                self.assert_hard_error(raw, harness.UNEXPECTED_FRAME)

    def test_body_without_publish_gives_505(self):
        raw = self.connected(1)
        raw.send(frame(harness.FRAME_BODY, 1, b"hello"))
        self.assert_hard_error(raw, harness.UNEXPECTED_FRAME)

    def test_method_where_content_header_was_due_gives_505(self):
        # "UNEXPECTED_FRAME - expected content header for class 60, got non content header
        # frame instead", class 60 method 40 (the publish being assembled)
        raw = self.connected(1)
        raw.send(method_frame(1, harness.BASIC_PUBLISH, PUBLISH_ARGS)
                 + method_frame(1, harness.BASIC_QOS, BASIC_QOS_ARGS))
        self.assert_hard_error(raw, harness.UNEXPECTED_FRAME, harness.BASIC_PUBLISH)

    def test_content_frames_out_of_order_name_the_publish(self):
        # RabbitMQ names basic.publish (60.40) once a publish began: a body where the header was
        # due, a second header where the body was due. A header too short for its fixed part is
        # its frame error 501 on no method.
        for tail in (frame(harness.FRAME_BODY, 1, b"x"), header_frame(1, 60, 5) + header_frame(1, 60, 5)):
            with self.subTest(tail=tail[:1]):
                raw = self.connected(1)
                raw.send(method_frame(1, harness.BASIC_PUBLISH, PUBLISH_ARGS) + tail)
                self.assert_hard_error(raw, harness.UNEXPECTED_FRAME, harness.BASIC_PUBLISH)
        raw = self.connected(1)
        raw.send(method_frame(1, harness.BASIC_PUBLISH, PUBLISH_ARGS) + frame(harness.FRAME_HEADER, 1, b"\x00\x3c\x00"))
        self.assert_hard_error(raw, harness.FRAME_ERROR, (0, 0))

    def test_content_header_of_another_class_gives_505(self):
        # "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50
        # instead", class 60 method 40
        raw = self.connected(1)
        raw.send(method_frame(1, harness.BASIC_PUBLISH, PUBLISH_ARGS) + header_frame(1, 50, 3))
        self.assert_hard_error(raw, harness.UNEXPECTED_FRAME, harness.BASIC_PUBLISH)

    def test_channel_open_before_connection_open_gives_505(self):
        # "UNEXPECTED_FRAME - type 1, all octets = <<0,20,0,10,0>>"
        with RawConnection() as raw:
            raw.read_start()
            raw.send(method_frame(0, harness.CONNECTION_START_OK, harness.start_ok_args(
                raw.broker.user, raw.broker.password)))
            raw.read_method(harness.CONNECTION_TUNE)
            raw.send(method_frame(0, harness.CONNECTION_TUNE_OK,
                                  harness.tune_ok_args(2047, 131072, 0)))
            raw.send(method_frame(1, harness.CHANNEL_OPEN, shortstr("")))
            self.assert_hard_error(raw, harness.UNEXPECTED_FRAME)


class MethodArgumentsTest(BadInputTest):
    def test_unknown_class_or_method_closes_the_connection(self):
        # The spec's answer is 540 NOT_IMPLEMENTED. RabbitMQ 3.10 instead crashes the
        # connection process ({unknown_method_id,{99,10}} in its log) and the socket just
        # closes with no connection.close. Either ending passes; anything else fails.
        for channel, method in ((1, (99, 10)), (1, (60, 99)), (0, (10, 99)), (0, (99, 10))):
            with self.subTest(channel=channel, method=method):
                raw = self.connected(1)
                raw.send(method_frame(channel, method))
                try:
                    close = raw.expect_connection_close()
                    self.assertEqual(close.reply_code, harness.NOT_IMPLEMENTED, close)
                except harness.PeerClosed:
                    pass
                self.assertTrue(raw.wait_closed(5.0))

    def test_truncated_arguments_give_501_not_502(self):
        # RabbitMQ calls undecodable arguments a frame error, naming the method:
        # "FRAME_ERROR - cannot decode <<0,0,0,0>>", class 60 method 10.
        raw = self.connected(1)
        raw.send(method_frame(1, harness.BASIC_QOS, long_(0)))
        self.assert_hard_error(raw, harness.FRAME_ERROR, harness.BASIC_QOS)

    def test_short_string_running_past_the_frame_gives_501(self):
        # "FRAME_ERROR - cannot decode <<5,97,98>>", class 20 method 10
        raw = self.connected()
        raw.send(method_frame(2, harness.CHANNEL_OPEN, b"\x05ab"))
        self.assert_hard_error(raw, harness.FRAME_ERROR, harness.CHANNEL_OPEN)

    def test_trailing_bytes_after_arguments_give_501(self):
        # RabbitMQ is strict: "FRAME_ERROR - cannot decode <<0,0,0,0,0,10,0,106,117,110,107>>"
        raw = self.connected(1)
        raw.send(method_frame(1, harness.BASIC_QOS, BASIC_QOS_ARGS + b"junk"))
        self.assert_hard_error(raw, harness.FRAME_ERROR, harness.BASIC_QOS)


class TuneOkTest(BadInputTest):
    """tune-ok values outside the server's proposal. RabbitMQ logs "failed to negotiate
    connection parameters: negotiated channel_max = 0 (no limit) is higher than the maximum
    allowed value (2047)" (or frame_max ... lower than the minimum allowed value (4096)), sends
    nothing and drops the socket after its 3-s delay, so no open-ok ever comes. Run at once."""

    def test_out_of_range_tune_ok_never_reaches_open_ok(self):
        cases = {
            "channel_max 0 (no limit)": (0, 131072),
            "channel_max 2048": (2048, 131072),
            "frame_max 0 (no limit)": (2047, 0),
            "frame_max 4095 (below 4096)": (2047, 4095),
            "frame_max 131073": (2047, 131073),
        }
        results = {}

        def run(name, channel_max, frame_max):
            try:
                with RawConnection(timeout=10.0) as raw:
                    raw.read_start()
                    raw.send(method_frame(0, harness.CONNECTION_START_OK, harness.start_ok_args(
                        raw.broker.user, raw.broker.password)))
                    raw.read_method(harness.CONNECTION_TUNE)
                    raw.send(method_frame(0, harness.CONNECTION_TUNE_OK,
                                          harness.tune_ok_args(channel_max, frame_max, 0))
                             + method_frame(0, harness.CONNECTION_OPEN, harness.open_args(
                                 raw.broker.vhost)))
                    try:
                        reply = raw.read_method(timeout=8.0)
                    except harness.PeerClosed:
                        results[name] = "closed"
                        return
                    if reply.method == harness.CONNECTION_CLOSE:
                        close = harness.ConnectionClose(reply.args)
                        results[name] = ("closed" if close.reply_code == harness.NOT_ALLOWED
                                         and raw.wait_closed(8.0) else repr(close))
                    else:
                        results[name] = "answered %r" % reply
            except Exception as error:
                results[name] = repr(error)

        threads = [threading.Thread(target=run, args=(name,) + values)
                   for name, values in cases.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20.0)
        for name in cases:
            with self.subTest(case=name):
                # A connection.close, if any, must be 530 NOT_ALLOWED followed by the close.
                self.assertEqual(results.get(name), "closed")


if __name__ == "__main__":
    unittest.main()
