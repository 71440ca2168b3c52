#!/usr/bin/python3
"""Routing, the publisher: sends one log line to the direct exchange "direct_logs" with its
severity as the routing key; only queues bound with exactly that key receive it."""

import common


def main():
    argument_parser = common.parser(__doc__)
    argument_parser.add_argument("severity", nargs="?", default="info", help="default: info")
    argument_parser.add_argument("message", nargs="*", help="default: Hello World!")
    args = common.parse(argument_parser)
    message = " ".join(args.message) or "Hello World!"

    connection = common.connect(args)
    channel = connection.channel()
    channel.exchange_declare(exchange="direct_logs", exchange_type="direct")
    channel.basic_publish(exchange="direct_logs", routing_key=args.severity, body=message.encode())
    print(" [x] Sent %s:'%s'" % (args.severity, message), flush=True)
    connection.close()


if __name__ == "__main__":
    main()
