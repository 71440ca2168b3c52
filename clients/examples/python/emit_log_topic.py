#!/usr/bin/python3
"""Topics, the publisher: sends one log line to the topic exchange "topic_logs" under a
dot-separated routing key such as "kern.critical"; queues receive it when one of their binding
patterns matches the key."""

import common


def main():
    argument_parser = common.parser(__doc__)
    argument_parser.add_argument("routing_key", nargs="?", default="anonymous.info",
                                 help="default: anonymous.info")
    argument_parser.add_argument("message", nargs="*", help="default: Hello World!")
    args = common.parse(argument_parser)
    message = " ".join(args.message) or "Hello World!"

    connection = common.connect(args)
    channel = connection.channel()
    channel.exchange_declare(exchange="topic_logs", exchange_type="topic")
    channel.basic_publish(exchange="topic_logs", routing_key=args.routing_key,
                          body=message.encode())
    print(" [x] Sent %s:'%s'" % (args.routing_key, message), flush=True)
    connection.close()


if __name__ == "__main__":
    main()
