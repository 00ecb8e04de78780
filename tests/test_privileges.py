"""Least privilege: started as root, `rampart serve` binds, opens its files, gives the data
directory to `server.user` and becomes it — no capabilities, no-new-privileges — and still
delivers; files the CLI creates as root meanwhile go to that user; a missing user or root
itself is refused unless `server.allow_root`."""

import os
import pathlib
import pwd
import shutil
import smtplib
import subprocess
import tempfile

import pytest

from conftest import BIN, Rampart, message_bytes


@pytest.fixture
def open_base():
    """A directory the service user can pass through (pytest's tmp_path is root's alone)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    try:
        pwd.getpwnam("rampart")
    except KeyError:
        pytest.skip("no user rampart: scripts/setup creates it")
    base = pathlib.Path(tempfile.mkdtemp(prefix="rampart-priv-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def status(pid):
    fields = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.split()
    return fields


@pytest.mark.sqlite_only
def test_started_as_root_it_becomes_the_service_user(open_base):
    user = pwd.getpwnam("rampart")
    r = Rampart(open_base)
    r.add_user("bob@example.test")
    assert os.stat(r.dir).st_gid == user.pw_gid, "init opens its directory to the service group"
    r.start("server.allow_root=false")
    try:
        s = status(r.proc.pid)
        assert s["Uid"] == [str(user.pw_uid)] * 4 and s["Gid"] == [str(user.pw_gid)] * 4
        assert s["Groups"] == [str(user.pw_gid)]
        assert s["CapEff"] == ["0000000000000000"] and s["CapPrm"] == ["0000000000000000"]
        assert s["NoNewPrivs"] == ["1"]
        assert "event=privileges_dropped user=rampart" in r.log()
        with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=10) as c:
            c.sendmail("a@remote.test", ["bob@example.test"], message_bytes(mid="<dropped@remote.test>"))
        # A large message imported by root while the server runs: its file is the server's.
        mbox = open_base / "in.mbox"
        mbox.write_text("From a@b.test Mon Nov 30 07:40:00 2026\nSubject: big\n\n" + ("z" * 900 + "\n") * 300)
        r.run_cli("import", "mbox", str(mbox), "--user", "bob@example.test")
        files = [p for p in (r.dir / "data").rglob("*") if ".probe" not in p.name]
        assert files and all(p.stat().st_uid == user.pw_uid for p in files), \
            [p for p in files if p.stat().st_uid != user.pw_uid]
        assert any(p.parent.parent.name == "blobs" and p.parent.name != "tmp" for p in files if p.is_file())
    finally:
        r.stop()
    assert "<dropped@remote.test>" in {m[3] for m in r.messages("bob@example.test")}


@pytest.mark.sqlite_only
def test_an_encrypted_store_rotates_its_key_beside_the_dropped_server(open_base):
    """The master key file goes to the service user at start, so the server can read it again
    at a reload: `keys rotate` run by root beside it completes, and the file stays the
    service user's, mode 0600."""
    user = pwd.getpwnam("rampart")
    r = Rampart(open_base)
    r.add_user("bob@example.test")
    r.run_cli("keys", "generate")
    r.set_config("store.encryption", "mode", '"server"')
    r.run_cli("store", "encrypt")
    key = r.dir / "master.key"
    r.start("server.allow_root=false")
    try:
        assert key.stat().st_uid == user.pw_uid
        with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=10) as c:
            c.sendmail("a@remote.test", ["bob@example.test"], message_bytes(mid="<enc@remote.test>", body=("y" * 70 + "\r\n") * 4000))
        out = r.run_cli("keys", "rotate").stdout
        assert "beside the running server" in out
        assert "event=master_key_rewrapped" in r.log() and "reload_failed" not in r.log()
        st = key.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (user.pw_uid, 0o600)
    finally:
        r.stop()
    assert "<enc@remote.test>" in {m[3] for m in r.messages("bob@example.test")}


def test_a_missing_user_or_root_is_refused(open_base):
    r = Rampart(open_base)
    for sets, expect in [(["server.allow_root=false", 'server.user="no-such-user-x"'], "server.user"),
                         (["server.allow_root=false", 'server.user="root"'], "server.user")]:
        args = [BIN, "serve", "--config", str(r.config), "--set", 'listener.smtp.bind=["127.0.0.1:0"]']
        for s in sets:
            args += ["--set", s]
        p = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and expect in p.stderr, p.stderr
