//! Bounces that come back after the session: a delivery status notification (RFC 3464, in a
//! `multipart/report; report-type=delivery-status` of RFC 6522, or its RFC 6533
//! `global-delivery-status` form) that a remote server mails to one of our senders about a
//! message it relayed first and could not deliver later. Parsed with mail-parser: the MIME
//! structure, the report's field blocks (header syntax, RFC 3464 §2.1) and the returned
//! message's headers. Only what the containment signal needs comes out: the returned
//! message's Message-ID and the recipients whose action is `failed`. Whether the report is
//! about a message we sent is the store's question ([`rampart_store::ContainmentStore::bounced`]).

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// What a delivery status notification says failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The returned message's Message-ID, without angle brackets.
    pub message_id: String,
    /// The failed recipients as the report names them (Original-Recipient and
    /// Final-Recipient of type rfc822), lowercase, each once.
    pub failed: Vec<String>,
}

fn parser() -> MessageParser {
    MessageParser::new().with_mime_headers().with_message_ids().default_header_text()
}

/// The report in `raw`, when it is a delivery status notification that names the returned
/// message and at least one failed recipient.
pub fn parse(raw: &[u8]) -> Option<Bounce> {
    let message = parser().parse(raw)?;
    let report = message.content_type()?;
    let is_dsn = report.ctype().eq_ignore_ascii_case("multipart")
        && report.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
        && report.attribute("report-type").is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"));
    if !is_dsn {
        return None;
    }
    let mut failed = Vec::new();
    let mut message_id = None;
    for part in message.parts.iter().skip(1) {
        let is = |sub: &str| part.is_content_type("message", sub) || part.is_content_type("text", sub);
        if is("delivery-status") || is("global-delivery-status") {
            failed.extend(failed_recipients(part.contents()));
        } else if is("rfc822") || is("global") || is("rfc822-headers") || is("global-headers") {
            message_id = message_id.or_else(|| returned_id(part));
        }
    }
    failed.sort();
    failed.dedup();
    let message_id = message_id?;
    (!failed.is_empty()).then_some(Bounce { message_id, failed })
}

/// The Message-ID of the returned message or headers.
fn returned_id(part: &mail_parser::MessagePart<'_>) -> Option<String> {
    let headers = match &part.body {
        PartType::Message(m) => m.raw_message(),
        _ => part.contents(),
    };
    let returned: Message<'_> = parser().parse_headers(headers)?;
    returned.message_id().map(|id| id.trim().to_string()).filter(|id| !id.is_empty())
}

/// The addresses of the per-recipient blocks whose Action is `failed`. The body is a
/// per-message block then one block per recipient, separated by empty lines (RFC 3464 §2.1).
fn failed_recipients(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in text.split("\n\n").skip(1) {
        let block = format!("{}\n\n", block.trim_start_matches('\n'));
        let Some(fields) = parser().parse_headers(block.as_bytes()) else { continue };
        let action = fields.header("Action").and_then(|v| v.as_text()).unwrap_or_default();
        // RFC 3464 §2.3.3: the action may be followed by a comment.
        if !action.trim().to_ascii_lowercase().starts_with("failed") {
            continue;
        }
        for name in ["Original-Recipient", "Final-Recipient"] {
            if let Some(address) = fields.header(name).and_then(|v| v.as_text()).and_then(rfc822_address) {
                out.push(address);
            }
        }
    }
    out
}

/// `rfc822; user@example.org` (RFC 3464 §2.3.2): the address; other address types are not ours.
fn rfc822_address(field: &str) -> Option<String> {
    let (kind, address) = field.split_once(';')?;
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    (kind.trim().eq_ignore_ascii_case("rfc822") && address.contains('@')).then(|| address.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsn(status_type: &str, returned_type: &str, returned: &str) -> String {
        format!(
            "From: MAILER-DAEMON@mx.remote.test\r\nTo: bob@example.test\r\nSubject: Undelivered Mail\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n\
             --B\r\nContent-Type: {status_type}\r\n\r\n\
             Reporting-MTA: dns; mx.remote.test\r\nArrival-Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\n\
             Original-Recipient: rfc822;Carol@Remote.test\r\nFinal-Recipient: rfc822; carol@remote.test\r\n\
             Action: failed\r\nStatus: 5.1.1\r\n\r\n\
             Final-Recipient: rfc822; dave@remote.test\r\nAction: delivered (to mailbox)\r\nStatus: 2.0.0\r\n\r\n\
             Final-Recipient: rfc822;\r\n erin@remote.test\r\nAction: Failed\r\nStatus: 5.2.2\r\n\r\n\
             Final-Recipient: x400; /G=frank/\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
             --B\r\nContent-Type: {returned_type}\r\n\r\n{returned}\r\n--B--\r\n"
        )
    }

    const RETURNED: &str = "From: bob@example.test\r\nTo: carol@remote.test\r\nMessage-ID: <Q1@mx.example.test>\r\nSubject: hi\r\n";

    #[test]
    fn failed_recipients_and_the_returned_message_id() {
        for (status, returned, body) in [
            ("message/delivery-status", "text/rfc822-headers", RETURNED.to_string()),
            ("message/global-delivery-status", "message/rfc822", format!("{RETURNED}\r\nHello.\r\n")),
        ] {
            let b = parse(dsn(status, returned, &body).as_bytes()).unwrap();
            assert_eq!(b.message_id, "Q1@mx.example.test");
            assert_eq!(b.failed, ["carol@remote.test", "erin@remote.test"], "{status}");
        }
    }

    #[test]
    fn other_messages_are_no_bounce() {
        // No returned headers: nothing to match.
        let no_id = dsn("message/delivery-status", "text/rfc822-headers", "From: bob@example.test\r\n");
        assert_eq!(parse(no_id.as_bytes()), None);
        // A report of another kind (an ARF feedback report) or a plain message.
        let arf = dsn("message/delivery-status", "text/rfc822-headers", RETURNED).replace("delivery-status;", "feedback-report;");
        assert_eq!(parse(arf.as_bytes()), None);
        assert_eq!(parse(b"From: a@b.test\r\nSubject: failed\r\n\r\nAction: failed\r\n"), None);
        assert_eq!(parse(b""), None);
    }
}
