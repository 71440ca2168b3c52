#!/usr/bin/python3
"""Checks a relay back end's slow-consumer path: the consumer stalls 2 s while the producer
sends 10 MiB, so the relay must pause reading (high-water mark), resume, and send partially;
then every byte must arrive in order. Prints the relay's summary line (passes, pauses).

  clients/bench/io_lever/check_flow.py build/clients/bench/io_lever/relay uring-waitsend
"""
import socket
import subprocess
import sys
import threading
import time


def main():
    relay_path, backend = sys.argv[1], sys.argv[2]
    relay = subprocess.Popen([relay_path, "--backend", backend], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    port = int(relay.stdout.readline().split()[1])
    consumer = socket.create_connection(("127.0.0.1", port))
    consumer.send(b"C")
    producer = socket.create_connection(("127.0.0.1", port))
    producer.send(b"P")
    data = bytes(range(256)) * (40 * 1024)

    def produce():
        producer.sendall(data)
        producer.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=produce)
    thread.start()
    time.sleep(2)
    received = bytearray()
    while chunk := consumer.recv(1 << 20):
        received += chunk
    thread.join()
    relay.wait(timeout=10)
    summary = relay.stderr.read().strip().splitlines()
    ok = bytes(received) == data and relay.returncode == 0
    print(f"{backend}: {'ok' if ok else 'FAILED'}, {len(received)} bytes; {summary[0] if summary else ''}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
