#!/usr/bin/python3
"""Work queue, the producer: publishes one task to the durable queue "task_queue" as a
persistent message (delivery mode 2), so a broker that stores messages keeps it across a
restart. Each "." in the task is one unit of work for the worker."""

import pika

import common


def main():
    argument_parser = common.parser(__doc__)
    argument_parser.add_argument("task", nargs="*", help="default: Hello World!")
    args = common.parse(argument_parser)
    task = " ".join(args.task) or "Hello World!"

    connection = common.connect(args)
    channel = connection.channel()
    channel.queue_declare(queue="task_queue", durable=True)
    channel.basic_publish(
        exchange="", routing_key="task_queue", body=task.encode(),
        properties=pika.BasicProperties(delivery_mode=2))  # 2: persistent
    print(" [x] Sent '%s'" % task, flush=True)
    connection.close()


if __name__ == "__main__":
    main()
