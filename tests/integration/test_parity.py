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
