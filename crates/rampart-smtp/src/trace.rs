//! Trace headers (RFC 5321 §4.4), the verdict header of gateway copies, and transaction ids.

use std::net::IpAddr;

use crate::command::ReversePath;
use crate::session::TlsInfo;

/// A transaction id: 13 characters of Crockford base32, time-ordered (milliseconds first)
/// so ids sort by arrival, with random low bits so two servers never collide in practice.
pub fn new_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let value: u64 = (millis << 20) | (rand::random::<u64>() & 0xF_FFFF);
    (0..13).rev().map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char).collect()
}

pub struct Stamp<'a> {
    pub id: &'a str,
    pub helo: &'a str,
    pub extended: bool,
    pub remote: IpAddr,
    /// Leave out where the client connected from (submission privacy option).
    pub hide_client: bool,
    pub authenticated: bool,
    pub hostname: &'a str,
    pub tls: Option<&'a TlsInfo>,
    pub smtputf8: bool,
    pub rcpts: &'a [String],
}

/// `Return-Path: <sender>`, written at final delivery (RFC 5321 §4.4).
pub fn return_path(from: &ReversePath) -> String {
    format!("Return-Path: <{from}>\r\n")
}

/// The `Received` header for a message we accept.
///
/// `for <rcpt>` is written only for a single recipient: with several it would reveal Bcc
/// recipients to each other.
pub fn received(s: &Stamp<'_>) -> String {
    // RFC 3848 / RFC 6531 §3.7.3 "with" keywords: S for TLS, A for authenticated.
    let mut with = String::from(match (s.smtputf8, s.extended) {
        (true, _) => "UTF8SMTP",
        (false, true) => "ESMTP",
        (false, false) => "SMTP",
    });
    if s.tls.is_some() {
        with.push('S');
    }
    if s.authenticated {
        with.push('A');
    }
    let mut out = String::from("Received:");
    if !s.hide_client {
        out.push_str(&format!(" from {} ([{}])\r\n", s.helo, s.remote));
        if let Some(tls) = s.tls {
            out.push_str(&format!("\t(using {} with cipher {})\r\n", tls.version, tls.cipher));
        }
        out.push('\t');
    } else {
        out.push(' ');
    }
    out.push_str(&format!("by {} (Rampart) with {} id {}", s.hostname, with, s.id));
    if let [only] = s.rcpts {
        out.push_str(&format!("\r\n\tfor <{only}>"));
    }
    out.push_str(&format!(";\r\n\t{}\r\n", chrono::Utc::now().to_rfc2822()));
    out
}

/// The header's name a gateway writes into the copy it relays to its downstream.
pub const TRAIL_HEADER: &str = "X-Rampart-Trail";
/// Folded lines stay within RFC 5322 §2.1.1's recommended 78 characters.
const LINE: usize = 78;

/// Our verdict on a message relayed to a gateway's downstream, so the downstream can file it
/// (a rule on the first word: `junk` into Junk) and an administrator can see why:
/// `X-Rampart-Trail: junk; reason=spam_score_junk; score=7.2; id=ID;` then
/// `trail=stage:result:reason,...` folded after commas.
pub fn trail_header(id: &str, action: &str, reason: &str, score: f64, summary: &str) -> String {
    // Adding +0.0 turns a negative zero into "0.0".
    let score = (score * 10.0).round() / 10.0 + 0.0;
    let mut out = format!("{TRAIL_HEADER}: {action}; reason={reason}; score={score:.1}; id={id};\r\n\ttrail=");
    let mut len = "\ttrail=".len();
    let pieces: Vec<&str> = summary.split_inclusive(',').collect();
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 && len + piece.len() > LINE {
            out.push_str("\r\n\t");
            len = 1;
        }
        out.push_str(piece);
        len += piece.len();
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_sortable() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert_eq!(a.len(), 13);
        assert!(a < b);
    }

    #[test]
    fn received_records_tls_and_hides_bcc() {
        let tls = TlsInfo { version: "TLSv1.3".into(), cipher: "TLS13_AES_256_GCM_SHA384".into(), channel_binding: None };
        let rcpts = vec!["a@example.test".to_string(), "b@example.test".to_string()];
        let mut stamp = Stamp {
            id: "ID1",
            helo: "client.example",
            extended: true,
            remote: "192.0.2.1".parse().unwrap(),
            hide_client: false,
            authenticated: false,
            hostname: "mx.example.test",
            tls: Some(&tls),
            smtputf8: false,
            rcpts: &rcpts,
        };
        let text = format!("{}{}", return_path(&ReversePath::Null), received(&stamp));
        assert!(text.starts_with("Return-Path: <>\r\nReceived: from client.example ([192.0.2.1])\r\n"));
        assert!(text.contains("(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)"));
        assert!(text.contains("with ESMTPS id ID1;"));
        assert!(!text.contains("for <"));
        assert!(text.ends_with("\r\n"));
        stamp.hide_client = true;
        stamp.authenticated = true;
        let hidden = received(&stamp);
        assert!(hidden.starts_with("Received: by mx.example.test (Rampart) with ESMTPSA id ID1;"), "{hidden}");
        assert!(!hidden.contains("192.0.2.1") && !hidden.contains("client.example"));
    }

    #[test]
    fn trail_header_folds_after_commas() {
        let summary = (0..12).map(|i| format!("stage{i}:pass:some_reason_{i}")).collect::<Vec<_>>().join(",");
        let h = trail_header("ID1", "junk", "spam_score_junk", 7.25, &summary);
        assert!(h.starts_with("X-Rampart-Trail: junk; reason=spam_score_junk; score=7.3; id=ID1;\r\n\ttrail=stage0:pass:some_reason_0,"), "{h}");
        assert!(h.ends_with("stage11:pass:some_reason_11\r\n"), "{h}");
        for line in h.split("\r\n") {
            assert!(line.len() <= LINE, "{line}");
        }
        // Unfolding gives the summary back.
        let value = h.split_once("trail=").unwrap().1.replace("\r\n\t", "");
        assert_eq!(value.trim_end(), summary);
        assert!(trail_header("I", "accept", "accepted", -0.0, "").contains("score=0.0;"));
    }
}
