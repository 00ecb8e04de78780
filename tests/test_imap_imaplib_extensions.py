"""Issue 19's last protocol items end to end, the real binary against Python's imaplib over a
socket: CONTEXT=SORT (RFC 5267 §4), UTF8=ACCEPT (RFC 6855) and the NOTIFY (RFC 5465) events
that came last (renames with OLDNAME, `selected` MessageNew with FETCH attributes, METADATA
changes)."""

import re

import pytest

from conftest import PASSWORD, message_bytes
from test_imap import BOB, Wire, imaps


@pytest.fixture
def server(rampart):
    rampart.start(listeners=("imaps",))
    return rampart


def esearch(m):
    """The ESEARCH lines imaplib collected since the last look, as (tag, the rest)."""
    out = []
    for ln in m.untagged_responses.pop("ESEARCH", []):
        got = re.match(rb'\(TAG "([^"]+)"\) ?(.*)', ln)
        assert got, ln
        out.append((got.group(1).decode(), got.group(2)))
    return out


def test_sort_context_updates_with_positions(server):
    """RFC 5267 §4 CONTEXT=SORT: UID SORT RETURN (UPDATE ALL) answers the sorted result, then
    ADDTO with the new messages' positions in it when another session appends (heard at NOOP),
    REMOVEFROM with their positions when a STORE takes them out; CANCELUPDATE ends it."""
    m, other = imaps(server), imaps(server)
    caps = m.capability()[1][0].split()
    assert b"CONTEXT=SORT" in caps and b"ESORT" in caps and b"CONTEXT=SEARCH" in caps
    for subject in ("c", "a", "e"):
        assert other.append("INBOX", None, None, message_bytes(subject=subject))[0] == "OK"
    m.select("INBOX")
    typ, _ = m.uid("SORT", "RETURN (UPDATE ALL) (SUBJECT)", "UTF-8", "UNDELETED")
    assert typ == "OK"
    [(tag, first)] = esearch(m)
    assert first == b"UID ALL 2,1,3"
    for subject in ("b", "d"):
        other.append("INBOX", None, None, message_bytes(subject=subject))
    assert m.noop()[0] == "OK"
    # a b c d e: UIDs 2 4 1 5 3.
    assert esearch(m) == [(tag, b"UID ADDTO (2 4 4 5)")]
    assert m.uid("STORE", "1,2", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
    assert esearch(m) == [(tag, b"UID REMOVEFROM (3 1 1 2)")]
    assert m.xatom("CANCELUPDATE", f'"{tag}"')[0] == "OK"
    other.append("INBOX", None, None, message_bytes(subject="f"))
    assert m.noop()[0] == "OK"
    assert esearch(m) == []


def test_utf8_accept(server):
    """RFC 6855 UTF8=ACCEPT with imaplib's own ENABLE: mailbox names in UTF-8 both ways after
    it (a client that did not enable sees the stored modified UTF-7 name), APPEND's
    `UTF8 (~{n}...)` form (BAD before ENABLE; a large one streams like any APPEND; also as a
    CATENATE part), and the UTF-8 header returned as it was stored."""
    m = imaps(server)
    assert "UTF8=ACCEPT" in m.capability()[1][0].decode().split()
    # imaplib 3.11 writes its own UTF8 APPEND wrongly (CPython gh-78319, a `UTF8 (` inside the
    # literal), so that command goes over a second socket, as raw bytes.
    raw = Wire(server)
    assert b"a0 OK" in raw.command("a0", f"LOGIN {BOB} \"{PASSWORD}\"")
    body = "Grüße aus Köln\r\n" + "x" * 100_000 + "\r\n"
    msg = f"From: Jürgen <j@example.test>\r\nSubject: Café crème\r\n\r\n{body}".encode()
    utf8_append = b" APPEND INBOX UTF8 (~{%d+}\r\n" % len(msg) + msg + b")\r\n"
    raw.send(b"a1" + utf8_append)
    assert raw.until(b"a1 ").startswith(b"a1 BAD")
    assert b"* ENABLED UTF8=ACCEPT" in raw.command("a2", "ENABLE UTF8=ACCEPT")
    raw.send(b"a3" + utf8_append)
    assert b"a3 OK [APPENDUID" in raw.until(b"a3 ")
    # The UTF8 form as a CATENATE part too (RFC 6855 §4), beside a URL part.
    head = "Subject: Grüße\r\n\r\n".encode()
    raw.send(b"a4 APPEND INBOX CATENATE (UTF8 (~{%d+}\r\n" % len(head) + head + b') URL "/INBOX/;UID=1/;PARTIAL=0.5")\r\n')
    assert b"a4 OK [APPENDUID" in raw.until(b"a4 ")

    assert m.enable("UTF8=ACCEPT")[0] == "OK"
    assert m.create('"Café/日本"')[0] == "OK"
    listed = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in m.list()[1])
    assert "Café/日本".encode() in listed and b"&AOk-" not in listed, listed
    typ, data = m.select('"Café/日本"')
    assert typ == "OK" and data == [b"0"]
    m.select("INBOX")
    typ, data = m.fetch("1", "(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
    assert typ == "OK" and f"RFC822.SIZE {len(msg)}".encode() in data[0][0], data
    assert data[0][1] == "From: Jürgen <j@example.test>\r\nSubject: Café crème\r\n\r\n".encode(), data
    assert m.fetch("1", "BODY.PEEK[]")[1][0][1] == msg
    assert m.fetch("2", "BODY.PEEK[]")[1][0][1] == head + b"From:"

    legacy = imaps(server)
    names = b" ".join(x if isinstance(x, bytes) else b"".join(x) for x in legacy.list()[1])
    assert b"Caf&AOk-/&ZeVnLA-" in names, names


def test_notify_renames_new_message_fetch_and_metadata(server):
    """RFC 5465 NOTIFY with imaplib: a `selected` MessageNew with FETCH attributes sends the new
    message's FETCH after its EXISTS; another session's rename is one LIST with OLDNAME;
    SETMETADATA on a watched mailbox (MailboxMetadataChange) and on the server
    (ServerMetadataChange) are unsolicited `* METADATA` lines naming the entries, a mailbox
    outside the filters is not told."""
    m, other = imaps(server), imaps(server)
    assert m.create("Work")[0] == "OK"
    m.select("INBOX")
    typ, _ = m.xatom("NOTIFY", "SET (selected (MessageNew (UID FLAGS RFC822.SIZE) MessageExpunge)) "
                               "(personal (MessageNew MailboxName MailboxMetadataChange ServerMetadataChange))")
    assert typ == "OK"
    msg = message_bytes(subject="fresh")
    other.append("INBOX", None, None, msg)
    assert m.noop()[0] == "OK"
    assert m.untagged_responses.pop("EXISTS")[-1] == b"1"
    assert m.untagged_responses.pop("FETCH") == [b"1 (UID 1 FLAGS (\\Recent) RFC822.SIZE %d)" % len(msg)]

    assert other.rename("Work", "Play")[0] == "OK"
    m.noop()
    assert m.untagged_responses.pop("LIST") == [b'() "/" Play ("OLDNAME" (Work))']

    assert other.xatom("SETMETADATA", 'Play (/private/comment "hello")')[0] == "OK"
    m.noop()
    assert m.untagged_responses.pop("METADATA") == [b'"Play" /private/comment']
    assert other.xatom("SETMETADATA", '"" (/private/vendor/x "y" /private/vendor/z "w")')[0] == "OK"
    m.noop()
    assert m.untagged_responses.pop("METADATA") == [b'"" /private/vendor/x /private/vendor/z']
    assert other.xatom("SETMETADATA", "Play (/private/comment NIL)")[0] == "OK"
    m.noop()
    assert m.untagged_responses.pop("METADATA") == [b'"Play" /private/comment']

    assert m.xatom("NOTIFY", "SET (inboxes (MailboxMetadataChange))")[0] == "OK"
    assert other.xatom("SETMETADATA", 'Play (/private/comment "again")')[0] == "OK"
    assert other.xatom("SETMETADATA", 'INBOX (/private/comment "inbox")')[0] == "OK"
    m.noop()
    assert m.untagged_responses.pop("METADATA") == [b'"INBOX" /private/comment']
