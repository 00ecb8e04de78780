"""Encryption at rest, server-key mode (`[store.encryption] mode = "server"`): mail delivered
by SMTP leaves nothing of itself in any file of the data directory (database, WAL, message
files), IMAP still fetches and searches it, the server refuses a missing or wrong key and a
clear/encrypted mismatch, and kill -9 during `store encrypt` or `keys rotate` loses nothing."""

import base64
import hashlib
import imaplib
import os
import pathlib
import smtplib
import subprocess
import threading
import time
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from conftest import BIN, PASSWORD, wait_for

# Encryption at rest exists for the embedded store only.
pytestmark = pytest.mark.sqlite_only

MARKER = "Quokkamarker7731"


def forms(marker: str):
    """The marker as it may appear in a file: as is, lowercased (search tokens), base64 at each
    of the three alignments (an attachment), and quoted-printable (the same bytes for ASCII)."""
    raw = marker.encode()
    out = {raw, raw.lower()}
    for pad in range(3):
        enc = base64.b64encode(b"x" * pad + raw).rstrip(b"=")
        # Only the characters made of the marker's bits alone: not those that share bits with
        # what comes before it or after it.
        start = (pad * 4 + 2) // 3
        end = len(enc) - (1 if (pad + len(raw)) % 3 else 0)
        out.add(enc[start:end])
    return out


def files_holding(data_dir: pathlib.Path, needles):
    found = []
    for p in data_dir.rglob("*"):
        if p.is_file():
            content = p.read_bytes()
            low = content.lower()
            for n in needles:
                if n in content or n.lower() in low:
                    found.append((str(p), n))
    return found


def encrypted_message(size: int, attachment: bytes) -> bytes:
    m = MIMEMultipart()
    m["From"] = "sender@remote.test"
    m["To"] = "bob@example.test"
    m["Subject"] = f"Report {MARKER} {size}"
    m["Message-ID"] = f"<{time.time_ns()}@remote.test>"
    line = f"A line that names {MARKER} in the body, with text around it.\n"
    m.attach(MIMEText(line * max(1, size // len(line)), "plain", "utf-8"))
    m.attach(MIMEText(f"caf\u00e9 {MARKER} quoted\n", "plain", "utf-8"))
    m.attach(MIMEApplication(attachment, Name="report.bin"))
    return m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def encrypt(r):
    """A master key, server mode, and the fresh store converted."""
    r.run_cli("keys", "generate")
    r.set_config("store.encryption", "mode", '"server"')
    r.run_cli("store", "encrypt")


def start_fails(r, *sets) -> str:
    r.start(*sets, wait=False)
    r.proc.wait(30)
    assert r.proc.returncode != 0
    r.proc = None
    return r.log()


def imap_login(r):
    m = imaplib.IMAP4("127.0.0.1", r.ports["imap"], timeout=30)
    m.starttls(ssl_context=r.tls_context())
    m.login("bob@example.test", PASSWORD)
    return m


def test_server_mode_leaves_no_plaintext_and_imap_still_fetches_and_searches(rampart):
    r = rampart
    r.run_cli("keys", "generate")
    key_file = r.dir / "master.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not str(key_file).startswith(str(r.dir / "data"))
    r.set_config("store.encryption", "mode", '"server"')
    # The store `init` made is clear: no start over it in server mode until it is converted.
    assert "rampart store encrypt" in start_fails(r)
    assert "is encrypted" in r.run_cli("store", "encrypt").stdout
    assert "ok" in r.run_cli("config", "check").stdout

    r.start(listeners=("smtp", "imap"))
    small = encrypted_message(2_000, f"attached {MARKER} data".encode())
    large = encrypted_message(400_000, (f"binary {MARKER} payload " * 9000).encode())
    assert len(small) < 128 * 1024 < len(large)
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30) as s:
        s.sendmail("sender@remote.test", ["bob@example.test"], small)
        s.sendmail("sender@remote.test", ["bob@example.test"], large)
    wait_for(lambda: len(r.messages("bob@example.test")) == 2, what="both messages stored")

    m = imap_login(r)
    m.select("INBOX")
    for criteria in (f'SUBJECT "{MARKER}"', f'BODY "{MARKER}"', f'TEXT "{MARKER}"', f'HEADER Subject "{MARKER}"'):
        typ, data = m.uid("SEARCH", None, criteria)
        assert typ == "OK" and data[0].split() == [b"1", b"2"], (criteria, data)
    typ, data = m.uid("FETCH", "1:2", "(BODY.PEEK[])")
    bodies = [d[1] for d in data if isinstance(d, tuple)]
    # As received, after our trace headers.
    assert bodies[0].endswith(small) and bodies[1].endswith(large)
    # A range deep into the large message: read by seeking to its chunk.
    typ, data = m.uid("FETCH", "2", "(BODY.PEEK[]<300000.500>)")
    assert data[0][1] == bodies[1][300000:300500]
    m.logout()

    # With the server running (the WAL is there) and after it stopped.
    data_dir = r.dir / "data"
    assert any(p.name.endswith("-wal") for p in data_dir.iterdir())
    assert any(p.parent.name != "tmp" and p.is_file() for p in (data_dir / "blobs").rglob("*")), "the large message is a file"
    assert files_holding(data_dir, forms(MARKER)) == []
    r.stop()
    assert files_holding(data_dir, forms(MARKER)) == []


def test_the_search_finds_a_clear_store(rampart):
    """The scan above is not blind: on a clear store it finds the marker in every form."""
    r = rampart
    r.start()
    message = encrypted_message(2_000, f"attached {MARKER} data".encode())
    # The attachment's base64 is among the forms searched for.
    assert any(n in message for n in forms(MARKER) - {MARKER.encode(), MARKER.lower().encode()})
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30) as s:
        s.sendmail("sender@remote.test", ["bob@example.test"], message)
    wait_for(lambda: len(r.messages("bob@example.test")) == 1, what="stored")
    # Bodies are compressed even in a clear store; the headers, summaries and search words are
    # not.
    found = {n for _, n in files_holding(r.dir / "data", forms(MARKER))}
    assert MARKER.encode() in found


def test_missing_or_wrong_key_and_mode_mismatch_refuse_to_start(rampart, monkeypatch):
    r = rampart
    encrypt(r)
    key_file = r.dir / "master.key"
    good = key_file.read_text()

    key_file.unlink()
    log = start_fails(r)
    assert "no master key" in log and "rampart keys generate" in log
    assert r.run_cli("config", "check", check=False).returncode != 0

    r.run_cli("keys", "generate")
    again = r.run_cli("keys", "generate", check=False)
    assert again.returncode != 0 and "not overwritten" in again.stderr
    assert "does not open this store" in start_fails(r)
    assert "does not open" in r.run_cli("config", "check", check=False).stderr

    key_file.write_text(good)
    key_file.chmod(0o644)
    assert "chmod 600" in start_fails(r)
    key_file.chmod(0o600)

    r.set_config("store.encryption", "mode", '"off"')
    assert "is encrypted" in start_fails(r)
    r.set_config("store.encryption", "mode", '"server"')

    # The key from the environment instead of the file.
    key_file.unlink()
    monkeypatch.setenv("RAMPART_MASTER_KEY", good)
    r.start()
    r.stop()
    # Or from a systemd credential.
    monkeypatch.delenv("RAMPART_MASTER_KEY")
    creds = r.dir / "creds"
    creds.mkdir()
    (creds / "rampart-master-key").write_text(good)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    r.start()


def deliver_many(r, n):
    digests = {}
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30) as s:
        for i in range(n):
            msg = encrypted_message(150_000 if i % 2 else 3_000, f"part {i} {MARKER}".encode())
            s.sendmail("sender@remote.test", ["bob@example.test"], msg)
    wait_for(lambda: len(r.messages("bob@example.test")) == n, what="all stored")
    for uid, _, _, _, _ in r.messages("bob@example.test"):
        digests[uid] = hashlib.sha256(r.message("bob@example.test", uid)).hexdigest()
    return digests


def kill_at_intervals(r, *args):
    """Runs the command, killing it with SIGKILL after growing delays, until a run finishes."""
    delay = 0.02
    while True:
        cmd = [BIN, *args, "--config", str(r.config)]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=delay)
            assert p.returncode == 0, err
            return out.decode()
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        delay *= 2


def test_kill9_during_store_encrypt_and_keys_rotate_loses_nothing(rampart):
    r = rampart
    r.start()
    digests = deliver_many(r, 24)
    r.stop()
    r.run_cli("keys", "generate")
    r.set_config("store.encryption", "mode", '"server"')
    kill_at_intervals(r, "store", "encrypt")
    assert files_holding(r.dir / "data", forms(MARKER)) == []
    for uid, digest in digests.items():
        assert hashlib.sha256(r.message("bob@example.test", uid)).hexdigest() == digest

    first = (r.dir / "master.key").read_text()
    kill_at_intervals(r, "keys", "rotate")
    rotated = (r.dir / "master.key").read_text()
    lines = [l for l in rotated.splitlines() if l.startswith("rampart-master-key")]
    assert len(lines) == 1 and lines[0] not in first, "one new key, the old one dropped"
    r.start(listeners=("smtp", "imap"))
    for uid, digest in digests.items():
        assert hashlib.sha256(r.message("bob@example.test", uid)).hexdigest() == digest
    m = imap_login(r)
    m.select("INBOX")
    typ, data = m.uid("SEARCH", None, f'BODY "{MARKER}"')
    assert len(data[0].split()) == len(digests)
    m.logout()
    # The old key no longer opens the store.
    r.stop()
    (r.dir / "master.key").write_text(first)
    assert "does not open this store" in start_fails(r)


def while_mail_arrives(r, *command):
    """Runs the CLI command while a client keeps delivering mail (small and large in turn) to
    the running server; returns its output and how many messages were sent meanwhile."""
    stop, sent = threading.Event(), []

    def keep_sending():
        with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=30) as s:
            while not stop.is_set():
                s.sendmail("sender@remote.test", ["bob@example.test"], encrypted_message(150_000 if len(sent) % 2 else 3_000, b"during"))
                sent.append(1)

    t = threading.Thread(target=keep_sending)
    t.start()
    try:
        out = r.run_cli(*command).stdout
    finally:
        stop.set()
        t.join()
    return out, len(sent)


def key_lines(r):
    return [l for l in (r.dir / "master.key").read_text().splitlines() if l.startswith("rampart-master-key")]


def test_keys_rotate_beside_the_running_server_while_mail_arrives_and_across_kill9(rampart):
    """`keys rotate` with the server running: the server takes the new key at SIGHUP and
    rewraps every data key itself, mail delivered meanwhile stays readable, the old key leaves
    the file; a second rotation survives kill -9 of the server in the middle."""
    r = rampart
    encrypt(r)
    r.start(listeners=("smtp", "imap"))
    digests = deliver_many(r, 12)
    first = key_lines(r)
    out, sent = while_mail_arrives(r, "keys", "rotate")
    assert "beside the running server" in out
    rotated = key_lines(r)
    assert len(rotated) == 1 and rotated[0] not in first, "one new key, the old one dropped"
    r.wait_log("master_key_rewrapped")
    wait_for(lambda: len(r.messages("bob@example.test")) == 12 + sent, what="mail sent during the rotation stored")
    for uid, digest in digests.items():
        assert hashlib.sha256(r.message("bob@example.test", uid)).hexdigest() == digest

    # The second rotation: the server is killed once it has the new keys, then started again;
    # the command waits for the restarted server to finish and drops the old key.
    second = subprocess.Popen([BIN, "keys", "rotate", "--config", str(r.config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: len(key_lines(r)) == 2, what="the rotation's two keys in the file")
    r.kill9()
    r.start(listeners=("smtp", "imap"))
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert len(key_lines(r)) == 1 and key_lines(r)[0] not in rotated
    r.stop()
    r.start(listeners=("smtp", "imap"))
    for uid, digest in digests.items():
        assert hashlib.sha256(r.message("bob@example.test", uid)).hexdigest() == digest
    m = imap_login(r)
    m.select("INBOX")
    typ, data = m.uid("SEARCH", None, f'BODY "{MARKER}"')
    assert len(data[0].split()) == 12 + sent, "those delivered before and during the rotation"
    typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
    assert typ == "OK" and len([d for d in data if isinstance(d, tuple)]) == 12 + sent
    m.logout()


def test_store_encrypt_beside_the_running_server_while_mail_arrives_and_across_kill9(rampart):
    """`store encrypt` with the server running: the server converts its own store at SIGHUP
    while mail keeps arriving, nothing of the mail is left in clear (database, WAL, files),
    IMAP reads everything; a conversion interrupted by kill -9 of the server is finished by
    the next start."""
    r = rampart
    r.start(listeners=("smtp", "imap"))
    digests = deliver_many(r, 12)
    r.run_cli("keys", "generate")
    r.set_config("store.encryption", "mode", '"server"')
    out, sent = while_mail_arrives(r, "store", "encrypt")
    assert "converted by the running server" in out
    assert "event=store_encrypted" in r.log()
    assert files_holding(r.dir / "data", forms(MARKER)) == [], "with the server still running"
    wait_for(lambda: len(r.messages("bob@example.test")) == 12 + sent, what="mail sent during the conversion stored")
    for uid, digest in digests.items():
        assert hashlib.sha256(r.message("bob@example.test", uid)).hexdigest() == digest
    m = imap_login(r)
    m.select("INBOX")
    typ, data = m.uid("SEARCH", None, f'BODY "{MARKER}"')
    assert len(data[0].split()) == 12 + sent
    m.logout()
    r.stop()
    assert files_holding(r.dir / "data", forms(MARKER)) == []


def test_store_encrypt_beside_a_server_killed_in_the_middle(rampart):
    r = rampart
    r.start(listeners=("smtp", "imap"))
    digests = deliver_many(r, 24)
    r.run_cli("keys", "generate")
    r.set_config("store.encryption", "mode", '"server"')
    conv = subprocess.Popen([BIN, "store", "encrypt", "--config", str(r.config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: (r.dir / "data" / "store.key").exists(), what="the conversion requested")
    time.sleep(0.05)
    r.kill9()
    r.start(listeners=("smtp", "imap"))
    out, err = conv.communicate(timeout=60)
    assert conv.returncode == 0, err
    # Either run may have finished it: the killed server can complete 24 messages within the
    # 50 ms, and the restarted one then finds nothing to convert.
    wait_for(lambda: "event=store_encrypted" in r.log_path.read_text(errors="replace"), what="the conversion logged")
    assert files_holding(r.dir / "data", forms(MARKER)) == []
    for uid, digest in digests.items():
        assert hashlib.sha256(r.message("bob@example.test", uid)).hexdigest() == digest
    r.stop()


def test_init_encrypt_makes_an_encrypted_store_from_the_start(tmp_path):
    """`rampart init --encrypt`: a master key beside the data directory (mode 0600), server
    mode in the config, a store created encrypted; mail delivered leaves no marker."""
    d = tmp_path / "enc"
    out = subprocess.run([BIN, "init", "--dir", str(d), "--hostname", "mx.example.test", "--domain", "example.test", "--encrypt"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "master key" in out.stdout
    key = d / "master.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert 'mode = "server"' in (d / "rampart.toml").read_text()
    assert (d / "data" / "store.key").exists()
    check = subprocess.run([BIN, "config", "check", "--config", str(d / "rampart.toml")], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert files_holding(d / "data", {b"example.test"}) == [], "not even the domain's name is in clear"


def test_backup_of_an_encrypted_store_is_encrypted_and_restores(rampart, tmp_path):
    from conftest import Rampart

    r = rampart
    encrypt(r)
    r.start()
    digests = deliver_many(r, 4)
    backup = tmp_path / "backup"
    r.run_cli("backup", str(backup))
    assert "ok" in r.run_cli("backup", "verify", str(backup)).stdout
    assert (backup / "store.key").exists() and not (backup / "master.key").exists()
    assert files_holding(backup, forms(MARKER)) == []

    other = Rampart(tmp_path, name="restored")
    (other.dir / "data" / "rampart.db").unlink()
    for leftover in (other.dir / "data").iterdir():
        if leftover.is_dir():
            import shutil

            shutil.rmtree(leftover)
        else:
            leftover.unlink()
    (other.dir / "data").rmdir()
    os.replace(r.dir / "master.key", other.dir / "master.key")
    other.set_config("store.encryption", "mode", '"server"')
    assert "restored" in other.run_cli("restore", str(backup)).stdout
    for uid, digest in digests.items():
        assert hashlib.sha256(other.message("bob@example.test", uid)).hexdigest() == digest
