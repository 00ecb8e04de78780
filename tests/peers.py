"""Test peers written in Python: a scriptable remote MX / smart host (aiosmtpd) and a SCRAM
client with tls-exporter channel binding (pyOpenSSL exports the keying material)."""

import base64
import hashlib
import hmac
import os
import re
import select
import socket
import ssl
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from OpenSSL import SSL

from conftest import free_port


class Recorder:
    """An aiosmtpd handler that records messages and can answer RCPT from a script:
    `rcpt_replies[address]` is a list of replies used one per attempt (the last one repeats);
    None means accept."""

    def __init__(self, rcpt_replies=None):
        self.rcpt_replies = rcpt_replies or {}
        self.messages = []
        self.attempts = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        n = self.attempts.get(address, 0)
        self.attempts[address] = n + 1
        script = self.rcpt_replies.get(address)
        if script:
            reply = script[min(n, len(script) - 1)]
            if reply:
                return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session))
        return "250 2.0.0 Accepted by peer"


class Peer:
    """An aiosmtpd server on a loopback port. `tls`: None, "starttls" or "implicit"."""

    def __init__(self, cert, key, tls=None, users=None, rcpt_replies=None):
        self.handler = Recorder(rcpt_replies)
        self.port = free_port()
        self.users = users or {}
        self.logins = []
        kwargs = {}
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            kwargs["ssl_context" if tls == "implicit" else "tls_context"] = ctx
        if self.users:
            kwargs["authenticator"] = self.authenticate
            # aiosmtpd only knows about STARTTLS: with implicit TLS it would hide AUTH.
            kwargs["auth_require_tls"] = tls != "implicit"
            kwargs["auth_required"] = True
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, server_hostname="peer.test",
                                     **kwargs)
        self.controller.start()

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users.get(user) == password
        self.logins.append((mechanism, user, ok))
        # handled=False lets aiosmtpd send the failure reply; anything else hangs the client.
        return AuthResult(success=ok, handled=False)

    @property
    def messages(self):
        return self.handler.messages

    def stop(self):
        self.controller.stop()


class TlsSmtp:
    """A minimal SMTP client on pyOpenSSL, for the one thing Python's ssl cannot do: export
    the RFC 9266 tls-exporter channel binding."""

    def __init__(self, port, ca):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.tls = None
        self.ca = ca

    def _recv(self):
        if not self.tls:
            return self.sock.recv(65536)
        # pyOpenSSL on a socket with a timeout is non-blocking: wait for data ourselves.
        while True:
            try:
                return self.tls.recv(65536)
            except SSL.WantReadError:
                if not select.select([self.sock], [], [], 10)[0]:
                    raise TimeoutError("no reply")

    def reply(self):
        """(code, text) of one complete reply; (0, "") when the server closed."""
        while True:
            m = re.search(rb"^(\d{3}) [^\n]*\n", self.buf, re.M)
            if m:
                text, self.buf = self.buf[: m.end()], self.buf[m.end():]
                return int(m.group(1)), text.decode().strip()
            try:
                chunk = self._recv()
            except (SSL.ZeroReturnError, SSL.SysCallError):
                chunk = b""
            if not chunk:
                return 0, ""
            self.buf += chunk

    def cmd(self, line):
        data = (line + "\r\n").encode()
        if self.tls:
            self.tls.sendall(data)
        else:
            self.sock.sendall(data)
        return self.reply()

    def starttls(self):
        assert self.reply()[0] == 220
        assert self.cmd("EHLO client.test")[0] == 250
        assert self.cmd("STARTTLS")[0] == 220
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.load_verify_locations(self.ca)
        ctx.set_verify(SSL.VERIFY_PEER, lambda *a: a[-1])
        self.tls = SSL.Connection(ctx, self.sock)
        self.tls.set_tlsext_host_name(b"mx.example.test")
        self.tls.set_connect_state()
        while True:
            try:
                self.tls.do_handshake()
                break
            except SSL.WantReadError:
                select.select([self.sock], [], [], 10)
        code, ehlo = self.cmd("EHLO client.test")
        assert code == 250
        return ehlo

    def exporter(self):
        return self.tls.export_keying_material(b"EXPORTER-Channel-Binding", 32)


def scram_auth(client, user, password, plus=False, cbind_data=None, gs2=None):
    """Runs AUTH SCRAM-SHA-256[-PLUS] (RFC 5802/7677) and returns the final SMTP reply code."""
    mech = "SCRAM-SHA-256-PLUS" if plus else "SCRAM-SHA-256"
    gs2 = gs2 or ("p=tls-exporter,," if plus else "n,,")
    cnonce = base64.b64encode(os.urandom(18)).decode()
    bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={cnonce}"
    code, text = client.cmd(f"AUTH {mech} " + base64.b64encode((gs2 + bare).encode()).decode())
    if code != 334:
        return code
    server_first = base64.b64decode(text[4:]).decode()
    fields = dict(f.split("=", 1) for f in server_first.split(","))
    if not fields["r"].startswith(cnonce):
        return -1
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    cbind = gs2.encode() + (cbind_data or b"")
    without_proof = f"c={base64.b64encode(cbind).decode()},r={fields['r']}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored, auth_message, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    code, text = client.cmd(base64.b64encode(final.encode()).decode())
    if code != 334:
        return code
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    expected = "v=" + base64.b64encode(hmac.new(server_key, auth_message, "sha256").digest()).decode()
    if base64.b64decode(text[4:]).decode() != expected:
        return -2
    code, _ = client.cmd("")
    return code


EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class Clamd:
    """Debian's clamd, offline, with only EICAR signatures: the whole-file hash (`eicar.hdb`)
    and a body signature (`eicar.ndb`) so EICAR inside a message body is found too. Starts in
    well under a second; everything lives in `base`."""

    def __init__(self, base):
        import pathlib
        self.dir = pathlib.Path(base) / "clamd"
        self.dir.mkdir()
        (self.dir / "eicar.hdb").write_text("44d88612fea8a8f36de82e1278abb02f:68:Test.EICAR\n")
        (self.dir / "eicar.ndb").write_text(f"Test.EICAR.Body:0:*:{EICAR.hex()}\n")
        self.socket = self.dir / "clamd.sock"
        (self.dir / "clamd.conf").write_text(
            f"Foreground yes\nDatabaseDirectory {self.dir}\nLocalSocket {self.socket}\n"
            f"TemporaryDirectory {self.dir}\nLogFile {self.dir}/clamd.log\nStreamMaxLength 25M\n")
        self.proc = None

    def start(self):
        import shutil
        import subprocess
        import time
        clamd = shutil.which("clamd") or "/usr/sbin/clamd"
        assert shutil.os.path.exists(clamd), "clamd is not installed: run scripts/setup"
        self.proc = subprocess.Popen([clamd, "--config-file", str(self.dir / "clamd.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while not self.socket.exists():
            assert self.proc.poll() is None, (self.dir / "clamd.log").read_text()
            assert time.time() < deadline, "clamd did not start"
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class ScriptedMilter:
    """A milter (Sendmail milter protocol v6, filter side) that answers `continue` to every
    step except those in `script`: {command letter: reply packets}. Command letters: C connect,
    H helo, M mail, R rcpt, T data, L header, N end of headers, B body, E end of message. A
    reply packet is (code, data); `hang` as the reply never answers (a filter that hangs).
    Every command received is recorded in `seen` as (letter, data)."""

    def __init__(self, script=None):
        import threading
        self.script = script or {}
        self.seen = []
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.port = self.server.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def packet(code, data=b""):
        import struct
        return struct.pack(">I", len(data) + 1) + code + data

    def _read(self, conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _accept(self):
        import threading
        while not self.stopped:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        import struct
        try:
            while True:
                (length,) = struct.unpack(">I", self._read(conn, 4))
                body = self._read(conn, length)
                code, data = body[:1], body[1:]
                if code == b"O":
                    # Version 6, every action, every step with a reply to each.
                    conn.sendall(self.packet(b"O", struct.pack(">III", 6, 0x1FF, 0)))
                    continue
                if code in (b"D", b"A"):
                    continue  # macros and abort get no reply
                if code == b"Q":
                    return
                self.seen.append((code.decode(), data))
                replies = self.script.get(code.decode(), [(b"c", b"")])
                if replies == "hang":
                    time.sleep(3600)
                for reply_code, reply_data in replies:
                    conn.sendall(self.packet(reply_code, reply_data))
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopped = True
        self.server.close()


class Rspamd:
    """Debian's rspamd: only its proxy worker, in milter mode, scanning itself; no redis, rbl
    and fuzzy_check off, DNS pointed nowhere. Its compiled patterns are cached in
    target/tmp/rspamd-db-e2e, so only the first start on a machine takes long (~15-25 s)."""

    def __init__(self, base, dns="127.0.0.1:9", workers=1):
        import pathlib
        self.dir = pathlib.Path(base) / "rspamd"
        self.port = free_port()
        local = self.dir / "local"
        (local / "local.d").mkdir(parents=True)
        (local / "override.d").mkdir()
        files = {
            "override.d/worker-proxy.inc": f'bind_socket = "127.0.0.1:{self.port}";\nmilter = yes;\ntimeout = 120s;\ncount = {workers};\n'
                                           'upstream "local" { default = yes; self_scan = yes; }\n',
            "override.d/worker-normal.inc": 'count = -1;\nbind_socket = "127.0.0.1:1";\n',
            "override.d/worker-controller.inc": 'count = -1;\nbind_socket = "127.0.0.1:1";\n',
            "override.d/logging.inc": 'type = "console";\nlevel = "warning";\n',
            "local.d/options.inc": f'dns {{ nameserver = ["{dns}"]; timeout = 0.1s; retransmits = 0; }}\n',

            "local.d/rbl.conf": "enabled = false;\n",
            "local.d/fuzzy_check.conf": "enabled = false;\n",
            "local.d/milter_headers.conf": "extended_spam_headers = true;\n",
        }
        for name, text in files.items():
            (local / name).write_text(text)
        self.db = pathlib.Path(__file__).resolve().parent.parent / "target" / "tmp" / "rspamd-db-e2e"
        self.db.mkdir(parents=True, exist_ok=True)
        self.proc = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=180):
        import shutil
        import subprocess
        assert shutil.which("rspamd"), "rspamd is not installed: run scripts/setup"
        args = ["rspamd", "-f", "-i", "-c", "/etc/rspamd/rspamd.conf", f"--var=LOCAL_CONFDIR={self.dir / 'local'}",
                f"--var=DBDIR={self.db}", f"--var=RUNDIR={self.dir}", f"--var=LOGDIR={self.dir}"]
        self.proc = subprocess.Popen(args, stdout=open(self.dir / "rspamd.out", "wb"), stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert self.proc.poll() is None, (self.dir / "rspamd.out").read_text()
                assert time.time() < deadline, "rspamd did not listen in time"
                time.sleep(0.1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
