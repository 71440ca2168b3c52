"""Many idle AMQP connections for memory measurements: each one logged in (heartbeat 0, so that
nothing flows while it is held) with channel 1 open, over plain TCP or TLS. Used by
test_idle_memory.py and clients/bench/idle/run.py; works against any AMQP 0-9-1 broker.

Several threads open the connections with blocking sockets (socket and TLS calls release the
GIL), each speaking the handshake with the harness's frame helpers, so that ten thousand
connections open in seconds rather than minutes."""
import resource
import socket
import struct
import threading

import harness


def raise_fd_limit(wanted):
    """Raises this process's soft RLIMIT_NOFILE towards the hard limit (children inherit it).
    Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard == resource.RLIM_INFINITY else min(hard, max(soft, wanted))
    if target != resource.RLIM_INFINITY and target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _read_method(sock, buffer):
    """Next method frame from a blocking socket: (class, method), leftover bytes."""
    while True:
        while len(buffer) < 7 or len(buffer) < 8 + struct.unpack(">I", buffer[3:7])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise harness.PeerClosed("broker closed the connection during the handshake")
            buffer += chunk
        frame_type, _, size = struct.unpack(">BHI", buffer[:7])
        payload, buffer = buffer[7:7 + size], buffer[8 + size:]
        if frame_type == harness.FRAME_METHOD:
            return struct.unpack(">HH", payload[:4]), payload[4:], buffer


def open_one(host, port, user, password, vhost, ssl_context=None, timeout=30.0):
    """One idle connection: handshake, tune-ok with heartbeat 0, channel 1 open. Returns the
    socket (an ssl.SSLSocket with ssl_context), which the caller closes."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname="localhost")
        sock.sendall(harness.PROTOCOL_HEADER)
        method, _, buffer = _read_method(sock, b"")
        assert method == harness.CONNECTION_START, method
        sock.sendall(harness.method_frame(0, harness.CONNECTION_START_OK,
                                          harness.start_ok_args(user, password)))
        method, args, buffer = _read_method(sock, buffer)
        assert method == harness.CONNECTION_TUNE, method
        channel_max, frame_max, _ = struct.unpack(">HIH", args[:8])
        sock.sendall(harness.method_frame(0, harness.CONNECTION_TUNE_OK,
                                          harness.tune_ok_args(channel_max, frame_max, 0))
                     + harness.method_frame(0, harness.CONNECTION_OPEN, harness.open_args(vhost))
                     + harness.method_frame(1, harness.CHANNEL_OPEN, harness.shortstr("")))
        method, _, buffer = _read_method(sock, buffer)
        assert method == harness.CONNECTION_OPEN_OK, method
        method, _, buffer = _read_method(sock, buffer)
        assert method == harness.CHANNEL_OPEN_OK, method
        return sock
    except BaseException:
        sock.close()
        raise


def open_many(count, host, port, user="guest", password="guest", vhost="/", ssl_context=None,
              threads=8, timeout=30.0):
    """Opens count idle connections with `threads` threads. Returns the sockets; raises the
    first error after closing what was opened."""
    sockets = []
    errors = []
    lock = threading.Lock()

    def work(share):
        for _ in range(share):
            if errors:
                return
            try:
                sock = open_one(host, port, user, password, vhost, ssl_context, timeout)
            except Exception as e:  # noqa: BLE001 - reported to the caller below
                with lock:
                    errors.append(e)
                return
            with lock:
                sockets.append(sock)

    workers = [threading.Thread(target=work, args=(count // threads + (i < count % threads),))
               for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        close_all(sockets)
        raise errors[0]
    return sockets


def close_all(sockets):
    """Closes the sockets (abruptly: the broker sees EOF, as from a client that went away)."""
    for sock in sockets:
        try:
            sock.close()
        except OSError:
            pass
    del sockets[:]
