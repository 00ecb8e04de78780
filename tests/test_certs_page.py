"""The certificates page and the dashboard's certificate list in Chromium (the harness of
test_web_pages.py): a certificate expiring in five days is on the dashboard; one made on the
page is in the store."""

from test_web_pages import Page, browser, pytestmark  # noqa: F401 (the fixture and the skip)
from test_web import admin_with_totp
from conftest import PASSWORD


def test_certificates_page_and_dashboard_expiry(rampart, browser):  # noqa: F811
    totp, _ = admin_with_totp(rampart)
    soon = rampart.run_cli("cert", "self-signed", "soon.example.test", "--days", "5").stdout.strip()
    rampart.start('web.failure_delay="0s"', listeners=("https",))
    page = Page(browser, f"https://127.0.0.1:{rampart.ports['https']}")
    page.login("bob@example.test", PASSWORD, totp.now())
    # One certificate list on the dashboard: the [tls] file and the store's, this one expiring.
    page.until(lambda d: "soon.example.test" in d.find_element("id", "certificates").text, "the store's certificate")
    row = next(r for r in page.d.find_element("id", "certificates").text.splitlines() if "soon.example.test" in r)
    assert "expiring" in row and f"certificate #{soon}" in row, row
    page.open("certificates")
    page.until_title("Certificates")
    page.fill({"names": "page.example.test", "key_type": "rsa-2048"}, "Create")
    page.until(lambda d: "page.example.test" in d.find_element("css selector", "table").text, "the new row")
    listing = rampart.run_cli("cert", "list").stdout
    assert f"{soon}\tecdsa-p256\tself-signed" in listing and "rsa-2048\tself-signed" in listing and "page.example.test" in listing
    page.snap("certificates")
