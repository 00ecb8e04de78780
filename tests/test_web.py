"""The web layer over HTTPS with a real HTTP client (requests): the https and http listeners,
the guard on them, login with TOTP (codes computed by pyotp), sessions, CSRF, roles, the admin
and self-service API, API tokens, and mail client autoconfiguration."""

import imaplib
import json
import plistlib
import re
import smtplib
import socket
import sqlite3
import ssl
import time
import xml.etree.ElementTree as ET

import pyotp
import pytest
import requests
import urllib3

from conftest import PASSWORD, message_bytes

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

WEB = ("https", "http")
FAST = ('web.failure_delay="0s"',)
NEW_PASSWORD = "purple elephant juggling seven lanterns"


class Api:
    """A browser-like client: keeps the session cookie, sends the CSRF token on changes."""

    def __init__(self, rampart):
        self.base = f"https://127.0.0.1:{rampart.ports['https']}"
        self.s = requests.Session()
        # The self-signed certificate names mx.example.test, not 127.0.0.1: not verified here
        # (test_https_serves... checks it with the CA and SNI).
        self.csrf = None

    def call(self, method, path, json=None, csrf=True, **kw):
        headers = kw.pop("headers", {})
        if csrf and self.csrf and method != "GET":
            headers["X-CSRF-Token"] = self.csrf
        # verify=False per request: a Session's own setting loses to REQUESTS_CA_BUNDLE.
        return self.s.request(method, self.base + path, json=json, headers=headers, timeout=20, verify=False, **kw)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.call("POST", path, json=json or {}, **kw)

    def login(self, user, password=PASSWORD, totp=None):
        body = {"username": user, "password": password}
        if totp is not None:
            body["totp"] = totp
        r = self.post("/api/v1/login", body)
        if r.status_code == 200:
            self.csrf = r.json()["csrf"]
        return r


def start(rampart, *sets, listeners=WEB):
    return rampart.start(*FAST, *sets, listeners=listeners)


def admin_with_totp(rampart, user="bob@example.test"):
    """Makes `user` an admin with TOTP from the CLI; returns its pyotp.TOTP and recovery codes."""
    rampart.run_cli("user", "role", user, "admin")
    out = rampart.run_cli("user", "totp", "enroll", user).stdout
    uri = re.search(r"otpauth://\S+", out).group(0)
    codes = re.findall(r"^[a-z]{4}-[a-z]{4}-[a-z]{4}$", out, re.M)
    return pyotp.parse_uri(uri), codes


def fresh_code(totp, used=()):
    """A current code not used yet (each step works once): waits for the next step if needed."""
    while True:
        code = totp.now()
        if code not in used:
            return code
        time.sleep(1)


# --- listeners ----------------------------------------------------------------------------------

def test_https_serves_with_security_headers_and_http_redirects(rampart):
    start(rampart)
    api = Api(rampart)
    r = api.get("/")
    assert r.status_code == 200 and "<title>Rampart</title>" in r.text
    h = r.headers
    assert h["Strict-Transport-Security"].startswith("max-age=")
    csp = h["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert h["X-Content-Type-Options"] == "nosniff" and h["Referrer-Policy"] == "no-referrer"
    # The certificate is the server's own (rampart init), by SNI name.
    ctx = ssl.create_default_context(cafile=rampart.ca)
    with socket.create_connection(("127.0.0.1", rampart.ports["https"]), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="mx.example.test") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    # http only redirects, to the https listener, keeping path and query.
    r = requests.get(f"http://127.0.0.1:{rampart.ports['http']}/api/v1/me?x=1", allow_redirects=False, timeout=10,
                     headers={"Host": "mx.example.test"})
    assert r.status_code == 301
    assert r.headers["Location"] == f"https://mx.example.test:{rampart.ports['https']}/api/v1/me?x=1"
    assert "event=listening listener=https" in rampart.log() and "tls=implicit" in rampart.log()


def test_the_guard_applies_to_web_listeners(rampart):
    start(rampart, 'listener.https.deny=["127.0.0.2/32"]', "listener.http.max_connections=1", 'guard.allowlist=["192.0.2.1/32"]')
    with pytest.raises(requests.exceptions.ConnectionError):
        s = requests.Session()
        s.mount("https://", SourceAdapter("127.0.0.2"))
        s.get(f"https://127.0.0.1:{rampart.ports['https']}/", verify=False, timeout=10)
    rampart.wait_log(r"event=firewall_denied ip=127\.0\.0\.2 listener=https")
    # The other address is served.
    assert Api(rampart).get("/").status_code == 200
    # The listener's own connection cap: a second connection while one is open is refused.
    held = socket.create_connection(("127.0.0.1", rampart.ports["http"]), timeout=10)
    time.sleep(0.2)
    other = socket.create_connection(("127.0.0.1", rampart.ports["http"]), timeout=10)
    other.sendall(b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n")
    assert other.recv(100) == b""
    held.close()
    rampart.wait_log(r"event=rate_limited ip=127\.0\.0\.1 listener=http limit=listener_connections")
    # The rules in force, as the API shows them.
    rules = admin_session(rampart).get("/api/v1/firewall").json()
    assert {"scope": "https", "kind": "deny", "net": "127.0.0.2/32"} in rules
    assert {"scope": "global", "kind": "allowlist", "net": "192.0.2.1/32"} in rules


class SourceAdapter(requests.adapters.HTTPAdapter):
    """Connects from another loopback address, to act as another client."""

    def __init__(self, source):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def test_config_check_and_template_cover_the_web_keys(rampart):
    text = rampart.config.read_text()
    for key in ("[listener.https]", "[listener.http]", "[web]", "require_2fa_for_admins = true", "max_body_size"):
        assert key in text, key
    r = rampart.run_cli("config", "check", "--set", "listener.https.max_body_size=10",
                        "--set", 'web.session_idle_timeout="5s"', check=False)
    assert r.returncode != 0
    assert "listener.https.max_body_size" in r.stderr and "web.session_idle_timeout" in r.stderr
    r = rampart.run_cli("config", "check", "--set", 'listener.http.bind=["127.0.0.1:2525"]',
                        "--set", 'listener.smtp.bind=["127.0.0.1:2525"]', check=False)
    assert r.returncode != 0 and "2525" in r.stderr


# --- login, TOTP, sessions ---------------------------------------------------------------------

def test_admin_must_enroll_totp_then_logs_in_with_it(rampart):
    rampart.run_cli("user", "role", "bob@example.test", "admin")
    start(rampart)
    api = Api(rampart)
    r = api.login("bob@example.test")
    assert r.status_code == 200, r.text
    assert r.json()["enroll_2fa_first"] is True and r.json()["role"] == "admin"
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("__Host-rampart=")
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in cookie, cookie
    # An admin without TOTP may only enroll.
    r = api.get("/api/v1/users")
    assert r.status_code == 403 and r.json()["error"] == "enroll_2fa_first"
    r = api.post("/api/v1/me/totp")
    assert r.status_code == 200, r.text
    enrolled = r.json()
    assert enrolled["uri"].startswith("otpauth://totp/") and "<svg" in enrolled["qr_svg"]
    totp = pyotp.TOTP(enrolled["secret"])
    assert api.post("/api/v1/me/totp/confirm", {"code": "000000" if totp.now() != "000000" else "111111"}).status_code == 400
    first = totp.now()
    r = api.post("/api/v1/me/totp/confirm", {"code": first})
    assert r.status_code == 200, r.text
    recovery = r.json()["recovery_codes"]
    assert len(recovery) == 10 and len(set(recovery)) == 10
    # The enrolled session is now a full one.
    assert api.get("/api/v1/users").status_code == 200

    # A new login needs the second factor.
    api2 = Api(rampart)
    r = api2.login("bob@example.test")
    assert r.status_code == 401 and r.json()["error"] == "totp_required"
    r = api2.login("bob@example.test", totp="12345")
    assert r.status_code == 401 and r.json()["error"] == "login_failed"
    # The code used to confirm enrollment cannot log in again (each step once).
    r = api2.login("bob@example.test", totp=first)
    assert r.status_code == 401, r.text
    code = fresh_code(totp, used=(first,))
    assert api2.login("bob@example.test", totp=code).status_code == 200
    # Reused right away: refused.
    assert Api(rampart).login("bob@example.test", totp=code).status_code == 401
    # A recovery code works once.
    assert Api(rampart).login("bob@example.test", totp=recovery[3]).status_code == 200
    assert Api(rampart).login("bob@example.test", totp=recovery[3]).status_code == 401
    log = rampart.log()
    assert re.search(r"event=auth_failure proto=web ip=127\.0\.0\.1 listener=https user=bob@example\.test .*reason=bad_totp", log)
    assert re.search(r"event=auth_success proto=web ip=127\.0\.0\.1 .*user=bob@example\.test", log)


def test_cli_totp_enroll_and_disable(rampart):
    totp, codes = admin_with_totp(rampart)
    assert len(codes) == 10
    start(rampart)
    assert Api(rampart).login("bob@example.test").json()["error"] == "totp_required"
    assert Api(rampart).login("bob@example.test", totp=totp.now()).status_code == 200
    assert rampart.run_cli("user", "totp", "enroll", "bob@example.test", check=False).returncode != 0
    rampart.run_cli("user", "totp", "disable", "bob@example.test")
    r = Api(rampart).login("bob@example.test")
    assert r.status_code == 200 and r.json()["enroll_2fa_first"] is True


def age_sessions(rampart, seconds):
    """Makes every web session `seconds` older (login time and last use)."""
    db = sqlite3.connect(str(rampart.dir / "data" / "rampart.db"))
    db.execute("UPDATE web_sessions SET created = created - ?, last_seen = last_seen - ?", (seconds, seconds))
    db.commit()
    db.close()


@pytest.mark.sqlite_only
def test_totp_enrollment_needs_the_password_again_only_on_an_old_session(rampart):
    start(rampart)
    api = Api(rampart)
    assert api.login("alice@example.test").status_code == 200
    # Just logged in: the password was just given, enrollment starts as is.
    r = api.post("/api/v1/me/totp")
    assert r.status_code == 200 and r.json()["uri"].startswith("otpauth://"), r.text
    # Ten minutes later (still within the idle timeout) the session must prove it is still its owner.
    age_sessions(rampart, 600)
    r = api.post("/api/v1/me/totp")
    assert r.status_code == 403 and r.json()["error"] == "reauth_required" and "password again" in r.json()["message"], r.text
    r = api.post("/api/v1/me/totp", {"password": "not the password"})
    assert r.status_code == 400
    assert re.search(r"event=auth_failure proto=web .*user=alice@example\.test .*reason=recheck", rampart.log())
    r = api.post("/api/v1/me/totp", {"password": PASSWORD})
    assert r.status_code == 200, r.text
    totp = pyotp.TOTP(r.json()["secret"])
    assert api.post("/api/v1/me/totp/confirm", {"code": totp.now()}).status_code == 200
    assert api.get("/api/v1/me").json()["totp"] is True


@pytest.mark.sqlite_only
def test_web_settings_are_reloaded_on_sighup(rampart):
    # In the file (start()'s --set keys would win over it).
    rampart.set_config("web", "require_2fa_for_admins", "false")
    rampart.run_cli("user", "role", "bob@example.test", "admin")
    start(rampart)
    api = Api(rampart)
    r = api.login("bob@example.test")
    assert r.status_code == 200 and r.json()["enroll_2fa_first"] is False, r.text
    assert api.get("/api/v1/users").status_code == 200
    rampart.set_config("web", "require_2fa_for_admins", "true")
    rampart.set_config("web", "session_idle_timeout", '"5m"')
    rampart.proc.send_signal(1)
    rampart.wait_log(r"event=web_reloaded require_2fa_for_admins=true")
    # The same session, at its next request: an admin without TOTP may only enroll now ...
    r = api.get("/api/v1/users")
    assert r.status_code == 403 and r.json()["error"] == "enroll_2fa_first", r.text
    assert api.get("/api/v1/me").json()["enroll_2fa_first"] is True
    # ... and ten idle minutes are past the new idle timeout.
    age_sessions(rampart, 600)
    r = api.get("/api/v1/me")
    assert r.status_code == 401 and r.json()["error"] == "session_expired", r.text


def test_wrong_password_unknown_user_and_app_password_are_refused(rampart):
    start(rampart, listeners=(*WEB, "imaps"))
    api = Api(rampart)
    assert api.login("alice@example.test", "wrong password here").json()["error"] == "login_failed"
    assert api.login("nobody@example.test").json()["error"] == "login_failed"
    assert api.login("alice@example.test").status_code == 200
    r = api.post("/api/v1/me/app-passwords", {"name": "phone"})
    assert r.status_code == 200, r.text
    app = r.json()["password"]
    assert [a["name"] for a in api.get("/api/v1/me/app-passwords").json()] == ["phone"]
    # App passwords never log in to the web ...
    r = Api(rampart).login("alice@example.test", app)
    assert r.status_code == 401 and r.headers.get("Connection") == "close"
    # Not even tried (one argon2 verification per web login): it is a wrong password here.
    assert re.search(r"event=auth_failure proto=web ip=127\.0\.0\.1 .*user=alice@example\.test .*reason=bad_credentials", rampart.log())
    # ... but work for IMAP, and the web session does not.
    ctx = rampart.tls_context()
    with imaplib.IMAP4_SSL("127.0.0.1", rampart.ports["imaps"], ssl_context=_no_hostname(ctx)) as imap:
        assert imap.login("alice@example.test", app)[0] == "OK"
    assert api.call("DELETE", "/api/v1/me/app-passwords/phone").status_code == 200
    assert api.get("/api/v1/me/app-passwords").json() == []
    # The login history shows both protocols, by network; the CLI shows the same.
    history = {(l["net"], l["proto"]): l["logins"] for l in api.get("/api/v1/me/logins").json()}
    assert history == {("127.0.0.1/32", "web"): 1, ("127.0.0.1/32", "imap"): 1}, history
    out = rampart.run_cli("user", "logins", "alice@example.test").stdout
    assert "127.0.0.1/32\tweb\t" in out and "127.0.0.1/32\timap\t" in out, out


def _no_hostname(ctx):
    ctx.check_hostname = False
    return ctx


def test_csrf_token_is_required_for_changes(rampart):
    start(rampart)
    api = Api(rampart)
    api.login("alice@example.test")
    r = api.post("/api/v1/me/app-passwords", {"name": "x"}, csrf=False)
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = api.post("/api/v1/me/app-passwords", {"name": "x"}, headers={"X-CSRF-Token": "forged"}, csrf=False)
    assert r.status_code == 403
    # Reading needs no token; a reloaded page gets it from /me.
    me = api.get("/api/v1/me").json()
    assert me["csrf"] == api.csrf and me["address"] == "alice@example.test" and me["role"] == "user"
    # Logout needs it too; afterwards the cookie is worthless.
    assert api.post("/api/v1/logout", csrf=False).status_code == 403
    assert api.post("/api/v1/logout").status_code == 200
    api.s.cookies.clear()
    assert api.get("/api/v1/me").status_code == 401


@pytest.mark.sqlite_only
def test_sessions_expire_and_logout_everywhere(rampart):
    start(rampart)
    a, b = Api(rampart), Api(rampart)
    a.login("alice@example.test")
    b.login("alice@example.test")
    assert a.get("/api/v1/me").status_code == 200
    # Idle past web.session_idle_timeout (30 min by default): the server forgets the session.
    db = sqlite3.connect(str(rampart.dir / "data" / "rampart.db"))
    db.execute("UPDATE web_sessions SET last_seen = last_seen - 3600")
    db.commit()
    db.close()
    r = a.get("/api/v1/me")
    assert r.status_code == 401 and r.json()["error"] == "session_expired"
    a.login("alice@example.test")
    b.login("alice@example.test")
    assert a.post("/api/v1/logout-all").json()["sessions"] >= 2
    assert b.get("/api/v1/me").status_code == 401
    # The CLI does the same.
    a.login("alice@example.test")
    assert "ended 1 web session" in rampart.run_cli("user", "logout", "alice@example.test").stdout
    assert a.get("/api/v1/me").status_code == 401


def test_failed_web_logins_ban_like_imap_and_smtp(rampart, tmp_path):
    log = tmp_path / "rampart.log"
    start(rampart, f'log.file="{log}"', "guard.auth_failures_per_ip=3")
    for _ in range(3):
        assert Api(rampart).login("alice@example.test", "not the password").status_code == 401
    rampart.wait_log(r"event=ban ip=127\.0\.0\.1/32 .*reason=auth_failures")
    with pytest.raises(requests.exceptions.ConnectionError):
        Api(rampart).login("alice@example.test")
    rampart.wait_log(r"event=banned_refused ip=127\.0\.0\.1 listener=https")
    assert "127.0.0.1/32" in rampart.run_cli("ban", "list").stdout
    # fail2ban reads the same lines.
    import subprocess
    from conftest import ROOT
    filt = str(ROOT / "contrib" / "fail2ban" / "filter.d" / "rampart.conf")
    out = subprocess.run(["fail2ban-regex", "-o", "ip", str(log), filt], capture_output=True, text=True, timeout=60).stdout
    assert out.split().count("127.0.0.1") >= 3, out


# --- roles and the admin API -------------------------------------------------------------------

def admin_session(rampart):
    totp, _ = admin_with_totp(rampart)
    api = Api(rampart)
    assert api.login("bob@example.test", totp=totp.now()).status_code == 200
    return api


def test_admin_manages_domains_users_aliases_like_the_cli(rampart):
    start(rampart)
    api = admin_session(rampart)
    assert api.post("/api/v1/domains", {"name": "Other.test"}).status_code == 200
    assert "other.test" in api.get("/api/v1/domains").json()
    assert "other.test" in rampart.run_cli("domain", "list").stdout
    r = api.post("/api/v1/users", {"address": "carol@other.test", "password": "password123"})
    assert r.status_code == 400 and "password refused" in r.json()["message"]
    r = api.post("/api/v1/users", {"address": "carol@other.test", "password": NEW_PASSWORD, "role": "user"})
    assert r.status_code == 200, r.text
    users = {u["address"]: u for u in api.get("/api/v1/users").json()}
    assert users["carol@other.test"]["role"] == "user" and users["bob@example.test"]["totp"] is True
    assert "carol@other.test" in rampart.run_cli("user", "list").stdout
    assert api.call("PUT", "/api/v1/users/carol@other.test/role", {"role": "admin"}).status_code == 200
    assert api.get("/api/v1/users/carol@other.test").json()["role"] == "admin"
    assert api.call("PUT", "/api/v1/users/carol@other.test/role", {"role": "root"}).status_code == 400
    assert api.post("/api/v1/aliases", {"alias": "info@other.test", "target": "carol@other.test"}).status_code == 200
    assert {"alias": "info@other.test", "target": "carol@other.test"} in api.get("/api/v1/aliases").json()
    assert "info@other.test -> carol@other.test" in rampart.run_cli("alias", "list").stdout
    # A refusal from the store comes with its reason.
    r = api.call("DELETE", "/api/v1/domains/other.test")
    assert r.status_code == 409 and "remove them first" in r.json()["message"]
    assert api.call("DELETE", "/api/v1/aliases/info@other.test").status_code == 200
    assert api.call("DELETE", "/api/v1/users/carol@other.test").status_code == 200
    assert api.call("DELETE", "/api/v1/domains/other.test").status_code == 200
    assert api.call("DELETE", "/api/v1/users/nobody@example.test").status_code == 404
    assert api.get("/api/v1/bans").json() == []
    assert api.get("/api/v1/spam/stats").json() == {"spam": 0, "ham": 0}
    # Admin resets of another account's 2FA and password.
    rampart.run_cli("user", "totp", "enroll", "alice@example.test")
    assert api.call("DELETE", "/api/v1/users/alice@example.test/totp").json()["ok"] is True
    assert api.call("PUT", "/api/v1/users/alice@example.test/password", {"password": NEW_PASSWORD}).status_code == 200
    assert Api(rampart).login("alice@example.test", NEW_PASSWORD).status_code == 200


def test_the_last_admin_is_never_demoted_suspended_or_removed(rampart):
    start(rampart)
    api = admin_session(rampart)
    bob = "/api/v1/users/bob@example.test"
    for method, path, body in (("PUT", bob + "/role", {"role": "user"}), ("PUT", bob + "/suspended", {"suspended": True}),
                               ("DELETE", bob, None)):
        r = api.call(method, path, body)
        assert r.status_code == 409, (path, r.text)
        assert r.json()["error"] == "last_admin" and "last administrator" in r.json()["message"], r.text
    # The CLI refuses the same, with the same sentence.
    for args in (("user", "role", "bob@example.test", "user"), ("user", "remove", "bob@example.test")):
        r = rampart.run_cli(*args, check=False)
        assert r.returncode != 0 and "last administrator" in r.stderr, r.stderr
    assert api.get(bob).json()["role"] == "admin"
    # With a second admin who can log in, either may go; then the other is the last one.
    assert api.call("PUT", "/api/v1/users/alice@example.test/role", {"role": "admin"}).status_code == 200
    assert api.call("PUT", "/api/v1/users/alice@example.test/suspended", {"suspended": True}).status_code == 200
    assert api.call("PUT", bob + "/role", {"role": "user"}).status_code == 409, "a suspended admin does not count"
    assert api.call("PUT", "/api/v1/users/alice@example.test/suspended", {"suspended": False}).status_code == 200
    assert api.call("PUT", bob + "/role", {"role": "user"}).status_code == 200
    r = rampart.run_cli("user", "role", "alice@example.test", "user", check=False)
    assert r.returncode != 0 and "last administrator" in r.stderr, r.stderr
    rampart.run_cli("user", "role", "bob@example.test", "admin")
    rampart.run_cli("user", "role", "alice@example.test", "user")


def test_conflicts_are_409_and_malformed_input_400(rampart):
    start(rampart)
    api = admin_session(rampart)
    # Already there: 409 with the store's sentence.
    r = api.post("/api/v1/domains", {"name": "example.test"})
    assert r.status_code == 409 and r.json()["error"] == "exists" and "already exists" in r.json()["message"], r.text
    r = api.post("/api/v1/users", {"address": "alice@example.test", "password": NEW_PASSWORD})
    assert r.status_code == 409 and r.json()["error"] == "exists", r.text
    assert api.post("/api/v1/me/app-passwords", {"name": "phone"}).status_code == 200
    assert api.post("/api/v1/me/app-passwords", {"name": "phone"}).status_code == 409
    # Malformed: 400 in the API's shape, never axum's plain 415/422.
    for body in ({"nom": "x.test"}, {"name": 42}):
        r = api.post("/api/v1/domains", body)
        assert r.status_code == 400 and r.json()["error"] == "bad_request", (body, r.status_code, r.text)
    r = api.call("POST", "/api/v1/domains", data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request", r.text
    r = api.call("POST", "/api/v1/domains", data="name=x.test", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request", r.text
    assert api.post("/api/v1/domains", {"name": "not a domain"}).status_code == 400
    assert api.post("/api/v1/users", {"address": "no-at-sign", "password": NEW_PASSWORD}).status_code == 400
    r = Api(rampart).post("/api/v1/login", {"username": "alice@example.test"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request", r.text
    # The OpenAPI document says so.
    doc = api.get("/api/v1/openapi.json").json()
    add_domain = doc["paths"]["/api/v1/domains"]["post"]["responses"]
    assert "409" in add_domain and "400" in add_domain and "already exists" in add_domain["409"]["description"]
    assert "409" in doc["paths"]["/api/v1/users/{address}/role"]["put"]["responses"]
    assert "404" in doc["paths"]["/api/v1/users/{address}"]["delete"]["responses"]
    assert "409" not in doc["paths"]["/api/v1/users"]["get"]["responses"]


def test_login_history_by_address_for_the_user_and_the_admin(rampart):
    start(rampart)
    admin = admin_session(rampart)
    alice = Api(rampart)
    assert alice.login("alice@example.test").status_code == 200
    mine = alice.get("/api/v1/me/logins").json()
    assert [(l["net"], l["proto"], l["logins"]) for l in mine] == [("127.0.0.1/32", "web", 1)], mine
    # The admin sees the same history, by address (any case).
    assert admin.get("/api/v1/users/Alice@Example.test/logins").json() == mine
    # A deleted account's history goes with it: whoever gets the address next starts afresh.
    assert admin.call("DELETE", "/api/v1/users/alice@example.test").status_code == 200
    assert admin.post("/api/v1/users", {"address": "alice@example.test", "password": NEW_PASSWORD}).status_code == 200
    assert admin.get("/api/v1/users/alice@example.test/logins").json() == []
    assert rampart.run_cli("user", "logins", "alice@example.test").stdout == ""
    assert alice.get("/api/v1/me/logins").status_code == 401, "the old account's session ended with it"


def test_users_see_only_their_own_account(rampart):
    start(rampart, "filter.spam.reject_score=5000")
    rampart.start  # noqa: B018 (the server is running)
    api = Api(rampart)
    api.login("alice@example.test")
    for path in ("/api/v1/users", "/api/v1/domains", "/api/v1/aliases", "/api/v1/quarantine", "/api/v1/bans",
                 "/api/v1/users/bob@example.test/app-passwords"):
        r = api.get(path)
        assert r.status_code == 403 and r.json()["error"] == "forbidden", path
    assert api.post("/api/v1/users", {"address": "x@example.test", "password": NEW_PASSWORD}).status_code == 403
    assert api.get("/api/v1/me/quarantine").json() == []
    # Not logged in at all.
    assert requests.get(api.base + "/api/v1/me/quarantine", verify=False, timeout=10).status_code == 401


def test_quarantine_list_and_release_by_user_and_admin(rampart):
    rampart.stop()
    start(rampart, "filter.spam.reject_score=5000", listeners=(*WEB, "smtp"))
    gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    for rcpt in ("alice@example.test", "bob@example.test"):
        with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=20) as s:
            s.sendmail("a@remote.test", [rcpt], message_bytes(subject=f"held for {rcpt}", body=gtube + "\r\n", to=rcpt))
    alice = Api(rampart)
    alice.login("alice@example.test")
    held = alice.get("/api/v1/me/quarantine").json()
    assert [h["subject"] for h in held] == ["held for alice@example.test"], held
    bobs = [l.split("\t")[0] for l in rampart.run_cli("quarantine", "list", "--user", "bob@example.test").stdout.splitlines()]
    # Alice cannot release Bob's message.
    assert alice.post(f"/api/v1/me/quarantine/{bobs[0]}/release").status_code == 404
    r = alice.post(f"/api/v1/me/quarantine/{held[0]['id']}/release")
    assert r.status_code == 200 and r.json()["released"] == 1
    assert [m[4] for m in rampart.messages("alice@example.test")] == ["held for alice@example.test"]
    admin = admin_session(rampart)
    assert [h["id"] for h in admin.get("/api/v1/quarantine").json()] == bobs
    shown = admin.get(f"/api/v1/quarantine/{bobs[0]}").json()
    assert "Subject: held for bob@example.test" in shown["headers"] and "gtube" in shown["trail"], shown
    assert admin.get("/api/v1/quarantine/NOSUCH").status_code == 404
    assert admin.post(f"/api/v1/quarantine/{bobs[0]}/release").json()["released"] == 1
    assert admin.get("/api/v1/spam/stats").json()["ham"] == 2


def test_self_service_password_change(rampart):
    start(rampart, listeners=(*WEB, "imaps"))
    api, other = Api(rampart), Api(rampart)
    api.login("alice@example.test")
    other.login("alice@example.test")
    r = api.post("/api/v1/me/password", {"current": "wrong", "new": NEW_PASSWORD})
    assert r.status_code == 400
    # A wrong re-entered password is a failed login for fail2ban and the guard, like any other.
    rampart.wait_log(r"event=auth_failure proto=web .*user=alice@example.test .*reason=recheck")
    r = api.post("/api/v1/me/password", {"current": PASSWORD, "new": "alice12345678"})
    assert r.status_code == 400 and "password refused" in r.json()["message"]
    assert api.post("/api/v1/me/password", {"current": PASSWORD, "new": NEW_PASSWORD}).status_code == 200
    # This session goes on, the other ends; the new password is the IMAP password too.
    assert api.get("/api/v1/me").status_code == 200
    assert other.get("/api/v1/me").status_code == 401
    ctx = _no_hostname(rampart.tls_context())
    with imaplib.IMAP4_SSL("127.0.0.1", rampart.ports["imaps"], ssl_context=ctx) as imap:
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("alice@example.test", PASSWORD)
    with imaplib.IMAP4_SSL("127.0.0.1", rampart.ports["imaps"], ssl_context=ctx) as imap:
        assert imap.login("alice@example.test", NEW_PASSWORD)[0] == "OK"
    # TOTP off needs the password.
    api.post("/api/v1/me/totp")
    totp = pyotp.TOTP(api.post("/api/v1/me/totp").json()["secret"])
    old_codes = api.post("/api/v1/me/totp/confirm", {"code": totp.now()}).json()["recovery_codes"]
    assert api.get("/api/v1/me/totp/recovery-codes").json() == {"left": 10}
    assert api.post("/api/v1/me/totp/recovery-codes", {"password": "wrong"}).status_code == 400
    new_codes = api.post("/api/v1/me/totp/recovery-codes", {"password": NEW_PASSWORD}).json()["recovery_codes"]
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    assert Api(rampart).login("alice@example.test", NEW_PASSWORD, totp=old_codes[0]).status_code == 401
    assert Api(rampart).login("alice@example.test", NEW_PASSWORD, totp=new_codes[0]).status_code == 200
    assert api.get("/api/v1/me/totp/recovery-codes").json() == {"left": 9}
    assert "9 recovery codes left" in rampart.run_cli("user", "show", "alice@example.test").stdout
    cli_codes = rampart.run_cli("user", "totp", "recovery-codes", "alice@example.test").stdout.split()[-10:]
    assert Api(rampart).login("alice@example.test", NEW_PASSWORD, totp=new_codes[1]).status_code == 401
    assert Api(rampart).login("alice@example.test", NEW_PASSWORD, totp=cli_codes[0]).status_code == 200
    assert api.call("DELETE", "/api/v1/me/totp", {"password": "wrong"}).status_code == 400
    assert api.call("DELETE", "/api/v1/me/totp", {"password": NEW_PASSWORD}).json()["ok"] is True


def test_api_tokens_with_scopes(rampart):
    start(rampart)
    out = rampart.run_cli("api-token", "add", "--name", "ci", "--scope", "domains").stdout
    token = out.strip().splitlines()[-1]
    assert rampart.run_cli("api-token", "add", "--name", "ci", check=False).returncode != 0
    base = f"https://127.0.0.1:{rampart.ports['https']}"
    auth = {"Authorization": f"Bearer {token}"}
    r = requests.get(base + "/api/v1/domains", headers=auth, verify=False, timeout=10)
    assert r.status_code == 200 and "example.test" in r.json()
    r = requests.post(base + "/api/v1/domains", json={"name": "auto.test"}, headers=auth, verify=False, timeout=10)
    assert r.status_code == 200
    r = requests.get(base + "/api/v1/users", headers=auth, verify=False, timeout=10)
    assert r.status_code == 403 and r.json()["error"] == "scope"
    # Self-service needs a person.
    assert requests.get(base + "/api/v1/me/app-passwords", headers=auth, verify=False, timeout=10).status_code == 403
    listed = rampart.run_cli("api-token", "list").stdout
    assert listed.startswith("ci\tdomains\t") and "last used never" not in listed
    # A token scoped to users cannot make or take over an administrator (that would reach
    # every scope); an unscoped one can.
    users = rampart.run_cli("api-token", "add", "--name", "hr", "--scope", "users").stdout.strip().splitlines()[-1]
    hr = {"Authorization": f"Bearer {users}"}
    r = requests.post(base + "/api/v1/users", json={"address": "mallory@example.test", "password": NEW_PASSWORD, "role": "admin"},
                      headers=hr, verify=False, timeout=10)
    assert r.status_code == 403 and r.json()["error"] == "scope"
    r = requests.put(base + "/api/v1/users/alice@example.test/role", json={"role": "admin"}, headers=hr, verify=False, timeout=10)
    assert r.status_code == 403
    r = requests.post(base + "/api/v1/users", json={"address": "carol@example.test", "password": NEW_PASSWORD},
                      headers=hr, verify=False, timeout=10)
    assert r.status_code == 200, r.text
    rampart.run_cli("api-token", "revoke", "--name", "ci")
    assert requests.get(base + "/api/v1/domains", headers=auth, verify=False, timeout=10).status_code == 401
    r = requests.get(base + "/api/v1/domains", headers={"Authorization": "Bearer nonsense"}, verify=False, timeout=10)
    assert r.status_code == 401


def test_openapi_document_lists_every_route(rampart):
    start(rampart)
    doc = Api(rampart).get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/api/v1/login", "/api/v1/me/totp", "/api/v1/users/{address}/role", "/api/v1/quarantine"):
        assert path in doc["paths"], path
    api = admin_session(rampart)
    # Every documented GET without parameters answers (no 404 or 405).
    for path, ops in doc["paths"].items():
        if "get" in ops and "{" not in path:
            assert api.get(path).status_code == 200, path


# --- autoconfiguration --------------------------------------------------------------------------

MAIL = (*WEB, "imap", "imaps", "submission", "submissions")


def test_thunderbird_autoconfig(rampart):
    start(rampart, listeners=MAIL)
    p = rampart.ports
    for path in ("/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=bob%40example.test",
                 "/mail/config-v1.1.xml?emailaddress=bob@example.test"):
        r = Api(rampart).get(path)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/xml")
        root = ET.fromstring(r.text)
        assert root.tag == "clientConfig" and root.get("version") == "1.1"
        provider = root.find("emailProvider")
        assert provider.get("id") == "example.test" and provider.findtext("domain") == "example.test"
        incoming = provider.findall("incomingServer")
        assert [(s.get("type"), s.findtext("socketType"), int(s.findtext("port"))) for s in incoming] == [
            ("imap", "SSL", p["imaps"]), ("imap", "STARTTLS", p["imap"])]
        outgoing = provider.findall("outgoingServer")
        assert [(s.get("type"), s.findtext("socketType"), int(s.findtext("port"))) for s in outgoing] == [
            ("smtp", "SSL", p["submissions"]), ("smtp", "STARTTLS", p["submission"])]
        for s in incoming + outgoing:
            assert s.findtext("hostname") == "mx.example.test"
            assert s.findtext("username") == "%EMAILADDRESS%"
            assert s.findtext("authentication") == "password-cleartext"


def test_outlook_autodiscover_and_apple_profile(rampart):
    start(rampart, listeners=MAIL)
    body = ('<?xml version="1.0"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
            'requestschema/2006"><Request><EMailAddress>bob@example.test</EMailAddress><AcceptableResponseSchema>'
            'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>'
            '</Request></Autodiscover>')
    r = Api(rampart).call("POST", "/autodiscover/autodiscover.xml", data=body, headers={"Content-Type": "text/xml"})
    assert r.status_code == 200, r.text
    ns = {"a": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    protocols = ET.fromstring(r.text).findall(".//a:Protocol", ns)
    got = [(x.findtext("a:Type", namespaces=ns), int(x.findtext("a:Port", namespaces=ns)), x.findtext("a:SSL", namespaces=ns),
            x.findtext("a:LoginName", namespaces=ns)) for x in protocols]
    assert got == [("IMAP", rampart.ports["imaps"], "on", "bob@example.test"),
                   ("SMTP", rampart.ports["submissions"], "on", "bob@example.test")]
    api = Api(rampart)
    assert api.get("/api/v1/me/mobileconfig").status_code == 401
    api.login("alice@example.test")
    r = api.get("/api/v1/me/mobileconfig")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(r.content)
    mail = profile["PayloadContent"][0]
    assert mail["PayloadType"] == "com.apple.mail.managed" and mail["EmailAddress"] == "alice@example.test"
    assert mail["IncomingMailServerPortNumber"] == rampart.ports["imaps"] and mail["IncomingMailServerUseSSL"] is True
    assert mail["OutgoingMailServerPortNumber"] == rampart.ports["submissions"]
    assert "IncomingPassword" not in mail and "OutgoingPassword" not in mail


def test_bans_queue_dkim_and_message_trail_like_the_cli(rampart):
    from conftest import free_port
    # Remote mail goes to a smart host that is not there: it waits in the queue (deferred).
    closed = free_port()
    start(rampart, f'queue.route=[{{domains = ["remote.test"], host = "127.0.0.1", port = {closed}}}]',
          listeners=(*WEB, "smtp", "submissions"))
    api = admin_session(rampart)
    r = api.post("/api/v1/bans", {"net": "192.0.2.0/24", "seconds": 3600, "reason": "manual"})
    assert r.status_code == 200 and r.json()["offenses"] == 1, r.text
    assert "192.0.2.0/24\tactive" in rampart.run_cli("ban", "list").stdout
    assert [b["net"] for b in api.get("/api/v1/bans").json()] == ["192.0.2.0/24"]
    assert api.post("/api/v1/bans", {"net": "not-a-net"}).status_code == 400
    assert api.call("DELETE", "/api/v1/bans", params={"net": "192.0.2.0/24"}).status_code == 200
    assert api.call("DELETE", "/api/v1/bans", params={"net": "192.0.2.0/24"}).status_code == 404
    assert rampart.run_cli("ban", "list").stdout.strip() == ""
    assert api.get("/api/v1/queue").json() == []
    assert api.post("/api/v1/queue/NOSUCH/retry").status_code == 404
    assert api.call("DELETE", "/api/v1/queue/NOSUCH").status_code == 404
    # A message for a remote domain waits in the queue (no DNS here): retry it, then drop it.
    with smtplib.SMTP_SSL("127.0.0.1", rampart.ports["submissions"], context=_no_hostname(rampart.tls_context()), timeout=20) as s:
        s.login("alice@example.test", PASSWORD)
        s.sendmail("alice@example.test", ["friend@remote.test"], message_bytes(sender="alice@example.test", to="friend@remote.test"))
    queued = api.get("/api/v1/queue").json()
    assert [r["rcpt"] for e in queued for r in e["rcpts"]] == ["friend@remote.test"], queued
    qid = queued[0]["id"]
    rampart.wait_log(r"event=delivery_deferred id=" + qid)
    assert api.post(f"/api/v1/queue/{qid}/retry").status_code == 200
    rampart.wait_log(r"(?s)event=delivery_deferred id=" + qid + r".*event=delivery_deferred id=" + qid)
    assert api.call("DELETE", f"/api/v1/queue/{qid}").status_code == 200
    assert api.get("/api/v1/queue").json() == []
    assert rampart.run_cli("queue", "list").stdout.strip() == ""
    rampart.run_cli("dkim", "keygen", "example.test", "--selector", "w1", "--algorithm", "ed25519")
    keys = api.get("/api/v1/dkim", params={"domain": "example.test"}).json()
    assert ("w1", "ed25519", "w1._domainkey.example.test") in [(k["selector"], k["algorithm"], k["record"]) for k in keys]
    assert "private" not in str(keys)
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=20) as s:
        s.sendmail("a@remote.test", ["alice@example.test"], message_bytes(to="alice@example.test"))
    ref = rampart.messages("alice@example.test")[0][1]
    why = api.get(f"/api/v1/messages/{ref}/why").json()
    assert why[0]["mailbox"] == "alice@example.test/INBOX" and "decision" in why[0]["trail"], why
    assert api.get("/api/v1/messages/NOSUCHID/why").status_code == 404
    found = api.get("/api/v1/messages", params={"address": "alice@example.test"}).json()
    assert [(m["id"], m["verdict"]) for m in found] == [(ref, "accept")], found
    assert api.get("/api/v1/messages", params={"address": "bob@example.test"}).json() == []
    assert api.get("/api/v1/messages", params={"since": int(time.time()) + 3600}).json() == []
    out = rampart.run_cli("message", "search", "--address", "alice@example.test", "--since", "2020-01-01").stdout
    assert out.startswith(f"{ref}\t") and out.rstrip().endswith("\taccept"), out
    assert rampart.run_cli("message", "search", "--until", "2020-01-01").stdout == ""
    shown = rampart.run_cli("user", "show", "bob@example.test").stdout
    assert "role: admin" in shown and "totp: on (10 recovery codes left)" in shown, shown


def test_admin_finds_messages_by_message_id(rampart):
    start(rampart, listeners=(*WEB, "smtp"))
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=20) as s:
        for n, to in enumerate(("alice@example.test", "alice@example.test", "bob@example.test")):
            s.sendmail("a@remote.test", [to], message_bytes(to=to, subject=f"m{n}", mid=f"<m{n}.x@remote.test>"))
    api = admin_session(rampart)
    found = api.get("/api/v1/messages", params={"message_id": "<m1.x@remote.test>"}).json()
    refs = {m[4]: m[1] for m in rampart.messages("alice@example.test")}
    assert [(m["id"], m["mailbox"]) for m in found] == [(refs["m1"], "alice@example.test/INBOX")], found
    # Without the angle brackets, and combined with the other criteria.
    assert [m["id"] for m in api.get("/api/v1/messages", params={"message_id": "m1.x@remote.test"}).json()] == [refs["m1"]]
    assert api.get("/api/v1/messages", params={"message_id": "m1.x@remote.test", "address": "bob@example.test"}).json() == []
    assert [m["mailbox"] for m in api.get("/api/v1/messages", params={"message_id": "m2.x@remote.test"}).json()] == ["bob@example.test/INBOX"]
    assert api.get("/api/v1/messages", params={"message_id": "nothing@remote.test"}).json() == []


def test_admin_manages_a_users_app_passwords(rampart):
    start(rampart, listeners=(*WEB, "imaps"))
    api = admin_session(rampart)
    path = "/api/v1/users/alice@example.test/app-passwords"
    r = api.post(path, {"name": "laptop"})
    assert r.status_code == 200, r.text
    password = r.json()["password"]
    assert api.post(path, {"name": "laptop"}).status_code == 409
    assert [a["name"] for a in api.get(path).json()] == ["laptop"]
    assert "laptop" in rampart.run_cli("user", "app-password", "list", "alice@example.test").stdout
    ctx = _no_hostname(rampart.tls_context())
    with imaplib.IMAP4_SSL("127.0.0.1", rampart.ports["imaps"], ssl_context=ctx) as imap:
        assert imap.login("alice@example.test", password)[0] == "OK"
    assert api.get(path).json()[0]["last_used"] is not None
    assert api.call("DELETE", path + "/laptop").status_code == 200
    assert api.call("DELETE", path + "/laptop").status_code == 404
    assert api.get(path).json() == []
    with imaplib.IMAP4_SSL("127.0.0.1", rampart.ports["imaps"], ssl_context=ctx) as imap:
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("alice@example.test", password)


@pytest.mark.sqlite_only
def test_admin_ends_a_users_sessions_and_reads_dmarc_reports(rampart):
    start(rampart)
    api = admin_session(rampart)
    alice = Api(rampart)
    assert alice.login("alice@example.test").status_code == 200
    r = api.call("DELETE", "/api/v1/users/alice@example.test/sessions")
    assert r.status_code == 200 and r.json()["sessions"] == 1, r.text
    assert alice.get("/api/v1/me").status_code == 401
    assert api.call("DELETE", "/api/v1/users/nobody@example.test/sessions").status_code == 404
    # A report as the DMARC report intake stores it (test_sender_auth sends real ones): listed
    # here as `rampart dmarc reports` lists it.
    db = sqlite3.connect(str(rampart.dir / "data" / "rampart.db"))
    db.execute("INSERT INTO dmarc_reports (org_name, report_id, domain, date_begin, date_end, messages, passed, records, received) "
               "VALUES ('Reports Org', 'r9', 'example.test', 1700000000, 1700086400, 3, 2, '[]', 1700090000)")
    db.commit()
    db.close()
    reports = api.get("/api/v1/dmarc/reports").json()
    assert reports == [{"domain": "example.test", "org_name": "Reports Org", "report_id": "r9", "begin": 1700000000,
                        "end": 1700086400, "messages": 3, "passed": 2, "received": 1700090000}], reports
    assert "Reports Org\tr9" in rampart.run_cli("dmarc", "reports").stdout


def test_suspended_accounts_cannot_log_in_anywhere(rampart):
    start(rampart, listeners=(*WEB, "imaps", "submissions"))
    api = admin_session(rampart)
    alice = Api(rampart)
    assert alice.login("alice@example.test").status_code == 200
    assert api.call("PUT", "/api/v1/users/alice@example.test/suspended", {"suspended": True}).status_code == 200
    assert api.get("/api/v1/users/alice@example.test").json()["suspended"] is True
    # Her web session is over, and no protocol lets her in.
    assert alice.get("/api/v1/me").status_code == 401
    assert Api(rampart).login("alice@example.test").status_code == 401
    ctx = _no_hostname(rampart.tls_context())
    with imaplib.IMAP4_SSL("127.0.0.1", rampart.ports["imaps"], ssl_context=ctx) as imap:
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("alice@example.test", PASSWORD)
    with smtplib.SMTP_SSL("127.0.0.1", rampart.ports["submissions"], context=_no_hostname(rampart.tls_context()), timeout=20) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("alice@example.test", PASSWORD)
    assert "suspended: yes" in rampart.run_cli("user", "show", "alice@example.test").stdout
    rampart.run_cli("user", "unsuspend", "alice@example.test")
    assert Api(rampart).login("alice@example.test").status_code == 200
    rampart.run_cli("user", "suspend", "alice@example.test")
    assert api.get("/api/v1/users/alice@example.test").json()["suspended"] is True


def test_dashboard_counts_the_servers_own_events(rampart):
    start(rampart, listeners=(*WEB, "smtp"))
    assert Api(rampart).login("alice@example.test", "wrong password here").status_code == 401
    with smtplib.SMTP("127.0.0.1", rampart.ports["smtp"], timeout=20) as s:
        s.sendmail("a@remote.test", ["alice@example.test"], message_bytes(to="alice@example.test"))
        s.mail("a@remote.test")
        assert s.rcpt("someone@elsewhere.test")[0] == 554
    api = admin_session(rampart)

    def counted():
        series = api.get("/api/v1/stats", params={"hours": 3}).json()["series"]
        wanted = ("received", "refused:relay_denied", "login_failed:web", "login:web")
        return series if all(sum(series.get(k, [])) >= 1 for k in wanted) else None

    from conftest import wait_for
    series = wait_for(counted, timeout=20, what="the dashboard counts")
    assert all(len(v) == 3 for v in series.values())
    assert sum(series["refused"]) == sum(v for k, vs in series.items() if k.startswith("refused:") for v in vs)


def test_dashboard_shows_certificate_expiry_and_users_sending_quotas(rampart):
    start(rampart, listeners=(*WEB, "submissions"))
    rampart.run_cli("quota", "set", "alice@example.test", "messages_per_day", "7")
    with smtplib.SMTP_SSL("127.0.0.1", rampart.ports["submissions"], context=_no_hostname(rampart.tls_context()), timeout=20) as s:
        s.login("alice@example.test", PASSWORD)
        s.sendmail("alice@example.test", ["bob@example.test"], message_bytes(sender="alice@example.test", to="bob@example.test"))
    api = admin_session(rampart)
    # The certificate the listeners present, read as the audit reads it (rampart init's: self-signed).
    certs = api.get("/api/v1/dashboard/certificates").json()
    assert len(certs) == 1, certs
    cert = certs[0]
    assert cert["file"].endswith(".pem") and cert["self_signed"] is True and cert["problem"] is None, cert
    assert cert["days_left"] > 0 and cert["status"] in ("ok", "expiring") and cert["not_after"] > time.time()
    # Each user's sending quotas: use and limit, as `rampart quota show` reports them.
    users = {u["address"]: u for u in api.get("/api/v1/users").json()}
    quotas = {q["key"]: q for q in users["alice@example.test"]["quota"]["quotas"]}
    assert quotas["messages_per_day"] == {"key": "messages_per_day", "used": 1, "limit": 7}, quotas
    assert users["alice@example.test"]["quota"]["exempt"] is False
    shown = rampart.run_cli("quota", "show", "alice@example.test").stdout
    assert re.search(r"messages_per_day\s+1 / 7", shown), shown
    assert {q["key"]: q["used"] for q in users["bob@example.test"]["quota"]["quotas"]}["messages_per_day"] == 0
    assert api.get("/api/v1/users/alice@example.test").json()["quota"]["quotas"] == users["alice@example.test"]["quota"]["quotas"]


def test_dns_records_checked_live(rampart, dns):
    dns.mx("example.test", "mx.example.test")
    dns.txt("example.test", "v=spf1 a -all")
    dns.start()
    # In the file, so `rampart dns check` asks the same server.
    rampart.set_config("dns", "nameservers", f'["{dns.address}"]')
    start(rampart, f'dns.nameservers=["{dns.address}"]')
    api = admin_session(rampart)
    records = api.get("/api/v1/domains/example.test/dns").json()
    status = {(r["rtype"], r["name"]): r["status"] for r in records}
    assert status[("MX", "example.test.")] == "ok", records
    assert status[("TXT", "example.test.")] == "wrong"
    assert status[("TXT", "_dmarc.example.test.")] == "missing"
    assert status[("CNAME", "autoconfig.example.test.")] == "missing"
    spf = next(r for r in records if r["name"] == "example.test." and r["rtype"] == "TXT")
    assert spf["found"] == ["v=spf1 a -all"] and spf["expected"] == "v=spf1 mx -all"
    assert any(r["rtype"] == "TXT" and "_domainkey" in r["name"] for r in records)
    assert api.get("/api/v1/domains/elsewhere.test/dns").status_code == 404
    r = rampart.run_cli("dns", "check", "example.test", check=False)
    assert r.returncode != 0 and "ok\tMX\texample.test.\t10 mx.example.test." in r.stdout, r.stdout
    assert "wrong\tTXT\texample.test.\tv=spf1 mx -all\n\tfound: v=spf1 a -all" in r.stdout


def audit_report(api, after=0):
    """The dashboard's audit report once its run is at least `after` (the first run: 1 once asked)."""
    from conftest import wait_for

    def done():
        r = api.get("/api/v1/audit").json()
        return r if r["computed"] and r["run"] >= after else None
    return wait_for(done, timeout=90, what=f"the audit run {after}")


def test_dashboard_audit_has_the_clis_findings_and_reruns_when_asked(rampart, dns):
    dns.mx("example.test", "mx.example.test")
    dns.txt("example.test", "v=spf1 +all")
    dns.start()
    # In the file, so the CLI audits the same setup as the server.
    rampart.set_config("dns", "nameservers", f'["{dns.address}"]')
    rampart.set_config("auth", "cram_md5", "true")
    totp, _ = admin_with_totp(rampart)
    rampart.run_cli("user", "role", "alice@example.test", "admin")  # an admin without 2FA
    start(rampart, f'dns.nameservers=["{dns.address}"]')
    api = Api(rampart)
    assert api.login("bob@example.test", totp=totp.now()).status_code == 200
    # The run at start (web.audit_interval is on with a test DNS).
    report = audit_report(api)
    assert report["failed"] is False and report["interval"] == 6 * 3600 and report["computed"] >= report["started"]
    web = {(f["severity"], f["area"], f["subject"], f["problem"], f["fix"]) for f in report["findings"]}
    order = [{"high": 0, "medium": 1, "low": 2}[f["severity"]] for f in report["findings"]]
    assert order == sorted(order), "most severe first"
    assert ("high", "web", "alice@example.test") in {f[:3] for f in web}, web
    assert ("medium", "config", "auth.cram_md5") in {f[:3] for f in web}, web
    assert any(f[0] == "high" and "SPF ends in +all" in f[3] for f in web), web
    # The same findings as `rampart audit --json`, but for the open-relay test (CLI only).
    cli = rampart.run_cli("audit", "--json", "--smtp", "127.0.0.1:9", check=False)
    assert cli.returncode != 0
    cli_found = {(f["severity"], f["area"], f["subject"], f["problem"], f["fix"]) for f in json.loads(cli.stdout)["findings"]}
    assert {f for f in cli_found if f[1] != "relay"} == web
    assert not [f for f in web if f[1] == "relay"]
    # Fixed, then audited again on request: the finding is gone.
    rampart.run_cli("user", "totp", "enroll", "alice@example.test")
    asked = api.post("/api/v1/audit")
    assert asked.status_code == 200, asked.text
    run = asked.json()["run"]
    assert run > report["run"]
    again = audit_report(api, run)
    assert ("high", "web", "alice@example.test") not in {(f["severity"], f["area"], f["subject"]) for f in again["findings"]}
    assert ("medium", "config", "auth.cram_md5") in {(f["severity"], f["area"], f["subject"]) for f in again["findings"]}
    rampart.wait_log(r"event=audit_requested proto=web run=\d+ by=bob@example\.test")
    rampart.wait_log(r"event=audit_finished run=\d+ high=\d+")
    # API tokens: the stats scope reads and reruns it, others may not.
    base = f"https://127.0.0.1:{rampart.ports['https']}"
    for scope, status in (("stats", 200), ("queue", 403)):
        token = rampart.run_cli("api-token", "add", "--name", scope, "--scope", scope).stdout.strip().splitlines()[-1]
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.get(base + "/api/v1/audit", headers=auth, verify=False, timeout=10).status_code == status
        assert requests.post(base + "/api/v1/audit", headers=auth, verify=False, timeout=10).status_code == status
    # A run every minute would be a loop against the name servers.
    r = rampart.run_cli("config", "check", "--set", 'web.audit_interval="1m"', check=False)
    assert r.returncode != 0 and "web.audit_interval" in r.stderr
