"""Several clients change one mailbox at once; each checks, like imaptest, that what the server
tells it keeps its view consistent: message numbers move only by EXPUNGE, never during FETCH,
STORE or SEARCH, EXISTS never shrinks, a number's UID never changes, and its view equals the
server's at the end."""

import random
import re
import socket
import ssl
import threading

from conftest import PASSWORD, message_bytes

UNTAGGED = re.compile(rb"^\* (\d+) (EXISTS|EXPUNGE|RECENT|FETCH)(.*)$")


class Client:
    def __init__(self, server, seed):
        ctx = server.tls_context()
        raw = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=30)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.f = self.sock.makefile("rb")
        self.f.readline()
        self.n = 0
        self.model = []  # UIDs by message number; None until a FETCH names it
        self.flags = {}  # UID -> the flags the server last told this client
        self.rng = random.Random(seed)
        self.errors = []

    def cmd(self, text, literal=None):
        self.n += 1
        tag = f"t{self.n}"
        verb = text.split()[0].upper()
        if literal is None:
            self.sock.sendall(f"{tag} {text}\r\n".encode())
        else:
            self.sock.sendall(f"{tag} {text} {{{len(literal)}+}}\r\n".encode() + literal + b"\r\n")
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                raise AssertionError("server closed the connection")
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:
                line += self.f.read(int(m.group(1))) + self.f.readline()
            if line.startswith(f"{tag} ".encode()):
                return line, lines
            lines.append(line)
            self.untagged(line, verb)

    def untagged(self, line, verb):
        m = UNTAGGED.match(line.rstrip(b"\r\n"))
        if not m:
            return
        n, what, rest = int(m.group(1)), m.group(2), m.group(3)
        if what == b"EXISTS":
            if n < len(self.model):
                self.errors.append(f"EXISTS shrank from {len(self.model)} to {n}")
            self.model.extend([None] * (n - len(self.model)))
        elif what == b"EXPUNGE":
            if verb in ("FETCH", "STORE", "SEARCH"):
                self.errors.append(f"EXPUNGE during {verb}")
            if not 1 <= n <= len(self.model):
                self.errors.append(f"EXPUNGE {n} outside 1..{len(self.model)}")
            else:
                del self.model[n - 1]
        elif what == b"FETCH":
            u = re.search(rb"UID (\d+)", rest)
            if not 1 <= n <= len(self.model):
                self.errors.append(f"FETCH {n} outside 1..{len(self.model)}")
            else:
                uid = int(u.group(1)) if u else self.model[n - 1]
                if u and self.model[n - 1] not in (None, uid):
                    self.errors.append(f"message {n} changed UID {self.model[n - 1]} -> {uid}")
                self.model[n - 1] = uid
                fl = re.search(rb"FLAGS \(([^)]*)\)", rest)
                if fl and uid is not None:
                    self.flags[uid] = {f.lower() for f in fl.group(1).decode().split() if f.lower() != "\\recent"}

    def step(self):
        # Mostly STOREs on a small mailbox, so sessions often touch the same message at once.
        op = self.rng.choice(["append", "store", "store", "store", "store", "store", "expunge", "fetch", "noop",
                              "search", "uidsearch", "copy"])
        size = len(self.model)
        if op == "append":
            self.cmd("APPEND INBOX", literal=message_bytes(subject=f"s{self.rng.random()}"))
        elif op == "store" and size:
            flag = self.rng.choice([r"\Deleted", r"\Seen", r"\Flagged", "$Label"])
            sign = self.rng.choice("+-")
            silent = self.rng.choice(["", ".SILENT"])
            n = self.rng.randint(1, size)
            # What the client knows after its own silent change, as a real client assumes. It
            # goes in before the command: a FETCH in the reply (another session changed the
            # message after this STORE) is newer and overrides it.
            uid = self.model[n - 1]
            if silent and uid in self.flags:
                (self.flags[uid].add if sign == "+" else self.flags[uid].discard)(flag.lower())
            self.cmd(f"STORE {n} {sign}FLAGS{silent} ({flag})")
        elif op == "expunge":
            self.cmd("EXPUNGE")
        elif op == "fetch" and size:
            # UID only: what a client knows of flags must come from STORE replies and the
            # server's unsolicited FETCHes, which is what this test checks.
            self.cmd(f"FETCH 1:{size} (UID)")
        elif op == "search":
            tagged, lines = self.cmd("SEARCH ALL")
            for line in lines:
                if line.startswith(b"* SEARCH"):
                    nums = [int(x) for x in line.split()[2:]]
                    if any(x > len(self.model) for x in nums):
                        self.errors.append(f"SEARCH returned {max(nums)} > {len(self.model)}")
        elif op == "uidsearch":
            self.cmd("UID SEARCH ALL")
        elif op == "copy" and size:
            self.cmd(f"COPY {self.rng.randint(1, size)} Archive")
        else:
            self.cmd("NOOP")

    def verify(self):
        self.cmd("NOOP")
        tagged, lines = self.cmd("UID SEARCH ALL")
        uids = [int(x) for line in lines if line.startswith(b"* SEARCH") for x in line.split()[2:]]
        self.cmd("FETCH 1:* (UID)" if self.model else "NOOP")
        if self.model != uids:
            self.errors.append(f"view {self.model} != server {uids}")


def test_concurrent_clients_keep_consistent_views(rampart):
    # Four clients as fast as they can: above the default pace of 50 commands a second.
    server = rampart.start("guard.imap_commands_per_second=1000", listeners=("imaps",))
    clients = [Client(server, seed) for seed in range(4)]
    setup = Client(server, 100)
    setup.cmd(f'LOGIN bob@example.test "{PASSWORD}"')
    for i in range(8):
        setup.cmd("APPEND INBOX", literal=message_bytes(subject=f"seed {i}"))
    for c in clients:
        assert b"OK" in c.cmd(f'LOGIN bob@example.test "{PASSWORD}"')[0]
        assert b"OK" in c.cmd("SELECT INBOX")[0]

    def run(c):
        try:
            for _ in range(300):
                c.step()
        except Exception as e:  # reported below with the client's other findings
            c.errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for c in clients:
        c.verify()
    # Every flag a client was told (or set silently) is the server's: no change went unreported.
    truth = Client(server, 99)
    truth.cmd(f'LOGIN bob@example.test "{PASSWORD}"')
    truth.cmd("EXAMINE INBOX")
    truth.cmd("FETCH 1:* (UID FLAGS)" if truth.model else "NOOP")
    for i, c in enumerate(clients):
        for uid, known in c.flags.items():
            if uid in truth.flags and truth.flags[uid] != known:
                c.errors.append(f"UID {uid}: client thinks {sorted(known)}, server has {sorted(truth.flags[uid])}")
    problems = [f"client {i}: {e}" for i, c in enumerate(clients) for e in c.errors]
    assert not problems, "\n".join(problems[:20])
    views = {tuple(c.model) for c in clients}
    print(f"{len(clients)} clients, {sum(c.n for c in clients)} commands, {len(clients[0].model)} messages left")
    assert len(views) == 1, views
