//! The message limits in force for one transaction: the listener's, or a sender's
//! `[[limits.override]]`. Size and line limits are enforced while the data streams (the
//! receiver), the header section's size, field count and Received hops while it streams too
//! ([`HeaderScan`]), and the MIME structure — nesting, part count, part and attachment sizes —
//! on the parsed message once it is complete. Each refusal is a typed trail entry naming the
//! limit, answered by `decide`.

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};
use rampart_config::{LimitOverride, SmtpListener};
use rampart_pipeline::{Entry, Outcome, Reason, Stage};

use crate::headers::{HeaderLimits, HeaderViolation};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_header_size: u64,
    pub max_header_fields: u32,
    pub max_received: u32,
    pub max_mime_depth: u32,
    pub max_mime_parts: u32,
    /// 0: the message size.
    pub max_part_size: u64,
    /// 0: the message size.
    pub max_attachment_size: u64,
}

impl Limits {
    pub fn from_config(c: &SmtpListener) -> Limits {
        Limits {
            max_message_size: c.max_message_size,
            max_recipients: c.max_recipients,
            max_header_size: c.max_header_size,
            max_header_fields: c.max_header_fields,
            max_received: c.max_received,
            max_mime_depth: c.max_mime_depth,
            max_mime_parts: c.max_mime_parts,
            max_part_size: c.max_part_size,
            max_attachment_size: c.max_attachment_size,
        }
    }

    /// These limits with the first override that applies to `sender` (lowercase address).
    pub fn for_sender(self, overrides: &[LimitOverride], sender: &str) -> Limits {
        let Some(o) = overrides.iter().find(|o| o.applies_to(sender)) else { return self };
        Limits {
            max_message_size: o.max_message_size.unwrap_or(self.max_message_size),
            max_recipients: o.max_recipients.unwrap_or(self.max_recipients),
            max_header_size: o.max_header_size.unwrap_or(self.max_header_size),
            max_header_fields: o.max_header_fields.unwrap_or(self.max_header_fields),
            max_received: o.max_received.unwrap_or(self.max_received),
            max_mime_depth: o.max_mime_depth.unwrap_or(self.max_mime_depth),
            max_mime_parts: o.max_mime_parts.unwrap_or(self.max_mime_parts),
            max_part_size: o.max_part_size.unwrap_or(self.max_part_size),
            max_attachment_size: o.max_attachment_size.unwrap_or(self.max_attachment_size),
        }
    }

    pub fn header(&self) -> HeaderLimits {
        HeaderLimits { max_size: self.max_header_size, max_fields: self.max_header_fields, max_received: self.max_received }
    }

    fn part_size(&self) -> u64 {
        if self.max_part_size == 0 { self.max_message_size } else { self.max_part_size }
    }

    fn attachment_size(&self) -> u64 {
        if self.max_attachment_size == 0 { self.max_message_size } else { self.max_attachment_size }
    }
}

/// The refusing entry for a header section that crossed a limit.
pub fn header_refusal(v: HeaderViolation, limits: &Limits) -> Entry {
    let (reason, limit) = match v {
        HeaderViolation::TooLarge => (Reason::HeaderSectionTooLarge, limits.max_header_size),
        HeaderViolation::TooManyFields => (Reason::TooManyHeaderFields, limits.max_header_fields.into()),
        HeaderViolation::TooManyHops => (Reason::MailLoop, limits.max_received.into()),
    };
    Entry::new(Stage::Content, Outcome::Fail, reason).limit(limit)
}

/// Nesting depth, part count and the largest part and attachment of a parsed message
/// (message/rfc822 parts counted with what they contain).
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    depth: u32,
    parts: u32,
    largest_part: u64,
    largest_attachment: u64,
}

fn measure(message: &Message<'_>, base_depth: u32, shape: &mut Shape) {
    // Depth of each part: the root is at `base_depth`, children one deeper. Walked with a
    // stack, never recursion on the attacker's nesting (nested messages are few: mail-parser
    // decodes at most three levels of them).
    let mut stack = vec![(0usize, base_depth)];
    while let Some((id, depth)) = stack.pop() {
        let Some(part) = message.parts.get(id) else { continue };
        shape.parts += 1;
        shape.depth = shape.depth.max(depth);
        match &part.body {
            PartType::Multipart(children) => stack.extend(children.iter().map(|c| (*c as usize, depth + 1))),
            PartType::Message(inner) => measure(inner, depth + 1, shape),
            _ => {
                let size = part.contents().len() as u64;
                shape.largest_part = shape.largest_part.max(size);
                if is_attachment(part) {
                    shape.largest_attachment = shape.largest_attachment.max(size);
                }
            }
        }
    }
}

fn is_attachment(part: &MessagePart<'_>) -> bool {
    part.attachment_name().is_some() || part.content_disposition().is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"))
}

/// The first MIME limit `raw` crosses, as a refusing entry.
pub fn structure_refusal(raw: &[u8], limits: &Limits) -> Option<Entry> {
    let message = mail_parser::MessageParser::default().parse(raw)?;
    let mut shape = Shape::default();
    measure(&message, 0, &mut shape);
    let refuse = |reason, limit: u64| Some(Entry::new(Stage::Content, Outcome::Fail, reason).limit(limit));
    if shape.depth > limits.max_mime_depth {
        return refuse(Reason::MimeTooDeep, limits.max_mime_depth.into());
    }
    if shape.parts > limits.max_mime_parts {
        return refuse(Reason::TooManyMimeParts, limits.max_mime_parts.into());
    }
    if shape.largest_attachment > limits.attachment_size() {
        return refuse(Reason::AttachmentTooBig, limits.attachment_size());
    }
    if shape.largest_part > limits.part_size() {
        return refuse(Reason::PartTooBig, limits.part_size());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::from_config(&rampart_config::Config::default().listener.smtp)
    }

    fn nested(depth: usize) -> Vec<u8> {
        let mut m = b"Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n".to_vec();
        for i in 0..depth {
            m.extend_from_slice(format!("--b{i}\r\nContent-Type: multipart/mixed; boundary=b{}\r\n\r\n", i + 1).as_bytes());
        }
        m.extend_from_slice(format!("--b{depth}\r\nContent-Type: text/plain\r\n\r\nleaf\r\n").as_bytes());
        for i in (0..=depth).rev() {
            m.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
        }
        m
    }

    #[test]
    fn mime_structure_limits() {
        let l = limits();
        assert_eq!(structure_refusal(&nested(5), &l), None);
        let deep = structure_refusal(&nested(25), &l).unwrap();
        assert_eq!((deep.reason, deep.limit), (Reason::MimeTooDeep, Some(20)));
        let few = Limits { max_mime_parts: 3, ..l };
        assert_eq!(structure_refusal(&nested(5), &few).unwrap().reason, Reason::TooManyMimeParts);
        let attachment = b"Subject: a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
            --b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=x.bin\r\n\r\n0123456789\r\n--b--\r\n";
        let small = Limits { max_attachment_size: 5, ..l };
        let refused = structure_refusal(attachment, &small).unwrap();
        assert_eq!((refused.reason, refused.limit), (Reason::AttachmentTooBig, Some(5)));
        let parts = Limits { max_part_size: 5, ..l };
        assert_eq!(structure_refusal(b"Subject: x\r\n\r\nthe body is longer than five\r\n", &parts).unwrap().reason, Reason::PartTooBig);
    }

    #[test]
    fn overrides_apply_to_their_sender() {
        let o = LimitOverride { matches: "lists.example.org".into(), max_recipients: Some(5000), ..Default::default() };
        let base = limits();
        assert_eq!(base.for_sender(std::slice::from_ref(&o), "news@lists.example.org").max_recipients, 5000);
        assert_eq!(base.for_sender(&[o], "bob@example.org"), base);
    }
}
