"""RabbitMQ 3.10 behaviours that the AMQP 0-9-1 specification leaves open or states otherwise
(issue 15): x-expires and passive declares, amq.* exchange deletion, sender-selected
distribution (CC/BCC), headers-exchange numeric equality, direct reply-to's pseudo-queue,
connection names and old protocol headers. Each expectation is RabbitMQ's.
"""

import socket
import time
import unittest

import pika
import pika.exceptions

import harness
from test_messaging_support import MessagingTestCase, connect, unique


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


class PassiveDeclareTest(MessagingTestCase):
    def test_passive_declare_renews_the_x_expires_lease(self):
        queue = unique("expires")
        self.channel.queue_declare(queue, arguments={"x-expires": 600})
        self.cleanups_queue.append(queue)
        # Passive declares every 200 ms for 1.4 s: each one is use, so the queue outlives
        # its 600 ms lease more than twice over.
        for _ in range(7):
            time.sleep(0.2)
            self.assertEqual(self.channel.queue_declare(queue, passive=True).method.queue, queue)
        time.sleep(1.0)
        self.assertQueueMissing(queue)


class SystemExchangeDeleteTest(MessagingTestCase):
    def assertDeleteRefused(self, name):
        channel = self.connection.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            channel.exchange_delete(name)
        self.assertEqual(caught.exception.reply_code, 403)
        self.assertEqual(caught.exception.reply_text,
                         "ACCESS_REFUSED - deletion of system exchange '%s' in vhost '/' not allowed"
                         % name)

    def test_deleting_a_builtin_amq_exchange_is_refused(self):
        self.assertDeleteRefused("amq.direct")

    def test_deleting_a_missing_amq_exchange_is_refused_too(self):
        # RabbitMQ refuses by the name's prefix, while any other missing exchange deletes fine.
        self.assertDeleteRefused("amq.no-such-exchange")
        self.assertDeleteRefused("amq.")
        self.channel.exchange_delete(unique("no-such-exchange"))
