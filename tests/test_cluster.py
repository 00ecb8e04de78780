"""Several Rampart nodes on one PostgreSQL store (issue 18): each node is its own `rampart serve`
with its own directory and listeners, all with the same `[store] url`. Mail delivered on one
node is read on the other, IDLE on one is woken by a delivery on the other, APPENDs on both to
one mailbox get distinct ascending UIDs, a queue entry of a node killed mid-delivery is
delivered once by the other, and a ban added on one refuses on the other."""

import imaplib
import re
import smtplib
import socket
import threading
import time

import pytest

from conftest import PASSWORD, Rampart, free_port, message_bytes, wait_for
from postgres import Postgres
from test_imap import read_until

BOB = "bob@example.test"
IMAP = ("smtp", "submission", "imaps")


@pytest.fixture(scope="module")
def postgres():
    pg = Postgres().start()
    yield pg
    pg.stop()


@pytest.fixture
def nodes(tmp_path, postgres):
    """Two nodes, a and b, on one fresh database, with bob and alice."""
    url = postgres.database()
    a = Rampart(tmp_path, name="a", store_url=url, node_id="node-a")
    b = Rampart(tmp_path, name="b", store_url=url, node_id="node-b")
    a.add_user(BOB)
    a.add_user("alice@example.test")
    yield a, b
    a.stop()
    b.stop()


def deliver(node, subject, rcpt=BOB):
    with smtplib.SMTP("127.0.0.1", node.ports["smtp"], timeout=10) as s:
        s.starttls(context=node.tls_context())
        s.sendmail("sender@remote.test", [rcpt], message_bytes(subject=subject, to=rcpt))


def imaps(node, user=BOB):
    m = imaplib.IMAP4_SSL("127.0.0.1", node.ports["imaps"], ssl_context=node.tls_context(), timeout=20)
    m.login(user, PASSWORD)
    return m


def test_delivered_on_one_node_read_on_the_other(nodes):
    a, b = nodes
    a.start(listeners=IMAP)
    b.start(listeners=IMAP)
    deliver(a, "via node a")
    m = imaps(b)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data[0] == b"1"
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"via node a" in data[0][1]
    # A flag set on b is seen on a.
    m.store("1", "+FLAGS", r"(\Flagged)")
    m.logout()
    m = imaps(a)
    m.select("INBOX")
    typ, data = m.fetch("1", "(FLAGS)")
    assert rb"\Flagged" in data[0]
    m.logout()


def test_idle_on_one_node_is_woken_by_a_delivery_on_the_other(nodes):
    a, b = nodes
    a.start(listeners=IMAP)
    b.start(listeners=IMAP)
    ctx = b.tls_context()
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", b.ports["imaps"]), timeout=10),
                           server_hostname="localhost")
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(f'a LOGIN {BOB} "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
    read_until(f, rb"^\+ ", 10)
    deliver(a, "wake up b")
    delivered = time.monotonic()
    read_until(f, rb"^\* 1 EXISTS", 5)
    # The bound: changes reach IDLE clients on every node within a second.
    assert time.monotonic() - delivered < 1.0
    sock.sendall(b"DONE\r\n")
    read_until(f, rb"^c OK", 5)
    sock.close()


def test_concurrent_appends_on_both_nodes_get_distinct_ascending_uids(nodes):
    a, b = nodes
    a.start(listeners=IMAP)
    b.start(listeners=IMAP)
    per_client, uids, errors = 15, {}, []

    def append_many(node, name):
        try:
            m = imaps(node)
            got = []
            for i in range(per_client):
                typ, data = m.append("INBOX", None, None, message_bytes(subject=f"{name}-{i}"))
                assert typ == "OK", data
                got.append(int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1)))
            uids[name] = got
            m.logout()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=append_many, args=(node, f"{node.dir.name}{n}")) for node in (a, b) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    every = [u for got in uids.values() for u in got]
    assert len(every) == 4 * per_client and len(set(every)) == len(every)
    for got in uids.values():
        assert got == sorted(got)
    m = imaps(a)
    typ, data = m.select("INBOX")
    assert int(data[0]) == 4 * per_client
    typ, data = m.uid("SEARCH", None, "ALL")
    assert sorted(int(u) for u in data[0].split()) == sorted(every)
    m.logout()


class StallingMx:
    """A remote MX that accepts connections and never greets: a node delivering to it holds
    its queue entry until it is killed."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        for c in self.accepted:
            c.close()
        self.sock.close()


def test_a_killed_nodes_queue_is_delivered_once_by_the_other(tmp_path, nodes, dns):
    a, b = nodes
    remote = Rampart(tmp_path, hostname="mx.remote.test", domain="remote.test", name="remote")
    remote.add_user("carol@remote.test")
    remote.start()
    dns.mx("remote.test", "mx.remote.test")
    dns.a("mx.remote.test")
    dns.start()
    stall = StallingMx()
    common = [f'dns.nameservers=["{dns.address}"]', 'queue.retry_schedule=["1s"]', f'queue.extra_ca_file="{remote.ca}"',
              'queue.lease="5s"']
    try:
        a.start(*common, f"queue.remote_port={stall.port}", listeners=IMAP)
        with smtplib.SMTP("127.0.0.1", a.ports["submission"], timeout=10) as s:
            s.ehlo("client.test")
            s.starttls(context=a.tls_context())
            s.ehlo("client.test")
            s.login(BOB, PASSWORD)
            s.sendmail(BOB, ["carol@remote.test"], message_bytes(subject="once", sender=BOB, to="carol@remote.test"))
        # a has leased the entry and waits for a greeting that never comes.
        wait_for(lambda: stall.accepted, what="node a connecting to the remote MX")
        a.kill9()
        b.start(*common, f"queue.remote_port={remote.ports['smtp']}", listeners=IMAP)
        rows = wait_for(lambda: remote.messages("carol@remote.test"), timeout=30, what="delivery by node b")
        assert [r[4] for r in rows] == ["once"]
        wait_for(lambda: b.run_cli("queue", "list").stdout.strip() == "", what="empty queue")
        time.sleep(2)
        assert len(remote.messages("carol@remote.test")) == 1
        assert re.search(r"event=delivery .*rcpt=carol@remote\.test .*result=delivered", b.log())
    finally:
        stall.close()
        remote.stop()


def refused(node, source):
    try:
        with socket.create_connection(("127.0.0.1", node.ports["smtp"]), timeout=5, source_address=(source, 0)) as s:
            s.settimeout(5)
            data = s.recv(512)
            return not data.startswith(b"220")
    except (ConnectionError, socket.timeout):
        return True


def test_a_ban_added_on_one_node_refuses_on_the_other(nodes):
    a, b = nodes
    a.start()
    b.start()
    assert not refused(b, "127.0.0.9")
    a.run_cli("ban", "add", "127.0.0.9", "--for", "1h", "--reason", "cluster")
    added = time.monotonic()
    wait_for(lambda: refused(b, "127.0.0.9"), timeout=5, what="the ban on node b")
    assert time.monotonic() - added < 3.0
    assert not refused(b, "127.0.0.10")


def test_failed_logins_on_one_node_protect_the_account_on_the_other(nodes):
    """Per-account failure counts are shared: guesses spread over the nodes add up, and the
    account is protected on every node (the right password from a network that never logged
    in to it is refused there too)."""
    a, b = nodes
    sets = ("guard.auth_failures_per_account=4", "guard.auth_failures_per_ip=100", "guard.auth_failures_per_net=1000",
            'auth.failure_delay="10ms"')
    a.start(*sets, listeners=IMAP)
    b.start(*sets, listeners=IMAP)
    for i, node in enumerate((a, b, a, b)):
        m = imaplib.IMAP4_SSL("127.0.0.1", node.ports["imaps"], ssl_context=node.tls_context(), timeout=20)
        with pytest.raises(imaplib.IMAP4.error):
            m.login(BOB, f"guess{i}")
        m.shutdown()
    # Two failures on each node: neither alone reached 4, together they did.
    with pytest.raises(imaplib.IMAP4.error):
        imaps(b)
    b.wait_log(r"event=account_protected ip=127\.0\.0\.1 user=bob@example\.test")
    imaps(a, "alice@example.test").logout()
