"""Network partitions between cluster nodes without root (issue 13): a TCP proxy in front of each
node's cluster port, which a test tells to cut or heal the links between pairs of nodes.

Each node advertises a port the proxy listens on (its entry of cluster_peers, chosen by
cluster_address) and listens itself on another (cluster_port); the proxy forwards one to the
other. Every cluster connection opens with a hello naming the node that dials (broker/cluster/
cluster_link.h):
    [4] "WRNC"  [1] kind  [8] raft id  [2] address length  [n] the dialler's advertised address
so the proxy knows both ends of each connection: the dialler from its hello, the destination from
the port it arrived on. It forwards the hello and every later byte unchanged, both ways, unless
the pair is cut: cut() closes the pair's connections at once and refuses (closes) new ones until
heal(). A cut is symmetric, like a partition of the network; nodes see their connections reset,
then connection attempts that end as soon as they are made.

Bounds: at most MAX_CONNECTIONS forwarded connections (two pump threads each) and one acceptor
thread per node; stop() closes every socket and joins every thread, and raises if one is left.
Client (AMQP) traffic does not go through the proxy.
"""

import socket
import struct
import threading
import time

MAGIC = b"WRNC"
HELLO_FIXED = 15  # magic, kind, id, address length
HELLO_TIMEOUT = 5.0  # as LINK_HANDSHAKE_MS: a dialler that says nothing is dropped
CONNECT_TIMEOUT = 2.0
MAX_CONNECTIONS = 128
CHUNK = 65536


def _recv_exactly(sock, n):
    """n bytes from sock, or None when it closes first."""
    data = b""
    while len(data) < n:
        piece = sock.recv(n - len(data))
        if not piece:
            return None
        data += piece
    return data


class _Pair:
    """One forwarded connection: the dialler's socket and the one to the destination node. Either
    pump ending (EOF, error, a cut) ends both directions: Raft's streams never half-close."""

    def __init__(self, source, destination, downstream, upstream):
        self.source, self.destination = source, destination
        self.downstream, self.upstream = downstream, upstream
        self.lock = threading.Lock()
        self.closed = False
        self.threads = []

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        # shutdown first: it wakes a pump blocked in recv or sendall on the other thread.
        for sock in (self.downstream, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class PartitionProxy:
    """Forwards each advertised address to a node's real port. routes maps an advertised
    "host:port" to the port the node listens on (same host). Nodes are named by their advertised
    address throughout."""

    def __init__(self, routes):
        self.routes = dict(routes)
        self.lock = threading.Lock()
        self.cuts = set()  # frozenset({a, b}) of advertised addresses
        self.pairs = set()
        self.accepted = 0  # connections accepted and not yet ended (set up or forwarded)
        self.stopping = False
        self.refused = 0  # connections closed because their pair was cut
        self.forwarded = 0  # connections forwarded in all
        self.threads = []
        self.listeners = []
        for address in self.routes:
            host, port = address.rsplit(":", 1)
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind((host, int(port)))
                listener.listen(64)
            except OSError:
                listener.close()
                self.stop()
                raise
            listener.settimeout(0.2)  # so the acceptor notices stop()
            self.listeners.append(listener)
            self._spawn(self._accept_loop, listener, address)

    # ---- the test's controls ----

    def cut(self, a, b):
        """Partitions a from b, both ways: their connections close now and new ones are refused."""
        if a == b:
            return
        with self.lock:
            self.cuts.add(frozenset((a, b)))
            doomed = [p for p in self.pairs if frozenset((p.source, p.destination)) == frozenset((a, b))]
        for pair in doomed:
            pair.close()

    def isolate(self, node):
        """Cuts node from every other node (a minority of one)."""
        for other in self.routes:
            self.cut(node, other)

    def heal(self):
        """Ends every cut; the nodes reconnect on their own (Raft retries its connections)."""
        with self.lock:
            self.cuts.clear()

    def is_cut(self, a, b):
        with self.lock:
            return frozenset((a, b)) in self.cuts

    def stop(self):
        """Closes every listener and connection and joins every thread; raises if one lingers."""
        with self.lock:
            self.stopping = True
            pairs = list(self.pairs)
        for pair in pairs:
            pair.close()
        # A connection being set up may still spawn its second pump: join until none is left.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self.lock:
                alive = [t for t in self.threads if t.is_alive() and t is not threading.current_thread()]
            if not alive:
                break
            alive[0].join(max(0.0, deadline - time.monotonic()))
        for listener in self.listeners:
            listener.close()
        with self.lock:
            alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            raise AssertionError("partition proxy threads left running: %r" % alive)

    # ---- the threads ----

    def _spawn(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name="proxy-%s" % getattr(target, "__name__", "thread"))
        with self.lock:
            self.threads = [t for t in self.threads if t.is_alive()]
            self.threads.append(thread)
        thread.start()
        return thread

    def _accept_loop(self, listener, destination):
        while True:
            with self.lock:
                if self.stopping:
                    return
            try:
                sock, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                full = self.accepted >= MAX_CONNECTIONS
                if not full:
                    self.accepted += 1
            if full:
                sock.close()
                continue
            self._spawn(self._setup, sock, destination)

    def _setup(self, downstream, destination):
        """One accepted connection's life: its hello, then (unless cut) its forwarding."""
        try:
            self._connect(downstream, destination)
        finally:
            with self.lock:
                self.accepted -= 1

    def _connect(self, downstream, destination):
        """Reads the dialler's hello, then forwards it unless the pair is cut; returns when the
        connection has ended."""
        upstream = None
        try:
            downstream.settimeout(HELLO_TIMEOUT)
            fixed = _recv_exactly(downstream, HELLO_FIXED)
            if fixed is None or fixed[:4] != MAGIC:
                downstream.close()  # a stranger: the node itself would refuse it anyway
                return
            (length,) = struct.unpack(">H", fixed[13:15])
            address = _recv_exactly(downstream, length)
            if address is None:
                downstream.close()
                return
            source = address.decode("ascii", "replace")
            if self.is_cut(source, destination):
                with self.lock:
                    self.refused += 1
                downstream.close()
                return
            upstream = socket.create_connection(("127.0.0.1", self.routes[destination]), timeout=CONNECT_TIMEOUT)
            downstream.settimeout(None)
            upstream.settimeout(None)
            for sock in (downstream, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            downstream.close()
            if upstream is not None:
                upstream.close()
            return
        pair = _Pair(source, destination, downstream, upstream)
        with self.lock:
            # Registered under the lock that cut() takes: a cut made meanwhile is seen here.
            refused = self.stopping or frozenset((source, destination)) in self.cuts
            if refused:
                self.refused += 1
            else:
                self.pairs.add(pair)
                self.forwarded += 1
        if refused:
            pair.close()
            return
        try:
            upstream.sendall(fixed + address)
        except OSError:
            self._end(pair)
            return
        self._spawn(self._pump, pair, upstream, downstream)
        self._pump(pair, downstream, upstream)

    def _pump(self, pair, src, dst):
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        self._end(pair)

    def _end(self, pair):
        pair.close()
        with self.lock:
            self.pairs.discard(pair)
