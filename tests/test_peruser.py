"""Per-user encryption (`rampart user encryption enable ADDRESS`, issue 16): mail delivered
while the user is logged out leaves nothing of itself in any file of the data directory (WAL
included) with server-key mode off, the administrator's CLI cannot read it, and the user's
logins — PLAIN, LOGIN, SCRAM-SHA-256, an app password — unlock it for FETCH, SEARCH (SUBJECT
and BODY) and SORT. Revoking the app password stops it; an admin password reset locks the
mail until the recovery code opens it again."""

import base64
import hashlib
import hmac
import imaplib
import os
import smtplib

import pytest

import subprocess

from conftest import BIN, PASSWORD
from test_encryption import MARKER, encrypted_message, files_holding, forms

# Per-user encryption exists for the embedded store only.
pytestmark = pytest.mark.sqlite_only

USER = "bob@example.test"


def scram(password):
    """The client side of SCRAM-SHA-256 (RFC 5802/7677) as an imaplib authobject."""
    cnonce = base64.b64encode(os.urandom(18)).decode()
    bare = f"n={USER},r={cnonce}"
    state = {}

    def step(challenge: bytes) -> bytes:
        if "auth" not in state and not challenge:
            state["first"] = True
            return ("n,," + bare).encode()
        if "auth" not in state:
            server_first = challenge.decode()
            fields = dict(f.split("=", 1) for f in server_first.split(","))
            assert fields["r"].startswith(cnonce)
            salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
            client_key = hmac.new(salted, b"Client Key", "sha256").digest()
            stored = hashlib.sha256(client_key).digest()
            without_proof = f"c={base64.b64encode(b'n,,').decode()},r={fields['r']}"
            auth = f"{bare},{server_first},{without_proof}".encode()
            signature = hmac.new(stored, auth, "sha256").digest()
            proof = bytes(a ^ b for a, b in zip(client_key, signature))
            server_key = hmac.new(salted, b"Server Key", "sha256").digest()
            state["auth"] = "v=" + base64.b64encode(hmac.new(server_key, auth, "sha256").digest()).decode()
            return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
        assert challenge.decode() == state["auth"], "the server proved it knows the keys"
        return b""

    return step


def connect(r):
    m = imaplib.IMAP4("127.0.0.1", r.ports["imap"], timeout=30)
    m.starttls(ssl_context=r.tls_context())
    return m


def login(r, how="login", password=PASSWORD):
    m = connect(r)
    if how == "login":
        m.login(USER, password)
    elif how == "plain":
        m.authenticate("PLAIN", lambda _: f"\0{USER}\0{password}".encode())
    else:
        m.authenticate("SCRAM-SHA-256", scram(password))
    return m


def reads_everything(m, small, large):
    m.select("INBOX")
    typ, data = m.uid("FETCH", "1:2", "(BODY.PEEK[])")
    bodies = [d[1] for d in data if isinstance(d, tuple)]
    assert typ == "OK" and bodies[0].endswith(small) and bodies[1].endswith(large)
    for criteria in (f'SUBJECT "{MARKER}"', f'BODY "{MARKER}"', f'TEXT "{MARKER}"'):
        typ, data = m.uid("SEARCH", None, criteria)
        assert typ == "OK" and data[0].split() == [b"1", b"2"], (criteria, data)
    typ, data = m.uid("SORT", "(REVERSE SIZE)", "UTF-8", "ALL")
    assert typ == "OK" and data[0].split() == [b"2", b"1"], data
    typ, data = m.uid("THREAD", "REFERENCES", "UTF-8", "ALL")
    assert typ == "OK", data
    m.logout()


def refused(r, password, how="login"):
    try:
        login(r, how, password).logout()
    except imaplib.IMAP4.error as e:
        return str(e)
    raise AssertionError("the login was accepted")


def test_per_user_mail_is_sealed_and_opens_only_by_the_users_logins(rampart):
    r = rampart
    out = r.run_cli("user", "encryption", "enable", USER, "--password-stdin", input=PASSWORD + "\n").stdout
    code = out.strip().splitlines()[-1]
    assert len(code) == 47 and "recovery code" in out.lower()
    app = r.run_cli("user", "app-password", "add", USER, "--name", "phone", "--password-stdin", input=PASSWORD + "\n").stdout.strip().splitlines()[-1]
    assert "password" in r.run_cli("user", "encryption", "status", USER).stdout

    r.start(listeners=("smtp", "imap"))
    small = encrypted_message(2_000, f"attached {MARKER} data".encode())
    large = encrypted_message(400_000, (f"binary {MARKER} payload " * 9000).encode())
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30) as s:
        s.sendmail("sender@remote.test", [USER], small)
        s.sendmail("sender@remote.test", [USER], large)
    # Delivered while the user was logged out; nothing of it in any file (the WAL included),
    # and server-key mode is off.
    data_dir = r.dir / "data"
    assert any(p.name.endswith("-wal") for p in data_dir.iterdir())
    assert files_holding(data_dir, forms(MARKER)) == []
    # The administrator's CLI cannot read it.
    listed = r.run_cli("message", "list", USER, check=False)
    assert listed.returncode != 0 and MARKER not in listed.stdout

    for how in ("plain", "login", "scram"):
        reads_everything(login(r, how), small, large)
    reads_everything(login(r, "login", app), small, large)
    assert files_holding(data_dir, forms(MARKER)) == [], "reading leaves nothing behind"

    r.run_cli("user", "app-password", "revoke", USER, "--name", "phone")
    refused(r, app)
    assert "wraps: password recovery" in r.run_cli("user", "encryption", "status", USER).stdout

    # An administrator's reset: the new password logs in to nothing until the recovery code.
    reset = r.run_cli("user", "passwd", USER, "--password-stdin", input="Another-pass-8642\n").stdout
    assert "recovery code" in reset
    assert "UNAVAILABLE" in refused(r, "Another-pass-8642")
    r.run_cli("user", "encryption", "recover", USER, "--recovery-code", code, "--password-stdin", input="Third-pass-9753\n")
    reads_everything(login(r, "scram", "Third-pass-9753"), small, large)
    r.stop()
    assert files_holding(data_dir, forms(MARKER)) == []


def test_a_per_user_accounts_appended_mail_is_sealed_too(rampart):
    """A client's own copies (APPEND to Sent, CATENATE) are sealed to the user like delivered
    mail: nothing of them in any file, and the user reads and searches them back."""
    r = rampart
    r.run_cli("user", "encryption", "enable", USER, "--password-stdin", input=PASSWORD + "\n")
    r.start(listeners=("smtp", "imap"))
    m = login(r, "scram")
    m.create("Sent")
    sent = encrypted_message(300_000, f"my own {MARKER} draft".encode())
    typ, _ = m.append("Sent", r"(\Seen)", None, sent)
    assert typ == "OK"
    assert files_holding(r.dir / "data", forms(MARKER)) == []
    m.select("Sent")
    typ, data = m.uid("FETCH", "1", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == sent
    typ, data = m.uid("SEARCH", None, f'BODY "{MARKER}"')
    assert data[0].split() == [b"1"]
    m.logout()
    listed = r.run_cli("message", "list", USER, "--mailbox", "Sent", check=False)
    assert listed.returncode != 0 or MARKER not in listed.stdout
    r.stop()
    assert files_holding(r.dir / "data", forms(MARKER)) == []


def test_per_user_encryption_from_the_web_api(rampart):
    """The self-service API does what `rampart user encryption` does: enable (recovery code in
    the answer), status, app passwords that open the mail (the account's password required),
    recover after an administrator's reset; the administrator's view shows the state only."""
    from test_web import FAST, Api

    r = rampart
    r.start(*FAST, listeners=("smtp", "imap", "https", "http"))
    api = Api(r)
    assert api.login(USER).status_code == 200
    assert api.get("/api/v1/me/encryption").json() == {"enabled": False}
    assert api.post("/api/v1/me/encryption", {"password": "wrong-password-1"}).status_code == 400
    enabled = api.post("/api/v1/me/encryption", {"password": PASSWORD}).json()
    code = enabled["recovery_code"]
    assert enabled["enabled"] and len(code) == 47
    status = api.get("/api/v1/me/encryption").json()
    assert status["enabled"] and status["password_opens"] and "recovery" in status["wraps"]

    assert api.post("/api/v1/me/app-passwords", {"name": "tablet"}).status_code == 400, "the account's password is needed"
    app = api.post("/api/v1/me/app-passwords", {"name": "tablet", "password": PASSWORD}).json()["password"]
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30) as s:
        s.sendmail("sender@remote.test", [USER], encrypted_message(2_000, b"web"))
    m = login(r, "login", app)
    m.select("INBOX")
    typ, data = m.uid("SEARCH", None, f'BODY "{MARKER}"')
    assert data[0].split() == [b"1"]
    m.logout()
    assert api.call("DELETE", "/api/v1/me/app-passwords/tablet").status_code == 200
    assert not any(w.startswith("app:") for w in api.get("/api/v1/me/encryption").json()["wraps"])

    r.run_cli("user", "passwd", USER, "--password-stdin", input="Another-pass-8642\n")
    api = Api(r)
    assert api.login(USER, "Another-pass-8642").status_code == 200
    assert api.get("/api/v1/me/encryption").json()["password_opens"] is False
    assert api.post("/api/v1/me/encryption/recover", {"password": "Another-pass-8642", "recovery_code": "0" * 47}).status_code == 400
    assert api.post("/api/v1/me/encryption/recover", {"password": "Another-pass-8642", "recovery_code": code}).status_code == 200
    login(r, "scram", "Another-pass-8642").logout()
    assert files_holding(r.dir / "data", forms(MARKER)) == []


def test_mail_stored_before_enable_is_sealed_for_the_user(rampart):
    """`enable` converts the mail already there (a copy in a second mailbox included): the
    message files no longer hold it, the administrator's CLI cannot read it, the user's login
    reads and searches all of it."""
    r = rampart
    r.start(listeners=("smtp", "imap"))
    small = encrypted_message(2_000, f"early {MARKER}".encode())
    large = encrypted_message(400_000, (f"early {MARKER} payload " * 9000).encode())
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30) as s:
        s.sendmail("sender@remote.test", [USER], small)
        s.sendmail("sender@remote.test", [USER], large)
    m = login(r, "login")
    m.create("Kept")
    m.select("INBOX")
    assert m.uid("COPY", "1:2", "Kept")[0] == "OK"
    m.logout()
    assert r.message(USER, 2).endswith(large)

    out = r.run_cli("user", "encryption", "enable", USER, "--password-stdin", input=PASSWORD + "\n").stdout
    assert "4 messages stored before sealed" in out
    assert "before it was turned on (not encrypted for the user): 0" in r.run_cli("user", "encryption", "status", USER).stdout
    blobs = r.dir / "data" / "blobs"
    assert files_holding(blobs, forms(MARKER)) == []
    shown = subprocess.run([BIN, "message", "show", USER, "2", "--config", str(r.config)], capture_output=True, timeout=30)
    assert shown.returncode != 0 and MARKER.encode() not in shown.stdout
    reads_everything(login(r, "scram"), small, large)
    m = login(r, "plain")
    m.select("Kept")
    typ, data = m.uid("SEARCH", None, f'BODY "{MARKER}"')
    assert data[0].split() == [b"1", b"2"]
    m.logout()
    # Nor in the database: the converted messages' summaries were deleted with their pages
    # zeroed, and the word index was merged so its segments keep none of their words.
    r.stop()
    assert files_holding(r.dir / "data", forms(MARKER)) == []


def test_a_quarantined_message_released_to_a_per_user_account_is_sealed(rampart):
    r = rampart
    r.run_cli("user", "encryption", "enable", USER, "--password-stdin", input=PASSWORD + "\n")
    r.start("filter.spam.reject_score=5000", listeners=("smtp", "imap"))
    gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    body = (f"held {MARKER} line\r\n" * 6000) + gtube + "\r\n"
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30) as s:
        s.sendmail("a@remote.test", [USER], f"From: a@remote.test\r\nTo: {USER}\r\nSubject: held\r\n\r\n{body}".encode())
    held = [l.split("\t")[0] for l in r.run_cli("quarantine", "list", "--user", USER).stdout.splitlines()]
    assert len(held) == 1
    r.run_cli("quarantine", "release", held[0])
    assert files_holding(r.dir / "data" / "blobs", forms(MARKER)) == []
    m = login(r, "scram")
    m.select("INBOX")
    typ, data = m.uid("SEARCH", None, f'BODY "{MARKER}"')
    assert data[0].split() == [b"1"]
    m.logout()
