//! Table tests: one message (and trail) per case, the exact set of rules it fires.

use super::*;
use rampart_pipeline::Disposition;

/// The headers of an ordinary, well-formed message, before the case's own.
const BASE: &str = "From: Alice Example <alice@example.com>\r\nTo: bob@example.org\r\nSubject: Lunch on Friday\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n";

fn fired(raw: &str, trail: &Trail) -> Vec<String> {
    let view = MessageView::parse(raw.as_bytes());
    let urls = Urls::extract(&view);
    evaluate(&Input { view: &view, urls: &urls, trail }).into_iter().map(|e| e.detail).collect()
}

fn msg(extra_headers: &str, body: &str) -> String {
    format!("{BASE}{extra_headers}\r\n{body}")
}

/// A message with the base headers except those named, and the given headers.
fn without(drop: &[&str], headers: &str, body: &str) -> String {
    let kept: String = BASE.split_inclusive("\r\n").filter(|l| !drop.iter().any(|d| l.starts_with(d))).collect();
    format!("{kept}{headers}\r\n{body}")
}

fn html(body: &str) -> String {
    msg("Content-Type: text/html; charset=utf-8\r\n", body)
}

#[test]
fn message_rules() {
    let empty = Trail::default();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("clean", msg("", "See you at noon.\r\n"), vec![]),
        ("spoofed display address", without(&["From:"], "From: \"service@paypal.com\" <x@evil.test>\r\n", "hi\r\n"), vec!["SPOOF_DISPLAY_NAME"]),
        ("spoofed display domain", without(&["From:"], "From: PayPal.com Support <x@evil.test>\r\n", "hi\r\n"), vec!["SPOOF_DISPLAY_NAME"]),
        ("display domain is the sender's", without(&["From:"], "From: Example.com Shop <news@mail.example.com>\r\n", "hi\r\n"), vec![]),
        ("initials are no domain", without(&["From:"], "From: Dr. J. R. Smith <j@example.com>\r\n", "hi\r\n"), vec![]),
        ("a project name is no domain", without(&["From:"], "From: Node.js Weekly <news@example.com>\r\n", "hi\r\n"), vec![]),
        ("version is no domain", without(&["From:"], "From: Build 2.0 <ci@example.com>\r\n", "hi\r\n"), vec![]),
        ("reply-to elsewhere", msg("Reply-To: help@support.test\r\n", "hi\r\n"), vec!["REPLYTO_DIFFERS"]),
        ("reply-to freemail", msg("Reply-To: barrister.j@gmail.com\r\n", "hi\r\n"), vec!["REPLYTO_DIFFERS", "FREEMAIL_REPLYTO"]),
        ("list reply-to", msg("Reply-To: list@lists.test\r\nList-Id: <list.lists.test>\r\n", "hi\r\n"), vec![]),
        ("all caps", without(&["Subject:"], "Subject: URGENT BUSINESS PROPOSAL!!!\r\n", "hi\r\n"), vec!["SUBJ_ALL_CAPS"]),
        ("short caps", without(&["Subject:"], "Subject: RE: FYI\r\n", "hi\r\n"), vec![]),
        ("no subject", without(&["Subject:"], "", "hi\r\n"), vec!["MISSING_SUBJECT"]),
        ("no id, no date", without(&["Message-ID:", "Date:"], "", "hi\r\n"), vec!["MISSING_MID", "MISSING_DATE"]),
        ("html only", html("<p>Hello Bob, see you at noon.</p>"), vec!["MIME_HTML_ONLY"]),
        (
            "alternative",
            msg(
                "Content-Type: multipart/alternative; boundary=b\r\n",
                "--b\r\nContent-Type: text/plain\r\n\r\nHello\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Hello</p>\r\n--b--\r\n",
            ),
            vec![],
        ),
        ("hidden text", html(&format!("<p>Hi</p><div style=\"display:none\">{}</div>", "lorem ipsum ".repeat(20))), vec!["MIME_HTML_ONLY", "HTML_HIDDEN_TEXT"]),
        ("preheader is fine", html("<div style=\"display:none\">Your November statement is ready</div><p>Hi</p>"), vec!["MIME_HTML_ONLY"]),
        ("white on white", html(&format!("<p>Hi</p><font color=\"#ffffff\">{}</font>", "viagra ".repeat(10))), vec!["MIME_HTML_ONLY", "HTML_INVISIBLE_TEXT"]),
        ("image only", html("<a href=\"http://shop.example.com/\"><img src=\"http://shop.example.com/a.png\"></a>"), vec!["MIME_HTML_ONLY", "HTML_IMAGE_ONLY"]),
        ("link text mismatch", html("<a href=\"http://evil.test/login\">https://www.mybank.com/login</a>"), vec!["MIME_HTML_ONLY", "LINK_TEXT_MISMATCH"]),
        ("link text bare domain", html("<a href=\"http://evil.test/login\">mybank.com</a>"), vec!["MIME_HTML_ONLY", "LINK_TEXT_MISMATCH"]),
        ("link text same domain", html("<a href=\"https://click.mybank.com/r?x=1\">www.mybank.com</a>"), vec!["MIME_HTML_ONLY"]),
        ("link text names a project", html("<a href=\"https://nodejs.example/\">Node.js</a>"), vec!["MIME_HTML_ONLY"]),
        ("link text words", html("<a href=\"http://evil.test/\">Click here.now</a>"), vec!["MIME_HTML_ONLY"]),
        ("link to ip", html("<a href=\"http://192.0.2.1/x\">www.mybank.com</a>"), vec!["MIME_HTML_ONLY", "LINK_TEXT_MISMATCH", "URI_NUMERIC_HOST"]),
        ("ip url in text", msg("", "go to http://192.0.2.1/x\r\n"), vec!["URI_NUMERIC_HOST"]),
        ("userinfo url", msg("", "go to http://www.mybank.com@evil.test/x\r\n"), vec!["URI_OBFUSCATED"]),
        ("encoded host", html("<a href=\"http://%65vil.test/\">here</a>"), vec!["MIME_HTML_ONLY", "URI_OBFUSCATED"]),
        ("executable", attachment("setup.exe", "application/octet-stream"), vec!["EXECUTABLE_ATTACHMENT"]),
        ("double extension", attachment("invoice.pdf.exe", "application/octet-stream"), vec!["EXECUTABLE_ATTACHMENT", "DOUBLE_EXT_EXECUTABLE"]),
        ("double extension, spaces", attachment("Invoice.PDF   .scr", "application/octet-stream"), vec!["EXECUTABLE_ATTACHMENT", "DOUBLE_EXT_EXECUTABLE"]),
        ("executable by type", attachment("", "application/x-msdownload"), vec!["EXECUTABLE_ATTACHMENT"]),
        ("document", attachment("report.2026.pdf", "application/pdf"), vec![]),
        ("archive is out of scope", attachment("invoice.zip", "application/zip"), vec![]),
        ("freemail company", without(&["From:"], "From: \"Billing Team\" <billing8812@gmail.com>\r\n", "hi\r\n"), vec!["FREEMAIL_ORG_NAME"]),
        ("freemail person", without(&["From:"], "From: Maya Lind <maya@gmail.com>\r\n", "hi\r\n"), vec![]),
        ("password form", html("<p>Sign in</p><form><input type=password></form>"), vec!["MIME_HTML_ONLY", "HTML_PASSWORD_FORM"]),
        ("html attachment", attachment("AWB_55120.html", "text/html"), vec!["ATTACH_HTML"]),
        ("domain in subdomain", msg("", "see http://mybank.com.login.example.net/x\r\n"), vec!["URI_DOMAIN_IN_SUBDOMAIN"]),
        ("punycode", msg("", "see http://xn--mybnk-gra.com/\r\n"), vec!["URI_PUNYCODE"]),
        ("advance fee", msg("", "I seek a foreign partner to stand as next of kin.\r\n"), vec!["ADVANCE_FEE"]),
        ("one phrase says nothing", msg("", "Please reply within 24 hours.\r\n"), vec![]),
        ("phrases in the subject count", without(&["Subject:"], "Subject: Verify your account\r\n", "It will be suspended tomorrow.\r\n"), vec!["PHISH_URGENCY"]),
        ("large sum", msg("", "The fund of USD 8,500,000.00 is waiting.\r\n"), vec!["LOTS_OF_MONEY"]),
        ("bitcoin", msg("", "Pay to bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh today.\r\n"), vec!["BITCOIN_ADDRESS"]),
        ("deep nesting", nested(7), vec!["MIME_DEEP_NESTING"]),
        ("normal nesting", nested(3), vec![]),
    ];
    for (name, raw, want) in cases {
        assert_eq!(fired(&raw, &empty), want, "{name}");
    }
}

fn attachment(name: &str, content_type: &str) -> String {
    let disposition = if name.is_empty() { String::new() } else { format!("Content-Disposition: attachment; filename=\"{name}\"\r\n") };
    msg(
        "Content-Type: multipart/mixed; boundary=b\r\n",
        &format!("--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\nContent-Type: {content_type}\r\n{disposition}Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n"),
    )
}

fn nested(depth: usize) -> String {
    let mut body = String::from("Content-Type: text/plain\r\n\r\nhi\r\n");
    for i in 0..depth {
        body = format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n{body}--b{i}--\r\n");
    }
    let (headers, rest) = body.split_once("\r\n\r\n").unwrap();
    msg(&format!("{headers}\r\n"), rest)
}

#[test]
fn authentication_rules() {
    use Outcome as O;
    use Reason as R;
    use Stage as S;
    let dmarc = |o, p| {
        let mut e = Entry::new(S::Dmarc, o, R::DmarcNotAligned).domain("example.com");
        e.policy = p;
        e
    };
    let dkim_ok = Entry::new(S::Dkim, O::Pass, R::DkimValid);
    let cases: Vec<(&str, Vec<Entry>, Vec<&str>)> = vec![
        ("nothing ran", vec![], vec![]),
        ("dmarc reject", vec![dmarc(O::Fail, Some(Disposition::Reject))], vec!["DMARC_POLICY_REJECT"]),
        ("dmarc quarantine", vec![dmarc(O::Fail, Some(Disposition::Quarantine))], vec!["DMARC_POLICY_QUARANTINE"]),
        ("dmarc none", vec![dmarc(O::Fail, Some(Disposition::None))], vec!["DMARC_POLICY_NONE"]),
        ("dmarc and dkim pass", vec![dkim_ok.clone(), dmarc(O::Pass, None)], vec!["DKIM_DMARC_PASS"]),
        ("dmarc pass by spf only", vec![Entry::new(S::Dkim, O::None, R::DkimUnsigned), dmarc(O::Pass, None)], vec!["DKIM_NONE"]),
        ("spf fail", vec![Entry::new(S::Spf, O::Fail, R::SpfNotAuthorized)], vec!["SPF_FAIL"]),
        ("spf softfail", vec![Entry::new(S::Spf, O::SoftFail, R::SpfWeaklyNotAuthorized)], vec!["SPF_SOFTFAIL"]),
        ("spf pass", vec![Entry::new(S::Spf, O::Pass, R::SpfAuthorized)], vec![]),
        ("dkim broken", vec![Entry::new(S::Dkim, O::Fail, R::DkimBodyHashMismatch)], vec!["DKIM_INVALID"]),
        ("one of two dkim broken", vec![Entry::new(S::Dkim, O::Fail, R::DkimBadSignature), dkim_ok], vec![]),
        ("dkim dns error", vec![Entry::new(S::Dkim, O::TempError, R::DkimDnsError)], vec![]),
        ("no ptr", vec![Entry::new(S::Iprev, O::Fail, R::IprevNoPtr)], vec!["RDNS_NONE"]),
        ("ptr mismatch", vec![Entry::new(S::Iprev, O::Fail, R::IprevMismatch)], vec!["RDNS_MISMATCH"]),
    ];
    let raw = msg("", "See you at noon.\r\n");
    for (name, entries, want) in cases {
        assert_eq!(fired(&raw, &Trail(entries)), want, "{name}");
    }
}

#[test]
fn entries_carry_scores_and_names() {
    let raw = format!("{}\r\n{}\r\n", BASE, std::str::from_utf8(crate::message::GTUBE).unwrap());
    let view = MessageView::parse(raw.as_bytes());
    let urls = Urls::extract(&view);
    let trail = Trail(vec![Entry::new(Stage::Dkim, Outcome::Pass, Reason::DkimValid), Entry::new(Stage::Dmarc, Outcome::Pass, Reason::DmarcAligned)]);
    let entries = evaluate(&Input { view: &view, urls: &urls, trail: &trail });
    assert_eq!(entries[0].reason, Reason::Gtube);
    assert_eq!(entries[0].score, Some(GTUBE_SCORE));
    let pass = &entries[1];
    assert_eq!((pass.stage, pass.result, pass.reason, pass.detail.as_str(), pass.score), (Stage::Rules, Outcome::Pass, Reason::RuleMatched, "DKIM_DMARC_PASS", Some(-0.5)));
    let mut t = trail.clone();
    t.extend(entries);
    let d = rampart_pipeline::decide(&t, &rampart_pipeline::Policy::default());
    assert_eq!(d.action, rampart_pipeline::Action::Reject);
}

#[test]
fn rule_table_is_sound() {
    let mut names: Vec<&str> = ALL.iter().map(|r| r.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ALL.len(), "names are unique");
    for r in ALL {
        assert!(r.name.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{}", r.name);
        assert!(r.score.abs() < 5.5 && !r.about.is_empty(), "{}", r.name);
    }
}
