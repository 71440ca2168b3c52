"""Integration-test harness: runs the real Warren binary and speaks raw AMQP 0-9-1 to it.

Two halves. `Broker` starts `warren` on a free loopback port with a throw-away --data-dir, and
on teardown sends SIGTERM and asserts a clean exit (status 0 and, with WARREN_SANITIZE=1, no
sanitizer report on stderr). `RawConnection` is a socket with a tiny frame codec written here,
so bad-input tests do not depend on a client library that would refuse to send bad input.

Environment:
  WARREN_BIN       broker binary (default: <repo>/build/warren)
  WARREN_TEST_URL  amqp://user:pass@host:port/ of an already-running broker (e.g. RabbitMQ) to
                   test instead of starting one; tests that must own the process are skipped
  WARREN_SANITIZE  1: fail teardown when the broker's stderr holds an ASan/LSan/UBSan report
  WARREN_LOG_LEVEL passed to --log-level when set
  WARREN_START_TIMEOUT  seconds to wait for the port to accept (default 10)

Standard library and pika only; run with /usr/bin/python3 (Debian's, which has pika):
  cd tests/integration && /usr/bin/python3 -m unittest -v test_connection
  WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5699/ /usr/bin/python3 -m unittest -v test_bad_input
or through ctest (entries integration_*), which points WARREN_BIN at the build's binary.
"""

import os
import random
import signal
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))

SANITIZER_MARKERS = ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer")

# ---------------------------------------------------------------------------------------------
# Protocol constants (AMQP 0-9-1), only those the tests use.

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE

CONNECTION_CLASS = 10
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_FLOW = (20, 20)
CHANNEL_FLOW_OK = (20, 21)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
BASIC_QOS = (60, 10)
BASIC_QOS_OK = (60, 11)
BASIC_PUBLISH = (60, 40)

REPLY_SUCCESS = 200
CONNECTION_FORCED = 320
ACCESS_REFUSED = 403
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540

# RabbitMQ's defaults, which Warren shares.
DEFAULT_CHANNEL_MAX = 2047
DEFAULT_FRAME_MAX = 131072
DEFAULT_HEARTBEAT = 60


# ---------------------------------------------------------------------------------------------
# Broker process


def external_url():
    """The WARREN_TEST_URL of a broker someone else runs, or None when the harness owns one."""
    return os.environ.get("WARREN_TEST_URL") or None


def skip_if_external(reason):
    """unittest decorator: skip a test that must start, signal or time the broker process."""
    return unittest.skipIf(external_url() is not None,
                           "external broker (WARREN_TEST_URL): " + reason)


def broker_binary():
    """Path of the warren binary: $WARREN_BIN, else <repo>/build/warren."""
    return os.environ.get("WARREN_BIN") or os.path.join(REPO_ROOT, "build", "warren")


def _ephemeral_low():
    """The first port of the kernel's ephemeral range (where outgoing connections take theirs)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_port_picker = random.SystemRandom()
# Ports handed out by this process: never twice, so that a broker's AMQP port is never a cluster
# port chosen earlier for a node not started yet (a cluster test saw exactly that).
_ports_given = set()


def free_port():
    """A loopback TCP port nobody listens on right now (the broker may lose a race for it).

    Taken below the ephemeral range: a port the kernel hands out for port 0 is also one it may
    give the next outgoing connection (a client's, or a cluster node dialling its peers), and a
    node that was to listen there then fails to start (a cluster test saw it under ASan)."""
    low = _ephemeral_low()
    if low > 11000:
        for _ in range(200):
            port = _port_picker.randrange(10000, low)
            if port in _ports_given:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                _ports_given.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _PortTaken(Exception):
    """The broker lost the race for a port free_port() had found."""


class Broker:
    """One broker under test: a Warren process this harness owns, or an external URL."""

    def __init__(self, url=None, extra_args=(), management=False, tls=False, plain=True):
        self.extra_args = list(extra_args)
        # tls=True: an AMQPS listener on a free port (tls_port; pass the tls_* settings in
        # extra_args), and with management an HTTPS one (management_tls_port). plain=False turns
        # the plain AMQP listener off; start() then waits for the TLS port instead.
        self.tls = tls
        self.plain = plain
        self.tls_port = None
        self.management_tls_port = None
        # The HTTP listeners bind fixed ports by default; tests that run side by side turn them
        # off unless they ask for them (then each gets a free port: management_port and
        # prometheus_port below, http_get/http_request to talk to it).
        self.management = management
        self.management_port = None
        self.prometheus_port = None
        self.process = None
        self.data_dir = None
        self.stderr_path = None
        self._stderr_file = None
        self.external = bool(url)
        if url:
            parsed = urllib.parse.urlparse(url)
            self.host = parsed.hostname or "127.0.0.1"
            self.port = parsed.port or 5672
            self.user = urllib.parse.unquote(parsed.username or "guest")
            self.password = urllib.parse.unquote(parsed.password or "guest")
            vhost = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
            self.vhost = urllib.parse.unquote(vhost) or "/"
        else:
            self.host, self.port = "127.0.0.1", None
            self.user, self.password, self.vhost = "guest", "guest", "/"

    @property
    def url(self):
        vhost = urllib.parse.quote(self.vhost, safe="")
        return "amqp://%s:%s@%s:%d/%s" % (self.user, self.password, self.host, self.port, vhost)

    def pika_parameters(self, **kwargs):
        """pika.ConnectionParameters for this broker; kwargs override (heartbeat=..., ...)."""
        import pika

        kwargs.setdefault("credentials", pika.PlainCredentials(self.user, self.password))
        kwargs.setdefault("virtual_host", self.vhost)
        kwargs.setdefault("connection_attempts", 1)
        kwargs.setdefault("socket_timeout", 5)
        kwargs.setdefault("blocked_connection_timeout", 10)
        return pika.ConnectionParameters(host=self.host, port=self.port, **kwargs)

    def start(self, timeout=None):
        """Start the binary on a free port and return once the port accepts connections
        (within $WARREN_START_TIMEOUT seconds, default 10). free_port() only finds a port free
        at that moment: when another process takes one of ours before the broker binds it, the
        broker exits with "Address already in use" and is started again on new ports."""
        if timeout is None:
            timeout = float(os.environ.get("WARREN_START_TIMEOUT", "10"))
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                self._stderr_file.close()
                shutil.rmtree(self.data_dir, ignore_errors=True)
        return self._start_once(timeout)

    def _start_once(self, timeout):
        binary = broker_binary()
        if not os.access(binary, os.X_OK):
            if os.environ.get("WARREN_BIN"):  # asked for explicitly (as ctest does): a failure
                raise AssertionError("WARREN_BIN=%s is not an executable" % binary)
            raise unittest.SkipTest("broker binary not built: %s (set WARREN_BIN)" % binary)
        self.data_dir = tempfile.mkdtemp(prefix="warren-it-")
        self.stderr_path = os.path.join(self.data_dir, "broker.stderr")
        self._stderr_file = open(self.stderr_path, "wb")
        self.port = free_port()
        command = [binary, "--bind", "127.0.0.1", "--port", str(self.port),
                   "--data-dir", os.path.join(self.data_dir, "data")]
        if os.environ.get("WARREN_LOG_LEVEL"):
            command += ["--log-level", os.environ["WARREN_LOG_LEVEL"]]
        if self.management:
            self.management_port, self.prometheus_port = free_port(), free_port()
        command += ["--management_port", str(self.management_port or 0),
                    "--prometheus_port", str(self.prometheus_port or 0)]
        if self.tls:
            self.tls_port = free_port()
            command += ["--tls_port", str(self.tls_port)]
            if self.management:
                self.management_tls_port = free_port()
            command += ["--management_tls_port", str(self.management_tls_port or 0)]
        if not self.plain:
            command += ["--plain_listener", "false"]
        command += self.extra_args
        env = dict(os.environ)
        # Make a sanitizer report reach stderr and end the process with a nonzero status.
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=self._stderr_file, stderr=self._stderr_file)
        # Every listener it was given: the kernel accepts on the first one bound while start-up
        # goes on (the plain listener opens before the TLS certificates are loaded), and a later
        # listener that cannot bind ends the process.
        ports = [p for p in (self.port if self.plain else None, self.tls_port, self.management_port,
                             self.management_tls_port, self.prometheus_port) if p]
        deadline = time.monotonic() + timeout
        while ports:
            if self.process.poll() is not None:
                if "Address already in use" in self.stderr_text():
                    raise _PortTaken()
                raise AssertionError("broker exited with status %d before accepting connections\n%s"
                                     % (self.process.returncode, self.stderr_text()))
            try:
                socket.create_connection((self.host, ports[0]), timeout=0.5).close()
                ports.pop(0)
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError("broker did not accept on port %d within %.0f s\n%s"
                                         % (ports[0], timeout, self.stderr_text()))
                time.sleep(0.05)
        return self

    def http_request(self, method, path, body=None, user=None, password=None, port=None, headers=None,
                     timeout=10):
        """One request to the management API (or port=self.prometheus_port); returns
        (status, parsed JSON or text or None). body: a dict/list sent as JSON, or str/bytes."""
        import base64
        import http.client
        import json

        conn = http.client.HTTPConnection(self.host, port or self.management_port, timeout=timeout)
        hdrs = dict(headers or {})
        user = self.user if user is None else user
        password = self.password if password is None else password
        if user is not False:
            token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
            hdrs["Authorization"] = "Basic " + token
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        if not raw:
            return resp.status, None
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode("utf-8", "replace")

    def http_get(self, path, **kwargs):
        """GET path from the management API: (status, parsed body)."""
        return self.http_request("GET", path, **kwargs)

    def stderr_text(self):
        """Everything the broker wrote to stdout/stderr so far (empty for an external broker)."""
        if not self.stderr_path or not os.path.exists(self.stderr_path):
            return ""
        if self._stderr_file:
            self._stderr_file.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def terminate(self, timeout=15.0):
        """SIGTERM the broker and wait for it; return its exit status (None when external)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("broker did not exit within %.0f s of SIGTERM\n%s"
                                     % (timeout, self.stderr_text()))
        return self.process.returncode

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self):
        """Teardown: SIGTERM, then assert exit status 0 and no sanitizer report; keeps the
        stderr file (path in the message) when an assertion fails, removes the data dir else."""
        if self.process is None:
            return
        status = self.terminate()
        text = self.stderr_text()
        if self._stderr_file:
            self._stderr_file.close()
            self._stderr_file = None
        problems = []
        if status != 0:
            problems.append("broker exited with status %s (expected 0 after SIGTERM)" % status)
        if os.environ.get("WARREN_SANITIZE") == "1":
            for marker in SANITIZER_MARKERS:
                if marker in text:
                    problems.append("sanitizer report on stderr: %r" % marker)
        if problems:
            raise AssertionError("; ".join(problems) + "\n--- broker stderr (%s) ---\n%s"
                                 % (self.stderr_path, text[-20000:]))
        shutil.rmtree(self.data_dir, ignore_errors=True)


_module_broker = None


def start_module_broker():
    """setUpModule helper: the shared broker of one test module (external when configured)."""
    global _module_broker
    url = external_url()
    _module_broker = Broker(url) if url else Broker().start()
    return _module_broker


def stop_module_broker():
    """tearDownModule helper: stop the module's broker with the exit-status/sanitizer checks."""
    global _module_broker
    broker, _module_broker = _module_broker, None
    if broker is not None:
        broker.stop()


def module_broker():
    """The broker started by start_module_broker()."""
    assert _module_broker is not None, "call harness.start_module_broker() in setUpModule"
    return _module_broker


def admin_request(broker, raw):
    """Sends raw bytes to the broker's admin socket and returns everything it answers."""
    return admin_request_path(os.path.join(broker.data_dir, "data", "warren.sock"), raw)


def admin_request_path(path, raw):
    """Sends raw bytes to the admin socket at path and returns everything it answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(raw)
        answer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return answer
            answer += chunk


def admin_status(broker):
    """The broker's `warrenctl status` as a dict (connections, alarms, store and paging counts)."""
    import json

    request = json.dumps({"command": "status", "args": [], "vhost": "/"}).encode() + b"\n"
    return json.loads(admin_request(broker, request))["status"]


_cluster_secret = []


def cluster_secret_file():
    """A cluster_secret_file for the cluster tests: 32 random bytes, base64, mode 0600, one per
    test process (removed at exit)."""
    import atexit
    import base64

    if not _cluster_secret:
        fd, path = tempfile.mkstemp(prefix="warren-cluster-secret-")
        os.write(fd, base64.b64encode(os.urandom(32)) + b"\n")
        os.close(fd)
        os.chmod(path, 0o600)
        atexit.register(lambda: os.path.exists(path) and os.unlink(path))
        _cluster_secret.append(path)
    return _cluster_secret[0]


def vm_rss_kib(pid):
    """Resident memory of process pid in KiB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def assert_broker_alive(test, broker=None):
    """After bad input: a fresh pika client still connects, opens a channel and closes cleanly."""
    import pika

    broker = broker or module_broker()
    if broker.process is not None and broker.process.poll() is not None:
        test.fail("broker process died (status %d)\n%s"
                  % (broker.process.returncode, broker.stderr_text()[-20000:]))
    connection = pika.BlockingConnection(broker.pika_parameters())
    try:
        channel = connection.channel()
        test.assertTrue(channel.is_open)
        channel.close()
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------
# Wire encoding


def octet(v):
    return struct.pack(">B", v)


def short(v):
    return struct.pack(">H", v)


def long_(v):
    return struct.pack(">I", v)


def longlong(v):
    return struct.pack(">Q", v)


def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">B", len(b)) + b


def longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


def _field_value(v):
    if isinstance(v, bool):
        return b"t" + octet(1 if v else 0)
    if isinstance(v, int):
        return b"l" + struct.pack(">q", v)
    if isinstance(v, (str, bytes)):
        return b"S" + longstr(v)
    if isinstance(v, dict):
        return b"F" + table(v)
    if v is None:
        return b"V"
    raise TypeError("cannot encode %r" % (v,))


def table(d):
    """Encode a field table (bool, int, str/bytes, dict, None values)."""
    body = b"".join(shortstr(k) + _field_value(v) for k, v in d.items())
    return long_(len(body)) + body


def frame(frame_type, channel, payload, end=FRAME_END):
    """One frame: type, channel, size, payload, end octet (overridable to test bad ends)."""
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + octet(end)


def method_frame(channel, class_method, args=b""):
    class_id, method_id = class_method
    return frame(FRAME_METHOD, channel, struct.pack(">HH", class_id, method_id) + args)


def header_frame(channel, class_id, body_size, flags=0, properties=b""):
    return frame(FRAME_HEADER, channel,
                 struct.pack(">HHQH", class_id, 0, body_size, flags) + properties)


def heartbeat_frame():
    return frame(FRAME_HEARTBEAT, 0, b"")


def start_ok_args(user="guest", password="guest", mechanism="PLAIN", locale="en_US",
                  client_properties=None):
    properties = client_properties if client_properties is not None else {
        "product": "warren-integration-tests",
        "capabilities": {"authentication_failure_close": True, "connection.blocked": True},
    }
    response = b"\x00" + user.encode() + b"\x00" + password.encode()
    return table(properties) + shortstr(mechanism) + longstr(response) + shortstr(locale)


def tune_ok_args(channel_max, frame_max, heartbeat):
    return short(channel_max) + long_(frame_max) + short(heartbeat)


def open_args(vhost="/"):
    return shortstr(vhost) + shortstr("") + octet(0)


def close_args(code=REPLY_SUCCESS, text="bye", class_id=0, method_id=0):
    return short(code) + shortstr(text) + short(class_id) + short(method_id)


# ---------------------------------------------------------------------------------------------
# Wire decoding


class Reader:
    """Cursor over a method's argument bytes; raises ValueError when they run out."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated: need %d bytes at %d of %d" % (n, self.pos, len(self.data)))
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def octet(self):
        return self.unpack(">B")[0]

    def short(self):
        return self.unpack(">H")[0]

    def long(self):
        return self.unpack(">I")[0]

    def longlong(self):
        return self.unpack(">Q")[0]

    def shortstr(self):
        return self.take(self.octet()).decode("utf-8", "replace")

    def longstr(self):
        return self.take(self.long())

    def table(self):
        inner = Reader(self.longstr())
        result = {}
        while inner.pos < len(inner.data):
            key = inner.shortstr()
            result[key] = inner.field_value()
        return result

    def field_value(self):
        kind = self.take(1)
        simple = {b"b": ">b", b"B": ">B", b"s": ">h", b"u": ">H", b"I": ">i", b"i": ">I",
                  b"l": ">q", b"f": ">f", b"d": ">d", b"T": ">Q"}
        if kind in simple:
            return self.unpack(simple[kind])[0]
        if kind == b"t":
            return self.octet() != 0
        if kind == b"D":
            scale, value = self.unpack(">Bi")
            return (scale, value)
        if kind == b"S":
            return self.longstr().decode("utf-8", "replace")
        if kind == b"x":
            return self.longstr()
        if kind == b"F":
            return self.table()
        if kind == b"A":
            inner = Reader(self.longstr())
            items = []
            while inner.pos < len(inner.data):
                items.append(inner.field_value())
            return items
        if kind == b"V":
            return None
        raise ValueError("unknown field type %r" % kind)


class Frame:
    """A decoded frame; for method frames, `method` is (class_id, method_id) and `args` a Reader."""

    def __init__(self, frame_type, channel, payload):
        self.type, self.channel, self.payload = frame_type, channel, payload
        self.method = None
        self.args = None
        if frame_type == FRAME_METHOD and len(payload) >= 4:
            self.method = struct.unpack(">HH", payload[:4])
            self.args = Reader(payload[4:])

    def __repr__(self):
        if self.method:
            return "<Frame method %d.%d ch=%d %r>" % (self.method
                                                      + (self.channel, self.payload[4:]))
        return "<Frame type=%d ch=%d %d bytes>" % (self.type, self.channel, len(self.payload))


class ConnectionClose:
    """The arguments of a connection.close or channel.close the server sent."""

    def __init__(self, reader):
        self.reply_code = reader.short()
        self.reply_text = reader.shortstr()
        self.class_id = reader.short()
        self.method_id = reader.short()

    def __repr__(self):
        return "<close %d %r caused by %d.%d>" % (self.reply_code, self.reply_text,
                                                  self.class_id, self.method_id)


class PeerClosed(Exception):
    """The server closed the socket (EOF or reset) while a frame was expected."""


class RawConnection:
    """A TCP socket with a blocking, deadline-bounded frame reader. Owns the socket."""

    def __init__(self, broker=None, timeout=5.0):
        broker = broker or module_broker()
        self.broker = broker
        self.timeout = timeout
        self.sock = socket.create_connection((broker.host, broker.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.eof = False
        self.tune = None  # (channel_max, frame_max, heartbeat) from the server's connection.tune

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close_socket()

    def close_socket(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Read more bytes into the buffer; PeerClosed on EOF/reset, socket.timeout at deadline."""
        if self.eof:
            raise PeerClosed("socket already closed by peer")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("no data before deadline")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise PeerClosed("peer closed the socket")
        self.buffer += chunk

    def read_exactly(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buffer) < n:
            self._fill(deadline)
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_frame(self, timeout=None):
        """Next frame; raises PeerClosed, socket.timeout, or AssertionError on a bad frame end."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buffer) < 7:
            self._fill(deadline)
        frame_type, channel, size = struct.unpack(">BHI", self.buffer[:7])
        while len(self.buffer) < 8 + size:
            self._fill(deadline)
        payload, end = self.buffer[7:7 + size], self.buffer[7 + size]
        self.buffer = self.buffer[8 + size:]
        if end != FRAME_END:
            raise AssertionError("server sent frame end octet 0x%02x" % end)
        return Frame(frame_type, channel, payload)

    def read_method(self, expected=None, timeout=None, skip_heartbeats=True):
        """Next method frame (heartbeats skipped); asserts its (class, method) when given."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            f = self.read_frame(max(0.0, deadline - time.monotonic()))
            if f.type == FRAME_HEARTBEAT and skip_heartbeats:
                continue
            if f.type != FRAME_METHOD:
                raise AssertionError("expected a method frame, got %r" % f)
            if expected is not None and f.method != expected:
                detail = ""
                if f.method in (CONNECTION_CLOSE, CHANNEL_CLOSE):
                    detail = " " + repr(ConnectionClose(f.args))
                raise AssertionError("expected method %d.%d, got %r%s"
                                     % (expected + (f, detail)))
            return f

    def expect_connection_close(self, timeout=None, reply=True):
        """Read until the server's connection.close; answer close-ok (unless reply=False) and
        return its ConnectionClose."""
        f = self.read_method(CONNECTION_CLOSE, timeout=timeout)
        self.assert_channel(f, 0)
        close = ConnectionClose(f.args)
        if reply:
            try:
                self.send(method_frame(0, CONNECTION_CLOSE_OK))
            except OSError:
                pass
        return close

    @staticmethod
    def assert_channel(f, channel):
        if f.channel != channel:
            raise AssertionError("%r arrived on channel %d, expected %d" % (f, f.channel, channel))

    def wait_closed(self, timeout=5.0):
        """True when the server closes the socket within timeout (data before EOF is dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline)
                self.buffer = b""
            except PeerClosed:
                return True
            except socket.timeout:
                return False

    # -- the handshake -------------------------------------------------------------------------

    def read_start(self):
        """Send the protocol header and return the decoded connection.start as a dict."""
        self.send(PROTOCOL_HEADER)
        f = self.read_method(CONNECTION_START)
        a = f.args
        return {
            "version_major": a.octet(),
            "version_minor": a.octet(),
            "server_properties": a.table(),
            "mechanisms": a.longstr().decode().split(),
            "locales": a.longstr().decode().split(),
        }

    def handshake(self, heartbeat=0, channel_max=None, frame_max=None, vhost=None,
                  user=None, password=None):
        """Full handshake up to connection.open-ok. Tune-ok echoes the server's channel_max and
        frame_max unless given and sends `heartbeat`; returns the server's tune proposal."""
        self.read_start()
        self.send(method_frame(0, CONNECTION_START_OK, start_ok_args(
            user or self.broker.user, password or self.broker.password)))
        f = self.read_method(CONNECTION_TUNE)
        self.tune = (f.args.short(), f.args.long(), f.args.short())
        server_channel_max, server_frame_max, _ = self.tune
        self.send(method_frame(0, CONNECTION_TUNE_OK, tune_ok_args(
            server_channel_max if channel_max is None else channel_max,
            server_frame_max if frame_max is None else frame_max,
            heartbeat)))
        self.send(method_frame(0, CONNECTION_OPEN, open_args(vhost or self.broker.vhost)))
        self.read_method(CONNECTION_OPEN_OK)
        return self.tune

    def open_channel(self, channel):
        self.send(method_frame(channel, CHANNEL_OPEN, shortstr("")))
        f = self.read_method(CHANNEL_OPEN_OK)
        self.assert_channel(f, channel)
        return f

    def close_connection(self):
        """Client-initiated close: asserts close-ok on channel 0, then closes the socket (RabbitMQ
        waits up to 30 s for the client to do so)."""
        self.send(method_frame(0, CONNECTION_CLOSE, close_args()))
        f = self.read_method(CONNECTION_CLOSE_OK)
        self.assert_channel(f, 0)
        self.close_socket()


def seeded_garbage(seed, length):
    """Deterministic pseudo-random bytes, so a failing garbage test can be replayed."""
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(length))


def run_c_program(test, env_var, target, expected, timeout):
    """Runs a C test program built by CMake (path in $env_var, else build/tests/integration/
    <target>) against the module's broker as `program HOST PORT` with the credentials in the
    environment, and asserts exit status 0 and `expected` in its output. Skips when it is not
    built."""
    binary = os.environ.get(env_var) or os.path.join(REPO_ROOT, "build", "tests", "integration", target)
    if not os.access(binary, os.X_OK):
        test.skipTest("C test program not built: %s" % binary)
    broker = module_broker()
    env = dict(os.environ, WARREN_USER=broker.user, WARREN_PASSWORD=broker.password, WARREN_VHOST=broker.vhost)
    result = subprocess.run([binary, broker.host, str(broker.port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    output = result.stdout.decode("utf-8", "replace")
    test.assertEqual(result.returncode, 0, "%s failed:\n%s" % (target, output))
    test.assertIn(expected, output)
    assert_broker_alive(test)
