"""Core server: init, config, inbound SMTP on the MX listener with real clients."""

import re
import smtplib
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import BIN, DEFAULT_SETS, Rampart, message_bytes


def test_init_writes_config_cert_store_and_prints_records(tmp_path):
    r = Rampart(tmp_path, hostname="mx.example.test", domain="Example.TEST")
    text = r.config.read_text()
    for key in ["[server]", "hostname = \"mx.example.test\"", "[listener.smtp]", "[listener.submission]",
                "[listener.submissions]", "[listener.imap]", "[listener.imaps]", "max_message_size", "[dns]",
                "nameservers"]:
        assert key in text, key
    assert "example.test.\tIN\tMX\t10 mx.example.test." in r.init_output
    assert "v=spf1 mx -all" in r.init_output
    cert = subprocess.run(["openssl", "x509", "-in", r.ca, "-noout", "-text"], capture_output=True, text=True).stdout
    assert "ecdsa-with-SHA256" in cert
    for san in ["DNS:mx.example.test", "DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"]:
        assert san in cert, san
    key = (r.dir / "tls" / "key.pem").stat()
    assert key.st_mode & 0o007 == 0, "nobody else reads the key"
    # Run as root, init lets the service user's group read it (serve rereads it on SIGHUP
    # after dropping to that user); otherwise it is the owner's alone.
    import grp
    try:
        service_gid = grp.getgrnam("rampart").gr_gid
    except KeyError:
        service_gid = None
    assert key.st_mode & 0o070 == 0 or (key.st_gid == service_gid and key.st_mode & 0o020 == 0)
    assert r.run_cli("domain", "list").stdout.split() == ["example.test"]
    again = r.run_cli("init", "--dir", str(r.dir), "--hostname", "x.test", "--domain", "x.test", config=False, check=False)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    assert r.run_cli("config", "check").returncode == 0


def test_config_check_names_the_key(tmp_path):
    r = Rampart(tmp_path)
    bad = r.run_cli("config", "check", "--set", "listener.smtp.max_recipients=0",
                    "--set", "server.hostname=bad host", check=False)
    assert bad.returncode != 0
    assert "listener.smtp.max_recipients:" in bad.stderr
    assert "server.hostname:" in bad.stderr
    unknown = r.run_cli("config", "check", "--set", "listener.smtp.bnd=[]", check=False)
    assert unknown.returncode != 0 and "listener.smtp.bnd" in unknown.stderr


def start_fails(r, *sets):
    args = [BIN, "serve", "--config", str(r.config)]
    for s in (*DEFAULT_SETS, *sets):
        args += ["--set", s]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, p.stderr
    return errors[0]


def test_startup_errors_are_one_clear_line(tmp_path):
    r = Rampart(tmp_path)
    off = [f"listener.{n}.bind=[]" for n in ("submission", "submissions", "imap", "imaps")]
    line = start_fails(r, *off, 'listener.smtp.bind=["127.0.0.1:0"]', 'tls.cert="missing.pem"')
    assert "tls.cert" in line and "missing.pem" in line
    line = start_fails(r, *off, 'listener.smtp.bind=["127.0.0.1:0"]', 'listener.smtp.tls="sometimes"')
    assert "listener.smtp.tls" in line
    import socket
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    line = start_fails(r, *off, f'listener.smtp.bind=["127.0.0.1:{port}"]')
    assert "listener.smtp.bind" in line and str(port) in line
    busy.close()
    r.config.write_text(r.config.read_text() + "\n[bogus]\nx = 1\n")
    line = start_fails(r)
    assert "bogus" in line


def test_smtplib_delivers_over_starttls(rampart):
    rampart.start()
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=10) as s:
        code, ehlo = s.ehlo("client.example")
        assert code == 250
        for ext in [b"PIPELINING", b"SIZE 52428800", b"8BITMIME", b"SMTPUTF8", b"ENHANCEDSTATUSCODES",
                    b"CHUNKING", b"STARTTLS"]:
            assert ext in ehlo
        assert b"AUTH" not in ehlo
        s.starttls(context=rampart.tls_context())
        code, ehlo = s.ehlo("client.example")
        assert b"STARTTLS" not in ehlo
        s.sendmail("sender@remote.test", ["bob@example.test", "alice+news@example.test"],
                   message_bytes(subject="over tls", mid="<tls-1@remote.test>"))
    for who in ("bob@example.test", "alice@example.test"):
        rows = rampart.messages(who)
        assert [(m[3], m[4]) for m in rows] == [("<tls-1@remote.test>", "over tls")]
    text = rampart.message("bob@example.test", 1).decode()
    assert text.startswith("Return-Path: <sender@remote.test>\r\nReceived: from client.example ([127.0.0.1])")
    assert re.search(r"\(using TLSv1\.3 with cipher TLS13_\w+\)", text)
    assert "with ESMTPS id" in text
    # Two recipients: no "for" clause that would reveal one to the other.
    assert "for <" not in text.split("\r\n\r\n")[0]


def test_swaks_plain_and_starttls(rampart):
    rampart.start()
    port = str(rampart.ports["smtp"])
    base = ["swaks", "--server", "127.0.0.1", "--port", port, "--from", "sender@remote.test",
            "--helo", "swaks.example", "--h-Subject", "swaks"]
    plain = subprocess.run(base + ["--to", "bob@example.test"], capture_output=True, text=True, timeout=30)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    tls = subprocess.run(base + ["--to", "alice@example.test", "--tls", "--tls-verify", "--tls-ca-path", rampart.ca,
                                 "--tls-sni", "mx.example.test"], capture_output=True, text=True, timeout=30)
    assert tls.returncode == 0, tls.stdout + tls.stderr
    assert "TLS started" in tls.stdout
    unknown = subprocess.run(base + ["--to", "nobody@example.test"], capture_output=True, text=True, timeout=30)
    assert unknown.returncode == 24 and "550 5.1.1" in unknown.stdout
    relay = subprocess.run(base + ["--to", "someone@remote.test"], capture_output=True, text=True, timeout=30)
    assert relay.returncode == 24 and "554 5.7.1" in relay.stdout
    assert len(rampart.messages("bob@example.test")) == 1
    assert len(rampart.messages("alice@example.test")) == 1
    assert "ESMTPS" in rampart.message("alice@example.test", 1).decode()


def test_implicit_tls_listener(rampart):
    rampart.start('listener.smtp.tls="implicit"')
    with smtplib.SMTP_SSL("127.0.0.1", rampart.ports["smtp"], context=rampart.tls_context(), timeout=10,
                          local_hostname="client.example") as s:
        s.ehlo()
        assert not s.has_extn("starttls")
        s.sendmail("a@remote.test", ["bob@example.test"], message_bytes(subject="implicit"))
    assert rampart.messages("bob@example.test")[0][4] == "implicit"


def s_client(port, *args, starttls=True):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "mx.example.test", *args]
    if starttls:
        cmd += ["-starttls", "smtp"]
    return subprocess.run(cmd, input="QUIT\r\n", capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_only_tls12_and_tls13(rampart, tls):
    rampart.start(f'listener.smtp.tls="{tls}"')
    port = rampart.ports["smtp"]
    starttls = tls == "starttls"
    for version in ["-tls1", "-tls1_1"]:
        # SECLEVEL=0 lets OpenSSL 3 even try the old versions; the server must refuse them.
        r = s_client(port, version, "-cipher", "DEFAULT:@SECLEVEL=0", starttls=starttls)
        assert "Cipher is (NONE)" in r.stdout and "no peer certificate available" in r.stdout, r.stdout
    r12 = s_client(port, "-tls1_2", starttls=starttls)
    assert re.search(r"New, TLSv1\.2, Cipher is ECDHE-", r12.stdout), r12.stdout
    assert "ECDHE" in r12.stdout
    r13 = s_client(port, "-tls1_3", starttls=starttls)
    assert re.search(r"New, TLSv1\.3, Cipher is TLS_", r13.stdout), r13.stdout
    # A static-RSA (no forward secrecy) suite is never negotiated.
    rsa = s_client(port, "-tls1_2", "-cipher", "AES128-GCM-SHA256", starttls=starttls)
    assert "Cipher is (NONE)" in rsa.stdout or rsa.returncode != 0


def alpn_handshake(rampart, listener, protocols, starttls=False):
    """The ALPN protocol the server chose, or the SSL error's reason when it refused."""
    ctx = rampart.tls_context()
    ctx.set_alpn_protocols(protocols)
    raw = socket.create_connection(("127.0.0.1", rampart.ports[listener]), timeout=10)
    if starttls:
        assert raw.recv(1024).startswith(b"220")
        raw.sendall(b"EHLO c.test\r\n")
        time.sleep(0.2)
        raw.recv(4096)
        raw.sendall(b"STARTTLS\r\n")
        assert raw.recv(1024).startswith(b"220")
    try:
        with ctx.wrap_socket(raw, server_hostname="mx.example.test") as tls:
            return tls.selected_alpn_protocol()
    except ssl.SSLError:
        return "refused"


def test_alpn_must_name_the_listeners_protocol(rampart):
    """ALPACA (RFC 9325 §3.4): a client offering ALPN must offer the listener's protocol."""
    rampart.start(listeners=("smtp", "submissions", "imaps"))
    assert alpn_handshake(rampart, "submissions", ["http/1.1"]) == "refused"
    assert alpn_handshake(rampart, "imaps", ["http/1.1"]) == "refused"
    assert alpn_handshake(rampart, "imaps", ["smtp"]) == "refused"
    assert alpn_handshake(rampart, "imaps", ["imap"]) == "imap"
    assert alpn_handshake(rampart, "submissions", ["http/1.1", "smtp"]) == "smtp"
    assert alpn_handshake(rampart, "smtp", ["http/1.1"], starttls=True) == "refused"
    # Clients that offer no ALPN, as most mail clients, are unaffected.
    assert alpn_handshake(rampart, "submissions", []) is None
    rampart.stop()
    rampart.start("tls.enforce_alpn=false", listeners=("imaps",))
    assert alpn_handshake(rampart, "imaps", ["http/1.1"]) is None


def test_starttls_discards_pipelined_commands(rampart):
    rampart.start()
    c = rampart.connect()
    assert c.reply().startswith("220")
    assert c.cmd("EHLO client.example").startswith("250")
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\nRCPT TO:<bob@example.test>\r\n")
    assert c.reply().startswith("220 2.0.0")
    c.sock = rampart.tls_context().wrap_socket(c.sock, server_hostname="mx.example.test")
    # Had the injected commands run, MAIL would now be "nested" or RCPT accepted; instead the
    # session starts over and MAIL needs EHLO first.
    assert c.cmd("MAIL FROM:<a@remote.test>").startswith("503 5.5.1")
    assert c.cmd("EHLO client.example").startswith("250")
    assert c.cmd("MAIL FROM:<a@remote.test>").startswith("250")
    assert c.cmd("QUIT").startswith("221")


def test_pipelining_abuse_is_refused_and_pipelining_works(rampart):
    rampart.start()
    port = str(rampart.ports["smtp"])
    # swaks --pipeline groups MAIL, RCPT and DATA as RFC 2920 allows, and waits for the 354.
    piped = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", port, "--from", "a@remote.test",
                            "--to", "bob@example.test", "--pipeline",
                            "--helo", "swaks.example"], capture_output=True, text=True, timeout=30)
    assert piped.returncode == 0, piped.stdout + piped.stderr
    # A spam engine blasting its script: the message right behind DATA, before the 354.
    c = rampart.connect()
    c.reply()
    c.cmd("EHLO client.example")
    c.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
           b"Subject: blasted\r\n\r\nbuy\r\n.\r\nQUIT\r\n")
    assert c.reply().startswith("250 2.1.0")
    assert c.reply().startswith("250 2.1.5")
    assert c.reply().startswith("554 5.5.0")
    assert c.closed()
    # Commands right behind BDAT LAST.
    c = rampart.connect()
    c.reply()
    c.cmd("EHLO client.example")
    c.cmd("MAIL FROM:<a@remote.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    c.send(b"BDAT 14 LAST\r\nSubject: x\r\n\r\nQUIT\r\n")
    assert c.reply().startswith("554 5.5.0")
    assert c.closed()
    assert len(rampart.messages("bob@example.test")) == 1
    assert "event=pipelining_violation" in rampart.log() and "after=DATA" in rampart.log()


SMUGGLING = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r.\r\n", b"\r\n\x00.\r\n"]


@pytest.mark.parametrize("variant", SMUGGLING, ids=[repr(v) for v in SMUGGLING])
def test_smtp_smuggling_variants_are_refused(rampart, variant):
    rampart.start()
    c = rampart.connect()
    c.reply()
    c.cmd("EHLO client.example")
    assert c.cmd("MAIL FROM:<sender@remote.test>").startswith("250")
    assert c.cmd("RCPT TO:<bob@example.test>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: first\r\n\r\nfirst message" + variant
           + b"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
           + b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
    r = c.reply()
    assert r.startswith("5"), r
    assert c.closed()
    assert rampart.messages("bob@example.test") == []
    assert rampart.messages("alice@example.test") == []
    assert "event=message_refused" in rampart.log()


def test_bare_lf_in_command_is_refused(rampart):
    rampart.start()
    c = rampart.connect()
    c.reply()
    c.send(b"EHLO client.example\n")
    assert c.reply().startswith("500 5.5.2")
    assert c.closed()


def test_message_size_limit_while_streaming(rampart):
    rampart.start("listener.smtp.max_message_size=100000")
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=30) as s:
        s.ehlo("client.example")
        assert s.esmtp_features["size"] == "100000"
        code, _ = s.mail("a@remote.test", ["SIZE=200000"])
        assert code == 552
        s.rset()
        # No SIZE declared: refused at the end of the data, and the session goes on.
        s.mail("a@remote.test")
        s.rcpt("bob@example.test")
        code, msg = s.data(message_bytes(body="x" * 76 + "\r\n") * 0 + message_bytes(body=("y" * 998 + "\r\n") * 2000))
        assert code == 552 and msg.startswith(b"5.3.4"), msg
        assert s.noop()[0] == 250
    assert rampart.messages("bob@example.test") == []


def test_recipient_limit_and_error_limit(rampart):
    rampart.start("listener.smtp.max_recipients=2", "listener.smtp.max_errors=3")
    c = rampart.connect()
    c.reply()
    c.cmd("EHLO client.example")
    c.cmd("MAIL FROM:<a@remote.test>")
    assert c.cmd("RCPT TO:<bob@example.test>").startswith("250")
    assert c.cmd("RCPT TO:<alice@example.test>").startswith("250")
    assert c.cmd("RCPT TO:<bob@example.test>").startswith("452 4.5.3")
    assert c.cmd("FOO").startswith("500 5.5.2")
    assert c.cmd("BAR").startswith("500 5.5.2")
    assert c.cmd("BAZ").startswith("421 4.7.0")
    assert c.closed()


def test_command_line_limit(rampart):
    rampart.start("listener.smtp.max_command_line=512")
    c = rampart.connect()
    c.reply()
    assert c.cmd("EHLO " + "a" * 600).startswith("500 5.5.2")
    assert c.cmd("EHLO client.example").startswith("250")


def test_idle_and_session_timeouts(rampart):
    rampart.start('listener.smtp.idle_timeout="1s"', 'listener.smtp.session_timeout="3s"')
    idle = rampart.connect()
    assert idle.reply().startswith("220")
    time.sleep(1.5)
    assert idle.reply().startswith("421 4.4.2")
    assert idle.closed()
    busy = rampart.connect()
    busy.reply()
    start = time.time()
    reply = ""
    while time.time() - start < 8:
        reply = busy.cmd("NOOP")
        if not reply.startswith("250"):
            break
        time.sleep(0.5)
    assert reply.startswith("421 4.4.2"), reply
    assert 2.5 < time.time() - start < 5


def test_connection_limit(rampart):
    rampart.start("listener.smtp.max_connections=2")
    a, b = rampart.connect(), rampart.connect()
    assert a.reply().startswith("220") and b.reply().startswith("220")
    c = rampart.connect()
    assert c.reply().startswith("421 4.7.0")
    a.cmd("QUIT")
    time.sleep(0.3)
    d = rampart.connect()
    assert d.reply().startswith("220")


def test_protocol_basics(rampart):
    rampart.start()
    c = rampart.connect()
    c.reply()
    assert c.cmd("MAIL FROM:<a@remote.test>").startswith("503 5.5.1")
    assert c.cmd("HELO client.example").startswith("250")
    assert c.cmd("VRFY bob").startswith("252")
    assert c.cmd("HELP").startswith("214")
    assert c.cmd("NOOP").startswith("250")
    assert c.cmd("EHLO client.example").startswith("250")
    assert c.cmd("AUTH PLAIN AGJvYgBwYXNz").startswith("503")
    assert c.cmd("MAIL FROM:<>").startswith("250")
    assert c.cmd("RCPT TO:<nobody@example.test>").startswith("550 5.1.1")
    assert c.cmd("RCPT TO:<bob@EXAMPLE.test.>").startswith("250")
    assert c.cmd("RSET").startswith("250")
    assert c.cmd("RCPT TO:<bob@example.test>").startswith("503")
    assert c.cmd("QUIT").startswith("221")


def test_bdat(rampart):
    rampart.start()
    c = rampart.connect()
    c.reply()
    c.cmd("EHLO client.example")
    c.cmd("MAIL FROM:<a@remote.test> BODY=8BITMIME")
    c.cmd("RCPT TO:<bob@example.test>")
    body = message_bytes(subject="chunks", body="caf\u00e9\r\n")
    half = len(body) // 2
    c.send(b"BDAT %d\r\n" % half + body[:half])
    assert c.reply().startswith("250")
    c.send(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
    assert c.reply().startswith("250 2.0.0 Ok: queued as")
    assert rampart.message("bob@example.test", 1).endswith(body)


def test_postmaster_and_aliases(rampart):
    rampart.run_cli("alias", "add", "postmaster@example.test", "alice@example.test")
    rampart.run_cli("alias", "add", "team@example.test", "bob@example.test")
    rampart.run_cli("alias", "add", "team@example.test", "alice@example.test")
    assert "team@example.test -> alice@example.test" in rampart.run_cli("alias", "list").stdout
    rampart.start()
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example")
        s.sendmail("a@remote.test", ["postmaster"], message_bytes(subject="to postmaster"))
        s.sendmail("a@remote.test", ["team@example.test"], message_bytes(subject="to team"))
    assert [m[4] for m in rampart.messages("alice@example.test")] == ["to postmaster", "to team"]
    assert [m[4] for m in rampart.messages("bob@example.test")] == ["to team"]


def test_cli_changes_apply_to_a_running_server(rampart):
    rampart.start()
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail("a@remote.test", ["carol@example.test"], message_bytes())
    rampart.add_user("carol@example.test")
    rampart.run_cli("domain", "add", "second.test")
    rampart.add_user("dave@second.test")
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example")
        s.sendmail("a@remote.test", ["carol@example.test", "dave@second.test"], message_bytes(subject="new"))
    assert rampart.messages("carol@example.test")[0][4] == "new"
    assert rampart.messages("dave@second.test")[0][4] == "new"
    rampart.run_cli("user", "remove", "carol@example.test")
    assert "carol" not in rampart.run_cli("user", "list").stdout


def test_message_why_shows_the_trail(rampart):
    rampart.start()
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example")
        s.mail("a@remote.test")
        s.rcpt("bob@example.test")
        code, msg = s.data(message_bytes())
    ident = msg.decode().rsplit(" ", 1)[1]
    assert f"id {ident}" in rampart.message("bob@example.test", 1).decode()
    why = rampart.run_cli("message", "why", ident).stdout
    assert "bob@example.test/INBOX" in why and "accept" in why
    assert re.search(rf"event=accepted .*id={ident}", rampart.log())


def fingerprint(port):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "smtp",
                        "-servername", "mx.example.test"], input="", capture_output=True, text=True, timeout=30)
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", r.stdout, re.S).group(0)
    return subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=pem,
                          capture_output=True, text=True).stdout.strip()


def test_sighup_reloads_certificates_without_dropping_connections(rampart, tmp_path):
    rampart.start()
    port = rampart.ports["smtp"]
    before = fingerprint(port)
    live = rampart.connect()
    live.reply()
    live.cmd("EHLO client.example")
    live.starttls(rampart.tls_context())
    assert live.cmd("EHLO client.example").startswith("250")
    key, cert = tmp_path / "new.key", tmp_path / "new.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", "/CN=mx.example.test",
                    "-addext", "subjectAltName=DNS:mx.example.test"], check=True, capture_output=True)
    (rampart.dir / "tls" / "cert.pem").write_bytes(cert.read_bytes())
    (rampart.dir / "tls" / "key.pem").write_bytes(key.read_bytes())
    rampart.proc.send_signal(1)
    rampart.wait_log(r"event=certificates_reloaded")
    assert fingerprint(port) != before
    assert live.cmd("NOOP").startswith("250")
    # A broken certificate file on reload keeps the working one.
    (rampart.dir / "tls" / "cert.pem").write_text("garbage")
    rampart.proc.send_signal(1)
    rampart.wait_log(r"event=reload_failed")
    assert fingerprint(port) != before


def test_durability_under_kill_9(rampart):
    """300 messages from 4 concurrent clients; kill -9 mid-way; every acknowledged one survives."""
    rampart.start()
    port = rampart.ports["smtp"]
    acked, lock = [], threading.Lock()

    def client(n):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                s.ehlo(f"client{n}.example")
                for i in range(75):
                    mid = f"<durable-{n}-{i}@remote.test>"
                    s.sendmail("a@remote.test", ["bob@example.test"], message_bytes(subject=f"{n}-{i}", mid=mid))
                    with lock:
                        acked.append(mid)
        except (smtplib.SMTPException, OSError):
            pass

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while True:
        with lock:
            if len(acked) >= 100:
                break
        assert time.monotonic() < deadline, f"only {len(acked)} messages acknowledged in 60 s"
        assert any(t.is_alive() for t in threads), f"every client stopped after {len(acked)} messages"
        time.sleep(0.005)
    rampart.kill9()
    for t in threads:
        t.join()
    assert 100 <= len(acked) < 300
    rampart.start()
    stored = {m[3] for m in rampart.messages("bob@example.test")}
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged messages lost"
    import sqlite3
    db = sqlite3.connect(rampart.dir / "data" / "rampart.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # The server still accepts mail after the crash.
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=10) as s:
        s.sendmail("a@remote.test", ["bob@example.test"], message_bytes(mid="<after@remote.test>"))
    assert "<after@remote.test>" in {m[3] for m in rampart.messages("bob@example.test")}


def test_sni_picks_the_certificate_per_host_name(rampart, tmp_path):
    key, cert = tmp_path / "other.key", tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", "/CN=mail.other.test",
                    "-addext", "subjectAltName=DNS:mail.other.test"], check=True, capture_output=True)
    rampart.start(f'tls.sni=[{{hostname = "mail.other.test", cert = "{cert}", key = "{key}"}}]')
    port = rampart.ports["smtp"]

    def subject(name):
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "smtp",
                            "-servername", name], input="", capture_output=True, text=True, timeout=30)
        return re.search(r"subject=(.*)", r.stdout).group(1)

    assert "mail.other.test" in subject("mail.other.test")
    assert "mx.example.test" in subject("mx.example.test")
    assert "mx.example.test" in subject("unknown.example")
