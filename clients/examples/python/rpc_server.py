#!/usr/bin/python3
"""RPC, the server: takes requests from the queue "rpc_queue", one at a time, and answers each
with fib(N) by publishing to the request's reply_to queue with the request's correlation_id,
then acknowledges the request. Several servers may share the queue to spread the load."""

import sys

import pika

import common

FIB_MAX = 93  # the largest n whose fib(n) fits in 64 bits, as in the C server


def fib(n):
    previous, current = 0, 1
    for _ in range(n):
        previous, current = current, previous + current
    return previous


def answer(body):
    """fib(N) in decimal for a body "N", or an error text when N is not a number 0..FIB_MAX."""
    try:
        n = int(body.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        n = -1
    if not 0 <= n <= FIB_MAX:
        return "error: not a number from 0 to %d" % FIB_MAX
    return str(fib(n))


def main():
    args = common.parse(common.parser(__doc__, count=True, timeout=True))
    connection = common.connect(args)
    channel = connection.channel()
    channel.queue_declare(queue="rpc_queue")
    channel.basic_qos(prefetch_count=1)

    def serve(channel, method, properties, body):
        print(" [.] fib(%s)" % body.decode("utf-8", "replace"), flush=True)
        if properties.reply_to:
            # The default exchange routes by queue name, and reply_to names the client's queue
            # (or the direct reply-to pseudo-queue, which the broker resolves).
            channel.basic_publish(
                exchange="", routing_key=properties.reply_to, body=answer(body).encode(),
                properties=pika.BasicProperties(correlation_id=properties.correlation_id))
        else:
            print(" [!] request without reply_to, nobody to answer", file=sys.stderr)
        channel.basic_ack(delivery_tag=method.delivery_tag)

    return common.consume(connection, channel, "rpc_queue", args, serve, auto_ack=False,
                          ready=" [*] Waiting for RPC requests. To exit press CTRL+C")


if __name__ == "__main__":
    sys.exit(main())
