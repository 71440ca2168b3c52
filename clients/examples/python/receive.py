#!/usr/bin/python3
"""Hello world, the consumer: declares the queue "hello" and prints every message delivered
from it (automatic acknowledgement)."""

import sys

import common


def main():
    args = common.parse(common.parser(__doc__, count=True, timeout=True))
    connection = common.connect(args)
    channel = connection.channel()
    channel.queue_declare(queue="hello")

    def show(channel, method, properties, body):
        print(" [x] Received '%s'" % body.decode("utf-8", "replace"), flush=True)

    return common.consume(connection, channel, "hello", args, show)


if __name__ == "__main__":
    sys.exit(main())
