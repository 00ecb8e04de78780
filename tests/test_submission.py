"""Authenticated submission: SASL mechanisms over TLS, password policy, app passwords, sender
ownership, and the relay battery."""

import base64
import re
import smtplib
import subprocess
import time

import pytest

from conftest import PASSWORD, message_bytes
from peers import TlsSmtp, scram_auth

SUBMISSION = ("smtp", "submission", "submissions")


def swaks(rampart, listener, *args):
    port = str(rampart.ports[listener])
    tls = ["--tls-on-connect"] if listener == "submissions" else ["--tls"]
    cmd = ["swaks", "--server", "127.0.0.1", "--port", port, "--helo", "client.test", "--tls-verify",
           "--tls-ca-path", rampart.ca, "--tls-sni", "mx.example.test", *tls, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def login(rampart, listener="submission", user="bob@example.test", password=PASSWORD):
    if listener == "submissions":
        s = smtplib.SMTP_SSL("127.0.0.1", rampart.ports[listener], context=rampart.tls_context(), timeout=10)
    else:
        s = smtplib.SMTP("127.0.0.1", rampart.ports[listener], timeout=10)
        s.ehlo("client.test")
        s.starttls(context=rampart.tls_context())
    s.ehlo("client.test")
    s.login(user, password)
    return s


def test_no_auth_before_tls_and_none_on_mx(rampart):
    rampart.start(listeners=SUBMISSION)
    c = rampart.connect("submission")
    c.reply()
    ehlo = c.cmd("EHLO client.test")
    assert "STARTTLS" in ehlo and "AUTH" not in ehlo
    assert c.cmd("AUTH PLAIN " + base64.b64encode(b"\0bob@example.test\0" + PASSWORD.encode()).decode()).startswith("538 5.7.11")
    assert c.cmd("MAIL FROM:<bob@example.test>").startswith("530 5.7.0")
    c.starttls(rampart.tls_context())
    ehlo = c.cmd("EHLO client.test")
    auth_line = re.search(r"AUTH (.*)", ehlo).group(1).split()
    assert auth_line == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"], auth_line
    assert c.cmd("MAIL FROM:<bob@example.test>").startswith("530 5.7.0")
    mx = rampart.connect("smtp")
    mx.reply()
    mx.cmd("EHLO client.test")
    mx.starttls(rampart.tls_context())
    assert "AUTH" not in mx.cmd("EHLO client.test")
    assert mx.cmd("AUTH PLAIN AGJvYgBwYXNz").startswith("503")


@pytest.mark.parametrize("listener", ["submission", "submissions"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_mechanisms(rampart, listener, mechanism):
    rampart.start(listeners=SUBMISSION)
    r = swaks(rampart, listener, "--auth", mechanism, "--auth-user", "bob@example.test", "--auth-password", PASSWORD,
              "--from", "bob@example.test", "--to", "alice@example.test", "--h-From", "bob@example.test",
              "--h-Subject", f"{mechanism} on {listener}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0" in r.stdout
    text = rampart.message("alice@example.test", 1).decode()
    assert "with ESMTPSA id" in text
    bad = swaks(rampart, listener, "--auth", mechanism, "--auth-user", "bob@example.test", "--auth-password", "wrong",
                "--from", "bob@example.test", "--to", "alice@example.test")
    assert bad.returncode == 28 and "535 5.7.8" in bad.stdout
    assert re.search(r"event=auth_failure proto=smtp ip=127\.0\.0\.1 .*user=bob@example\.test mechanism=" + mechanism, rampart.log())


def test_cram_md5_is_opt_in(tmp_path):
    from conftest import Rampart
    r = Rampart(tmp_path)
    r.add_user("bob@example.test")
    r.start(listeners=SUBMISSION)
    no = swaks(r, "submission", "--auth", "CRAM-MD5", "--auth-user", "bob@example.test", "--auth-password", PASSWORD,
               "--from", "bob@example.test", "--to", "bob@example.test", "--quit-after", "AUTH")
    assert no.returncode == 28, no.stdout
    r.stop()
    r.set_config("auth", "cram_md5", "true")
    r.add_user("carol@example.test")
    r.start(listeners=SUBMISSION)
    yes = swaks(r, "submission", "--auth", "CRAM-MD5", "--auth-user", "carol@example.test", "--auth-password", PASSWORD,
                "--from", "carol@example.test", "--to", "bob@example.test", "--h-From", "carol@example.test")
    assert yes.returncode == 0, yes.stdout + yes.stderr
    assert "DIGEST-MD5" not in yes.stdout
    # bob's password was set while CRAM-MD5 was off: no CRAM secret was kept for it.
    old = swaks(r, "submission", "--auth", "CRAM-MD5", "--auth-user", "bob@example.test", "--auth-password", PASSWORD,
                "--from", "bob@example.test", "--to", "bob@example.test", "--quit-after", "AUTH")
    assert old.returncode == 28


def test_scram_sha256_and_channel_binding(rampart):
    rampart.start(listeners=SUBMISSION)
    port = rampart.ports["submission"]
    c = TlsSmtp(port, rampart.ca)
    c.starttls()
    assert scram_auth(c, "bob@example.test", PASSWORD) == 235
    c = TlsSmtp(port, rampart.ca)
    c.starttls()
    assert scram_auth(c, "bob@example.test", "wrong password") == 535
    c = TlsSmtp(port, rampart.ca)
    c.starttls()
    assert scram_auth(c, "bob@example.test", PASSWORD, plus=True, cbind_data=c.exporter()) == 235
    # The binding of another TLS connection, as a man in the middle relaying the exchange has.
    other = TlsSmtp(port, rampart.ca)
    other.starttls()
    c = TlsSmtp(port, rampart.ca)
    c.starttls()
    assert scram_auth(c, "bob@example.test", PASSWORD, plus=True, cbind_data=other.exporter()) == 535
    # "y": the client can bind but believes we cannot, while we offered PLUS — a downgrade.
    c = TlsSmtp(port, rampart.ca)
    c.starttls()
    assert scram_auth(c, "bob@example.test", PASSWORD, gs2="y,,") == 535
    assert "reason=channel_binding" in rampart.log()


def test_auth_failures_are_slowed_and_end_the_session(rampart):
    rampart.start('auth.failure_delay="300ms"', listeners=SUBMISSION)
    c = rampart.connect("submission")
    c.reply()
    c.cmd("EHLO client.test")
    c.starttls(rampart.tls_context())
    c.cmd("EHLO client.test")
    bad = "AUTH PLAIN " + base64.b64encode(b"\0bob@example.test\0nope").decode()
    times = []
    for expected in ["535 5.7.8", "535 5.7.8", "421 4.7.0"]:
        start = time.time()
        assert c.cmd(bad).startswith(expected)
        times.append(time.time() - start)
    assert c.closed()
    assert times[0] >= 0.25 and times[1] >= 0.55 and times[2] >= 0.85, times


def test_password_policy(rampart):
    cases = {
        "short1!": "at least 12",
        "password1234": "common",
        "davidsmith1234567": "user name",
        "aaaaaaaaaaaaaaaa": "too easy to guess",
    }
    for password, why in cases.items():
        r = rampart.run_cli("user", "add", "davidsmith@example.test", "--password-stdin", input=password + "\n", check=False)
        assert r.returncode != 0 and why in r.stderr, (password, r.stderr)
    r = rampart.run_cli("user", "passwd", "bob@example.test", "--password-stdin", input="bob-example-pw!\n", check=False)
    assert r.returncode != 0 and "user name" in r.stderr
    rampart.run_cli("user", "passwd", "bob@example.test", "--password-stdin", input="tangerine vortex quietly hums\n")


def test_app_passwords(rampart):
    out = rampart.run_cli("user", "app-password", "add", "bob@example.test", "--name", "phone").stdout
    app = out.strip().splitlines()[-1]
    assert re.fullmatch(r"[a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4}", app), out
    assert "phone" in rampart.run_cli("user", "app-password", "list", "bob@example.test").stdout
    rampart.start(listeners=SUBMISSION)
    with login(rampart, user="bob@example.test", password=app) as s:
        s.sendmail("bob@example.test", ["alice@example.test"], message_bytes(sender="bob@example.test", to="alice@example.test"))
    assert "app_password=phone" in rampart.log()
    assert "last used never" not in rampart.run_cli("user", "app-password", "list", "bob@example.test").stdout
    rampart.run_cli("user", "app-password", "revoke", "bob@example.test", "--name", "phone")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        login(rampart, user="bob@example.test", password=app)


def test_sender_must_be_owned(rampart):
    rampart.run_cli("alias", "add", "robert@example.test", "bob@example.test")
    rampart.add_user("news@example.test")
    rampart.start(listeners=SUBMISSION)
    with login(rampart) as s:
        code, msg = s.mail("alice@example.test")
        assert code == 553 and msg.startswith(b"5.7.1"), msg
        s.rset()
        for own in ["bob@example.test", "Bob+lists@Example.test", "robert@example.test"]:
            s.sendmail(own, ["alice@example.test"], message_bytes(sender=own, to="alice@example.test", subject=own))
        # Envelope owned, From: header forged.
        s.mail("bob@example.test")
        s.rcpt("alice@example.test")
        code, msg = s.data(message_bytes(sender="ceo@example.test", to="alice@example.test"))
        assert code == 553 and msg.startswith(b"5.7.1"), msg
    assert len(rampart.messages("alice@example.test")) == 3
    assert re.search(r"event=sender_refused .*user=bob@example.test from=ceo@example.test place=header", rampart.log())


def test_allowed_senders_exception(rampart):
    rampart.add_user("news@example.test")
    rampart.start('submission.allowed_senders={"news@example.test" = ["*@lists.example.test"]}', listeners=SUBMISSION)
    with login(rampart, user="news@example.test") as s:
        s.sendmail("digest@lists.example.test", ["alice@example.test"],
                   message_bytes(sender="digest@lists.example.test", to="alice@example.test"))
        code, _ = s.mail("bob@example.test")
        assert code == 553


def test_submission_adds_date_and_message_id_and_can_hide_client(rampart):
    rampart.start("submission.hide_client=true", listeners=SUBMISSION)
    bare = b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: bare\r\n\r\nhi\r\n"
    with login(rampart) as s:
        s.sendmail("bob@example.test", ["alice@example.test"], bare)
    text = rampart.message("alice@example.test", 1).decode()
    head = text.split("\r\n\r\n")[0]
    assert re.search(r"^Date: ", head, re.M) and re.search(r"^Message-ID: <\w+@mx\.example\.test>", head, re.M)
    assert "127.0.0.1" not in head and "client.test" not in head
    assert "with ESMTPSA" in head


RELAY_TRICKS = [
    "user@remote.test",
    "user%remote.test@example.test",
    "@example.test:user@remote.test",
    "remote.test!user@example.test",
    '"user@remote.test"@example.test',
    "user@[192.0.2.1]",
    "user@remote.test.",
    "USER@REMOTE.TEST",
    "user@example.test.remote.test",
    "user@remote-example.test",
    "user@xexample.test",
]


def test_no_open_relay(rampart):
    rampart.start(listeners=SUBMISSION)
    c = rampart.connect("smtp")
    c.reply()
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<spammer@remote.test>").startswith("250")
    for rcpt in RELAY_TRICKS:
        reply = c.cmd(f"RCPT TO:<{rcpt}>")
        assert reply.startswith("554 5.7.1") or reply.startswith("550 5.1.1"), (rcpt, reply)
    assert c.cmd("DATA").startswith("554")
    for listener in ("submission",):
        s = rampart.connect(listener)
        s.reply()
        s.cmd("EHLO client.test")
        s.starttls(rampart.tls_context())
        s.cmd("EHLO client.test")
        assert s.cmd("MAIL FROM:<spammer@remote.test>").startswith("530 5.7.0")
        assert s.cmd("RCPT TO:<user@remote.test>").startswith("503")
    with smtplib.SMTP_SSL("127.0.0.1", rampart.ports["submissions"], context=rampart.tls_context(), timeout=10) as s:
        s.ehlo("client.test")
        assert s.mail("spammer@remote.test")[0] == 530
    assert rampart.run_cli("queue", "list").stdout.strip() == ""
