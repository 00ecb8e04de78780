"""`rampart store migrate --to postgres --url URL` (issue 18) with the real binary: an embedded store
populated through the CLI (an mbox import with flags and keywords, a DKIM key) is copied into a
PostgreSQL database started by the test; the first run is killed with SIGKILL in the middle of
the bodies, the second completes it, and the copy keeps every message, flag and UID (checked
against the embedded store's own listing, and by the command's own verification)."""

import base64
import os
import signal
import subprocess
import time

import pytest

from conftest import BIN
from postgres import Postgres

# The source of the migration is an embedded store.
pytestmark = pytest.mark.sqlite_only

MESSAGES = 240
BODY = 200 * 1024


@pytest.fixture(scope="module")
def postgres():
    pg = Postgres().start()
    yield pg
    pg.stop()


def mbox(path):
    """MESSAGES messages of about BODY bytes; every third read, every fifth flagged with a keyword."""
    with open(path, "wb") as f:
        for i in range(MESSAGES):
            status = b"Status: RO\n" if i % 3 == 0 else b""
            flagged = b"X-Status: F\nX-Keywords: $Work\n" if i % 5 == 0 else b""
            lines = b"".join(b"line %d of message %d, some text to fill the body\n" % (n, i) for n in range(BODY // 48))
            f.write(b"From sender@remote.test Fri Nov 27 12:00:00 2026\nFrom: sender@remote.test\nTo: bob@example.test\n"
                    b"Subject: message %d\nMessage-ID: <m%d@remote.test>\n" % (i, i) + status + flagged + b"\n" + lines + b"\n")


def migrate(rampart, url):
    return subprocess.Popen([BIN, "store", "migrate", "--to", "postgres", "--url", url, "--config", str(rampart.config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_migration_killed_mid_copy_completes_and_keeps_every_message(rampart, tmp_path, postgres):
    box = tmp_path / "old.mbox"
    mbox(box)
    # 48 MiB through a debug build: a minute or more on a busy machine.
    rampart.run_cli("import", "mbox", str(box), "--user", "bob@example.test", "--mailbox", "INBOX", timeout=300)
    rampart.run_cli("dkim", "keygen", "example.test", "--selector", "s1", "--algorithm", "ed25519")
    listing = rampart.messages("bob@example.test")
    assert len(listing) == MESSAGES
    url = postgres.database()
    db = url.rsplit("/", 1)[1]

    # The first run dies (SIGKILL) once some bodies are committed and before the last.
    first = migrate(rampart, url)
    deadline = time.time() + 120
    copied = ""
    while time.time() < deadline and first.poll() is None:
        try:
            copied = postgres.psql(db, "SELECT copied FROM sqlite_import WHERE tbl = 'blobs' AND NOT done")
        except AssertionError:
            copied = ""  # the progress table does not exist yet
        if copied and int(copied) > 0:
            first.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    first.wait(30)
    assert first.returncode == -signal.SIGKILL, (first.returncode, first.stdout.read(), first.stderr.read())
    assert 0 < int(copied) < MESSAGES
    assert postgres.psql(db, "SELECT done FROM sqlite_import WHERE tbl = 'blobs'") == "f"

    # The second run goes on from there, verifies, and says so.
    second = migrate(rampart, url)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, (out, err)
    assert "messages\t%d\t%d\tok" % (MESSAGES, MESSAGES) in out, out
    assert "bodies: %d compared by SHA-256, 0 differ" % MESSAGES in out, out
    assert "MISMATCH" not in out
    # `init`'s key and the one made above.
    assert "dkim_keys\t2\t2\tok" in out, out

    # Every message with its UID, size and flags, as the embedded store lists them.
    rows = postgres.psql(db, "SELECT m.uid, m.size, m.flags, m.reference FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id "
                             "JOIN accounts a ON a.id = b.account_id WHERE a.address = 'bob@example.test' AND b.name = 'INBOX' "
                             "ORDER BY m.uid").splitlines()
    assert [(int(r.split("|")[0]), r.split("|")[3], int(r.split("|")[1])) for r in rows] == \
        [(uid, ref, size) for uid, ref, size, _, _ in listing]
    flags = {int(r.split("|")[0]): r.split("|")[2].split() for r in rows}
    assert all("\\Seen" in flags[uid] for uid in list(flags)[::3]), flags
    assert all("\\Flagged" in flags[uid] and "$Work" in flags[uid] for uid in list(flags)[::5]), flags
    assert not any("\\Flagged" in f for uid, f in flags.items() if (uid - 1) % 5), flags
    # The bodies, chunked (256 KiB each), hold the messages as received.
    assert postgres.psql(db, "SELECT count(DISTINCT blob_id) FROM blob_chunks") == str(MESSAGES)
    uid = listing[7][0]
    body = postgres.psql(db, "SELECT encode(m.prefix || string_agg(c.data, ''::bytea ORDER BY c.seq), 'base64') "
                             f"FROM messages m JOIN blob_chunks c ON c.blob_id = m.blob_id WHERE m.uid = {uid} GROUP BY m.id, m.prefix")
    assert base64.b64decode(body.replace("\n", "")) == rampart.message("bob@example.test", uid)

    # A third run has nothing left to copy and verifies again.
    third = migrate(rampart, url)
    out, err = third.communicate(timeout=300)
    assert third.returncode == 0 and "0 differ" in out, (out, err)


def test_migration_is_refused_beside_a_running_server_or_into_a_used_database(rampart, postgres):
    url = postgres.database()
    rampart.start()
    p = rampart.run_cli("store", "migrate", "--to", "postgres", "--url", url, check=False)
    assert p.returncode != 0 and "stop it first" in p.stderr, p.stderr
    rampart.stop()
    db = url.rsplit("/", 1)[1]
    # Some other data in the database (a table of ours with a row): refused, nothing copied.
    assert rampart.run_cli("store", "migrate", "--to", "postgres", "--url", url).returncode == 0
    postgres.psql(db, "DELETE FROM sqlite_import")
    p = rampart.run_cli("store", "migrate", "--to", "postgres", "--url", url, check=False)
    assert p.returncode != 0 and "empty database" in p.stderr, p.stderr
    assert os.path.exists(rampart.dir / "data" / "rampart.db")
