"""IMAP extensions of issue 19's protocol list, end to end over the real binary with a scripted
client: CATENATE (RFC 4469), METADATA (RFC 5464). Dovecot's answers to the same operations
are compared in test_imap_dovecot.py."""

import re

import pytest

from conftest import PASSWORD, message_bytes
from test_imap import BOB, Wire


@pytest.fixture
def server(rampart):
    rampart.start("listener.imaps.max_append_size=300000", listeners=("smtp", "imaps"))
    return rampart


def login(r):
    w = Wire(r)
    assert b"a0 OK" in w.command("a0", f"LOGIN {BOB} \"{PASSWORD}\"")
    return w


MULTIPART = (b"From: a@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
             b"--b\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
             b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsecond part\r\n--b--\r\n")


def append(w, tag, data, mailbox="INBOX"):
    w.send(b"%s APPEND %s {%d+}\r\n" % (tag.encode(), mailbox.encode(), len(data)) + data + b"\r\n")
    done = w.until(tag.encode() + b" ")
    assert b"OK" in done, done
    return done


def test_catenate_assembles_text_and_urls(server):
    """RFC 4469: a message made of literal text, a section of a stored message (relative URL
    with UIDVALIDITY), a whole stored message (absolute URL naming this server and user) and a
    range of one (;PARTIAL=); a large TEXT part streams like a large APPEND. A URL naming no
    message of this user is NO [BADURL url]; a result over APPENDLIMIT is NO [TOOBIG]; nothing
    is stored for a refused command, even inside MULTIAPPEND."""
    w = login(server)
    assert b"CATENATE" in w.command("a1", "CAPABILITY")
    append(w, "a2", MULTIPART)
    status = w.command("a3", "STATUS INBOX (UIDVALIDITY)")
    validity = int(re.search(rb"UIDVALIDITY (\d+)", status).group(1))
    head = b"From: b@example.test\r\nSubject: built\r\n\r\n"
    big = b"z" * 100_000 + b"\r\n"
    w.send(b"a4 APPEND INBOX (\\Draft) CATENATE (TEXT {%d+}\r\n" % len(head) + head +
           b' URL "/INBOX;UIDVALIDITY=%d/;UID=1/;SECTION=2"' % validity +
           b" TEXT {%d+}\r\n" % len(big) + big +
           b' URL "imap://bob%40example.test@mx.example.test/INBOX/;UID=1/;PARTIAL=6.14"' +
           b" URL /inbox/;UID=1)\r\n")
    done = w.until(b"a4 ")
    assert b"a4 OK [APPENDUID %d 2]" % validity in done, done
    expected = head + b"second part" + big + b"a@example.test" + MULTIPART
    assert b"a5 OK" in w.command("a5", "SELECT INBOX")
    got = w.command("a6", "FETCH 2 (FLAGS BODY.PEEK[])")
    assert b"BODY[] {%d}\r\n" % len(expected) + expected in got, got[:300]
    assert b"\\Draft" in got
    for bad in ("/INBOX/;UID=99", f"/INBOX;UIDVALIDITY={validity + 1}/;UID=1", "/Nope/;UID=1",
                "/INBOX/;UID=1/;SECTION=7", "imap://other.example/INBOX/;UID=1",
                "imap://alice%40example.test@mx.example.test/INBOX/;UID=1", "/INBOX/;UID=1/;URLAUTH=x"):
        answer = w.command("a7", f'APPEND INBOX CATENATE (TEXT {{1+}}\r\nx URL "{bad}")')
        assert b"a7 NO [BADURL " + bad.encode() + b"]" in answer, answer
    # Over APPENDLIMIT (300000) only once assembled: each URL part alone is small.
    parts = " ".join(["URL /INBOX/;UID=2"] * 3)
    assert b"a8 NO [TOOBIG]" in w.command("a8", f"APPEND INBOX CATENATE ({parts})")
    # MULTIAPPEND: a good message and a bad CATENATE one store nothing.
    w.send(b"a9 APPEND INBOX {1+}\r\nx CATENATE (URL /INBOX/;UID=42)\r\n")
    assert b"a9 NO [BADURL" in w.until(b"a9 ")
    assert b"(MESSAGES 2)" in w.command("b1", "STATUS INBOX (MESSAGES)")
    assert b"b2 BAD" in w.command("b2", "APPEND INBOX CATENATE (BOGUS x)")
    assert b"BYE" in w.command("b3", "LOGOUT")


def test_metadata_server_and_mailbox_annotations(server):
    """RFC 5464: SETMETADATA sets and removes (NIL) entries of the server ("") and of a
    mailbox, all or none; GETMETADATA answers at DEPTH 0/1/infinity, MAXSIZE leaves long
    values out with OK [METADATA LONGENTRIES n]; a value over 64 KiB is NO [METADATA MAXSIZE];
    more than 1000 entries a user is NO [METADATA TOOMANY]; entries are per user and go with
    a deleted mailbox; bad entry names are BAD."""
    w = login(server)
    assert b" METADATA" in w.command("a1", "CAPABILITY")
    assert b"a2 OK" in w.command("a2", 'SETMETADATA "" (/private/comment "hello" /private/vendor/x/y ~{3+}\r\na\x00b)')
    got = w.command("a3", 'GETMETADATA (DEPTH infinity) "" /private')
    assert b'* METADATA "" (/private/comment {5}\r\nhello /private/vendor/x/y ~{3}\r\na\x00b)' in got, got
    assert b"/private/x NIL" in w.command("a4", 'GETMETADATA "" /private/x')
    assert b"a5 NO [CANNOT]" in w.command("a5", 'SETMETADATA "" (/shared/comment "x")')
    assert b"a6 OK" in w.command("a6", "CREATE Work")
    assert b"a7 OK" in w.command("a7", 'SETMETADATA Work (/shared/Color "#ff0000" /private/a "1" /private/a/b "22" /private/a/b/c "333")')
    one = w.command("a8", "GETMETADATA (DEPTH 1) Work /private/a")
    assert b"* METADATA Work (/private/a {1}\r\n1 /private/a/b {2}\r\n22)" in one, one
    long = w.command("a9", "GETMETADATA (MAXSIZE 2 DEPTH infinity) Work (/private /shared)")
    assert b"/private/a/b/c" not in long and b"/shared/color {7}" not in long and b"a9 OK [METADATA LONGENTRIES 7]" in long, long
    assert b"b1 OK" in w.command("b1", "SETMETADATA Work (/private/a NIL)")
    assert b"/private/a NIL" in w.command("b2", "GETMETADATA Work /private/a")
    assert b"b3 NO [NONEXISTENT]" in w.command("b3", "GETMETADATA Nope /private/a")
    value = b"v" * (64 * 1024 + 1)
    w.send(b"b4 SETMETADATA Work (/private/big {%d+}\r\n" % len(value) + value + b")\r\n")
    assert b"b4 NO [METADATA MAXSIZE 65536]" in w.until(b"b4 ")
    many = " ".join(f"/private/n{i} \"x\"" for i in range(1001))
    assert b"b5 NO [METADATA TOOMANY]" in w.command("b5", f"SETMETADATA Work ({many})")
    assert b"/private/n1 NIL" in w.command("b6", "GETMETADATA Work /private/n1"), "nothing of a refused SETMETADATA is kept"
    for bad in ("/private/a*", "/private/", "/other/x", "private"):
        assert b"b7 BAD" in w.command("b7", f'SETMETADATA Work ({bad} "x")')
    # Another user sees none of bob's annotations; a deleted mailbox takes its own along.
    assert b"b8 OK" in w.command("b8", "DELETE Work")
    assert b"b9 OK" in w.command("b9", "CREATE Work")
    assert b"* METADATA" not in w.command("c1", "GETMETADATA (DEPTH infinity) Work /private")
    c = Wire(server)
    assert b"c2 OK" in c.command("c2", f"LOGIN alice@example.test \"{PASSWORD}\"")
    assert b"/private/comment NIL" in c.command("c3", 'GETMETADATA "" /private/comment')
    assert b"BYE" in w.command("c4", "LOGOUT")


def test_imap4rev2_after_enable(server):
    """RFC 9051: IMAP4rev2 is advertised beside IMAP4rev1 (also before login); a rev1 session
    is unchanged; after ENABLE IMAP4rev2: SELECT sends neither RECENT nor [UNSEEN], FETCH
    FLAGS has no \\Recent, SEARCH answers ESEARCH, mailbox names are UTF-8 both ways (and the
    same mailbox a rev1 client names in modified UTF-7), STATUS has DELETED."""
    w = Wire(server)
    assert b"IMAP4rev1 IMAP4rev2" in w.command("a0", "CAPABILITY")
    assert b"a1 OK" in w.command("a1", f"LOGIN {BOB} \"{PASSWORD}\"")
    for i in range(3):
        append(w, "a2", message_bytes(subject=f"m{i}"))
    assert b"a3 OK" in w.command("a3", "CREATE Entw&APw-rfe")
    rev1 = w.command("a4", "SELECT INBOX")
    assert b"* 3 RECENT" in rev1 and b"[UNSEEN 1]" in rev1
    assert b"* SEARCH 1 2 3" in w.command("a5", "SEARCH ALL")
    assert b"* ENABLED IMAP4rev2" in w.command("a6", "ENABLE IMAP4rev2")
    assert b"\\Recent" not in w.command("a7", "FETCH 1:* FLAGS")
    assert b'* ESEARCH (TAG "a8") ALL 1:3' in w.command("a8", "SEARCH ALL")
    assert b'* ESEARCH (TAG "a9") UID ALL 2' in w.command("a9", "UID SEARCH SUBJECT m1")
    none = w.command("b1", "SEARCH SUBJECT nothing")
    assert b'* ESEARCH (TAG "b1")\r\n' in none, none
    again = w.command("b2", "SELECT INBOX")
    assert b"RECENT" not in again and b"UNSEEN" not in again and b"* 3 EXISTS" in again, again
    assert b"* OK [CLOSED]" in again and b'* LIST () "/" INBOX' in again, again
    listed = w.command("b3", 'LIST "" "*"')
    assert "Entwürfe".encode() in listed and b"&APw-" not in listed, listed
    assert b"b4 OK" in w.command("b4", 'CREATE "Grüße/日本"')
    assert b"b5 OK" in w.command("b5", "STORE 1:2 +FLAGS (\\Deleted)")
    status = w.command("b6", "STATUS INBOX (MESSAGES DELETED)")
    assert b"(MESSAGES 3 DELETED 2)" in status, status
    # A rev1 client sees the same mailboxes under their modified UTF-7 names.
    r1 = login(server)
    names = r1.command("c1", 'LIST "" "*"')
    assert b"Gr&APwA3w-e\r\n" in names and b"Gr&APwA3w-e/&ZeVnLA-" in names and b"Entw&APw-rfe" in names, names
    assert b"BYE" in w.command("c2", "LOGOUT")


def test_partial_results_of_search_sort_and_fetch(server):
    """RFC 9394 (RFC 5267 §4.4's PARTIAL from either end): SEARCH and SORT RETURN (PARTIAL
    range) answer that slice of the result list with the range named, NIL when it is past the
    end; SAVE with PARTIAL keeps the slice; UID FETCH (PARTIAL -1:-n) fetches the last n."""
    w = login(server)
    assert b" PARTIAL" in w.command("a1", "CAPABILITY")
    for i in range(8):
        append(w, "a2", message_bytes(subject=f"s{7 - i}"))
    assert b"a3 OK" in w.command("a3", "SELECT INBOX")
    assert b'* ESEARCH (TAG "a4") COUNT 8 PARTIAL (1:3 1:3)' in w.command("a4", "SEARCH RETURN (PARTIAL 3:1 COUNT) ALL")
    assert b'* ESEARCH (TAG "a5") UID PARTIAL (-1:-2 7:8)' in w.command("a5", "UID SEARCH RETURN (PARTIAL -1:-2) ALL")
    assert b'* ESEARCH (TAG "a6") PARTIAL (9:20 NIL)' in w.command("a6", "SEARCH RETURN (PARTIAL 9:20) ALL")
    # SORT by subject: s0 is message 8, s1 message 7, ...
    assert b'* ESEARCH (TAG "a7") PARTIAL (1:2 8,7)' in w.command("a7", "SORT RETURN (PARTIAL 1:2) (SUBJECT) UTF-8 ALL")
    assert b"a8 OK" in w.command("a8", "UID SEARCH RETURN (SAVE PARTIAL 2:3) ALL")
    assert re.findall(rb"UID (\d+)", w.command("a9", "UID FETCH $ (UID)")) == [b"2", b"3"]
    last = w.command("b1", "UID FETCH 1:* (FLAGS) (PARTIAL -1:-3)")
    assert re.findall(rb"\* (\d+) FETCH", last) == [b"6", b"7", b"8"], last
    assert b"b2 BAD" in w.command("b2", "SEARCH RETURN (PARTIAL 0:1) ALL")


def test_search_context_updates_reach_an_idling_client(server):
    """RFC 5267 §4: a kept search hears ADDTO while the client idles and another session
    appends; REMOVEFROM for its own STORE; at most 8 contexts (NO [NOUPDATE "tag"]); a new
    SELECT ends them all (CANCELUPDATE then knows none)."""
    w, other = login(server), login(server)
    assert b"CONTEXT=SEARCH" in w.command("a1", "CAPABILITY")
    append(w, "a2", message_bytes(subject="watch me"))
    assert b"a3 OK" in w.command("a3", "SELECT INBOX")
    assert b'* ESEARCH (TAG "u1") UID ALL 1' in w.command("u1", "UID SEARCH RETURN (UPDATE ALL) SUBJECT watch")
    w.send(b"i1 IDLE\r\n")
    w.until(b"+ ")
    append(other, "b1", message_bytes(subject="watch this too"))
    assert b'* ESEARCH (TAG "u1") UID ADDTO (0 2)' in w.until(b'* ESEARCH (TAG "u1")')
    w.send(b"DONE\r\n")
    assert b"i1 OK" in w.until(b"i1 ")
    assert b'* ESEARCH (TAG "u2")\r\n' in w.command("u2", "SEARCH RETURN (UPDATE) UNDELETED")
    assert b'* ESEARCH (TAG "u2") REMOVEFROM (0 1)' in w.command("s1", "UID STORE 1 +FLAGS (\\Deleted)")
    assert b'* ESEARCH (TAG "u2") ADDTO (0 1)' in w.command("s2", "UID STORE 1 -FLAGS (\\Deleted)")
    for i in range(3, 9):
        assert b"OK" in w.command(f"u{i}", "SEARCH RETURN (UPDATE COUNT) ALL")
    assert b'u9 NO [NOUPDATE "u9"]' in w.command("u9", "SEARCH RETURN (UPDATE) ALL")
    assert b"c1 OK" in w.command("c1", 'CANCELUPDATE "u3"')
    assert b"a4 OK" in w.command("a4", "SELECT INBOX")
    assert b"c2 NO" in w.command("c2", 'CANCELUPDATE "u1"')


def test_notify_tells_of_other_mailboxes(server):
    """RFC 5465: without selecting anything, a NOTIFY client hears a LIST when another session
    creates or deletes a mailbox, a STATUS when mail arrives in one (also while idling), and
    nothing for mailboxes outside its filters; NO [BADEVENT (supported events)] for an event
    not offered."""
    w, other = login(server), login(server)
    assert b" NOTIFY" in w.command("a1", "CAPABILITY")
    assert b"a2 OK" in w.command("a2", "NOTIFY SET (subtree Work (MessageNew MessageExpunge MailboxName)) (inboxes NONE)")
    assert b"b1 OK" in other.command("b1", "CREATE Work/Plans")
    assert b"b2 OK" in other.command("b2", "CREATE Elsewhere")
    seen = w.command("a3", "NOOP")
    assert b'* LIST () "/" Work\r\n' in seen and b'* LIST () "/" Work/Plans\r\n' in seen and b"Elsewhere" not in seen, seen
    w.send(b"i1 IDLE\r\n")
    w.until(b"+ ")
    append(other, "b3", message_bytes(subject="plan"), mailbox="Work/Plans")
    assert b"* STATUS Work/Plans (MESSAGES 1 UIDNEXT 2 UIDVALIDITY " in w.until(b"* STATUS")
    w.send(b"DONE\r\n")
    assert b"i1 OK" in w.until(b"i1 ")
    append(other, "b4", message_bytes(subject="to inbox"))
    assert b"b5 OK" in other.command("b5", "DELETE Work/Plans")
    gone = w.command("a4", "NOOP")
    assert b'* LIST (\\NonExistent) "/" Work/Plans' in gone and b"INBOX" not in gone, gone
    # The METADATA events are offered since issue 19's last NOTIFY items; AnnotationChange is not.
    supported = b"MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange MailboxMetadataChange ServerMetadataChange"
    assert b"a5 NO [BADEVENT (" + supported + b")]" in w.command("a5", "NOTIFY SET (personal (AnnotationChange))")
