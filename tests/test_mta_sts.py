"""MTA-STS (RFC 8461) for outbound delivery: the sender looks up `_mta-sts.DOMAIN`, fetches the
policy over HTTPS from `mta-sts.DOMAIN` (a test CA's certificate, trusted through
queue.extra_ca_file), and under `enforce` uses only listed MX hosts with a certificate valid for
their name, keeping the message queued (4xx) otherwise; under `testing` it delivers and reports.
The test DNS (dnsmasq) points every name at 127.0.0.1. Inbound: the policy each local domain
serves and the records `rampart dns records` prints, read with postfix-mta-sts-resolver's
parsers."""

import email
import gzip
import http.client
import json
import re
import smtplib
import socket
import ssl

import pytest
from postfix_mta_sts_resolver.constants import HARD_RESP_LIMIT as MAX_POLICY
from postfix_mta_sts_resolver.utils import parse_mta_sts_policy, parse_mta_sts_record

from conftest import Rampart, wait_for
from peers import Peer
from test_queue import SUBMISSION, submit
from tlstest import PolicyHost, PrivateCa, ReportReceiver


@pytest.fixture
def sender(tmp_path):
    r = Rampart(tmp_path, name="sender")
    r.add_user("bob@example.test")
    yield r
    r.stop()


@pytest.fixture
def ca(tmp_path):
    return PrivateCa(tmp_path)


def policy(mode, *mx, max_age=86400):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n" % (mode, "".join(f"mx: {m}\r\n" for m in mx), max_age)


def publish(dns, domain="sts.test", mx="mx.sts.test", sts_id="20261130T1", tlsrpt=None):
    if tlsrpt:
        dns.txt(f"_smtp._tls.{domain}", f"v=TLSRPTv1; rua=mailto:{tlsrpt}")
    dns.mx(domain, mx)
    dns.a(mx)
    dns.a(f"mta-sts.{domain}")
    dns.txt(f"_mta-sts.{domain}", f"v=STSv1; id={sts_id}")
    dns.start()


def start(sender, dns, ca, peer, host, *sets):
    sender.start(f'dns.nameservers=["{dns.address}"]', 'queue.retry_schedule=["1s"]', f"queue.remote_port={peer.port}",
                 f'queue.extra_ca_file="{ca.path}"', f"mta_sts.policy_port={host.port}", *sets, listeners=SUBMISSION)


def test_enforce_refuses_an_mx_with_a_wrong_certificate(dns, sender, ca):
    wrong = ca.issue("mx.elsewhere.test")
    peer = Peer(*wrong, tls="starttls")
    host = PolicyHost(*ca.issue("mta-sts.sts.test"), policy("enforce", "mx.sts.test"))
    try:
        publish(dns)
        start(sender, dns, ca, peer, host)
        submit(sender, ["x@sts.test"])
        sender.wait_log(r"event=mta_sts_policy domain=sts\.test id=20261130T1 mode=enforce max_age=86400")
        sender.wait_log(r"event=mta_sts_refused domain=sts\.test host=mx\.sts\.test .*reason=certificate-host-mismatch")
        sender.wait_log(r"event=delivery_deferred .*rcpt=x@sts\.test")
        assert peer.messages == []
        assert "x@sts.test\tpending" in sender.run_cli("queue", "list").stdout
        assert host.requests[0] == ("/.well-known/mta-sts.txt", "mta-sts.sts.test")
        # The next attempt uses the cached policy: the record's id has not changed.
        wait_for(lambda: len(re.findall(r"event=mta_sts_refused", sender.log())) >= 2, what="a retry")
        assert len(host.requests) == 1
        assert peer.messages == []
    finally:
        peer.stop()
        host.stop()


def test_enforce_uses_an_mx_with_a_valid_certificate_and_reports_it(dns, sender, ca):
    """Delivery under `enforce` to a valid MX, then the TLS report (RFC 8460) about it, sent to
    the rua of `_smtp._tls.sts.test`: gzipped JSON with the RFC's fields."""
    peer = Peer(*ca.issue("mx.sts.test"), tls="starttls")
    host = PolicyHost(*ca.issue("mta-sts.sts.test"), policy("enforce", "*.sts.test"))
    try:
        publish(dns, tlsrpt="tlsrpt@sts.test")
        start(sender, dns, ca, peer, host)
        submit(sender, ["y@sts.test"], subject="under enforce")
        wait_for(lambda: peer.messages, what="delivery under an enforce policy")
        assert "Subject: under enforce" in peer.messages[0][2].decode()
        sender.wait_log(r"event=delivery_tls .*host=mx\.sts\.test .*verified=true")

        sender.set_config("dns", "nameservers", f'["{dns.address}"]')
        out = sender.run_cli("tlsrpt", "send-reports").stdout
        assert "queued 1 report(s) from 1 session outcome(s)" in out, out
        wait_for(lambda: len(peer.messages) == 2, what="the TLS report")
        _, rcpts, content, _ = peer.messages[1]
        assert rcpts == ["tlsrpt@sts.test"]
        msg = email.message_from_bytes(content)
        assert msg["TLS-Report-Domain"] == "sts.test" and msg["TLS-Report-Submitter"] == "mx.example.test"
        assert msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "tlsrpt"
        part = next(p for p in msg.walk() if p.get_content_type() == "application/tlsrpt+gzip")
        assert re.fullmatch(r"mx\.example\.test!sts\.test!\d+!\d+\.json\.gz", part.get_filename())
        report = json.loads(gzip.decompress(part.get_payload(decode=True)))
        check_rfc8460(report)
        (pol,) = report["policies"]
        assert pol["policy"] == {"policy-type": "sts", "policy-domain": "sts.test", "mx-host": ["*.sts.test"],
                                 "policy-string": ["version: STSv1", "mode: enforce", "mx: *.sts.test", "max_age: 86400"]}
        assert pol["summary"] == {"total-successful-session-count": 1, "total-failure-session-count": 0}
        # The outcomes went out with the report.
        assert "queued 0 report(s) from 0 session outcome(s)" in sender.run_cli("tlsrpt", "send-reports").stdout
    finally:
        peer.stop()
        host.stop()


def test_tls_report_posted_to_an_https_rua(dns, sender, ca):
    """RFC 8460 §3, §5.3: an https rua gets the gzipped report by POST, as
    application/tlsrpt+gzip, from a receiver whose certificate must validate. A receiver that
    fails (HTTP 500) keeps the outcomes for the next run, which posts them."""
    peer = Peer(*ca.issue("mx.sts.test"), tls="starttls")
    host = PolicyHost(*ca.issue("mta-sts.sts.test"), policy("enforce", "mx.sts.test"))
    receiver = ReportReceiver(*ca.issue("tlsrpt.sts.test"), statuses=(500, 200))
    try:
        dns.a("tlsrpt.sts.test")
        dns.txt("_smtp._tls.sts.test", f"v=TLSRPTv1; rua=https://tlsrpt.sts.test:{receiver.port}/v1/tlsrpt")
        publish(dns)
        start(sender, dns, ca, peer, host)
        submit(sender, ["p@sts.test"])
        wait_for(lambda: peer.messages, what="delivery under an enforce policy")

        sender.set_config("dns", "nameservers", f'["{dns.address}"]')
        # The CLI trusts the test CA as the server does (a key the generated config leaves out).
        sender.config.write_text(sender.config.read_text().replace("[queue]\n", f'[queue]\nextra_ca_file = "{ca.path}"\n', 1))
        out = sender.run_cli("tlsrpt", "send-reports")
        assert "queued 0 report(s) from 1 session outcome(s)" in out.stdout, out
        assert len(receiver.posts) == 1
        out = sender.run_cli("tlsrpt", "send-reports")
        assert "queued 1 report(s) from 1 session outcome(s)" in out.stdout, out
        assert len(receiver.posts) == 2
        path, headers, body = receiver.posts[1]
        assert path == "/v1/tlsrpt" and headers["Content-Type"] == "application/tlsrpt+gzip"
        report = json.loads(gzip.decompress(body))
        check_rfc8460(report)
        (pol,) = report["policies"]
        assert pol["policy"]["policy-type"] == "sts" and pol["summary"]["total-successful-session-count"] == 1
        assert "queued 0 report(s) from 0 session outcome(s)" in sender.run_cli("tlsrpt", "send-reports").stdout
        assert len(peer.messages) == 1, "no report by mail"
    finally:
        peer.stop()
        host.stop()
        receiver.stop()


def test_enforce_skips_an_mx_the_policy_does_not_list(dns, sender, ca):
    peer = Peer(*ca.issue("mx.sts.test"), tls="starttls")
    host = PolicyHost(*ca.issue("mta-sts.sts.test"), policy("enforce", "mx.other.test"))
    try:
        publish(dns)
        start(sender, dns, ca, peer, host)
        submit(sender, ["z@sts.test"])
        sender.wait_log(r"event=mta_sts_refused domain=sts\.test host=mx\.sts\.test reason=mx_not_in_policy")
        sender.wait_log(r"event=delivery_deferred .*rcpt=z@sts\.test .*not an MX host of sts\.test's MTA-STS policy")
        assert peer.messages == []
    finally:
        peer.stop()
        host.stop()


def test_testing_mode_delivers_and_a_bad_policy_host_is_no_policy(dns, sender, ca):
    """Under `testing` a wrong certificate does not stop delivery. A policy host whose own
    certificate is not trusted gives no policy at all (RFC 8461 §3.3), so delivery goes on."""
    peer = Peer(*ca.issue("mx.elsewhere.test"), tls="starttls")
    host = PolicyHost(*ca.issue("mta-sts.sts.test"), policy("testing", "mx.sts.test"))
    untrusted = PolicyHost(sender.ca, str(sender.dir / "tls" / "key.pem"), policy("enforce", "mx.sts.test"))
    try:
        dns.mx("bad.test", "mx.sts.test")
        dns.a("mta-sts.bad.test")
        dns.txt("_mta-sts.bad.test", "v=STSv1; id=1")
        publish(dns)
        start(sender, dns, ca, peer, host)
        submit(sender, ["t@sts.test"], subject="testing mode")
        wait_for(lambda: peer.messages, what="delivery under a testing policy")
        sender.wait_log(r"event=delivery_tls .*host=mx\.sts\.test .*verified=false")
        sender.stop()
        start(sender, dns, ca, peer, untrusted)
        submit(sender, ["u@bad.test"], subject="no policy")
        wait_for(lambda: len(peer.messages) == 2, what="delivery without a policy")
        sender.wait_log(r"event=mta_sts_fetch_failed domain=bad\.test reason=.*policy host certificate")
    finally:
        peer.stop()
        host.stop()
        untrusted.stop()


def fetch_policy(rampart, host):
    """GET the policy file as a sender would, with `host` in Host: the certificate is the test
    server's own (for its hostname), and the request names the policy host."""
    ctx = ssl.create_default_context(cafile=rampart.ca)
    conn = http.client.HTTPSConnection("127.0.0.1", rampart.ports["https"], context=ctx, timeout=10)
    # SNI and certificate check for the name the certificate has; Host for the policy domain.
    conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", rampart.ports["https"]), timeout=10),
                                server_hostname=rampart.hostname)
    conn.request("GET", "/.well-known/mta-sts.txt", headers={"Host": host})
    r = conn.getresponse()
    return r.status, r.getheader("Content-Type"), r.read(MAX_POLICY + 1).decode()


def record(zone, name):
    line = next(l for l in zone.splitlines() if l.startswith(name + "\tIN\tTXT\t"))
    return line.split("\t", 3)[3].strip('"')


def valid(pol):
    """The checks postfix-mta-sts-resolver's resolver makes of a fetched policy."""
    return (pol.get("version") == "STSv1" and 0 <= int(pol["max_age"]) <= 31557600
            and pol.get("mode") in ("none", "testing", "enforce") and (pol["mode"] == "none" or pol["mx"]))


def test_inbound_policy_served_and_announced(rampart):
    rampart.start(listeners=("smtp", "https"))
    zone = rampart.run_cli("dns", "records", "example.test").stdout
    txt = parse_mta_sts_record(record(zone, "_mta-sts.example.test."))
    assert txt["v"] == "STSv1" and re.fullmatch(r"[0-9a-f]{32}", txt["id"]), zone
    assert record(zone, "_smtp._tls.example.test.") == "v=TLSRPTv1; rua=mailto:postmaster@example.test"
    assert "mta-sts.example.test.\tIN\tCNAME\tmx.example.test." in zone

    status, ctype, text = fetch_policy(rampart, "mta-sts.example.test")
    assert (status, ctype) == (200, "text/plain")
    pol = parse_mta_sts_policy(text)
    assert valid(pol), text
    assert (pol["mode"], pol["mx"], pol["max_age"]) == ("testing", ["mx.example.test"], "604800")
    assert fetch_policy(rampart, "mta-sts.elsewhere.test")[0] == 404, "only local domains have a policy"
    assert fetch_policy(rampart, "mx.example.test")[0] == 404

    # A changed policy gets a new id in the record, and is what the server serves.
    rampart.stop()
    rampart.set_config("mta_sts", "mode", '"enforce"')
    rampart.set_config("mta_sts", "mx", '["mx.example.test", "*.backup.example.test"]')
    zone2 = rampart.run_cli("dns", "records", "example.test").stdout
    assert parse_mta_sts_record(record(zone2, "_mta-sts.example.test."))["id"] != txt["id"]
    rampart.start(listeners=("smtp", "https"))
    pol = parse_mta_sts_policy(fetch_policy(rampart, "mta-sts.example.test:443")[2])
    assert valid(pol) and pol["mode"] == "enforce" and pol["mx"] == ["mx.example.test", "*.backup.example.test"]


RFC8460_TOP = {"organization-name": str, "date-range": dict, "contact-info": str, "report-id": str, "policies": list}
RFC8460_FAILURE = {"result-type": str, "sending-mta-ip": str, "receiving-mx-hostname": str, "receiving-mx-helo": str,
                   "receiving-ip": str, "failed-session-count": int, "additional-information": str,
                   "failure-reason-code": str}
RESULT_TYPES = {"starttls-not-supported", "certificate-host-mismatch", "certificate-expired", "certificate-not-trusted",
                "validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required", "sts-policy-fetch-error",
                "sts-policy-invalid", "sts-webpki-invalid"}


def check_rfc8460(report):
    """RFC 8460 section 4.4's fields, each of its type; the required ones present."""
    for key, kind in RFC8460_TOP.items():
        assert isinstance(report[key], kind), key
    assert set(report) <= set(RFC8460_TOP)
    for key in ("start-datetime", "end-datetime"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["date-range"][key])
    for p in report["policies"]:
        assert set(p) <= {"policy", "summary", "failure-details"}
        assert p["policy"]["policy-type"] in ("tlsa", "sts", "no-policy-found")
        assert isinstance(p["policy"]["policy-domain"], str)
        assert all(isinstance(x, str) for x in p["policy"].get("policy-string", []) + p["policy"].get("mx-host", []))
        assert set(p["summary"]) == {"total-successful-session-count", "total-failure-session-count"}
        assert all(isinstance(n, int) for n in p["summary"].values())
        for f in p.get("failure-details", []):
            assert set(f) <= set(RFC8460_FAILURE) and f["result-type"] in RESULT_TYPES
            assert all(isinstance(f[k], RFC8460_FAILURE[k]) for k in f)


def test_tls_reports_received_are_listed(rampart, dns):
    """A TLS report about one of our domains, mailed to [tlsrpt] report_address, is parsed and
    listed; one about another domain is delivered but not kept."""
    dns.start()
    rampart.set_config("tlsrpt", "report_address", '"bob@example.test"')
    rampart.start(f'dns.nameservers=["{dns.address}"]')
    body = {
        "organization-name": "Company-X", "contact-info": "sts-reporting@company-x.test", "report-id": "r-5065427c",
        "date-range": {"start-datetime": "2026-11-29T00:00:00Z", "end-datetime": "2026-11-29T23:59:59Z"},
        "policies": [{"policy": {"policy-type": "sts", "policy-domain": "example.test", "mx-host": ["mx.example.test"],
                                 "policy-string": ["version: STSv1", "mode: testing", "mx: mx.example.test", "max_age: 86400"]},
                      "summary": {"total-successful-session-count": 40, "total-failure-session-count": 2},
                      "failure-details": [{"result-type": "certificate-expired", "receiving-mx-hostname": "mx.example.test",
                                           "failed-session-count": 2}]}],
    }

    def mail(report):
        from email.mime.application import MIMEApplication
        from email.mime.multipart import MIMEMultipart
        from email.mime.text import MIMEText
        m = MIMEMultipart("report", report_type="tlsrpt")
        m["From"], m["To"], m["Subject"] = "reports@company-x.test", "bob@example.test", "Report Domain: example.test"
        m["Date"], m["Message-ID"] = "Mon, 30 Nov 2026 01:00:00 +0000", f"<{report['report-id']}@company-x.test>"
        m.attach(MIMEText("TLS report"))
        gz = MIMEApplication(gzip.compress(json.dumps(report).encode()), "tlsrpt+gzip")
        gz.add_header("Content-Disposition", "attachment", filename="company-x.test!example.test!1!2.json.gz")
        m.attach(gz)
        return m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    other = json.loads(json.dumps(body))
    other["report-id"] = "r-other"
    other["policies"][0]["policy"]["policy-domain"] = "elsewhere.test"
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=10) as s:
        s.sendmail("reports@company-x.test", ["bob@example.test"], mail(body))
        s.sendmail("reports@company-x.test", ["bob@example.test"], mail(other))
    rampart.wait_log(r"event=tlsrpt_report_received id=\S+ domains=example\.test")
    rampart.wait_log(r"event=tlsrpt_report_refused .*reason=not_our_domain")
    out = rampart.run_cli("tlsrpt", "reports").stdout
    assert out == "example.test\tCompany-X\tr-5065427c\t2026-11-29 00:00 to 2026-11-29 23:59\tsuccessful=40\tfailed=2\n", out
    assert len(rampart.messages("bob@example.test")) == 2
