"""Throw-away certificates for the TLS tests, made with the openssl command-line tool in a temp
directory (private keys are never committed): a CA, a server certificate for localhost and
127.0.0.1, client certificates (CN=guest with a DNS subject alternative name, an expired one),
and a second CA with a client certificate of its own. P-256 keys keep generation fast."""
import os
import subprocess
import tempfile


def _openssl(*args, cwd):
    subprocess.run(("openssl",) + args, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def _key_and_csr(name, subject, cwd):
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + ".key", "-subj", subject, "-out", name + ".csr", cwd=cwd)


def _ca(name, subject, cwd):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + ".key", "-out", name + ".pem", "-days", "30", "-subj", subject, cwd=cwd)


def _sign(name, ca, cwd, days="30", extensions=None):
    args = ["x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", days, "-out", name + ".pem"]
    if extensions:
        with open(os.path.join(cwd, name + ".ext"), "w") as f:
            f.write(extensions + "\n")
        args += ["-extfile", name + ".ext"]
    _openssl(*args, cwd=cwd)


class Certificates:
    """Paths: ca, server, server2 (a second server certificate, for reloads), client,
    expired_client, other_ca, other_client; each X has X.pem and (but CAs' users) X.key."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="warren-tls-")
        self.dir = d = self._tmp.name
        _ca("ca", "/CN=Warren Test CA", d)
        _ca("other_ca", "/CN=Another CA", d)
        for name, subject in (("server", "/CN=localhost"), ("server2", "/CN=localhost/O=Reloaded")):
            _key_and_csr(name, subject, d)
            _sign(name, "ca", d, extensions="subjectAltName=DNS:localhost,IP:127.0.0.1")
        _key_and_csr("client", "/CN=guest/O=Warren tests", d)
        _sign("client", "ca", d, extensions="subjectAltName=DNS:san-user")
        _key_and_csr("expired_client", "/CN=guest", d)
        _sign("expired_client", "ca", d, days="-1")
        _key_and_csr("other_client", "/CN=guest", d)
        _sign("other_client", "other_ca", d)

    def path(self, name, ext="pem"):
        return os.path.join(self.dir, "%s.%s" % (name, ext))

    def cleanup(self):
        self._tmp.cleanup()
