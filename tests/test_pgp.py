"""OpenPGP for end-to-end users (issue 16): a user's public key (`rampart user pgp`, the admin
API), mail delivered to the user stored as PGP/MIME encrypted to it (GnuPG decrypts it), mail
already encrypted or signed stored byte for byte, and the Web Key Directory."""

import hashlib
import imaplib
import os
import re
import smtplib
import subprocess

import pytest
import requests

from conftest import PASSWORD, wait_for
from test_encryption import MARKER, encrypt, encrypted_message, files_holding, forms
from test_web_pages import CHROMIUM, DRIVER, Page, browser  # noqa: F401 (browser: a fixture)

WEB = ("smtp", "imap", "https")
ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


def zbase32(data: bytes) -> str:
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 5)
    return "".join(ZBASE32[int(bits[i:i + 5], 2)] for i in range(0, len(bits), 5))


class Gpg:
    """GnuPG with a home of its own: a key pair for one address, made without a passphrase."""

    def __init__(self, tmp_path, address):
        self.home = tmp_path / "gnupg"
        self.home.mkdir(mode=0o700)
        self.run("--quick-gen-key", f"Bob <{address}>", "future-default", "default", "never")
        self.pub = tmp_path / "bob.asc"
        self.pub.write_bytes(self.run("--armor", "--export", address).stdout)
        fpr = self.run("--with-colons", "--list-keys", address).stdout.decode()
        self.fingerprint = re.search(r"^fpr:+([0-9A-F]{40}):", fpr, re.M).group(1)

    def run(self, *args, input=None):
        cmd = ["gpg", "--homedir", str(self.home), "--batch", "--pinentry-mode", "loopback", "--passphrase", "", *args]
        return subprocess.run(cmd, input=input, capture_output=True, check=True, timeout=60)

    def decrypt(self, message: bytes) -> bytes:
        """The armored block of a PGP/MIME message, decrypted."""
        block = re.search(rb"-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----", message, re.S).group(0)
        return self.run("--decrypt", input=block).stdout

    def stop(self):
        """Stops the gpg-agent that key generation and decryption started for this home (it
        daemonizes and would outlive the test)."""
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "all"], capture_output=True, timeout=30)


def fetch_all(r, user="bob@example.test"):
    m = imaplib.IMAP4("127.0.0.1", r.ports["imap"], timeout=30)
    m.starttls(ssl_context=r.tls_context())
    m.login(user, PASSWORD)
    m.select("INBOX")
    typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
    assert typ == "OK", data
    bodies = [d[1] for d in data if isinstance(d, tuple)]
    return m, bodies


def send(r, *messages, to="bob@example.test"):
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30) as s:
        for msg in messages:
            s.sendmail("sender@remote.test", [to], msg)


@pytest.fixture
def gpg(tmp_path):
    g = Gpg(tmp_path, "bob@example.test")
    yield g
    g.stop()


def test_key_checks_show_and_remove(rampart, gpg, tmp_path):
    r = rampart
    out = r.run_cli("user", "pgp", "set", "bob@example.test", "--key", str(gpg.pub), "--protect-subject").stdout
    assert gpg.fingerprint in out
    shown = r.run_cli("user", "pgp", "show", "Bob@Example.test").stdout
    for line in (f"fingerprint: {gpg.fingerprint}", "expires: never", "user id: Bob <bob@example.test>", "protect subject: yes",
                 "published (WKD): yes"):
        assert line in shown, shown
    # A key without the address in a user ID is refused, with the reason.
    bad = r.run_cli("user", "pgp", "set", "alice@example.test", "--key", str(gpg.pub), check=False)
    assert bad.returncode != 0 and "no user ID of the key names alice@example.test" in bad.stderr, bad.stderr
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a key")
    bad = r.run_cli("user", "pgp", "set", "bob@example.test", "--key", str(garbage), check=False)
    assert bad.returncode != 0 and "not an OpenPGP public key" in bad.stderr
    secret = tmp_path / "secret.asc"
    secret.write_bytes(gpg.run("--armor", "--export-secret-keys", "bob@example.test").stdout)
    bad = r.run_cli("user", "pgp", "set", "bob@example.test", "--key", str(secret), check=False)
    assert bad.returncode != 0 and "secret key" in bad.stderr
    # Binary keys too.
    binary = tmp_path / "bob.gpg"
    binary.write_bytes(gpg.run("--export", "bob@example.test").stdout)
    r.run_cli("user", "pgp", "set", "bob@example.test", "--key", str(binary))
    assert "protect subject: no" in r.run_cli("user", "pgp", "show", "bob@example.test").stdout
    r.run_cli("user", "pgp", "remove", "bob@example.test")
    assert r.run_cli("user", "pgp", "show", "bob@example.test", check=False).returncode != 0


def test_delivered_mail_is_stored_encrypted_and_gpg_decrypts_it(rampart, gpg):
    r = rampart
    r.run_cli("user", "pgp", "set", "bob@example.test", "--key", str(gpg.pub), "--protect-subject")
    r.start(listeners=("smtp", "imap"))
    original = encrypted_message(2_000, f"attached {MARKER} data".encode())
    pgp_mime = (b"From: a@remote.test\r\nTo: bob@example.test\r\nSubject: already\r\n"
                b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n"
                b"--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n"
                b"-----END PGP MESSAGE-----\r\n--b--\r\n")
    smime = (b"From: a@remote.test\r\nTo: bob@example.test\r\nSubject: smime\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAxggE\r\n")
    signed = (b"From: a@remote.test\r\nTo: bob@example.test\r\nSubject: signed\r\n"
              b"Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=s\r\n\r\n"
              b"--s\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\n"
              b"-----BEGIN PGP SIGNATURE-----\r\n\r\niQ\r\n-----END PGP SIGNATURE-----\r\n--s--\r\n")
    send(r, original, pgp_mime, smime, signed)
    wait_for(lambda: len(r.messages("bob@example.test")) == 4, what="stored")
    m, bodies = fetch_all(r)
    stored = bodies[0]
    assert b"multipart/encrypted" in stored and b"\r\nSubject: ...\r\n" in stored
    assert b"Received: from" in stored, "the delivery trace stays outside"
    assert MARKER.encode() not in stored
    inner = gpg.decrypt(stored)
    # The whole message inside, Subject included (protected headers), the body byte for byte.
    assert f"Subject: Report {MARKER}".encode() in inner and b'hp="cipher"' in inner
    assert inner.split(b"\r\n\r\n", 1)[1] == original.split(b"\r\n\r\n", 1)[1]
    # Already encrypted or signed: as received, after the trace.
    for body, sent in zip(bodies[1:], (pgp_mime, smime, signed)):
        assert body.endswith(sent)
    # Not a word of the plaintext in the clear store (only its outer header fields are
    # indexed, and the Subject is protected).
    typ, data = m.uid("SEARCH", None, f'BODY "{MARKER}"')
    assert data[0].split() == []
    m.logout()
    assert files_holding(r.dir / "data", forms(MARKER)) == []

    # Removed: later mail is stored as received; what was stored stays encrypted.
    r.run_cli("user", "pgp", "remove", "bob@example.test")
    send(r, original)
    wait_for(lambda: len(r.messages("bob@example.test")) == 5, what="stored")
    m, bodies = fetch_all(r)
    assert bodies[4].endswith(original) and b"multipart/encrypted" in bodies[0]
    m.logout()


# A second message, without the marker, so that every search below must tell the two apart.
OTHER = (b"From: Other Person <other@remote.test>\r\nTo: bob@example.test\r\nSubject: Lunch plans\r\n"
         b"Message-ID: <other@remote.test>\r\n\r\nnothing special wombatvalue here\r\n")

# (criteria, UIDs) over [the marked report, OTHER], both stored encrypted to bob's key with the
# Subject protected: the plaintext's header fields and words answer.
PLAIN_SEARCHES = [
    (f'SUBJECT "{MARKER}"', [b"1"]),
    ('SUBJECT "lunch"', [b"2"]),
    (f'BODY "{MARKER}"', [b"1"]),
    (f'BODY "{MARKER.lower()}"', [b"1"]),
    (f'TEXT "{MARKER}"', [b"1"]),
    ('TEXT "lunch plans"', [b"2"]),
    ('FROM "sender@remote.test"', [b"1"]),
    ('FROM "Other"', [b"2"]),
    ('TO "bob@example"', [b"1", b"2"]),
    ('HEADER Subject "report"', [b"1"]),
    ('BODY "wombatvalue"', [b"2"]),
    ('BODY "absentword"', []),
    (f'NOT BODY "{MARKER}"', [b"2"]),
    (f'OR FROM "other" BODY "{MARKER}"', [b"1", b"2"]),
    # The stored outer Subject is "...", but SEARCH reads the plaintext's.
    ('SUBJECT "..."', []),
]


def plain_searches_answer(m):
    """Every search of PLAIN_SEARCHES, twice (the second from IMAP's column cache), and FETCH
    still describing the stored, encrypted message."""
    m.select("INBOX")
    for _ in range(2):
        for criteria, found in PLAIN_SEARCHES:
            typ, data = m.uid("SEARCH", None, criteria)
            assert typ == "OK" and data[0].split() == found, (criteria, data)
    typ, data = m.uid("FETCH", "1", "(ENVELOPE BODYSTRUCTURE)")
    assert typ == "OK" and b'"..."' in data[0] and b'"ENCRYPTED"' in data[0].upper(), data


def send_report_and_other(r, count=None):
    """Sends both; waits until `count` messages are listed (None: a per-user account, locked
    to the CLI: local delivery is done when SMTP says 250)."""
    send(r, encrypted_message(2_000, f"attached {MARKER} data".encode()), OTHER)
    if count is not None:
        wait_for(lambda: len(r.messages("bob@example.test")) == count, what="stored")


@pytest.mark.sqlite_only
def test_server_key_mode_searches_the_plaintext_and_leaves_nothing(rampart, gpg):
    r = rampart
    encrypt(r)
    r.run_cli("user", "pgp", "set", "bob@example.test", "--key", str(gpg.pub), "--protect-subject")
    shown = r.run_cli("user", "pgp", "show", "bob@example.test").stdout
    assert "search opt-in: no" in shown and "server-side search: on (in the encrypted database" in shown, shown
    r.start(listeners=("smtp", "imap"))
    send_report_and_other(r, 2)
    read_searched_and_left_nowhere(r, gpg)


def read_searched_and_left_nowhere(r, gpg):
    """What a store that may keep the plaintext search summary gives an OpenPGP user: FETCH
    returns the PGP/MIME message gpg decrypts (Subject protected), SEARCH finds the plaintext,
    and no file holds it, before the server stops or after (the WAL checkpointed)."""
    m, bodies = fetch_all(r)
    assert b"multipart/encrypted" in bodies[0] and b"\r\nSubject: ...\r\n" in bodies[0]
    assert MARKER.encode() not in bodies[0] and b"wombatvalue" not in bodies[1]
    assert f"Subject: Report {MARKER}".encode() in gpg.decrypt(bodies[0]), "FETCH returns what gpg decrypts"
    plain_searches_answer(m)
    m.logout()
    data_dir = r.dir / "data"
    assert files_holding(data_dir, forms(MARKER) | forms("wombatvalue")) == []
    r.stop()
    assert files_holding(data_dir, forms(MARKER) | forms("wombatvalue")) == []


def test_a_clear_store_searches_the_plaintext_only_on_opt_in(rampart, gpg):
    r = rampart
    r.run_cli("user", "pgp", "set", "bob@example.test", "--key", str(gpg.pub), "--protect-subject")
    shown = r.run_cli("user", "pgp", "show", "bob@example.test").stdout
    assert "search opt-in: no" in shown and "server-side search: off (clear store" in shown, shown
    r.start(listeners=("smtp", "imap"))
    send(r, encrypted_message(2_000, f"attached {MARKER} data".encode()))
    wait_for(lambda: len(r.messages("bob@example.test")) == 1, what="stored")
    m, _ = fetch_all(r)
    for criteria in (f'BODY "{MARKER}"', f'SUBJECT "{MARKER}"', f'TEXT "{MARKER}"'):
        typ, data = m.uid("SEARCH", None, criteria)
        assert data[0].split() == [], (criteria, data)
    m.logout()
    assert files_holding(r.dir / "data", forms(MARKER)) == []

    # Opted in: later mail is searched by its plaintext (whose words then sit in the clear
    # database: the user's choice); it is stored encrypted all the same.
    out = r.run_cli("user", "pgp", "set", "bob@example.test", "--key", str(gpg.pub), "--protect-subject", "--search").stdout
    assert "server-side search: on (opted in" in out, out
    assert "search opt-in: yes" in r.run_cli("user", "pgp", "show", "bob@example.test").stdout
    send(r, encrypted_message(2_000, f"attached {MARKER} data".encode()), OTHER)
    wait_for(lambda: len(r.messages("bob@example.test")) == 3, what="stored")
    m, bodies = fetch_all(r)
    assert all(b"multipart/encrypted" in b and MARKER.encode() not in b for b in bodies)
    for criteria, found in ((f'BODY "{MARKER}"', [b"2"]), (f'SUBJECT "{MARKER}"', [b"2"]), (f'TEXT "{MARKER}"', [b"2"]),
                            ('FROM "other"', [b"3"]), ('BODY "wombatvalue"', [b"3"])):
        typ, data = m.uid("SEARCH", None, criteria)
        assert data[0].split() == found, (criteria, data)
    m.logout()


@pytest.mark.sqlite_only
def test_a_per_user_account_with_a_key_searches_while_logged_in(rampart, gpg):
    r = rampart
    r.run_cli("user", "encryption", "enable", "bob@example.test", "--password-stdin", input=PASSWORD + "\n")
    r.run_cli("user", "pgp", "set", "bob@example.test", "--key", str(gpg.pub), "--protect-subject")
    shown = r.run_cli("user", "pgp", "show", "bob@example.test").stdout
    assert "server-side search: on (sealed with the user's key" in shown, shown
    r.start(listeners=("smtp", "imap"))
    send_report_and_other(r)
    read_searched_and_left_nowhere(r, gpg)


def test_web_key_directory_and_the_api(rampart, gpg):
    r = rampart
    r.run_cli("user", "pgp", "set", "bob@example.test", "--key", str(gpg.pub))
    r.start(listeners=WEB)
    base = f"https://127.0.0.1:{r.ports['https']}"
    get = lambda path, host="example.test": requests.get(base + path, headers={"Host": host}, verify=False, timeout=20)
    hu = zbase32(hashlib.sha1(b"bob").digest())
    direct = get(f"/.well-known/openpgpkey/hu/{hu}?l=Bob")
    assert direct.status_code == 200 and direct.headers["Content-Type"] == "application/octet-stream", direct.text
    listed = gpg.run("--with-colons", "--show-keys", input=direct.content).stdout.decode()
    assert gpg.fingerprint in listed
    advanced = get(f"/.well-known/openpgpkey/example.test/hu/{hu}?l=bob", host="openpgpkey.example.test")
    assert advanced.status_code == 200 and advanced.content == direct.content
    assert get("/.well-known/openpgpkey/policy").status_code == 200
    assert get("/.well-known/openpgpkey/example.test/policy", host="openpgpkey.example.test").status_code == 200
    # Unknown users, users without a key, other domains: 404.
    for local in (b"nobody", b"alice"):
        assert get(f"/.well-known/openpgpkey/hu/{zbase32(hashlib.sha1(local).digest())}").status_code == 404
    assert get(f"/.well-known/openpgpkey/hu/{hu}", host="other.test").status_code == 404
    assert get("/.well-known/openpgpkey/policy", host="other.test").status_code == 404

    # The admin API, with a token: show, opt out of WKD, remove.
    token = r.run_cli("api-token", "add", "--name", "t", "--scope", "users").stdout.strip().splitlines()[-1]
    api = lambda method, path, body=None: requests.request(method, base + "/api/v1" + path, json=body, verify=False, timeout=20,
                                                            headers={"Authorization": f"Bearer {token}"})
    shown = api("GET", "/users/bob@example.test/pgp").json()
    assert shown["fingerprint"] == gpg.fingerprint and shown["publish"] is True and shown["expires"] is None
    refused = api("PUT", "/users/alice@example.test/pgp", {"key": gpg.pub.read_text()})
    assert refused.status_code == 400 and "no user ID" in refused.json()["message"]
    set_ = api("PUT", "/users/bob@example.test/pgp", {"key": gpg.pub.read_text(), "protect_subject": True, "publish": False})
    assert set_.status_code == 200 and set_.json()["protect_subject"] is True, set_.text
    assert "protect subject: yes" in r.run_cli("user", "pgp", "show", "bob@example.test").stdout
    assert get(f"/.well-known/openpgpkey/hu/{hu}").status_code == 404, "opted out"
    assert api("DELETE", "/users/bob@example.test/pgp").status_code == 200
    assert api("GET", "/users/bob@example.test/pgp").status_code == 404


@pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)), reason="chromium is not installed (scripts/setup)")
def test_the_user_sets_and_removes_a_key_on_the_account_page(rampart, gpg, browser):
    rampart.start('web.failure_delay="0s"', listeners=WEB)
    page = Page(browser, f"https://127.0.0.1:{rampart.ports['https']}")
    page.login("bob@example.test", PASSWORD)
    page.until_text("Logged in as")
    page.open("account")
    page.until_text("No key: mail is stored as received")
    browser.find_element("css selector", "input[name=key]").send_keys(str(gpg.pub))
    browser.find_element("css selector", "input[name=protect_subject]").click()
    browser.find_element("xpath", "//button[normalize-space()='Set key']").click()
    page.until_text(gpg.fingerprint)
    assert "the Subject is hidden too" in page.text()
    assert "protect subject: yes" in rampart.run_cli("user", "pgp", "show", "bob@example.test").stdout
    page.snap("pgp-key")
    browser.find_element("xpath", "//button[normalize-space()='Remove key']").click()
    page.until_text("No key: mail is stored as received")
