"""DANE for outbound SMTP (RFC 7672) end to end: the sender resolves through NSD serving a
DNSSEC-signed zone (tests/dnssec.py), anchored at the zone's key (`mta_sts.dane_trust_anchor`),
and delivers to an aiosmtpd MX whose certificate comes from a CA the sender does not trust, so
only a matching TLSA record can make its certificate acceptable.

- secure MX and TLSA matching → delivered, TLS verified by DANE, reported as policy type tlsa;
- secure and not matching, bogus signatures, SERVFAIL on the TLSA lookup, a bogus MX RRset →
  the MX is not used, the message waits (4xx), nothing goes out in clear;
- an unsigned (insecure) zone, or a secure host reached through an insecure MX RRset (§2.2.1)
  → no DANE: opportunistic TLS as without it;
- name servers that do not pass DNSSEC records (dnsmasq) → DANE turns itself off (logged) and
  mail flows, with DANE on by default;
- a domain without MX records (secure denial) whose address records are secure → TLSA at the
  domain itself (§2.2.1); an MX host that is a secure CNAME → TLSA at the chain's end first,
  then at the host's name (§2.2.3)."""

import email
import gzip
import json
import re

import pytest

from conftest import Rampart, wait_for
from dnssec import SignedZone, tlsa_3_1_1
from peers import Peer
from test_mta_sts import check_rfc8460
from test_queue import SUBMISSION, submit
from tlstest import PrivateCa


@pytest.fixture
def sender(tmp_path):
    r = Rampart(tmp_path, name="sender")
    r.add_user("bob@example.test")
    yield r
    r.stop()


@pytest.fixture
def zone(tmp_path):
    z = SignedZone(tmp_path)
    yield z
    z.stop()


@pytest.fixture
def mx(tmp_path):
    """The remote MX: STARTTLS with a certificate for mx.good.dane.test from an untrusted CA."""
    ca = PrivateCa(tmp_path)
    cert = ca.issue("mx.good.dane.test")
    peer = Peer(*cert, tls="starttls")
    peer.cert = cert[0]
    peer.other = ca.issue("mx.good.dane.test", stem="other")[0]
    yield peer
    peer.stop()


def start(sender, nameserver, mx, *sets):
    sender.start(f'dns.nameservers=["{nameserver}"]', 'queue.retry_schedule=["1s"]', f"queue.remote_port={mx.port}",
                 *sets, listeners=SUBMISSION)


def host(zone, domain, tlsa=None):
    """DOMAIN.dane.test with MX mx.DOMAIN.dane.test at 127.0.0.1 and, if given, its TLSA."""
    zone.add(f"{domain} MX 10 mx.{domain}")
    zone.add(f"mx.{domain} A 127.0.0.1")
    if tlsa:
        zone.add(f"_{{port}}._tcp.mx.{domain} TLSA {tlsa}")


def serve(zone, mx):
    zone.lines = [line.replace("{port}", str(mx.port)) for line in zone.lines]
    zone.children = {k: [line.replace("{port}", str(mx.port)) for line in v] for k, v in zone.children.items()}
    zone.corrupt = [n.replace("{port}", str(mx.port)) for n in zone.corrupt]
    zone.failing = [n.replace("{port}", str(mx.port)) for n in zone.failing]
    return zone.start()


def test_matching_tlsa_delivers_with_dane_and_reports_it(sender, zone, mx):
    host(zone, "good", tlsa_3_1_1(mx.cert))
    zone.add('_smtp._tls.good TXT "v=TLSRPTv1; rua=mailto:tlsrpt@good.dane.test"')
    serve(zone, mx)
    start(sender, zone.address, mx, f'mta_sts.dane_trust_anchor="{zone.anchor}"')
    submit(sender, ["x@good.dane.test"], subject="by dane")
    wait_for(lambda: mx.messages, what="delivery under DANE")
    assert "Subject: by dane" in mx.messages[0][2].decode()
    sender.wait_log(r"event=dane_active anchor=dane\.test")
    sender.wait_log(r"event=dane_tlsa domain=good\.dane\.test host=mx\.good\.dane\.test usable=1")
    sender.wait_log(r"event=delivery_tls .*host=mx\.good\.dane\.test .*verified=true")

    sender.set_config("dns", "nameservers", f'["{zone.address}"]')
    assert "queued 1 report(s)" in sender.run_cli("tlsrpt", "send-reports").stdout
    wait_for(lambda: len(mx.messages) == 2, what="the TLS report")
    _, rcpts, content, _ = mx.messages[1]
    assert rcpts == ["tlsrpt@good.dane.test"]
    part = next(p for p in email.message_from_bytes(content).walk() if p.get_content_type() == "application/tlsrpt+gzip")
    report = json.loads(gzip.decompress(part.get_payload(decode=True)))
    check_rfc8460(report)
    (pol,) = report["policies"]
    assert pol["policy"]["policy-type"] == "tlsa" and pol["policy"]["policy-domain"] == "good.dane.test"
    assert pol["policy"]["policy-string"] == [tlsa_3_1_1(mx.cert)]
    assert pol["summary"] == {"total-successful-session-count": 1, "total-failure-session-count": 0}


def test_mismatch_bogus_and_lookup_failures_keep_the_mail_waiting(sender, zone, mx):
    """RFC 7672 §2.2: a TLSA set that does not match, fails validation or cannot be looked up
    (SERVFAIL) makes the host unusable; so does a bogus MX RRset (§2.2.1). The peer would take
    the mail in clear or with any certificate: it must get nothing."""
    host(zone, "bad", tlsa_3_1_1(mx.other))
    host(zone, "bogus", tlsa_3_1_1(mx.cert))
    zone.bogus("_{port}._tcp.mx.bogus")
    host(zone, "fail")
    zone.servfail("_{port}._tcp.mx.fail")
    host(zone, "bogusmx", tlsa_3_1_1(mx.cert))
    zone.bogus("bogusmx")
    serve(zone, mx)
    start(sender, zone.address, mx, f'mta_sts.dane_trust_anchor="{zone.anchor}"')
    submit(sender, ["a@bad.dane.test"])
    submit(sender, ["b@bogus.dane.test"])
    submit(sender, ["c@fail.dane.test"])
    submit(sender, ["d@bogusmx.dane.test"])
    sender.wait_log(r"event=dane_refused domain=bad\.dane\.test host=mx\.bad\.dane\.test .*reason=tlsa-invalid")
    sender.wait_log(r"event=dane_refused domain=bogus\.dane\.test host=mx\.bogus\.dane\.test reason=dnssec-invalid")
    sender.wait_log(r"event=dane_refused domain=fail\.dane\.test host=mx\.fail\.dane\.test reason=tlsa-lookup-failed")
    sender.wait_log(r"event=dane_refused domain=bogusmx\.dane\.test host=mx\.bogusmx\.dane\.test reason=dnssec-invalid")
    for rcpt in ("a@bad", "b@bogus", "c@fail", "d@bogusmx"):
        sender.wait_log(r"event=delivery_deferred .*rcpt=%s\.dane\.test" % rcpt)
    listing = sender.run_cli("queue", "list").stdout
    assert all(f"{r}.dane.test\tpending" in listing for r in ("a@bad", "b@bogus", "c@fail", "d@bogusmx")), listing
    # A retry goes the same way.
    wait_for(lambda: len(re.findall(r"event=dane_refused domain=bad\.dane\.test", sender.log())) >= 2, what="a retry")
    assert mx.messages == []


def test_no_dane_without_a_secure_chain(sender, zone, mx):
    """An unsigned zone's TLSA records do not count (insecure); nor do a secure host's when the
    MX RRset that named it is insecure (RFC 7672 §2.2.1): both go out by opportunistic TLS."""
    zone.insecure("plain", "@ MX 10 mx", "mx A 127.0.0.1", f"_{{port}}._tcp.mx TLSA {tlsa_3_1_1(mx.other)}")
    host(zone, "bad", tlsa_3_1_1(mx.other))
    zone.insecure("via", "@ MX 10 mx.bad.dane.test.")
    serve(zone, mx)
    start(sender, zone.address, mx, f'mta_sts.dane_trust_anchor="{zone.anchor}"')
    submit(sender, ["e@plain.dane.test"], subject="insecure zone")
    wait_for(lambda: mx.messages, what="delivery from an insecure zone")
    sender.wait_log(r"event=delivery_tls .*host=mx\.plain\.dane\.test .*verified=false")
    submit(sender, ["f@via.dane.test"], subject="insecure MX")
    wait_for(lambda: len(mx.messages) == 2, what="delivery through an insecure MX RRset")
    sender.wait_log(r"event=delivery_tls .*host=mx\.bad\.dane\.test .*verified=false")
    assert "event=dane_refused" not in sender.log() and "event=dane_tlsa" not in sender.log()


def test_dane_stays_off_when_the_name_servers_strip_dnssec(sender, dns, mx):
    """dnsmasq answers without DNSSEC records, like a resolver that strips them: with DANE on
    (the default) the probe fails once, is logged, and mail flows as without DANE, even to a
    host whose (unsigned) TLSA record would not match."""
    dns.mx("good.dane.test", "mx.good.dane.test")
    dns.a("mx.good.dane.test")
    dns.records.append(f"--dns-rr=_{mx.port}._tcp.mx.good.dane.test,52,030101{'00' * 32}")
    dns.start()
    start(sender, dns.address, mx)
    submit(sender, ["g@good.dane.test"])
    wait_for(lambda: mx.messages, what="delivery without DANE")
    sender.wait_log(r"event=dane_unavailable anchor=\. reason=")
    submit(sender, ["h@good.dane.test"])
    wait_for(lambda: len(mx.messages) == 2, what="a second delivery")
    assert len(re.findall(r"event=dane_unavailable", sender.log())) == 1


def test_no_mx_domain_gets_dane_from_its_secure_address_records(sender, zone, mx):
    """RFC 7672 §2.2.1: a domain with no MX records (a validated denial) takes mail at its own
    address records; when those are secure, TLSA at _25._tcp.DOMAIN (here the test port)
    applies: a match delivers under DANE, a mismatch makes the mail wait."""
    zone.add("nomx A 127.0.0.1")
    zone.add(f"_{{port}}._tcp.nomx TLSA {tlsa_3_1_1(mx.cert)}")
    zone.add("nomxbad A 127.0.0.1")
    zone.add(f"_{{port}}._tcp.nomxbad TLSA {tlsa_3_1_1(mx.other)}")
    # Unsigned, no MX: its (not matching) TLSA record does not count.
    zone.insecure("plainnomx", "@ A 127.0.0.1", f"_{{port}}._tcp TLSA {tlsa_3_1_1(mx.other)}")
    serve(zone, mx)
    start(sender, zone.address, mx, f'mta_sts.dane_trust_anchor="{zone.anchor}"')
    submit(sender, ["i@nomx.dane.test"], subject="implicit mx")
    wait_for(lambda: mx.messages, what="delivery to an implicit MX under DANE")
    sender.wait_log(r"event=dane_tlsa domain=nomx\.dane\.test host=nomx\.dane\.test usable=1")
    sender.wait_log(r"event=delivery_tls .*host=nomx\.dane\.test .*verified=true")
    submit(sender, ["j@nomxbad.dane.test"])
    sender.wait_log(r"event=dane_refused domain=nomxbad\.dane\.test host=nomxbad\.dane\.test .*reason=tlsa-invalid")
    sender.wait_log(r"event=delivery_deferred .*rcpt=j@nomxbad\.dane\.test")
    assert len(mx.messages) == 1
    submit(sender, ["n@plainnomx.dane.test"], subject="insecure implicit mx")
    wait_for(lambda: len(mx.messages) == 2, what="delivery to an insecure implicit MX")
    sender.wait_log(r"event=delivery_tls .*host=plainnomx\.dane\.test .*verified=false")
    assert "domain=plainnomx" not in sender.log()


def test_cname_mx_host_tries_the_expanded_name_then_the_original(sender, zone, mx):
    """RFC 7672 §2.2.3: an MX host reached through a secure CNAME chain has its TLSA records
    looked up at the chain's end first, and at its own name only when there are none there."""
    for name, at_target, at_host in (("first", mx.cert, mx.other), ("fallback", None, mx.cert),
                                     ("order", mx.other, mx.cert)):
        zone.add(f"{name} MX 10 mx.{name}")
        zone.add(f"mx.{name} CNAME target.{name}")
        zone.add(f"target.{name} A 127.0.0.1")
        if at_target:
            zone.add(f"_{{port}}._tcp.target.{name} TLSA {tlsa_3_1_1(at_target)}")
        zone.add(f"_{{port}}._tcp.mx.{name} TLSA {tlsa_3_1_1(at_host)}")
    serve(zone, mx)
    start(sender, zone.address, mx, f'mta_sts.dane_trust_anchor="{zone.anchor}"')
    # The expanded name's record matches (the host's own would not): delivered.
    submit(sender, ["k@first.dane.test"], subject="expanded")
    wait_for(lambda: mx.messages, what="delivery by the expanded name's TLSA")
    sender.wait_log(r"event=delivery_tls .*host=mx\.first\.dane\.test .*verified=true")
    # Nothing at the expanded name: the host's own record (matching) is used.
    submit(sender, ["l@fallback.dane.test"], subject="original")
    wait_for(lambda: len(mx.messages) == 2, what="delivery by the original name's TLSA")
    sender.wait_log(r"event=delivery_tls .*host=mx\.fallback\.dane\.test .*verified=true")
    # The expanded name's record (not matching) wins over the host's own (matching): waits.
    submit(sender, ["m@order.dane.test"])
    sender.wait_log(r"event=dane_refused domain=order\.dane\.test host=mx\.order\.dane\.test .*reason=tlsa-invalid")
    sender.wait_log(r"event=delivery_deferred .*rcpt=m@order\.dane\.test")
    assert len(mx.messages) == 2
