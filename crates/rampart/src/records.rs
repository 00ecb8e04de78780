//! The DNS records a mail domain needs, as a zone-file snippet to paste at a DNS provider.

use std::fmt::Write;

/// Records for `domain` served by the host `hostname`.
pub fn zone(domain: &str, hostname: &str) -> String {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    let mut z = String::new();
    let _ = writeln!(z, "; DNS records for {domain}. Publish them in the zone of {domain}.");
    let _ = writeln!(z, "; Mail for {domain} goes to {host} (RFC 5321 section 5.1).");
    let _ = writeln!(z, "{domain}.\tIN\tMX\t10 {host}.");
    let _ = writeln!(z, "; Only the MX hosts may send mail as {domain}; others fail SPF (RFC 7208).");
    let _ = writeln!(z, "{domain}.\tIN\tTXT\t\"v=spf1 mx -all\"");
    let _ = writeln!(z, "; {host} needs address records, and its addresses a PTR record naming {host}:");
    let _ = writeln!(z, "; {host}.\tIN\tA\t<this server's IPv4 address>");
    let _ = writeln!(z, "; {host}.\tIN\tAAAA\t<this server's IPv6 address>");
    z
}

#[cfg(test)]
mod tests {
    #[test]
    fn mx_and_spf() {
        let z = super::zone("Example.TEST.", "mx.example.test");
        assert!(z.contains("example.test.\tIN\tMX\t10 mx.example.test."));
        assert!(z.contains("example.test.\tIN\tTXT\t\"v=spf1 mx -all\""));
    }
}
