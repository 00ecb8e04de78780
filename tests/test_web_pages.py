"""The pages in a real browser: Debian's Chromium, headless, driven by selenium through
Debian's chromedriver (never a downloaded browser). An admin logs in with TOTP, creates a user,
adds an alias; the new user logs in and enrolls two-factor authentication. Every page is
captured at desktop and phone width into target/test-artifacts/web/, and the tests assert on
what the pages show."""

import os
import pathlib
import shutil
import sqlite3
import tempfile

import pyotp
import pytest

from conftest import PASSWORD, ROOT
from test_web import admin_with_totp

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
                                reason="chromium and chromium-driver are not installed (scripts/setup)")
ARTIFACTS = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "test-artifacts" / "web"
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}
CAROL_PASSWORD = "seventeen quiet harbour lamps"


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 # The test server's certificate is self-signed for mx.example.test.
                 "--ignore-certificate-errors"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_window_size(*SIZES["desktop"])
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


class Page:
    def __init__(self, driver, base):
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait
        self.d, self.base = driver, base
        # Pages redraw by replacing elements: a vanished one just means "look again".
        self.wait = WebDriverWait(driver, 20, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

    def open(self, view):
        self.d.get(f"{self.base}/#{view}")

    def text(self):
        return self.d.find_element("id", "main").text

    def until(self, check, what):
        from selenium.common.exceptions import TimeoutException
        try:
            self.wait.until(check)
        except TimeoutException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            self.d.save_screenshot(str(ARTIFACTS / "failure.png"))
            raise AssertionError(f"waited for {what}; the page shows:\n{self.text()}") from None

    def until_text(self, needle):
        self.until(lambda d: needle in d.find_element("id", "main").text, repr(needle))
        return self.text()

    def until_title(self, title):
        self.until(lambda d: d.find_element("css selector", "main h2").text == title, f"the page {title!r}")

    def fill(self, values, submit):
        for name, value in values.items():
            field = self.d.find_element("css selector", f"input[name={name}]")
            field.clear()
            field.send_keys(value)
        self.d.find_element("xpath", f"//button[normalize-space()='{submit}']").click()

    def login(self, user, password, totp=None):
        self.open("login")
        self.until_title("Log in")
        self.fill({"username": user, "password": password, **({"totp": totp} if totp else {})}, "Log in")

    def snap(self, name):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for size, (w, h) in SIZES.items():
            self.d.set_window_size(w, h)
            self.d.save_screenshot(str(ARTIFACTS / f"{name}-{size}.png"))
            # Nothing is wider than the window at phone width, except inside scrolling tables.
            overflow = self.d.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{name} at {size} is {overflow}px too wide"
        self.d.set_window_size(*SIZES["desktop"])


@pytest.mark.sqlite_only
def test_admin_and_user_pages_in_chromium(rampart, browser, dns):
    totp, _ = admin_with_totp(rampart)
    # The dashboard's audit asks the test DNS (an empty zone: no SPF, no DMARC).
    dns.start()
    rampart.start('web.failure_delay="0s"', f'dns.nameservers=["{dns.address}"]', listeners=("https",))
    page = Page(browser, f"https://127.0.0.1:{rampart.ports['https']}")

    page.login("bob@example.test", PASSWORD, totp.now())
    text = page.until_text("Logged in as")
    assert "bob@example.test" in text and "Users" in text and "Held messages" in text
    # The certificate the listeners present, with its expiry (rampart init's is self-signed).
    page.until(lambda d: "self-signed" in d.find_element("id", "certificates").text, "the certificate table")
    # The audit's findings, high first, after a run asked for from the page.
    page.d.find_element("xpath", "//button[normalize-space()='Run the audit now']").click()
    page.until(lambda d: "Running" in d.find_element("id", "audit").text, "the audit running")
    page.until(lambda d: "Run the audit now" in d.find_element("id", "audit").text, "the audit's run done")
    assert "no DMARC policy" in page.d.find_element("id", "audit").text
    severities = [e.text for e in page.d.find_elements("css selector", "#audit td:first-child")]
    assert severities[0] == "high" and "low" in severities, severities
    assert "rampart audit" in page.d.find_element("id", "audit").text
    page.snap("dashboard")

    page.open("users")
    page.until_title("Users")
    page.fill({"address": "carol@example.test", "password": CAROL_PASSWORD, "role": "user"}, "Add user")
    assert "carol@example.test" in page.until_text("Added carol@example.test")
    assert "Sent today (quota)" in page.text()
    page.snap("users")
    # An account's details: its login history and app passwords, created here and shown once.
    page.d.find_elements("xpath", "//button[normalize-space()='Details']")[1].click()
    page.until(lambda d: "Account bob@example.test" in d.find_element("id", "user-detail").text, "bob's details")
    assert "Login history" in page.text() and "web" in page.d.find_element("id", "user-detail").text
    page.fill({"name": "tablet"}, "Create app password")
    page.until_text("App password tablet for bob@example.test (shown once)")
    page.until(lambda d: "tablet" in d.find_element("id", "user-app-passwords").text, "the app password row")
    page.snap("user-detail")

    page.open("aliases")
    page.until_title("Aliases")
    page.fill({"alias": "info@example.test", "target": "carol@example.test"}, "Add alias")
    page.until_text("Added info@example.test")
    page.until(lambda d: "info@example.test" in d.find_element("css selector", "table").text, "the alias row")
    assert "info@example.test -> carol@example.test" in rampart.run_cli("alias", "list").stdout
    page.snap("aliases")

    page.open("server")
    page.until_title("Server")
    page.fill({"net": "198.51.100.0/24", "hours": "2"}, "Ban")
    page.until_text("Banned 198.51.100.0/24")
    assert "198.51.100.0/24\tactive" in rampart.run_cli("ban", "list").stdout
    assert "rsa-1._domainkey.example.test" in page.text()
    page.fill({"address": "carol@example.test"}, "Search")
    page.until_text("No messages.")
    page.snap("server")

    for view, title in (("domains", "Domains"), ("quarantine", "Quarantine"), ("account", "My account")):
        page.open(view)
        page.until_title(title)
        page.snap(view)

    page.open("logout")
    page.until_title("Log in")

    # The new user logs in and sets up two-factor authentication.
    page.login("carol@example.test", CAROL_PASSWORD)
    page.until_text("Logged in as")
    assert "Users" not in page.d.find_element("id", "nav").text
    page.open("account")
    page.until_title("My account")
    page.d.find_element("link text", "Set up two-factor authentication").click()
    page.until_title("Set up two-factor authentication")
    page.until(lambda d: d.find_element("id", "totp-secret").text, "the TOTP secret")
    assert page.d.find_element("css selector", "main img").get_attribute("src").startswith("data:image/svg+xml")
    page.snap("totp-enroll")
    secret = page.d.find_element("id", "totp-secret").text
    page.fill({"code": pyotp.TOTP(secret).now()}, "Confirm")
    page.until_title("Recovery codes")
    codes = page.d.find_elements("css selector", "#recovery-codes li")
    assert len(codes) == 10
    page.snap("recovery-codes")
    db = sqlite3.connect(str(rampart.dir / "data" / "rampart.db"))
    confirmed = db.execute("SELECT t.confirmed FROM totp t JOIN accounts a ON a.id = t.account_id "
                           "WHERE a.address = 'carol@example.test'").fetchone()
    db.close()
    assert confirmed == (1,)


@pytest.mark.sqlite_only
def test_a_per_user_account_creates_an_app_password_with_its_password(rampart, browser):
    """Per-user encryption: the account page's app-password form asks for the account
    password (the API needs it to wrap the user's key under the new app password), and the
    app password made there opens the mail over IMAP."""
    import imaplib

    user = "alice@example.test"
    rampart.run_cli("user", "encryption", "enable", user, "--password-stdin", input=PASSWORD + "\n")
    rampart.start('web.failure_delay="0s"', listeners=("https", "imap"))
    page = Page(browser, f"https://127.0.0.1:{rampart.ports['https']}")
    page.login(user, PASSWORD)
    page.until_text("Logged in as")
    page.open("account")
    page.until_title("My account")
    page.until(lambda d: d.find_element("css selector", "input[name=password]"), "the app password form's password field")
    page.fill({"name": "phone", "password": PASSWORD}, "Create app password")
    page.until_text("App password phone (shown once)")
    app = page.d.find_element("css selector", "#shown-once code").text
    assert "app:" in rampart.run_cli("user", "encryption", "status", user).stdout, "the key is wrapped under it"
    m = imaplib.IMAP4("127.0.0.1", rampart.ports["imap"], timeout=30)
    m.starttls(ssl_context=rampart.tls_context())
    assert m.login(user, app)[0] == "OK", "the app password unlocks the mail"
    m.logout()
