"""`rampart backup`, `backup verify` and `restore`: a copy taken while mail is being delivered
holds every message acknowledged before it started, verifies, restores into an empty data
directory, and a server runs on the result."""

import json
import shutil
import smtplib
import threading
import time

import pytest

from conftest import Rampart, message_bytes

# `rampart backup` copies the embedded store (PostgreSQL has pg_dump).
pytestmark = pytest.mark.sqlite_only


def _deliver(port, stop, acked, big_every=5):
    """Sends until `stop` is set; records the Message-IDs the server acknowledged. Every
    `big_every`-th message is over 128 KiB, so it is stored as a file rather than inline."""
    n = 0
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        while not stop.is_set():
            mid = f"<load-{n}@remote.test>"
            body = ("x" * 998 + "\r\n") * 200 if n % big_every == 0 else "Hello.\r\n"
            s.sendmail("a@remote.test", ["bob@example.test"], message_bytes(mid=mid, body=body))
            acked.append((time.monotonic(), mid))
            n += 1


def test_backup_during_delivery_restores_every_acknowledged_message(rampart, tmp_path):
    rampart.start()
    stop, acked = threading.Event(), []
    senders = [threading.Thread(target=_deliver, args=(rampart.ports["smtp"], stop, acked)) for _ in range(2)]
    for t in senders:
        t.start()
    while len(acked) < 30:
        time.sleep(0.05)
    started = time.monotonic()
    backup = tmp_path / "backup"
    out = rampart.run_cli("backup", str(backup)).stdout
    assert "files" in out
    while len(acked) < len([a for a in acked if a[0] < started]) + 10:
        time.sleep(0.05)  # delivery went on during and after the backup
    stop.set()
    for t in senders:
        t.join()
    before = {mid for t, mid in acked if t < started}

    assert "ok" in rampart.run_cli("backup", "verify", str(backup)).stdout
    manifest = json.loads((backup / "manifest.json").read_text())
    assert any(f["path"].startswith("blobs/") for f in manifest["files"]), "large messages are files"

    # A second installation, restored from the copy.
    other = Rampart(tmp_path, name="restored")
    shutil.rmtree(other.dir / "data")
    assert "restored" in other.run_cli("restore", str(backup)).stdout
    stored = {m[3] for m in other.messages("bob@example.test")}
    missing = before - stored
    assert not missing, f"{len(missing)} messages acknowledged before the backup are missing"
    assert stored <= {mid for _, mid in acked}
    big = next(m for m in other.messages("bob@example.test") if m[2] > 128 * 1024)
    assert other.message("bob@example.test", big[0]).count(b"x" * 998) == 200
    other.start(listeners=("smtp",))
    with smtplib.SMTP("127.0.0.1", other.ports["smtp"], timeout=10) as s:
        s.sendmail("a@remote.test", ["bob@example.test"], message_bytes(mid="<after@remote.test>"))
    assert "<after@remote.test>" in {m[3] for m in other.messages("bob@example.test")}
    other.stop()


def test_verify_finds_a_damaged_backup_and_restore_refuses_it(rampart, tmp_path):
    rampart.start()
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=10) as s:
        s.sendmail("a@remote.test", ["bob@example.test"], message_bytes(body=("y" * 900 + "\r\n") * 200))
    backup = tmp_path / "backup"
    rampart.run_cli("backup", str(backup))
    blob = next(p for p in (backup / "blobs").rglob("*") if p.is_file())
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))
    r = rampart.run_cli("backup", "verify", str(backup), check=False)
    assert r.returncode != 0 and "content differs" in r.stderr

    other = Rampart(tmp_path, name="restored")
    shutil.rmtree(other.dir / "data")
    r = other.run_cli("restore", str(backup), check=False)
    assert r.returncode != 0 and "not a sound backup" in r.stderr
    assert not (other.dir / "data" / "rampart.db").exists()

    # Never over existing files: not into a used backup directory, not over a data directory.
    r = rampart.run_cli("backup", str(backup), check=False)
    assert r.returncode != 0 and "not empty" in r.stderr
    good = tmp_path / "good"
    rampart.run_cli("backup", str(good))
    r = rampart.run_cli("restore", str(good), check=False)
    assert r.returncode != 0 and "not empty" in r.stderr
    assert len(rampart.messages("bob@example.test")) == 1
