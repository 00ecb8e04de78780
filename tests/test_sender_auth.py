"""Sender authentication end to end: a dnsmasq publishes SPF, DKIM and DMARC records; messages
are signed by dkimpy (inbound) or by Rampart (outbound, checked by dkimpy reading the published
key); DMARC aggregate reports are validated against the RFC 7489 schema."""

import base64
import email
import email.message
import email.policy
import email.utils
import gzip
import re
import smtplib
import subprocess
import time
import xml.etree.ElementTree as ET

import dkim
import pytest
import xmlschema

from conftest import PASSWORD, ROOT, Rampart, message_bytes, wait_for
from peers import Peer

XSD = ROOT / "tests" / "data" / "rfc7489-aggregate.xsd"



def rsa_key(tmp_path, name):
    """(PKCS#1 PEM private key bytes, base64 SubjectPublicKeyInfo) of a new 1024-bit key: small
    enough that its DKIM record fits one TXT string."""
    pem = tmp_path / f"{name}.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(pem), "1024"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(pem), "-pubout", "-outform", "DER"], check=True, capture_output=True).stdout
    return pem.read_bytes(), base64.b64encode(der).decode()


@pytest.fixture
def world(tmp_path, dns):
    """DNS for the sending domains, and keys for the ones that sign."""
    keys = {}
    for domain in ("signed.test", "lists.test"):
        private, public = rsa_key(tmp_path, domain)
        keys[domain] = private
        dns.txt(f"s1._domainkey.{domain}", f"v=DKIM1; k=rsa; p={public}")
    dns.txt("pass.test", "v=spf1 ip4:127.0.0.1 -all")
    dns.txt("fail.test", "v=spf1 ip4:192.0.2.1 -all")
    dns.txt("soft.test", "v=spf1 ~all")
    dns.txt("signed.test", "v=spf1 ip4:192.0.2.1 -all")
    dns.txt("_dmarc.signed.test", "v=DMARC1; p=reject")
    dns.txt("lists.test", "v=spf1 ip4:127.0.0.1 -all")
    dns.txt("reject.test", "v=spf1 ip4:192.0.2.1 -all")
    dns.txt("_dmarc.reject.test", "v=DMARC1; p=reject; rua=mailto:dmarc@reports.test")
    dns.txt("reject.test._report._dmarc.reports.test", "v=DMARC1")
    dns.txt("quar.test", "v=spf1 ip4:192.0.2.1 -all")
    dns.txt("_dmarc.quar.test", "v=DMARC1; p=quarantine; rua=mailto:dmarc@unauthorized.test")
    return keys


def start_mx(tmp_path, dns, *sets):
    r = Rampart(tmp_path, name="mx")
    r.add_user("bob@example.test")
    dns.start()
    r.start(f'dns.nameservers=["{dns.address}"]', *sets)
    return r


def send(r, sender, data, rcpt="bob@example.test"):
    """Sends over SMTP; returns (code, reply text) of the end of data."""
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=20) as s:
        s.ehlo("client.pass.test")
        s.mail(sender)
        s.rcpt(rcpt)
        return s.data(data)


def stored(r, folder="INBOX"):
    rows = r.messages("bob@example.test", folder)
    return [r.message("bob@example.test", row[0], folder).decode() for row in rows]


def ident(text):
    """The transaction id from our Received header."""
    return re.search(r"\(Rampart\) with \w+ id (\w+)", text).group(1)


def auth_results(text):
    head = text.split("\r\n\r\n", 1)[0]
    return re.findall(r"^Authentication-Results:[^\r]*(?:\r\n[ \t][^\r]*)*", head, re.M)


def test_spf_pass_fail_softfail(tmp_path, dns, world):
    r = start_mx(tmp_path, dns)
    try:
        for domain in ("pass", "soft", "fail"):
            code, _ = send(r, f"a@{domain}.test", message_bytes(subject=domain, sender=f"a@{domain}.test"))
            assert code == 250
        inbox = stored(r)
        junk = stored(r, "Junk")
        assert [re.search(r"Subject: (\w+)", m).group(1) for m in inbox] == ["pass", "soft"]
        assert re.search(r"spf=pass .*smtp\.mailfrom=a@pass\.test", inbox[0])
        assert "spf=softfail" in inbox[1]
        # SPF fail without a DMARC policy is tagged, not refused: to Junk.
        assert len(junk) == 1 and "spf=fail" in junk[0]
        why = r.run_cli("message", "why", ident(junk[0])).stdout
        assert "verdict: junk (spf_fail_tagged)" in why, why
        assert re.search(r"spf\s+fail\s+spf_not_authorized\s+domain=fail\.test", why), why
    finally:
        r.stop()


def test_dkim_pass_and_tampered_body(tmp_path, dns, world):
    r = start_mx(tmp_path, dns)
    try:
        msg = message_bytes(subject="signed", sender="a@signed.test", body="Hello.\r\n")
        sig = dkim.sign(msg, b"s1", b"signed.test", world["signed.test"], canonicalize=(b"relaxed", b"relaxed"))
        # SPF fails for signed.test (p=reject): only the aligned DKIM signature lets it in.
        assert send(r, "a@signed.test", sig + msg)[0] == 250
        m = stored(r)[0]
        assert re.search(r"dkim=pass header\.(d=|i=@)signed\.test header\.s=s1", m), m
        assert "dmarc=pass" in m
        tampered = sig + msg.replace(b"Hello.", b"Hello!")
        code, text = send(r, "a@signed.test", tampered)
        assert code == 550 and b"5.7.1" in text, text
        log = r.wait_log(r"event=message_refused .*reason=dmarc_policy_reject.*")
        assert "dkim:fail:dkim_body_hash_mismatch" in log.group(0)
    finally:
        r.stop()


def test_dmarc_reject_and_quarantine(tmp_path, dns, world):
    r = start_mx(tmp_path, dns)
    try:
        code, text = send(r, "a@reject.test", message_bytes(subject="forged", sender="ceo@reject.test"))
        assert code == 550 and text.startswith(b"5.7.1"), text
        assert stored(r) == []
        code, _ = send(r, "a@quar.test", message_bytes(subject="doubtful", sender="ceo@quar.test"))
        assert code == 250
        junk = stored(r, "Junk")
        assert len(junk) == 1 and "dmarc=fail" in junk[0] and "policy.dmarc=quarantine" in junk[0]
        assert "dmarc_policy_quarantine" in r.run_cli("message", "why", ident(junk[0])).stdout
    finally:
        r.stop()


def test_forged_authentication_results_are_removed(tmp_path, dns, world):
    r = start_mx(tmp_path, dns)
    try:
        forged = b"Authentication-Results: mx.example.test; dkim=pass header.d=bank.test; dmarc=pass\r\n"
        other = b"Authentication-Results: elsewhere.test; spf=pass\r\n"
        assert send(r, "a@pass.test", forged + other + message_bytes(sender="a@pass.test"))[0] == 250
        m = stored(r)[0]
        ours = [h for h in auth_results(m) if re.match(r"Authentication-Results: mx\.example\.test", h)]
        assert len(ours) == 1, auth_results(m)
        assert "bank.test" not in m and "spf=pass" in ours[0]
        assert "Authentication-Results: elsewhere.test; spf=pass" in m
        assert "forged_auth_results_removed" in r.run_cli("message", "why", ident(m)).stdout
    finally:
        r.stop()


def test_forwarded_message_with_a_trusted_arc_chain(tmp_path, dns, world):
    r = start_mx(tmp_path, dns, 'auth_checks.trusted_arc_sealers=["lists.test"]')
    try:
        # A list received ceo@reject.test's message, checked it, and sealed it before
        # sending it on from its own servers: SPF and DKIM cannot align with reject.test.
        original = b"Authentication-Results: lists.test; spf=pass smtp.mailfrom=reject.test; dmarc=pass\r\n" + message_bytes(
            subject="via list", sender="ceo@reject.test", to="list@lists.test"
        )
        arc = b"".join(dkim.arc_sign(original, b"s1", b"lists.test", world["lists.test"], b"lists.test"))
        code, _ = send(r, "list-bounces@lists.test", arc + original)
        assert code == 250
        m = stored(r)[0]
        assert "arc=pass" in m and "dmarc=fail" in m
        why = r.run_cli("message", "why", ident(m)).stdout
        assert "dmarc_reject_overridden_by_arc" in why and "arc_valid_trusted_sealer" in why
    finally:
        r.stop()


def published_keys(r, domain):
    """{selector: TXT value} from `rampart dns records` (what an administrator publishes)."""
    out = r.run_cli("dns", "records", domain).stdout
    keys = {}
    for sel, strings in re.findall(rf"^(\S+)\._domainkey\.{re.escape(domain)}\.\tIN\tTXT\t\((.*)\)$", out, re.M):
        keys[sel] = "".join(re.findall(r'"([^"]*)"', strings))
    return keys


# OpenSSL's RSA code as the server chooses it at start, and each of its two x86-64 paths forced
# through OPENSSL_ia32cap (":~0x80000" hides ADX: the AVX2 code; ":~0x0" hides nothing).
@pytest.mark.parametrize("rsa_code", [None, ":~0x80000", ":~0x0"])
def test_outbound_rsa_and_ed25519_signatures_verify_with_dkimpy(tmp_path, dns, monkeypatch, rsa_code):
    if rsa_code is None:
        monkeypatch.delenv("OPENSSL_ia32cap", raising=False)
    else:
        monkeypatch.setenv("OPENSSL_ia32cap", rsa_code)
    sender = Rampart(tmp_path, name="sender")
    sender.add_user("bob@example.test")
    out = sender.run_cli("dkim", "keygen", "example.test", "--selector", "ed1", "--algorithm", "ed25519").stdout
    assert "ed1._domainkey.example.test." in out and "k=ed25519" in out
    keys = published_keys(sender, "example.test")
    assert set(keys) == {"rsa-1", "ed1"}
    peer = Peer(sender.ca, None)
    try:
        dns.mx("peer.test", "mx.peer.test")
        dns.a("mx.peer.test")
        dns.start()
        sender.start(f'dns.nameservers=["{dns.address}"]', f"queue.remote_port={peer.port}", listeners=("smtp", "submission"))
        with smtplib.SMTP("127.0.0.1", sender.ports["submission"], timeout=10) as s:
            s.ehlo("client.test")
            s.starttls(context=sender.tls_context())
            s.ehlo("client.test")
            s.login("bob@example.test", PASSWORD)
            s.sendmail("bob@example.test", ["carol@peer.test"], message_bytes(subject="signed", sender="bob@example.test", to="carol@peer.test", body="Hi\r\n \r\n"))
        wait_for(lambda: peer.messages, what="delivery to the peer")
        if rsa_code is None:
            assert re.search(r"DKIM signs with OpenSSL's (AVX2|default) RSA code", sender.log()), sender.log()
        else:
            assert f"DKIM signs with the RSA code OPENSSL_ia32cap={rsa_code} in the environment selects" in sender.log()
        msg = peer.messages[0][2].replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")

        def dnsfunc(name, timeout=5):
            name = name.decode() if isinstance(name, bytes) else name
            sel = name.split("._domainkey.")[0]
            return keys.get(sel, "").encode()

        d = dkim.DKIM(msg)
        sigs = [h for h in d.headers if h[0].lower() == b"dkim-signature"]
        algs = sorted(re.search(rb"a=([\w-]+)", h[1]).group(1).decode() for h in sigs)
        assert algs == ["ed25519-sha256", "rsa-sha256"]
        for i in range(len(sigs)):
            assert dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc), f"signature {i} does not verify"
            h = re.sub(rb"\s", b"", sigs[i][1])
            assert h.count(b"from:") + h.count(b"From:") == 2 or b"h=From:From:" in h or b"from:from" in h.lower()
        # One byte changed in the body: every signature fails.
        broken = msg.replace(b"Hi\r\n", b"Ho\r\n")
        for i in range(len(sigs)):
            try:
                ok = dkim.DKIM(broken).verify(idx=i, dnsfunc=dnsfunc)
            except dkim.ValidationError:  # dkimpy raises for a body hash mismatch
                ok = False
            assert not ok
    finally:
        peer.stop()
        sender.stop()


def validate_rfc7489(xml_bytes):
    schema = xmlschema.XMLSchema(str(XSD))
    root = ET.fromstring(xml_bytes)
    # RFC 7489 Appendix C declares `feedback` in its namespace; reports (ours, Google's, ...)
    # send it unqualified. Qualify the root, leave the rest as sent, validate.
    root.tag = "{http://dmarc.org/dmarc-xml/0.1}feedback"
    schema.validate(root)
    return root


def test_dmarc_aggregate_report_validates_and_is_received(tmp_path, dns, world):
    peer = Peer(None, None)
    dns.mx("reports.test", "mx.reports.test")
    dns.a("mx.reports.test")
    r = start_mx(tmp_path, dns, f"queue.remote_port={peer.port}", 'dmarc.report_address="bob@example.test"')
    try:
        assert send(r, "a@reject.test", message_bytes(subject="forged", sender="ceo@reject.test"))[0] == 550
        assert send(r, "a@quar.test", message_bytes(subject="doubtful", sender="ceo@quar.test"))[0] == 250
        # The CLI reads the config file, not the server's --set overrides.
        r.set_config("dns", "nameservers", f'["{dns.address}"]')
        out = r.run_cli("dmarc", "send-reports").stdout
        assert "queued 1 report(s)" in out, out
        # quar.test's rua is outside the domain and not authorized (RFC 7489 section 7.1).
        wait_for(lambda: peer.messages, what="the report at reports.test")
        mail_from, rcpts, content, _ = peer.messages[0]
        assert rcpts == ["dmarc@reports.test"]
        report = email.message_from_bytes(content)
        assert report["Subject"].startswith("Report Domain: reject.test Submitter: mx.example.test Report-ID: <")
        part = next(p for p in report.walk() if p.get_content_type() == "application/gzip")
        assert re.match(r"mx\.example\.test!reject\.test!\d+!\d+\.xml\.gz", part.get_filename())
        xml_bytes = gzip.decompress(part.get_payload(decode=True))
        root = validate_rfc7489(xml_bytes)
        assert root.find("policy_published/p").text == "reject"
        assert root.find("record/row/policy_evaluated/disposition").text == "reject"
        assert root.find("record/identifiers/header_from").text == "reject.test"
        # The same report mailed to our report_address is delivered but not kept: its sender
        # has no DMARC pass and it is about reject.test, not one of our domains.
        assert send(r, "dmarc@mx.example.test", content.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"))[0] == 250
        assert r.run_cli("dmarc", "reports").stdout == ""
        assert "event=dmarc_report_refused" in r.log() and "reason=sender_not_dmarc_pass" in r.log()
    finally:
        peer.stop()
        r.stop()


def report_mail(sender, domain, report_id):
    """An aggregate report about `domain` from `sender`, as reporters send them."""
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <version>1.0</version>
  <report_metadata><org_name>Reports Org</org_name><email>{sender}</email><report_id>{report_id}</report_id>
    <date_range><begin>1700000000</begin><end>1700086400</end></date_range></report_metadata>
  <policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct><fo>0</fo></policy_published>
  <record>
    <row><source_ip>192.0.2.9</source_ip><count>3</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>{domain}</header_from></identifiers>
    <auth_results><spf><domain>{domain}</domain><scope>mfrom</scope><result>fail</result></spf></auth_results>
  </record>
</feedback>
"""
    validate_rfc7489(xml.encode())
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = "bob@example.test"
    msg["Subject"] = f"Report Domain: {domain} Submitter: reports Report-ID: <{report_id}>"
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain="reports")
    msg.set_content("A DMARC aggregate report.")
    msg.add_attachment(gzip.compress(xml.encode()), maintype="application", subtype="gzip",
                       filename=f"reports!{domain}!1700000000!1700086400.xml.gz")
    return msg.as_bytes(policy=email.policy.SMTP)


def test_received_reports_are_kept_only_when_authentic_and_about_our_domain(tmp_path, dns):
    # RFC 7489 section 7.2: reports.test passes DMARC (SPF aligned); nopass.test fails it
    # under p=none, so its mail is still delivered.
    dns.txt("reports.test", "v=spf1 ip4:127.0.0.1 -all")
    dns.txt("_dmarc.reports.test", "v=DMARC1; p=none")
    dns.txt("nopass.test", "v=spf1 ip4:192.0.2.1 -all")
    dns.txt("_dmarc.nopass.test", "v=DMARC1; p=none")
    r = start_mx(tmp_path, dns, 'dmarc.report_address="bob@example.test"')
    try:
        cases = [
            ("dmarc@nopass.test", "example.test", "r1", "sender_not_dmarc_pass"),
            ("dmarc@reports.test", "bank.test", "r2", "not_our_domain"),
        ]
        for sender, domain, report_id, reason in cases:
            assert send(r, sender, report_mail(sender, domain, report_id))[0] == 250
            assert r.run_cli("dmarc", "reports").stdout == "", (sender, domain)
            assert f"reason={reason}" in r.log(), reason
        # Authentic and about our domain: parsed and listed.
        assert send(r, "dmarc@reports.test", report_mail("dmarc@reports.test", "example.test", "r3"))[0] == 250
        listing = r.run_cli("dmarc", "reports").stdout
        assert re.fullmatch(r"example\.test\tReports Org\tr3\t.*\tmessages=3\tpassed=3\tfailed=0\n", listing), listing
        # Every report mail was delivered as mail all the same.
        assert len(stored(r)) + len(stored(r, "Junk")) == 3
    finally:
        r.stop()


def test_dns_records_and_key_rotation(tmp_path):
    r = Rampart(tmp_path)
    assert "rsa-1._domainkey.example.test." in r.init_output
    assert "_dmarc.example.test.\tIN\tTXT" in r.init_output
    r.run_cli("dkim", "keygen", "example.test", "--selector", "rsa-2")
    listing = r.run_cli("dkim", "list").stdout
    assert "example.test\trsa-1\trsa\tactive" in listing and "example.test\trsa-2\trsa\twaiting" in listing
    r.run_cli("dkim", "activate", "example.test", "rsa-2")
    listing = r.run_cli("dkim", "list").stdout
    assert "example.test\trsa-2\trsa\tactive" in listing and "example.test\trsa-1\trsa\twaiting" in listing
    records = r.run_cli("dns", "records", "example.test").stdout
    # The retired key stays published so mail it signed still verifies.
    assert "rsa-1._domainkey" in records and "rsa-2._domainkey" in records
    for line in ("_submissions._tcp.example.test.\tIN\tSRV\t0 1 465 mx.example.test.", "_smtp._tls.example.test.\tIN\tTXT"):
        assert line in records
    assert r.run_cli("dkim", "keygen", "nowhere.test", check=False).returncode != 0
