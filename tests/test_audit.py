"""`rampart audit` against the test DNS: a deliberately weak zone (SPF +all, no DMARC, the DKIM
key unpublished) gives each finding and a non-zero exit; the zone `rampart dns records`
prints gives no high finding. The open-relay attempt runs against the live MX listener. Passwords older than
`auth.password_max_age_days` (by the date the store records at every password change) are a
finding."""

import json
import re
import sqlite3
import time

import pytest

from conftest import Dns


def audit(rampart, dns):
    rampart.set_config("dns", "nameservers", f'["{dns.address}"]')
    r = rampart.run_cli("audit", "--domain", "example.test", "--json", "--smtp", f"127.0.0.1:{rampart.ports['smtp']}",
                        check=False)
    findings = json.loads(r.stdout)["findings"]
    return r.returncode, {(f["severity"], f["area"], f["problem"]) for f in findings}


def problems(found, severity=None):
    return [p for s, _, p in found if severity is None or s == severity]


def test_a_weak_zone_is_reported(rampart, tmp_path):
    dns = Dns(tmp_path)
    dns.mx("example.test", "mx.example.test")
    dns.a("mx.example.test")
    dns.txt("example.test", "v=spf1 +all")
    dns.start()
    rampart.run_cli("user", "role", "bob@example.test", "admin")
    try:
        rampart.start()
        code, found = audit(rampart, dns)
    finally:
        dns.stop()
    assert code != 0
    assert ("high", "web", "an administrator without two-factor login") in found, found
    high = problems(found, "high")
    assert any("SPF ends in +all" in p for p in high), found
    assert any("no DMARC policy" in p for p in high), found
    assert any("DKIM key is not published" in p for p in high), found
    assert any("self-signed" in p for p in problems(found, "medium")), found
    assert any("no backup" in p for p in problems(found, "medium")), found
    assert not [f for f in found if f[1] == "relay"], "the MX refuses to relay"


@pytest.mark.sqlite_only
def test_the_recommended_zone_has_no_high_finding(rampart, tmp_path):
    records = rampart.run_cli("dns", "records", "example.test").stdout
    dns = Dns(tmp_path)
    dns.mx("example.test", "mx.example.test")
    # Not a loopback address: the resolver answers "localhost" for those itself.
    dns.a("mx.example.test", "192.0.2.10")  # and its PTR
    for line in records.splitlines():
        if line.startswith(";") or "\tTXT\t" not in line:
            continue
        name = line.split("\t")[0].rstrip(".")
        dns.txt(name, *re.findall(r'"([^"]*)"', line))
    dns.txt("_mta-sts.example.test", "v=STSv1; id=1")
    dns.start()
    try:
        rampart.run_cli("backup", str(tmp_path / "backup"))
        rampart.start()
        code, found = audit(rampart, dns)
    finally:
        dns.stop()
    assert not problems(found, "high"), found
    assert code == 0
    assert not [f for f in found if f[1] in ("dns", "backup")], found


@pytest.mark.sqlite_only
def test_old_passwords_by_policy_date(rampart, tmp_path):
    dns = Dns(tmp_path)
    dns.start()
    rampart.set_config("dns", "nameservers", f'["{dns.address}"]')

    def password_findings():
        r = rampart.run_cli("audit", "--domain", "example.test", "--json", check=False)
        return [f for f in json.loads(r.stdout)["findings"] if f["area"] == "passwords"]

    try:
        assert not password_findings(), "auth.password_max_age_days is off by default"
        rampart.set_config("auth", "password_max_age_days", "30")
        # bob's password was set 40 days ago; alice's before Rampart recorded the date.
        with sqlite3.connect(rampart.dir / "data" / "rampart.db") as db:
            db.execute("UPDATE accounts SET password_changed = ? WHERE address = 'bob@example.test'", (int(time.time()) - 40 * 86400,))
            db.execute("UPDATE accounts SET password_changed = NULL WHERE address = 'alice@example.test'")
        rampart.add_user("carol@example.test")
        findings = password_findings()
        assert [(f["severity"], f["subject"]) for f in findings] == [("medium", "bob@example.test"), ("low", "alice@example.test")], findings
        assert "older than 30 days" in findings[0]["problem"]
        # A new password dates both again.
        for user in ("bob@example.test", "alice@example.test"):
            rampart.run_cli("user", "passwd", user, "--password-stdin", input="a fresh tangerine vortex 42\n")
        assert not password_findings()
    finally:
        dns.stop()


def test_store_certificates_are_audited(rampart, tmp_path):
    """The audit reads the store's certificates as well as the [tls] files: one about to
    expire, self-signed and used by the smtp listener, is two findings naming it."""
    soon = rampart.run_cli("cert", "self-signed", "soon.example.test", "--days", "5").stdout.strip()
    rampart.run_cli("cert", "assign", soon, "--listener", "smtp")
    dns = Dns(tmp_path)
    dns.start()
    try:
        rampart.set_config("dns", "nameservers", f'["{dns.address}"]')
        r = rampart.run_cli("audit", "--domain", "example.test", "--json", check=False)
    finally:
        dns.stop()
    tls = [(f["severity"], f["problem"]) for f in json.loads(r.stdout)["findings"]
           if f["area"] == "tls" and f["subject"] == f"certificate #{soon} (soon.example.test)"]
    assert ("medium", "the certificate expires in 4 days") in tls or ("medium", "the certificate expires in 5 days") in tls, tls
    assert any(s == "medium" and p.startswith("self-signed") for s, p in tls), tls
