//! The built-in rules: header, body, URL, attachment and structure checks, and the sender
//! authentication results already in the trail, each with a named, documented score. Every
//! rule that fires becomes one trail entry (stage `rules`, reason `rule_matched`, `detail` =
//! the rule's name, `score`); `decide` sums the scores against the junk, quarantine and
//! reject thresholds (5, 10, 15 by default).
//!
//! Scores follow one idea: no single header or structure oddity reaches Junk alone (legitimate
//! mail has each of them now and then); a sign that the message tries to deceive (a forged
//! display name, a link showing one domain and going to another, an executable) weighs about
//! half of the junk threshold or more; together with the classifier's verdict they decide.

use rampart_pipeline::{Entry, Outcome, Reason, Stage, Trail};

use crate::message::MessageView;
use crate::urls::{self, UrlHost, Urls};

/// A rule: its name (stable: logs, the `X-Spam-Status` header and scripts match on it), the
/// score it adds, and what it means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub name: &'static str,
    pub score: f64,
    pub about: &'static str,
}

/// What GTUBE adds: far above any reject threshold.
pub const GTUBE_SCORE: f64 = 1000.0;
/// Letters and digits hidden by CSS before hidden text counts: a newsletter's hidden
/// preheader is a line or two; text hidden to feed a classifier runs to paragraphs.
const HIDDEN_CHARS: usize = 150;
/// Letters and digits in tiny or background-coloured fonts before they count.
const INVISIBLE_CHARS: usize = 60;
/// Visible letters below which an HTML part with an image counts as image-only.
const IMAGE_ONLY_CHARS: usize = 120;
/// Nesting of multiparts and attached messages that mail programs do not produce.
const DEEP_NESTING: usize = 5;

macro_rules! rules {
    ($($id:ident = $name:literal, $score:expr, $about:literal;)*) => {
        $(pub const $id: Rule = Rule { name: $name, score: $score, about: $about };)*
        /// Every rule, for documentation and the configuration reference.
        pub const ALL: &[Rule] = &[$($id),*];
    };
}

rules! {
    SPOOF_DISPLAY_NAME = "SPOOF_DISPLAY_NAME", 4.0, "The From display name shows an address or domain of another domain than the From address (\"PayPal service@paypal.com\" <x@elsewhere.test>).";
    REPLYTO_DIFFERS = "REPLYTO_DIFFERS", 1.0, "Reply-To names another registrable domain than From, outside a mailing list.";
    FREEMAIL_REPLYTO = "FREEMAIL_REPLYTO", 2.0, "Replies go to a free mailbox provider while From is not one: the advance-fee pattern.";
    FREEMAIL_ORG_NAME = "FREEMAIL_ORG_NAME", 2.0, "A free mailbox writes as a company or a department (\"Billing Team\" <x@freemail>).";
    SUBJ_ALL_CAPS = "SUBJ_ALL_CAPS", 1.5, "The Subject is written in capitals only (at least 10 letters).";
    MISSING_SUBJECT = "MISSING_SUBJECT", 1.0, "No Subject header, or an empty one.";
    MISSING_MID = "MISSING_MID", 1.0, "No Message-ID header (RFC 5322 §3.6.4 says SHOULD; every mail program writes one).";
    MISSING_DATE = "MISSING_DATE", 1.0, "No Date header (required by RFC 5322 §3.6).";
    MIME_HTML_ONLY = "MIME_HTML_ONLY", 0.7, "HTML body without a text/plain alternative.";
    HTML_HIDDEN_TEXT = "HTML_HIDDEN_TEXT", 2.0, "HTML hides paragraphs of text (display:none, visibility:hidden, opacity:0, zero height).";
    HTML_INVISIBLE_TEXT = "HTML_INVISIBLE_TEXT", 2.0, "HTML writes text in a font of 2px or less, or in the background's colour.";
    HTML_IMAGE_ONLY = "HTML_IMAGE_ONLY", 1.5, "HTML body that is an image with almost no text: nothing for a filter to read.";
    LINK_TEXT_MISMATCH = "LINK_TEXT_MISMATCH", 3.0, "A link's text shows one domain and its target is another domain or an IP address.";
    URI_NUMERIC_HOST = "URI_NUMERIC_HOST", 1.5, "A URL whose host is an IP address.";
    URI_OBFUSCATED = "URI_OBFUSCATED", 2.5, "A URL with a user@ part before the host or a percent-encoded host.";
    URI_DOMAIN_IN_SUBDOMAIN = "URI_DOMAIN_IN_SUBDOMAIN", 2.0, "A URL host that starts like another domain (bank.com.login.example): the name a reader sees first is not the one it goes to.";
    URI_PUNYCODE = "URI_PUNYCODE", 1.0, "A URL to an internationalised (punycode) domain, the form look-alike domains take.";
    HTML_PASSWORD_FORM = "HTML_PASSWORD_FORM", 3.0, "HTML in the message asks for a password: mail never needs a login form.";
    ATTACH_HTML = "ATTACH_HTML", 1.5, "An HTML page sent as an attachment, the usual wrapper of a phishing form.";
    PHISH_URGENCY = "PHISH_URGENCY", 2.5, "Two or more phrases of account-threat urgency (\"will be suspended\", \"verify your account\", \"within 24 hours\").";
    DELIVERY_LURE = "DELIVERY_LURE", 2.0, "Two or more phrases of the parcel lure (customs fee, redelivery, returned to the sender).";
    DOCUMENT_LURE = "DOCUMENT_LURE", 2.0, "Two or more phrases of the shared-document lure (shared a file with you, sign in to view, link expires).";
    ADVANCE_FEE = "ADVANCE_FEE", 3.0, "Two or more phrases of advance-fee fraud (next of kin, beneficiary, processing fee, ATM card).";
    DRUGS = "DRUGS", 2.5, "Two or more names or phrases of pills sold by mail (erectile drugs, no prescription, weight loss).";
    EXTORTION = "EXTORTION", 3.5, "Three or more phrases of webcam or password extortion (recorded you, your contacts, bitcoin).";
    GET_RICH = "GET_RICH", 2.0, "Two or more phrases of get-rich-quick offers (passive income, daily returns, no experience).";
    PROMO_HYPE = "PROMO_HYPE", 1.5, "Three or more phrases of hard-sell advertising (act now, today only, claim your, free trial).";
    LOTS_OF_MONEY = "LOTS_OF_MONEY", 1.5, "A sum of 100,000 or more in a currency.";
    BITCOIN_ADDRESS = "BITCOIN_ADDRESS", 2.0, "A Bitcoin address in the text: how extortion and giveaway scams get paid.";
    EXECUTABLE_ATTACHMENT = "EXECUTABLE_ATTACHMENT", 5.0, "An attachment a Windows or Java runtime executes when opened (.exe, .scr, .js, .vbs, .jar ...).";
    DOUBLE_EXT_EXECUTABLE = "DOUBLE_EXT_EXECUTABLE", 3.0, "An executable named to look like a document (invoice.pdf.exe).";
    MIME_DEEP_NESTING = "MIME_DEEP_NESTING", 1.0, "MIME parts nested deeper than mail programs nest them.";
    DMARC_POLICY_REJECT = "DMARC_POLICY_REJECT", 2.0, "DMARC failed and the From domain asks for rejection.";
    DMARC_POLICY_QUARANTINE = "DMARC_POLICY_QUARANTINE", 1.5, "DMARC failed and the From domain asks for quarantine.";
    DMARC_POLICY_NONE = "DMARC_POLICY_NONE", 0.5, "DMARC failed under a monitoring (p=none) policy.";
    SPF_FAIL = "SPF_FAIL", 1.5, "SPF says the client may not send for the MAIL FROM domain.";
    SPF_SOFTFAIL = "SPF_SOFTFAIL", 0.7, "SPF says the client is probably not allowed to send for the MAIL FROM domain.";
    DKIM_INVALID = "DKIM_INVALID", 1.0, "A DKIM signature failed and none verified.";
    DKIM_NONE = "DKIM_NONE", 0.3, "The message carries no DKIM signature.";
    DKIM_DMARC_PASS = "DKIM_DMARC_PASS", -0.5, "A DKIM signature verified and DMARC passed: the From domain vouches for the message.";
    RDNS_NONE = "RDNS_NONE", 1.0, "The client's address has no reverse DNS name.";
    RDNS_MISMATCH = "RDNS_MISMATCH", 0.5, "The client's reverse DNS name does not resolve back to its address.";
}

/// Extensions a mail program hands to something that executes them.
const EXECUTABLE_EXTENSIONS: &[&str] = &[
    "exe", "scr", "com", "pif", "bat", "cmd", "vbs", "vbe", "js", "jse", "wsf", "wsh", "hta", "msi", "msp", "cpl", "jar", "ps1", "lnk",
    "reg", "dll", "appx", "msix",
];

/// MIME types of executables, for attachments without a telling name.
const EXECUTABLE_TYPES: &[&str] = &["application/x-msdownload", "application/x-dosexec", "application/x-msdos-program", "application/x-ms-installer", "application/java-archive"];

/// Document extensions an executable pretends to be.
const DOCUMENT_EXTENSIONS: &[&str] = &["pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "rtf", "jpg", "jpeg", "png", "gif", "zip", "htm", "html", "odt"];

/// Free mailbox providers (for FREEMAIL_REPLYTO): the largest ones.
const FREEMAIL: &[&str] = &[
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "ymail.com", "hotmail.com", "outlook.com", "live.com", "msn.com", "aol.com",
    "icloud.com", "me.com", "mail.com", "gmx.com", "gmx.net", "gmx.de", "web.de", "yandex.com", "yandex.ru", "mail.ru", "proton.me",
    "protonmail.com", "zoho.com", "qq.com", "163.com", "126.com", "tutanota.com",
];

/// What the rules read: the message, its URLs and what earlier stages found.
pub struct Input<'a> {
    pub view: &'a MessageView,
    pub urls: &'a Urls,
    pub trail: &'a Trail,
}

/// A rule that fired, with the domain it was about when there is one.
struct Hit {
    rule: Rule,
    domain: Option<String>,
}

type Check = fn(&Input<'_>) -> Vec<Hit>;

/// The checks in the order their entries appear.
const CHECKS: &[Check] =
    &[display_name, freemail_name, reply_to, subject, headers, html, forms, links, url_hosts, url_names, attachments, structure, body::check, dmarc, spf, dkim, iprev];

/// Words of a display name that speak for an organisation rather than a person.
const ORG_WORDS: &[&str] = &[
    "support", "team", "service", "services", "billing", "security", "department", "dept", "account", "accounts", "official", "admin",
    "administrator", "helpdesk", "customer", "bank", "ceo", "cfo", "payroll", "hr", "notification", "alert", "verification",
];

/// TLD labels that, seen inside a host name, start a look-alike (`bank.com.evil.test`).
const TLD_LABELS: &[&str] = &["com", "net", "org", "gov", "edu", "info", "co"];

/// Runs every rule; one entry per rule that fired, GTUBE first when present.
pub fn evaluate(input: &Input<'_>) -> Vec<Entry> {
    let mut out = Vec::new();
    if input.view.gtube {
        out.push(Entry::new(Stage::Rules, Outcome::Neutral, Reason::Gtube).detail("GTUBE").score(GTUBE_SCORE));
    }
    for check in CHECKS {
        for hit in check(input) {
            let result = if hit.rule.score < 0.0 { Outcome::Pass } else { Outcome::Neutral };
            let mut e = Entry::new(Stage::Rules, result, Reason::RuleMatched).detail(hit.rule.name).score(hit.rule.score);
            if let Some(d) = hit.domain {
                e = e.domain(d);
            }
            out.push(e);
        }
    }
    out
}

fn hit(rule: Rule) -> Vec<Hit> {
    vec![Hit { rule, domain: None }]
}

fn hit_if(fired: bool, rule: Rule) -> Vec<Hit> {
    if fired { hit(rule) } else { Vec::new() }
}

fn from_domain(view: &MessageView) -> Option<String> {
    view.from.as_ref()?.domain().and_then(|d| urls::registrable(&d).or(Some(d)))
}

/// SPOOF_DISPLAY_NAME: a domain written in the display name, not the sender's.
fn display_name(input: &Input<'_>) -> Vec<Hit> {
    let Some(from) = &input.view.from else { return Vec::new() };
    let (Some(name), Some(actual)) = (&from.name, from_domain(input.view)) else { return Vec::new() };
    for word in name.split(|c: char| c.is_whitespace() || "\"'<>()[],;:".contains(c)) {
        let host = word.rsplit_once('@').map_or(word, |(_, d)| d).trim_end_matches('.');
        // "Node.js Weekly" names no domain: only real public suffixes count.
        if !looks_like_domain(host) || !urls::known_suffix(host) {
            continue;
        }
        if let Some(shown) = urls::registrable(host)
            && shown != actual
        {
            return vec![Hit { rule: SPOOF_DISPLAY_NAME, domain: Some(shown) }];
        }
    }
    Vec::new()
}

/// Dot-separated labels of letters, digits and hyphens, ending in a label of letters (a TLD).
fn looks_like_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(char::is_alphabetic))
}

/// FREEMAIL_ORG_NAME: a free mailbox writing in a company's or a department's name.
fn freemail_name(input: &Input<'_>) -> Vec<Hit> {
    let Some(from) = &input.view.from else { return Vec::new() };
    let (Some(name), Some(domain)) = (&from.name, from_domain(input.view)) else { return Vec::new() };
    if !FREEMAIL.contains(&domain.as_str()) {
        return Vec::new();
    }
    let org = name.split(|c: char| !c.is_alphanumeric()).any(|w| ORG_WORDS.contains(&w.to_lowercase().as_str()));
    if org { vec![Hit { rule: FREEMAIL_ORG_NAME, domain: Some(domain) }] } else { Vec::new() }
}

/// REPLYTO_DIFFERS and FREEMAIL_REPLYTO.
fn reply_to(input: &Input<'_>) -> Vec<Hit> {
    let view = input.view;
    let Some(from) = from_domain(view) else { return Vec::new() };
    let Some(reply) = view.reply_to.iter().filter_map(|m| m.domain()).filter_map(|d| urls::registrable(&d)).find(|d| *d != from) else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    if view.list_id.is_none() {
        hits.push(Hit { rule: REPLYTO_DIFFERS, domain: Some(reply.clone()) });
    }
    if FREEMAIL.contains(&reply.as_str()) && !FREEMAIL.contains(&from.as_str()) {
        hits.push(Hit { rule: FREEMAIL_REPLYTO, domain: Some(reply) });
    }
    hits
}

/// SUBJ_ALL_CAPS and MISSING_SUBJECT.
fn subject(input: &Input<'_>) -> Vec<Hit> {
    let Some(subject) = input.view.subject.as_deref().filter(|s| !s.trim().is_empty()) else { return hit(MISSING_SUBJECT) };
    let letters = subject.chars().filter(|c| c.is_alphabetic());
    let (upper, total) = letters.fold((0, 0), |(u, t), c| (u + usize::from(c.is_uppercase()), t + 1));
    hit_if(total >= 10 && upper == total, SUBJ_ALL_CAPS)
}

/// MISSING_MID and MISSING_DATE.
fn headers(input: &Input<'_>) -> Vec<Hit> {
    let view = input.view;
    if view.unparsable {
        return Vec::new();
    }
    let mut hits = hit_if(view.message_id.is_none(), MISSING_MID);
    hits.extend(hit_if(!view.has_date, MISSING_DATE));
    hits
}

/// MIME_HTML_ONLY, HTML_HIDDEN_TEXT, HTML_INVISIBLE_TEXT, HTML_IMAGE_ONLY over body parts.
fn html(input: &Input<'_>) -> Vec<Hit> {
    let bodies: Vec<_> = input.view.bodies().collect();
    let docs: Vec<_> = bodies.iter().filter_map(|t| t.html.as_ref()).collect();
    if docs.is_empty() {
        return Vec::new();
    }
    let mut hits = hit_if(docs.len() == bodies.len(), MIME_HTML_ONLY);
    hits.extend(hit_if(docs.iter().map(|d| d.hidden_chars).sum::<usize>() >= HIDDEN_CHARS, HTML_HIDDEN_TEXT));
    hits.extend(hit_if(docs.iter().map(|d| d.invisible_chars).sum::<usize>() >= INVISIBLE_CHARS, HTML_INVISIBLE_TEXT));
    let plain_text: usize = bodies.iter().filter(|t| t.html.is_none()).map(|t| t.text.trim().len()).sum();
    let image_only = docs.iter().any(|d| d.images > 0) && docs.iter().map(|d| d.visible_chars).sum::<usize>() < IMAGE_ONLY_CHARS && plain_text < IMAGE_ONLY_CHARS;
    hits.extend(hit_if(image_only, HTML_IMAGE_ONLY));
    hits
}

/// HTML_PASSWORD_FORM and ATTACH_HTML, over body parts and attached pages alike.
fn forms(input: &Input<'_>) -> Vec<Hit> {
    let view = input.view;
    let password = view.texts.iter().filter_map(|t| t.html.as_ref()).any(|d| d.password_fields > 0);
    let attached_page = view.attachments.iter().any(|a| {
        let name = a.name.as_deref().unwrap_or("").trim().to_ascii_lowercase();
        a.content_type == "text/html" || [".htm", ".html", ".shtml", ".xhtml"].iter().any(|e| name.ends_with(e))
    });
    let mut hits = hit_if(password, HTML_PASSWORD_FORM);
    hits.extend(hit_if(attached_page, ATTACH_HTML));
    hits
}

/// LINK_TEXT_MISMATCH: the first anchor whose text shows another domain than it goes to.
fn links(input: &Input<'_>) -> Vec<Hit> {
    for doc in input.view.texts.iter().filter_map(|t| t.html.as_ref()) {
        for a in &doc.anchors {
            let Some(target) = urls::parse(&a.href) else { continue };
            let Some(shown) = shown_domain(&a.text) else { continue };
            let differs = match (&target.host, &target.domain) {
                (UrlHost::Ip(_), _) => true,
                (UrlHost::Domain(_), Some(d)) => *d != shown,
                (UrlHost::Domain(_), None) => false,
            };
            if differs {
                return vec![Hit { rule: LINK_TEXT_MISMATCH, domain: Some(shown) }];
            }
        }
    }
    Vec::new()
}

/// The registrable domain a link text shows, when the text is (or starts with) a URL or a
/// host name: "https://bank.example/login", "www.bank.example", "bank.com" (a bare name only
/// under a real public suffix, as the URL finder takes them).
fn shown_domain(text: &str) -> Option<String> {
    let word = text.split_whitespace().next()?.trim_end_matches(['.', ',', ')', '>', ':']);
    let word = word.trim_start_matches(['(', '<']);
    let host = urls::parse(word).and_then(|u| match u.host {
        UrlHost::Domain(d) => Some(d),
        UrlHost::Ip(_) => None,
    })?;
    // "click.here" and "Node.js" are no domains; ask that the text looked like a host by itself.
    let bare = word.split("//").last().unwrap_or(word).split('/').next().unwrap_or("");
    let bare = bare.rsplit_once('@').map_or(bare, |(_, h)| h);
    let www = bare.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("www."));
    let shows_host = word.contains("://") || (looks_like_domain(bare) && (www || urls::known_suffix(bare)));
    if !shows_host {
        return None;
    }
    urls::registrable(&host)
}

/// URI_NUMERIC_HOST and URI_OBFUSCATED.
fn url_hosts(input: &Input<'_>) -> Vec<Hit> {
    let urls = &input.urls.urls;
    let mut hits = Vec::new();
    if let Some(ip) = input.urls.ips.first() {
        hits.push(Hit { rule: URI_NUMERIC_HOST, domain: Some(ip.to_string()) });
    }
    if let Some(u) = urls.iter().find(|u| u.obfuscated) {
        hits.push(Hit { rule: URI_OBFUSCATED, domain: u.domain.clone() });
    }
    hits
}

/// URI_DOMAIN_IN_SUBDOMAIN and URI_PUNYCODE: the first URL of each kind.
fn url_names(input: &Input<'_>) -> Vec<Hit> {
    let mut nested = None;
    let mut puny = None;
    for u in &input.urls.urls {
        let (UrlHost::Domain(host), Some(domain)) = (&u.host, &u.domain) else { continue };
        let sub = host.strip_suffix(domain.as_str()).unwrap_or("");
        if nested.is_none() && sub.split('.').any(|l| TLD_LABELS.contains(&l)) {
            nested = Some(domain.clone());
        }
        if puny.is_none() && domain.split('.').any(|l| l.starts_with("xn--")) {
            puny = Some(domain.clone());
        }
    }
    let mut hits = Vec::new();
    if let Some(d) = nested {
        hits.push(Hit { rule: URI_DOMAIN_IN_SUBDOMAIN, domain: Some(d) });
    }
    if let Some(d) = puny {
        hits.push(Hit { rule: URI_PUNYCODE, domain: Some(d) });
    }
    hits
}

/// EXECUTABLE_ATTACHMENT and DOUBLE_EXT_EXECUTABLE.
fn attachments(input: &Input<'_>) -> Vec<Hit> {
    let mut executable = false;
    let mut disguised = false;
    for a in &input.view.attachments {
        let name = a.name.as_deref().unwrap_or("").trim().trim_end_matches('.').to_ascii_lowercase();
        let mut parts = name.rsplit('.');
        let ext = parts.next().filter(|_| name.contains('.'));
        let exe = ext.is_some_and(|e| EXECUTABLE_EXTENSIONS.contains(&e)) || EXECUTABLE_TYPES.contains(&a.content_type.as_str());
        executable |= exe;
        disguised |= exe && ext.is_some() && parts.next().is_some_and(|e| DOCUMENT_EXTENSIONS.contains(&e.trim()));
    }
    let mut hits = hit_if(executable, EXECUTABLE_ATTACHMENT);
    hits.extend(hit_if(disguised, DOUBLE_EXT_EXECUTABLE));
    hits
}

/// MIME_DEEP_NESTING.
fn structure(input: &Input<'_>) -> Vec<Hit> {
    hit_if(input.view.structure.depth > DEEP_NESTING, MIME_DEEP_NESTING)
}

/// DMARC_POLICY_*: the domain's own verdict on a failure, and DKIM_DMARC_PASS.
fn dmarc(input: &Input<'_>) -> Vec<Hit> {
    use rampart_pipeline::Disposition;
    let Some(e) = input.trail.find(Stage::Dmarc) else { return Vec::new() };
    let domain = e.domain.clone();
    match e.result {
        Outcome::Fail => {
            let rule = match e.policy {
                Some(Disposition::Reject) => DMARC_POLICY_REJECT,
                Some(Disposition::Quarantine) => DMARC_POLICY_QUARANTINE,
                _ => DMARC_POLICY_NONE,
            };
            vec![Hit { rule, domain }]
        }
        Outcome::Pass if dkim_passed(input.trail) => vec![Hit { rule: DKIM_DMARC_PASS, domain }],
        _ => Vec::new(),
    }
}

fn dkim_passed(trail: &Trail) -> bool {
    trail.entries().iter().any(|e| e.stage == Stage::Dkim && e.result == Outcome::Pass)
}

/// SPF_FAIL and SPF_SOFTFAIL for the MAIL FROM identity.
fn spf(input: &Input<'_>) -> Vec<Hit> {
    let Some(e) = input.trail.find(Stage::Spf) else { return Vec::new() };
    let rule = match e.result {
        Outcome::Fail => SPF_FAIL,
        Outcome::SoftFail => SPF_SOFTFAIL,
        _ => return Vec::new(),
    };
    vec![Hit { rule, domain: e.domain.clone() }]
}

/// DKIM_INVALID and DKIM_NONE (nothing when the DKIM stage did not run).
fn dkim(input: &Input<'_>) -> Vec<Hit> {
    let entries: Vec<&Entry> = input.trail.entries().iter().filter(|e| e.stage == Stage::Dkim).collect();
    if entries.is_empty() || dkim_passed(input.trail) {
        return Vec::new();
    }
    if entries.iter().any(|e| e.reason == Reason::DkimUnsigned) {
        return hit(DKIM_NONE);
    }
    let broken = entries.iter().any(|e| e.result == Outcome::Fail || e.result == Outcome::PermError);
    hit_if(broken, DKIM_INVALID)
}

/// RDNS_NONE and RDNS_MISMATCH.
fn iprev(input: &Input<'_>) -> Vec<Hit> {
    match input.trail.find(Stage::Iprev).map(|e| e.reason) {
        Some(Reason::IprevNoPtr) => hit(RDNS_NONE),
        Some(Reason::IprevMismatch) => hit(RDNS_MISMATCH),
        _ => Vec::new(),
    }
}

mod body;

#[cfg(test)]
mod tests;
