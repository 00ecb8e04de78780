"""The content layer end to end: DNS blocklists published by a dnsmasq (client addresses as
127.0.0.x reversed, domains named in messages), the spam scorer, greylisting and the quarantine."""

import re
import smtplib
import time

from conftest import PASSWORD, ROOT, Rampart, message_bytes

SOURCES = {"blocked": "127.0.0.2", "clean": "127.0.0.3", "scored": "127.0.0.4", "refused": "127.0.0.5"}


def reversed_ip(ip):
    return ".".join(reversed(ip.split(".")))


def start_mx(tmp_path, dns, *sets, listeners=("smtp",)):
    r = Rampart(tmp_path, name="mx")
    r.add_user("bob@example.test")
    dns.start()
    r.start(f'dns.nameservers=["{dns.address}"]', *sets, listeners=listeners)
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


def test_gtube_is_refused(tmp_path, dns):
    r = start_mx(tmp_path, dns)
    gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    code, text = send(r, "127.0.0.3", message_bytes(subject="test", body=f"{gtube}\r\n"))
    assert code == 550 and "5.7.1" in text and "spam" in text, text
    assert re.search(r"event=message_refused .*reason=spam_score_reject .*rules:neutral:gtube", r.log())
    assert r.messages("bob@example.test") == []


HTML_LINK = (
    "From: Offers <deals@remote.test>\r\nTo: bob@example.test\r\nSubject: {subject}\r\n"
    "Message-ID: <{mid}@remote.test>\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
    "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"
    "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    '<p>Our <a href="https://www.{html_domain}/offer?id=1">offer</a> ends soon.</p>\r\n--b--\r\n'
)


def linked(subject, html_domain, text_domain):
    import base64
    text = f"See http://{text_domain}/deal today.\r\n".encode()
    return HTML_LINK.format(subject=subject, mid=subject.replace(" ", ""), html_domain=html_domain,
                            b64=base64.b64encode(text).decode()).encode()


def test_domain_blocklists_see_urls_in_html_and_base64(tmp_path, dns):
    dns.a("listed-html.test.dbl.test", "127.0.1.2")
    dns.a("listed-b64.test.dbl.test", "127.0.1.2")
    r = start_mx(tmp_path, dns, 'filter.domainbl=[{zone = "dbl.test", score = 6.0}]')
    for subject, html, text in [("html", "listed-html.test", "clean-a.test"), ("b64", "clean-b.test", "listed-b64.test"),
                                ("clean", "clean-c.test", "clean-d.test")]:
        assert send(r, "127.0.0.3", linked(subject, html, text))[0] == 250
    junk = {m[4]: m for m in r.messages("bob@example.test", "Junk")}
    inbox = {m[4]: m for m in r.messages("bob@example.test")}
    assert set(junk) == {"html", "b64"} and set(inbox) == {"clean"}, (junk, inbox)
    why = r.run_cli("message", "why", junk["html"][1]).stdout
    assert re.search(r"domainbl\s+neutral\s+domainbl_listed\s+domain=dbl\.test .*listed-html\.test", why), why
    why = r.run_cli("message", "why", junk["b64"][1]).stdout
    assert "listed-b64.test" in why, why
    stored = r.message("bob@example.test", junk["html"][0], "Junk").decode()
    assert re.search(r"^X-Spam-Status: Yes, score=\d", stored, re.M), stored[:600]


def test_quarantine_holds_and_releases(tmp_path, dns):
    dns.a("held.test.dbl.test", "127.0.1.2")
    r = start_mx(tmp_path, dns, 'filter.domainbl=[{zone = "dbl.test", score = 12.0}]')
    code, _ = send(r, "127.0.0.3", linked("held offer", "held.test", "clean.test"))
    assert code == 250
    assert r.messages("bob@example.test") == [] and r.messages("bob@example.test", "Junk") == []
    listed = r.run_cli("quarantine", "list", "--user", "bob@example.test").stdout.strip().splitlines()
    assert len(listed) == 1, listed
    held_id, _, score, reason, sender, subject, rcpts = listed[0].split("\t")
    assert (reason, sender, subject, rcpts) == ("spam_score_quarantine", "<a@remote.test>", "held offer", "bob@example.test")
    assert 10 <= float(score) < 15
    shown = r.run_cli("quarantine", "show", held_id).stdout
    assert "domainbl_listed" in shown and "Subject: held offer" in shown, shown
    assert "event=quarantined" in r.log()
    assert "sent 1 digest(s)" in r.run_cli("quarantine", "digest").stdout
    digest = r.messages("bob@example.test")
    assert [m[4] for m in digest] == ["1 message(s) held in quarantine"], digest
    assert held_id in r.message("bob@example.test", digest[0][0]).decode()
    assert "sent 0 digest(s)" in r.run_cli("quarantine", "digest").stdout
    assert "released" in r.run_cli("quarantine", "release", held_id).stdout
    assert [m[4] for m in r.messages("bob@example.test")][1:] == ["held offer"]
    assert r.run_cli("quarantine", "list").stdout.strip() == ""
    assert r.run_cli("quarantine", "release", held_id, check=False).returncode != 0
    assert "learnt: 0 spam, 1 ham" in r.run_cli("spam", "stats").stdout


CORPUS = ROOT / "tests" / "data" / "spam-corpus"


def crlf(raw):
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def variants(kind, n, skip):
    """`n` distinct messages cycled from the corpus' `kind` files (a header makes each unique)."""
    files = sorted(p for p in (CORPUS / kind).glob("*.eml") if p.name != skip)
    out = []
    for i in range(n):
        raw = crlf(files[i % len(files)].read_bytes())
        out.append(b"X-Variant: %d\r\n" % i + raw)
    return out


def bayes_line(r, subject):
    rows = r.messages("bob@example.test") + r.messages("bob@example.test", "Junk")
    ids = [m[1] for m in rows if m[4] == subject]
    why = r.run_cli("message", "why", ids[-1]).stdout
    return next(line for line in why.splitlines() if line.strip().startswith("bayes"))


def test_the_classifier_learns_from_imap_moves(tmp_path, dns):
    import imaplib
    r = Rampart(tmp_path, name="mx")
    r.add_user("bob@example.test")
    dns.start()
    r.start(f'dns.nameservers=["{dns.address}"]', listeners=("smtp", "imaps"))
    holdout_spam = crlf((CORPUS / "spam" / "s003b.eml").read_bytes())
    holdout_ham = crlf((CORPUS / "ham" / "h010.eml").read_bytes())

    def deliver(raw, subject):
        head, body = raw.split(b"\r\n\r\n", 1)
        head = re.sub(rb"(?mi)^Subject:[^\r\n]*", b"Subject: " + subject.encode(), head)
        return send(r, "127.0.0.3", head + b"\r\n\r\n" + body, sender="a@remote.test")[0]

    assert deliver(holdout_spam, "before") == 250
    assert "bayes_untrained" in bayes_line(r, "before")

    m = imaplib.IMAP4_SSL("127.0.0.1", r.ports["imaps"], ssl_context=r.tls_context(), timeout=60)
    m.login("bob@example.test", PASSWORD)

    def append(mailbox, raws):
        uids = []
        for raw in raws:
            typ, data = m.append(mailbox, None, None, raw)
            assert typ == "OK", data
            uids.append(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1).decode())
        return ",".join(uids)

    # Ham appended to Junk is learnt as spam; moved out of Junk, it is learnt as ham instead.
    ham = append("Junk", variants("ham", 200, "h010.eml"))
    m.select("Junk")
    assert m.uid("MOVE", ham, "INBOX")[0] == "OK"
    spam = append("INBOX", variants("spam", 200, "s003b.eml"))
    m.select("INBOX")
    assert m.uid("MOVE", spam, "Junk")[0] == "OK"
    m.logout()
    deadline = time.time() + 120
    while True:
        stats = r.run_cli("spam", "stats", "--user", "bob@example.test").stdout
        if "learnt: 200 spam, 200 ham" in stats:
            break
        assert time.time() < deadline, stats
        time.sleep(1)

    assert deliver(holdout_spam, "after") == 250
    assert deliver(holdout_ham, "friendly") == 250
    spam_line, ham_line = bayes_line(r, "after"), bayes_line(r, "friendly")
    # Untrained before; now the held-out campaign message leans clearly to spam, the ham to ham.
    score = lambda line: float(re.search(r"score=([-+][\d.]+)", line).group(1))
    assert "recipient's model" in spam_line and score(spam_line) >= 2.0, spam_line
    assert "bayes_ham" in ham_line and score(ham_line) < 0, ham_line


def test_spam_learn_from_files(tmp_path):
    r = Rampart(tmp_path)
    r.add_user("bob@example.test")
    files = sorted((CORPUS / "spam").glob("*.eml"))[:3]
    out = r.run_cli("spam", "learn", "--spam", "--user", "bob@example.test", *map(str, files)).stdout
    assert "learnt 3 message(s) as spam" in out, out
    out = r.run_cli("spam", "learn", "--ham", *map(str, files[:1])).stdout
    assert "learnt 1 message(s) as ham" in out, out
    assert "learnt: 2 spam, 1 ham" in r.run_cli("spam", "stats").stdout
    assert "learnt: 3 spam, 0 ham" in r.run_cli("spam", "stats", "--user", "bob@example.test").stdout
    assert r.run_cli("spam", "learn", "--spam", "--ham", str(files[0]), check=False).returncode != 0


def attachment_message(payload, name="readme.txt"):
    import base64
    return (
        "From: a@remote.test\r\nTo: bob@example.test\r\nSubject: attached\r\nMessage-ID: <att@remote.test>\r\n"
        "Date: Fri, 27 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n"
        f"--b\r\nContent-Type: application/octet-stream; name={name}\r\nContent-Disposition: attachment; filename={name}\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{base64.b64encode(payload).decode()}\r\n--b--\r\n"
    ).encode()


def test_antivirus(tmp_path, dns):
    from peers import EICAR, Clamd
    clamd = Clamd(tmp_path).start()
    try:
        r = start_mx(tmp_path, dns, f'filter.antivirus.clamd="{clamd.socket}"', listeners=("smtp", "submission"))
        assert r.wait_log(r"event=antivirus_ready")
        code, text = send(r, "127.0.0.3", message_bytes(subject="raw", body=EICAR.decode() + "\r\n"))
        assert code == 554 and "5.7.1" in text and "Test.EICAR" in text, text
        code, text = send(r, "127.0.0.3", attachment_message(EICAR))
        assert code == 554 and "Test.EICAR" in text, text
        assert send(r, "127.0.0.3", attachment_message(b"just text"))[0] == 250
        assert [m[4] for m in r.messages("bob@example.test")] == ["attached"]
        # Submitted mail is scanned too.
        with smtplib.SMTP("127.0.0.1", r.ports["submission"], timeout=20) as s:
            s.ehlo("client.test")
            s.starttls(context=r.tls_context())
            s.ehlo("client.test")
            s.login("bob@example.test", PASSWORD)
            s.mail("bob@example.test")
            s.rcpt("friend@remote.test")
            code, text = s.data(attachment_message(EICAR).replace(b"From: a@remote.test", b"From: bob@example.test"))
        assert code == 554 and b"Test.EICAR" in text, text
        # clamd stopped: nothing is accepted unscanned.
        clamd.stop()
        code, text = send(r, "127.0.0.3", message_bytes(subject="unscanned"))
        assert code == 451 and "4.7.1" in text, text
        assert len(r.messages("bob@example.test")) == 1
    finally:
        clamd.stop()


def submit(r, body, rcpt="friend@remote.test"):
    with smtplib.SMTP("127.0.0.1", r.ports["submission"], timeout=20) as s:
        s.ehlo("client.test")
        s.starttls(context=r.tls_context())
        s.ehlo("client.test")
        s.login("bob@example.test", PASSWORD)
        s.mail("bob@example.test")
        s.rcpt(rcpt)
        code, text = s.data(body)
        return code, text.decode()


def test_outbound_scanning(tmp_path, dns):
    dns.a("phish.test.dbl.test", "127.0.1.2")
    r = start_mx(tmp_path, dns, 'filter.domainbl=[{zone = "dbl.test", score = 11.0}]', listeners=("smtp", "submission"))
    mine = message_bytes(subject="hello", sender="bob@example.test", to="friend@remote.test")
    assert submit(r, mine)[0] == 250
    gtube = message_bytes(subject="x", sender="bob@example.test", to="friend@remote.test",
                          body="XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n")
    code, text = submit(r, gtube)
    assert code == 554 and "5.7.1" in text, text
    phish = message_bytes(subject="verify", sender="bob@example.test", to="friend@remote.test",
                          body="Log in at https://login.phish.test/verify now\r\n")
    code, text = submit(r, phish)
    assert code == 554 and "spam" in text, text
    assert re.search(r"event=message_refused .*listener=submission .*reason=spam_score_reject", r.log())
