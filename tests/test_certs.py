"""The certificate store: `rampart cert ...`, SNI from the store (ECDSA and RSA side by side),
per-listener certificates, changes without a restart, CSRs signed by a test CA, expiry warnings.
"""

import re
import ssl
import socket
import subprocess
import time

from conftest import wait_for


def s_client(port, name=None, *args, starttls=False):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args]
    if name:
        cmd += ["-servername", name]
    if starttls:
        cmd += ["-starttls", "smtp"]
    return subprocess.run(cmd, input="QUIT\r\n", capture_output=True, text=True, timeout=30).stdout


def served(port, name=None, *args, starttls=False):
    """(subject, issuer, public key bits) of the certificate the server presents."""
    out = s_client(port, name, *args, starttls=starttls)
    subject = re.search(r"^subject=(.*)$", out, re.M)
    issuer = re.search(r"^issuer=(.*)$", out, re.M)
    bits = re.search(r"Server public key is (\d+) bit", out)
    assert subject and issuer and bits, out
    return subject.group(1), issuer.group(1), int(bits.group(1))


def cli_id(rampart, *args):
    return rampart.run_cli("cert", *args).stdout.strip().splitlines()[-1]


def test_sni_from_store_ecdsa_and_rsa_side_by_side(rampart):
    ec = cli_id(rampart, "self-signed", "mail.example.test")
    rsa = cli_id(rampart, "self-signed", "mail.example.test", "--key-type", "rsa-2048")
    rampart.run_cli("cert", "assign", ec, "--host", "mail.example.test")
    rampart.run_cli("cert", "assign", rsa, "--host", "mail.example.test")
    rampart.start(listeners=("smtp", "submissions", "imaps"))
    for port in (rampart.ports["submissions"], rampart.ports["imaps"]):
        # The client's signature schemes choose between the two.
        assert served(port, "mail.example.test", "-sigalgs", "ECDSA+SHA256")[2] == 256
        assert served(port, "mail.example.test", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256")[2] == 2048
        assert served(port, "mail.example.test", "-tls1_2", "-sigalgs", "RSA+SHA256")[2] == 2048
        # Other names and no name: the configured default.
        assert "mx.example.test" in served(port, "other.example.test")[0]
        assert "mx.example.test" in served(port)[0]
    # STARTTLS on the MX listener too.
    assert served(rampart.ports["smtp"], "mail.example.test", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256", starttls=True)[2] == 2048
    listing = rampart.run_cli("cert", "list").stdout
    assert f"{ec}\tecdsa-p256\tself-signed" in listing and "host mail.example.test" in listing
    for text in (listing, rampart.run_cli("cert", "show", rsa).stdout):
        assert "PRIVATE KEY" not in text


def test_changes_apply_without_restart_and_keep_connections(rampart):
    rampart.start(listeners=("smtp", "submissions"))
    port = rampart.ports["submissions"]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    live = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="mx.example.test")
    assert live.recv(1024).startswith(b"220")
    new = cli_id(rampart, "self-signed", "submit.example.test")
    rampart.run_cli("cert", "assign", new, "--listener", "submissions")
    # The listener's own default, for clients without SNI or with a name nothing else covers.
    wait_for(lambda: "submit.example.test" in served(port)[0], timeout=10, what="the listener's certificate")
    assert "submit.example.test" in served(port, "unknown.example.test")[0]
    # The store's certificate also serves the name it covers, on every listener.
    assert "submit.example.test" in served(rampart.ports["smtp"], "submit.example.test", starttls=True)[0]
    assert "mx.example.test" in served(rampart.ports["smtp"], starttls=True)[0]
    live.sendall(b"NOOP\r\n")
    assert live.recv(1024).startswith(b"250")
    rampart.run_cli("cert", "delete", new)
    wait_for(lambda: "mx.example.test" in served(port)[0], timeout=10, what="the default again")
    assert "certificates_reloaded" in rampart.log()
    live.sendall(b"NOOP\r\n")
    assert live.recv(1024).startswith(b"250")


def test_cli_refusals(rampart):
    r = rampart.run_cli("cert", "self-signed", "not a name", check=False)
    assert r.returncode != 0 and "host name" in r.stderr
    r = rampart.run_cli("cert", "csr", "a.example.test", "--key-type", "dsa", check=False)
    assert r.returncode != 0 and "--key-type" in r.stderr
    pending = rampart.run_cli("cert", "csr", "a.example.test").stdout
    assert pending.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    r = rampart.run_cli("cert", "assign", "1", "--host", "a.example.test", check=False)
    assert r.returncode != 0 and "waiting for its certificate" in r.stderr
    ok = cli_id(rampart, "self-signed", "b.example.test")
    r = rampart.run_cli("cert", "assign", ok, "--listener", "nope", check=False)
    assert r.returncode != 0 and "listener `nope`" in r.stderr
    r = rampart.run_cli("cert", "assign", ok, "--listener", "smtp", "--host", "x.example.test", check=False)
    assert r.returncode != 0
    r = rampart.run_cli("cert", "delete", "99", check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def test_csr_verified_signed_by_test_ca_and_imported(rampart, tmp_path):
    for key_type in ("ecdsa-p256", "rsa-2048"):
        r = rampart.run_cli("cert", "csr", "csr.example.test", "www.csr.example.test", "--key-type", key_type)
        (tmp_path / "req.pem").write_text(r.stdout)
        check = subprocess.run(["openssl", "req", "-in", "req.pem", "-verify", "-noout", "-text"], cwd=tmp_path,
                               capture_output=True, text=True, check=True)
        assert "verify OK" in check.stdout + check.stderr
        assert "DNS:csr.example.test, DNS:www.csr.example.test" in check.stdout
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "30", "-subj", "/CN=Rampart Test CA", cwd=tmp_path)
    # The last request (RSA) signed by the test CA, its SANs copied.
    openssl("x509", "-req", "-in", "req.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30",
            "-copy_extensions", "copy", "-out", "signed.pem", cwd=tmp_path)
    chain = (tmp_path / "signed.pem").read_text() + (tmp_path / "ca.pem").read_text()
    (tmp_path / "chain.pem").write_text(chain)
    cid = cli_id(rampart, "import", "--cert", str(tmp_path / "chain.pem"))
    shown = rampart.run_cli("cert", "show", cid).stdout
    assert "Rampart Test CA" in shown and "rsa-2048" in shown and "PRIVATE KEY" not in shown
    # Another CSR's key does not fit: importing without --key needs the right one.
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "o.key",
            "-out", "o.pem", "-days", "30", "-subj", "/CN=o.example.test", cwd=tmp_path)
    r = rampart.run_cli("cert", "import", "--cert", str(tmp_path / "o.pem"), check=False)
    assert r.returncode != 0 and "no pending CSR" in r.stderr
    other = cli_id(rampart, "import", "--cert", str(tmp_path / "o.pem"), "--key", str(tmp_path / "o.key"))
    assert "imported" in rampart.run_cli("cert", "show", other).stdout
    rampart.run_cli("cert", "assign", cid, "--host", "csr.example.test")
    rampart.start(listeners=("smtp", "submissions"))
    subject, issuer, bits = served(rampart.ports["submissions"], "csr.example.test")
    assert "Rampart Test CA" in issuer and bits == 2048
    verify = s_client(rampart.ports["submissions"], "csr.example.test", "-CAfile", str(tmp_path / "ca.pem"),
                      "-verify_hostname", "csr.example.test")
    assert "Verify return code: 0 (ok)" in verify


def test_expiry_metric_log_and_postmaster_mail(rampart):
    rampart.add_user("postmaster@example.test")
    soon = cli_id(rampart, "self-signed", "soon.example.test", "--days", "5")
    later = cli_id(rampart, "self-signed", "later.example.test", "--days", "20")
    rampart.start(listeners=("smtp", "metrics"))
    rampart.wait_log(rf"event=certificate_expiring id={soon} names=soon.example.test days_left=5", timeout=20)
    rampart.wait_log(rf"event=certificate_expiring id={later} names=later.example.test days_left=20", timeout=20)
    subjects = wait_for(lambda: [m[4] for m in rampart.messages("postmaster@example.test")] or None, what="notice")
    wait_for(lambda: len(rampart.messages("postmaster@example.test")) == 2, what="both notices")
    subjects = sorted(m[4] for m in rampart.messages("postmaster@example.test"))
    assert subjects == [f"Certificate {soon} expires in 5 days", f"Certificate {later} expires in 20 days"]
    import urllib.request
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{rampart.ports['metrics']}/metrics", timeout=10).read().decode()
    assert re.search(rf'rampart_certificate_expiry_seconds{{[^}}]*id="{soon}"[^}}]*}} 4\d{{5}}', metrics), metrics
    # Once each: a restart sends nothing new.
    rampart.stop()
    rampart.start(listeners=("smtp",))
    time.sleep(5)
    assert "certificate_expiring" not in rampart.log()
    assert len(rampart.messages("postmaster@example.test")) == 2


def test_web_api_same_operations_never_keys(rampart, tmp_path):
    import requests
    import urllib3
    urllib3.disable_warnings()
    # An ACME order asked for below must go nowhere: no CA listens on port 9.
    rampart.start('acme.directory="https://127.0.0.1:9/dir"', listeners=("smtp", "submissions", "https"))
    token = rampart.run_cli("api-token", "add", "--name", "certs", "--scope", "certificates").stdout.strip().splitlines()[-1]
    other = rampart.run_cli("api-token", "add", "--name", "dom", "--scope", "domains").stdout.strip().splitlines()[-1]
    base = f"https://127.0.0.1:{rampart.ports['https']}/api/v1/certificates"

    def call(method, path="", token=token, **kw):
        return requests.request(method, base + path, headers={"Authorization": f"Bearer {token}"}, verify=False,
                                timeout=30, **kw)

    assert call("GET", token=other).status_code == 403
    r = call("POST", "/self-signed", json={"names": ["web.example.test"], "key_type": "rsa-2048", "days": 30})
    assert r.status_code == 200, r.text
    sid = r.json()["id"]
    r = call("POST", "/csr", json={"names": ["webcsr.example.test"]})
    assert r.status_code == 200 and r.json()["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert call("POST", "/self-signed", json={"names": ["bad name"]}).status_code == 400
    r = call("POST", f"/{sid}/uses", json={"usage": "listener", "target": "submissions"})
    assert r.status_code == 200, r.text
    assert call("POST", f"/{sid}/uses", json={"usage": "listener", "target": "nope"}).status_code == 400
    listed = call("GET").json()
    mine = next(c for c in listed if c["id"] == sid)
    assert mine["used_by"] == ["listener submissions"] and mine["key_type"] == "rsa-2048" and not mine["pending"]
    assert "PRIVATE KEY" not in call("GET").text and "PRIVATE KEY" not in call("GET", f"/{sid}").text
    # The CLI sees what the API did, and the server serves it without a restart.
    assert "listener submissions" in rampart.run_cli("cert", "list").stdout
    wait_for(lambda: "web.example.test" in served(rampart.ports["submissions"])[0], timeout=10, what="served")
    # Import with a key, then delete.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", "k.pem", "-out", "c.pem", "-days", "3", "-subj", "/CN=imp.example.test"],
                   cwd=tmp_path, check=True, capture_output=True)
    r = call("POST", json={"cert": (tmp_path / "c.pem").read_text(), "key": (tmp_path / "k.pem").read_text()})
    assert r.status_code == 200, r.text
    imported = r.json()["id"]
    assert call("GET", f"/{imported}").json()["names"] == ["imp.example.test"]
    assert call("DELETE", f"/{imported}").status_code == 200
    assert call("GET", f"/{imported}").status_code == 404
    assert call("POST", "/acme", json={"names": ["acme.example.test"]}).json()["request"] >= 1
    rampart.wait_log(r"event=acme_failed names=acme.example.test", timeout=30)
