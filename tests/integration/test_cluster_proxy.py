"""The partition proxy of the cluster tests (cluster_proxy.py) on its own, with plain sockets in
the nodes' place: it forwards a connection by the hello's dialler, both ways and unchanged; a cut
closes the pair's connections and refuses new ones, in both directions, and leaves other pairs
alone; heal lets them through again; stop leaves no thread running. No broker needed."""

import socket
import struct
import threading
import unittest

import harness
from cluster_proxy import PartitionProxy


def hello(address):
    """A hello as cluster_link.h has it, dialler `address`, followed by a nonce's worth of bytes."""
    raw = address.encode()
    return b"WRNC" + b"R" + struct.pack(">QH", 1, len(raw)) + raw + b"n" * 16


class EchoNode:
    """A node's real cluster port: echoes whatever arrives, on every connection."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(sock,), daemon=True).start()

    @staticmethod
    def echo(sock):
        with sock:
            try:
                while True:
                    data = sock.recv(4096)
                    if not data:
                        return
                    sock.sendall(data)
            except OSError:
                return

    def close(self):
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(5)


class PartitionProxyTest(unittest.TestCase):
    def setUp(self):
        self.nodes = [EchoNode() for _ in range(3)]
        self.addresses = ["127.0.0.1:%d" % harness.free_port() for _ in self.nodes]
        self.proxy = PartitionProxy({a: n.port for a, n in zip(self.addresses, self.nodes)})
        self.addCleanup(lambda: [n.close() for n in self.nodes])
        self.addCleanup(self.proxy.stop)

    def dial(self, source, destination):
        """Connects as node `source` to node `destination` through the proxy; returns the socket
        after a round trip of the hello, or None when the proxy refused the connection."""
        host, port = self.addresses[destination].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=5)
        message = hello(self.addresses[source])
        sock.sendall(message)
        got = b""
        try:
            while len(got) < len(message):
                piece = sock.recv(4096)
                if not piece:
                    sock.close()
                    return None
                got += piece
        except ConnectionResetError:
            sock.close()
            return None
        self.assertEqual(got, message)
        return sock

    def assert_closed(self, sock):
        sock.settimeout(5)
        try:
            self.assertEqual(sock.recv(10), b"")
        except ConnectionResetError:
            pass
        sock.close()

    def test_cut_closes_and_refuses_one_pair_both_ways_until_healed(self):
        a_to_b, b_to_a, a_to_c = self.dial(0, 1), self.dial(1, 0), self.dial(0, 2)
        self.assertEqual(self.proxy.forwarded, 3)
        self.proxy.cut(self.addresses[0], self.addresses[1])
        self.assert_closed(a_to_b)
        self.assert_closed(b_to_a)
        self.assertIsNone(self.dial(0, 1))
        self.assertIsNone(self.dial(1, 0))
        a_to_c.sendall(b"still")  # another pair is left alone
        self.assertEqual(a_to_c.recv(10), b"still")
        self.assertEqual(self.proxy.refused, 2)
        self.proxy.heal()
        again = self.dial(0, 1)
        self.assertIsNotNone(again)
        again.close()
        a_to_c.close()

    def test_isolate_cuts_a_node_from_every_other(self):
        self.proxy.isolate(self.addresses[2])
        self.assertIsNone(self.dial(0, 2))
        self.assertIsNone(self.dial(2, 1))
        kept = self.dial(0, 1)
        self.assertIsNotNone(kept)
        kept.close()

    def test_a_stranger_without_a_hello_is_dropped(self):
        host, port = self.addresses[0].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        self.assert_closed(sock)
        self.assertEqual(self.proxy.forwarded, 0)


if __name__ == "__main__":
    unittest.main()
