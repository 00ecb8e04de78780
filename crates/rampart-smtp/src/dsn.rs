//! Delivery status notifications (RFC 3464): the bounce a sender gets when mail could not be
//! delivered, as `multipart/report; report-type=delivery-status` (RFC 6522).

use std::fmt::Write;

/// One recipient the message could not reach.
pub struct Failed<'a> {
    pub rcpt: &'a str,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: &'a str,
    /// What the remote server said, or why we gave up.
    pub diagnostic: &'a str,
}

pub struct Report<'a> {
    pub hostname: &'a str,
    pub id: &'a str,
    /// The original envelope sender, who gets the report.
    pub to: &'a str,
    /// Unix seconds when the original message arrived.
    pub arrival: i64,
    pub failed: &'a [Failed<'a>],
    /// The original message, whose header section is attached.
    pub original: &'a [u8],
}

/// The header section of a message, through the empty line.
fn headers(message: &[u8]) -> &[u8] {
    match memchr::memmem::find(message, b"\r\n\r\n") {
        Some(i) => &message[..i + 2],
        None => message,
    }
}

/// Diagnostic text may come from a remote server: keep it to one printable line.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(900).collect()
}

pub fn build(r: &Report<'_>) -> Vec<u8> {
    let boundary = format!("{}/{}", r.id, r.hostname);
    let now = chrono::Utc::now().to_rfc2822();
    let arrival = chrono::DateTime::from_timestamp(r.arrival, 0).map(|d| d.to_rfc2822()).unwrap_or_else(|| now.clone());
    let mut m = String::new();
    let _ = write!(
        m,
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {now}\r\n\
         Message-ID: <{id}.dsn@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated delivery status notification.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Description: Notification\r\n\
         \r\n\
         This is the mail system at {host}.\r\n\
         \r\n\
         Your message could not be delivered to the recipients below. Nothing more will be tried.\r\n\
         \r\n",
        host = r.hostname,
        to = r.to,
        id = r.id,
    );
    for f in r.failed {
        let _ = write!(m, "<{}>: {}\r\n", f.rcpt, clean(f.diagnostic));
    }
    let _ = write!(
        m,
        "\r\n--{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         Content-Description: Delivery report\r\n\
         \r\n\
         Reporting-MTA: dns; {host}\r\n\
         X-Rampart-Queue-ID: {id}\r\n\
         Arrival-Date: {arrival}\r\n",
        host = r.hostname,
        id = r.id,
    );
    for f in r.failed {
        let _ = write!(
            m,
            "\r\nFinal-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {}\r\nDiagnostic-Code: smtp; {}\r\nLast-Attempt-Date: {now}\r\n",
            f.rcpt,
            f.status,
            clean(f.diagnostic)
        );
    }
    let _ = write!(
        m,
        "\r\n--{boundary}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         Content-Description: Undelivered message headers\r\n\
         \r\n"
    );
    let mut out = m.into_bytes();
    out.extend_from_slice(headers(r.original));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_shape() {
        let failed = [Failed { rcpt: "x@remote.test", status: "5.1.1", diagnostic: "550 5.1.1 no such user\r\n" }];
        let dsn = build(&Report {
            hostname: "mx.example.test",
            id: "ABC",
            to: "bob@example.test",
            arrival: 0,
            failed: &failed,
            original: b"Subject: hello\r\nFrom: bob@example.test\r\n\r\nbody\r\n",
        });
        let text = String::from_utf8(dsn).unwrap();
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(text.contains("Final-Recipient: rfc822; x@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"));
        assert!(text.contains("Subject: hello\r\nFrom: bob@example.test\r\n"));
        assert!(!text.contains("body\r\n"));
        assert!(text.ends_with("--ABC/mx.example.test--\r\n"));
    }
}
