//! Trace headers (RFC 5321 §4.4) and transaction ids.

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
}
