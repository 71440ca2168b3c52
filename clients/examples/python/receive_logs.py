#!/usr/bin/python3
"""Publish/subscribe, a subscriber: binds its own exclusive, server-named queue to the fanout
exchange "logs", so every running subscriber gets a copy of every log line published while it
runs."""

import sys

import common


def main():
    args = common.parse(common.parser(__doc__, count=True, timeout=True))
    connection = common.connect(args)
    channel = connection.channel()
    channel.exchange_declare(exchange="logs", exchange_type="fanout")
    # An empty name asks the broker to make one up; exclusive: deleted when we disconnect.
    queue = channel.queue_declare(queue="", exclusive=True).method.queue
    channel.queue_bind(queue=queue, exchange="logs")

    def show(channel, method, properties, body):
        print(" [x] Received '%s'" % body.decode("utf-8", "replace"), flush=True)

    return common.consume(connection, channel, queue, args, show)


if __name__ == "__main__":
    sys.exit(main())
