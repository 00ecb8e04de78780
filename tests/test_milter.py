"""Milters end to end: a scripted milter (the Sendmail milter protocol, filter side, in
peers.ScriptedMilter) for each action, a milter that hangs, and what reaches the mailbox."""

import re
import smtplib

import pytest

from conftest import message_bytes
from peers import ScriptedMilter

OK = [(b"c", b"")]


def start(rampart, milter, *sets):
    conf = f'filter.milter=[{{name = "scripted", address = "{milter.address}", command_timeout = "2s", eom_timeout = "2s"{"".join(sets)}}}]'
    rampart.start(conf)
    return rampart


def send(r, rcpts=("bob@example.test",), body=b"Subject: hello\r\n\r\nplain text\r\n", sender="a@remote.test"):
    """(code, text) of the first refusal, or of the end of data."""
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=20) as s:
        s.ehlo("client.remote.test")
        code, text = s.mail(sender)
        if code != 250:
            return code, text.decode()
        for rcpt in rcpts:
            code, text = s.rcpt(rcpt)
            if code != 250:
                return code, text.decode()
        code, text = s.data(body)
        return code, text.decode()


@pytest.fixture
def milter():
    m = ScriptedMilter()
    yield m
    m.stop()


def test_sees_the_whole_conversation_and_adds_a_header(rampart, milter):
    milter.script = {"E": [(b"h", b"X-Scanned\0by scripted\0"), (b"c", b"")]}
    r = start(rampart, milter)
    code, _ = send(r)
    assert code == 250
    letters = [c for c, _ in milter.seen]
    assert letters[:4] == ["C", "H", "M", "R"] and "T" in letters and "L" in letters and letters[-1] == "E", letters
    stored = r.message("bob@example.test", 1).decode()
    assert "X-Scanned: by scripted\r\n" in stored and stored.endswith("plain text\r\n")
    why = r.run_cli("message", "why", r.messages("bob@example.test")[0][1]).stdout
    assert re.search(r"milter\s+pass\s+milter_modified .*scripted: added header X-Scanned", why), why


def test_reject_at_rcpt_covers_only_that_recipient(rampart, milter):
    # The first RCPT is refused with the milter's own reply, the second goes through.
    milter.script = {"R": [(b"y", b"550 5.7.1 not this one\0")]}
    r = start(rampart, milter)
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=20) as s:
        s.ehlo("client.remote.test")
        s.mail("a@remote.test")
        code, text = s.rcpt("bob@example.test")
        assert (code, text) == (550, b"5.7.1 not this one")
    assert "event=milter_refused" in r.log()


def test_tempfail_at_mail(rampart, milter):
    milter.script = {"M": [(b"t", b"")]}
    r = start(rampart, milter)
    code, text = send(r)
    assert code == 451 and "4.7.1" in text, text


def test_change_body_and_add_recipient(rampart, milter):
    rampart.add_user("archive@example.test")
    milter.script = {"E": [(b"b", b"replaced body\r\n"), (b"+", b"<archive@example.test>\0"), (b"c", b"")]}
    r = start(rampart, milter)
    assert send(r)[0] == 250
    for who in ("bob@example.test", "archive@example.test"):
        stored = r.message(who, 1).decode()
        assert stored.endswith("\r\n\r\nreplaced body\r\n") and "Subject: hello" in stored, stored


def test_quarantine_and_discard_are_recorded(rampart, milter):
    milter.script = {"E": [(b"q", b"dlp: card numbers\0"), (b"c", b"")]}
    r = start(rampart, milter)
    assert send(r)[0] == 250
    assert r.messages("bob@example.test") == []
    held = r.run_cli("quarantine", "list").stdout
    assert "milter_quarantined" in held, held
    milter.script = {"E": [(b"d", b"")]}
    assert send(r)[0] == 250
    assert r.messages("bob@example.test") == []
    assert re.search(r"event=discarded .*milter:neutral:milter_discarded", r.log())


def test_reject_at_end_of_data_with_its_reply(rampart, milter):
    milter.script = {"E": [(b"y", b"554 5.7.1 spam detected by scripted\0")]}
    r = start(rampart, milter)
    code, text = send(r)
    assert (code, text) == (554, "5.7.1 spam detected by scripted"), text
    assert r.messages("bob@example.test") == []


def test_a_hanging_milter_gets_its_on_error(rampart, milter):
    milter.script = {"E": "hang"}
    r = start(rampart, milter)
    code, text = send(r)
    assert code == 451 and "4.7.1" in text, text
    assert "event=milter_failed" in r.log()
    r.stop()
    start(rampart, milter, ', on_error = "accept"')
    assert send(rampart)[0] == 250
    why = rampart.run_cli("message", "why", rampart.messages("bob@example.test")[0][1]).stdout
    assert re.search(r"milter\s+skipped\s+milter_unavailable", why), why


def test_an_unreachable_milter_defers(rampart):
    rampart.start('filter.milter=[{name = "gone", address = "127.0.0.1:9", connect_timeout = "1s"}]')
    code, text = send(rampart)
    assert code == 451 and "4.7.1" in text, text


def test_rspamd_as_a_milter(rampart, tmp_path):
    from peers import Rspamd
    rspamd = Rspamd(tmp_path).start()
    try:
        rampart.start(f'filter.milter=[{{name = "rspamd", address = "{rspamd.address}"}}]')
        assert send(rampart)[0] == 250
        stored = rampart.message("bob@example.test", 1).decode()
        assert re.search(r"^X-Spam(d-Result)?: ", stored, re.M), stored[:1500]
        why = rampart.run_cli("message", "why", rampart.messages("bob@example.test")[0][1]).stdout
        assert re.search(r"milter\s+pass\s+milter_modified\s+\(rspamd: ", why), why
        gtube = b"Subject: test\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"
        code, text = send(rampart, body=gtube)
        assert code == 554 and "Gtube" in text, text
    finally:
        rspamd.stop()
