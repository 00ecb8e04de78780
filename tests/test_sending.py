"""Outbound protection of submitted mail: sending quotas (the N+1th message, durable across a
restart, overrides and exceptions set while the server runs) and compromised-account
containment (a burst of refused recipients at a fake remote MX, quota hammering, a spam burst
and malware through submission, a burst after a login from a new network, logins from many
networks, many outside recipients), with held queued mail released or deleted, and the users
it must leave alone: an exempt mass sender, and someone who sends a hundred ordinary messages."""

import imaplib
import re
import smtplib
import time
import urllib.request

import pytest

from conftest import PASSWORD, Rampart, message_bytes, wait_for
from peers import Peer

SUBMISSION = ("smtp", "submission", "imaps", "metrics")
BOB = "bob@example.test"


def login(r, user=BOB, source="127.0.0.1"):
    s = smtplib.SMTP("127.0.0.1", r.ports["submission"], timeout=20, source_address=(source, 0))
    s.ehlo("client.test")
    s.starttls(context=r.tls_context())
    s.ehlo("client.test")
    s.login(user, PASSWORD)
    return s


def send(s, rcpts, subject="out", sender=BOB, body="Hello.\r\n"):
    """sendmail; returns the refused recipients."""
    return s.sendmail(sender, rcpts, message_bytes(subject=subject, sender=sender, to=", ".join(rcpts), body=body))


def refused_mail(s, rcpts, sender=BOB):
    """(code, text) of a refused MAIL FROM."""
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        send(s, rcpts, sender=sender)
    s.rset()
    return e.value.smtp_code, e.value.smtp_error.decode()


def user_state(r, user=BOB):
    for line in r.run_cli("user", "list").stdout.splitlines():
        address, state = line.split("\t", 1)
        if address == user:
            return state
    raise AssertionError(f"{user} not listed")


def imap_works(r, user=BOB):
    m = imaplib.IMAP4_SSL("127.0.0.1", r.ports["imaps"], ssl_context=r.tls_context(), timeout=20)
    try:
        m.login(user, PASSWORD)
        typ, data = m.select("INBOX")
        return typ == "OK"
    finally:
        m.shutdown()


@pytest.fixture
def sender(tmp_path):
    r = Rampart(tmp_path, name="sender")
    for user in (BOB, "alice@example.test", "postmaster@example.test"):
        r.add_user(user)
    yield r
    r.stop()


def start(r, *sets, dns=None, peer=None):
    extra = ['queue.retry_schedule=["1h"]']
    if dns:
        extra.append(f'dns.nameservers=["{dns.address}"]')
    if peer:
        extra.append(f"queue.remote_port={peer.port}")
    r.start(*extra, *sets, listeners=SUBMISSION)


def peer_domain(dns, r, **kwargs):
    peer = Peer(r.ca, None, **kwargs)
    dns.mx("peer.test", "mx.peer.test")
    dns.a("mx.peer.test")
    dns.start()
    return peer


def test_the_next_message_past_a_quota_is_deferred_also_after_a_restart(sender):
    # In the file, so that `rampart quota show` reads the same limit as the server.
    sender.set_config("quota", "messages_per_hour", "3")
    start(sender)
    with login(sender) as s:
        for i in range(3):
            assert send(s, ["alice@example.test"], subject=f"m{i}") == {}
        code, text = refused_mail(s, ["alice@example.test"])
    assert (code, text) == (451, "4.7.1 Sending quota messages_per_hour (3) reached; try again later")
    sender.wait_log(r"event=quota_exceeded ip=127\.0\.0\.1 user=bob@example\.test quota=messages_per_hour limit=3")
    assert re.search(r"messages_per_hour\s+3 / 3\n", sender.run_cli("quota", "show", BOB).stdout)
    # Counted in the store: a restart does not reset it.
    sender.stop()
    start(sender)
    with login(sender) as s:
        assert refused_mail(s, ["alice@example.test"])[0] == 451
        # An override for the user, set while the server runs, applies to the next MAIL.
        sender.run_cli("quota", "set", BOB, "messages_per_hour", "5")
        assert send(s, ["alice@example.test"], subject="after the override") == {}
    assert "(set)" in sender.run_cli("quota", "show", BOB).stdout
    # The domain's total counts every user: alice is held to what bob used.
    sender.run_cli("quota", "set", "example.test", "messages_per_hour", "4")
    with login(sender, "alice@example.test") as s:
        code, text = refused_mail(s, [BOB], sender="alice@example.test")
        assert (code, text) == (451, "4.7.1 Sending quota domain_messages_per_hour (4) reached; try again later")
    sender.run_cli("quota", "set", "example.test", "messages_per_hour", "default")
    # Recipients are counted at RCPT.
    sender.run_cli("quota", "set", BOB, "recipients_per_hour", "5")
    with login(sender) as s:
        refused = send(s, ["alice@example.test", "postmaster@example.test"])
        assert list(refused) == ["postmaster@example.test"]
        assert refused["postmaster@example.test"][0] == 451
    assert user_state(sender) == "active", "three quota refusals are no compromise"
    # One message past the recipient quota is one signal, however many recipients it had.
    sender.run_cli("quota", "set", BOB, "messages_per_hour", "10")
    sender.run_cli("quota", "set", BOB, "recipients_per_hour", "7")
    with login(sender) as s:
        refused = send(s, ["alice@example.test"] * 12)
    assert len(refused) == 1 and sender.log().count("quota=recipients_per_hour limit=7") == 10
    assert user_state(sender) == "active"
    sender.run_cli("quota", "set", BOB, "recipients_per_hour", "5")
    assert "bob@example.test\trecipients_per_hour = 5" in sender.run_cli("quota", "list").stdout


def test_distinct_external_recipients_per_day(sender, dns):
    peer = peer_domain(dns, sender)
    try:
        start(sender, "quota.external_recipients_per_day=2", dns=dns, peer=peer)
        with login(sender) as s:
            assert send(s, ["x1@peer.test", "x2@peer.test"]) == {}
            # Known recipients are not new; alice is not external.
            assert send(s, ["x1@peer.test", "alice@example.test"]) == {}
            refused = send(s, ["x1@peer.test", "x3@peer.test"])
        assert refused["x3@peer.test"][0] == 451
        assert b"external_recipients_per_day (2)" in refused["x3@peer.test"][1]
        wait_for(lambda: len(peer.messages) == 3, what="the accepted messages delivered")
    finally:
        peer.stop()


def test_an_exempt_sender_exceeds_the_quota_and_is_never_suspended(sender, dns):
    bad = [f"gone{i}@peer.test" for i in range(4)]
    peer = peer_domain(dns, sender, rcpt_replies={a: ["550 5.1.1 no such user"] for a in bad})
    try:
        start(sender, "quota.messages_per_hour=2", dns=dns, peer=peer)
        assert sender.run_cli("quota", "exempt", BOB).stdout.strip() == "bob@example.test: exempt from sending quotas and containment"
        with login(sender) as s:
            for i in range(5):
                assert send(s, bad, subject=f"newsletter {i}") == {}
        # 20 recipients refused by the remote server: enough to suspend anyone else.
        wait_for(lambda: len(sender.messages(BOB)) == 5, what="five bounces")
        assert user_state(sender) == "active"
        assert "account_suspended" not in sender.log()
        assert "exempt" in sender.run_cli("quota", "show", BOB).stdout
        sender.run_cli("quota", "unexempt", BOB)
        with login(sender) as s:
            assert refused_mail(s, ["alice@example.test"])[0] == 451
    finally:
        peer.stop()


def test_refused_recipients_suspend_sending_and_hold_the_queue(sender, dns):
    later = ["later1@peer.test", "later2@peer.test"]
    bad = [f"bad{i}@peer.test" for i in range(12)]
    script = {a: ["550 5.1.1 no such user"] for a in bad}
    script.update({a: ["451 4.3.0 try later", None] for a in later})
    peer = peer_domain(dns, sender, rcpt_replies=script)
    try:
        start(sender, dns=dns, peer=peer)
        with login(sender) as s:
            for rcpt in later:
                send(s, [rcpt], subject=f"for {rcpt}")
        wait_for(lambda: sender.log().count("event=delivery_deferred") == 2, what="both deferred")
        ids = {}
        for line in sender.run_cli("queue", "list").stdout.splitlines():
            if not line.startswith("\t"):
                qid = line.split("\t")[0]
            elif "later" in line:
                ids[line.split("\t")[1]] = qid
        with login(sender) as s:
            assert send(s, bad, subject="a burst") == {}
        sender.wait_log(r"event=account_suspended ip=- user=bob@example\.test scope=sending automatic=true score=10\.0 "
                        r"signals=bounces:10\.0 held=2")
        assert user_state(sender).startswith("suspended (sending) since ")
        listing = sender.run_cli("queue", "list").stdout
        assert listing.count("\theld") == 2, listing
        with login(sender) as s:
            code, text = refused_mail(s, ["alice@example.test"])
        assert (code, text) == (554, "5.7.1 Sending from this account is suspended (suspected compromise); contact your administrator")
        # The user and the postmaster are told; reading mail still works.
        notice = wait_for(lambda: [m for m in sender.messages(BOB) if m[4] == "Sending suspended for bob@example.test"], what="notice")
        text = sender.message(BOB, notice[0][0]).decode()
        assert "remote servers refused 12 of 14 recipient(s) (+10.0)" in text and "the 2 message(s)" in text
        assert [m[4] for m in sender.messages("postmaster@example.test")] == ["Sending suspended for bob@example.test"]
        assert imap_works(sender)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{sender.ports['metrics']}/metrics", timeout=10).read().decode()
        assert 'rampart_accounts_suspended_total{trigger="automatic"} 1' in metrics

        out = sender.run_cli("user", "resume", BOB).stdout
        assert "resumed bob@example.test" in out and "2 queued message(s) still held" in out
        assert user_state(sender) == "active"
        with login(sender) as s:
            assert send(s, ["alice@example.test"], subject="after resume") == {}
        # Held mail goes only when the administrator says so: one released, one deleted.
        sender.run_cli("queue", "release", ids["later1@peer.test"])
        wait_for(lambda: peer.messages, what="the released message delivered")
        assert peer.messages[0][1] == ["later1@peer.test"]
        assert "deleted 1 held message(s)" in sender.run_cli("queue", "delete", "--user", BOB).stdout
        wait_for(lambda: sender.run_cli("queue", "list").stdout.strip() == "", what="an empty queue")
        assert len(peer.messages) == 1
    finally:
        peer.stop()


def test_hammering_a_quota_suspends_then_resume(sender):
    start(sender, "quota.messages_per_hour=1")
    with login(sender) as s:
        assert send(s, ["alice@example.test"]) == {}
        replies = [refused_mail(s, ["alice@example.test"]) for _ in range(10)]
    assert [c for c, _ in replies] == [451] * 9 + [554], replies
    sender.wait_log(r"event=account_suspended ip=127\.0\.0\.1 user=bob@example\.test .*signals=quota_hit:10\.0")
    sender.run_cli("user", "resume", BOB)
    with login(sender) as s:
        # Resumed, but the quota still holds; raised, mail flows again.
        assert refused_mail(s, ["alice@example.test"])[0] == 451
        sender.run_cli("quota", "set", BOB, "messages_per_hour", "100")
        assert send(s, ["alice@example.test"], subject="back") == {}
    assert user_state(sender) == "active"


def test_malware_through_submission_suspends(tmp_path, sender):
    import base64
    from peers import EICAR, Clamd
    clamd = Clamd(tmp_path).start()
    try:
        start(sender, f'filter.antivirus.clamd="{clamd.socket}"')
        body = ("--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + base64.b64encode(EICAR).decode() + "\r\n--b--\r\n")
        codes = []
        with login(sender) as s:
            for i in range(4):
                raw = (f"From: {BOB}\r\nTo: alice@example.test\r\nSubject: invoice {i}\r\nMIME-Version: 1.0\r\n"
                       f"Content-Type: multipart/mixed; boundary=b\r\n\r\n{body}").encode()
                try:
                    s.sendmail(BOB, ["alice@example.test"], raw)
                    codes.append(250)
                except smtplib.SMTPDataError as e:
                    codes.append(e.smtp_code)
                except smtplib.SMTPSenderRefused as e:
                    codes.append(e.smtp_code)
                    s.rset()
        # Three refusals for malware (4 points each) reach the threshold; the fourth MAIL is refused.
        assert codes == [554, 554, 554, 554]
        sender.wait_log(r"event=account_suspended .*user=bob@example\.test .*signals=outbound_refused:12\.0")
        assert re.search(r"event=submission_refused .*user=bob@example\.test reason=sending_suspended", sender.log())
        assert alice_has_nothing(sender)
    finally:
        clamd.stop()


def test_a_spam_burst_through_submission_suspends(sender):
    # Outbound scanning is on by default: GTUBE scores past filter.spam.outbound_reject_score.
    start(sender)
    gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"
    codes = []
    with login(sender) as s:
        for i in range(4):
            try:
                send(s, ["alice@example.test"], subject=f"offer {i}", body=gtube)
                codes.append(250)
            except smtplib.SMTPDataError as e:
                codes.append((e.smtp_code, e.smtp_error.decode()[:5]))
            except smtplib.SMTPSenderRefused as e:
                codes.append((e.smtp_code, e.smtp_error.decode()))
                s.rset()
    # Three spam refusals (4 points each) reach the threshold; the fourth MAIL is refused.
    assert codes[:3] == [(554, "5.7.1")] * 3, codes
    assert codes[3] == (554, "5.7.1 Sending from this account is suspended (suspected compromise); contact your administrator")
    sender.wait_log(r"event=account_suspended .*user=bob@example\.test scope=sending automatic=true .*signals=outbound_refused:12\.0")
    assert len(re.findall(r"event=message_refused .*listener=submission .*reason=spam_score_reject", sender.log())) == 3
    assert [m[4] for m in sender.messages("postmaster@example.test")] == ["Sending suspended for bob@example.test"]
    assert alice_has_nothing(sender)
    assert imap_works(sender)


def alice_has_nothing(r):
    return r.messages("alice@example.test") == []


def test_a_hundred_ordinary_messages_do_not_suspend(sender, dns):
    peer = peer_domain(dns, sender)
    try:
        start(sender, dns=dns, peer=peer)
        for batch in range(4):
            with login(sender) as s:
                for i in range(25):
                    n = batch * 25 + i
                    rcpts = [f"friend{n % 40}@peer.test"] + (["alice@example.test"] if n % 5 == 0 else [])
                    assert send(s, rcpts, subject=f"note {n}") == {}
        wait_for(lambda: len(peer.messages) == 100, timeout=60, what="a hundred deliveries")
        assert user_state(sender) == "active"
        assert "account_suspended" not in sender.log() and "quota_exceeded" not in sender.log()
        shown = sender.run_cli("quota", "show", BOB).stdout
        assert re.search(r"messages_per_day\s+100 / 1000\n", shown), shown
        assert re.search(r"external_recipients_per_day\s+40 / 500\n", shown), shown
    finally:
        peer.stop()


def test_a_burst_after_a_login_from_a_new_network_suspends(sender):
    # Lowered from 30 messages and a threshold of 10, so that the burst alone is enough.
    start(sender, "containment.new_network_burst_min=5", "containment.threshold=8")
    alice = "alice@example.test"
    for user in (BOB, alice):
        login(sender, user).quit()
    time.sleep(1.1)  # first sightings are kept to the second
    # Another address of the same /24 is the same network: bob's six messages are no burst.
    with login(sender, source="127.0.0.9") as s:
        for i in range(6):
            assert send(s, [alice], subject=f"usual {i}") == {}
    assert user_state(sender) == "active"
    # Counted in 5-minute steps, so alice (nothing sent yet in this one) shows the burst.
    with login(sender, alice, source="127.0.9.1") as s:
        for i in range(5):
            assert send(s, [BOB], subject=f"burst {i}", sender=alice) == {}
        code, text = refused_mail(s, [BOB], sender=alice)
    assert code == 554 and "suspected compromise" in text, text
    sender.wait_log(r"event=account_suspended ip=127\.0\.9\.1 user=alice@example\.test scope=sending automatic=true "
                    r"score=8\.0 signals=new_network_burst:8\.0")
    assert user_state(sender) == "active"


def test_logins_from_many_networks_count(sender):
    start(sender, "containment.threshold=5")
    for net in range(1, 4):
        login(sender, source=f"127.0.{net}.1").quit()
    with login(sender, source="127.0.1.2") as s:
        assert send(s, ["alice@example.test"]) == {}, "three networks are not yet many"
    with login(sender, source="127.0.4.1") as s:
        code, text = refused_mail(s, ["alice@example.test"])
    assert code == 554 and "suspected compromise" in text, text
    sender.wait_log(r"event=account_suspended .*user=bob@example\.test .*signals=login_networks:5\.0")
    assert user_state(sender).startswith("suspended (sending)")


def test_many_outside_recipients_count(sender, dns):
    peer = peer_domain(dns, sender)
    try:
        start(sender, "containment.many_recipients_min=5", "containment.threshold=5", dns=dns, peer=peer)
        with login(sender) as s:
            assert send(s, [f"x{i}@peer.test" for i in range(4)] + ["alice@example.test"]) == {}
            assert send(s, ["x0@peer.test", "x1@peer.test"]) == {}, "known recipients are not new ones"
            assert send(s, ["x4@peer.test"]) == {}
            code, text = refused_mail(s, ["alice@example.test"])
        assert code == 554 and "suspected compromise" in text, text
        sender.wait_log(r"event=account_suspended .*user=bob@example\.test .*signals=many_recipients:5\.0")
    finally:
        peer.stop()


def test_the_administrator_suspends_and_resumes(sender):
    start(sender)
    sender.run_cli("user", "suspend", BOB, "--sending")
    assert user_state(sender).startswith("suspended (sending) since ")
    with login(sender) as s:
        assert refused_mail(s, ["alice@example.test"]) == (
            554, "5.7.1 Sending from this account is suspended (by the administrator); contact your administrator")
    assert imap_works(sender), "only sending is suspended"
    # Without --sending: no login at all, on either protocol.
    sender.run_cli("user", "suspend", BOB)
    assert user_state(sender).startswith("suspended (logins and sending)")
    with pytest.raises(imaplib.IMAP4.error, match="CONTACTADMIN"):
        imap_works(sender)
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        login(sender)
    assert e.value.smtp_code == 525
    assert "event=auth_failure" not in sender.log(), "not a failed guess: no ban"
    sender.run_cli("user", "resume", BOB)
    with login(sender) as s:
        assert send(s, ["alice@example.test"]) == {}
    assert sender.run_cli("user", "resume", BOB, check=False).returncode != 0


def dsn(mid, failed, to=BOB):
    """A remote server's later bounce (RFC 3464) about the message `mid`, for `failed`."""
    blocks = "".join(f"Final-Recipient: rfc822; {r}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n" for r in failed)
    return (
        f"From: MAILER-DAEMON@mx.peer.test\r\nTo: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <{time.time_ns()}@mx.peer.test>\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.peer.test\r\n\r\n"
        f"{blocks}--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {BOB}\r\nSubject: a burst\r\nMessage-ID: {mid}\r\n\r\n--B--\r\n"
    ).encode()


def bounce_to(r, data, to=BOB):
    """Delivers a bounce (null sender) to `to` through the MX."""
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=20) as s:
        s.ehlo("mx.peer.test")
        s.sendmail("", [to], data)


def test_bounces_that_come_back_later_count_only_for_mail_we_sent(sender, dns):
    peer = peer_domain(dns, sender)
    rcpts = [f"r{i}@peer.test" for i in range(12)]
    try:
        start(sender, dns=dns, peer=peer)
        mid = f"<{time.time_ns()}@example.test>"
        with login(sender) as s:
            assert s.sendmail(BOB, rcpts, message_bytes(subject="a burst", sender=BOB, to="many", mid=mid)) == {}
        wait_for(lambda: peer.messages, what="delivered to the remote MX")
        # Forged: about a message we never sent, or sent to someone who did not send it.
        bounce_to(sender, dsn("<forged@example.test>", rcpts))
        bounce_to(sender, dsn(mid, rcpts, to="alice@example.test"), to="alice@example.test")
        wait_for(lambda: sender.log().count("event=bounce_unmatched") == 2, what="both unmatched")
        assert "event=bounce_matched" not in sender.log() and user_state(sender) == "active"
        # The remote server's later bounce of what bob sent: 12 of 12 refused.
        bounce_to(sender, dsn(mid, rcpts))
        sender.wait_log(r"event=bounce_matched id=\S+ user=bob@example\.test message_id=\S+ rcpts=12")
        sender.wait_log(r"event=account_suspended ip=- user=bob@example\.test scope=sending automatic=true score=10\.0 "
                        r"signals=bounces:10\.0")
        # The same report again counts nothing more.
        sender.run_cli("user", "resume", BOB)
        bounce_to(sender, dsn(mid, rcpts))
        wait_for(lambda: sender.log().count("event=bounce_unmatched") == 3, what="the repeat unmatched")
        assert user_state(sender) == "active"
    finally:
        peer.stop()
