"""The content layer end to end: DNS blocklists published by a dnsmasq (client addresses as
127.0.0.x reversed, domains named in messages), the spam scorer, greylisting and the quarantine."""

import re
import smtplib
import time

from conftest import Rampart, message_bytes

SOURCES = {"blocked": "127.0.0.2", "clean": "127.0.0.3", "scored": "127.0.0.4", "refused": "127.0.0.5"}


def reversed_ip(ip):
    return ".".join(reversed(ip.split(".")))


def start_mx(tmp_path, dns, *sets):
    r = Rampart(tmp_path, name="mx")
    r.add_user("bob@example.test")
    dns.start()
    r.start(f'dns.nameservers=["{dns.address}"]', *sets)
    return r


def send(r, source, data, sender="a@remote.test", rcpt="bob@example.test"):
    """(code, text) of RCPT, or of the end of data when RCPT was accepted."""
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=20, source_address=(source, 0)) as s:
        s.ehlo("client.remote.test")
        s.mail(sender)
        code, text = s.rcpt(rcpt)
        if code != 250:
            return code, text.decode()
        code, text = s.data(data)
        return code, text.decode()


def ident(text):
    return re.search(r"\(Rampart\) with \w+ id (\w+)", text).group(1)


def test_client_blocklists(tmp_path, dns):
    dns.a(f"{reversed_ip(SOURCES['blocked'])}.block.test", "127.0.0.2")
    dns.a(f"{reversed_ip(SOURCES['scored'])}.score.test", "127.0.0.3")
    # Spamhaus' "query refused" answer: the list does not answer us, the client is not listed.
    dns.a(f"{reversed_ip(SOURCES['refused'])}.block.test", "127.255.255.254")
    lists = ('filter.dnsbl=[{zone = "block.test", reject = true}, '
             '{zone = "score.test", score = 1.0, codes = {"127.0.0.3" = 6.0}}]')
    r = start_mx(tmp_path, dns, lists)

    code, text = send(r, SOURCES["blocked"], message_bytes(subject="blocked"))
    assert code == 554 and "5.7.1" in text and "block.test" in text and SOURCES["blocked"] in text, text
    assert re.search(r"event=rcpt_refused ip=127\.0\.0\.2 .*reason=dnsbl_listed", r.log())

    assert send(r, SOURCES["clean"], message_bytes(subject="clean"))[0] == 250
    assert send(r, SOURCES["refused"], message_bytes(subject="refused"))[0] == 250
    assert send(r, SOURCES["scored"], message_bytes(subject="scored"))[0] == 250

    inbox = {m[4]: m for m in r.messages("bob@example.test")}
    junk = {m[4]: m for m in r.messages("bob@example.test", "Junk")}
    assert set(inbox) == {"clean", "refused"} and set(junk) == {"scored"}, (inbox, junk)
    why = r.run_cli("message", "why", junk["scored"][1]).stdout
    assert re.search(r"dnsbl\s+neutral\s+dnsbl_listed\s+domain=score\.test .*score=\+6\.0", why), why
    assert "spam_score_junk" in why, why
    why = r.run_cli("message", "why", inbox["refused"][1]).stdout
    assert re.search(r"dnsbl\s+none\s+dnsbl_unused\s+domain=block\.test", why), why
    why = r.run_cli("message", "why", inbox["clean"][1]).stdout
    assert re.search(r"connect\s+pass\s+admitted", why), why
    assert re.search(r"dnsbl\s+pass\s+dnsbl_not_listed\s+domain=block\.test", why), why


def test_greylisting_defers_then_accepts_the_retry(tmp_path, dns):
    r = start_mx(tmp_path, dns, "filter.greylist.enabled=true", 'filter.greylist.delay="2s"')
    msg = message_bytes(subject="grey")
    code, text = send(r, "127.0.0.7", msg)
    assert code == 451 and "4.7.1" in text and "Greylisted" in text, text
    assert send(r, "127.0.0.7", msg)[0] == 451, "retried too early"
    time.sleep(2.2)
    code, text = send(r, "127.0.0.7", msg)
    assert code == 250, text
    # The client retried once: another sender and recipient from its network are not delayed.
    r.add_user("carol@example.test")
    assert send(r, "127.0.0.8", message_bytes(subject="later"), sender="b@other.test", rcpt="carol@example.test")[0] == 250
    assert "event=greylisted" in r.log()
    rows = r.messages("bob@example.test")
    assert len(rows) == 1
    why = r.run_cli("message", "why", rows[0][1]).stdout
    assert re.search(r"greylist\s+pass\s+greylist_passed", why), why
