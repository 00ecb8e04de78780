"""`rampart import maildir|mbox` and `rampart export maildir`: a Maildir that Dovecot itself
wrote comes over with the same UIDVALIDITY, UIDs, flags, keywords, internal dates and bodies
(compared over IMAP against Dovecot); a rerun adds nothing; an mbox with From-quoting and
state headers; an export read back by another account."""

import datetime
import imaplib
import re

from conftest import PASSWORD
from test_imap_dovecot import dovecot  # noqa: F401 (the fixture)

MESSAGES = [
    ("INBOX", r"(\Seen)", "01-Jan-2026 10:00:00 +0000", b"From: a@b.test\r\nSubject: seen\r\n\r\nfirst\r\n"),
    ("INBOX", r"(\Flagged \Answered $Work)", "02-Feb-2026 11:30:00 +0000",
     b"From: c@d.test\r\nSubject: flagged\r\n\r\nFrom the start\r\nsecond\r\n"),
    ("INBOX", None, "03-Mar-2026 12:00:00 +0000", b"Subject: plain\r\n\r\n" + b"line of text\r\n" * 5000),
    ("Archive.2026", r"(\Seen Later)", "04-Apr-2026 13:00:00 +0000", b"Subject: archived\r\n\r\nold\r\n"),
    ("Archive.2026", r"(\Draft)", "05-May-2026 14:00:00 +0000", b"Subject: draft\r\n\r\nunfinished\r\n"),
]


def state(m, mailbox):
    """(UIDVALIDITY, {uid: (flags, internal date as Unix time, body)}) of a mailbox."""
    typ, _ = m.select(f'"{mailbox}"', readonly=True)
    assert typ == "OK", mailbox
    uidvalidity = int(m.response("UIDVALIDITY")[1][0])
    typ, data = m.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    out = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta = item[0].decode()
        uid = int(re.search(r"UID (\d+)", meta).group(1))
        flags = set(re.search(r"FLAGS \(([^)]*)\)", meta).group(1).split()) - {"\\Recent"}
        date = re.search(r'INTERNALDATE "([^"]+)"', meta).group(1)
        when = datetime.datetime.strptime(date.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp()
        out[uid] = (flags, when, item[1])
    return uidvalidity, out


def ours(rampart, user="bob@example.test"):
    m = imaplib.IMAP4_SSL("127.0.0.1", rampart.ports["imaps"], ssl_context=rampart.tls_context(), timeout=20)
    m.login(user, PASSWORD)
    return m


def test_a_dovecot_maildir_comes_over_with_uids_flags_and_dates(rampart, dovecot):  # noqa: F811
    dovecot.create("Archive.2026")
    for mailbox, flags, date, raw in MESSAGES:
        assert dovecot.append(mailbox, flags, f'"{date}"', raw)[0] == "OK"
    # A gap in the UIDs, as a real mailbox has: the first INBOX message expunged.
    dovecot.select("INBOX")
    dovecot.uid("STORE", "1", "+FLAGS", r"(\Deleted)")
    dovecot.expunge()
    dovecot.subscribe("Archive.2026")
    dovecot.logout()  # Dovecot writes its uidlist and keywords files as it goes
    maildir = dovecot.home / "mail" / "bob"

    out = rampart.run_cli("import", "maildir", str(maildir), "--user", "bob@example.test").stdout
    assert "imported 4, already there 0, skipped 0" in out, out
    rampart.start(listeners=("imaps",))
    m = ours(rampart)
    theirs = imaplib.IMAP4("127.0.0.1", dovecot_port(dovecot))
    theirs.login("bob", "pw")
    for ours_name, their_name in [("INBOX", "INBOX"), ("Archive/2026", "Archive.2026")]:
        assert state(m, ours_name) == state(theirs, their_name), ours_name
    assert any(b'"/" Archive/2026' in x for x in m.lsub()[1]), m.lsub()

    # Again: everything is there already.
    out = rampart.run_cli("import", "maildir", str(maildir), "--user", "bob@example.test").stdout
    assert "imported 0, already there 4" in out, out


def dovecot_port(dovecot):  # noqa: F811
    return int(re.search(r"port = (\d+)", (dovecot.home / "dovecot.conf").read_text()).group(1))


def test_mbox_with_from_quoting_and_state_headers(rampart, tmp_path):
    mbox = tmp_path / "old.mbox"
    mbox.write_bytes(
        b"From alice@remote.test Mon Nov 30 07:40:00 2026\n"
        b"From: alice@remote.test\nSubject: quoted\nStatus: RO\nX-Status: F\nX-Keywords: $Work\n\n"
        b">From here on\nbody\n\n"
        b"From bob@remote.test Tue Dec  1 08:00:00 2026\n"
        b"From: bob@remote.test\nSubject: second\n\nsecond body\n\n"
        b"From broken@remote.test Tue Dec  1 09:00:00 2026\n"
        b"this is not a header\n\n"
    )
    out = rampart.run_cli("import", "mbox", str(mbox), "--user", "bob@example.test", "--mailbox", "Old").stdout
    assert "imported 2, already there 0, skipped 1" in out, out
    rampart.start(listeners=("imaps",))
    m = ours(rampart)
    _, messages = state(m, "Old")
    (f1, d1, b1), (f2, d2, b2) = messages[1], messages[2]
    assert b1 == b"From: alice@remote.test\r\nSubject: quoted\r\n\r\nFrom here on\r\nbody\r\n"
    assert f1 == {"\\Seen", "\\Flagged", "$Work"}
    assert d1 == datetime.datetime(2026, 11, 30, 7, 40, tzinfo=datetime.timezone.utc).timestamp()
    assert b2.endswith(b"second body\r\n") and f2 == set()
    out = rampart.run_cli("import", "mbox", str(mbox), "--user", "bob@example.test", "--mailbox", "Old").stdout
    assert "imported 0, already there 2" in out, out


def test_export_then_import_into_another_account(rampart, tmp_path):
    rampart.start(listeners=("imaps",))
    m = ours(rampart)
    m.create("Projects/Alpha")
    m.subscribe("Projects/Alpha")
    m.append("INBOX", r"(\Seen $Work)", '"06-Jun-2026 06:06:06 +0000"', b"Subject: one\r\n\r\nx\r\n")
    m.append("Projects/Alpha", r"(\Answered)", '"07-Jul-2026 07:07:07 +0000"', b"Subject: two\r\n\r\ny\r\n")
    before = {name: state(m, name)[1] for name in ("INBOX", "Projects/Alpha")}
    out = tmp_path / "export"
    assert "exported 2 messages" in rampart.run_cli("export", "maildir", str(out), "--user", "bob@example.test").stdout
    assert (out / ".Projects.Alpha" / "cur").is_dir() and (out / "dovecot-uidlist").exists()
    r = rampart.run_cli("import", "maildir", str(out), "--user", "alice@example.test")
    assert "imported 2" in r.stdout
    a = ours(rampart, "alice@example.test")
    for name, msgs in before.items():
        assert state(a, name)[1] == msgs, name
    assert any(b'"/" Projects/Alpha' in x for x in a.lsub()[1]), a.lsub()
