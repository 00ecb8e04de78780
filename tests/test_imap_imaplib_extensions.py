"""Issue 19's last protocol items end to end, the real binary against Python's imaplib over a
socket: CONTEXT=SORT (RFC 5267 §4), UTF8=ACCEPT (RFC 6855) and the NOTIFY (RFC 5465) events
that came last (renames with OLDNAME, `selected` MessageNew with FETCH attributes, METADATA
changes)."""

import re

import pytest

from conftest import message_bytes
from test_imap import imaps


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
