"""The outbound queue: MX delivery over STARTTLS to another Rampart, retries, bounces, null MX,
TLS policy, smart hosts with AUTH, and a queue that survives kill -9. A dnsmasq on loopback
stands in for the internet's DNS."""

import re
import smtplib
import time

import pytest

from conftest import PASSWORD, Rampart, message_bytes, wait_for
from peers import Peer

SUBMISSION = ("smtp", "submission")



def submit(rampart, rcpts, subject="out", sender="bob@example.test", listener="submission"):
    with smtplib.SMTP("127.0.0.1", rampart.ports[listener], timeout=10) as s:
        s.ehlo("client.test")
        s.starttls(context=rampart.tls_context())
        s.ehlo("client.test")
        s.login(sender, PASSWORD)
        s.sendmail(sender, rcpts, message_bytes(subject=subject, sender=sender, to=", ".join(rcpts)))


@pytest.fixture
def sender(tmp_path, dns):
    r = Rampart(tmp_path, name="sender")
    r.add_user("bob@example.test")
    r.add_user("alice@example.test")
    yield r
    r.stop()


def start_sender(r, dns, *sets, port=None, ca=None):
    extra = [f'dns.nameservers=["{dns.address}"]', 'queue.retry_schedule=["1s"]']
    if port:
        extra.append(f"queue.remote_port={port}")
    if ca:
        extra.append(f'queue.extra_ca_file="{ca}"')
    r.start(*extra, *sets, listeners=SUBMISSION)


def test_delivery_to_another_rampart_over_starttls(tmp_path, dns, sender):
    remote = Rampart(tmp_path, hostname="mx.remote.test", domain="remote.test", name="remote")
    remote.add_user("carol@remote.test")
    remote.start()
    try:
        dns.mx("remote.test", "mx.remote.test")
        dns.a("mx.remote.test")
        dns.start()
        start_sender(sender, dns, port=remote.ports["smtp"], ca=remote.ca)
        submit(sender, ["carol@remote.test", "alice@example.test"], subject="hello remote")
        # The local recipient has it at once; the remote one after the queue delivered it.
        assert sender.messages("alice@example.test")[0][4] == "hello remote"
        rows = wait_for(lambda: remote.messages("carol@remote.test"), what="remote delivery")
        assert rows[0][4] == "hello remote"
        text = remote.message("carol@remote.test", 1).decode()
        assert re.search(r"Received: from mx\.example\.test \(\[127\.0\.0\.1\]\)\r\n\t\(using TLSv1\.3", text), text
        assert "with ESMTPS" in text
        assert re.search(r"by mx\.example\.test \(Rampart\) with ESMTPSA", text)
        log = sender.wait_log(r"event=delivery_tls .*host=mx\.remote\.test .*tls=TLSv1\.3 .*verified=true")
        assert log
        sender.wait_log(r"event=delivery .*rcpt=carol@remote\.test .*result=delivered")
        wait_for(lambda: sender.run_cli("queue", "list").stdout.strip() == "", what="empty queue")
    finally:
        remote.stop()


def test_a_backlog_to_one_domain_shares_connections(tmp_path, dns, sender):
    """Messages for one domain go over a connection kept open for the domain (RSET between
    them), not one connection each, and every one of them still goes over verified TLS."""
    remote = Rampart(tmp_path, hostname="mx.remote.test", domain="remote.test", name="remote")
    remote.add_user("carol@remote.test")
    remote.start()
    try:
        dns.mx("remote.test", "mx.remote.test")
        dns.a("mx.remote.test")
        dns.start()
        start_sender(sender, dns, port=remote.ports["smtp"], ca=remote.ca)
        count = 8
        with smtplib.SMTP("127.0.0.1", sender.ports["submission"], timeout=10) as s:
            s.ehlo("client.test")
            s.starttls(context=sender.tls_context())
            s.ehlo("client.test")
            s.login("bob@example.test", PASSWORD)
            for n in range(count):
                s.sendmail("bob@example.test", ["carol@remote.test"],
                           message_bytes(subject=f"backlog {n}", sender="bob@example.test", to="carol@remote.test"))
        rows = wait_for(lambda: len(remote.messages("carol@remote.test")) == count and remote.messages("carol@remote.test"),
                        what="all delivered")
        assert sorted(r[4] for r in rows) == sorted(f"backlog {n}" for n in range(count))
        for uid in range(1, count + 1):
            assert "with ESMTPS" in remote.message("carol@remote.test", uid).decode()
        wait_for(lambda: sender.run_cli("queue", "list").stdout.strip() == "", what="empty queue")
        log = sender.log()
        # One delivery_tls line per connection opened.
        connections = len(re.findall(r"event=delivery_tls .*host=mx\.remote\.test .*verified=true", log))
        assert 1 <= connections < count, log
        assert len(re.findall(r"event=delivery .*rcpt=carol@remote\.test .*result=delivered", log)) == count
    finally:
        remote.stop()


def test_temporary_failure_then_success(tmp_path, dns, sender):
    peer = Peer(sender.ca, None, rcpt_replies={"dave@peer.test": ["451 4.3.0 try later", None]})
    try:
        dns.mx("peer.test", "mx.peer.test")
        dns.a("mx.peer.test")
        dns.start()
        start_sender(sender, dns, port=peer.port)
        submit(sender, ["dave@peer.test"], subject="retried")
        wait_for(lambda: peer.messages, what="delivery after retry")
        assert peer.handler.attempts["dave@peer.test"] == 2
        assert "Subject: retried" in peer.messages[0][2].decode()
        assert re.search(r"event=delivery_deferred .*rcpt=dave@peer\.test", sender.log())
    finally:
        peer.stop()


def test_permanent_failure_bounces_to_the_sender(tmp_path, dns, sender):
    peer = Peer(sender.ca, None, rcpt_replies={"nobody@peer.test": ["550 5.1.1 no such user here"]})
    try:
        dns.mx("peer.test", "mx.peer.test")
        dns.a("mx.peer.test")
        dns.start()
        start_sender(sender, dns, port=peer.port)
        submit(sender, ["nobody@peer.test"], subject="will bounce")
        rows = wait_for(lambda: sender.messages("bob@example.test"), what="bounce")
        assert rows[0][4] == "Undelivered Mail Returned to Sender"
        dsn = sender.message("bob@example.test", rows[0][0]).decode()
        assert dsn.startswith("Return-Path: <>")
        assert "Content-Type: multipart/report; report-type=delivery-status;" in dsn
        assert "Final-Recipient: rfc822; nobody@peer.test" in dsn
        assert "Status: 5.1.1" in dsn
        assert "Diagnostic-Code: smtp; 550 5.1.1 no such user here" in dsn
        assert "Subject: will bounce" in dsn
        assert peer.messages == []
    finally:
        peer.stop()


def test_null_sender_never_gets_a_bounce(tmp_path, dns, sender):
    """A message with <> whose recipient fails is dropped, not bounced (RFC 5321 §4.5.5)."""
    peer = Peer(sender.ca, None, rcpt_replies={"nobody@peer.test": ["550 5.1.1 no"]})
    try:
        dns.mx("peer.test", "mx.peer.test")
        dns.a("mx.peer.test")
        dns.start()
        start_sender(sender, dns, port=peer.port)
        with smtplib.SMTP("127.0.0.1", sender.ports["submission"], timeout=10) as s:
            s.ehlo("client.test")
            s.starttls(context=sender.tls_context())
            s.ehlo("client.test")
            s.login("bob@example.test", PASSWORD)
            s.sendmail("<>", ["nobody@peer.test"], message_bytes(sender="bob@example.test", to="nobody@peer.test"))
        sender.wait_log(r"event=bounce_suppressed")
        assert sender.messages("bob@example.test") == []
    finally:
        peer.stop()


def test_null_mx_and_missing_domain_bounce_at_once(dns, sender):
    dns.mx("nullmx.test", ".", 0)  # RFC 7505 null MX
    dns.start()
    start_sender(sender, dns, port=1)
    submit(sender, ["a@nullmx.test", "b@nonexistent.test"], subject="nowhere")
    def bounces():
        return "".join(sender.message("bob@example.test", r[0]).decode() for r in sender.messages("bob@example.test"))

    text = wait_for(lambda: "Status: 5.1.10" in bounces() and "Status: 5.1.2" in bounces() and bounces(), what="both bounces")
    assert re.search(r"Final-Recipient: rfc822; b@nonexistent\.test\r\nAction: failed\r\nStatus: 5\.1\.2", text)
    assert re.search(r"Final-Recipient: rfc822; a@nullmx\.test\r\nAction: failed\r\nStatus: 5\.1\.10", text)
    assert "accepts no mail (null MX" in text


def test_mx_fallback_to_address_record(dns, sender):
    peer = Peer(sender.ca, None)
    try:
        dns.a("noMX.test")  # an A record and no MX: the domain is its own mail host
        dns.start()
        start_sender(sender, dns, port=peer.port)
        submit(sender, ["x@nomx.test"])
        wait_for(lambda: peer.messages, what="delivery via A record")
    finally:
        peer.stop()


def test_require_tls_refuses_clear_text(dns, sender):
    peer = Peer(sender.ca, None)
    try:
        dns.mx("plain.test", "mx.plain.test")
        dns.a("mx.plain.test")
        dns.start()
        start_sender(sender, dns, 'queue.route=[{domains = ["plain.test"], tls = "require"}]', port=peer.port)
        submit(sender, ["x@plain.test"])
        sender.wait_log(r"TLS is required for this destination")
        assert peer.messages == []
        entry = sender.run_cli("queue", "list").stdout
        assert "x@plain.test\tpending" in entry
    finally:
        peer.stop()


def test_smart_host_with_implicit_tls_and_auth(tmp_path, dns, sender):
    key = str(sender.dir / "tls" / "key.pem")
    peer = Peer(sender.ca, key, tls="implicit", users={"relayuser": "relay secret"})
    try:
        dns.start()
        secret = tmp_path / "smarthost.pw"
        secret.write_text("relay secret\n")
        route = (f'queue.route=[{{domains = ["*"], host = "127.0.0.1", port = {peer.port}, tls = "implicit", '
                 f'auth_username = "relayuser", auth_password_file = "{secret}"}}]')
        start_sender(sender, dns, route, ca=sender.ca)
        submit(sender, ["someone@anywhere.test"], subject="via smart host")
        wait_for(lambda: peer.messages, what="smart host delivery")
        mail_from, rcpts, content, session = peer.messages[0]
        assert (mail_from, rcpts) == ("bob@example.test", ["someone@anywhere.test"])
        assert peer.logins == [("PLAIN", "relayuser", True)]
    finally:
        peer.stop()


def test_smart_host_wrong_password_defers(tmp_path, dns, sender):
    key = str(sender.dir / "tls" / "key.pem")
    peer = Peer(sender.ca, key, tls="starttls", users={"relayuser": "relay secret"})
    try:
        dns.start()
        route = (f'queue.route=[{{domains = ["*"], host = "127.0.0.1", port = {peer.port}, tls = "verify", '
                 f'auth_username = "relayuser", auth_password = "wrong"}}]')
        start_sender(sender, dns, route, ca=sender.ca)
        submit(sender, ["someone@anywhere.test"])
        sender.wait_log(r"event=smarthost_auth_failed user=relayuser")
        assert peer.messages == []
        assert "pending" in sender.run_cli("queue", "list").stdout
    finally:
        peer.stop()


def test_queue_survives_kill_9_and_cli(tmp_path, dns, sender):
    remote = Rampart(tmp_path, hostname="mx.remote.test", domain="remote.test", name="remote")
    remote.add_user("carol@remote.test")
    dns.mx("remote.test", "mx.remote.test")
    dns.a("mx.remote.test")
    dns.start()
    from conftest import free_port
    port = free_port()
    # The remote MX is down: the message waits in the queue.
    start_sender(sender, dns, 'queue.retry_schedule=["1h"]', port=port, ca=remote.ca)
    submit(sender, ["carol@remote.test"], subject="survives")
    sender.wait_log(r"event=delivery_deferred .*rcpt=carol@remote\.test")
    listing = sender.run_cli("queue", "list").stdout
    qid = listing.split("\t")[0]
    assert "carol@remote.test\tpending\tattempts 1" in listing
    show = sender.run_cli("queue", "show", qid).stdout
    assert "recipient: carol@remote.test state=pending attempts=1" in show and "Subject: survives" in show
    sender.kill9()
    remote.start(f'listener.smtp.bind=["127.0.0.1:{port}"]')
    try:
        start_sender(sender, dns, 'queue.retry_schedule=["1h"]', port=port, ca=remote.ca)
        sender.run_cli("queue", "retry", qid)
        wait_for(lambda: remote.messages("carol@remote.test"), what="delivery after restart")
        wait_for(lambda: sender.run_cli("queue", "list").stdout.strip() == "", what="empty queue")
        # delete: a queued message removed by the administrator is neither sent nor bounced.
        sender.stop()
        start_sender(sender, dns, 'queue.retry_schedule=["1h"]', port=free_port(), ca=remote.ca)
        submit(sender, ["carol@remote.test"], subject="deleted")
        sender.wait_log(r"event=delivery_deferred")
        qid = sender.run_cli("queue", "list").stdout.split("\t")[0]
        sender.run_cli("queue", "delete", qid)
        assert sender.run_cli("queue", "list").stdout.strip() == ""
        assert sender.run_cli("queue", "show", qid, check=False).returncode != 0
    finally:
        remote.stop()
