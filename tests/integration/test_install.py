"""The Debian package and the installed layout (issue 15, running Warren as a service).

Builds warren_<version>_amd64.deb with cpack from the build directory, extracts it into a
throw-away root (dpkg-deb -x: no chroot, nothing touches the real system) and checks: the files
are where Debian and RabbitMQ put theirs; the control data (dependencies, conffiles, maintainer
scripts); lintian finds no error (when installed); the copyright file and the changelog are
where Debian policy puts them; the unit passes systemd-analyze verify; the man pages (gzipped)
format without warnings; the example config lists every key broker/config.c accepts, each with
its true default; the installed broker starts from the example config and warrenctl await_startup / status /
environment / stop work against it; the maintainer scripts, run against a fake root with stub
system tools, create, keep and remove the user, data and service idempotently.

Environment (ctest sets them): WARREN_BUILD_DIR (the configured build directory),
WARREN_CPACK (the cpack program, default: cpack on PATH).
  cd tests/integration && WARREN_BUILD_DIR=../../build /usr/bin/python3 -m unittest -v test_install
"""

import gzip
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import unittest

import harness

ROOT = None       # the extracted package
DEB = None        # path of the .deb
WORK = None       # temp dir holding both
VERSION = None

CONFIG_C = os.path.join(harness.REPO_ROOT, "broker", "config.c")


def run(command, **kwargs):
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("universal_newlines", True)
    kwargs.setdefault("timeout", 120)
    return subprocess.run(command, **kwargs)


def setUpModule():
    global ROOT, DEB, WORK, VERSION
    build_dir = os.environ.get("WARREN_BUILD_DIR") or os.path.join(harness.REPO_ROOT, "build")
    config = os.path.join(build_dir, "CPackConfig.cmake")
    if not os.path.exists(config):
        if os.environ.get("WARREN_BUILD_DIR"):
            raise AssertionError("no CPackConfig.cmake in WARREN_BUILD_DIR=%s" % build_dir)
        raise unittest.SkipTest("build directory not configured: %s" % build_dir)
    cpack = os.environ.get("WARREN_CPACK") or shutil.which("cpack")
    if not cpack or not shutil.which("dpkg-deb"):
        raise unittest.SkipTest("cpack and dpkg-deb are needed (Debian packages cmake, dpkg)")
    WORK = tempfile.mkdtemp(prefix="warren-install-")
    result = run([cpack, "--config", config, "-B", os.path.join(WORK, "out")], timeout=600)
    if result.returncode != 0:
        raise AssertionError("cpack failed\n%s\n%s" % (result.stdout, result.stderr))
    debs = [name for name in os.listdir(os.path.join(WORK, "out")) if name.endswith(".deb")]
    if len(debs) != 1:
        raise AssertionError("expected one .deb, cpack made %s" % debs)
    DEB = os.path.join(WORK, "out", debs[0])
    VERSION = run(["dpkg-deb", "-f", DEB, "Version"]).stdout.strip()
    ROOT = os.path.join(WORK, "root")
    result = run(["dpkg-deb", "-x", DEB, ROOT])
    if result.returncode != 0:
        raise AssertionError("dpkg-deb -x failed: %s" % result.stderr)


def tearDownModule():
    if WORK:
        shutil.rmtree(WORK, ignore_errors=True)


def in_root(path):
    return os.path.join(ROOT, path.lstrip("/"))


def config_keys():
    """Every key broker/config.c's apply() accepts, under its config-file spelling."""
    with open(CONFIG_C) as f:
        keys = re.findall(r'strcmp\(key, "([a-z_-]+)"\)', f.read())
    return sorted({k for k in keys if "-" not in k})


class PackageTest(unittest.TestCase):
    def test_file_name_is_the_debian_one(self):
        version = run([in_root("/usr/sbin/warren"), "--version"]).stdout.split()[-1]
        self.assertEqual(VERSION, version)
        self.assertEqual(os.path.basename(DEB), "warren_%s_amd64.deb" % version)

    def test_files_are_where_debian_puts_them(self):
        for path, mode in (("/usr/sbin/warren", 0o755), ("/usr/sbin/warrenctl", 0o755),
                           ("/etc/warren/warren.conf", 0o644),
                           ("/lib/systemd/system/warren.service", 0o644),
                           ("/usr/share/man/man8/warren.8.gz", 0o644),
                           ("/usr/share/man/man8/warrenctl.8.gz", 0o644),
                           ("/usr/share/man/man5/warren.conf.5.gz", 0o644),
                           ("/usr/share/doc/warren/copyright", 0o644),
                           ("/usr/share/doc/warren/changelog.gz", 0o644),
                           ("/usr/share/lintian/overrides/warren", 0o644)):
            st = os.stat(in_root(path))
            self.assertTrue(stat.S_ISREG(st.st_mode), path)
            self.assertEqual(stat.S_IMODE(st.st_mode), mode, path)
        listing = run(["dpkg-deb", "-c", DEB]).stdout
        for line in listing.splitlines():
            self.assertIn(" root/root ", line)
            self.assertFalse(re.search(r" \./(usr/local|home|tmp|var)/", line), line)

    def test_control_data(self):
        depends = run(["dpkg-deb", "-f", DEB, "Depends"]).stdout
        names = {d.strip().split(" ")[0] for d in depends.split(",")}
        self.assertTrue({"python3", "adduser", "libc6"} <= names, depends)
        self.assertNotIn("librabbitmq4", names)
        control = os.path.join(WORK, "control")
        run(["dpkg-deb", "-e", DEB, control])
        with open(os.path.join(control, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/warren/warren.conf"])
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(control, script)
            self.assertTrue(os.access(path, os.X_OK), script)
            with open(path) as f:
                self.assertEqual(f.readline().strip(), "#!/bin/sh", script)
            self.assertEqual(run(["sh", "-n", path]).returncode, 0, script)

    def test_broker_links_only_what_the_package_depends_on(self):
        """The binary needs libc, the two libraries of the management plane (HTTP and JSON),
        GnuTLS (AMQPS; libmicrohttpd's HTTPS uses it too) and Nettle, GnuTLS's own crypto library
        (SHA-256 and base64), and, when built with clustering, libraft and libuv (Raft and its
        disk and network I/O), which the package's shlibs dependencies pull in; nothing else
        directly."""
        if not shutil.which("readelf"):
            self.skipTest("readelf absent")
        if os.environ.get("WARREN_SANITIZE") == "1":
            self.skipTest("the sanitizer build links its runtimes")
        dynamic = run(["readelf", "-d", in_root("/usr/sbin/warren")]).stdout
        needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic))
        cluster = {"libraft.so.2", "libuv.so.1"} & needed
        self.assertIn(cluster, (set(), {"libraft.so.2", "libuv.so.1"}))
        self.assertEqual(needed - cluster, {"libc.so.6", "libmicrohttpd.so.12", "libjansson.so.4",
                                            "libgnutls.so.30", "libnettle.so.8"})
        control = run(["dpkg-deb", "-f", DEB, "Depends"]).stdout
        packages = ["libmicrohttpd12", "libjansson4", "libgnutls30", "libnettle8"]
        if cluster:
            packages += ["libraft", "libuv1"]
        for package in packages:
            self.assertIn(package, control)


class DebianPolicyTest(unittest.TestCase):
    def test_changelog_names_the_package_version(self):
        with gzip.open(in_root("/usr/share/doc/warren/changelog.gz"), "rt") as f:
            first = f.readline()
        self.assertEqual(first, "warren (%s) unstable; urgency=medium\n" % VERSION)

    def test_copyright_is_machine_readable_and_names_the_embedded_chart_js(self):
        with open(in_root("/usr/share/doc/warren/copyright")) as f:
            text = f.read()
        self.assertTrue(text.startswith(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"))
        self.assertIn("Chart.js Contributors", text)
        self.assertIn("\nLicense: Expat\n", text)

    def test_lintian_finds_no_error(self):
        """lintian (when installed) on the .deb: any error fails; warnings and the rest are
        listed in the output. bogus-mail-host is tolerated while the package's maintainer is
        the placeholder address (WARREN_PACKAGE_MAINTAINER, packaging/CMakeLists.txt)."""
        if not shutil.which("lintian"):
            self.skipTest("lintian absent (Debian package lintian)")
        command = ["lintian", "--pedantic", "--display-info", "--show-overrides"]
        maintainer = run(["dpkg-deb", "-f", DEB, "Maintainer"]).stdout.strip()
        if maintainer.endswith("@localhost>"):
            command += ["--suppress-tags", "bogus-mail-host,bogus-mail-host-in-debian-changelog"]
        result = run(command + [DEB], timeout=600)
        tags = [line for line in result.stdout.splitlines() if re.match(r"[EWIPXO]: ", line)]
        if tags:
            print("\nlintian:\n  " + "\n  ".join(tags))
        errors = [line for line in tags if line.startswith("E: ")]
        self.assertEqual(errors, [], result.stdout + result.stderr)
        self.assertEqual(result.returncode, 0, result.stderr)


class UnitTest(unittest.TestCase):
    def unit(self):
        with open(in_root("/lib/systemd/system/warren.service")) as f:
            return f.read()

    def test_settings(self):
        text = self.unit()
        for line in ("Type=notify", "LimitNOFILE=65536", "User=warren", "Group=warren",
                     "StateDirectory=warren", "ProtectHome=yes", "NoNewPrivileges=yes",
                     "PrivateTmp=yes", "ReadWritePaths=/var/lib/warren",
                     "ExecStart=/usr/sbin/warren --config /etc/warren/warren.conf",
                     "WantedBy=multi-user.target"):
            self.assertIn("\n" + line + "\n", text)
        self.assertRegex(text, r"\nProtectSystem=(full|strict)\n")
        with open(in_root("/etc/warren/warren.conf")) as f:
            self.assertIn("\ndata_dir = /var/lib/warren\n", f.read())

    def test_systemd_analyze_verify(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze absent (Debian package systemd)")
        # The unit as installed, its ExecStart pointed at the extracted binary so verify can
        # check it is executable; a warning (unknown key, bad value) fails the test.
        unit = os.path.join(WORK, "verify", "warren.service")
        os.makedirs(os.path.dirname(unit), exist_ok=True)
        with open(unit, "w") as f:
            f.write(self.unit().replace("=/usr/sbin/warren ", "=%s " % in_root("/usr/sbin/warren")))
        result = run(["systemd-analyze", "verify", "--man=no", unit])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout + result.stderr, "")


class ManPageTest(unittest.TestCase):
    PAGES = ("/usr/share/man/man8/warren.8.gz", "/usr/share/man/man8/warrenctl.8.gz",
             "/usr/share/man/man5/warren.conf.5.gz")

    def test_pages_are_gzipped_reproducibly(self):
        """gzip -9n: no file name or time stamp in the header, so two builds give the same bytes."""
        for page in self.PAGES:
            with open(in_root(page), "rb") as f:
                head = f.read(10)
            self.assertEqual(head[:2], b"\x1f\x8b", page)
            self.assertEqual(head[3] & 0x08, 0, page + ": stores a file name")
            self.assertEqual(head[4:8], b"\0\0\0\0", page + ": stores a time stamp")

    def test_groff_formats_without_warnings(self):
        if not shutil.which("groff"):
            self.skipTest("groff absent")
        for page in self.PAGES:
            with gzip.open(in_root(page), "rt") as f:
                result = run(["groff", "-man", "-ww", "-z"], input=f.read())
            self.assertEqual((result.returncode, result.stderr), (0, ""), page)

    def test_man_renders(self):
        if not shutil.which("man"):
            self.skipTest("man absent (Debian package man-db)")
        for page in self.PAGES:
            result = run(["man", "-l", "--warnings", in_root(page)],
                         env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80",
                                  LC_ALL="C.UTF-8"))
            self.assertEqual((result.returncode, result.stderr), (0, ""), page)
            self.assertIn("NAME", result.stdout)

    def test_config_page_names_every_key(self):
        with gzip.open(in_root("/usr/share/man/man5/warren.conf.5.gz"), "rt") as f:
            text = f.read().replace("\\-", "-")
        for key in config_keys():
            self.assertIn(key, text)


class ExampleConfigTest(unittest.TestCase):
    def test_every_key_with_its_true_default(self):
        """Each key config.c accepts is in the file; each commented default is what the broker
        really uses (read back through warrenctl environment)."""
        with open(in_root("/etc/warren/warren.conf")) as f:
            text = f.read()
        listed = dict(re.findall(r"^#?([a-z_]+) = (.*)$", text, re.M))
        self.assertEqual(sorted(listed), config_keys())
        data_dir = tempfile.mkdtemp(dir=WORK)
        broker = InstalledBroker(data_dir, extra=["--config", os.path.join(WORK, "defaults.conf")])
        with open(os.path.join(WORK, "defaults.conf"), "w") as f:
            f.write("data_dir = %s\n" % data_dir)
        with broker:
            environment = json.loads(broker.ctl("--formatter", "json", "environment").stdout)
        for key, default in listed.items():
            if key in ("data_dir", "port", "bind", "default_pass", "management_port", "prometheus_port"):
                continue  # the test's own settings; the password is never shown
            shown = environment[key]
            if key == "node_name":
                self.assertTrue(shown.startswith("warren@"), shown)  # warren@ and the host name
                continue
            if key in ("tls_certfile", "tls_keyfile", "tls_cacertfile", "tls_ciphers", "cluster_peers",
                       "cluster_address", "cluster_secret_file"):
                self.assertEqual(shown, "", key)  # unset by default; the file shows an example
                continue
            if key in ("tls_port", "management_tls_port"):
                self.assertEqual(shown, 0, key)  # the listed port is used once a certificate is set
                continue
            if key == "memory_high_watermark" and default == "0":
                self.assertGreater(shown, 0)  # 0 means 40% of RAM, shown in bytes
                continue
            if isinstance(shown, bool):
                shown = "true" if shown else "false"
            self.assertEqual(str(shown), default, key)


class InstalledBroker:
    """The extracted /usr/sbin/warren on a free loopback port, run until stop()."""

    def __init__(self, data_dir, extra=()):
        self.data_dir = data_dir
        self.port = harness.free_port()
        self.log = open(os.path.join(data_dir, "..", os.path.basename(data_dir) + ".log"), "w+")
        self.command = [in_root("/usr/sbin/warren")] + list(extra) + [
            "--data-dir", data_dir, "--bind", "127.0.0.1", "--port", str(self.port),
            "--management_port", "0", "--prometheus_port", "0"]

    def ctl(self, *args, expect=0):
        result = run([in_root("/usr/sbin/warrenctl"), "--data-dir", self.data_dir, "-t", "20"]
                     + list(args), timeout=60)
        if result.returncode != expect:
            raise AssertionError("warrenctl %s exited %d\n%s\n%s\n--- broker ---\n%s"
                                 % (" ".join(args), result.returncode, result.stdout,
                                    result.stderr, self.log_text()))
        return result

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def __enter__(self):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=self.log, env=env)
        self.ctl("await_startup")
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.ctl("-q", "stop")
        try:
            status = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("the broker did not exit after warrenctl stop\n" + self.log_text())
        if exc[0] is None and status != 0:
            raise AssertionError("the broker exited %d\n%s" % (status, self.log_text()))
        self.log.close()
        return False


class InstalledProgramsTest(unittest.TestCase):
    def test_help(self):
        result = run([in_root("/usr/sbin/warren"), "--help"])
        self.assertEqual(result.returncode, 0)
        self.assertIn("--config FILE", result.stdout)
        result = run([in_root("/usr/sbin/warrenctl"), "--help"])
        self.assertEqual(result.returncode, 0)
        for command in ("await_startup", "environment", "stop"):
            self.assertIn(command, result.stdout)

    def test_runs_from_the_example_config_and_warrenctl_manages_it(self):
        data_dir = os.path.join(tempfile.mkdtemp(dir=WORK), "data")
        os.makedirs(data_dir)
        # The packaged config (its data_dir overridden by the flag, as flags win).
        with InstalledBroker(data_dir, extra=["--config", in_root("/etc/warren/warren.conf")]) as b:
            socket.create_connection(("127.0.0.1", b.port), timeout=5).close()
            status = json.loads(b.ctl("--formatter", "json", "status").stdout)
            self.assertEqual(status["pid"], b.process.pid)
            self.assertEqual(status["data_dir"], data_dir)
            environment = b.ctl("-q", "environment").stdout
            self.assertIn("port = %d\n" % b.port, environment)
            self.assertIn("data_dir = %s\n" % data_dir, environment)
            self.assertNotIn("default_pass", environment)
            stop = b.ctl("stop")
            self.assertIn("Stopping and halting node", stop.stdout)
            self.assertEqual(b.process.wait(30), 0)
            self.assertFalse(os.path.exists(os.path.join(data_dir, "warren.sock")))
            self.assertIn("admin: stop requested", b.log_text())
        # Nothing answers any more: await_startup gives up after -t seconds with 75.
        result = run([in_root("/usr/sbin/warrenctl"), "--data-dir", data_dir, "-t", "0.5",
                      "await_startup"])
        self.assertEqual(result.returncode, 75, result.stderr)


# Stubs for the system tools the maintainer scripts call; each logs its arguments. getent and
# the user tools keep a tiny user database in $STUB_STATE.
STUBS = {
    "getent": 'test -e "$STUB_STATE/$1.$2"',
    "addgroup": 'for a; do n=$a; done; touch "$STUB_STATE/group.$n"',
    "adduser": 'for a; do n=$a; done; touch "$STUB_STATE/passwd.$n"',
    "deluser": 'for a; do n=$a; done; rm "$STUB_STATE/passwd.$n"',
    "delgroup": 'for a; do n=$a; done; rm "$STUB_STATE/group.$n"',
    "systemctl": ':',
    "chown": ':',
    "dpkg-statoverride": 'exit 1',
}


class MaintainerScriptsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=WORK)
        self.control = os.path.join(self.dir, "control")
        run(["dpkg-deb", "-e", DEB, self.control])
        self.root = os.path.join(self.dir, "root")
        shutil.copytree(ROOT, self.root)
        os.makedirs(os.path.join(self.root, "run", "systemd", "system"))  # "systemd is running"
        self.bin = os.path.join(self.dir, "bin")
        self.state = os.path.join(self.dir, "state")
        os.makedirs(self.bin)
        os.makedirs(self.state)
        self.calls = os.path.join(self.dir, "calls")
        for name, body in STUBS.items():
            path = os.path.join(self.bin, name)
            with open(path, "w") as f:
                f.write('#!/bin/sh\necho "%s $*" >> "$STUB_CALLS"\n%s\n' % (name, body))
            os.chmod(path, 0o755)

    def script(self, name, *args):
        open(self.calls, "w").close()
        env = {"PATH": self.bin + ":/usr/bin:/bin", "DPKG_ROOT": self.root,
               "STUB_STATE": self.state, "STUB_CALLS": self.calls}
        result = run(["sh", "-e", os.path.join(self.control, name)] + list(args), env=env)
        self.assertEqual(result.returncode, 0, "%s %s: %s" % (name, args, result.stderr))
        with open(self.calls) as f:
            return f.read().splitlines()

    def test_install_remove_purge_are_idempotent(self):
        calls = self.script("postinst", "configure")
        self.assertIn("addgroup --system --quiet warren", calls)
        self.assertTrue(any(c.startswith("adduser --system") and c.endswith(" warren") for c in calls))
        self.assertIn("chown warren:warren %s/var/lib/warren" % self.root, calls)
        self.assertIn("chown root:warren %s/etc/warren/warren.conf" % self.root, calls)
        self.assertIn("systemctl enable warren.service", calls)
        self.assertIn("systemctl restart warren.service", calls)
        self.assertTrue(os.path.isdir(os.path.join(self.root, "var", "lib", "warren")))
        self.assertEqual(stat.S_IMODE(os.stat(in_root_of(self.root, "/etc/warren/warren.conf")).st_mode), 0o640)

        again = self.script("postinst", "configure")  # an upgrade, or a second configure
        self.assertFalse([c for c in again if c.startswith(("addgroup", "adduser"))], again)

        self.assertIn("systemctl stop warren.service", self.script("prerm", "remove"))
        self.assertIn("systemctl --root=%s disable warren.service" % self.root,
                      self.script("postrm", "remove"))
        purge = self.script("postrm", "purge")
        self.assertIn("deluser --system --quiet warren", purge)
        self.assertIn("delgroup --system --quiet warren", purge)
        self.assertFalse(os.path.exists(os.path.join(self.root, "var", "lib", "warren")))
        purge = self.script("postrm", "purge")
        self.assertFalse([c for c in purge if c.startswith(("deluser", "delgroup"))], purge)

    def test_without_systemd_running_nothing_is_started(self):
        shutil.rmtree(os.path.join(self.root, "run"))
        calls = self.script("postinst", "configure")
        self.assertFalse([c for c in calls if "restart" in c or "daemon-reload" in c], calls)
        self.assertIn("systemctl --root=%s enable warren.service" % self.root, calls)
        self.assertNotIn("systemctl stop warren.service", self.script("prerm", "remove"))


def in_root_of(root, path):
    return os.path.join(root, path.lstrip("/"))


if __name__ == "__main__":
    unittest.main()
