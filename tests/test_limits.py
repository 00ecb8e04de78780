"""Message limits end to end: header size and field count, Received loops, MIME nesting,
parts and attachments, each refused with its code and the limit named; overrides per sender."""

import smtplib

from conftest import message_bytes


def data(r, body, sender="a@remote.test", rcpts=("bob@example.test",)):
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=20) as s:
        s.ehlo("client.remote.test")
        s.mail(sender)
        for rcpt in rcpts:
            code, text = s.rcpt(rcpt)
            if code != 250:
                return code, text.decode()
        code, text = s.data(body)
        return code, text.decode()


def nested(depth):
    m = "Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for i in range(depth):
        m += f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n"
    m += f"--b{depth}\r\nContent-Type: text/plain\r\n\r\nleaf\r\n"
    for i in reversed(range(depth + 1)):
        m += f"--b{i}--\r\n"
    return m.encode()


def test_header_and_structure_limits(rampart):
    rampart.start("listener.smtp.max_header_size=8192", "listener.smtp.max_header_fields=100",
                  "listener.smtp.max_attachment_size=1000")
    big = b"X-Filler: " + b"a" * 10000 + b"\r\n" + message_bytes()
    code, text = data(rampart, big)
    assert (code, "5.3.4" in text, "max_header_size" in text) == (552, True, True), text
    many = b"".join(b"X-F%d: v\r\n" % i for i in range(120)) + message_bytes()
    code, text = data(rampart, many)
    assert code == 552 and "max_header_fields" in text, text
    loop = b"".join(b"Received: from hop%d.test by x.test; Fri, 27 Nov 2026 12:00:00 +0000\r\n" % i for i in range(51))
    code, text = data(rampart, loop + message_bytes())
    assert code == 554 and "5.4.6" in text and "loop" in text, text
    code, text = data(rampart, nested(25))
    assert code == 554 and "5.6.0" in text and "max_mime_depth" in text, text
    assert data(rampart, nested(10))[0] == 250
    import base64
    attachment = ("Subject: att\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
                  "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=x.bin\r\n"
                  "Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"x" * 2000).decode() + "\r\n--b--\r\n").encode()
    code, text = data(rampart, attachment)
    assert code == 552 and "max_attachment_size" in text, text
    assert len(rampart.messages("bob@example.test")) == 1
    log = rampart.log()
    assert "reason=mail_loop" in log and "reason=mime_too_deep" in log


def test_overrides_per_sender(rampart):
    rampart.start("listener.smtp.max_recipients=2",
                  'limits.override=[{match = "lists.remote.test", max_recipients = 5}]')
    rcpts = ["bob@example.test", "alice@example.test", "bob+1@example.test"]
    code, text = data(rampart, message_bytes(), rcpts=rcpts)
    assert code == 452 and "4.5.3" in text, text
    assert data(rampart, message_bytes(), sender="news@lists.remote.test", rcpts=rcpts)[0] == 250
