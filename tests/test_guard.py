"""The guard: firewall, connection and rate limits, brute-force bans that spare the victim,
pregreet, the security log (read by fail2ban-regex) and metrics. Clients bind distinct
loopback source addresses (127.0.0.2, 127.0.0.3, ...) to act as different hosts."""

import base64
import re
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.request

from conftest import PASSWORD, ROOT, message_bytes

SUBMISSION = ("smtp", "submission")


def auth_plain(user, password):
    return "AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def tls_session(rampart, source, listener="submission"):
    c = rampart.connect(listener, source=source)
    greeting = c.reply()
    if not greeting.startswith("220"):
        return c, greeting
    c.cmd("EHLO client.test")
    c.starttls(rampart.tls_context())
    c.cmd("EHLO client.test")
    return c, greeting


def wait_until(check, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def refused(rampart, source, listener="smtp"):
    c = rampart.connect(listener, source=source)
    reply = c.reply()
    return not reply.startswith("220")


def test_brute_force_is_banned_while_others_are_served(rampart):
    rampart.start("guard.auth_failures_per_ip=3", "auth.max_failures=10", 'auth.failure_delay="10ms"', listeners=SUBMISSION)
    c, _ = tls_session(rampart, "127.0.0.2")
    assert c.cmd(auth_plain("bob@example.test", "guess1")).startswith("535")
    assert c.cmd(auth_plain("bob@example.test", "guess2")).startswith("535")
    assert c.cmd(auth_plain("alice@example.test", "guess3")).startswith("421 4.7.0")
    assert c.closed()
    # Banned on every listener, with a clear refusal.
    for listener in ("smtp", "submission"):
        c = rampart.connect(listener, source="127.0.0.2")
        assert c.reply().startswith("554 5.7.1")
    assert re.search(r"event=ban ip=127\.0\.0\.2/32 until=\S+ reason=auth_failures", rampart.log())
    assert "127.0.0.2/32\tactive" in rampart.run_cli("ban", "list").stdout
    other, _ = tls_session(rampart, "127.0.0.3")
    assert other.cmd(auth_plain("bob@example.test", PASSWORD)).startswith("235")


def test_the_victim_logs_in_during_an_attack(rampart):
    rampart.start("guard.auth_failures_per_account=4", "guard.auth_failures_per_ip=100", "guard.auth_failures_per_net=1000",
                  'auth.failure_delay="10ms"', listeners=SUBMISSION)
    owner, _ = tls_session(rampart, "127.0.0.5")
    assert owner.cmd(auth_plain("bob@example.test", PASSWORD)).startswith("235")
    owner.cmd("QUIT")
    for i in range(10, 16):
        c, _ = tls_session(rampart, f"127.0.0.{i}")
        assert c.cmd(auth_plain("bob@example.test", f"guess{i}")).startswith("535")
    # Even the right password from an address that never logged in to bob is not enough now...
    attacker, _ = tls_session(rampart, "127.0.0.20")
    assert attacker.cmd(auth_plain("bob@example.test", PASSWORD)).startswith("454 4.7.0")
    assert re.search(r"event=account_protected ip=127\.0\.0\.20 user=bob@example\.test", rampart.log())
    # ...but the owner, from the address they used before, gets in; other accounts are untouched.
    owner, _ = tls_session(rampart, "127.0.0.5")
    assert owner.cmd(auth_plain("bob@example.test", PASSWORD)).startswith("235")
    other, _ = tls_session(rampart, "127.0.0.21")
    assert other.cmd(auth_plain("alice@example.test", PASSWORD)).startswith("235")


def test_bans_from_the_cli_apply_live_and_survive_restart(rampart):
    rampart.start()
    assert not refused(rampart, "127.0.0.7")
    rampart.run_cli("ban", "add", "127.0.0.7", "--for", "1h", "--reason", "testing")
    assert wait_until(lambda: refused(rampart, "127.0.0.7"))
    assert not refused(rampart, "127.0.0.8")
    rampart.stop()
    rampart.start()
    assert refused(rampart, "127.0.0.7")
    assert re.search(r"event=banned_refused ip=127\.0\.0\.7 listener=smtp until=\S+ reason=testing", rampart.log())
    rampart.run_cli("ban", "remove", "127.0.0.7")
    assert wait_until(lambda: not refused(rampart, "127.0.0.7"))
    net = rampart.run_cli("ban", "add", "127.0.1.0/24", "--for", "10m").stdout
    assert "127.0.1.0/24" in net
    assert wait_until(lambda: refused(rampart, "127.0.1.99"))


def test_connection_flood_gets_421_while_others_are_served(rampart):
    rampart.start("guard.max_connections_per_ip=3")
    held = []
    for _ in range(3):
        c = rampart.connect("smtp", source="127.0.0.2")
        assert c.reply().startswith("220")
        held.append(c)
    flood = rampart.connect("smtp", source="127.0.0.2")
    assert flood.reply().startswith("421 4.7.0")
    assert flood.closed()
    other = rampart.connect("smtp", source="127.0.0.3")
    assert other.reply().startswith("220")
    assert re.search(r"event=rate_limited ip=127\.0\.0\.2 listener=smtp limit=connections_per_ip", rampart.log())
    held[0].cmd("QUIT")
    assert wait_until(lambda: rampart.connect("smtp", source="127.0.0.2").reply().startswith("220"))


def test_connection_rate_per_minute(rampart):
    rampart.start("guard.connection_rate_per_ip=5")
    replies = []
    for _ in range(7):
        c = rampart.connect("smtp", source="127.0.0.4")
        replies.append(c.reply()[:3])
        c.close()
    assert replies[:5] == ["220"] * 5 and replies[5:] == ["421", "421"], replies


def test_pregreet_early_talkers_are_refused(rampart):
    rampart.start('listener.smtp.pregreet_wait="1s"', "guard.pregreet_per_ip=2")
    bot = rampart.connect("smtp", source="127.0.0.2")
    bot.send(b"EHLO bot.test\r\n")
    assert bot.reply().startswith("554 5.5.1")
    assert bot.closed()
    assert re.search(r"event=pregreet ip=127\.0\.0\.2 listener=smtp", rampart.log())
    polite = rampart.connect("smtp", source="127.0.0.3")
    start = time.time()
    assert polite.reply().startswith("220")
    assert time.time() - start >= 0.9
    # A client that passed is not held again.
    again = rampart.connect("smtp", source="127.0.0.3")
    start = time.time()
    assert again.reply().startswith("220")
    assert time.time() - start < 0.5
    # A second early talk from the same bot gets it banned.
    bot = rampart.connect("smtp", source="127.0.0.2")
    bot.send(b"EHLO bot.test\r\n")
    bot.reply()
    assert re.search(r"event=ban ip=127\.0\.0\.2/32 .*reason=pregreet", rampart.log())


def test_firewall_deny_allow_and_reload(rampart):
    rampart.set_config("guard", "deny", '["127.0.0.9"]')
    rampart.start('listener.submission.allow=["127.0.0.3"]', listeners=SUBMISSION)
    c = rampart.connect("smtp", source="127.0.0.9")
    assert c.reply().startswith("554 5.7.1")
    assert c.closed()
    assert not refused(rampart, "127.0.0.2", "smtp")
    assert refused(rampart, "127.0.0.2", "submission")
    assert not refused(rampart, "127.0.0.3", "submission")
    assert re.search(r"event=firewall_denied ip=127\.0\.0\.9 listener=smtp", rampart.log())
    # SIGHUP reloads the rules from the file.
    rampart.set_config("guard", "deny", '["127.0.0.12"]')
    assert "global\tdeny\t127.0.0.12/32" in rampart.run_cli("firewall", "list").stdout
    rampart.proc.send_signal(1)
    rampart.wait_log(r"event=firewall_reloaded")
    assert refused(rampart, "127.0.0.12", "smtp")
    assert not refused(rampart, "127.0.0.9", "smtp")
    # Without the banner option a denied client sees the connection close and nothing else.
    rampart.set_config("guard", "deny_banner", "false")
    rampart.proc.send_signal(1)
    assert wait_until(lambda: rampart.log().count("event=firewall_reloaded") == 2)
    c = rampart.connect("smtp", source="127.0.0.12")
    assert c.reply() == ""


def tls_handshake_completes(rampart, within=1.5):
    """Whether an implicit-TLS handshake on `submissions` finishes within `within` seconds."""
    sock = socket.create_connection(("127.0.0.1", rampart.ports["submissions"]), timeout=within)
    try:
        rampart.tls_context().wrap_socket(sock, server_hostname="mx.example.test").close()
        return True
    except (TimeoutError, ssl.SSLError, OSError):
        return False
    finally:
        sock.close()


def test_reload_applies_a_new_tls_handshake_cap(rampart):
    # From the file, not --set: SIGHUP re-reads the file (and --set still wins over it).
    rampart.set_config("guard", "max_tls_handshakes", "1")
    rampart.set_config("guard", "handshake_timeout", '"15s"')
    rampart.start(listeners=("smtp", "submissions"))
    # A client that connects and never says hello holds the one handshake slot.
    holder = socket.create_connection(("127.0.0.1", rampart.ports["submissions"]), timeout=20)
    time.sleep(0.3)
    assert not tls_handshake_completes(rampart), "the cap of 1 should hold a second handshake"
    rampart.set_config("guard", "max_tls_handshakes", "2")
    rampart.proc.send_signal(1)
    rampart.wait_log(r"event=firewall_reloaded")
    # Without a restart, and while the first slot is still held.
    assert tls_handshake_completes(rampart)
    holder.close()


def test_rcpt_probing_is_banned(rampart):
    rampart.start("guard.probes_per_ip=4")
    c = rampart.connect("smtp", source="127.0.0.6")
    c.reply()
    c.cmd("EHLO prober.test")
    c.cmd("MAIL FROM:<x@remote.test>")
    replies = [c.cmd(f"RCPT TO:<guess{i}@example.test>")[:3] for i in range(3)]
    replies.append(c.cmd("RCPT TO:<relay@remote.test>")[:3])
    assert replies == ["550", "550", "550", "421"], replies
    assert refused(rampart, "127.0.0.6")


def test_hourly_message_rate(rampart):
    rampart.start("guard.smtp_messages_per_ip=2")
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=10, source_address=("127.0.0.2", 0)) as s:
        s.ehlo("client.test")
        for i in range(2):
            s.sendmail("a@remote.test", ["bob@example.test"], message_bytes(subject=str(i)))
        code, msg = s.mail("a@remote.test")
        assert code == 451 and msg.startswith(b"4.7.0")
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=10, source_address=("127.0.0.3", 0)) as s:
        s.sendmail("a@remote.test", ["bob@example.test"], message_bytes(subject="other host"))


def test_slow_loris_line_timeout(rampart):
    rampart.start('listener.smtp.line_timeout="1s"')
    c = rampart.connect("smtp")
    c.reply()
    start = time.time()
    reply = ""
    for ch in b"EHLO slow.client.test":
        try:
            c.send(bytes([ch]))
        except OSError:
            break
        time.sleep(0.2)
        c.sock.settimeout(0.01)
        try:
            data = c.sock.recv(1000)
            if data:
                reply = data.decode()
                break
        except TimeoutError:
            pass
        finally:
            c.sock.settimeout(10)
    assert reply.startswith("421 4.4.2"), reply
    assert 0.9 < time.time() - start < 3


def test_fail2ban_reads_the_security_log(rampart, tmp_path):
    log = tmp_path / "rampart.log"
    rampart.start(f'log.file="{log}"', 'auth.failure_delay="10ms"', 'listener.smtp.pregreet_wait="300ms"', listeners=SUBMISSION)
    c, _ = tls_session(rampart, "127.0.0.2")
    c.cmd(auth_plain("bob@example.test", "wrong"))
    c.cmd(auth_plain("nobody@example.test", "wrong"))
    good, _ = tls_session(rampart, "127.0.0.3")
    assert good.cmd(auth_plain("bob@example.test", PASSWORD)).startswith("235")
    mx = rampart.connect("smtp", source="127.0.0.4")
    time.sleep(0.4)
    mx.reply()
    mx.cmd("EHLO x.test")
    mx.cmd("MAIL FROM:<a@remote.test>")
    mx.cmd("RCPT TO:<relay@remote.test>")
    mx.cmd("RCPT TO:<nobody@example.test>")
    bot = rampart.connect("smtp", source="127.0.0.5")
    bot.send(b"EHLO bot\r\n")
    bot.reply()
    blaster = rampart.connect("smtp", source="127.0.0.6")
    time.sleep(0.4)
    blaster.reply()
    blaster.send(b"EHLO blaster.test\r\nMAIL FROM:<a@remote.test>\r\n")
    blaster.reply()
    rampart.wait_log(r"event=pregreet ip=127\.0\.0\.5")
    rampart.wait_log(r"event=pipelining_violation ip=127\.0\.0\.6")
    rampart.wait_log(r"event=auth_success .*ip=127\.0\.0\.3")
    filt = str(ROOT / "contrib" / "fail2ban" / "filter.d" / "rampart.conf")

    def regex(path, *extra):
        r = subprocess.run(["fail2ban-regex", *extra, str(path), filt], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    out = regex(log)
    matched = int(re.search(r"Lines: \d+ lines, \d+ ignored, (\d+) matched", out).group(1))
    assert matched == 6, out
    ips = regex(log, "-o", "ip").split()
    assert sorted(ips) == ["127.0.0.2", "127.0.0.2", "127.0.0.4", "127.0.0.4", "127.0.0.5", "127.0.0.6"], ips
    # Successful logins and ordinary traffic never match.
    clean = tmp_path / "clean.log"
    clean.write_text("".join(line + "\n" for line in log.read_text().splitlines()
                             if "event=auth_success" in line or "event=connect" in line or "event=accepted" in line))
    out = regex(clean)
    assert re.search(r"Lines: [1-9]\d* lines, 0 ignored, 0 matched", out), out


def test_metrics_endpoint(rampart):
    rampart.start('auth.failure_delay="10ms"', listeners=(*SUBMISSION, "metrics"))
    c, _ = tls_session(rampart, "127.0.0.2")
    c.cmd(auth_plain("bob@example.test", "wrong"))
    c.cmd(auth_plain("bob@example.test", PASSWORD))
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=10) as s:
        s.sendmail("a@remote.test", ["bob@example.test"], message_bytes())
    body = urllib.request.urlopen(f"http://127.0.0.1:{rampart.ports['metrics']}/metrics", timeout=10).read().decode()
    assert re.search(r'rampart_auth_total\{proto="smtp",result="failure"\} 1', body), body
    assert re.search(r'rampart_auth_total\{proto="smtp",result="success"\} 1', body), body
    assert re.search(r'rampart_connections_total\{listener="smtp"\} \d+', body)
    assert re.search(r'rampart_messages_total\{listener="smtp",result="accepted",reason="ok"\} 1', body), body
