#!/usr/bin/env python3
"""SEARCH and SORT on a per-user mailbox, with and without the sealed summaries (issue 16).

    RAMPART_BIN=target/debug/rampart bench/peruser_search.py [--messages 2000] [--runs 5]

A fresh data directory, one account in per-user mode, N generated messages delivered over
SMTP (varied senders, subjects, dates; ~1–3 KiB; one rare word in one message). Then, timed
from the client (imaplib, one session, milliseconds):

- "parsed": the server as before sealed summaries — the mailbox's `sealed_summaries` rows are
  deleted while the server is stopped, so a command reads, decrypts and parses every message
  (as every command did before; it also seals the summaries it made, once, which the old code
  did not). One command per restart, so each is the first to see the mailbox.
- "sealed, first": the first command of a new login (the sealed summaries opened, the
  column cache built).
- "sealed, warm": the median of --runs repeats in that session.
"""

import argparse
import imaplib
import os
import pathlib
import smtplib
import sqlite3
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from conftest import PASSWORD, Rampart  # noqa: E402

USER = "bob@example.test"
COMMANDS = [
    ("SEARCH FROM", ("SEARCH", None, 'FROM "sender7"')),
    ("SEARCH SUBJECT", ("SEARCH", None, 'SUBJECT "topic 12"')),
    ("SEARCH BODY (rare word)", ("SEARCH", None, 'BODY "xylophonique"')),
    ("SORT (DATE)", ("SORT", "(DATE)", "UTF-8", "ALL")),
    ("SORT (SUBJECT)", ("SORT", "(SUBJECT)", "UTF-8", "ALL")),
]
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november".split()


def message(n):
    body = " ".join(WORDS[(n * 7 + i) % len(WORDS)] for i in range(150 + n % 300)) + "\r\n"
    if n == 1234:
        body += "one xylophonique here\r\n"
    return (
        f"From: Sender {n % 50} <sender{n % 50}@remote.test>\r\nTo: {USER}\r\n"
        f"Subject: topic {n % 97} number {n}\r\nDate: {1 + n % 28:02d} Nov 2026 {n % 24:02d}:00:00 +0000\r\n"
        f"Message-ID: <b{n}@remote.test>\r\n\r\n{body}"
    ).encode()


def session(r):
    m = imaplib.IMAP4("127.0.0.1", r.ports["imap"], timeout=600)
    m.starttls(ssl_context=r.tls_context())
    m.login(USER, PASSWORD)
    m.select("INBOX")
    return m


def timed(m, command):
    start = time.perf_counter()
    typ, data = m.uid(*command)
    assert typ == "OK", data
    return (time.perf_counter() - start) * 1000, data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    base = pathlib.Path(tempfile.mkdtemp(prefix="peruser-bench-"))
    r = Rampart(base)
    r.add_user(USER)
    r.run_cli("user", "encryption", "enable", USER, "--password-stdin", input=PASSWORD + "\n")
    listeners = ("smtp", "imap")
    r.start(listeners=listeners)
    with smtplib.SMTP("127.0.0.1", r.ports["smtp"], timeout=60) as s:
        for n in range(args.messages):
            s.sendmail("x@remote.test", [USER], message(n))
    results = {}
    m = session(r)
    for name, command in COMMANDS:
        first, answer = timed(m, command)
        warm = statistics.median(timed(m, command)[0] for _ in range(args.runs))
        results[name] = {"first": first, "warm": warm, "answer": answer}
    m.logout()
    for name, command in COMMANDS:
        r.stop()
        db = sqlite3.connect(r.dir / "data" / "rampart.db")
        db.execute("DELETE FROM sealed_summaries")
        db.commit()
        db.close()
        r.start(listeners=listeners)
        m = session(r)
        parsed, answer = timed(m, command)
        assert answer == results[name]["answer"], (name, answer, results[name]["answer"])
        m.logout()
        results[name]["parsed"] = parsed
    r.stop()
    print(f"{args.messages} messages, per-user account, debug={'debug' in os.environ.get('RAMPART_BIN', '')}")
    print("| command | parsed (before) | sealed, first | sealed, warm |")
    print("|---|---|---|---|")
    for name, _ in COMMANDS:
        v = results[name]
        print(f"| {name} | {v['parsed']:.0f} ms | {v['first']:.0f} ms | {v['warm']:.0f} ms |")


if __name__ == "__main__":
    main()
