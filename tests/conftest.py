"""Harness for end-to-end tests: the real `rampart` binary on ephemeral loopback ports.

`Rampart` runs `rampart init` in a temp dir, starts `rampart serve` with every listener bound
to 127.0.0.1:0 (or off), and reads the actual ports from the `event=listening` log lines.
"""

import os
import pathlib
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = os.environ.get("RAMPART_BIN", str(ROOT / "target" / "debug" / "rampart"))
LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "https", "http", "metrics")
# Defaults for every test server: no greeting delay (a test about it turns it back on); the
# suite runs as root in pytest's private directories, so servers keep root (test_privileges.py
# tests the drop to an unprivileged user).
DEFAULT_SETS = ('listener.smtp.pregreet_wait="0s"', "server.allow_root=true")
PASSWORD = "correct horse battery staple"
# Every server process a test starts, so none outlives its test (see `_stop_servers`).
RUNNING = []


# RAMPART_TEST_STORE=postgres runs every test server on the PostgreSQL store (a throwaway
# cluster per test process, a fresh database per server) instead of the embedded one.
TEST_STORE = os.environ.get("RAMPART_TEST_STORE", "sqlite")
_POSTGRES = []


def test_store_url():
    """A fresh database on this process's PostgreSQL test cluster, started on first use."""
    if not _POSTGRES:
        from postgres import Postgres
        _POSTGRES.append(Postgres().start())
    return _POSTGRES[0].database()


class Rampart:
    def __init__(self, base: pathlib.Path, hostname="mx.example.test", domain="example.test", name="rampart",
                 store_url=None, node_id=None):
        self.dir = base / name
        self.hostname = hostname
        self.domain = domain
        self.config = self.dir / "rampart.toml"
        self.log_path = self.dir / "server.log"
        self.proc = None
        self.ports = {}
        if store_url is None and TEST_STORE == "postgres":
            store_url = test_store_url()
        self.store_url = store_url
        self.node_id = node_id
        store = ["--store-url", store_url] if store_url else []
        self.init_output = self.run_cli(
            "init", "--dir", str(self.dir), "--hostname", hostname, "--domain", domain, *store, config=False
        ).stdout
        self.ca = str(self.dir / "tls" / "cert.pem")

    # --- command line -------------------------------------------------------------------------
    def run_cli(self, *args, input=None, check=True, config=True, timeout=60):
        cmd = [BIN, *args]
        if config:
            cmd += ["--config", str(self.config)]
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def add_user(self, address, password=PASSWORD):
        self.run_cli("user", "add", address, "--password-stdin", input=password + "\n")

    def set_config(self, section, key, value):
        """Changes `key` in `[section]` of the config file (for settings the CLI reads too)."""
        lines = self.config.read_text().split("\n")
        current = None
        for i, line in enumerate(lines):
            header = re.fullmatch(r"\[([^\]]+)\]", line.strip())
            if header:
                current = header.group(1)
            elif current == section and re.match(rf"{re.escape(key)}\s*=", line):
                lines[i] = f"{key} = {value}"
                self.config.write_text("\n".join(lines))
                return
        raise AssertionError(f"{section}.{key} not found")

    def messages(self, address, mailbox="INBOX"):
        """[(uid, id, size, message_id, subject)] of a mailbox."""
        out = self.run_cli("message", "list", address, "--mailbox", mailbox).stdout
        rows = []
        for line in out.splitlines():
            uid, ref, size, mid, subject = line.split("\t", 4)
            rows.append((int(uid), ref, int(size), mid, subject))
        return rows

    def message(self, address, uid, mailbox="INBOX") -> bytes:
        cmd = [BIN, "message", "show", address, str(uid), "--mailbox", mailbox, "--config", str(self.config)]
        return subprocess.run(cmd, capture_output=True, check=True, timeout=30).stdout

    # --- server -------------------------------------------------------------------------------
    def start(self, *sets, listeners=("smtp",), wait=True):
        args = [BIN, "serve", "--config", str(self.config)]
        for name in LISTENERS:
            bind = '["127.0.0.1:0"]' if name in listeners else "[]"
            args += ["--set", f"listener.{name}.bind={bind}"]
        # Sender-authentication checks query DNS: only against the test's own dnsmasq, never the
        # machine's resolver. Without a test DNS they are off.
        if not any(s.startswith("dns.nameservers") for s in (*DEFAULT_SETS, *sets)):
            args += ["--set", "auth_checks.enabled=false"]
            # So is the dashboard's background audit (it still runs when an admin asks).
            args += ["--set", 'web.audit_interval="0s"']
        if self.node_id:
            args += ["--set", f'cluster.node_id="{self.node_id}"']
        for s in (*DEFAULT_SETS, *sets):
            args += ["--set", s]
        self.log_file = open(self.log_path, "ab")
        self.log_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT)
        RUNNING.append(self.proc)
        if wait:
            self.wait_started()
        return self

    def wait_started(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log()
            if "event=started" in text:
                self.ports = {}
                for name, port in re.findall(r"event=listening listener=(\S+) addr=127\.0\.0\.1:(\d+)", text):
                    self.ports[name] = int(port)
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"rampart exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise AssertionError(f"rampart did not start:\n{self.log()}")

    def log(self) -> str:
        """Log output of the current run."""
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def wait_log(self, pattern, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not in log:\n{self.log()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    # --- clients ------------------------------------------------------------------------------
    def tls_context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        return ctx

    def connect(self, listener="smtp", source="127.0.0.1", timeout=10):
        return Conn(socket.create_connection(("127.0.0.1", self.ports[listener]), timeout=timeout, source_address=(source, 0)))


class Conn:
    """A line-oriented raw SMTP client for the cases smtplib cannot express."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def reply(self) -> str:
        """One complete reply; '' when the server closed the connection."""
        while True:
            m = re.search(rb"^\d{3} [^\n]*\n", self.buf, re.M)
            if m:
                end = m.end()
                text, self.buf = self.buf[:end], self.buf[end:]
                return text.decode(errors="replace")
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                rest, self.buf = self.buf, b""
                return rest.decode(errors="replace")
            self.buf += chunk

    def cmd(self, line: str) -> str:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def starttls(self, ctx, server_hostname="mx.example.test"):
        assert self.cmd("STARTTLS").startswith("220")
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)

    def closed(self, timeout=5) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self):
        self.sock.close()


def wait_for(check, timeout=20, what="condition"):
    """Polls `check` until it returns something truthy, and returns that."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


_handed_out = set()


def free_port(kind=socket.SOCK_STREAM):
    """A loopback port free now, for a server that must be told its port before it binds.
    Taken below the kernel's ephemeral range (32768 and up): a port from there can be handed to
    another test's outgoing connection or `bind(0)` before our server binds it. A port is handed
    out once per test process: two calls before either server binds (Pebble's HTTPS and HTTP
    ports) could otherwise both be given the same still-free port."""
    import random

    for _ in range(200):
        port = random.randrange(20000, 32768)
        if port in _handed_out:
            continue
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
            _handed_out.add(port)
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free loopback port in 20000-32767")


class Dns:
    """dnsmasq on a loopback port, authoritative for .test and nothing else (no forwarding)."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.records = []
        self.proc = None
        self.port = None

    def mx(self, domain, host, pref=10):
        self.records.append(f"--mx-host={domain},{host},{pref}")

    def a(self, name, ip="127.0.0.1"):
        self.records.append(f"--host-record={name},{ip}")

    def txt(self, name, *strings):
        self.records.append("--txt-record=" + ",".join([name, *[f'"{s}"' if "," in s else s for s in strings]]))

    def start(self):
        for _ in range(5):
            self.port = free_port(socket.SOCK_DGRAM)
            args = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                    "--no-dhcp-interface=", "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={self.port}",
                    "--pid-file=", "--user=root", "--local=/test/", "--log-facility=-", *self.records]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(0.2)
            if self.proc.poll() is None:
                return self
        raise AssertionError("dnsmasq did not start: " + self.proc.stderr.read().decode())

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def pytest_collection_modifyitems(config, items):
    """With RAMPART_TEST_STORE=postgres, tests of what only the embedded store has are skipped."""
    if TEST_STORE != "postgres":
        return
    skip = pytest.mark.skip(reason="needs the embedded SQLite store")
    for item in items:
        if "sqlite_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _stop_servers():
    """Kills any server a test left running, whatever way the test ended."""
    yield
    while RUNNING:
        proc = RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def dns(tmp_path):
    d = Dns(tmp_path)
    yield d
    d.stop()


@pytest.fixture
def rampart(tmp_path):
    r = Rampart(tmp_path)
    r.add_user("bob@example.test")
    r.add_user("alice@example.test")
    yield r
    r.stop()


def message_bytes(subject="Test", body="Hello.\r\n", sender="sender@remote.test", to="bob@example.test", mid=None):
    mid = mid or f"<{time.time_ns()}@remote.test>"
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
        f"Date: Fri, 27 Nov 2026 12:00:00 +0000\r\n\r\n{body}"
    ).encode()
