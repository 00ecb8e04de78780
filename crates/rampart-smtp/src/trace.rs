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
    pub from: &'a ReversePath,
    pub helo: &'a str,
    pub extended: bool,
    pub remote: IpAddr,
    pub hostname: &'a str,
    pub tls: Option<&'a TlsInfo>,
    pub smtputf8: bool,
    pub rcpts: &'a [String],
}

/// `Return-Path` and `Received`, ready to be read back before the message.
///
/// `for <rcpt>` is written only for a single recipient: with several it would reveal Bcc
/// recipients to each other.
pub fn prefix(s: &Stamp<'_>) -> Vec<u8> {
    // RFC 3848 / RFC 6531 §3.7.3 "with" keywords.
    let mut with = String::from(match (s.smtputf8, s.extended) {
        (true, _) => "UTF8SMTP",
        (false, true) => "ESMTP",
        (false, false) => "SMTP",
    });
    if s.tls.is_some() {
        with.push('S');
    }
    let mut out = format!("Return-Path: <{}>\r\n", s.from);
    out.push_str(&format!("Received: from {} ([{}])\r\n", s.helo, s.remote));
    if let Some(tls) = s.tls {
        out.push_str(&format!("\t(using {} with cipher {})\r\n", tls.version, tls.cipher));
    }
    out.push_str(&format!("\tby {} (Rampart) with {} id {}", s.hostname, with, s.id));
    if let [only] = s.rcpts {
        out.push_str(&format!("\r\n\tfor <{only}>"));
    }
    out.push_str(&format!(";\r\n\t{}\r\n", chrono::Utc::now().to_rfc2822()));
    out.into_bytes()
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
        let tls = TlsInfo { version: "TLSv1.3".into(), cipher: "TLS13_AES_256_GCM_SHA384".into() };
        let rcpts = vec!["a@example.test".to_string(), "b@example.test".to_string()];
        let text = String::from_utf8(prefix(&Stamp {
            id: "ID1",
            from: &ReversePath::Null,
            helo: "client.example",
            extended: true,
            remote: "192.0.2.1".parse().unwrap(),
            hostname: "mx.example.test",
            tls: Some(&tls),
            smtputf8: false,
            rcpts: &rcpts,
        }))
        .unwrap();
        assert!(text.starts_with("Return-Path: <>\r\nReceived: from client.example ([192.0.2.1])\r\n"));
        assert!(text.contains("(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)"));
        assert!(text.contains("with ESMTPS id ID1;"));
        assert!(!text.contains("for <"));
        assert!(text.ends_with("\r\n"));
    }
}
