"""The client certificate toward a smart host, from the store: `rampart cert assign ID
--smart-host HOST` makes the queue present it to a smart host that requires one."""

import ssl
import subprocess

from aiosmtpd.controller import Controller

from conftest import free_port, wait_for
from peers import Recorder
from test_queue import sender, start_sender, submit  # noqa: F401 (the fixture)


def test_smart_host_gets_the_assigned_client_certificate(tmp_path, dns, sender):  # noqa: F811
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", "client.key", "-out", "client.pem", "-days", "3", "-subj", "/CN=client.example.test",
                    "-addext", "extendedKeyUsage=clientAuth"], cwd=tmp_path, check=True, capture_output=True)
    cid = sender.run_cli("cert", "import", "--cert", str(tmp_path / "client.pem"), "--key",
                         str(tmp_path / "client.key")).stdout.strip()
    sender.run_cli("cert", "assign", cid, "--smart-host", "127.0.0.1")
    assert "smart-host 127.0.0.1" in sender.run_cli("cert", "show", cid).stdout
    # A smart host that accepts only this client certificate.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sender.ca, str(sender.dir / "tls" / "key.pem"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(str(tmp_path / "client.pem"))
    handler, port = Recorder(), free_port()
    peer = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="peer.test", ssl_context=ctx)
    peer.start()
    try:
        dns.start()
        route = f'queue.route=[{{domains = ["*"], host = "127.0.0.1", port = {port}, tls = "implicit"}}]'
        start_sender(sender, dns, route, ca=sender.ca)
        submit(sender, ["someone@anywhere.test"], subject="with a client certificate")
        wait_for(lambda: handler.messages, what="delivery to the smart host")
        assert handler.messages[0][1] == ["someone@anywhere.test"]
    finally:
        peer.stop()
