"""More real IMAP clients against Rampart: offlineimap (two-way sync) and fetchmail
(download and delete)."""

import email
import imaplib
import os
import shutil
import subprocess

import pytest

from conftest import PASSWORD, message_bytes

BOB = "bob@example.test"


def imaps(r):
    m = imaplib.IMAP4_SSL("127.0.0.1", r.ports["imaps"], ssl_context=r.tls_context(), timeout=20)
    m.login(BOB, PASSWORD)
    return m


def subjects(maildir):
    out = []
    for sub in ("cur", "new"):
        d = maildir / sub
        if d.exists():
            out += [email.message_from_bytes(f.read_bytes())["Subject"] for f in d.iterdir()]
    return sorted(out)


@pytest.mark.skipif(shutil.which("offlineimap") is None, reason="offlineimap3 is not installed")
def test_offlineimap_syncs_both_ways(rampart, tmp_path):
    rampart.start(listeners=("imaps",))
    m = imaps(rampart)
    ok = m.append("INBOX", None, None, message_bytes(subject="from the server"))
    assert ok[0] == "OK"
    local = tmp_path / "mail"
    (local / "Archive" / "cur").mkdir(parents=True)
    for sub in ("new", "tmp"):
        (local / "Archive" / sub).mkdir()
    (local / "Archive" / "cur" / "1.local:2,S").write_bytes(message_bytes(subject="from offlineimap"))
    config = tmp_path / "offlineimaprc"
    config.write_text(f"""
[general]
accounts = rampart
metadata = {tmp_path}/meta

[Account rampart]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {local}

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = {rampart.ports["imaps"]}
remoteuser = {BOB}
remotepass = {PASSWORD}
ssl = yes
sslcacertfile = {rampart.ca}
folderfilter = lambda name: name in ["INBOX", "Archive"]
""")
    for _ in range(2):
        r = subprocess.run(["offlineimap", "-c", str(config), "-o", "-u", "quiet"], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "HOME": str(tmp_path)})
        assert r.returncode == 0, r.stdout + r.stderr
    assert subjects(local / "INBOX") == ["from the server"]
    assert m.status("Archive", "(MESSAGES)")[1] == [b"Archive (MESSAGES 1)"]
    m.select("Archive")
    typ, data = m.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert rb"\Seen" in data[0][0] and b"from offlineimap" in data[0][1]
    m.logout()


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail is not installed")
def test_fetchmail_downloads_and_deletes(rampart, tmp_path):
    rampart.start(listeners=("imaps",))
    m = imaps(rampart)
    for i in range(3):
        assert m.append("INBOX", None, None, message_bytes(subject=f"fetch {i}"))[0] == "OK"
    out = tmp_path / "mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f'poll localhost protocol IMAP port {rampart.ports["imaps"]} user "{BOB}" password "{PASSWORD}" '
                  f'ssl sslcertck sslcertfile "{rampart.ca}" mda "cat >> {out}"\n')
    rc.chmod(0o600)
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nosyslog", "--nodetach", "-v"], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "HOME": str(tmp_path), "FETCHMAILHOME": str(tmp_path)})
    assert r.returncode == 0, r.stdout + r.stderr
    text = out.read_text()
    assert all(f"Subject: fetch {i}" in text for i in range(3)), text
    # fetchmail deletes what it fetched: the mailbox is empty now.
    assert m.status("INBOX", "(MESSAGES)")[1] == [b"INBOX (MESSAGES 0)"]
    m.logout()
