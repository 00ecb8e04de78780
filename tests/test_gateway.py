"""Gateway mode end to end: a Rampart filtering mail for corp.test in front of a second Rampart
(the downstream, which holds corp.test's mailboxes). Mail from the internet (a client on
127.0.0.3) passes the gateway's checks and reaches the downstream with our verdict; the
downstream's own outbound mail (from 127.0.0.1, its relay_from) leaves through the gateway
DKIM-signed to a remote MX (an aiosmtpd peer). A dnsmasq stands in for the internet's DNS."""

import re
import smtplib

import dkim
import pytest

from conftest import PASSWORD, Rampart, free_port, message_bytes, wait_for
from peers import EICAR, Clamd, Peer

INTERNET = "127.0.0.3"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def route(downstream_port, **extra):
    """One `[[gateway.route]]` for corp.test as an inline table; `extra` adds keys (TOML values)."""
    keys = {"domains": '["corp.test"]', "downstream": f'"127.0.0.1:{downstream_port}"', **extra}
    return "{" + ", ".join(f"{k} = {v}" for k, v in keys.items()) + "}"


def start_gateway(tmp_path, dns, routes, *sets, port=None):
    """The gateway, its routes written into its config file (the CLI reads them too)."""
    gw = Rampart(tmp_path, name="gateway")
    gw.set_config("gateway", "route", "[" + ", ".join(routes) + "]")
    bind = [f'listener.smtp.bind=["127.0.0.1:{port}"]'] if port else []
    gw.start(f'dns.nameservers=["{dns.address}"]', 'queue.retry_schedule=["1s"]', *bind, *sets)
    return gw


def send(r, rcpt, data=None, sender="a@remote.test", source=INTERNET):
    """(code, text) of RCPT, or of the end of data when RCPT was accepted."""
    data = data or message_bytes(sender=sender, to=rcpt)
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30, source_address=(source, 0)) as s:
        s.ehlo("client.remote.test")
        s.mail(sender)
        code, text = s.rcpt(rcpt)
        if code != 250:
            return code, text.decode()
        code, text = s.data(data)
        return code, text.decode()


@pytest.fixture
def world(tmp_path, dns):
    """DNS, the downstream (mail.corp.test), the gateway in front of it (with callouts) and a
    remote MX for peer.test."""
    peer = Peer(None, None)
    dns.txt("remote.test", f"v=spf1 ip4:{INTERNET} -all")
    dns.mx("peer.test", "mx.peer.test")
    dns.a("mx.peer.test")
    dns.start()
    gw_port = free_port()
    down = Rampart(tmp_path, hostname="mail.corp.test", domain="corp.test", name="downstream")
    down.add_user("carol@corp.test")
    # Its outbound mail goes through the gateway; only the gateway signs it.
    down.start('queue.retry_schedule=["1s"]', "dkim.sign=false",
               f'queue.route=[{{domains = ["*"], host = "127.0.0.1", port = {gw_port}, tls = "require"}}]',
               listeners=("smtp", "submission"))
    gw = start_gateway(tmp_path, dns, [route(down.ports["smtp"], callout="true", relay_from='["127.0.0.1"]')],
                       f"queue.remote_port={peer.port}", port=gw_port)
    yield gw, down, peer
    gw.stop()
    down.stop()
    peer.stop()


def test_mail_for_the_gateway_domain_reaches_the_downstream_with_our_verdict(world):
    gw, down, _ = world
    code, text = send(gw, "carol@corp.test", message_bytes(subject="through the gateway", to="carol@corp.test"))
    assert code == 250, text
    rows = wait_for(lambda: down.messages("carol@corp.test"), what="delivery to the downstream")
    assert rows[0][4] == "through the gateway"
    msg = down.message("carol@corp.test", rows[0][0]).decode()
    head = msg.split("\r\n\r\n", 1)[0]
    assert re.search(r"^Authentication-Results: mx\.example\.test;", head, re.M), head
    assert re.search(r"spf=pass[^;]*smtp\.mailfrom=a@remote\.test", head), head
    assert re.search(r"^Received: from client\.remote\.test \(\[127\.0\.0\.3\]\)\r\n\tby mx\.example\.test \(Rampart\)", head, re.M), head
    trail = re.search(r"^X-Rampart-Trail: ([^\r]*(?:\r\n\t[^\r]*)*)", head, re.M).group(1).replace("\r\n\t", "")
    assert trail.startswith("accept; reason=accepted;"), trail
    assert "spf:pass:spf_authorized" in trail and "recipients:pass:queued_to_downstream" in trail, trail
    assert re.search(r"^X-Spam-Status: No", head, re.M), head
    gw.wait_log(r"event=gateway_callout rcpt=carol@corp\.test host=127\.0\.0\.1 result=exists")
    gw.wait_log(r"event=delivery .*rcpt=carol@corp\.test .*result=delivered")


def test_unknown_recipients_and_spam_are_refused_at_the_gateway(world):
    gw, down, _ = world
    code, text = send(gw, "nobody@corp.test")
    assert code == 550 and "5.1.1" in text, text
    gw.wait_log(r"event=gateway_callout rcpt=nobody@corp\.test .*result=unknown")
    assert re.search(r"event=rcpt_refused ip=127\.0\.0\.3 .*rcpt=nobody@corp\.test reason=unknown_user code=550", gw.log())
    # The negative answer is cached: the second refusal asks nobody.
    assert send(gw, "nobody@corp.test")[0] == 550
    assert len(re.findall(r"event=gateway_callout rcpt=nobody@corp\.test", gw.log())) == 1
    code, text = send(gw, "carol@corp.test", message_bytes(subject="spam", to="carol@corp.test", body=f"{GTUBE}\r\n"))
    assert code == 550 and "5.7.1" in text, text
    assert re.search(r"event=message_refused .*reason=spam_score_reject", gw.log())
    assert down.messages("carol@corp.test") == []


def test_viruses_are_caught_at_the_gateway(tmp_path, dns):
    clamd = Clamd(tmp_path).start()
    try:
        dns.start()
        gw = start_gateway(tmp_path, dns, [route(free_port(), valid_recipients='["*@corp.test"]')],
                           f'filter.antivirus.clamd="{clamd.socket}"')
        code, text = send(gw, "carol@corp.test", message_bytes(to="carol@corp.test", body=EICAR.decode() + "\r\n"))
        assert code == 554 and "Test.EICAR" in text, text
        assert gw.run_cli("queue", "list").stdout.strip() == ""
    finally:
        clamd.stop()


def test_static_list_file_and_a_downstream_that_is_down(tmp_path, dns):
    dns.start()
    listed = tmp_path / "recipients.txt"
    listed.write_text("# corp's mailboxes\ndan@file.test\n")
    dead = free_port()
    routes = [
        route(dead, callout="true", callout_timeout='"5s"'),
        f'{{domains = ["list.test", "all.list.test"], downstream = "127.0.0.1:{dead}", valid_recipients = ["alice@list.test", "*@all.list.test"]}}',
        f'{{domains = ["file.test"], downstream = "127.0.0.1:{dead}", recipients_file = "{listed}"}}',
    ]
    gw = start_gateway(tmp_path, dns, routes)
    # A callout without an answer never accepts: 451 4.4.3, and nothing is cached.
    code, text = send(gw, "carol@corp.test")
    assert code == 451 and "4.4.3" in text, text
    assert re.search(r"event=gateway_callout rcpt=carol@corp\.test .*result=unavailable", gw.log())
    assert send(gw, "alice@list.test")[0] == 250
    assert send(gw, "Alice+news@LIST.test")[0] == 250
    assert send(gw, "anyone@all.list.test")[0] == 250
    assert send(gw, "bob@list.test")[0] == 550
    assert send(gw, "dan@file.test")[0] == 250
    assert send(gw, "eve@file.test")[0] == 550
    # The file is read again once it changes.
    listed.write_text("dan@file.test\neve@file.test\n")
    assert send(gw, "eve@file.test")[0] == 250
    gw.wait_log(r"event=gateway_recipients_loaded .*entries=2")
    # Mail for the downstream waits in the queue while it is down.
    listing = wait_for(lambda: "pending" in gw.run_cli("queue", "list").stdout and gw.run_cli("queue", "list").stdout, what="queued")
    assert "alice@list.test\tpending" in listing


def published_keys(r, domain):
    """{selector: TXT value} from `rampart dns records`."""
    out = r.run_cli("dns", "records", domain).stdout
    return {sel: "".join(re.findall(r'"([^"]*)"', strings))
            for sel, strings in re.findall(rf"^(\S+)\._domainkey\.{re.escape(domain)}\.\tIN\tTXT\t\((.*)\)$", out, re.M)}


def test_the_downstreams_mail_leaves_signed_and_others_cannot_relay(world):
    gw, down, peer = world
    out = gw.run_cli("dkim", "keygen", "corp.test", "--selector", "gw").stdout
    assert "gw._domainkey.corp.test." in out
    keys = published_keys(gw, "corp.test")
    with smtplib.SMTP("127.0.0.1", down.ports["submission"], timeout=10) as s:
        s.ehlo("laptop.corp.test")
        s.starttls(context=down.tls_context())
        s.ehlo("laptop.corp.test")
        s.login("carol@corp.test", PASSWORD)
        s.sendmail("carol@corp.test", ["friend@peer.test"],
                   message_bytes(subject="from corp", sender="carol@corp.test", to="friend@peer.test"))
    wait_for(lambda: peer.messages, timeout=30, what="delivery to the remote MX")
    mail_from, rcpts, content, _ = peer.messages[0]
    assert (mail_from, rcpts) == ("carol@corp.test", ["friend@peer.test"])
    msg = content.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
    assert b"X-Rampart-Trail" not in msg and b"X-Spam-Status" not in msg
    # Both hops: the downstream's submission, then the gateway's relay.
    assert re.search(rb"by mail\.corp\.test \(Rampart\) with ESMTPSA", msg)
    assert re.search(rb"by mx\.example\.test \(Rampart\) with ESMTPS ", msg)

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return keys.get(name.split("._domainkey.")[0], "").encode()

    sigs = [h for h in dkim.DKIM(msg).headers if h[0].lower() == b"dkim-signature"]
    assert len(sigs) == 1 and b"s=gw;" in re.sub(rb"\s", b"", sigs[0][1]), sigs
    assert dkim.verify(msg, dnsfunc=dnsfunc)
    gw.wait_log(r"event=dkim_signed .*domain=corp\.test")
    # Not the downstream: the same envelope from another client is refused.
    code, text = send(gw, "friend@peer.test", sender="carol@corp.test")
    assert code == 554 and "5.7.1" in text, text
    assert re.search(r"event=rcpt_refused ip=127\.0\.0\.3 .*reason=relay_denied", gw.log())


def relay(gw, sender, rcpt="friend@peer.test"):
    """(code, text) of MAIL, or of the end of data, for the downstream (127.0.0.1) relaying out."""
    with smtplib.SMTP("127.0.0.1", gw.ports["smtp"], timeout=30) as s:
        s.ehlo("mail.corp.test")
        code, text = s.mail(sender)
        if code != 250:
            return code, text.decode()
        assert s.rcpt(rcpt)[0] == 250
        code, text = s.data(message_bytes(sender=sender or "mailer-daemon@corp.test", to=rcpt))
        return code, text.decode()


def test_the_downstreams_relayed_mail_is_held_to_sending_quotas(world):
    gw, down, peer = world
    # Per sender address, as for a user, and per sender domain for all of them together.
    gw.run_cli("quota", "set", "carol@corp.test", "messages_per_hour", "2")
    gw.run_cli("quota", "set", "corp.test", "messages_per_hour", "3")
    assert relay(gw, "carol@corp.test")[0] == 250
    assert relay(gw, "carol@corp.test")[0] == 250
    assert relay(gw, "carol@corp.test") == (451, "4.7.1 Sending quota messages_per_hour (2) reached; try again later")
    gw.wait_log(r"event=quota_exceeded ip=127\.0\.0\.1 user=carol@corp\.test quota=messages_per_hour limit=2")
    assert re.search(r"event=relay_refused ip=127\.0\.0\.1 listener=smtp sender=carol@corp\.test reason=quota_exceeded", gw.log())
    # The domain's total counts every sender, bounces (<>) too.
    assert relay(gw, "")[0] == 250
    assert relay(gw, "dave@corp.test") == (451, "4.7.1 Sending quota domain_messages_per_hour (3) reached; try again later")
    assert re.search(r"domain_messages_per_hour\s+3 / 3\s+\(set\)", gw.run_cli("quota", "show", "corp.test").stdout)
    # No account, so no containment: nothing suspended, the queue entries name no user.
    assert "event=account_suspended" not in gw.log()
    # An exception for the domain lets its mail through.
    gw.run_cli("quota", "exempt", "corp.test")
    assert relay(gw, "carol@corp.test")[0] == 250
    wait_for(lambda: len(peer.messages) == 4, timeout=30, what="the accepted ones delivered")
