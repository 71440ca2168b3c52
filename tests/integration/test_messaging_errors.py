"""Messaging errors: the reply code, the reply text and the scope (channel.close or
connection.close) of every error RabbitMQ raises for exchange/queue declare, bind, delete,
publish, consume, ack, qos, tx and confirm, and the cases RabbitMQ accepts although a reader
might expect an error (deleting what is missing, unbinding what is not bound).

Every expectation was checked against RabbitMQ 3.10.8 (WARREN_TEST_URL). The reply texts are
RabbitMQ's, compared whole, except where RabbitMQ ends them with an Erlang term (queue-argument
and expiration validation, e.g. `...: {value_negative,-1}`): those are compared up to and
including the colon before the term, and the term is recorded beside the case.
After a channel error the test also checks that the connection is still open and usable; after
a connection error, that the connection is closed and the broker accepts a new one.
"""

import unittest

import pika
import pika.exceptions

import harness
from harness import RawConnection, method_frame, header_frame, frame, short, shortstr, octet
from test_messaging_support import (connect, unique, pump, pump_until, consume_args,
                                    BASIC_CONSUME, BASIC_CONSUME_OK, BASIC_PUBLISH)


def setUpModule():
    harness.start_module_broker()


def tearDownModule():
    harness.stop_module_broker()


def locked_text(queue):
    # RabbitMQ 3.10's whole text for 405 on another connection's exclusive queue.
    return ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'. "
            "It could be originally declared on another connection or the exclusive property "
            "value does not match that of the original declaration." % queue)


class ErrorTestCase(unittest.TestCase):
    """One pika connection and channel per test, plus assertions on error scope."""

    def setUp(self):
        self.connection = connect()
        self.channel = self.connection.channel()
        self.cleanups = []  # (kind, name) deleted from a fresh connection after the test

    def tearDown(self):
        if self.connection.is_open:
            self.connection.close()
        if self.cleanups:
            connection = connect()
            try:
                channel = connection.channel()
                for kind, name in self.cleanups:
                    if kind == "queue":
                        channel.queue_delete(name)
                    else:
                        channel.exchange_delete(name)
            finally:
                connection.close()

    def delete_later(self, kind, name):
        self.cleanups.append((kind, name))
        return name

    def new_channel(self):
        return self.connection.channel()

    def assertChannelError(self, code, text, action, channel=None, prefix=False):
        """Run action(channel); the broker must close that channel with code and text (whole, or
        its start when prefix) while the connection stays open and can open a new channel. A
        synchronous queue.declare after the action surfaces asynchronous closes (publish, ack)."""
        channel = channel or self.channel
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            action(channel)
            channel.queue_declare("", exclusive=True)
        error = caught.exception
        self.assertEqual(error.reply_code, code, error.reply_text)
        if prefix:
            self.assertTrue(error.reply_text.startswith(text),
                            "%r does not start with %r" % (error.reply_text, text))
        else:
            self.assertEqual(error.reply_text, text)
        self.assertTrue(channel.is_closed)
        self.assertTrue(self.connection.is_open, "a channel error closed the connection")
        probe = self.connection.channel()
        probe.queue_declare("", exclusive=True)
        probe.close()

    def assertConnectionError(self, code, text, action):
        """Run action(channel); the broker must close the whole connection with code and text."""
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as caught:
            action(self.channel)
            self.channel.queue_declare("", exclusive=True)
        error = caught.exception
        self.assertEqual(error.reply_code, code, error.reply_text)
        self.assertEqual(error.reply_text, text)
        self.assertTrue(self.connection.is_closed)
        harness.assert_broker_alive(self)

    def assertAccepted(self, action):
        """action(channel) raises nothing and the channel stays usable."""
        result = action(self.channel)
        self.channel.queue_declare("", exclusive=True)
        self.assertTrue(self.channel.is_open)
        return result


# ---------------------------------------------------------------------------------------------


class PassiveDeclareTest(ErrorTestCase):
    def test_passive_declare_of_missing_exchange_is_404(self):
        name = unique("missing-x")
        self.assertChannelError(404, "NOT_FOUND - no exchange '%s' in vhost '/'" % name,
                                lambda ch: ch.exchange_declare(name, "direct", passive=True))

    def test_passive_declare_of_missing_queue_is_404(self):
        name = unique("missing-q")
        self.assertChannelError(404, "NOT_FOUND - no queue '%s' in vhost '/'" % name,
                                lambda ch: ch.queue_declare(name, passive=True))

    def test_passive_declare_ignores_an_unknown_type_and_reports_the_missing_exchange(self):
        name = unique("missing-x")
        self.assertChannelError(404, "NOT_FOUND - no exchange '%s' in vhost '/'" % name,
                                lambda ch: ch.exchange_declare(name, "no-such-type", passive=True))

    def test_passive_declare_of_missing_amq_prefixed_names_is_404_not_403(self):
        exchange, queue = "amq." + unique("x"), "amq." + unique("q")
        self.assertChannelError(404, "NOT_FOUND - no exchange '%s' in vhost '/'" % exchange,
                                lambda ch: ch.exchange_declare(exchange, passive=True))
        self.assertChannelError(404, "NOT_FOUND - no queue '%s' in vhost '/'" % queue,
                                lambda ch: ch.queue_declare(queue, passive=True),
                                channel=self.new_channel())

    def test_passive_declare_with_different_type_succeeds(self):
        name = unique("x")
        self.channel.exchange_declare(name, "direct", auto_delete=True)
        self.assertAccepted(lambda ch: ch.exchange_declare(name, "fanout", passive=True))
        self.channel.exchange_delete(name)


class ExchangeRedeclareTest(ErrorTestCase):
    """Redeclaring an exchange with different properties: 406 naming the first difference."""

    def redeclare(self, first, second):
        name = unique("x")
        self.channel.exchange_declare(name, **first)
        self.delete_later("exchange", name)
        return name, lambda ch: ch.exchange_declare(name, **second)

    def test_different_type_is_406(self):
        name, action = self.redeclare(dict(exchange_type="direct"), dict(exchange_type="fanout"))
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%s' in vhost '/': "
                 "received 'fanout' but current is 'direct'" % name, action)

    def test_different_durable_is_406(self):
        name, action = self.redeclare(dict(exchange_type="direct"),
                                      dict(exchange_type="direct", durable=True))
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '%s' in vhost '/': "
                 "received 'true' but current is 'false'" % name, action)

    def test_different_auto_delete_is_406(self):
        name, action = self.redeclare(dict(exchange_type="direct", auto_delete=True),
                                      dict(exchange_type="direct", auto_delete=False))
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for exchange '%s' in vhost "
                 "'/': received 'false' but current is 'true'" % name, action)

    def test_different_internal_is_406(self):
        name, action = self.redeclare(dict(exchange_type="direct"),
                                      dict(exchange_type="direct", internal=True))
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'internal' for exchange '%s' in vhost "
                 "'/': received 'true' but current is 'false'" % name, action)

    def test_different_alternate_exchange_is_406(self):
        name, action = self.redeclare(
            dict(exchange_type="direct", arguments={"alternate-exchange": "a"}),
            dict(exchange_type="direct", arguments={"alternate-exchange": "b"}))
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '%s' in "
                 "vhost '/': received 'b' but current is 'a'" % name, action)

    def test_missing_alternate_exchange_is_406(self):
        name, action = self.redeclare(
            dict(exchange_type="direct", arguments={"alternate-exchange": "a"}),
            dict(exchange_type="direct"))
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '%s' in "
                 "vhost '/': received none but current is the value 'a' of type 'longstr'" % name,
            action)

    def test_different_unknown_argument_is_accepted(self):
        # RabbitMQ compares only the arguments it knows (alternate-exchange); others are ignored.
        _, action = self.redeclare(dict(exchange_type="direct", arguments={"foo": "a"}),
                                   dict(exchange_type="direct", arguments={"foo": "b"}))
        self.assertAccepted(action)

    def test_identical_redeclare_is_accepted(self):
        _, action = self.redeclare(dict(exchange_type="topic", durable=False, auto_delete=True),
                                   dict(exchange_type="topic", durable=False, auto_delete=True))
        self.assertAccepted(action)


class QueueRedeclareTest(ErrorTestCase):
    def redeclare(self, first, second):
        name = unique("q")
        self.channel.queue_declare(name, **first)
        self.delete_later("queue", name)
        return name, lambda ch: ch.queue_declare(name, **second)

    def test_different_durable_is_406(self):
        name, action = self.redeclare({}, dict(durable=True))
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '/': "
                 "received 'true' but current is 'false'" % name, action)

    def test_different_auto_delete_is_406(self):
        name, action = self.redeclare(dict(auto_delete=True), dict(auto_delete=False))
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '%s' in vhost "
                 "'/': received 'false' but current is 'true'" % name, action)

    def test_different_message_ttl_is_406(self):
        name, action = self.redeclare(dict(arguments={"x-message-ttl": 1000}),
                                      dict(arguments={"x-message-ttl": 2000}))
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%s' in vhost "
                 "'/': received '2000' but current is '1000'" % name, action)

    def test_missing_message_ttl_is_406(self):
        name, action = self.redeclare(dict(arguments={"x-message-ttl": 1000}), {})
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%s' in vhost "
                 "'/': received none but current is the value '1000' of type 'signedint'" % name,
            action)

    def test_added_max_length_is_406(self):
        name, action = self.redeclare({}, dict(arguments={"x-max-length": 5}))
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '%s' in vhost "
                 "'/': received the value '5' of type 'signedint' but current is none" % name,
            action)

    def test_an_unknown_queue_type_on_redeclare_is_an_inequivalent_arg(self):
        # RabbitMQ: an existing queue is compared, not the type checked (found by tests/diff).
        name, action = self.redeclare({}, dict(arguments={"x-queue-type": "bogus"}))
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '%s' in vhost "
                 "'/': received the value 'bogus' of type 'longstr' but current is none" % name, action)

    def test_another_queue_type_on_redeclare_is_406(self):
        name, action = self.redeclare(dict(arguments={"x-queue-type": "classic"}),
                                      dict(arguments={"x-queue-type": "quorum"}))
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '%s' in vhost "
                 "'/': received 'quorum' but current is 'classic'" % name, action)

    def test_classic_or_no_queue_type_on_redeclare_is_accepted(self):
        _, action = self.redeclare({}, dict(arguments={"x-queue-type": "classic"}))
        self.assertAccepted(action)
        _, action = self.redeclare(dict(arguments={"x-queue-type": "classic"}), {})
        self.assertAccepted(action)

    def test_different_unknown_argument_is_accepted(self):
        _, action = self.redeclare(dict(arguments={"foo": 1}), dict(arguments={"foo": 2}))
        self.assertAccepted(action)

    def test_redeclaring_a_shared_queue_as_exclusive_is_405(self):
        name, action = self.redeclare({}, dict(exclusive=True))
        self.assertChannelError(405, locked_text(name), action)

    def test_an_exclusive_mismatch_is_405_before_a_durable_mismatch(self):
        # RabbitMQ's assert_equivalence checks exclusive access first (found by tests/diff).
        name, action = self.redeclare({}, dict(exclusive=True, durable=True, auto_delete=True))
        self.assertChannelError(405, locked_text(name), action)


class ReservedNamesTest(ErrorTestCase):
    def test_declaring_an_amq_prefixed_exchange_is_403(self):
        name = "amq." + unique("x")
        self.assertChannelError(
            403, "ACCESS_REFUSED - exchange name '%s' contains reserved prefix 'amq.*'" % name,
            lambda ch: ch.exchange_declare(name, "direct"))

    def test_declaring_an_amq_prefixed_queue_is_403(self):
        name = "amq." + unique("q")
        self.assertChannelError(
            403, "ACCESS_REFUSED - queue name '%s' contains reserved prefix 'amq.*'" % name,
            lambda ch: ch.queue_declare(name))

    def test_active_redeclare_of_a_server_named_queue_is_403(self):
        # Even by its owner: the amq.gen- name it was given is a reserved name to declare.
        queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.assertTrue(queue.startswith("amq.gen-"), queue)
        self.assertEqual(self.channel.queue_declare(queue, passive=True).method.queue, queue)
        self.assertChannelError(
            403, "ACCESS_REFUSED - queue name '%s' contains reserved prefix 'amq.*'" % queue,
            lambda ch: ch.queue_declare(queue, exclusive=True))

    def test_redeclaring_amq_direct_equivalently_is_accepted(self):
        self.assertAccepted(lambda ch: ch.exchange_declare("amq.direct", "direct", durable=True))

    def test_redeclaring_amq_direct_with_another_type_is_406(self):
        self.assertChannelError(
            406, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in vhost "
                 "'/': received 'fanout' but current is 'direct'",
            lambda ch: ch.exchange_declare("amq.direct", "fanout", durable=True))

    def test_deleting_amq_direct_is_403(self):
        self.assertChannelError(
            403, "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not "
                 "allowed", lambda ch: ch.exchange_delete("amq.direct"))


class DefaultExchangeTest(ErrorTestCase):
    """Every operation naming the default exchange "" other than publish is 403."""

    TEXT = "ACCESS_REFUSED - operation not permitted on the default exchange"

    def test_declare_is_403(self):
        self.assertChannelError(403, self.TEXT,
                                lambda ch: ch.exchange_declare("", "direct", durable=True))

    def test_passive_declare_is_403(self):
        self.assertChannelError(403, self.TEXT,
                                lambda ch: ch.exchange_declare("", "direct", passive=True))

    def test_delete_is_403(self):
        self.assertChannelError(403, self.TEXT, lambda ch: ch.exchange_delete(""))

    def test_queue_bind_is_403(self):
        queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.assertChannelError(403, self.TEXT, lambda ch: ch.queue_bind(queue, "", "key"))

    def test_queue_unbind_is_403(self):
        queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.assertChannelError(403, self.TEXT, lambda ch: ch.queue_unbind(queue, "", queue))

    def test_exchange_bind_from_or_to_the_default_exchange_is_403(self):
        name = unique("x")
        self.channel.exchange_declare(name, "fanout", auto_delete=True)
        self.delete_later("exchange", name)
        self.assertChannelError(403, self.TEXT, lambda ch: ch.exchange_bind(name, "", "k"))
        self.assertChannelError(403, self.TEXT, lambda ch: ch.exchange_bind("", name, "k"),
                                channel=self.new_channel())


class UnknownExchangeTypeTest(ErrorTestCase):
    """An unknown type is a connection error (503 COMMAND_INVALID), not a channel error. The
    wording differs: 'invalid' for a plain name, 'unknown' for an x- name."""

    def test_unknown_type_closes_the_connection_with_503(self):
        name = unique("x")
        self.assertConnectionError(503, "COMMAND_INVALID - invalid exchange type 'foo'",
                                   lambda ch: ch.exchange_declare(name, "foo"))

    def test_unknown_x_type_closes_the_connection_with_503(self):
        name = unique("x")
        self.assertConnectionError(503, "COMMAND_INVALID - unknown exchange type 'x-foo'",
                                   lambda ch: ch.exchange_declare(name, "x-foo"))


class ExclusiveQueueTest(ErrorTestCase):
    """Another connection's exclusive queue: 405 for every operation except publishing to it."""

    def setUp(self):
        super().setUp()
        self.owner = connect()
        owner_channel = self.owner.channel()
        self.queue = owner_channel.queue_declare(unique("excl"), exclusive=True).method.queue
        owner_channel.confirm_delivery()
        owner_channel.basic_publish("", self.queue, b"owned")
        self.owner_channel = owner_channel

    def tearDown(self):
        if self.owner.is_open:
            self.owner.close()
        super().tearDown()

    def test_passive_declare_is_405(self):
        self.assertChannelError(405, locked_text(self.queue),
                                lambda ch: ch.queue_declare(self.queue, passive=True))

    def test_exclusive_redeclare_is_405(self):
        self.assertChannelError(405, locked_text(self.queue),
                                lambda ch: ch.queue_declare(self.queue, exclusive=True))

    def test_consume_is_405(self):
        self.assertChannelError(405, locked_text(self.queue),
                                lambda ch: ch.basic_consume(self.queue, lambda *a: None))

    def test_get_is_405(self):
        self.assertChannelError(405, locked_text(self.queue),
                                lambda ch: ch.basic_get(self.queue))

    def test_purge_is_405(self):
        self.assertChannelError(405, locked_text(self.queue),
                                lambda ch: ch.queue_purge(self.queue))

    def test_delete_is_405(self):
        self.assertChannelError(405, locked_text(self.queue),
                                lambda ch: ch.queue_delete(self.queue))

    def test_bind_is_405(self):
        self.assertChannelError(405, locked_text(self.queue),
                                lambda ch: ch.queue_bind(self.queue, "amq.fanout"))

    def test_unbinding_a_binding_it_has_is_405(self):
        self.owner_channel.queue_bind(self.queue, "amq.direct", "k")
        self.assertChannelError(405, locked_text(self.queue),
                                lambda ch: ch.queue_unbind(self.queue, "amq.direct", "k"))

    def test_unbinding_a_binding_it_lacks_succeeds(self):
        # RabbitMQ checks exclusive access only on a binding that exists (found by tests/diff).
        self.assertAccepted(lambda ch: ch.queue_unbind(self.queue, "amq.direct", "never-bound"))

    def test_publish_to_it_is_allowed(self):
        def publish_confirmed(ch):
            ch.confirm_delivery()  # so the count below includes the message
            ch.basic_publish("", self.queue, b"from another")

        self.assertAccepted(publish_confirmed)
        declare_ok = self.owner_channel.queue_declare(self.queue, passive=True).method
        self.assertEqual(declare_ok.message_count, 2)

    def test_owner_can_still_use_it_after_the_refusals(self):
        self.assertChannelError(405, locked_text(self.queue),
                                lambda ch: ch.queue_delete(self.queue))
        method, _, body = self.owner_channel.basic_get(self.queue, auto_ack=True)
        self.assertEqual(body, b"owned")


class DeleteTest(ErrorTestCase):
    def test_queue_delete_if_unused_with_a_consumer_is_406(self):
        queue = self.delete_later("queue", unique("q"))
        self.channel.queue_declare(queue)
        self.channel.basic_consume(queue, lambda *a: None)
        self.assertChannelError(
            406, "PRECONDITION_FAILED - queue '%s' in vhost '/' in use" % queue,
            lambda ch: ch.queue_delete(queue, if_unused=True), channel=self.new_channel())

    def test_queue_delete_if_empty_with_a_message_is_406(self):
        queue = self.delete_later("queue", unique("q"))
        self.channel.queue_declare(queue)
        self.channel.confirm_delivery()  # the message is in the queue before the delete
        self.channel.basic_publish("", queue, b"x")
        self.assertChannelError(
            406, "PRECONDITION_FAILED - queue '%s' in vhost '/' not empty" % queue,
            lambda ch: ch.queue_delete(queue, if_empty=True))

    def test_queue_delete_if_unused_and_if_empty_on_an_idle_empty_queue_succeeds(self):
        queue = unique("q")
        self.channel.queue_declare(queue)
        delete_ok = self.assertAccepted(
            lambda ch: ch.queue_delete(queue, if_unused=True, if_empty=True))
        self.assertEqual(delete_ok.method.message_count, 0)

    def test_deleting_a_missing_queue_succeeds_with_count_0(self):
        delete_ok = self.assertAccepted(lambda ch: ch.queue_delete(unique("missing-q")))
        self.assertEqual(delete_ok.method.message_count, 0)

    def test_deleting_a_missing_exchange_succeeds(self):
        self.assertAccepted(lambda ch: ch.exchange_delete(unique("missing-x")))

    def test_exchange_delete_if_unused_with_a_queue_binding_is_406(self):
        exchange = self.delete_later("exchange", unique("x"))
        self.channel.exchange_declare(exchange, "direct")
        queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(queue, exchange, "k")
        self.assertChannelError(
            406, "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use" % exchange,
            lambda ch: ch.exchange_delete(exchange, if_unused=True))

    def test_exchange_delete_if_unused_as_source_of_an_exchange_binding_is_406(self):
        source = self.delete_later("exchange", unique("x-src"))
        destination = self.delete_later("exchange", unique("x-dst"))
        self.channel.exchange_declare(source, "direct")
        self.channel.exchange_declare(destination, "direct")
        self.channel.exchange_bind(destination, source, "k")
        self.assertChannelError(
            406, "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use" % source,
            lambda ch: ch.exchange_delete(source, if_unused=True))

    def test_exchange_delete_if_unused_when_only_a_destination_succeeds(self):
        # "Unused" means "is the source of no binding": bindings into it do not count.
        source = self.delete_later("exchange", unique("x-src"))
        destination = unique("x-dst")
        self.channel.exchange_declare(source, "direct")
        self.channel.exchange_declare(destination, "direct")
        self.channel.exchange_bind(destination, source, "k")
        self.assertAccepted(lambda ch: ch.exchange_delete(destination, if_unused=True))


class BindTest(ErrorTestCase):
    def test_binding_a_missing_queue_is_404(self):
        queue = unique("missing-q")
        self.assertChannelError(404, "NOT_FOUND - no queue '%s' in vhost '/'" % queue,
                                lambda ch: ch.queue_bind(queue, "amq.direct", "k"))

    def test_binding_to_a_missing_exchange_is_404(self):
        exchange = unique("missing-x")
        queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.assertChannelError(404, "NOT_FOUND - no exchange '%s' in vhost '/'" % exchange,
                                lambda ch: ch.queue_bind(queue, exchange, "k"))

    def test_binding_when_both_are_missing_reports_the_exchange(self):
        exchange, queue = unique("missing-x"), unique("missing-q")
        self.assertChannelError(404, "NOT_FOUND - no exchange '%s' in vhost '/'" % exchange,
                                lambda ch: ch.queue_bind(queue, exchange, "k"))

    def test_exchange_bind_with_missing_source_or_destination_is_404(self):
        missing = unique("missing-x")
        self.assertChannelError(404, "NOT_FOUND - no exchange '%s' in vhost '/'" % missing,
                                lambda ch: ch.exchange_bind("amq.direct", missing, "k"))
        self.assertChannelError(404, "NOT_FOUND - no exchange '%s' in vhost '/'" % missing,
                                lambda ch: ch.exchange_bind(missing, "amq.direct", "k"),
                                channel=self.new_channel())

    def test_the_default_exchange_is_403_before_a_missing_exchange(self):
        # RabbitMQ checks both sides for the default exchange first (found by tests/diff).
        missing = unique("missing-x")
        text = "ACCESS_REFUSED - operation not permitted on the default exchange"
        self.assertChannelError(403, text, lambda ch: ch.exchange_unbind(missing, "", "k"))
        self.assertChannelError(403, text, lambda ch: ch.exchange_bind(missing, "", "k"),
                                channel=self.new_channel())
        self.assertChannelError(403, text, lambda ch: ch.exchange_unbind("", missing, "k"),
                                channel=self.new_channel())

    def test_unbinding_what_is_not_bound_or_does_not_exist_succeeds(self):
        # RabbitMQ 3.10 makes queue.unbind idempotent, even for a missing queue or exchange.
        queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.assertAccepted(lambda ch: ch.queue_unbind(queue, "amq.direct", "never-bound"))
        self.assertAccepted(lambda ch: ch.queue_unbind(unique("missing-q"), "amq.direct", "k"))
        self.assertAccepted(lambda ch: ch.queue_unbind(queue, unique("missing-x"), "k"))


class PublishTest(ErrorTestCase):
    def test_publish_to_a_missing_exchange_is_404(self):
        exchange = unique("missing-x")
        self.assertChannelError(404, "NOT_FOUND - no exchange '%s' in vhost '/'" % exchange,
                                lambda ch: ch.basic_publish(exchange, "k", b"x"))

    def test_publish_to_an_internal_exchange_is_403(self):
        exchange = self.delete_later("exchange", unique("internal"))
        self.channel.exchange_declare(exchange, "fanout", internal=True)
        self.assertChannelError(
            403, "ACCESS_REFUSED - cannot publish to internal exchange '%s' in vhost '/'" % exchange,
            lambda ch: ch.basic_publish(exchange, "k", b"x"))

    def test_a_missing_exchange_is_404_before_a_bad_expiration(self):
        # RabbitMQ looks the exchange up before it reads the properties (found by tests/diff).
        exchange = unique("missing-x")
        self.assertChannelError(404, "NOT_FOUND - no exchange '%s' in vhost '/'" % exchange,
                                lambda ch: ch.basic_publish(exchange, "k", b"x",
                                                            pika.BasicProperties(expiration="soon")))

    def test_an_internal_exchange_is_403_before_a_bad_expiration(self):
        exchange = self.delete_later("exchange", unique("internal"))
        self.channel.exchange_declare(exchange, "fanout", internal=True)
        self.assertChannelError(
            403, "ACCESS_REFUSED - cannot publish to internal exchange '%s' in vhost '/'" % exchange,
            lambda ch: ch.basic_publish(exchange, "k", b"x", pika.BasicProperties(expiration="-1")))

    def test_a_transactional_publish_to_a_missing_exchange_is_404_at_once(self):
        # Not at tx.commit: RabbitMQ checks the exchange when the publish arrives.
        exchange = unique("missing-x")
        self.channel.tx_select()
        self.assertChannelError(404, "NOT_FOUND - no exchange '%s' in vhost '/'" % exchange,
                                lambda ch: ch.basic_publish(exchange, "k", b"x"))

    def test_publish_with_an_unknown_delivery_mode_is_406(self):
        # RabbitMQ's rabbit_basic:message refuses it (found by tests/diff).
        self.assertChannelError(
            406, "PRECONDITION_FAILED - invalid message: {delivery_mode_unknown,3}",
            lambda ch: ch.basic_publish("", "nowhere", b"x", pika.BasicProperties(delivery_mode=3)))

    def test_a_bad_expiration_is_406_before_a_bad_cc_header(self):
        self.assertChannelError(
            406, "PRECONDITION_FAILED - invalid expiration 'soon': no_integer",
            lambda ch: ch.basic_publish("", "nowhere", b"x",
                                        pika.BasicProperties(expiration="soon", headers={"CC": "a"})))

    def test_publish_with_non_numeric_expiration_is_406(self):
        # RabbitMQ: "PRECONDITION_FAILED - invalid expiration 'abc': no_integer"
        self.assertChannelError(
            406, "PRECONDITION_FAILED - invalid expiration 'abc':",
            lambda ch: ch.basic_publish("", "nowhere", b"x",
                                        pika.BasicProperties(expiration="abc")), prefix=True)

    def test_publish_with_negative_expiration_is_406(self):
        # RabbitMQ: "PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}"
        self.assertChannelError(
            406, "PRECONDITION_FAILED - invalid expiration '-1':",
            lambda ch: ch.basic_publish("", "nowhere", b"x",
                                        pika.BasicProperties(expiration="-1")), prefix=True)

    def test_publish_with_another_user_id_is_406(self):
        self.assertChannelError(
            406, "PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was "
                 "'guest'",
            lambda ch: ch.basic_publish("", "nowhere", b"x", pika.BasicProperties(user_id="bob")))

    def test_publish_to_an_unroutable_key_without_mandatory_is_silently_dropped(self):
        self.assertAccepted(lambda ch: ch.basic_publish("amq.direct", unique("nobody"), b"x"))

    def test_publishes_follow_an_exchange_deleted_and_declared_again_between_them(self):
        # The broker remembers the exchange a channel last published to: deleting it (from
        # another channel) must reach the next publish on this one.
        admin = self.new_channel()
        exchange = self.delete_later("exchange", unique("x"))
        first = admin.queue_declare("", exclusive=True).method.queue
        second = admin.queue_declare("", exclusive=True).method.queue
        admin.exchange_declare(exchange, "fanout")
        admin.queue_bind(first, exchange)
        self.channel.basic_publish(exchange, "k", b"one")
        admin.exchange_delete(exchange)
        admin.exchange_declare(exchange, "direct")
        admin.queue_bind(second, exchange, "k")
        self.channel.basic_publish(exchange, "k", b"two")
        self.channel.queue_declare("", exclusive=True)  # both publishes are routed by now
        bodies = lambda q: [admin.basic_get(q, auto_ack=True)[2] for _ in range(2)]
        self.assertEqual(bodies(first), [b"one", None])
        self.assertEqual(bodies(second), [b"two", None])
        admin.exchange_delete(exchange)
        self.assertChannelError(404, "NOT_FOUND - no exchange '%s' in vhost '/'" % exchange,
                                lambda ch: ch.basic_publish(exchange, "k", b"three"))


class ConsumeTest(ErrorTestCase):
    def test_consume_get_purge_on_a_missing_queue_are_404(self):
        queue = unique("missing-q")
        text = "NOT_FOUND - no queue '%s' in vhost '/'" % queue
        self.assertChannelError(404, text, lambda ch: ch.basic_consume(queue, lambda *a: None))
        self.assertChannelError(404, text, lambda ch: ch.basic_get(queue),
                                channel=self.new_channel())
        self.assertChannelError(404, text, lambda ch: ch.queue_purge(queue),
                                channel=self.new_channel())

    def test_exclusive_consume_on_a_queue_with_a_consumer_is_403(self):
        queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.basic_consume(queue, lambda *a: None)
        self.assertChannelError(
            403, "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % queue,
            lambda ch: ch.basic_consume(queue, lambda *a: None, exclusive=True),
            channel=self.new_channel())

    def test_consume_on_a_queue_with_an_exclusive_consumer_is_403(self):
        queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.basic_consume(queue, lambda *a: None, exclusive=True)
        self.assertChannelError(
            403, "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % queue,
            lambda ch: ch.basic_consume(queue, lambda *a: None), channel=self.new_channel())

    def test_duplicate_consumer_tag_on_a_channel_closes_the_connection_with_530(self):
        # pika refuses a duplicate tag itself, so this speaks raw AMQP.
        queue = unique("q")
        self.channel.queue_declare(queue, auto_delete=True)
        self.delete_later("queue", queue)
        with RawConnection() as raw:
            raw.handshake()
            raw.open_channel(1)
            raw.send(method_frame(1, BASIC_CONSUME, consume_args(queue, "ctag")))
            raw.read_method(BASIC_CONSUME_OK)
            raw.send(method_frame(1, BASIC_CONSUME, consume_args(queue, "ctag")))
            close = raw.expect_connection_close()
            self.assertEqual((close.reply_code, close.reply_text, close.class_id,
                              close.method_id),
                             (530, "NOT_ALLOWED - attempt to reuse consumer tag 'ctag'", 60, 20))
            self.assertTrue(raw.wait_closed())
        harness.assert_broker_alive(self)

    def test_the_same_consumer_tag_on_two_channels_is_allowed(self):
        queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.basic_consume(queue, lambda *a: None, consumer_tag="shared")
        self.assertAccepted(lambda ch: self.new_channel().basic_consume(
            queue, lambda *a: None, consumer_tag="shared"))


class AckTest(ErrorTestCase):
    def fill(self, count):
        queue = self.channel.queue_declare("", exclusive=True).method.queue
        for n in range(count):
            self.channel.basic_publish("", queue, str(n).encode())
        return queue

    def test_ack_of_an_unknown_delivery_tag_is_406(self):
        self.assertChannelError(406, "PRECONDITION_FAILED - unknown delivery tag 5",
                                lambda ch: ch.basic_ack(5))

    def test_nack_and_reject_of_an_unknown_delivery_tag_are_406(self):
        self.assertChannelError(406, "PRECONDITION_FAILED - unknown delivery tag 5",
                                lambda ch: ch.basic_nack(5))
        self.assertChannelError(406, "PRECONDITION_FAILED - unknown delivery tag 7",
                                lambda ch: ch.basic_reject(7), channel=self.new_channel())

    def test_double_ack_is_406(self):
        queue = self.fill(1)

        def ack_twice(ch):
            method, _, _ = ch.basic_get(queue)
            ch.basic_ack(method.delivery_tag)
            ch.basic_ack(method.delivery_tag)

        self.assertChannelError(406, "PRECONDITION_FAILED - unknown delivery tag 1", ack_twice)

    def test_ack_multiple_of_a_tag_already_acked_is_406(self):
        # RabbitMQ's collect_acks wants the tag itself outstanding, multiple or not (tests/diff).
        queue = self.fill(3)

        def ack(ch):
            tags = [ch.basic_get(queue)[0].delivery_tag for _ in range(3)]
            ch.basic_ack(tags[1])
            ch.basic_ack(tags[1], multiple=True)

        self.assertChannelError(406, "PRECONDITION_FAILED - unknown delivery tag 2", ack)

    def test_ack_multiple_up_to_an_outstanding_tag_past_a_settled_one_succeeds(self):
        queue = self.fill(3)
        tags = [self.channel.basic_get(queue)[0].delivery_tag for _ in range(3)]
        self.channel.basic_ack(tags[1])
        self.assertAccepted(lambda ch: ch.basic_ack(tags[2], multiple=True))

    def test_an_unknown_tag_in_a_transaction_is_406_at_once(self):
        # Not at tx.commit: RabbitMQ checks the tag when the ack arrives (tests/diff).
        def ack(ch):
            ch.tx_select()
            ch.basic_ack(1)

        self.assertChannelError(406, "PRECONDITION_FAILED - unknown delivery tag 1", ack)

    def test_a_double_ack_in_a_transaction_is_406_at_once(self):
        queue = self.fill(1)

        def ack_twice(ch):
            ch.tx_select()
            method, _, _ = ch.basic_get(queue)
            ch.basic_ack(method.delivery_tag)
            ch.basic_reject(method.delivery_tag)

        self.assertChannelError(406, "PRECONDITION_FAILED - unknown delivery tag 1", ack_twice)

    def test_ack_of_an_auto_acked_delivery_is_406(self):
        queue = self.fill(1)

        def ack(ch):
            method, _, _ = ch.basic_get(queue, auto_ack=True)
            ch.basic_ack(method.delivery_tag)

        self.assertChannelError(406, "PRECONDITION_FAILED - unknown delivery tag 1", ack)

    def test_ack_of_tag_0_without_multiple_is_406(self):
        self.assertChannelError(406, "PRECONDITION_FAILED - unknown delivery tag 0",
                                lambda ch: ch.basic_ack(0))

    def test_ack_multiple_of_tag_0_with_nothing_outstanding_succeeds(self):
        self.assertAccepted(lambda ch: ch.basic_ack(0, multiple=True))

    def test_ack_on_another_channel_is_406(self):
        queue = self.fill(1)
        method, _, _ = self.channel.basic_get(queue)
        other = self.new_channel()
        self.assertChannelError(406, "PRECONDITION_FAILED - unknown delivery tag 1",
                                lambda ch: ch.basic_ack(method.delivery_tag), channel=other)
        self.assertTrue(self.channel.is_open)
        self.channel.basic_ack(method.delivery_tag)

    def test_qos_then_ack_multiple_releases_every_delivery_up_to_the_tag(self):
        queue = self.fill(9)
        self.channel.basic_qos(prefetch_count=3)
        received = []
        self.channel.basic_consume(queue, lambda ch, m, p, b: received.append(m.delivery_tag))
        pump_until(self.connection, lambda: len(received) == 3)
        pump(self.connection, 0.2)
        self.assertEqual(received, [1, 2, 3])
        self.channel.basic_ack(3, multiple=True)
        pump_until(self.connection, lambda: len(received) == 6)
        pump(self.connection, 0.2)
        self.assertEqual(received, [1, 2, 3, 4, 5, 6])
        self.channel.basic_ack(0, multiple=True)  # tag 0 + multiple: everything outstanding
        pump_until(self.connection, lambda: len(received) == 9)
        self.assertEqual(received, list(range(1, 10)))
        self.channel.basic_ack(9, multiple=True)
        self.channel.close()
        channel = self.connection.channel()
        self.assertEqual(channel.queue_declare(queue, passive=True).method.message_count, 0)


class NotImplementedTest(ErrorTestCase):
    """RabbitMQ's 540 NOT_IMPLEMENTED errors are connection errors."""

    def test_prefetch_size_is_540(self):
        self.assertConnectionError(540, "NOT_IMPLEMENTED - prefetch_size!=0 (1)",
                                   lambda ch: ch.basic_qos(prefetch_size=1))

    def test_recover_without_requeue_is_540(self):
        self.assertConnectionError(540, "NOT_IMPLEMENTED - requeue=false",
                                   lambda ch: ch.basic_recover(requeue=False))

    def test_publish_with_immediate_is_540(self):
        # pika cannot set immediate; the raw frame also sets mandatory in a second case.
        for bits in (2, 3):
            with self.subTest(bits=bits), RawConnection() as raw:
                raw.handshake()
                raw.open_channel(1)
                raw.send(method_frame(1, BASIC_PUBLISH,
                                      short(0) + shortstr("") + shortstr("nowhere") + octet(bits)))
                raw.send(header_frame(1, 60, 1))
                raw.send(frame(harness.FRAME_BODY, 1, b"x"))
                close = raw.expect_connection_close()
                self.assertEqual((close.reply_code, close.reply_text, close.class_id,
                                  close.method_id),
                                 (540, "NOT_IMPLEMENTED - immediate=true", 60, 40))
                self.assertTrue(raw.wait_closed())
        harness.assert_broker_alive(self)


class TransactionAndConfirmModeTest(ErrorTestCase):
    def test_commit_without_select_is_406(self):
        self.assertChannelError(406, "PRECONDITION_FAILED - channel is not transactional",
                                lambda ch: ch.tx_commit())

    def test_rollback_without_select_is_406(self):
        self.assertChannelError(406, "PRECONDITION_FAILED - channel is not transactional",
                                lambda ch: ch.tx_rollback())

    def test_confirm_select_on_a_transactional_channel_is_406(self):
        def both(ch):
            ch.tx_select()
            ch.confirm_delivery()

        self.assertChannelError(406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
                                both)

    def test_tx_select_on_a_confirm_channel_is_406(self):
        def both(ch):
            ch.confirm_delivery()
            ch.tx_select()

        self.assertChannelError(406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
                                both)

    def test_tx_select_twice_is_accepted(self):
        def twice(ch):
            ch.tx_select()
            ch.tx_select()

        self.assertAccepted(twice)


class QueueArgumentValidationTest(ErrorTestCase):
    """Invalid x-arguments: 406 "invalid arg '<name>' for queue '<q>' in vhost '/': <reason>".
    The reason is an Erlang term in RabbitMQ 3.10; it is recorded here and compared only up to
    the colon before it."""

    CASES = [
        # (arguments, RabbitMQ's reason after "...in vhost '/': ")
        ({"x-message-ttl": "abc"}, '"expected integer, got longstr"'),
        ({"x-message-ttl": -1}, "{value_negative,-1}"),
        ({"x-expires": 0}, "{value_zero,0}"),
        ({"x-expires": -5}, "{value_negative,-5}"),
        ({"x-expires": "a"}, '"expected integer, got longstr"'),
        ({"x-max-length": -1}, "{value_negative,-1}"),
        ({"x-max-length": "a"}, '"expected integer, got longstr"'),
        ({"x-max-length-bytes": -1}, "{value_negative,-1}"),
        ({"x-max-priority": "abc"}, '"expected integer, got longstr"'),
        ({"x-max-priority": -1}, "{value_negative,-1}"),
        ({"x-max-priority": 256}, "{max_value_exceeded,256}"),
        ({"x-overflow": "foo"}, "invalid_overflow"),
        ({"x-overflow": 1}, "{unacceptable_type,signedint}"),
        ({"x-dead-letter-routing-key": "k"}, "routing_key_but_no_dlx_defined"),
        ({"x-single-active-consumer": "yes"}, "{unacceptable_type,longstr}"),
        ({"x-queue-type": "foo"}, "\"unsupported queue type 'foo'\""),
        ({"x-queue-mode": "foo"}, "\"unsupported queue mode 'foo'\""),
    ]

    def test_invalid_arguments_are_406(self):
        for arguments, reason in self.CASES:
            with self.subTest(arguments=arguments, rabbitmq_reason=reason):
                name = unique("q")
                (key,) = arguments
                self.assertChannelError(
                    406, "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '/':"
                         % (key, name),
                    lambda ch: ch.queue_declare(name, auto_delete=True, arguments=arguments),
                    channel=self.new_channel(), prefix=True)

    def test_dead_letter_exchange_of_the_wrong_type_is_406(self):
        # A different sentence from the others.
        name = unique("q")
        self.assertChannelError(
            406, "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' "
                 "in queue '%s' in vhost '/'" % name,
            lambda ch: ch.queue_declare(name, arguments={"x-dead-letter-exchange": 1}))

    def test_max_priority_255_is_accepted(self):
        self.assertAccepted(lambda ch: ch.queue_declare(
            "", exclusive=True, arguments={"x-max-priority": 255}))


if __name__ == "__main__":
    unittest.main()
