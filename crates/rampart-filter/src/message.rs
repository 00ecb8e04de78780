//! One parsed view of a message for every filter, built once from the raw bytes: the headers
//! the rules read, the decoded text/plain and text/html parts (mail-parser undoes
//! quoted-printable, base64 and charsets; HTML is analysed once by [`crate::html`]), the
//! attachments' names and types, and the MIME structure.
//!
//! The work is bounded whatever the input: at most [`MAX_PARTS`] parts are looked at and
//! [`MAX_TEXT_BYTES`] of decoded text kept, so a hostile message costs no more than a large one.

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::html::{self, HtmlDoc};

/// MIME parts looked at. Real mail has a handful; a message with thousands is built to waste
/// a filter's time, and the first hundred show what it is.
pub const MAX_PARTS: usize = 100;
/// Decoded text kept for the filters, over all parts. Spam says what it sells early on; the
/// SMTP listener's size limit is far larger.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;
/// Characters of a header value kept (Subject, display names).
const MAX_HEADER_CHARS: usize = 998;

/// Whether a text part is plain text or HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Plain,
    Html,
}

/// A decoded text part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPart {
    pub kind: TextKind,
    /// A part sent as an attachment (an HTML file, a .txt): read for URLs, not a body.
    pub attached: bool,
    /// The decoded text, cut at [`MAX_TEXT_BYTES`] over all parts.
    pub text: String,
    /// For HTML, what it shows and hides.
    pub html: Option<HtmlDoc>,
}

/// An attachment's name (as the sender gave it) and MIME type (lowercase `type/subtype`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: Option<String>,
    pub content_type: String,
}

/// The shape of the MIME tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Structure {
    /// Parts, counting the message itself and the parts of attached messages.
    pub parts: usize,
    /// Deepest nesting of multiparts and attached messages (0: a single-part message).
    pub depth: usize,
    /// More parts or text than the limits: the rest was not read.
    pub truncated: bool,
}

/// A mailbox from a header: display name and address as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: Option<String>,
}

impl Mailbox {
    /// The domain of the address, lowercased.
    pub fn domain(&self) -> Option<String> {
        let (_, domain) = self.address.as_deref()?.rsplit_once('@')?;
        let domain = domain.trim_end_matches('>').trim().trim_end_matches('.').to_ascii_lowercase();
        (!domain.is_empty()).then_some(domain)
    }
}

/// The message as the filters see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageView {
    pub subject: Option<String>,
    pub from: Option<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub message_id: Option<String>,
    pub has_date: bool,
    /// A mailing list's message (`List-Id`, RFC 2919).
    pub list_id: Option<String>,
    /// `X-Mailer` or `User-Agent`.
    pub mailer: Option<String>,
    /// The top-level MIME type, lowercase (`text/plain` when none is given).
    pub content_type: String,
    pub texts: Vec<TextPart>,
    pub attachments: Vec<Attachment>,
    pub structure: Structure,
    /// The raw bytes could not be parsed as a message at all.
    pub unparsable: bool,
    /// The GTUBE test string is in the raw message or a decoded text part.
    pub gtube: bool,
}

/// The Generic Test for Unsolicited Bulk Email: a message holding it is spam by definition,
/// so administrators can test the path a spam takes.
pub const GTUBE: &[u8] = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

impl MessageView {
    /// Parses `raw` once; never fails (an unparsable message gives an empty view marked so).
    pub fn parse(raw: &[u8]) -> MessageView {
        let gtube = memchr::memmem::find(raw, GTUBE).is_some();
        let Some(msg) = MessageParser::default().parse(raw) else {
            return MessageView { unparsable: true, gtube, content_type: "text/plain".into(), ..MessageView::default() };
        };
        let mut view = MessageView {
            subject: msg.subject().map(|s| truncate(s, MAX_HEADER_CHARS).to_string()),
            from: msg.from().and_then(|a| a.first()).map(mailbox),
            reply_to: msg.reply_to().map(|a| a.iter().take(10).map(mailbox).collect()).unwrap_or_default(),
            message_id: msg.message_id().map(str::to_string),
            has_date: msg.date().is_some(),
            list_id: msg.header_raw("List-Id").map(|v| truncate(v.trim(), MAX_HEADER_CHARS).to_string()),
            mailer: header_text(&msg, "X-Mailer").or_else(|| header_text(&msg, "User-Agent")),
            content_type: mime_type(&msg.parts[0]),
            ..MessageView::default()
        };
        let mut budget = Budget { parts: MAX_PARTS, text: MAX_TEXT_BYTES };
        view.walk(&msg, 0, &mut budget);
        // Encoded (base64, quoted-printable) test messages too.
        view.gtube = gtube || view.texts.iter().any(|t| memchr::memmem::find(t.text.as_bytes(), GTUBE).is_some());
        view
    }

    /// Body text parts (not attached files).
    pub fn bodies(&self) -> impl Iterator<Item = &TextPart> {
        self.texts.iter().filter(|t| !t.attached)
    }

    /// Reads the parts of `msg` (and of messages attached to it, one level per `depth`).
    fn walk(&mut self, msg: &Message<'_>, depth: usize, budget: &mut Budget) {
        // Iterative walk over the multipart tree: (part id, nesting depth).
        let mut todo = vec![(0usize, depth)];
        while let Some((id, d)) = todo.pop() {
            let Some(part) = msg.parts.get(id) else { continue };
            if budget.parts == 0 {
                self.structure.truncated = true;
                return;
            }
            budget.parts -= 1;
            self.structure.parts += 1;
            self.structure.depth = self.structure.depth.max(d);
            match &part.body {
                // Children pushed in reverse so they are read in order.
                PartType::Multipart(children) => todo.extend(children.iter().rev().map(|&c| (c as usize, d + 1))),
                PartType::Message(inner) => self.walk(inner, d + 1, budget),
                PartType::Text(text) => self.text(part, TextKind::Plain, text, budget),
                PartType::Html(text) => self.text(part, TextKind::Html, text, budget),
                PartType::Binary(_) | PartType::InlineBinary(_) => self.attachment(part),
            }
        }
    }

    fn text(&mut self, part: &MessagePart<'_>, kind: TextKind, text: &str, budget: &mut Budget) {
        let attached = part.content_disposition().is_some_and(|d| d.is_attachment()) || part.attachment_name().is_some();
        let plain_type = matches!(mime_type(part).as_str(), "text/plain" | "text/html");
        if attached || !plain_type {
            self.attachment(part);
            // An attached HTML page (a phishing form) or text file is still read for URLs.
            if !plain_type {
                return;
            }
        }
        if budget.text == 0 {
            self.structure.truncated = true;
            return;
        }
        let kept = truncate(text, budget.text);
        if kept.len() < text.len() {
            self.structure.truncated = true;
        }
        budget.text -= kept.len();
        let html = (kind == TextKind::Html).then(|| html::analyse(kept, kept.len()));
        self.texts.push(TextPart { kind, attached, text: kept.to_string(), html });
    }

    fn attachment(&mut self, part: &MessagePart<'_>) {
        let name = part.attachment_name().map(|n| truncate(n, MAX_HEADER_CHARS).to_string());
        self.attachments.push(Attachment { name, content_type: mime_type(part) });
    }
}

struct Budget {
    parts: usize,
    text: usize,
}

fn mailbox(addr: &mail_parser::Addr<'_>) -> Mailbox {
    Mailbox {
        name: addr.name().map(|n| truncate(n, MAX_HEADER_CHARS).to_string()),
        address: addr.address().map(|a| truncate(a, MAX_HEADER_CHARS).to_string()),
    }
}

fn header_text(msg: &Message<'_>, name: &str) -> Option<String> {
    msg.header(name).and_then(|v| v.as_text()).map(|t| truncate(t, MAX_HEADER_CHARS).to_string())
}

/// A part's lowercase `type/subtype`; `text/plain` when it has none (RFC 2045 §5.2).
fn mime_type(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => "text/plain".into(),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &str = "From: \"Billing Dept\" <billing@shop.example.com>\r\n\
Reply-To: other@elsewhere.test\r\n\
To: you@example.org\r\n\
Subject: =?utf-8?q?Your_invoice_=E2=82=AC?=\r\n\
Message-ID: <abc@shop.example.com>\r\n\
Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n\
List-Id: <news.shop.example.com>\r\n\
X-Mailer: ShopMailer 2.1\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"inner\"\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Total: 12=E2=82=AC, see http://shop.example.com/i/1=\r\n\
23\r\n\
--inner\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+VG90YWw6IDxhIGhyZWY9Imh0dHA6Ly9zaG9wLmV4YW1wbGUuY29tL2kvMTIzIj5zZWU8L2E+PC9wPg==\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
TVqQAAMAAAAEAAAA\r\n\
--outer--\r\n";

    #[test]
    fn headers_texts_attachments_structure() {
        let v = MessageView::parse(MULTI.as_bytes());
        assert_eq!(v.subject.as_deref(), Some("Your invoice €"));
        let from = v.from.clone().unwrap();
        assert_eq!((from.name.as_deref(), from.domain().as_deref()), (Some("Billing Dept"), Some("shop.example.com")));
        assert_eq!(v.reply_to[0].domain().as_deref(), Some("elsewhere.test"));
        assert_eq!(v.message_id.as_deref(), Some("abc@shop.example.com"));
        assert!(v.has_date);
        assert_eq!(v.list_id.as_deref(), Some("<news.shop.example.com>"));
        assert_eq!(v.mailer.as_deref(), Some("ShopMailer 2.1"));
        assert_eq!(v.content_type, "multipart/mixed");
        assert_eq!(v.texts.len(), 2);
        assert_eq!(v.texts[0].kind, TextKind::Plain);
        assert!(v.texts[0].text.contains("12€, see http://shop.example.com/i/123"), "{:?}", v.texts[0].text);
        let html = v.texts[1].html.as_ref().unwrap();
        assert_eq!(html.targets, ["http://shop.example.com/i/123"]);
        assert_eq!(v.attachments, [Attachment { name: Some("invoice.pdf.exe".into()), content_type: "application/octet-stream".into() }]);
        assert_eq!(v.structure, Structure { parts: 5, depth: 2, truncated: false });
        assert!(!v.unparsable);
    }

    #[test]
    fn minimal_and_broken_messages() {
        let v = MessageView::parse(b"Subject: hi\r\n\r\nbody");
        assert_eq!((v.subject.as_deref(), v.message_id.as_deref(), v.has_date), (Some("hi"), None, false));
        assert_eq!(v.content_type, "text/plain");
        assert_eq!(v.texts.len(), 1);
        assert_eq!(v.structure.depth, 0);
        for raw in [&b""[..], b"\r\n", b"\xff\xfe\x00", b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n"] {
            let _ = MessageView::parse(raw);
        }
    }

    #[test]
    fn attached_html_and_other_text_types() {
        let raw = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--b\r\nContent-Type: text/html; name=login.html\r\nContent-Disposition: attachment; filename=login.html\r\n\r\n<form action=\"http://phish.test/\"></form>\r\n\
--b\r\nContent-Type: text/csv; name=a.csv\r\n\r\na,b\r\n--b--\r\n";
        let v = MessageView::parse(raw.as_bytes());
        assert_eq!(v.bodies().count(), 1);
        let attached: Vec<_> = v.texts.iter().filter(|t| t.attached).collect();
        assert_eq!(attached.len(), 1);
        assert_eq!(attached[0].html.as_ref().unwrap().targets, ["http://phish.test/"]);
        let names: Vec<_> = v.attachments.iter().map(|a| a.name.clone().unwrap()).collect();
        assert_eq!(names, ["login.html", "a.csv"]);
    }

    #[test]
    fn limits_hold() {
        let mut raw = String::from("Content-Type: multipart/mixed; boundary=b\r\n\r\n");
        for _ in 0..(MAX_PARTS * 3) {
            raw.push_str("--b\r\nContent-Type: text/plain\r\n\r\n");
            raw.push_str(&"spam ".repeat(1000));
            raw.push_str("\r\n");
        }
        raw.push_str("--b--\r\n");
        let v = MessageView::parse(raw.as_bytes());
        assert!(v.structure.truncated);
        assert_eq!(v.structure.parts, MAX_PARTS);
        assert!(v.texts.iter().map(|t| t.text.len()).sum::<usize>() <= MAX_TEXT_BYTES);
        assert_eq!(truncate("aé", 2), "a");
        assert!(!v.gtube);
    }

    #[test]
    fn gtube_raw_and_encoded() {
        let plain = format!("Subject: test\r\n\r\n{}\r\n", std::str::from_utf8(GTUBE).unwrap());
        assert!(MessageView::parse(plain.as_bytes()).gtube);
        // The same string in base64: found only after decoding.
        let b64 = "Subject: test\r\nContent-Transfer-Encoding: base64\r\n\r\n\
WEpTKkM0SkRCUUFETjEuTlNCTjMqMklETkVOKkdUVUJFLVNUQU5EQVJELUFOVEktVUJFLVRFU1QtRU1BSUwqQy4zNFg=\r\n";
        assert!(MessageView::parse(b64.as_bytes()).gtube);
        assert!(!MessageView::parse(b"Subject: XJS*C4JDBQADN1\r\n\r\nno").gtube);
        assert_eq!(truncate("abc", 10), "abc");
    }
}
