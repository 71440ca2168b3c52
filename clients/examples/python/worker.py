#!/usr/bin/python3
"""Work queue, the consumer: takes tasks from "task_queue" one at a time (prefetch 1, so a busy
worker is not handed more) and acknowledges each only after the work is done, so a task whose
worker dies goes to another worker. Work is simulated by sleeping --delay seconds
($WORKER_DELAY, default 1) per "." in the task."""

import os
import sys
import time

import common


def main():
    argument_parser = common.parser(__doc__, count=True, timeout=True)
    argument_parser.add_argument("--delay", type=float, metavar="SECONDS_PER_DOT",
                                 default=float(os.environ.get("WORKER_DELAY") or 1.0),
                                 help="simulated work per '.' (default: $WORKER_DELAY, else 1)")
    args = common.parse(argument_parser)

    connection = common.connect(args)
    channel = connection.channel()
    channel.queue_declare(queue="task_queue", durable=True)
    channel.basic_qos(prefetch_count=1)

    def work(channel, method, properties, body):
        task = body.decode("utf-8", "replace")
        print(" [x] Received '%s'" % task, flush=True)
        time.sleep(task.count(".") * args.delay)
        print(" [x] Done", flush=True)
        channel.basic_ack(delivery_tag=method.delivery_tag)

    return common.consume(connection, channel, "task_queue", args, work, auto_ack=False)


if __name__ == "__main__":
    sys.exit(main())
