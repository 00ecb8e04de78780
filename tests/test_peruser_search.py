"""Per-user accounts search as clear ones do (issue 16): the same messages delivered to a
per-user account (bob) and a clear one (alice) give the same answers to SEARCH (SUBJECT,
FROM, BODY, TEXT, HEADER, their combinations), SORT, THREAD and FETCH ENVELOPE/BODYSTRUCTURE —
the per-user answers now come from the sealed summaries — and nothing of the mail appears in
any file of the data directory (the sealed summaries' table included)."""

import imaplib
import smtplib

import pytest

from conftest import PASSWORD
from test_encryption import MARKER, files_holding, forms

# Per-user encryption exists for the embedded store only.
pytestmark = pytest.mark.sqlite_only

MESSAGES = [
    # (from, subject, date, body)
    ("Zed Last <zed@remote.test>", f"Weekly {MARKER} report", "Mon, 02 Nov 2026 09:00:00 +0000", "numbers wombatvalue here\r\n"),
    ("Amy First <amy@remote.test>", "Lunch plans", "Tue, 03 Nov 2026 10:00:00 +0000", f"see {MARKER} at noon\r\n"),
    ("Bo Middle <bo@remote.test>", "Re: Lunch plans", "Wed, 04 Nov 2026 11:00:00 +0000", "yes, wombatvalue again\r\n" * 40),
    ("amy@remote.test", "Invoice 42", "Sun, 01 Nov 2026 08:00:00 +0000", "pay soon\r\n"),
]

CRITERIA = [
    f'SUBJECT "{MARKER}"',
    'SUBJECT "lunch"',
    'FROM "amy"',
    'FROM "Middle"',
    f'BODY "{MARKER}"',
    'BODY "wombatvalue"',
    'BODY "wombat"',
    'BODY "absentword"',
    f'TEXT "{MARKER}"',
    'HEADER Subject "invoice"',
    'OR FROM "zed" BODY "noon"',
    'NOT SUBJECT "lunch"',
    'SENTSINCE 3-Nov-2026',
]
SORTS = ["(SUBJECT)", "(FROM)", "(REVERSE DATE)", "(SIZE)", "(ARRIVAL)", "(DISPLAYFROM)"]


def message(sender, subject, date, body, n):
    return (
        f"From: {sender}\r\nTo: someone@example.test\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"Message-ID: <m{n}@remote.test>\r\n\r\n{body}"
    ).encode()


def answers(r, user):
    m = imaplib.IMAP4("127.0.0.1", r.ports["imap"], timeout=30)
    m.starttls(ssl_context=r.tls_context())
    m.login(user, PASSWORD)
    m.select("INBOX")
    out = {}
    # Twice: the second run reads the column cache built by the first.
    for round in range(2):
        for c in CRITERIA:
            typ, data = m.uid("SEARCH", None, c)
            assert typ == "OK", (c, data)
            out[(round, c)] = data[0].split()
        for s in SORTS:
            typ, data = m.uid("SORT", s, "UTF-8", "ALL")
            assert typ == "OK", (s, data)
            out[(round, s)] = data[0].split()
    typ, data = m.uid("THREAD", "REFERENCES", "UTF-8", "ALL")
    out["thread"] = data
    typ, data = m.uid("FETCH", "1:*", "(ENVELOPE BODYSTRUCTURE)")
    out["fetch"] = data
    m.logout()
    return out


def test_a_per_user_account_answers_searches_as_a_clear_one(rampart):
    r = rampart
    r.run_cli("user", "encryption", "enable", "bob@example.test", "--password-stdin", input=PASSWORD + "\n")
    r.start(listeners=("smtp", "imap"))
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30) as s:
        for n, (sender, subject, date, body) in enumerate(MESSAGES):
            s.sendmail("sender@remote.test", ["bob@example.test"], message(sender, subject, date, body, n))
    bob = answers(r, "bob@example.test")
    assert bob[(0, f'BODY "{MARKER}"')] == [b"2"] and bob[(0, 'FROM "amy"')] == [b"2", b"4"], bob
    # The same messages in a clear account: the same answers.
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30) as s:
        for n, (sender, subject, date, body) in enumerate(MESSAGES):
            s.sendmail("sender@remote.test", ["alice@example.test"], message(sender, subject, date, body, n))
    alice = answers(r, "alice@example.test")
    for key in alice:
        assert bob[key] == alice[key], key


def test_nothing_of_a_per_user_search_reaches_the_files(rampart):
    r = rampart
    r.run_cli("user", "encryption", "enable", "bob@example.test", "--password-stdin", input=PASSWORD + "\n")
    r.start(listeners=("smtp", "imap"))
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30) as s:
        for n, (sender, subject, date, body) in enumerate(MESSAGES):
            s.sendmail("sender@remote.test", ["bob@example.test"], message(sender, subject, date, body, n))
    answers(r, "bob@example.test")
    data_dir = r.dir / "data"
    assert files_holding(data_dir, forms(MARKER) | forms("wombatvalue")) == []
    r.stop()
    assert files_holding(data_dir, forms(MARKER) | forms("wombatvalue")) == []
