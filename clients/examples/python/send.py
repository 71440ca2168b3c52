#!/usr/bin/python3
"""Hello world, the producer: declares the queue "hello" and publishes one message to it
through the default exchange, whose routing key is a queue name."""

import common


def main():
    argument_parser = common.parser(__doc__)
    argument_parser.add_argument("message", nargs="*", help="default: Hello World!")
    args = common.parse(argument_parser)
    message = " ".join(args.message) or "Hello World!"

    connection = common.connect(args)
    channel = connection.channel()
    # Declaring is idempotent; whichever of send and receive runs first creates the queue.
    channel.queue_declare(queue="hello")
    channel.basic_publish(exchange="", routing_key="hello", body=message.encode())
    print(" [x] Sent '%s'" % message, flush=True)
    connection.close()


if __name__ == "__main__":
    main()
