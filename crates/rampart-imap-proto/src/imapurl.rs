//! IMAP URLs (RFC 5092) naming one message or one section of it, as CATENATE's `URL` parts
//! carry them (RFC 4469 §3): `imap://user@host/INBOX;UIDVALIDITY=5/;UID=20/;SECTION=1.MIME`,
//! or the same from the first `/` on, relative to the session's own server and user.
//!
//! Only what CATENATE needs: a message part (`imessagepart`). Mailbox lists, searches and
//! URLAUTH (`;EXPIRE=`, `;URLAUTH=`) are refused, so a URL names exactly one message of the
//! session's own user or nothing. Pure: the session decides whether the host and user are
//! its own and whether the message exists.

use percent_encoding::percent_decode_str;

use crate::parser::{Section, parse_section};

/// A URL is at most this long: RFC 4469 sets no limit, and a longer one names nothing real
/// (a mailbox name, two numbers, a section).
pub const MAX_URL: usize = 4096;

/// One message, or a section or range of it, on an IMAP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    /// `imap://` and the authority were given: the host (lowercased) and user, if any.
    pub server: Option<Server>,
    /// The mailbox name, percent-decoded (UTF-8 per RFC 5092 §3.2).
    pub mailbox: String,
    pub uidvalidity: Option<u32>,
    pub uid: u32,
    /// `;SECTION=`, None for the whole message.
    pub section: Option<Section>,
    /// `;PARTIAL=offset[.length]` (RFC 5092 §5): a range of the message or section.
    pub partial: Option<(u64, Option<u64>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("URL too long")]
    TooLong,
    #[error("not an IMAP URL of one message: {0}")]
    Syntax(&'static str),
}

impl ImapUrl {
    /// Parses an absolute `imap://` URL or an absolute-path one (starting with `/`).
    pub fn parse(url: &str) -> Result<ImapUrl, UrlError> {
        if url.len() > MAX_URL {
            return Err(UrlError::TooLong);
        }
        let (server, path) = match strip_prefix_ignore_case(url, "imap://") {
            Some(rest) => {
                let slash = rest.find('/').ok_or(UrlError::Syntax("no path"))?;
                (Some(server(&rest[..slash])?), &rest[slash..])
            }
            None => (None, url),
        };
        let path = path.strip_prefix('/').ok_or(UrlError::Syntax("the path must start with /"))?;
        let mut segments = path.split('/');
        let (mailbox, uidvalidity) = mailbox_ref(segments.next().unwrap_or_default())?;
        let uid = param(segments.next(), "UID")?.ok_or(UrlError::Syntax("no ;UID="))?;
        let uid = nz_number(uid)?;
        let mut url = ImapUrl { server, mailbox, uidvalidity, uid, section: None, partial: None };
        let mut next = segments.next();
        if let Some(s) = param(next, "SECTION")? {
            let s = decode(s)?;
            url.section = Some(parse_section(s.as_bytes()).map_err(|_| UrlError::Syntax("bad section"))?);
            next = segments.next();
        }
        if let Some(p) = param(next, "PARTIAL")? {
            url.partial = Some(partial(p)?);
            next = segments.next();
        }
        if next.is_some() {
            // `;URLAUTH=` and anything after the message part.
            return Err(UrlError::Syntax("unexpected path after the message part"));
        }
        Ok(url)
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// iserver = [iuserinfo "@"] host [":" port]; iuserinfo = enc-user [";AUTH=" ...]
fn server(authority: &str) -> Result<Server, UrlError> {
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let host = match hostport.strip_prefix('[') {
        // An IPv6 literal: its colons are not the port's.
        Some(v6) => v6.split_once(']').map(|(h, _)| h).ok_or(UrlError::Syntax("bad host"))?,
        None => hostport.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(UrlError::Syntax("no host"));
    }
    let user = match userinfo {
        None => None,
        Some(u) => {
            let name = u.split(';').next().unwrap_or_default();
            if name.is_empty() { None } else { Some(decode(name)?) }
        }
    };
    Ok(Server { host: host.to_ascii_lowercase(), user })
}

/// enc-mailbox [";UIDVALIDITY=" nz-number]
fn mailbox_ref(segment: &str) -> Result<(String, Option<u32>), UrlError> {
    let (name, uidvalidity) = match segment.find(';') {
        Some(at) => {
            let value = strip_prefix_ignore_case(&segment[at..], ";UIDVALIDITY=").ok_or(UrlError::Syntax("unknown mailbox parameter"))?;
            (&segment[..at], Some(nz_number(value)?))
        }
        None => (segment, None),
    };
    if name.is_empty() {
        return Err(UrlError::Syntax("no mailbox"));
    }
    let name = decode(name)?;
    // RFC 3501 §5.1: INBOX is case-insensitive.
    Ok((if name.eq_ignore_ascii_case("INBOX") { "INBOX".into() } else { name }, uidvalidity))
}

/// The value of a path segment `;NAME=value`, or None when the segment is absent or another
/// parameter.
fn param<'a>(segment: Option<&'a str>, name: &str) -> Result<Option<&'a str>, UrlError> {
    let Some(segment) = segment else { return Ok(None) };
    let Some(rest) = segment.strip_prefix(';') else { return Err(UrlError::Syntax("expected ;PARAMETER=")) };
    let Some((key, value)) = rest.split_once('=') else { return Err(UrlError::Syntax("expected ;PARAMETER=")) };
    Ok(key.eq_ignore_ascii_case(name).then_some(value))
}

fn decode(s: &str) -> Result<String, UrlError> {
    percent_decode_str(s).decode_utf8().map(|c| c.into_owned()).map_err(|_| UrlError::Syntax("not UTF-8"))
}

fn nz_number(s: &str) -> Result<u32, UrlError> {
    let ok = !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
    match s.parse::<u32>() {
        Ok(n) if ok && n > 0 => Ok(n),
        _ => Err(UrlError::Syntax("expected a non-zero number")),
    }
}

/// partial-range = number ["." nz-number]
fn partial(s: &str) -> Result<(u64, Option<u64>), UrlError> {
    let number = |t: &str| -> Result<u64, UrlError> {
        if t.is_empty() || t.len() > 20 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UrlError::Syntax("bad partial range"));
        }
        t.parse().map_err(|_| UrlError::Syntax("bad partial range"))
    };
    match s.split_once('.') {
        None => Ok((number(s)?, None)),
        Some((start, len)) => {
            let len = number(len)?;
            if len == 0 {
                return Err(UrlError::Syntax("bad partial range"));
            }
            Ok((number(start)?, Some(len)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::SectionPart;

    #[test]
    fn relative_and_absolute_urls() {
        // RFC 4469 §6's example.
        let u = ImapUrl::parse("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER").unwrap();
        assert_eq!((u.mailbox.as_str(), u.uidvalidity, u.uid), ("Drafts", Some(385759045), 20));
        assert_eq!(u.section, Some(Section { part: vec![], text: Some(SectionPart::Header) }));
        assert_eq!(u.server, None);
        let u = ImapUrl::parse("imap://joe;AUTH=*@Mail.Example:143/inbox/;UID=3/;SECTION=1.2.MIME/;PARTIAL=10.5").unwrap();
        assert_eq!(u.server, Some(Server { host: "mail.example".into(), user: Some("joe".into()) }));
        assert_eq!((u.mailbox.as_str(), u.uid, u.partial), ("INBOX", 3, Some((10, Some(5)))));
        assert_eq!(u.section.unwrap().part, vec![1, 2]);
        let u = ImapUrl::parse("IMAP://[::1]:143/a%20b%2Fc/;UID=1/;SECTION=HEADER.FIELDS%20(FROM%20TO)").unwrap();
        assert_eq!((u.server.unwrap().host.as_str(), u.mailbox.as_str()), ("::1", "a b/c"));
        assert_eq!(u.section.unwrap().text, Some(SectionPart::HeaderFields(vec!["FROM".into(), "TO".into()])));
    }

    #[test]
    fn urls_naming_no_single_message_are_refused() {
        for bad in [
            "",
            "INBOX/;UID=1",
            "/INBOX",
            "/INBOX/;UID=0",
            "/INBOX/;UID=x",
            "/;UID=1",
            "/INBOX;UIDVALIDITY=0/;UID=1",
            "/INBOX;FOO=1/;UID=1",
            "/INBOX/;UID=1/;SECTION=BOGUS",
            "/INBOX/;UID=1/;PARTIAL=1.0",
            "/INBOX/;UID=1/;URLAUTH=anonymous:internal:abc",
            "/INBOX/;UID=1/;SECTION=1/;PARTIAL=0/extra",
            "imap://host",
            "imap://@/INBOX/;UID=1",
            "/%FF/;UID=1",
            "/INBOX?SUBJECT%20x",
        ] {
            assert!(ImapUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ImapUrl::parse(&format!("/{}/;UID=1", "a".repeat(MAX_URL))), Err(UrlError::TooLong));
    }
}
