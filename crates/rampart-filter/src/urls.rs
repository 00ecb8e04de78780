//! Every URL a message shows or links to, and the registrable domains a domain blocklist is
//! asked about.
//!
//! URLs come from text/plain (found by linkify, `www.` links without a scheme too) and from
//! text/html (`href`, `src`, `action`, `background`, character references already decoded by
//! the tokenizer, and URLs written in the visible text). Each is parsed as a browser parses it
//! (the `url` crate, WHATWG): percent-encoded hosts are decoded, IDNs become punycode, the
//! `user@` part of `http://bank.test@evil.test/` is dropped, and numeric IPv4 forms
//! (`http://3232235777/`) become dotted quads. The registrable domain (the name one can buy,
//! `shop.example.co.uk` → `example.co.uk`) comes from the public suffix list (psl2).

use std::collections::HashSet;
use std::net::IpAddr;

use linkify::{LinkFinder, LinkKind};
use url::{Host, Url};

use crate::message::{MessageView, TextKind};

/// URLs kept per message. The caller caps blocklist lookups lower (50); this only bounds work.
pub const MAX_URLS: usize = 500;
/// Longest URL candidate parsed: longer ones are cut (the host is at the front).
const MAX_URL_LEN: usize = 4096;

/// A URL found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundUrl {
    /// The URL as the `url` crate serialises it (host lowercased, punycode, no userinfo).
    pub url: String,
    /// The host: a domain name in ASCII, or an IP address.
    pub host: UrlHost,
    /// The registrable domain, for domain names under a known public suffix.
    pub domain: Option<String>,
    /// Written to mislead: a `user@` part before the host, or a percent-encoded host.
    pub obfuscated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlHost {
    Domain(String),
    Ip(IpAddr),
}

/// The URLs and domains of one message, deduplicated, in order of appearance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Urls {
    pub urls: Vec<FoundUrl>,
    /// Registrable domains of the URLs, then of From and Reply-To, each once. The envelope
    /// sender's is the caller's to add.
    pub domains: Vec<String>,
    /// IP addresses written as URL hosts, each once.
    pub ips: Vec<IpAddr>,
}

impl Urls {
    /// Finds every URL in the message's text parts, then the From and Reply-To domains.
    pub fn extract(view: &MessageView) -> Urls {
        let mut out = Collector::default();
        let finder = finder();
        for part in &view.texts {
            match (&part.kind, &part.html) {
                (TextKind::Html, Some(doc)) => {
                    for target in &doc.targets {
                        out.add(target);
                    }
                    out.find_in(&finder, &doc.text);
                }
                _ => out.find_in(&finder, &part.text),
            }
        }
        let urls = out.urls;
        let mut seen: HashSet<String> = HashSet::new();
        let mut domains = Vec::new();
        let mut ips = Vec::new();
        for u in &urls {
            match &u.host {
                UrlHost::Ip(ip) if !ips.contains(ip) => ips.push(*ip),
                _ => {}
            }
            if let Some(d) = &u.domain
                && seen.insert(d.clone())
            {
                domains.push(d.clone());
            }
        }
        let senders = view.from.iter().chain(&view.reply_to);
        for d in senders.filter_map(|m| m.domain()).filter_map(|d| registrable(&d)) {
            if seen.insert(d.clone()) {
                domains.push(d);
            }
        }
        Urls { urls, domains, ips }
    }
}

fn finder() -> LinkFinder {
    let mut f = LinkFinder::new();
    f.kinds(&[LinkKind::Url]);
    // `www.example.com/offer` without a scheme; mail clients make these clickable.
    f.url_must_have_scheme(false);
    f
}

#[derive(Default)]
struct Collector {
    urls: Vec<FoundUrl>,
    seen: HashSet<String>,
}

impl Collector {
    fn find_in(&mut self, finder: &LinkFinder, text: &str) {
        for link in finder.links(text) {
            if self.urls.len() >= MAX_URLS {
                return;
            }
            let s = link.as_str();
            // Without a scheme, "file.txt", "node.js" and "Mr.Smith" look like links too:
            // take those that start with `www.` or end in a real public suffix, as mail
            // programs that make them clickable do.
            if has_scheme(s) || s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("www.")) || known_suffix(s) {
                self.add(s);
            }
        }
    }

    fn add(&mut self, candidate: &str) {
        if self.urls.len() >= MAX_URLS {
            return;
        }
        if let Some(found) = parse(candidate)
            && self.seen.insert(found.url.clone())
        {
            self.urls.push(found);
        }
    }
}

/// Parses one candidate (an attribute value or a link found in text) as a browser would.
/// Only web URLs count: `mailto:`, `cid:`, `tel:` and relative paths give `None`.
pub fn parse(candidate: &str) -> Option<FoundUrl> {
    let c = crate::message::truncate(candidate.trim(), MAX_URL_LEN);
    let with_scheme;
    let c = if c.starts_with("//") {
        with_scheme = format!("http:{c}");
        &with_scheme
    } else if !has_scheme(c) && looks_like_host(c) {
        with_scheme = format!("http://{c}");
        &with_scheme
    } else {
        c
    };
    let url = Url::parse(c).ok()?;
    if !matches!(url.scheme(), "http" | "https" | "ftp") {
        return None;
    }
    let host = match url.host()? {
        Host::Domain(d) => UrlHost::Domain(d.trim_end_matches('.').to_string()),
        Host::Ipv4(ip) => UrlHost::Ip(IpAddr::V4(ip)),
        Host::Ipv6(ip) => UrlHost::Ip(IpAddr::V6(ip)),
    };
    let domain = match &host {
        UrlHost::Domain(d) => registrable(d),
        UrlHost::Ip(_) => None,
    };
    let obfuscated = !url.username().is_empty() || url.password().is_some() || authority(c).contains('%');
    Some(FoundUrl { url: url.to_string(), host, domain, obfuscated })
}

/// The authority part of a URL as written (between `//` and the next `/`, `?` or `#`).
fn authority(url: &str) -> &str {
    let rest = url.split_once("//").map_or("", |(_, r)| r);
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

fn has_scheme(s: &str) -> bool {
    match s.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// A scheme-less candidate worth reading as `http://`: linkify found it as a link in text
/// (`www.example.com`, `example.com/path`), or an href without a scheme that starts with `www.`.
fn looks_like_host(s: &str) -> bool {
    let host = s.split(['/', '?', '#']).next().unwrap_or("");
    host.contains('.') && !host.starts_with('.') && !s.starts_with('/') && !host.contains(char::is_whitespace)
}

/// Whether a scheme-less link's host ends in a suffix of the public suffix list.
pub(crate) fn known_suffix(link: &str) -> bool {
    let host = link.split(['/', '?', '#', ':']).next().unwrap_or("").trim_end_matches('.').to_ascii_lowercase();
    host.is_ascii() && psl2::lookup(&host).is_some_and(|d| d.is_known() && d.registrable_domain().is_some())
}

/// The registrable domain of an ASCII host name (lowercase, punycode), by the public suffix
/// list; `None` for a public suffix itself (`co.uk`) or a name that is not a domain.
pub fn registrable(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || !host.contains('.') {
        return None;
    }
    // Hosts from `Url` are already punycode; From domains may be written in Unicode.
    let ascii = if host.is_ascii() { host } else { Url::parse(&format!("http://{host}/")).ok()?.host_str()?.to_string() };
    psl2::lookup(&ascii)?.registrable_domain().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host, registrable domain, obfuscated.
    type Want<'a> = Option<(&'a str, Option<&'a str>, bool)>;

    #[test]
    fn parse_sees_through_disguises() {
        let cases: &[(&str, Want)] = &[
            ("http://www.Shop.Example.co.uk/x", Some(("www.shop.example.co.uk", Some("example.co.uk"), false))),
            ("https://paypal.com@evil.test/login", Some(("evil.test", Some("evil.test"), true))),
            ("http://user:pw@evil.test/", Some(("evil.test", Some("evil.test"), true))),
            ("http://%65%76%69%6c.com/", Some(("evil.com", Some("evil.com"), true))),
            ("http://bücher.example/", Some(("xn--bcher-kva.example", Some("xn--bcher-kva.example"), false))),
            ("http://xn--pypal-4ve.com/", Some(("xn--pypal-4ve.com", Some("xn--pypal-4ve.com"), false))),
            ("www.cheap-meds.example/buy", Some(("www.cheap-meds.example", Some("cheap-meds.example"), false))),
            ("//cdn.example.net/a.js", Some(("cdn.example.net", Some("example.net"), false))),
            ("HTTP://EXAMPLE.COM.", Some(("example.com", Some("example.com"), false))),
            ("http:\\\\evil.test\\path", Some(("evil.test", Some("evil.test"), false))),
            ("https://foo.github.io/", Some(("foo.github.io", Some("foo.github.io"), false))),
            ("http://co.uk/", Some(("co.uk", None, false))),
            ("mailto:a@b.test", None),
            ("cid:part1@x", None),
            ("/relative/path", None),
            ("javascript:alert(1)", None),
            ("http://", None),
        ];
        for (input, want) in cases {
            let got = parse(input).map(|f| {
                let host = match f.host {
                    UrlHost::Domain(d) => d,
                    UrlHost::Ip(ip) => ip.to_string(),
                };
                (host, f.domain, f.obfuscated)
            });
            let want = want.map(|(h, d, o)| (h.to_string(), d.map(str::to_string), o));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn ip_hosts() {
        for (input, ip) in [
            ("http://192.0.2.1/", "192.0.2.1"),
            ("http://3221225985/x", "192.0.2.1"),
            ("http://0xC0.0.2.1/", "192.0.2.1"),
            ("http://[2001:db8::1]/", "2001:db8::1"),
        ] {
            let f = parse(input).unwrap();
            assert_eq!(f.host, UrlHost::Ip(ip.parse().unwrap()), "{input}");
            assert_eq!(f.domain, None);
        }
    }

    #[test]
    fn extract_in_order_deduplicated() {
        let raw = "From: Shop <news@mail.shop.example.com>\r\n\
Reply-To: help@support.example.org\r\n\
Content-Type: multipart/alternative; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\n\
Visit www.first.example.net/a or http://192.0.2.7/x and https://shop.example.com/y.\r\n\
Again: http://www.first.example.net/a\r\n\
--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n\
PGEgaHJlZj0iaHR0cDovL3NlY29uZC5leGFtcGxlLmNvLnVrLz9hPTEmYW1wO2I9MiI+Q2xpY2s8L2E+\r\n\
PGltZyBzcmM9Imh0dHA6Ly9waXhlbC5leGFtcGxlLmNvbS90LmdpZiI+IHRleHQ6IGh0dHA6Ly90aGly\r\n\
ZC5leGFtcGxlLw==\r\n\
--b--\r\n";
        let u = Urls::extract(&MessageView::parse(raw.as_bytes()));
        let urls: Vec<&str> = u.urls.iter().map(|f| f.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://www.first.example.net/a",
                "http://192.0.2.7/x",
                "https://shop.example.com/y",
                "http://second.example.co.uk/?a=1&b=2",
                "http://pixel.example.com/t.gif",
                "http://third.example/",
            ]
        );
        assert_eq!(u.domains, ["example.net", "example.com", "example.co.uk", "third.example", "example.org"]);
        assert_eq!(u.ips, ["192.0.2.7".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn links_without_scheme() {
        let view = MessageView::parse(
            b"Subject: x\r\n\r\nSee file.txt, node.js and report.pdf, ask Mr.Smith; visit example.com today, \
              www.shop.example/offer, or https://site.example/a. Mail a@b-shop.com.\r\n",
        );
        let urls: Vec<String> = Urls::extract(&view).urls.into_iter().map(|u| u.url).collect();
        assert_eq!(urls, ["http://example.com/", "http://www.shop.example/offer", "https://site.example/a"]);
    }

    #[test]
    fn registrable_domains() {
        assert_eq!(registrable("a.b.example.com").as_deref(), Some("example.com"));
        assert_eq!(registrable("MAIL.Example.CO.UK.").as_deref(), Some("example.co.uk"));
        assert_eq!(registrable("münchen.example").as_deref(), Some("xn--mnchen-3ya.example"));
        assert_eq!(registrable("com"), None);
        assert_eq!(registrable(""), None);
    }
}
