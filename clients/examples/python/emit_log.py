#!/usr/bin/python3
"""Publish/subscribe, the publisher: sends one log line to the fanout exchange "logs", which
copies it to every bound queue and ignores the routing key."""

import common


def main():
    argument_parser = common.parser(__doc__)
    argument_parser.add_argument("message", nargs="*", help="default: info: Hello World!")
    args = common.parse(argument_parser)
    message = " ".join(args.message) or "info: Hello World!"

    connection = common.connect(args)
    channel = connection.channel()
    channel.exchange_declare(exchange="logs", exchange_type="fanout")
    # With no subscriber bound the message is simply dropped: logs nobody reads are lost.
    channel.basic_publish(exchange="logs", routing_key="", body=message.encode())
    print(" [x] Sent '%s'" % message, flush=True)
    connection.close()


if __name__ == "__main__":
    main()
