#!/usr/bin/python3
"""RPC through direct reply-to: instead of declaring a callback queue, the client consumes
(without acknowledgements) from the pseudo-queue "amq.rabbitmq.reply-to" and names it in
reply_to; the broker hands the server's reply straight to this channel. The consumer must exist
before the request is published, on the same channel."""

import sys
import uuid

import pika

import common

REPLY_TO = "amq.rabbitmq.reply-to"


def main():
    argument_parser = common.parser(__doc__, timeout=True)
    argument_parser.add_argument("n", nargs="?", default="30", help="default: 30")
    args = common.parse(argument_parser)

    connection = common.connect(args)
    channel = connection.channel()
    correlation_id = uuid.uuid4().hex
    replies = []

    def on_reply(channel, method, properties, body):
        if properties.correlation_id == correlation_id:
            replies.append(body.decode("utf-8", "replace"))

    channel.basic_consume(queue=REPLY_TO, on_message_callback=on_reply, auto_ack=True)
    print(" [x] Requesting fib(%s)" % args.n, flush=True)
    channel.basic_publish(
        exchange="", routing_key="rpc_queue", body=args.n.encode(),
        properties=pika.BasicProperties(reply_to=REPLY_TO, correlation_id=correlation_id))

    if not common.wait_until(connection, args, lambda: replies):
        print(" [!] No reply to fib(%s)" % args.n, file=sys.stderr)
        common.close(connection)
        return 1
    print(" [.] Got %s" % replies[0], flush=True)
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
