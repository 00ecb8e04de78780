"""ACME against Pebble (Debian's package): issuance by TLS-ALPN-01 and HTTP-01 answered by the
real listeners, the new certificate served on the mail listeners, renewal forced by a short
lifetime, and Pebble down: the old certificate stays and the failure is logged.

Pebble runs from a temp dir on ephemeral ports; its validation resolves names through the
test's dnsmasq, which points them at 127.0.0.1, and dials the server's https (TLS-ALPN-01)
or http (HTTP-01) listener, bound to ports chosen before Pebble starts.
"""

import json
import re
import subprocess
import time
import urllib.request

import pytest

from conftest import free_port, wait_for
from test_certs import served

NAME = "mail.example.test"


class Pebble:
    def __init__(self, tmp_path, https_port, http_port, dns, validity=None):
        self.dir = tmp_path / "pebble"
        self.dir.mkdir()
        self.https_port, self.http_port, self.dns, self.validity = https_port, http_port, dns, validity
        self.proc = None
        # Pebble's own HTTPS certificate, from a CA the server is told to trust (acme.ca_roots).
        run = lambda *a: subprocess.run(["openssl", *a], cwd=self.dir, check=True, capture_output=True)
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=Pebble HTTPS test CA")
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem", "-out",
            "req.pem", "-subj", "/CN=127.0.0.1")
        (self.dir / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run("x509", "-req", "-in", "req.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "ext.cnf", "-out", "cert.pem")
        self.ca = str(self.dir / "ca.pem")

    def start(self):
        for _ in range(5):
            self.port, self.management = free_port(), free_port()
            config = {"pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.management}",
                "certificate": str(self.dir / "cert.pem"), "privateKey": str(self.dir / "key.pem"),
                "httpPort": self.http_port, "tlsPort": self.https_port,
                "ocspResponderURL": "", "externalAccountBindingRequired": False,
            }}
            if self.validity:
                config["pebble"]["certificateValidityPeriod"] = self.validity
            (self.dir / "config.json").write_text(json.dumps(config))
            env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PATH": "/usr/bin:/bin"}
            self.log = open(self.dir / "pebble.log", "ab")
            self.proc = subprocess.Popen(["pebble", "-config", str(self.dir / "config.json"), "-dnsserver", self.dns],
                                         cwd=self.dir, env=env, stdout=self.log, stderr=subprocess.STDOUT)
            deadline = time.time() + 15
            while time.time() < deadline and self.proc.poll() is None:
                if "ACME directory available" in (self.dir / "pebble.log").read_text(errors="replace"):
                    return self
                time.sleep(0.05)
            self.stop()
        raise AssertionError("pebble did not start: " + (self.dir / "pebble.log").read_text(errors="replace"))

    @property
    def directory(self):
        return f"https://127.0.0.1:{self.port}/dir"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture
def acme_env(tmp_path, dns):
    dns.a(NAME)
    dns.start()
    ports = {"https": free_port(), "http": free_port()}
    pebbles = []

    def make(validity=None):
        p = Pebble(tmp_path, ports["https"], ports["http"], dns.address, validity).start()
        pebbles.append(p)
        return p

    yield ports, make
    for p in pebbles:
        p.stop()


def start(rampart, ports, pebble, challenge, *sets):
    rampart.start(
        f'listener.https.bind=["127.0.0.1:{ports["https"]}"]',
        f'listener.http.bind=["127.0.0.1:{ports["http"]}"]',
        f'acme.directory="{pebble.directory}"',
        f'acme.ca_roots="{pebble.ca}"',
        f'acme.challenge="{challenge}"',
        'acme.contact=["mailto:postmaster@example.test"]',
        *sets,
        listeners=("smtp", "submissions", "imaps", "https", "http"),
    )


@pytest.mark.parametrize("challenge", ["tls-alpn-01", "http-01"])
def test_cert_acme_orders_now_and_serves_on_mail_listeners(rampart, acme_env, challenge):
    ports, make = acme_env
    pebble = make()
    start(rampart, ports, pebble, challenge)
    r = rampart.run_cli("cert", "acme", NAME, "--wait", "90")
    cid = r.stdout.strip()
    shown = rampart.run_cli("cert", "show", cid).stdout
    assert "source: acme" in shown and "Pebble Intermediate CA" in shown and f"host {NAME}" in shown
    assert "PRIVATE KEY" not in shown
    for port in (rampart.ports["submissions"], rampart.ports["imaps"], rampart.ports["https"]):
        subject, issuer, _ = served(port, NAME)
        assert "Pebble Intermediate CA" in issuer, issuer
    assert "Pebble Intermediate CA" in served(rampart.ports["smtp"], NAME, starttls=True)[1]
    # Names nothing covers keep the configured default.
    assert "mx.example.test" in served(rampart.ports["submissions"], "other.example.test")[0]
    rampart.wait_log(rf"event=acme_issued id={cid} names={NAME}")
    if challenge == "http-01":
        # Outside an order, the challenge path answers 404 and the rest still redirects.
        url = f"http://127.0.0.1:{rampart.ports['http']}/.well-known/acme-challenge/nothing"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url, timeout=10)
        assert e.value.code == 404


def serial(port):
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", NAME],
                         input="", capture_output=True, text=True, timeout=30).stdout
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    assert pem, out
    return subprocess.run(["openssl", "x509", "-noout", "-serial", "-issuer"], input=pem.group(0),
                          capture_output=True, text=True, check=True).stdout


def test_hosts_ordered_at_start_renewed_and_kept_when_the_ca_is_down(rampart, acme_env):
    ports, make = acme_env
    # A 30-second lifetime: renewal is due 20 seconds after issuance.
    pebble = make(validity=30)
    start(rampart, ports, pebble, "tls-alpn-01", f'acme.hosts=["{NAME}"]')
    rampart.wait_log(rf"event=acme_issued id=\d+ names={NAME}", timeout=60)
    port = rampart.ports["submissions"]
    first = wait_for(lambda: "Pebble" in serial(port) and serial(port), timeout=10, what="the first certificate")
    # Renewed by itself: a new serial, still Pebble's.
    second = wait_for(lambda: (s := serial(port)) != first and s, timeout=60, what="the renewed certificate")
    assert "Pebble Intermediate CA" in second
    assert len(re.findall(r"event=acme_issued", rampart.log())) >= 2
    # The CA goes away: the next renewal fails, is logged, and the current certificate stays.
    pebble.stop()
    rampart.wait_log(rf"event=acme_failed names={NAME} attempt=1", timeout=60)
    assert serial(port) == second
