"""Running under systemd: the unit file passes `systemd-analyze verify` and keeps its
hardening, and the server speaks sd_notify (READY, RELOADING then READY on SIGHUP, STOPPING)
to the socket in $NOTIFY_SOCKET."""

import pathlib
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import BIN

UNIT = pathlib.Path(__file__).resolve().parent.parent / "contrib" / "systemd" / "rampart.service"


def unit_keys():
    keys = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            keys.setdefault(k, []).append(v)
    return keys


def test_the_unit_file_verifies_and_is_hardened(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("needs systemd-analyze (Debian's systemd package)")
    # verify wants the binary the unit names to exist.
    unit = tmp_path / "rampart.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/rampart", BIN))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    keys = unit_keys()
    assert keys["Type"] == ["notify"] and keys["User"] == ["rampart"]
    assert keys["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert keys["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for key, value in [("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("PrivateDevices", "yes"),
                       ("NoNewPrivileges", "yes"), ("MemoryDenyWriteExecute", "yes"), ("RestrictNamespaces", "yes"),
                       ("SystemCallArchitectures", "native")]:
        assert keys[key] == [value], key
    assert "@system-service" in keys["SystemCallFilter"]
    assert keys["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert keys["ReadWritePaths"] == ["/var/lib/rampart /var/log/rampart"]
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60)
    score = float(r.stdout.rsplit("Overall exposure level for rampart.service:", 1)[1].split()[0])
    assert score <= 2.0, r.stdout  # docs/architecture.md records it: 1.4


def test_the_server_tells_systemd_its_state(rampart, tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    rampart.start()
    assert b"READY=1" in sock.recv(4096)
    rampart.proc.send_signal(signal.SIGHUP)
    assert sock.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
    assert sock.recv(4096) == b"READY=1"
    rampart.proc.send_signal(signal.SIGTERM)
    assert sock.recv(4096) == b"STOPPING=1"
    rampart.proc.wait(30)
