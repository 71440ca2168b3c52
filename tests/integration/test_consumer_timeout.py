"""RabbitMQ's delivery acknowledgement timeout (consumer_timeout), with real pika clients.

- A delivery left unacknowledged longer than consumer_timeout closes its channel with 406
  PRECONDITION_FAILED and RabbitMQ's text ("delivery acknowledgement on channel N timed out.
  Timeout value used: T ms. This timeout value can be configured, see consumers doc guide to
  learn more"); the message is requeued, marked redelivered, and another consumer gets it.
- The same for a basic.get left unacknowledged.
- A consumer that acknowledges within the timeout, however long it runs, is never closed; the
  connection of a timed-out channel stays open, and so do its other channels.
Not runnable against an external broker: the test sets the broker's timeout.
"""
import time
import unittest

import pika
import pika.exceptions

import harness

TIMEOUT_MS = 2000


def text_for(channel_number):
    return ("PRECONDITION_FAILED - delivery acknowledgement on channel %d timed out. Timeout value used: %d ms. "
            "This timeout value can be configured, see consumers doc guide to learn more"
            % (channel_number, TIMEOUT_MS))


@harness.skip_if_external("sets the broker's consumer_timeout")
class ConsumerTimeout(unittest.TestCase):
    def setUp(self):
        self.broker = harness.Broker(extra_args=["--consumer_timeout", str(TIMEOUT_MS)]).start()
        self.addCleanup(self.broker.stop)

    def connect(self):
        connection = pika.BlockingConnection(self.broker.pika_parameters())
        self.addCleanup(lambda: connection.is_open and connection.close())
        return connection

    def serve_until(self, connection, predicate, seconds):
        deadline = time.monotonic() + seconds
        while not predicate() and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        return predicate()

    def test_an_unacknowledged_delivery_closes_its_channel_and_is_requeued(self):
        connection = self.connect()
        setup = connection.channel()
        setup.queue_declare("ct.q")
        setup.basic_publish("", "ct.q", b"slow work")
        channel = connection.channel()
        closed = []
        channel._impl.add_on_close_callback(lambda ch, reason: closed.append(reason))  # pika's own channel
        got = []
        channel.basic_consume("ct.q", lambda ch, method, props, body: got.append(body))
        started = time.monotonic()
        self.assertTrue(self.serve_until(connection, lambda: closed, 10), "the channel was never closed")
        waited = time.monotonic() - started
        self.assertEqual(got, [b"slow work"])
        self.assertIsInstance(closed[0], pika.exceptions.ChannelClosedByBroker)
        self.assertEqual((closed[0].reply_code, closed[0].reply_text), (406, text_for(channel.channel_number)))
        self.assertGreaterEqual(waited, TIMEOUT_MS / 1000 - 0.2)
        # The connection and its other channel stay; the message is back, redelivered.
        self.assertTrue(connection.is_open)
        method, _props, body = setup.basic_get("ct.q", auto_ack=True)
        self.assertEqual((body, method.redelivered), (b"slow work", True))
        harness.assert_broker_alive(self, self.broker)

    def test_an_unacknowledged_get_times_out_too(self):
        connection = self.connect()
        channel = connection.channel()
        channel.queue_declare("ct.get")
        channel.basic_publish("", "ct.get", b"taken")
        closed = []
        channel._impl.add_on_close_callback(lambda ch, reason: closed.append(reason))
        method, _props, _body = channel.basic_get("ct.get", auto_ack=False)
        self.assertIsNotNone(method)
        self.assertTrue(self.serve_until(connection, lambda: closed, 10), "the channel was never closed")
        self.assertEqual((closed[0].reply_code, closed[0].reply_text), (406, text_for(channel.channel_number)))
        other = connection.channel()
        self.assertEqual(other.queue_declare("ct.get", passive=True).method.message_count, 1)

    def test_a_consumer_that_keeps_acknowledging_is_never_closed(self):
        connection = self.connect()
        channel = connection.channel()
        channel.queue_declare("ct.busy")
        channel.basic_qos(prefetch_count=1)
        closed = []
        channel._impl.add_on_close_callback(lambda ch, reason: closed.append(reason))  # pika's own channel
        done = []

        def work(ch, method, props, body):
            # Each message takes half the timeout; together far more than the timeout.
            connection.sleep(TIMEOUT_MS / 2000)
            ch.basic_ack(method.delivery_tag)
            done.append(body)

        for i in range(6):
            channel.basic_publish("", "ct.busy", b"%d" % i)
        channel.basic_consume("ct.busy", work)
        self.serve_until(connection, lambda: len(done) == 6 or closed, 20)
        self.assertEqual((len(done), closed), (6, []))


if __name__ == "__main__":
    unittest.main()
