#!/usr/bin/env python3
"""Writes the labelled corpus (spam/*.eml, ham/*.eml) from source-spam.txt and source-ham.txt.

Every message was written for Rampart; none comes from a public corpus. A source block is

    === ID note
    Header: value            (From, Subject, Reply-To, List-Id, ... as they should appear)
    Auth: spf=pass dkim=pass dmarc=pass p=none iprev=pass   (becomes Authentication-Results)
    Format: plain | plain-qp | html | html-b64 | alt | alt-b64
    Attach: NAME TYPE        (repeatable; an .html attachment's content follows the body
                              after a line '-----attachment-----')
    Omit: message-id date    (headers a sloppy sender leaves out)
    ---
    body (plain text; for html formats HTML; for alt: plain text, then a line
    '-----html-----', then the HTML)

IDs that share a prefix before the last letter (s012a, s012b) are one campaign: the corpus
test keeps a campaign in one cross-validation fold. Run from anywhere: python3 build.py
"""
import base64
import datetime
import hashlib
import os
import quopri
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RECIPIENTS = ["dana@rampart.test", "lee.morgan@rampart.test", "sam@rampart.test", "office@rampart.test", "j.okafor@rampart.test"]


def blocks(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for chunk in text.split("\n=== ")[1:]:
        head, _, body = chunk.partition("\n---\n")
        lines = head.split("\n")
        ident = lines[0].split()[0]
        fields = []
        for line in lines[1:]:
            if line.strip():
                name, _, value = line.partition(":")
                fields.append((name.strip(), value.strip()))
        yield ident, fields, body.rstrip("\n") + "\n"


def crlf(s):
    return s.replace("\r\n", "\n").replace("\n", "\r\n")


def b64(data):
    enc = base64.b64encode(data).decode()
    return "\r\n".join(enc[i:i + 76] for i in range(0, len(enc), 76)) + "\r\n"


def qp(text):
    return quopri.encodestring(text.encode("utf-8")).decode().replace("\n", "\r\n")


def text_part(kind, body, encoding):
    ctype = "text/html" if kind == "html" else "text/plain"
    head = f"Content-Type: {ctype}; charset=utf-8\r\n"
    if encoding == "b64":
        return head + "Content-Transfer-Encoding: base64\r\n\r\n" + b64(crlf(body).encode())
    if encoding == "qp":
        return head + "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp(body)
    return head + "Content-Transfer-Encoding: 8bit\r\n\r\n" + crlf(body)


def body_parts(fmt, body):
    """The message's body as MIME parts (one part: no multipart)."""
    if fmt in ("plain", "plain-qp", "html", "html-b64"):
        kind, _, enc = fmt.partition("-")
        return [text_part(kind, body, enc)]
    plain, _, html = body.partition("-----html-----\n")
    enc = "b64" if fmt == "alt-b64" else "qp"
    return [text_part("plain", plain, enc), text_part("html", html, enc)]


def multipart(subtype, parts, boundary):
    out = f"Content-Type: multipart/{subtype}; boundary=\"{boundary}\"\r\n\r\n"
    for p in parts:
        out += f"--{boundary}\r\n{p}"
        if not p.endswith("\r\n"):
            out += "\r\n"
    return out + f"--{boundary}--\r\n"


def attachment(name, ctype, ident, html):
    if name.endswith(".html") or name.endswith(".htm"):
        data = crlf(html).encode()
    else:
        # Stand-in bytes: what filters read is the name and the type, never the content.
        data = hashlib.sha256((ident + name).encode()).digest() * 24
        if name.lower().endswith(".pdf"):
            data = b"%PDF-1.4\n" + data
    return f"Content-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(data)


def auth_results(spec, from_domain):
    if not spec:
        return ""
    kv = dict(item.split("=", 1) for item in spec.split())
    parts = []
    if "iprev" in kv:
        parts.append(f"iprev={kv['iprev']} policy.iprev=203.0.113.{len(from_domain) % 250}")
    if "spf" in kv:
        parts.append(f"spf={kv['spf']} smtp.mailfrom={from_domain}")
    if "dkim" in kv:
        parts.append(f"dkim={kv['dkim']}" + ("" if kv["dkim"] == "none" else f" header.d={from_domain}"))
    if "dmarc" in kv:
        policy = f" (p={kv['p']})" if "p" in kv else ""
        parts.append(f"dmarc={kv['dmarc']}{policy} header.from={from_domain}")
    return "Authentication-Results: mx.rampart.test;\r\n\t" + ";\r\n\t".join(parts) + "\r\n"


def render(n, ident, fields, body):
    get = lambda k: [v for name, v in fields if name.lower() == k.lower()]
    fmt = (get("Format") or ["plain"])[0]
    omit = " ".join(get("Omit")).lower().split()
    from_domain = get("From")[0].rsplit("@", 1)[-1].strip("> ").lower()
    sent = datetime.datetime(2026, 11, 1 + n % 28, 6 + (n * 7) % 16, (n * 13) % 60, 4)
    date = sent.strftime("%a, %d %b %Y %H:%M:%S +0000")
    headers = auth_results((get("Auth") or [""])[0], from_domain)
    headers += f"Received: from mail.{from_domain} (mail.{from_domain} [203.0.113.{n % 250}])\r\n\tby mx.rampart.test with ESMTPS id {hashlib.md5(ident.encode()).hexdigest()[:12].upper()}\r\n\tfor <{RECIPIENTS[n % len(RECIPIENTS)]}>; {date}\r\n"
    skip = {"auth", "format", "attach", "omit", "html"}
    for name, value in fields:
        if name.lower() not in skip:
            headers += f"{name}: {value}\r\n"
    if not any(n.lower() == "to" for n, _ in fields):
        headers += f"To: {RECIPIENTS[n % len(RECIPIENTS)]}\r\n"
    if "date" not in omit:
        headers += f"Date: {date}\r\n"
    if "message-id" not in omit:
        headers += f"Message-ID: <{hashlib.sha1(ident.encode()).hexdigest()[:16]}.{n}@{from_domain}>\r\n"
    headers += "MIME-Version: 1.0\r\n"
    parts = body_parts(fmt, body)
    attachments = [a.split(None, 1) for a in get("Attach")]
    html_attachment = body.partition("-----attachment-----\n")[2]
    if html_attachment:
        parts = body_parts(fmt, body.partition("-----attachment-----\n")[0])
    if attachments:
        inner = parts[0] if len(parts) == 1 else multipart("alternative", parts, f"alt-{ident}")
        att = [attachment(name, ctype, ident, html_attachment) for name, ctype in attachments]
        return headers + multipart("mixed", [inner] + att, f"mix-{ident}")
    if len(parts) == 1:
        return headers + parts[0]
    return headers + multipart("alternative", parts, f"alt-{ident}")


def main():
    total = 0
    for label in ("spam", "ham"):
        out_dir = os.path.join(HERE, label)
        os.makedirs(out_dir, exist_ok=True)
        for old in os.listdir(out_dir):
            os.remove(os.path.join(out_dir, old))
        for n, (ident, fields, body) in enumerate(blocks(os.path.join(HERE, f"source-{label}.txt"))):
            with open(os.path.join(out_dir, f"{ident}.eml"), "w", encoding="utf-8", newline="") as f:
                f.write(render(n, ident, fields, body))
            total += 1
        print(label, len(os.listdir(out_dir)), file=sys.stderr)
    return total


if __name__ == "__main__":
    main()
