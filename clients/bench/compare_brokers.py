"""The brokers clients/bench/compare measures, and how it measures them from outside: each broker
(Warren, RabbitMQ, garagemq) knows how to start on spare loopback ports with its own data
directory (fresh, or again on the data it had, as after a crash), which process to measure, and how
to stop or be killed; the /proc helpers read a process tree's CPU seconds and resident memory."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# /proc accounting

def children_of(pid):
    """Direct children of pid, from /proc/PID/task/*/children."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return found


def process_tree(pid):
    """pid and all its live descendants."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children_of(p))
    return tree


def cpu_seconds(pids):
    """utime + stime (+ cutime + cstime of reaped children) summed over pids, in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / CLOCK_TICKS


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pids):
    return sum(status_kib(p, "VmRSS") for p in pids)


class RssSampler:
    """Samples the RSS of a process tree every 100 ms and remembers the peak since reset()."""

    def __init__(self, pids_fn):
        self.pids_fn = pids_fn
        self.peak = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.wait(0.1):
            value = rss_kib(self.pids_fn())
            with self.lock:
                self.peak = max(self.peak, value)

    def reset(self):
        with self.lock:
            self.peak = rss_kib(self.pids_fn())

    def read_peak(self):
        with self.lock:
            return max(self.peak, rss_kib(self.pids_fn()))

    def stop(self):
        self.stopping.set()
        self.thread.join()


def spare_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def log(message):
    print(f"[compare] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Brokers: each knows how to start (fresh, or again on the data it had), which pid to measure,
# and how to stop or be killed.

class Broker:
    name = "?"

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        self.port = None
        self.certs = None     # set: clients connect over TLS (AMQPS) to tls_port
        self.tls_port = None
        self.log_path = None
        self.argv = self.env = None
        self.start_seconds = None  # how long the last start took until the broker served

    def measured_pid(self):
        return self.proc.pid

    def pids(self):
        return process_tree(self.measured_pid())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def uri(self):
        if self.certs:
            return f"amqps://guest:guest@127.0.0.1:{self.tls_port}/"
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def client_args(self):
        """How a load generator reaches this broker: the URI, and with TLS the CA to verify it."""
        return ["--uri", self.uri()] + (["--cacert", self.certs.path("ca")] if self.certs else [])

    def data_dirs(self):
        """Directories holding the broker's state; a fresh start removes them."""
        return []

    def start(self, fresh=True, wait=True):
        """fresh: empty data and new ports; otherwise the same ports, node name and data as the
        last start (a restart after a crash). wait: return once the broker accepts connections."""
        if fresh or self.argv is None:
            for d in self.data_dirs():
                shutil.rmtree(d, ignore_errors=True)
            self.port = spare_port()
            self.tls_port = spare_port() if self.certs else None
            self.argv, self.env = self.command()
        self._spawn(wait)

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.measured_pid(), signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop in 30 s; killing pid {self.proc.pid}")
                self.kill9()
        self.proc = None

    def kill9(self):
        """SIGKILL to the broker and every descendant at once, as a crash would."""
        for pid in reversed(self.pids() + [self.proc.pid]):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait(30)

    def _spawn(self, wait):
        self.log_path = os.path.join(self.workdir, f"{self.name}.log")
        logf = open(self.log_path, "ab")
        began = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT, env=self.env,
                                     cwd=self.workdir, start_new_session=True)
        logf.close()
        # Every listener: a broker may open its TLS port after the plain one.
        ports = [self.port] + ([self.tls_port] if self.certs else [])
        for port in ports if wait else []:
            if not wait_for_port(port, self.proc, self.start_timeout):
                self.stop()
                raise RuntimeError(f"{self.name} did not open port {port}; see {self.log_path}")
        if wait:
            self.settle()
            self.start_seconds = time.monotonic() - began

    def settle(self):
        pass


class Warren(Broker):
    name = "warren"
    start_timeout = 20

    def __init__(self, workdir, binary):
        super().__init__(workdir)
        self.binary = binary

    @staticmethod
    def available(binary):
        return os.access(binary, os.X_OK)

    def data_dirs(self):
        return [os.path.join(self.workdir, "warren-data")]

    def command(self):
        data = self.data_dirs()[0]
        os.makedirs(data, exist_ok=True)
        tls = []
        if self.certs:
            tls = ["--tls_port", str(self.tls_port), "--tls_certfile", self.certs.path("server"),
                   "--tls_keyfile", self.certs.path("server", "key"), "--management_tls_port", "0"]
        return [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--data-dir", data,
                "--log-level", "warning",
                # No HTTP listeners: RabbitMQ runs without plugins too, and fixed ports may be taken.
                "--management_port", "0", "--prometheus_port", "0"] + tls, None


class RabbitMQ(Broker):
    name = "rabbitmq"
    script = "/usr/lib/rabbitmq/bin/rabbitmq-server"
    start_timeout = 120

    @staticmethod
    def available():
        return os.access(RabbitMQ.script, os.X_OK)

    def measured_pid(self):
        """beam.smp, the child of the rabbitmq-server shell script (found once, then cached)."""
        if getattr(self, "_beam", None) is None:
            for pid in process_tree(self.proc.pid):
                try:
                    with open(f"/proc/{pid}/comm") as f:
                        if f.read().strip() == "beam.smp":
                            self._beam = pid
                            break
                except OSError:
                    pass
        return self._beam or self.proc.pid

    def data_dirs(self):
        return [os.path.join(self.workdir, "rabbitmq-home")]

    def start(self, fresh=True, wait=True):
        self._beam = None
        super().start(fresh, wait)

    def command(self):
        home = self.data_dirs()[0]
        os.makedirs(home, exist_ok=True)
        with open(os.path.join(home, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        env = dict(os.environ, HOME=home,
                   RABBITMQ_NODENAME=f"rabbit-compare-{self.port}@localhost",
                   RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                   RABBITMQ_NODE_PORT=str(self.port),
                   RABBITMQ_DIST_PORT=str(spare_port()),
                   RABBITMQ_MNESIA_BASE=os.path.join(home, "mnesia"),
                   RABBITMQ_LOG_BASE=os.path.join(home, "log"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(home, "enabled_plugins"))
        if self.certs:
            # The same certificate as Warren's, no client certificates asked for.
            conf = os.path.join(home, "rabbitmq.conf")
            with open(conf, "w") as f:
                f.write(f"listeners.ssl.default = {self.tls_port}\n"
                        f"ssl_options.cacertfile = {self.certs.path('ca')}\n"
                        f"ssl_options.certfile = {self.certs.path('server')}\n"
                        f"ssl_options.keyfile = {self.certs.path('server', 'key')}\n"
                        "ssl_options.verify = verify_none\n"
                        "ssl_options.fail_if_no_peer_cert = false\n")
            env["RABBITMQ_CONFIG_FILE"] = conf
        return [self.script], env

    def settle(self):
        time.sleep(2)  # boot steps finish after the listener opens


class GarageMQ(Broker):
    name = "garagemq"
    binary = shutil.which("garagemq") or "/usr/bin/garagemq"
    start_timeout = 30

    @staticmethod
    def available():
        return os.access(GarageMQ.binary, os.X_OK)

    def data_dirs(self):
        return [os.path.join(self.workdir, "garagemq-db")]

    def command(self):
        data = self.data_dirs()[0]
        os.makedirs(data, exist_ok=True)
        config = os.path.join(self.workdir, "garagemq.yaml")
        with open(config, "w") as f:
            f.write(f"""proto: amqp-rabbit
users:
  - username: guest
    password: 084e0343a0486ff05530df6c705c8bb4
tcp:
  ip: 127.0.0.1
  port: {self.port}
  nodelay: false
  readBufSize: 196608
  writeBufSize: 196608
admin:
  ip: 127.0.0.1
  port: {spare_port()}
queue:
  shardSize: 8192
  maxMessagesInRam: 131072
db:
  defaultPath: {data}
  engine: badger
vhost:
  defaultPath: /
security:
  passwordCheck: md5
connection:
  channelsMax: 4096
  frameMaxSize: 65536
""")
        return [self.binary, "--config", config, "--log-level", "error"], None
