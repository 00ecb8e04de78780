"""A DNSSEC-signed test zone for DANE (RFC 7672): keys made and the zone signed with Debian's
ldnsutils (ldns-keygen, ldns-signzone, NSEC), served by NSD on a loopback port from a temp dir.

Next to the signed zone it can serve unsigned child zones (delegated without DS: insecure),
names whose signatures are corrupted (bogus), and zones NSD is told to load but cannot (it
answers SERVFAIL for them). `anchor` holds the zone's DNSKEY records, the trust anchor the
sender is given (`mta_sts.dane_trust_anchor`)."""

import base64
import hashlib
import socket
import subprocess
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from conftest import free_port


def tlsa_3_1_1(cert_path):
    """The DANE-EE SPKI SHA-256 record data (`3 1 1 HEX`) of a PEM certificate."""
    cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "3 1 1 " + hashlib.sha256(spki).hexdigest()


class SignedZone:
    def __init__(self, tmp_path, apex="dane.test"):
        self.dir = tmp_path / "nsd"
        self.dir.mkdir()
        self.apex = apex
        self.lines = ["@ SOA ns admin 1 3600 600 86400 300", "@ NS ns", "ns A 127.0.0.1"]
        self.children = {}
        self.failing = []
        self.corrupt = []
        self.proc = None
        self.port = None

    def add(self, line):
        """A record of the signed zone (names relative to the apex)."""
        self.lines.append(line)

    def insecure(self, child, *lines):
        """An unsigned zone CHILD.APEX, delegated without DS: its answers are insecure."""
        self.lines.append(f"{child} NS ns")
        self.children[f"{child}.{self.apex}"] = ["@ SOA ns." + self.apex + ". admin 1 3600 600 86400 300",
                                                 f"@ NS ns.{self.apex}.", *lines]

    def servfail(self, name):
        """NAME.APEX as a zone NSD cannot load: every query under it gets SERVFAIL."""
        self.lines.append(f"{name} NS ns")
        self.failing.append(f"{name}.{self.apex}")

    def bogus(self, name):
        """Corrupts the signatures over NAME.APEX's records after signing."""
        self.corrupt.append(f"{name}.{self.apex}.")

    def _sign(self):
        run = lambda *a: subprocess.run(a, cwd=self.dir, check=True, capture_output=True, text=True).stdout.strip()
        ksk = run("ldns-keygen", "-r", "/dev/urandom", "-a", "ECDSAP256SHA256", "-k", self.apex)
        zsk = run("ldns-keygen", "-r", "/dev/urandom", "-a", "ECDSAP256SHA256", self.apex)
        zone = self.dir / f"{self.apex}.zone"
        zone.write_text(f"$ORIGIN {self.apex}.\n$TTL 300\n" + "\n".join(self.lines) + "\n")
        run("ldns-signzone", "-o", self.apex, str(zone), zsk, ksk)
        signed = self.dir / f"{self.apex}.zone.signed"
        signed.write_text("".join(self._tamper(line) for line in signed.read_text().splitlines(keepends=True)))
        # The trust anchor: the zone's DNSKEY records (both: hickory looks for a DS record above a
        # non-root anchor whose DNSKEY set holds a key the anchor lacks), without ldns's comments.
        self.anchor = str(self.dir / "anchor.key")
        keys = [(self.dir / f"{k}.key").read_text().split(";")[0].strip() for k in (ksk, zsk)]
        (self.dir / "anchor.key").write_text("\n".join(keys) + "\n")
        for name, lines in self.children.items():
            (self.dir / f"{name}.zone").write_text(f"$ORIGIN {name}.\n$TTL 300\n" + "\n".join(lines) + "\n")

    def _tamper(self, line):
        fields = line.split()
        if len(fields) < 5 or fields[0] not in self.corrupt or fields[3] != "RRSIG":
            return line
        sig = bytearray(base64.b64decode(fields[-1]))
        sig[len(sig) // 2] ^= 0xFF
        return "\t".join(fields[:-1] + [base64.b64encode(bytes(sig)).decode()]) + "\n"

    def _conf(self):
        zones = [(self.apex, f"{self.apex}.zone.signed")] + [(n, f"{n}.zone") for n in self.children]
        zones += [(n, "missing.zone") for n in self.failing]
        d = self.dir
        return (f'server:\n  ip-address: 127.0.0.1@{self.port}\n  username: ""\n  chroot: ""\n  zonesdir: "{d}"\n'
                f'  pidfile: "{d}/nsd.pid"\n  database: ""\n  xfrdfile: "{d}/xfrd.state"\n'
                f'  zonelistfile: "{d}/zone.list"\n  logfile: "{d}/nsd.log"\n  server-count: 1\n'
                "remote-control:\n  control-enable: no\n"
                + "".join(f"zone:\n  name: {n}\n  zonefile: {f}\n" for n, f in zones))

    def start(self):
        self._sign()
        for _ in range(5):
            self.port = free_port(socket.SOCK_DGRAM)
            (self.dir / "nsd.conf").write_text(self._conf())
            self.proc = subprocess.Popen(["nsd", "-d", "-c", str(self.dir / "nsd.conf")], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.STDOUT)
            if self._answers():
                return self
            self.stop()
        raise AssertionError("nsd did not start: " + (self.dir / "nsd.log").read_text())

    def _answers(self):
        """Whether NSD answers the SOA query of the apex (over UDP), within a few seconds."""
        labels = b"".join(bytes([len(p)]) + p.encode() for p in self.apex.split(".")) + b"\0"
        query = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00\x06\x00\x01"
        deadline = time.time() + 5
        while time.time() < deadline and self.proc.poll() is None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.2)
                try:
                    s.sendto(query, ("127.0.0.1", self.port))
                    if s.recv(512)[:2] == b"\x12\x34":
                        return True
                except OSError:
                    pass
        return False

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
