#!/usr/bin/python3
"""Routing, a subscriber: binds its own exclusive queue to "direct_logs" once per severity named
on the command line and prints what arrives with its routing key."""

import sys

import common


def main():
    argument_parser = common.parser(__doc__, count=True, timeout=True)
    argument_parser.add_argument("severities", nargs="+", metavar="SEVERITY",
                                 help="e.g. info warning error")
    args = common.parse(argument_parser)

    connection = common.connect(args)
    channel = connection.channel()
    channel.exchange_declare(exchange="direct_logs", exchange_type="direct")
    queue = channel.queue_declare(queue="", exclusive=True).method.queue
    for severity in args.severities:
        channel.queue_bind(queue=queue, exchange="direct_logs", routing_key=severity)

    def show(channel, method, properties, body):
        print(" [x] Received %s:'%s'" % (method.routing_key, body.decode("utf-8", "replace")),
              flush=True)

    return common.consume(connection, channel, queue, args, show)


if __name__ == "__main__":
    sys.exit(main())
