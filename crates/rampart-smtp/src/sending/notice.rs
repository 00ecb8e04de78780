//! The mail that tells a user and the administrator that the user's sending was suspended:
//! why (the score's parts), what it means (queued mail held, reading mail still works) and
//! what the administrator does next.

use std::fmt::Write;

pub struct Notice<'a> {
    pub hostname: &'a str,
    pub id: &'a str,
    pub account: &'a str,
    /// The administrator's address, also in To:.
    pub admin: &'a str,
    /// Unix seconds.
    pub since: i64,
    /// The score's parts, one `- ...` line each.
    pub why: &'a str,
    pub held: u64,
}

/// Header values come from our own config and store, never from a client; still, keep
/// each one line.
fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

pub fn build(n: &Notice<'_>) -> Vec<u8> {
    let now = chrono::Utc::now().to_rfc2822();
    let since = chrono::DateTime::from_timestamp(n.since, 0).map(|d| d.to_rfc2822()).unwrap_or_else(|| now.clone());
    let (host, account, admin) = (one_line(n.hostname), one_line(n.account), one_line(n.admin));
    let mut m = String::new();
    // RFC 3834 §5: Auto-Submitted, so vacation responders do not answer it.
    let _ = write!(
        m,
        "From: Mail System <MAILER-DAEMON@{host}>\r\n\
         To: <{account}>, <{admin}>\r\n\
         Subject: Sending suspended for {account}\r\n\
         Date: {now}\r\n\
         Message-ID: <{id}.suspended@{host}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Sending mail from {account} was suspended on {since}, because what the account did\r\n\
         looks like someone else may be using its password:\r\n\
         \r\n",
        id = n.id,
    );
    for line in n.why.lines() {
        let _ = write!(m, "{line}\r\n");
    }
    let _ = write!(
        m,
        "\r\n\
         Until it is resumed, new messages from this account are refused and the {held} message(s)\r\n\
         it has waiting for delivery are held: neither delivered nor returned. Reading mail\r\n\
         (IMAP) keeps working.\r\n\
         \r\n\
         For the administrator: change the password if it may be known to others, look at the\r\n\
         held mail (rampart queue list), then\r\n\
         \r\n\
         \x20 rampart user resume {account}\r\n\
         \x20 rampart queue release --user {account}    (or: rampart queue delete ID)\r\n",
        held = n.held,
    );
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn says_why_and_what_next() {
        let text = super::build(&super::Notice {
            hostname: "mx.example.test",
            id: "ABC",
            account: "bob@example.test",
            admin: "postmaster@example.test",
            since: 0,
            why: "- 10 submission(s) refused for a sending quota (+10.0)\n",
            held: 2,
        });
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("From: Mail System <MAILER-DAEMON@mx.example.test>\r\nTo: <bob@example.test>, <postmaster@example.test>\r\n"));
        assert!(text.contains("Subject: Sending suspended for bob@example.test\r\n"));
        assert!(text.contains("\r\n- 10 submission(s) refused for a sending quota (+10.0)\r\n"));
        assert!(text.contains("the 2 message(s)"));
        assert!(text.contains("  rampart user resume bob@example.test\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'), "CRLF only");
    }
}
