#!/usr/bin/env python3
"""Rampart side by side with Postfix and Dovecot, on loopback, in one command.

    bench/run.py [--runs 3] [--messages 5000] [--sessions 10] [--only smtp,filter,idle,imap,bigbox,bigfetch]

Prints a markdown table of medians over the runs with the ratios and appends it to
bench/results.md. Needs the Debian packages postfix (smtp-source), dovecot-imapd and
dnsmasq-base (`scripts/setup --bench` installs them) and runs as root (Postfix's master needs it).

What is measured:
- smtp: Postfix's smtp-source sends N messages of 4 KiB over S parallel sessions (a new
  connection per message) to Rampart's MX listener (local delivery, every message fsynced
  before 250; sender checks on against a local DNS server once they exist) and to a Postfix
  instance configured here, delivering to a maildir for the same recipient (Postfix fsyncs its
  queue files too). Messages per second.
- filter: the same load with the content layer on both sides: Rampart with a client DNSBL, a
  domain list and its built-in scorer (rules and classifier); Postfix with Debian's Rspamd
  proxy as a milter (rbl and fuzzy_check off, its DNS the bench dnsmasq). Messages per second.
- idle, idle-imap: Rampart's RSS right after start, and with 10,000 logged-in IMAP
  connections over TLS sitting in IDLE.
- idle-compare: the memory (PSS, all processes) each of 1,000 idle TLS IMAP connections adds
  to Rampart and to Dovecot.
- imap: the load generator `rampart-bench mix` (crates/rampart-bench) runs the same session mix
  against Rampart and a Dovecot configured here (passwd-file with the very same argon2id
  hashes, maildir, implicit TLS), 10 clients for a fixed time: LOGIN, SELECT, FETCH flags,
  FETCH 5 bodies, STORE, APPEND, STORE \\Deleted, EXPUNGE, LOGOUT. Operations per second and
  latency percentiles. Both servers remember verified passwords: Rampart's credential cache
  (on by default) and Dovecot's auth_cache (auth_cache_size = 10M, one hour).
- bigbox: a mailbox of --big-box messages (100,000 by default; generated, varied senders,
  subjects, dates and sizes from 1 to 60 KiB, one rare word in one message) in each server,
  both warm (every operation run once before it is timed): SELECT, FETCH 1:* (FLAGS), UID
  FETCH of the last 50 envelopes, SEARCH FROM, SEARCH BODY for the rare word, SORT (DATE).
  Milliseconds, one client. Also bytes on disk per byte of mail (Rampart: data_dir; Dovecot:
  the maildir and its indexes).
- bigfetch: one 40 MiB message in each server; 10 clients FETCH BODY.PEEK[] of it at once.
  The largest growth of the server's memory while they do (Rampart: RSS; Dovecot: PSS of its
  whole process tree, since each connection gets its own imap process).
- postgres (`--only postgres`, not in the default set): the smtp load against Rampart on the
  embedded store, on PostgreSQL (Debian's, fsync on, on the same machine) with one node, and
  with two nodes sharing the database, smtp-source split between them. Messages per second; the
  embedded store's figure is the reference column.
- outbound (`--only outbound`, not in the default set): 2,000 messages of 4 KiB submitted by
  `rampart-bench submit` over 10 STARTTLS sessions (pipelined) to one remote domain whose MX
  (the bench DNS) is Postfix's smtp-sink on loopback. Rampart authenticates the sessions and
  DKIM-signs (rsa-sha256, the key `rampart init` makes); the Postfix instance relays from
  mynetworks without AUTH or a signer. Every session connects, starts TLS (and logs in) before
  any session sends, so the window holds relaying only: Rampart's 10 argon2id logins (~0.2 s of
  CPU) fell inside it until 2026-12-01. Messages per
  second from the first message accepted to the last one received by smtp-sink (its -c
  counter), and the connections it saw; also the rate at which the submissions were accepted,
  which bounds the delivery rate. A third run per round has the reference Postfix sign too,
  through Debian's OpenDKIM as a milter (rsa-sha256, 2048 bits), for a comparison where both
  sides sign.

RAMPART_BENCH_BIN=PATH runs another build of the server (with --no-build), e.g. main's for a
before/after comparison. RAMPART_BENCH_ENCRYPTION=server runs Rampart with encryption at rest
(server-key mode); run the same parts with and without it to compare.
"""

import argparse
import json
import os
import pathlib
import pwd
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(os.environ.get("RAMPART_BENCH_BIN") or ROOT / "target" / "release" / "rampart")
BENCH = ROOT / "target" / "release" / "rampart-bench"
PASSWORD = "correct horse battery staple"
# The names of [quota]'s limits (rampart-config's QUOTA_KEYS).
QUOTA_KEYS = ("messages_per_hour", "messages_per_day", "recipients_per_hour", "recipients_per_day",
              "external_recipients_per_day")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def pss_tree_kib(root):
    """Proportional set size of a process and all its descendants: shared pages (Dovecot's
    binaries and libraries mapped by every imap process) are counted once in total."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Dns:
    def __init__(self, extra=()):
        self.port = free_port()
        args = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={self.port}", "--pid-file=",
                "--user=root", "--local=/test/",
                # Real zones have TTLs of minutes to hours; dnsmasq's default of 0 would defeat every
                # cache and measure UDP round trips instead of the server.
                "--local-ttl=300", "--neg-ttl=300",
                "--txt-record=sender.test,v=spf1 ip4:127.0.0.1 -all",
                "--txt-record=_dmarc.sender.test,v=DMARC1; p=none",
                "--host-record=mx.sender.test,127.0.0.1", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


# RAMPART_BENCH_ENCRYPTION=server runs Rampart with encryption at rest in server-key mode.
ENCRYPTION = os.environ.get("RAMPART_BENCH_ENCRYPTION", "")


def encrypt_store(config):
    """Turns the fresh store `rampart init` made into an encrypted one, as an administrator
    would: the mode in the config, `keys generate`, `store encrypt`."""
    text = config.read_text()
    section = text.index("[store.encryption]")
    mode = text.index('mode = "off"', section)
    config.write_text(text[:mode] + f'mode = "{ENCRYPTION}"' + text[mode + len('mode = "off"'):])
    for command in (["keys", "generate"], ["store", "encrypt"]):
        subprocess.run([BIN, *command, "--config", config], check=True, capture_output=True)


def account_hashes(rampart_dir):
    """Each account's password hash, read from a clear store."""
    import sqlite3
    db = sqlite3.connect(rampart_dir / "data" / "rampart.db")
    hashes = dict(db.execute("SELECT address, password_hash FROM accounts"))
    db.close()
    return hashes


class RampartServer:
    def __init__(self, base, dns, imap_users=0, extra_sets=(), store_url=None, name="rampart"):
        """`store_url`: a node on that PostgreSQL database (the first node on it adds the
        users; a second node only joins)."""
        self.dir = base / name
        init = [BIN, "init", "--dir", self.dir, "--hostname", "mx.bench.test", "--domain", "bench.test"]
        subprocess.run(init + (["--store-url", store_url] if store_url else []), check=True, capture_output=True)
        if store_url is None or name == "rampart":
            subprocess.run([BIN, "user", "add", "rcpt@bench.test", "--password-stdin", "--config", self.dir / "rampart.toml"],
                           input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        for n in range(1, imap_users + 1):
            subprocess.run([BIN, "user", "add", f"user{n}@bench.test", "--password-stdin", "--config",
                            self.dir / "rampart.toml"], input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        if ENCRYPTION:
            # The reference reads the users' hashes from the clear store before it is encrypted.
            (self.dir / "hashes.json").write_text(json.dumps(account_hashes(self.dir)))
            encrypt_store(self.dir / "rampart.toml")
        self.port = free_port()
        self.imaps = free_port()
        self.log = open(self.dir / "server.log", "wb")
        sets = [
            f'listener.smtp.bind=["127.0.0.1:{self.port}"]',
            "listener.submission.bind=[]", "listener.submissions.bind=[]",
            "listener.imap.bind=[]", f'listener.imaps.bind=["127.0.0.1:{self.imaps}"]', "listener.metrics.bind=[]",
            # Two nodes run side by side (`postgres`): no fixed ports.
            "listener.https.bind=[]", "listener.http.bind=[]",
            "listener.imaps.max_connections=20000", "server.max_connections=30000",
            f'dns.nameservers=["127.0.0.1:{dns.port}"]',
            # The benchmark is one client address opening thousands of connections: exempt it
            # from the per-address limits, as an administrator would a trusted relay.
            'guard.allowlist=["127.0.0.0/8"]',
            'log.level="warn"',
            # The bench runs as root in a temporary directory, as the reference servers' masters do.
            "server.allow_root=true",
            *extra_sets,
            *os.environ.get("RAMPART_BENCH_SETS", "").split("|"),
        ]
        sets = [x for x in sets if x]
        # RAMPART_BENCH_WRAP runs the server under a profiler, e.g. "perf record -g -o /tmp/p.data --".
        args = [*os.environ.get("RAMPART_BENCH_WRAP", "").split(), BIN, "serve", "--config", self.dir / "rampart.toml"]
        for s in sets:
            args += ["--set", s]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port)
        except RuntimeError:
            self.proc.kill()
            sys.exit(f"rampart did not start:\n{(self.dir / 'server.log').read_text()}")

    def rss(self):
        return rss_kib(self.proc.pid)

    def cpu_seconds(self):
        """User and system CPU the server (or its wrapper's child) has used so far."""
        pids = [self.proc.pid] + [int(p) for p in open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()]
        total = 0
        for pid in pids:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class PostfixServer:
    """A private Postfix instance (see ../shared/testing.md): virtual delivery to a maildir,
    optionally with a milter (Rspamd) in front of it."""

    def __init__(self, base, milter=None):
        self.dir = base / "postfix"
        etc, queue, data, mail = (self.dir / d for d in ("etc", "queue", "data", "mail"))
        for d in (etc, queue, data, mail):
            d.mkdir(parents=True)
        postfix_user = pwd.getpwnam("postfix")
        os.chown(data, postfix_user.pw_uid, postfix_user.pw_gid)
        os.chown(mail, postfix_user.pw_uid, postfix_user.pw_gid)
        self.port = free_port()
        master = open("/usr/share/postfix/master.cf.dist").read()
        master = re.sub(r"^smtp\s+inet.*$", f"127.0.0.1:{self.port} inet n - n - - smtpd", master, count=1, flags=re.M)
        (etc / "master.cf").write_text(master)
        (etc / "vmailbox").write_text("rcpt@bench.test bench.test/rcpt/\n")
        (etc / "main.cf").write_text(f"""
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
myhostname = mx.postfix.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = bench.test
virtual_mailbox_base = {mail}
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_uid_maps = static:{postfix_user.pw_uid}
virtual_gid_maps = static:{postfix_user.pw_gid}
maillog_file = {self.dir}/postfix.log
maillog_file_prefixes = {self.dir}
default_process_limit = 100
smtpd_client_connection_rate_limit = 0
""" + (f"smtpd_milters = inet:{milter}\nmilter_default_action = tempfail\nmilter_protocol = 6\n" if milter else ""))
        r = subprocess.run(["postfix", "-c", etc, "start"], capture_output=True, text=True)
        if r.returncode != 0:
            log = (self.dir / "postfix.log").read_text() if (self.dir / "postfix.log").exists() else ""
            raise RuntimeError(f"postfix start failed: {r.stdout}{r.stderr}{log}")
        wait_port(self.port)
        self.etc = etc
        self.mail = mail

    def delivered(self):
        new = self.mail / "bench.test" / "rcpt" / "new"
        return len(os.listdir(new)) if new.exists() else 0

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class DovecotServer:
    """A private Dovecot (see ../shared/testing.md) with the same users and password hashes."""

    def __init__(self, base, rampart_dir, users):
        self.dir = base / "dovecot"
        for d in ("run", "state", "mail"):
            (self.dir / d).mkdir(parents=True)
        shutil.chown(self.dir / "mail", "nobody", "nogroup")
        saved = rampart_dir / "hashes.json"
        hashes = json.loads(saved.read_text()) if saved.exists() else account_hashes(rampart_dir)
        (self.dir / "passwd").write_text("".join(f"user{n}@bench.test:{{ARGON2ID}}{hashes[f'user{n}@bench.test']}\n"
                                                 for n in range(1, users + 1)))
        self.port = free_port()
        tls = rampart_dir / "tls"
        (self.dir / "dovecot.conf").write_text(f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{tls}/cert.pem
ssl_key = <{tls}/key.pem
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain login
# Verified passwords remembered, as Rampart's credential cache does (a fair login cost).
auth_cache_size = 10M
auth_cache_ttl = 1 hour
default_login_user = nobody
default_internal_user = nobody
mail_location = maildir:~/Maildir
mail_fsync = always
passdb {{
  driver = passwd-file
  args = {self.dir}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={self.dir}/mail/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = 2
  client_limit = 20000
}}
service imap {{
  process_limit = 20000
}}
service anvil {{
  client_limit = 40000
}}
service auth {{
  client_limit = 40000
}}
default_client_limit = 40000
default_vsz_limit = 0
mail_max_userip_connections = 20000
""")
        # Dovecot daemonizes: its children would hold captured pipes open forever.
        subprocess.run(["dovecot", "-c", self.dir / "dovecot.conf"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def master_pid(self):
        return int((self.dir / "run" / "master.pid").read_text())

    def stop(self):
        subprocess.run(["dovecot", "-c", self.dir / "dovecot.conf", "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        time.sleep(0.5)


def bench_tool(addr_port, *args, users=10):
    p = subprocess.run([BENCH, "--addr", f"127.0.0.1:{addr_port}", "--password", PASSWORD, "--users", str(users), *args],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"rampart-bench {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    return p.stdout


def bench_imap(args):
    import json
    results = {"rampart": [], "dovecot": [], "rampart_p99": [], "dovecot_p99": []}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="rampart-bench-") as tmp:
            base = pathlib.Path(tmp)
            # Postfix and Dovecot drop privileges: they must be able to reach their directories.
            base.chmod(0o755)
            dns = Dns()
            try:
                r = RampartServer(base, dns, imap_users=10)
                try:
                    bench_tool(r.imaps, "populate", "--messages", "200")
                    out = json.loads(bench_tool(r.imaps, "mix", "--clients", "10", "--seconds", str(args.imap_seconds)))
                    results["rampart"].append(out["ops_per_sec"])
                    results["rampart_p99"].append(out["p99_ms"])
                finally:
                    r.stop()
                d = DovecotServer(base, r.dir, 10)
                try:
                    bench_tool(d.port, "populate", "--messages", "200")
                    out = json.loads(bench_tool(d.port, "mix", "--clients", "10", "--seconds", str(args.imap_seconds)))
                    results["dovecot"].append(out["ops_per_sec"])
                    results["dovecot_p99"].append(out["p99_ms"])
                finally:
                    d.stop()
            finally:
                dns.stop()
        print(f"imap run {run + 1}: rampart {results['rampart'][-1]:.0f} ops/s, dovecot {results['dovecot'][-1]:.0f} ops/s",
              file=sys.stderr)
    return results


BIG_FETCH_MIB = 40


def big_message():
    head = (b"From: sender@bench.test\r\nTo: user1@bench.test\r\nSubject: big\r\n"
            b"Message-ID: <big@bench.test>\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\n\r\n")
    line = b"".join(b"%c" % (65 + (i * 7) % 26) for i in range(998)) + b"\r\n"
    return head + line * (BIG_FETCH_MIB * 1024 * 1024 // len(line))


def imaps_login(port):
    import imaplib
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=300)
    m.login("user1@bench.test", PASSWORD)
    return m


def big_fetch_growth(port, measure):
    """Appends one big message, then 10 clients fetch it at once; returns the largest growth
    of measure() (KiB) seen while they do."""
    import threading
    raw = big_message()
    m = imaps_login(port)
    m.append("INBOX", None, None, raw)
    m.logout()
    time.sleep(1)
    before, peak, errors = measure(), [0], []

    def client():
        try:
            c = imaps_login(port)
            c.select("INBOX", readonly=True)
            typ, data = c.fetch("1", "(BODY.PEEK[])")
            assert typ == "OK" and len(data[0][1]) == len(raw), "short fetch"
            c.logout()
        except Exception as e:  # reported after the run
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(10)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak[0] = max(peak[0], measure())
        time.sleep(0.01)
    assert not errors, errors
    return peak[0] - before


def bench_big_fetch(args):
    results = {"rampart": [], "dovecot": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="rampart-bench-") as tmp:
            base = pathlib.Path(tmp)
            base.chmod(0o755)
            dns = Dns()
            try:
                r = RampartServer(base, dns, imap_users=1)
                try:
                    results["rampart"].append(big_fetch_growth(r.imaps, r.rss) / 1024)
                finally:
                    r.stop()
                d = DovecotServer(base, r.dir, 1)
                try:
                    results["dovecot"].append(big_fetch_growth(d.port, lambda: pss_tree_kib(d.master_pid())) / 1024)
                finally:
                    d.stop()
            finally:
                dns.stop()
        print(f"big fetch: rampart +{results['rampart'][-1]:.1f} MiB, dovecot +{results['dovecot'][-1]:.1f} MiB",
              file=sys.stderr)
    return results


RARE_WORD = "quixotically"
WORDS = ("meeting budget report invoice schedule project update review travel lunch draft contract "
         "server backup holiday photos family weekend offer discount account security notice").split()


_LINES = []


def box_lines():
    """A pool of body lines (about 84 bytes each), made once."""
    if not _LINES:
        import random
        rnd = random.Random(0)
        _LINES.extend(" ".join(rnd.choice(WORDS) for _ in range(12)) + "\r\n" for _ in range(2000))
    return _LINES


def box_message(i):
    """A varied message: its size, sender, subject and date depend on i."""
    import random
    rnd = random.Random(i)
    size = int(1024 * (1 + rnd.expovariate(1 / 6))) if i % 97 else 60 * 1024
    sender = f"{rnd.choice(['Alice', 'Bob', 'Carol', 'Dave', 'Eve', 'Mallory'])} {i % 1000} <s{i % 5000}@example{i % 50}.test>"
    day = 1 + i % 28
    head = (f"From: {sender}\r\nTo: user1@bench.test\r\nSubject: {' '.join(rnd.sample(WORDS, 3))} {i}\r\n"
            f"Message-ID: <{i}@bench.test>\r\nDate: {day:02d} Nov 2026 {i % 24:02d}:{i % 60:02d}:00 +0000\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
    body = rnd.choices(box_lines(), k=max(0, size - len(head)) // 84)
    if i == 4242:
        body.insert(len(body) // 2, f"a {RARE_WORD} rare word\r\n")
    return (head + "".join(body)).encode()


def populate_rampart_box(port, n):
    """APPENDs n messages over one connection, LITERAL+ pipelined in batches."""
    m = imaps_login(port)
    sock = m.sock
    for start in range(0, n, 200):
        tags = []
        out = bytearray()
        for i in range(start, min(n, start + 200)):
            raw = box_message(i)
            tag = f"p{i}"
            tags.append(tag)
            out += f"{tag} APPEND INBOX {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n"
        sock.sendall(out)
        pending = set(tags)
        while pending:
            line = m.readline().decode()
            tag = line.split(" ", 1)[0]
            if tag in pending:
                assert line.split(" ")[1] == "OK", line
                pending.discard(tag)
    m.logout()


def populate_dovecot_box(maildir, n):
    """Writes n messages straight into the maildir, as delivery would."""
    cur = maildir / "cur"
    for d in ("cur", "new", "tmp"):
        (maildir / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        raw = box_message(i).replace(b"\r\n", b"\n")
        (cur / f"{1700000000 + i}.M{i}P1.bench,S={len(raw)}:2,").write_bytes(raw)
    subprocess.run(["chown", "-R", "nobody:nogroup", maildir.parent.parent], check=True)


BOX_OPS = [
    ("SELECT", lambda m: m.select("INBOX")),
    ("FETCH 1:* (FLAGS)", lambda m: m.fetch("1:*", "(FLAGS)")),
    ("UID FETCH last 50 (ENVELOPE)", lambda m: m.uid("FETCH", "%d:*" % max(1, int(m.uid("SEARCH", "ALL")[1][0].split()[-1]) - 49), "(ENVELOPE)")),
    ("SEARCH FROM", lambda m: m.search(None, "FROM", '"s1234@"')),
    ("SEARCH BODY (rare word)", lambda m: m.search(None, "BODY", RARE_WORD)),
    ("SORT (DATE)", lambda m: m.sort("(DATE)", "UTF-8", "ALL")),
]


def time_box_ops(port):
    """Milliseconds of each operation, the second of two runs (warm)."""
    m = imaps_login(port)
    m.select("INBOX")
    times = {}
    for name, op in BOX_OPS:
        for k in range(2):
            t = time.time()
            typ, data = op(m)
            assert typ == "OK", (name, data)
            times[name] = (time.time() - t) * 1000
        if name.startswith("SEARCH BODY"):
            assert data[0].split() == [b"4243"], data
    m.logout()
    return times


def du_bytes(path):
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout.split()[0])


def bench_big_box(args):
    n = args.big_box
    mail_bytes = sum(len(box_message(i)) for i in range(n))
    results = {"rampart": [], "dovecot": [], "rampart_disk": [], "dovecot_disk": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="rampart-bench-") as tmp:
            base = pathlib.Path(tmp)
            base.chmod(0o755)
            dns = Dns()
            try:
                r = RampartServer(base, dns, imap_users=1)
                try:
                    populate_rampart_box(r.imaps, n)
                    results["rampart"].append(time_box_ops(r.imaps))
                    results["rampart_disk"].append(du_bytes(r.dir / "data") / mail_bytes)
                finally:
                    r.stop()
                d = DovecotServer(base, r.dir, 1)
                try:
                    populate_dovecot_box(d.dir / "mail" / "bench.test" / "user1" / "Maildir", n)
                    results["dovecot"].append(time_box_ops(d.port))
                    results["dovecot_disk"].append(du_bytes(d.dir / "mail") / mail_bytes)
                finally:
                    d.stop()
            finally:
                dns.stop()
        print(f"big box: rampart {results['rampart'][-1]}, dovecot {results['dovecot'][-1]}", file=sys.stderr)
    return results


def measure_idle(port, n, measure):
    """Opens n logged-in TLS connections in IDLE, waits until the server has settled and
    returns measure() taken then, with the connections still open."""
    holder = subprocess.Popen([BENCH, "--addr", f"127.0.0.1:{port}", "--password", PASSWORD,
                               "idle", "--connections", str(n)], stdout=subprocess.PIPE, text=True)
    try:
        line = holder.stdout.readline()
        assert '"idle"' in line, f"idle holder failed: {line}"
        # Idle means settled: argon2 work areas linger 10 s after the last login
        # (crates/rampart-auth/src/work.rs).
        time.sleep(15)
        return measure()
    finally:
        holder.kill()
        holder.wait()


def bench_idle_connections(args):
    values = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="rampart-bench-") as tmp:
            dns = Dns()
            try:
                r = RampartServer(pathlib.Path(tmp), dns, imap_users=10)
                try:
                    values.append(measure_idle(r.imaps, args.idle, lambda: r.rss() / 1024))
                finally:
                    r.stop()
            finally:
                dns.stop()
    return values


def added_per_connection(port, root_pid, n):
    """KiB of PSS (the server's whole process tree) each of n idle connections adds."""
    time.sleep(1)
    before = pss_tree_kib(root_pid)
    return (measure_idle(port, n, lambda: pss_tree_kib(root_pid)) - before) / n


def bench_idle_per_connection(args):
    """Memory each idle connection adds, Rampart against Dovecot (one imap process per
    connection), at a count Dovecot fits in this machine's memory."""
    n = args.idle_reference
    results = {"rampart": [], "dovecot": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="rampart-bench-") as tmp:
            base = pathlib.Path(tmp)
            base.chmod(0o755)
            dns = Dns()
            try:
                r = RampartServer(base, dns, imap_users=10)
                try:
                    results["rampart"].append(added_per_connection(r.imaps, r.proc.pid, n))
                finally:
                    r.stop()
                d = DovecotServer(base, r.dir, 10)
                try:
                    results["dovecot"].append(added_per_connection(d.port, d.master_pid(), n))
                finally:
                    d.stop()
            finally:
                dns.stop()
        print(f"idle per connection: rampart {results['rampart'][-1]:.1f} KiB, dovecot {results['dovecot'][-1]:.1f} KiB",
              file=sys.stderr)
    return results


def smtp_source(port, messages, sessions):
    """Runs smtp-source; returns the time it started."""
    start = time.time()
    subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", "4096",
                    "-f", "bench@sender.test", "-t", "rcpt@bench.test", "-M", "mx.sender.test", f"127.0.0.1:{port}"],
                   check=True, capture_output=True)
    return start


def rampart_inbox_count(server):
    out = subprocess.run([BIN, "message", "list", "rcpt@bench.test", "--config", server.dir / "rampart.toml"],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


def bench_smtp(args):
    results = {"rampart": [], "postfix": []}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="rampart-bench-") as tmp:
            base = pathlib.Path(tmp)
            # Postfix and Dovecot drop privileges: they must be able to reach their directories.
            base.chmod(0o755)
            dns = Dns()
            try:
                r = RampartServer(base, dns)
                try:
                    # Rampart says 250 only once the message is in the mailbox.
                    start = smtp_source(r.port, args.messages, args.sessions)
                    elapsed = time.time() - start
                    got = rampart_inbox_count(r)
                    assert got == args.messages, f"rampart stored {got} of {args.messages}"
                    results["rampart"].append(args.messages / elapsed)
                finally:
                    r.stop()
                p = PostfixServer(base)
                try:
                    # Postfix says 250 once queued: count until the last one reached the maildir.
                    start = smtp_source(p.port, args.messages, args.sessions)
                    deadline = time.time() + 300
                    while p.delivered() < args.messages and time.time() < deadline:
                        time.sleep(0.02)
                    assert p.delivered() == args.messages, f"postfix delivered {p.delivered()} of {args.messages}"
                    results["postfix"].append(args.messages / (time.time() - start))
                finally:
                    p.stop()
            finally:
                dns.stop()
        print(f"smtp run {run + 1}: rampart {results['rampart'][-1]:.0f}/s, postfix {results['postfix'][-1]:.0f}/s",
              file=sys.stderr)
    return results


def bench_postgres(args):
    """SMTP inbound (as `smtp`) on the embedded store and on PostgreSQL, one node and two
    nodes sharing one database (smtp-source split between them: half the sessions and half the
    messages each, at once). PostgreSQL runs with fsync and full-page writes on, on this
    machine, as a single-machine deployment would; both stores answer 250 after their commit."""
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres import Postgres

    results = {"sqlite": [], "pg1": [], "pg2": []}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="rampart-bench-") as tmp:
            base = pathlib.Path(tmp)
            base.chmod(0o755)
            dns = Dns()
            pg = Postgres(durable=True).start()
            try:
                r = RampartServer(base / "sqlite", dns)
                try:
                    start = smtp_source(r.port, args.messages, args.sessions)
                    results["sqlite"].append(args.messages / (time.time() - start))
                    assert rampart_inbox_count(r) == args.messages
                finally:
                    r.stop()
                url = pg.database()
                r = RampartServer(base / "pg1", dns, store_url=url)
                try:
                    start = smtp_source(r.port, args.messages, args.sessions)
                    results["pg1"].append(args.messages / (time.time() - start))
                    assert rampart_inbox_count(r) == args.messages
                finally:
                    r.stop()
                url = pg.database()
                nodes = [RampartServer(base / "pg2", dns, store_url=url, name=n, extra_sets=[f'cluster.node_id="{n}"'])
                         for n in ("rampart", "node-b")]
                try:
                    half, sessions = args.messages // 2, max(1, args.sessions // 2)
                    start = time.time()
                    sources = [subprocess.Popen(["smtp-source", "-s", str(sessions), "-m", str(half), "-l", "4096",
                                                 "-f", "bench@sender.test", "-t", "rcpt@bench.test", "-M", "mx.sender.test",
                                                 f"127.0.0.1:{n.port}"], stdout=subprocess.DEVNULL)
                               for n in nodes]
                    assert all(s.wait() == 0 for s in sources)
                    results["pg2"].append(2 * half / (time.time() - start))
                    assert rampart_inbox_count(nodes[1]) == 2 * half
                finally:
                    for n in nodes:
                        n.stop()
            finally:
                pg.stop()
                dns.stop()
        print(f"postgres run {run + 1}: sqlite {results['sqlite'][-1]:.0f}/s, postgres one node {results['pg1'][-1]:.0f}/s, "
              f"two nodes {results['pg2'][-1]:.0f}/s", file=sys.stderr)
    return results


def bench_filter(args):
    """SMTP inbound with the content layer on both sides: Rampart with a client DNSBL, a domain
    list and its built-in scorer; Postfix with Debian's Rspamd as a milter (rbl and fuzzy off,
    DNS pointed at the bench dnsmasq, patterns cached between runs)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from peers import Rspamd
    filters = ['filter.dnsbl=[{zone = "zen.bl.test", score = 3.0}]', 'filter.domainbl=[{zone = "dbl.bl.test", score = 5.0}]']
    results = {"rampart": [], "postfix": []}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="rampart-bench-") as tmp:
            base = pathlib.Path(tmp)
            base.chmod(0o755)
            dns = Dns()
            try:
                r = RampartServer(base, dns, extra_sets=filters)
                try:
                    start = smtp_source(r.port, args.messages, args.sessions)
                    elapsed = time.time() - start
                    got = rampart_inbox_count(r)
                    assert got == args.messages, f"rampart stored {got} of {args.messages}"
                    results["rampart"].append(args.messages / elapsed)
                finally:
                    r.stop()
                # One scanning process per core, as Rampart uses every core.
                rspamd = Rspamd(base, dns=f"127.0.0.1:{dns.port}", workers=os.cpu_count()).start()
                try:
                    p = PostfixServer(base, milter=rspamd.address)
                    try:
                        start = smtp_source(p.port, args.messages, args.sessions)
                        deadline = time.time() + 600
                        while p.delivered() < args.messages and time.time() < deadline:
                            time.sleep(0.02)
                        assert p.delivered() == args.messages, f"postfix delivered {p.delivered()} of {args.messages}"
                        results["postfix"].append(args.messages / (time.time() - start))
                    finally:
                        p.stop()
                finally:
                    rspamd.stop()
            finally:
                dns.stop()
        print(f"filter run {run + 1}: rampart {results['rampart'][-1]:.0f}/s, postfix+rspamd {results['postfix'][-1]:.0f}/s",
              file=sys.stderr)
    return results


def bench_idle(args):
    values = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="rampart-bench-") as tmp:
            dns = Dns()
            try:
                r = RampartServer(pathlib.Path(tmp), dns)
                time.sleep(1)
                values.append(r.rss() / 1024)
                r.stop()
            finally:
                dns.stop()
    return values


# --- outbound: submission → queue → remote MX (smtp-sink) ------------------------------------

REMOTE_DOMAIN = "remote.test"


class SmtpSink:
    """Postfix's smtp-sink as the remote MX: counts messages (its -c counter, one line per
    event on stdout) and notes when the count reached `expect`."""

    def __init__(self, expect, dump=None):
        import threading
        self.port = free_port()
        self.expect = expect
        self.count = 0
        self.sessions = 0
        self.done_at = None
        # -D: each message received goes to a file named `dump` + a suffix (to check what the
        # sender did to it).
        self.proc = subprocess.Popen(["smtp-sink", "-c", "-u", "postfix", *(["-D", dump] if dump else []),
                                      f"127.0.0.1:{self.port}", "1024"], stdout=subprocess.PIPE)
        threading.Thread(target=self._read, daemon=True).start()
        wait_port(self.port)

    def _read(self):
        buf = b""
        while chunk := self.proc.stdout.read1(4096):
            buf += chunk
            *lines, buf = re.split(rb"[\r\n]", buf)
            for line in lines:
                m = re.search(rb"sess=(\d+) quit=\d+ mesg=(\d+)", line)
                if m:
                    self.sessions, self.count = int(m.group(1)), int(m.group(2))
                    if self.count >= self.expect and self.done_at is None:
                        self.done_at = time.time()

    def wait(self, timeout=600):
        deadline = time.time() + timeout
        while self.done_at is None and time.time() < deadline:
            time.sleep(0.02)
        if self.done_at is None:
            raise RuntimeError(f"smtp-sink received {self.count} of {self.expect}")
        return self.done_at

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def submit_outbound(port, messages, sessions, login):
    """rampart-bench submit: `sessions` STARTTLS sessions as user1@bench.test, pipelined.
    Returns (first accepted, last accepted) as Unix times."""
    import json
    args = ["submit", "--messages", str(messages), "--sessions", str(sessions), "--rcpt-domain", REMOTE_DOMAIN]
    out = json.loads(bench_tool(port, *args, *([] if login else ["--no-login"]), users=1))
    return out["first"], out["last"]


def postfix_outbound_config(p, sink_port, rampart_tls):
    """Turns the bench's Postfix into a relay for REMOTE_DOMAIN to the sink, with STARTTLS on
    its submission side like Rampart's (the same certificate)."""
    (p.etc / "transport").write_text(f"{REMOTE_DOMAIN} smtp:[127.0.0.1]:{sink_port}\n")
    with open(p.etc / "main.cf", "a") as f:
        f.write(f"""
transport_maps = texthash:{p.etc}/transport
smtpd_tls_security_level = may
smtpd_tls_cert_file = {rampart_tls}/cert.pem
smtpd_tls_key_file = {rampart_tls}/key.pem
""")
    subprocess.run(["postfix", "-c", p.etc, "reload"], check=True, capture_output=True)
    time.sleep(1)


class OpenDkim:
    """Debian's OpenDKIM as a signing milter for the reference Postfix, so that both sides of
    the outbound comparison also sign: rsa-sha256 with a 2048-bit key, relaxed/relaxed, for
    the bench sender's domain."""

    def __init__(self, base):
        # OpenDKIM refuses a config or key under a directory others may write to, /tmp among
        # them: its files live in a private directory under /run.
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="rampart-bench-opendkim-", dir="/run"))
        self.dir.chmod(0o755)
        user = pwd.getpwnam("opendkim")
        key = self.dir / "bench.private"
        subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True)
        os.chown(key, user.pw_uid, user.pw_gid)
        key.chmod(0o600)
        self.port = free_port()
        conf = self.dir / "opendkim.conf"
        conf.write_text(f"""Mode s
Domain bench.test
Selector bench
KeyFile {key}
Canonicalization relaxed/relaxed
SignatureAlgorithm rsa-sha256
InternalHosts 127.0.0.1
Socket inet:{self.port}@127.0.0.1
UserID opendkim
PidFile {self.dir}/opendkim.pid
Syslog no
""")
        self.proc = subprocess.Popen(["opendkim", "-f", "-x", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def outbound_run(kind, base, dns, args):
    """One run against one server; returns (messages/s, accepting seconds, sink sessions).
    `kind`: rampart, postfix, or postfix-dkim (Postfix with OpenDKIM signing)."""
    signer = OpenDkim(base) if kind == "postfix-dkim" else None
    received = signer and signer.dir / "received"
    if received:
        received.mkdir()
        shutil.chown(received, "postfix")
    sink = SmtpSink(args.outbound_messages, dump=received and received / "m")
    try:
        if kind == "rampart":
            sub = free_port()
            # Quotas stay on (every message is counted) with limits the benchmark's one user
            # does not reach; spam scanning of submitted mail is on by default.
            quotas = [f"quota.{k}=10000000" for k in QUOTA_KEYS] + [f"quota.domain_{k}=10000000" for k in QUOTA_KEYS]
            server = RampartServer(base, dns, imap_users=1, extra_sets=[f'listener.submission.bind=["127.0.0.1:{sub}"]',
                                                          f"queue.remote_port={sink.port}", *quotas])
            wait_port(sub)
        else:
            server = PostfixServer(base, milter=signer and f"127.0.0.1:{signer.port}")
            postfix_outbound_config(server, sink.port, base / "rampart" / "tls")
            sub = server.port
        cpu = None
        try:
            start_cpu = server.cpu_seconds() if kind == "rampart" else 0
            first, last = submit_outbound(sub, args.outbound_messages, args.sessions, login=kind == "rampart")
            done = sink.wait()
            if kind == "rampart":
                cpu = (server.cpu_seconds() - start_cpu) / args.outbound_messages * 1000
        finally:
            server.stop()
        if received:
            sink.stop()  # its files complete
            signed = sum(f.read_bytes().count(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=bench.test;")
                         for f in received.iterdir())
            if signed < args.outbound_messages:
                raise RuntimeError(f"OpenDKIM signed {signed} of {args.outbound_messages} messages")
        # smtp-sink counted wait_port's probe as a session too.
        return args.outbound_messages / (done - first), last - first, sink.sessions - 1, cpu
    finally:
        sink.stop()
        if signer:
            signer.stop()


def bench_outbound(args):
    kinds = ("rampart", "postfix", "postfix-dkim")
    results = {f"{k}{part}": [] for k in kinds for part in ("", "_conns", "_accept")}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="rampart-bench-") as tmp:
            base = pathlib.Path(tmp)
            base.chmod(0o755)
            dns = Dns(extra=[f"--mx-host={REMOTE_DOMAIN},mx.{REMOTE_DOMAIN},10", f"--host-record=mx.{REMOTE_DOMAIN},127.0.0.1"])
            try:
                for kind in kinds:
                    if kind == "postfix-dkim":
                        # A fresh Postfix queue for the second reference run.
                        shutil.rmtree(base / "postfix")
                    rate, accepting, conns, cpu = outbound_run(kind, base, dns, args)
                    results[kind].append(rate)
                    results[f"{kind}_conns"].append(conns)
                    results[f"{kind}_accept"].append(args.outbound_messages / accepting)
                    cpu_note = f", server CPU {cpu:.2f} ms/message" if cpu is not None else ""
                    print(f"outbound run {run + 1}: {kind} {rate:.0f} msg/s delivered (accepted in {accepting:.1f} s), "
                          f"{conns} connections to the sink{cpu_note}", file=sys.stderr)
            finally:
                dns.stop()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--only", default="smtp,filter,idle,imap,idle-imap,idle-compare,bigbox,bigfetch")
    ap.add_argument("--outbound-messages", type=int, default=2000)
    ap.add_argument("--imap-seconds", type=int, default=20)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--big-box", type=int, default=100000)
    # Dovecot runs an imap process per connection: 10,000 of them would not fit in memory.
    ap.add_argument("--idle-reference", type=int, default=1000)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the private Postfix instance needs it")
    only = set(args.only.split(","))
    tools = ["dnsmasq", "dovecot"] + (["smtp-source", "postfix"] if only & {"smtp", "filter"} else [])
    tools += ["rspamd"] if "filter" in only else []
    tools += ["postfix", "smtp-sink", "opendkim"] if "outbound" in only else []
    tools += ["smtp-source"] if "postgres" in only else []
    for tool in tools:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: run scripts/setup --bench")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "rampart", "--bin", "rampart-bench"], cwd=ROOT, check=True)
    import resource
    # 10,000 connections need as many descriptors in the server and in the load generator.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < args.idle * 1.2:
        print(f"warning: {target} file descriptors allowed; --idle {args.idle} may not fit", file=sys.stderr)
    rows = []
    if "smtp" in only:
        r = bench_smtp(args)
        rm, pm = statistics.median(r["rampart"]), statistics.median(r["postfix"])
        rows.append((f"SMTP inbound, {args.messages} × 4 KiB, {args.sessions} sessions (msg/s)", rm, pm, rm / pm, "≥ 2.0"))
    if "filter" in only:
        r = bench_filter(args)
        rm, pm = statistics.median(r["rampart"]), statistics.median(r["postfix"])
        rows.append((f"SMTP inbound with content filters (DNSBL, domain list, scorer / Rspamd milter), {args.messages} × 4 KiB (msg/s)",
                     rm, pm, rm / pm, "≥ 3.0"))
    if "outbound" in only:
        r = bench_outbound(args)
        rm, pm = statistics.median(r["rampart"]), statistics.median(r["postfix"])
        rows.append((f"SMTP outbound, {args.outbound_messages} × 4 KiB to one domain, {args.sessions} submission sessions, "
                     f"DKIM on (msg/s delivered)", rm, pm, rm / pm, "≥ 2.0"))
        # Delivery cannot outrun acceptance: this row says which side limits the one above.
        ra, pa = statistics.median(r["rampart_accept"]), statistics.median(r["postfix_accept"])
        rows.append(("SMTP outbound: the same submissions accepted (msg/s)", ra, pa, ra / pa, "(context)"))
        # The row above compares a signing Rampart with a Postfix that does not sign; here the
        # reference signs too (OpenDKIM, the same key size and algorithm).
        pd = statistics.median(r["postfix-dkim"])
        rows.append(("SMTP outbound, the same load, both signing: reference Postfix with OpenDKIM (msg/s delivered)",
                     rm, pd, rm / pd, "(context)"))
    if "postgres" in only:
        r = bench_postgres(args)
        sq, p1, p2 = (statistics.median(r[k]) for k in ("sqlite", "pg1", "pg2"))
        rows.append((f"SMTP inbound on PostgreSQL, one node, {args.messages} × 4 KiB (msg/s; reference: the embedded store)",
                     p1, sq, p1 / sq, "(context)"))
        rows.append(("SMTP inbound on PostgreSQL, two nodes on one database, the same load split between them "
                     "(msg/s; reference: the embedded store)", p2, sq, p2 / sq, "(context)"))
    if "idle" in only:
        rows.append(("RSS right after start (MiB)", statistics.median(bench_idle(args)), None, None, "≤ 30"))
    if "imap" in only:
        r = bench_imap(args)
        rm, dm = statistics.median(r["rampart"]), statistics.median(r["dovecot"])
        rows.append(("IMAP session mix, 10 clients, both with credential caches (ops/s)", rm, dm, rm / dm, "≥ 2.5"))
        rp, dp = statistics.median(r["rampart_p99"]), statistics.median(r["dovecot_p99"])
        rows.append(("IMAP p99 latency (ms)", rp, dp, rp / dp, "lower is better"))
    if "bigbox" in only:
        r = bench_big_box(args)
        for name, _ in BOX_OPS:
            rm = statistics.median(x[name] for x in r["rampart"])
            dm = statistics.median(x[name] for x in r["dovecot"])
            rows.append((f"{args.big_box} messages: {name} (ms)", rm, dm, rm / dm, "lower is better"))
        rm, dm = statistics.median(r["rampart_disk"]), statistics.median(r["dovecot_disk"])
        rows.append((f"{args.big_box} messages: bytes on disk per byte of mail", rm, dm, rm / dm, "≤ 0.7"))
    if "bigfetch" in only:
        r = bench_big_fetch(args)
        rm, dm = statistics.median(r["rampart"]), statistics.median(r["dovecot"])
        rows.append((f"Memory growth while 10 clients FETCH one {BIG_FETCH_MIB} MiB message (MiB)", rm, dm, rm / dm,
                     "≤ 64"))
    if "idle-imap" in only:
        rows.append((f"RSS with {args.idle} idle TLS IMAP connections (MiB)", statistics.median(bench_idle_connections(args)),
                     None, None, "≤ 250"))
    if "idle-compare" in only:
        r = bench_idle_per_connection(args)
        rm, dm = statistics.median(r["rampart"]), statistics.median(r["dovecot"])
        rows.append((f"Memory per idle TLS IMAP connection, {args.idle_reference} in IDLE (KiB PSS)", rm, dm, rm / dm,
                     "lower is better"))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    # A run with another server build or extra settings says so, so its table is not read as
    # the commit's defaults.
    overrides = [f"server binary {BIN}" for _ in [1] if os.environ.get("RAMPART_BENCH_BIN")]
    overrides += [f"Rampart with --set {x}" for x in os.environ.get("RAMPART_BENCH_SETS", "").split("|") if x]
    overrides += [f"Rampart with encryption at rest: {ENCRYPTION}" for _ in [1] if ENCRYPTION]
    note = f" ({'; '.join(overrides)})" if overrides else ""
    lines = [f"### {stamp}, commit {commit}, {os.cpu_count()} cores, medians of {args.runs} runs{note}", "",
             "| measure | Rampart | reference | ratio | target |", "|---|---:|---:|---:|---|"]
    for name, ours, theirs, ratio, target in rows:
        lines.append(f"| {name} | {ours:.1f} | {'' if theirs is None else f'{theirs:.1f}'} | "
                     f"{'' if ratio is None else f'{ratio:.2f}'} | {target} |")
    table = "\n".join(lines) + "\n"
    print(table)
    with open(ROOT / "bench" / "results.md", "a") as f:
        f.write("\n" + table)


if __name__ == "__main__":
    main()
