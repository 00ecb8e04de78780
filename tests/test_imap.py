"""IMAP end to end: the real binary against Python's imaplib, raw sockets and mbsync."""

import base64
import email
import email.policy
import imaplib
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import zlib
from email.message import EmailMessage

import pytest

from conftest import PASSWORD, ROOT, message_bytes

BOB = "bob@example.test"


@pytest.fixture
def server(rampart):
    rampart.start(listeners=("smtp", "imap", "imaps"))
    return rampart


def imaps(r, user=BOB):
    m = imaplib.IMAP4_SSL("127.0.0.1", r.ports["imaps"], ssl_context=r.tls_context(), timeout=20)
    if user:
        m.login(user, PASSWORD)
    return m


def ok(result):
    typ, data = result
    assert typ == "OK", (typ, data)
    return data


def multipart_message():
    inner = EmailMessage()
    inner["From"] = "Inner <inner@remote.test>"
    inner["Subject"] = "forwarded"
    inner.set_content("inner text\n")
    msg = EmailMessage()
    msg["From"] = "Jürgen Müller <jurgen@remote.test>"
    msg["To"] = "Bob <bob@example.test>, alice@example.test"
    msg["Cc"] = "carol@remote.test"
    msg["Subject"] = "Quarterly numbers – café"
    msg["Message-ID"] = "<multi-1@remote.test>"
    msg["In-Reply-To"] = "<earlier@remote.test>"
    msg["Date"] = "Fri, 27 Nov 2026 12:00:00 +0100"
    msg.set_content("Plain body, numbers attached.\n")
    msg.add_alternative("<p>HTML body</p>\n", subtype="html")
    msg.add_attachment(bytes(range(256)) * 4, maintype="application", subtype="octet-stream", filename="data.bin")
    msg.add_attachment(inner)
    return msg.as_bytes(policy=email.policy.SMTP)


def test_starttls_gate_and_authenticate_plain(server):
    m = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=20)
    assert "LOGINDISABLED" in m.capabilities and "STARTTLS" in m.capabilities
    assert not any(c.startswith("AUTH=") for c in m.capabilities)
    with pytest.raises(imaplib.IMAP4.error):
        m.login(BOB, PASSWORD)
    m.starttls(server.tls_context())
    assert "AUTH=PLAIN" in m.capabilities and "LOGINDISABLED" not in m.capabilities
    typ, _ = m.authenticate("PLAIN", lambda _: f"\0{BOB}\0{PASSWORD}".encode())
    assert typ == "OK"
    assert "IDLE" in m.capability()[1][0].decode()
    m.logout()
    server.wait_log(r"event=auth_success proto=imap ip=127\.0\.0\.1 listener=imap user=bob@example\.test mechanism=PLAIN")


def test_failed_login_is_logged_for_fail2ban(server):
    m = imaps(server, user=None)
    with pytest.raises(imaplib.IMAP4.error):
        m.login(BOB, "wrong password")
    server.wait_log(r"event=auth_failure proto=imap ip=127\.0\.0\.1 listener=imaps user=bob@example\.test mechanism=LOGIN reason=bad_credentials")
    if shutil.which("fail2ban-regex"):
        filt = str(ROOT / "contrib" / "fail2ban" / "filter.d" / "rampart.conf")
        r = subprocess.run(["fail2ban-regex", "-o", "ip", str(server.log_path), filt], capture_output=True, text=True, timeout=60)
        assert r.stdout.split() == ["127.0.0.1"], r.stdout + r.stderr


def test_guard_bans_an_imap_password_guesser(rampart):
    rampart.start("guard.auth_failures_per_ip=3", 'auth.failure_delay="10ms"', listeners=("imaps",))
    for _ in range(3):
        m = imaps(rampart, user=None)
        with pytest.raises(imaplib.IMAP4.error):
            m.login(BOB, "guess")
    rampart.wait_log(r"event=ban ip=127\.0\.0\.1/32 .*reason=auth_failures")
    # The ban holds for IMAP too: the next connection is closed before TLS.
    with pytest.raises((OSError, imaplib.IMAP4.abort, ssl.SSLError)):
        imaps(rampart)


def test_starttls_discards_pipelined_plaintext(server):
    sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"* OK")
    # The injected command rides in the same packet as STARTTLS (CVE-2011-0411).
    sock.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
    assert f.readline().startswith(b"a OK")
    tls = server.tls_context().wrap_socket(sock, server_hostname="mx.example.test")
    tls.sendall(b"c NOOP\r\n")
    tf = tls.makefile("rb")
    line = tf.readline()
    assert line.startswith(b"c OK"), line
    tls.close()


def test_implicit_tls_append_and_fetch_every_attribute(server):
    raw = multipart_message()
    m = imaps(server)
    typ, data = m.append("INBOX", r"(\Flagged $Work)", imaplib.Time2Internaldate(1790000000), raw)
    assert typ == "OK" and b"APPENDUID" in data[0]
    ok(m.select("INBOX"))
    typ, data = m.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE UID RFC822.HEADER BODY.PEEK[TEXT])")
    assert typ == "OK"
    head = data[0][0].decode()
    assert f"RFC822.SIZE {len(raw)}" in head
    assert "UID 1" in head
    assert r"\Flagged" in head and "$Work" in head
    # The flags were set at APPEND; nothing was read yet, so \Seen is not among them.
    assert r"\Seen" not in head
    assert 'ENVELOPE ("Fri, 27 Nov 2026 12:00:00 +0100"' in head
    assert '"<multi-1@remote.test>")' in head and '"<earlier@remote.test>"' in head
    assert '("Bob" NIL "bob" "example.test")(NIL NIL "alice" "example.test")' in head
    assert '("multipart"' not in head  # multiparts are written as lists of parts
    assert '"alternative"' in head and '"mixed"' in head
    assert '"base64" 1' in head  # the attachment is base64 with its size
    assert '("message" "rfc822"' in head and '"forwarded"' in head
    assert '("attachment" ("filename" "data.bin"))' in head
    header = data[0][1]
    assert raw.startswith(header) and header.endswith(b"\r\n\r\n")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    parts = list(parsed.iter_parts())
    # BODY[1.1] is the plain text, BODY[1.2] the HTML, [2] the attachment, [3.1] the inner text.
    for section, want in [
        ("1.1", parts[0].get_body(("plain",)).get_payload(decode=False)),
        ("1.2", parts[0].get_body(("html",)).get_payload(decode=False)),
    ]:
        typ, d = m.fetch("1", f"(BODY.PEEK[{section}])")
        assert d[0][1].decode().rstrip("\r\n") == want.rstrip("\r\n").replace("\n", "\r\n").rstrip("\r\n"), section
    typ, d = m.fetch("1", "(BODY.PEEK[2])")
    import base64
    assert base64.b64decode(d[0][1]) == bytes(range(256)) * 4
    typ, d = m.fetch("1", "(BODY.PEEK[3.HEADER.FIELDS (SUBJECT)] BODY.PEEK[3.1] BODY.PEEK[2.MIME])")
    literals = [x[1] for x in d if isinstance(x, tuple)]
    assert literals[0] == b"Subject: forwarded\r\n\r\n"
    assert literals[1].strip() == b"inner text"
    assert b"Content-Disposition: attachment" in literals[2]
    typ, d = m.fetch("1", "(BODY[]<10.20>)")
    assert d[0][0].endswith(b"BODY[]<10> {20}") and d[0][1] == raw[10:30]
    typ, d = m.fetch("1", "(FLAGS)")
    assert rb"\Seen" in d[0], "BODY[] sets \\Seen"
    typ, d = m.fetch("1", "(RFC822)")
    assert d[0][1] == raw
    m.logout()


def test_search_store_move_expunge(server):
    m = imaps(server)
    for i, subject in enumerate(["alpha report", "beta", "gamma report"]):
        ok(m.append("INBOX", r"(\Seen)" if i == 1 else None, None, message_bytes(subject=subject, body=f"body {i}\r\n")))
    ok(m.select("INBOX"))
    assert ok(m.search("UTF-8", "SUBJECT", "report")) == [b"1 3"]
    assert ok(m.search(None, "UNSEEN")) == [b"1 3"]
    assert ok(m.search(None, "OR", "BODY", '"body 1"', "LARGER", "1000000")) == [b"2"]
    assert ok(m.uid("SEARCH", None, "NOT", "SEEN")) == [b"1 3"]
    assert ok(m.search(None, "SENTSINCE", "1-Nov-2026", "SENTBEFORE", "1-Dec-2026")) == [b"1 2 3"]
    typ, data = m.search("KOI8-R", "ALL")
    assert typ == "NO"
    assert ok(m.store("1,3", "+FLAGS", r"(\Flagged)"))
    assert ok(m.search(None, "FLAGGED")) == [b"1 3"]
    typ, data = m.uid("MOVE", "3", "Archive")
    assert typ == "OK"
    assert m.untagged_responses.pop("EXPUNGE") == [b"3"]
    assert ok(m.status("Archive", "(MESSAGES)")) == [b"Archive (MESSAGES 1)"]
    ok(m.store("1", "+FLAGS.SILENT", r"(\Deleted)"))
    typ, data = m.expunge()
    assert data == [b"1"]
    assert ok(m.search(None, "ALL")) == [b"1"]
    typ, data = m.copy("1", "Nowhere")
    assert typ == "NO" and b"TRYCREATE" in data[0]
    typ, data = m.uid("COPY", "2", "Trash")
    assert typ == "OK"
    assert ok(m.status("Trash", "(MESSAGES)")) == [b"Trash (MESSAGES 1)"]
    m.logout()


def read_until(f, pattern, timeout):
    """Lines from a socket file until one matches; returns (line, seconds)."""
    start = time.monotonic()
    while True:
        line = f.readline()
        if not line:
            raise AssertionError("connection closed")
        if re.search(pattern, line):
            return line, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{pattern!r} not seen in {timeout}s")


def test_idle_is_woken_by_an_smtp_delivery(server):
    ctx = server.tls_context()
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=10), server_hostname="localhost")
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(f'a LOGIN {BOB} "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
    read_until(f, rb"^\+ ", 10)
    time.sleep(0.2)
    sent = time.monotonic()
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as s:
        s.starttls(context=ctx)
        s.sendmail("sender@remote.test", [BOB], message_bytes(subject="wake up"))
    delivered = time.monotonic()
    line, _ = read_until(f, rb"^\* 1 EXISTS", 5)
    woke = time.monotonic()
    latency = woke - delivered
    print(f"IDLE wake latency after the SMTP 250: {latency * 1000:.1f} ms (SMTP transaction {1000 * (delivered - sent):.0f} ms)")
    assert latency < 1.0
    sock.sendall(b"DONE\r\n")
    read_until(f, rb"^c OK", 5)
    sock.sendall(b"d FETCH 1 (ENVELOPE)\r\n")
    line, _ = read_until(f, rb"ENVELOPE", 5)
    assert b'"wake up"' in line
    sock.close()


def test_two_sessions_on_one_mailbox(server):
    a, b = imaps(server), imaps(server)
    for i in range(3):
        ok(a.append("INBOX", None, None, message_bytes(subject=f"m{i}")))
    assert ok(a.select("INBOX")) == [b"3"]
    assert ok(b.select("INBOX")) == [b"3"]
    ok(b.store("2", "+FLAGS", r"(\Deleted \Answered)"))
    ok(b.expunge())
    ok(b.append("INBOX", None, None, message_bytes(subject="m3")))
    # During FETCH, a sees the new message but not the expunge (RFC 3501 §7.4.1).
    a.untagged_responses.clear()
    typ, data = a.fetch("1:3", "(UID)")
    assert typ == "OK"
    assert a.untagged_responses.get("EXISTS") == [b"4"]
    assert "EXPUNGE" not in a.untagged_responses
    ok(a.noop())
    assert a.untagged_responses.get("EXPUNGE") == [b"2"]
    ok(b.store("1", "+FLAGS", r"(\Flagged)"))
    a.untagged_responses.clear()
    ok(a.noop())
    assert any(b"\\Flagged" in x for x in a.untagged_responses.get("FETCH", [])), a.untagged_responses
    assert ok(a.uid("SEARCH", None, "ALL")) == [b"1 3 4"]
    a.logout()
    b.logout()


def test_examine_reports_recent_without_taking_it(server):
    """RFC 3501 §6.3.2: EXAMINE answers the RECENT count SELECT would and leaves \\Recent to
    the next SELECT; once a SELECT has taken it, nobody sees those messages as recent."""
    a, b = imaps(server), imaps(server)
    for i in range(2):
        ok(a.append("INBOX", None, None, message_bytes(subject=f"r{i}")))
    a.untagged_responses.clear()
    ok(a.select("INBOX", readonly=True))
    assert a.untagged_responses.get("RECENT") == [b"2"]
    assert all(b"\\Recent" in x for x in ok(a.fetch("1:2", "(FLAGS)")))
    b.untagged_responses.clear()
    ok(b.select("INBOX"))
    assert b.untagged_responses.get("RECENT") == [b"2"]
    a.untagged_responses.clear()
    ok(a.select("INBOX", readonly=True))
    assert a.untagged_responses.get("RECENT") == [b"0"]
    a.logout()
    b.logout()


class Wire:
    """A raw IMAP client over TLS that can switch to COMPRESS=DEFLATE (RFC 4978): raw DEFLATE
    both ways, each command ended with a sync flush, replies inflated as they arrive."""

    def __init__(self, r):
        raw = socket.create_connection(("127.0.0.1", r.ports["imaps"]), timeout=20)
        self.sock = r.tls_context().wrap_socket(raw, server_hostname="localhost")
        self.deflate = self.inflate = None
        self.buf = b""
        self.wire_in = 0
        self.until(b"* OK")

    def compress(self):
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    def send(self, data):
        if self.deflate:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def until(self, marker):
        """Reads until a line starts with `marker`; returns everything up to that line's end."""
        while True:
            at = self.buf.find(marker) if self.buf.startswith(marker) else self.buf.find(b"\r\n" + marker)
            if at >= 0:
                end = self.buf.find(b"\r\n", at + 2)
                if end >= 0:
                    out, self.buf = self.buf[: end + 2], self.buf[end + 2 :]
                    return out
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed before {marker!r}: {self.buf[-200:]!r}"
            self.wire_in += len(chunk)
            self.buf += self.inflate.decompress(chunk) if self.inflate else chunk

    def command(self, tag, text):
        self.send(f"{tag} {text}\r\n".encode())
        return self.until(tag.encode() + b" ")


def test_compress_deflate_carries_commands_literals_and_idle(server):
    w = Wire(server)
    assert b"BAD" in w.command("a0", "COMPRESS DEFLATE"), "COMPRESS needs a login first"
    assert b"a1 OK" in w.command("a1", f"LOGIN {BOB} \"{PASSWORD}\"")
    caps = w.command("a2", "CAPABILITY")
    assert b"COMPRESS=DEFLATE" in caps
    assert b"BAD" in w.command("a3", "COMPRESS LZ4")
    assert b"a4 OK" in w.command("a4", "COMPRESS DEFLATE")
    w.compress()
    assert b"[COMPRESSIONACTIVE]" in w.command("a5", "COMPRESS DEFLATE")
    # A non-synchronizing literal (LITERAL+) inside the compressed stream.
    body = ("All work and no play makes a dull message.\r\n" * 4000).encode()
    msg = message_bytes(subject="deflated", body=body.decode())
    w.send(b"a6 APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert b"a6 OK" in w.until(b"a6 ")
    assert b"a7 OK" in w.command("a7", "SELECT INBOX")
    before = w.wire_in
    fetched = w.command("a8", "FETCH 1 BODY.PEEK[]")
    assert b"a8 OK" in fetched and msg in fetched
    assert w.wire_in - before < len(msg) // 10, "the FETCH went over the wire compressed"
    # IDLE: an untagged EXISTS arrives while the client waits, so the server flushed it.
    w.send(b"a9 IDLE\r\n")
    w.until(b"+ ")
    other = imaps(server)
    ok(other.append("INBOX", None, None, message_bytes(subject="while idle")))
    assert b"* 2 EXISTS" in w.until(b"* 2 EXISTS")
    w.send(b"DONE\r\n")
    assert b"a9 OK" in w.until(b"a9 ")
    assert b"BYE" in w.command("b1", "LOGOUT")
    other.logout()


def test_unauthenticate_returns_to_the_not_authenticated_state(server):
    """RFC 8437: after UNAUTHENTICATE the connection (TLS, COMPRESS) stays, the login, the
    selected mailbox and ENABLEd extensions do not; another user can log in on it."""
    w = Wire(server)
    assert b"a1 OK" in w.command("a1", f"LOGIN {BOB} \"{PASSWORD}\"")
    assert b"UNAUTHENTICATE" in w.command("a2", "CAPABILITY")
    assert b"a3 OK" in w.command("a3", "COMPRESS DEFLATE")
    w.compress()
    assert b"a4 OK" in w.command("a4", "ENABLE CONDSTORE")
    assert b"a5 OK" in w.command("a5", "SELECT INBOX")
    assert b"a6 OK" in w.command("a6", "UNAUTHENTICATE")
    assert b"a7 BAD" in w.command("a7", "FETCH 1 FLAGS")
    assert b"a8 BAD" in w.command("a8", "SELECT INBOX")
    caps = w.command("a9", "CAPABILITY")
    assert b"AUTH=PLAIN" in caps and b"UNAUTHENTICATE" not in caps
    assert b"b1 OK" in w.command("b1", f"LOGIN alice@example.test \"{PASSWORD}\"")
    assert b"* ENABLED CONDSTORE" in w.command("b2", "ENABLE CONDSTORE"), "CONDSTORE was reset"
    assert b"BYE" in w.command("b3", "LOGOUT")


def test_multiappend_stores_all_or_nothing(rampart):
    """RFC 3502: several messages in one APPEND, each with its own flags and date, get
    consecutive UIDs in one APPENDUID; one bad message stores none. Large ones stream to
    blobs (the second is over the 64 KiB inline limit), small ones after them too."""
    rampart.start("listener.imaps.max_append_size=300000", listeners=("smtp", "imaps"))
    w = Wire(rampart)
    assert b"a1 OK" in w.command("a1", f"LOGIN {BOB} \"{PASSWORD}\"")
    assert b"MULTIAPPEND" in w.command("a2", "CAPABILITY")
    one = message_bytes(subject="one")
    two = message_bytes(subject="two", body="x" * 200_000 + "\r\n")
    three = message_bytes(subject="three")
    # The first literal is synchronizing: the server answers "+" before it is sent.
    w.send(b"a3 APPEND INBOX (\\Seen) {%d}\r\n" % len(one))
    w.until(b"+ ")
    w.send(one + b' "05-Nov-2026 10:00:00 +0000" {%d+}\r\n' % len(two) + two + b" (\\Flagged $Work) {%d+}\r\n" % len(three) + three + b"\r\n")
    done = w.until(b"a3 ")
    assert b"a3 OK [APPENDUID" in done and b" 1:3]" in done, done
    assert b"a4 OK" in w.command("a4", "SELECT INBOX")
    fetched = w.command("a5", "FETCH 1:3 (FLAGS INTERNALDATE RFC822.SIZE)")
    assert re.search(rb"\* 1 FETCH \(FLAGS \(\\Seen( \\Recent)?\)", fetched), fetched
    assert b'05-Nov-2026 10:00:00 +0000' in fetched
    assert b"RFC822.SIZE %d" % len(two) in fetched
    assert b"$Work" in fetched
    assert two in w.command("a6", "FETCH 2 BODY.PEEK[]")
    # A bad flag on the second message: nothing of the command is stored.
    w.send(b"a7 APPEND INBOX {%d+}\r\n" % len(one) + one + b" (\\Recent) {%d+}\r\n" % len(three) + three + b"\r\n")
    assert b"a7 BAD" in w.until(b"a7 ")
    # Over APPENDLIMIT on the third: NO [TOOBIG], nothing stored either.
    big = message_bytes(subject="big", body="y" * 310_000)
    w.send(b"a8 APPEND INBOX {%d+}\r\n" % len(one) + one + b" {%d+}\r\n" % len(two) + two + b" {%d}\r\n" % len(big))
    assert b"a8 BAD" in w.until(b"a8 "), "the synchronizing literal over the limit is refused unread"
    assert b"(MESSAGES 3)" in w.command("a9", "STATUS INBOX (MESSAGES)")
    assert b"BYE" in w.command("b1", "LOGOUT")


def test_searchres_saves_a_result_for_dollar(server):
    """RFC 5182: SEARCH RETURN (SAVE) keeps its result for `$` in later commands, as UIDs (so
    an expunge does not shift it); SAVE alone answers no ESEARCH; MIN/MAX save only those; a
    failed SEARCH or a new SELECT empties it."""
    w = Wire(server)
    assert b"a1 OK" in w.command("a1", f"LOGIN {BOB} \"{PASSWORD}\"")
    assert b"SEARCHRES" in w.command("a2", "CAPABILITY")
    for i in range(6):
        subject = "keep" if i % 2 else "drop"
        msg = message_bytes(subject=f"{subject} {i}")
        w.send(b"a3 APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        assert b"a3 OK" in w.until(b"a3 ")
    assert b"a4 OK" in w.command("a4", "SELECT INBOX")
    saved = w.command("a5", "UID SEARCH RETURN (SAVE) SUBJECT keep")
    assert b"ESEARCH" not in saved and b"a5 OK" in saved, saved
    assert re.findall(rb"\* (\d+) FETCH \(UID (\d+)\)", w.command("a6", "FETCH $ (UID)")) == [(b"2", b"2"), (b"4", b"4"), (b"6", b"6")]
    assert b"a7 OK" in w.command("a7", "STORE 1 +FLAGS (\\Deleted)")
    assert b"* 1 EXPUNGE" in w.command("a8", "EXPUNGE")
    # The saved UIDs stay; their message numbers moved down by one.
    assert re.findall(rb"\* (\d+) FETCH \(UID (\d+)\)", w.command("a9", "FETCH $ (UID)")) == [(b"1", b"2"), (b"3", b"4"), (b"5", b"6")]
    both = w.command("b1", "SEARCH RETURN (SAVE MIN COUNT) UID $ NOT UID 4")
    assert b"MIN 1" in both and b"COUNT 2" in both, both
    # With COUNT, SAVE keeps all the matches: UIDs 2 and 6.
    assert re.findall(rb"UID (\d+)", w.command("b2", "UID FETCH $ (UID)")) == [b"2", b"6"]
    w.command("b3", "SEARCH RETURN (SAVE MAX) ALL")
    assert re.findall(rb"UID (\d+)", w.command("b4", "UID FETCH $ (UID)")) == [b"6"]
    assert b"b5 OK" in w.command("b5", "UID STORE $ +FLAGS.SILENT (\\Flagged)")
    assert b"ALL 6" in w.command("b7", "UID SEARCH RETURN (ALL) FLAGGED")
    assert b"NO [BADCHARSET" in w.command("b8", "SEARCH RETURN (SAVE) CHARSET KOI8-R ALL")
    assert not re.search(rb"\* \d+ FETCH", w.command("b9", "FETCH $ (UID)"))
    w.command("c1", "SEARCH RETURN (SAVE) ALL")
    assert b"c2 OK" in w.command("c2", "SELECT INBOX")
    assert not re.search(rb"\* \d+ FETCH", w.command("c3", "FETCH $ (UID)"))
    assert b"BYE" in w.command("c4", "LOGOUT")


def test_binary_append_and_fetch(server):
    """RFC 3516: APPEND takes a literal8 with NUL octets; BINARY[] undoes base64 and answers
    in a literal8; BINARY.SIZE agrees; an unknown transfer encoding is NO [UNKNOWN-CTE]."""
    w = Wire(server)
    assert b"a1 OK" in w.command("a1", f"LOGIN {BOB} \"{PASSWORD}\"")
    assert b"BINARY" in w.command("a2", "CAPABILITY")
    payload = bytes(range(256)) * 4
    msg = (b"From: a@example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + payload +
           b"\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
           base64.encodebytes(payload).replace(b"\n", b"\r\n") +
           b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n--b--\r\n")
    w.send(b"a3 APPEND INBOX ~{%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert b"a3 OK" in w.until(b"a3 ")
    assert b"a4 OK" in w.command("a4", "SELECT INBOX")
    for part in (1, 2):
        got = w.command("a5", f"FETCH 1 (BINARY.PEEK[{part}] BINARY.SIZE[{part}])")
        assert b"BINARY[%d] ~{%d}\r\n" % (part, len(payload)) + payload in got, got[:200]
        assert b"BINARY.SIZE[%d] %d" % (part, len(payload)) in got
    ranged = w.command("a6", "FETCH 1 BINARY.PEEK[2]<10.5>")
    assert b"BINARY[2]<10> {5}\r\n" + payload[10:15] in ranged, ranged
    assert b"a7 NO [UNKNOWN-CTE]" in w.command("a7", "FETCH 1 BINARY.PEEK[3]")
    assert b"BYE" in w.command("b1", "LOGOUT")


def test_internaldate_keeps_the_zone_given_at_append(server):
    """RFC 3501 §6.3.11: INTERNALDATE is the date APPEND gave, in its zone; COPY keeps it."""
    m = imaps(server)
    ok(m.append("INBOX", None, '"07-Nov-2026 10:00:00 -0530"', message_bytes(subject="zoned")))
    ok(m.create("Zoned"))
    ok(m.select("INBOX"))
    assert b'INTERNALDATE "07-Nov-2026 10:00:00 -0530"' in ok(m.fetch("1", "(INTERNALDATE)"))[0]
    ok(m.copy("1", "Zoned"))
    ok(m.select("Zoned"))
    assert b'INTERNALDATE "07-Nov-2026 10:00:00 -0530"' in ok(m.fetch("1", "(INTERNALDATE)"))[0]
    m.logout()


def test_compress_can_be_turned_off(rampart):
    rampart.start("listener.imaps.compress=false", listeners=("smtp", "imaps"))
    w = Wire(rampart)
    assert b"a1 OK" in w.command("a1", f"LOGIN {BOB} \"{PASSWORD}\"")
    assert b"COMPRESS" not in w.command("a2", "CAPABILITY")
    assert b"a3 BAD" in w.command("a3", "COMPRESS DEFLATE")


def test_preauth_memory_bomb_does_not_grow_rss(rampart):
    # The guard would cut the bomber off at its connection caps; this test is about the
    # parser and driver, so let all connections in.
    server = rampart.start("guard.max_connections_per_ip=1000", "guard.max_connections_per_net=1000",
                           "guard.connection_rate_per_ip=1000",
                           listeners=("imap", "imaps"))
    pid = server.proc.pid

    def rss_kib():
        text = open(f"/proc/{pid}/status").read()
        return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1))

    # Warm up: one full session so lazily allocated state is already there.
    imaps(server).logout()
    before = rss_kib()
    socks = []
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
        f = s.makefile("rb")
        assert f.readline().startswith(b"* OK")
        s.sendall(b"a LOGIN {1073741824}\r\n")
        line = f.readline()
        assert line.startswith(b"a BAD [TOOBIG]"), line
        socks.append((s, f))
    # A non-synchronizing literal of 1 GiB: the server hangs up instead of reading it.
    s = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"b LOGIN {1073741824+}\r\n")
    sent = 0
    chunk = b"x" * (1 << 20)
    try:
        while sent < (256 << 20):
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    assert sent < (64 << 20), f"the server kept reading: {sent} bytes"
    # An endless line without a newline is dropped as it arrives.
    s2 = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
    s2.makefile("rb").readline()
    for _ in range(32):
        s2.sendall(chunk)
    s2.sendall(b"\r\n")
    time.sleep(0.5)
    after = rss_kib()
    print(f"server RSS before {before} KiB, after the bombs {after} KiB (+{after - before} KiB); non-sync literal cut after {sent >> 20} MiB")
    assert after - before < 8 * 1024
    for s, f in socks:
        s.close()
    s2.close()


def test_a_large_append_does_not_grow_rss(server):
    pid = server.proc.pid

    def rss_kib():
        return int(re.search(r"VmRSS:\s+(\d+) kB", open(f"/proc/{pid}/status").read()).group(1))

    m = imaps(server)
    ok(m.append("INBOX", None, None, message_bytes(subject="warm up")))
    before = rss_kib()
    big = message_bytes(subject="big", body="x" * 78 + "\r\n") * 1
    body = (("y" * 998 + "\r\n") * (40 * 1024)).encode()
    raw = big + body
    ok(m.append("INBOX", None, None, raw))
    after = rss_kib()
    print(f"RSS before a {len(raw) >> 20} MiB APPEND {before} KiB, after {after} KiB (+{after - before} KiB)")
    assert after - before < 8 * 1024
    ok(m.select("INBOX"))
    typ, data = m.fetch("2", "(RFC822.SIZE)")
    assert f"RFC822.SIZE {len(raw)}".encode() in data[0]
    m.logout()



def test_large_fetches_stream_without_growing_rss(server):
    """Ten clients fetch one 20 MiB message at once: the server streams it from the store in
    chunks, so its RSS grows by far less than one copy per client (issue 19: under 64 MiB)."""
    import hashlib
    import threading

    pid = server.proc.pid

    def rss_kib():
        return int(re.search(r"VmRSS:\s+(\d+) kB", open(f"/proc/{pid}/status").read()).group(1))

    raw = message_bytes(subject="big") + (("z" * 998 + "\r\n") * (20 * 1024)).encode()
    m = imaps(server)
    ok(m.append("INBOX", None, None, raw))
    ok(m.select("INBOX"))
    # A range reads only its own bytes, and one past the end is empty.
    data = ok(m.fetch("1", "(BODY.PEEK[]<1000.100>)"))
    assert data[0][1] == raw[1000:1100]
    data = ok(m.fetch("1", f"(RFC822.SIZE BODY.PEEK[]<{len(raw) - 10}.100>)"))
    assert data[0][1] == raw[-10:] and f"RFC822.SIZE {len(raw)}".encode() in data[0][0]
    m.logout()
    want = hashlib.sha256(raw).hexdigest()
    before, peak, results = rss_kib(), [0], []

    def client():
        c = imaps(server)
        c.select("INBOX", readonly=True)
        typ, data = c.fetch("1", "(UID BODY.PEEK[])")
        results.append(typ == "OK" and hashlib.sha256(data[0][1]).hexdigest() == want)
        c.logout()

    threads = [threading.Thread(target=client) for _ in range(10)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak[0] = max(peak[0], rss_kib())
        time.sleep(0.02)
    for t in threads:
        t.join()
    print(f"RSS before {before} KiB, peak during 10 x {len(raw) >> 20} MiB FETCH {peak[0]} KiB (+{peak[0] - before} KiB)")
    assert results == [True] * 10
    assert peak[0] - before < 64 * 1024

MBSYNC_CONFIG = """
IMAPAccount rampart
Host localhost
Port {port}
User {user}
Pass "{password}"
SSLType IMAPS
CertificateFile {ca}
AuthMechs LOGIN PLAIN

IMAPStore remote
Account rampart

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
"""


def maildir_message(path, name, raw, flags=""):
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    (path / "cur" / f"{name}:2,{flags}").write_bytes(raw)


def local_subjects(path):
    out = []
    for sub in ("cur", "new"):
        d = path / sub
        if d.exists():
            for f in d.iterdir():
                out.append(email.message_from_bytes(f.read_bytes())["Subject"])
    return sorted(out)


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync (mbsync) is not installed")
def test_mbsync_syncs_several_mailboxes_both_ways(server, tmp_path):
    m = imaps(server)
    ok(m.create("Projects/Alpha"))
    for box, subject in [("INBOX", "server inbox 1"), ("INBOX", "server inbox 2"), ("Projects/Alpha", "server alpha"), ("Sent", "server sent")]:
        ok(m.append(box, r"(\Seen)", None, message_bytes(subject=subject)))
    maildir = tmp_path / "mail"
    maildir_message(maildir / "Drafts", "1.local", message_bytes(subject="local draft"), "D")
    maildir_message(maildir / "Local", "2.local", message_bytes(subject="local folder"), "S")
    config = tmp_path / "mbsyncrc"
    config.write_text(MBSYNC_CONFIG.format(port=server.ports["imaps"], user=BOB, password=PASSWORD, ca=server.ca, maildir=maildir))

    def run():
        r = subprocess.run(["mbsync", "-c", str(config), "-a"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    run()
    assert local_subjects(maildir / "INBOX") == ["server inbox 1", "server inbox 2"]
    assert local_subjects(maildir / "Projects" / "Alpha") == ["server alpha"]
    assert local_subjects(maildir / "Sent") == ["server sent"]
    assert ok(m.status("Drafts", "(MESSAGES)")) == [b"Drafts (MESSAGES 1)"]
    assert ok(m.status("Local", "(MESSAGES)")) == [b"Local (MESSAGES 1)"]
    ok(m.select("Drafts"))
    typ, data = m.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert rb"\Draft" in data[0][0] and b"local draft" in data[0][1]

    # Changes on both sides: a flag and a deletion on the server, a new message locally.
    ok(m.select("INBOX"))
    ok(m.store("1", "+FLAGS", r"(\Flagged)"))
    ok(m.store("2", "+FLAGS", r"(\Deleted)"))
    ok(m.expunge())
    maildir_message(maildir / "INBOX", "3.local", message_bytes(subject="local inbox"))
    run()
    assert local_subjects(maildir / "INBOX") == ["local inbox", "server inbox 1"]
    flagged = [f.name for f in (maildir / "INBOX" / "cur").iterdir() if "F" in f.name.split(":2,")[-1]]
    assert len(flagged) == 1
    ok(m.select("INBOX"))
    typ, data = m.search(None, "ALL")
    assert data == [b"1 2"]
    # A third run changes nothing and duplicates nothing.
    run()
    assert local_subjects(maildir / "INBOX") == ["local inbox", "server inbox 1"]
    assert ok(m.status("INBOX", "(MESSAGES)")) == [b"INBOX (MESSAGES 2)"]
    m.logout()


def test_credential_cache_is_invalidated_by_the_cli_at_once(server):
    """A login caches the verified password; `rampart user passwd`, app-password revocation
    and account removal, made by the CLI while the server runs, take effect at the next login."""
    new = "tangerine vortex quietly hums"
    for _ in range(2):
        imaps(server).logout()
    server.run_cli("user", "passwd", BOB, "--password-stdin", input=new + "\n")
    m = imaps(server, user=None)
    with pytest.raises(imaplib.IMAP4.error):
        m.login(BOB, PASSWORD)
    m = imaps(server, user=None)
    m.login(BOB, new)
    m.logout()
    app = server.run_cli("user", "app-password", "add", BOB, "--name", "phone").stdout.strip().splitlines()[-1]
    for _ in range(2):
        m = imaps(server, user=None)
        m.login(BOB, app)
        m.logout()
    server.run_cli("user", "app-password", "revoke", BOB, "--name", "phone")
    m = imaps(server, user=None)
    with pytest.raises(imaplib.IMAP4.error):
        m.login(BOB, app)
    server.run_cli("user", "remove", BOB)
    m = imaps(server, user=None)
    with pytest.raises(imaplib.IMAP4.error):
        m.login(BOB, new)
