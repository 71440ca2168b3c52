"""Shared by the Python examples, so each script shows only its scenario: connection settings
from flags or $AMQP_URL, and a consume loop bounded by --count, --timeout and CTRL+C.

Connection settings default to $AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/; the flags
--url, --host, --port, --user, --password and --vhost override it."""

import argparse
import os
import signal
import sys
import time
import urllib.parse

import pika

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def parser(description, count=False, timeout=False):
    """An ArgumentParser with the connection flags, plus --count/--timeout when asked for."""
    result = argparse.ArgumentParser(description=description, epilog=__doc__.split("\n\n")[1])
    result.add_argument("--url", help="amqp://USER:PASSWORD@HOST:PORT/VHOST")
    result.add_argument("--host")
    result.add_argument("--port", type=int)
    result.add_argument("--user")
    result.add_argument("--password")
    result.add_argument("--vhost")
    if count:
        result.add_argument("--count", type=int, default=0, metavar="N",
                            help="exit after N messages")
    if timeout:
        result.add_argument("--timeout", type=float, default=0, metavar="SECONDS",
                            help="give up SECONDS after start")
    return result


def parse(argument_parser):
    """Parses sys.argv; makes SIGTERM behave as CTRL+C so both end a program cleanly."""
    args = argument_parser.parse_args()
    args.started_at = time.monotonic()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return args


def connection_parameters(args):
    url = urllib.parse.urlsplit(args.url or os.environ.get("AMQP_URL") or DEFAULT_URL)
    if url.scheme != "amqp":
        sys.exit("not an amqp:// URL: %s" % url.geturl())
    # "amqp://host/" names the empty vhost in the URI spec; read it as "/" as pika does, since
    # no broker has an empty vhost.
    vhost = urllib.parse.unquote(url.path[1:]) or "/"
    return pika.ConnectionParameters(
        host=args.host or url.hostname or "127.0.0.1",
        port=args.port or url.port or 5672,
        virtual_host=args.vhost or vhost,
        credentials=pika.PlainCredentials(
            args.user or urllib.parse.unquote(url.username or "guest"),
            args.password or urllib.parse.unquote(url.password or "guest")))


def connect(args):
    """A BlockingConnection from the flags and $AMQP_URL; exits with a message on failure."""
    parameters = connection_parameters(args)
    try:
        return pika.BlockingConnection(parameters)
    except pika.exceptions.AMQPError as error:
        sys.exit("error: connecting to %s:%d: %r" % (parameters.host, parameters.port, error))


def close(connection):
    """Closes the connection unless it already is (e.g. after CTRL+C mid-call)."""
    try:
        if connection.is_open:
            connection.close()
    except (pika.exceptions.AMQPError, KeyboardInterrupt):
        pass


def seconds_left(args):
    """Seconds until --timeout runs out; None when there is no --timeout."""
    if not getattr(args, "timeout", 0):
        return None
    return args.started_at + args.timeout - time.monotonic()


def consume(connection, channel, queue, args, handle, auto_ack=True,
            ready=" [*] Waiting for messages. To exit press CTRL+C"):
    """Consumes `queue`, calling handle(channel, method, properties, body) per message, until
    --count messages were handled, --timeout ran out or CTRL+C. Prints `ready` once the broker
    has confirmed the consumer. Returns the exit status: 1 when the time ran out before
    --count, else 0."""
    handled = 0

    def on_message(channel_, method, properties, body):
        nonlocal handled
        if args.count and handled >= args.count:
            return  # already stopping; an extra message in flight is left unhandled
        handle(channel_, method, properties, body)
        handled += 1
        if args.count and handled >= args.count:
            channel_.stop_consuming()

    channel.basic_consume(queue, on_message, auto_ack=auto_ack)
    print(ready, flush=True)
    left = seconds_left(args)
    timed_out = False

    def on_timeout():
        nonlocal timed_out
        timed_out = True
        channel.stop_consuming()

    if left is not None:
        connection.call_later(max(left, 0), on_timeout)
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        pass
    close(connection)
    if timed_out and args.count and handled < args.count:
        print(" [!] Timed out after %g s with %d of %d messages"
              % (args.timeout, handled, args.count), file=sys.stderr)
        return 1
    return 0


def wait_until(connection, args, done):
    """Serves the connection until done() is true (returns True), --timeout runs out or CTRL+C
    (returns False)."""
    try:
        while not done():
            left = seconds_left(args)
            if left is not None and left <= 0:
                return False
            connection.process_data_events(time_limit=0.2 if left is None else min(left, 0.2))
    except KeyboardInterrupt:
        return False
    return True
