#!/usr/bin/python3
"""Topics, a subscriber: binds its own exclusive queue to "topic_logs" once per pattern on the
command line, where "*" stands for exactly one word and "#" for zero or more, and prints what
arrives with its routing key. A message matching several patterns still arrives once."""

import sys

import common


def main():
    argument_parser = common.parser(__doc__, count=True, timeout=True)
    argument_parser.add_argument("binding_keys", nargs="+", metavar="BINDING_KEY",
                                 help="e.g. 'kern.*' '*.critical' '#'")
    args = common.parse(argument_parser)

    connection = common.connect(args)
    channel = connection.channel()
    channel.exchange_declare(exchange="topic_logs", exchange_type="topic")
    queue = channel.queue_declare(queue="", exclusive=True).method.queue
    for binding_key in args.binding_keys:
        channel.queue_bind(queue=queue, exchange="topic_logs", routing_key=binding_key)

    def show(channel, method, properties, body):
        print(" [x] Received %s:'%s'" % (method.routing_key, body.decode("utf-8", "replace")),
              flush=True)

    return common.consume(connection, channel, queue, args, show)


if __name__ == "__main__":
    sys.exit(main())
