#!/usr/bin/python3
"""RPC, a client: declares its own exclusive callback queue, sends "N" to "rpc_queue" with
reply_to naming that queue and a random correlation_id, and prints the reply carrying the same
correlation_id (replies to earlier requests are skipped)."""

import sys
import uuid

import pika

import common


def main():
    argument_parser = common.parser(__doc__, timeout=True)
    argument_parser.add_argument("n", nargs="?", default="30", help="default: 30")
    args = common.parse(argument_parser)

    connection = common.connect(args)
    channel = connection.channel()
    callback_queue = channel.queue_declare(queue="", exclusive=True).method.queue
    correlation_id = uuid.uuid4().hex
    replies = []

    def on_reply(channel, method, properties, body):
        if properties.correlation_id == correlation_id:
            replies.append(body.decode("utf-8", "replace"))

    channel.basic_consume(queue=callback_queue, on_message_callback=on_reply, auto_ack=True)
    print(" [x] Requesting fib(%s)" % args.n, flush=True)
    channel.basic_publish(
        exchange="", routing_key="rpc_queue", body=args.n.encode(),
        properties=pika.BasicProperties(reply_to=callback_queue, correlation_id=correlation_id))

    if not common.wait_until(connection, args, lambda: replies):
        print(" [!] No reply to fib(%s)" % args.n, file=sys.stderr)
        common.close(connection)
        return 1
    print(" [.] Got %s" % replies[0], flush=True)
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
