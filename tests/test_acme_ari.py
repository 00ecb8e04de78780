"""ARI (RFC 9773) against the real Pebble: renewal when the CA's suggested window says so, in
addition to the two-thirds-of-lifetime rule.

Debian's Pebble 2.4.0 has no renewalInfo endpoint, so the server is pointed at a small HTTPS
proxy of Pebble's directory document that adds `renewalInfo` (a local endpoint the test
answers, or a closed port for "ARI down"); every other URL in the directory stays Pebble's, so
accounts, orders and challenges run against the real Pebble.
"""

import datetime
import http.server
import json
import re
import ssl
import threading
import time
import urllib.request

from conftest import free_port, wait_for
from test_acme import NAME, acme_env, serial, start  # noqa: F401 (acme_env is a fixture)

HOUR = 3600


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class AriProxy:
    """Serves /dir (Pebble's directory plus renewalInfo) and /ari/CERT-ID (windows(cert_id) →
    (start, end) as Unix times, with Retry-After: retry_after). `hits` lists the ids asked."""

    def __init__(self, pebble, windows=None, retry_after=HOUR):
        self.pebble, self.windows, self.retry_after = pebble, windows, retry_after
        self.hits = []
        self.ca = pebble.ca
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/dir":
                    return self.send(200, proxy.directory_document())
                m = re.fullmatch(r"/ari/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)", self.path)
                if not m or proxy.windows is None:
                    return self.send(404, {"type": "urn:ietf:params:acme:error:malformed"})
                proxy.hits.append(m.group(1))
                begin, end = proxy.windows(m.group(1))
                self.send(200, {"suggestedWindow": {"start": rfc3339(begin), "end": rfc3339(end)}},
                          {"Retry-After": str(proxy.retry_after)})

            def send(self, code, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # Pebble's own HTTPS certificate (127.0.0.1, from the CA given as acme.ca_roots).
        tls.load_cert_chain(pebble.dir / "cert.pem", pebble.dir / "key.pem")
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        # ARI down: renewalInfo names a port nothing listens on.
        self.ari_base = f"https://127.0.0.1:{self.port}/ari" if windows else f"https://127.0.0.1:{free_port()}/ari"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def directory_document(self):
        trust = ssl.create_default_context(cafile=self.pebble.ca)
        with urllib.request.urlopen(self.pebble.directory, context=trust, timeout=10) as r:
            doc = json.load(r)
        assert "renewalInfo" not in doc, "this Pebble has ARI: test it directly"
        doc["renewalInfo"] = self.ari_base
        return doc

    @property
    def directory(self):
        return f"https://127.0.0.1:{self.port}/dir"

    def stop(self):
        self.server.shutdown()


def issued(rampart):
    return [int(i) for i in re.findall(r"event=acme_issued id=(\d+)", rampart.log())]


def test_ari_window_in_the_past_renews_now_and_retry_after_is_honoured(rampart, acme_env):
    ports, make = acme_env
    pebble = make()  # Pebble's default lifetime (years): the lifetime rule stays far away
    now = time.time()
    first_id = []
    answer = threading.Event()

    def windows(cert_id):
        # The first certificate is overdue (once the test has seen it served); its successor
        # is due in a year.
        first_id[:] = first_id or [cert_id]
        if cert_id != first_id[0]:
            return (now + 365 * 86400, now + 366 * 86400)
        answer.wait(30)
        return (now - 2 * HOUR, now - HOUR)

    ari = AriProxy(pebble, windows)
    try:
        start(rampart, ports, ari, "tls-alpn-01", f'acme.hosts=["{NAME}"]')
        rampart.wait_log(rf"event=acme_issued id=\d+ names={NAME}", timeout=60)
        port = rampart.ports["submissions"]
        first = wait_for(lambda: "Pebble" in serial(port) and serial(port), timeout=10, what="the first certificate")
        old = issued(rampart)[0]
        answer.set()
        rampart.wait_log(rf'event=acme_renewal_due id={old} names={NAME} reason="?ari', timeout=30)
        second = wait_for(lambda: (s := serial(port)) != first and s, timeout=60, what="the renewed certificate")
        assert "Pebble Intermediate CA" in second
        new = wait_for(lambda: len(issued(rampart)) == 2 and issued(rampart)[1], timeout=10, what="the second order")
        # The old certificate stays in the store; its uses moved to the new one.
        listed = rampart.run_cli("cert", "list").stdout
        assert re.search(rf"^{old}\tecdsa-p256\tacme\t.*\t-$", listed, re.M), listed
        assert re.search(rf"^{new}\tecdsa-p256\tacme\t.*host {NAME}", listed, re.M), listed
        # The new certificate's window is asked once, then not again before its Retry-After
        # (an hour), and it is not renewed.
        wait_for(lambda: len(set(ari.hits)) == 2, timeout=20, what="the new certificate's window")
        time.sleep(8)
        assert len(ari.hits) == 2, ari.hits
        assert issued(rampart) == [old, new]
        assert "event=acme_ari_failed" not in rampart.log()
    finally:
        ari.stop()


def test_ari_window_in_the_future_does_not_renew(rampart, acme_env):
    ports, make = acme_env
    pebble = make()
    now = time.time()
    ari = AriProxy(pebble, lambda _id: (now + 300 * 86400, now + 301 * 86400), retry_after=1)
    try:
        start(rampart, ports, ari, "tls-alpn-01", f'acme.hosts=["{NAME}"]')
        rampart.wait_log(rf"event=acme_issued id=\d+ names={NAME}", timeout=60)
        m = rampart.wait_log(r"event=acme_ari_window id=\d+ .*renew_at=(\d+)", timeout=30)
        assert now + 300 * 86400 - 5 <= int(m.group(1)) < now + 301 * 86400 + 5
        time.sleep(8)
        assert len(issued(rampart)) == 1
        # Retry-After: 1 is clamped to a minute: asked once in these seconds.
        assert len(ari.hits) == 1, ari.hits
        assert "acme_renewal_due" not in rampart.log()
    finally:
        ari.stop()


def test_ari_down_leaves_the_lifetime_rule_in_charge(rampart, acme_env):
    ports, make = acme_env
    # A 30-second lifetime: the two-thirds rule renews 20 seconds after issuance.
    pebble = make(validity=30)
    ari = AriProxy(pebble, windows=None)
    try:
        start(rampart, ports, ari, "tls-alpn-01", f'acme.hosts=["{NAME}"]')
        rampart.wait_log(rf"event=acme_issued id=\d+ names={NAME}", timeout=60)
        rampart.wait_log(rf"event=acme_ari_failed id=\d+ names={NAME} attempt=1", timeout=30)
        rampart.wait_log(rf'event=acme_renewal_due id=\d+ names={NAME} reason="?lifetime', timeout=60)
        wait_for(lambda: len(issued(rampart)) >= 2, timeout=60, what="the renewal by the lifetime rule")
    finally:
        ari.stop()
