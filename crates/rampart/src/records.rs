//! The DNS records a mail domain needs, as a zone-file snippet to paste at a DNS provider.

use std::fmt::Write;

use rampart_store::DkimKey;

/// What the records depend on besides the domain.
pub struct Inputs<'a> {
    pub hostname: &'a str,
    /// Keys in the signing table for the domain (active and retired: both must stay published).
    pub keys: &'a [DkimKey],
    /// Where DMARC aggregate reports should go (`[dmarc] report_address`), else postmaster.
    pub rua: Option<&'a str>,
    /// The id of the MTA-STS policy served (`[mta_sts]`), and its mode.
    pub sts: (String, &'static str),
    /// Where TLS reports should go (`[tlsrpt] report_address`), else postmaster.
    pub tlsrpt_rua: Option<&'a str>,
}

impl<'a> Inputs<'a> {
    pub fn from_config(c: &'a rampart_config::Config, keys: &'a [DkimKey]) -> Inputs<'a> {
        let mode = match c.mta_sts.mode {
            rampart_config::StsMode::None => "none",
            rampart_config::StsMode::Testing => "testing",
            rampart_config::StsMode::Enforce => "enforce",
        };
        Inputs {
            hostname: &c.server.hostname,
            keys,
            rua: Some(c.dmarc.report_address.as_str()).filter(|a| !a.is_empty()),
            sts: (c.mta_sts.policy_id(&c.server.hostname), mode),
            tlsrpt_rua: Some(c.tlsrpt.report_address.as_str()).filter(|a| !a.is_empty()),
        }
    }
}

/// Records for `domain`.
pub fn zone(domain: &str, i: &Inputs<'_>) -> String {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let host = i.hostname.trim_end_matches('.').to_ascii_lowercase();
    let mut z = String::new();
    let _ = writeln!(z, "; DNS records for {domain}. Publish them in the zone of {domain}.");
    let _ = writeln!(z, "; Mail for {domain} goes to {host} (RFC 5321 section 5.1).");
    let _ = writeln!(z, "{domain}.\tIN\tMX\t10 {host}.");
    let _ = writeln!(z, "; Only the MX hosts may send mail as {domain}; others fail SPF (RFC 7208).");
    let _ = writeln!(z, "{domain}.\tIN\tTXT\t\"v=spf1 mx -all\"");
    if i.keys.is_empty() {
        let _ = writeln!(z, "; DKIM: no keys yet. Create one with: rampart dkim keygen {domain}");
    } else {
        let _ = writeln!(z, "; DKIM public keys (RFC 6376), every key in the signing table, signing or retired.");
        for k in i.keys {
            let _ = writeln!(z, "{}", crate::dkim::record_line(k));
        }
    }
    let rua = i.rua.map_or_else(|| format!("postmaster@{domain}"), str::to_string);
    let _ = writeln!(z, "; DMARC (RFC 7489): failing mail goes to Junk; aggregate reports to {rua}.");
    let _ = writeln!(z, "_dmarc.{domain}.\tIN\tTXT\t\"v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:{rua}\"");
    let (sts_id, mode) = &i.sts;
    let _ = writeln!(z, "; MTA-STS (RFC 8461): the policy (mode {mode}) is served at https://mta-sts.{domain}/.well-known/mta-sts.txt");
    let _ = writeln!(z, "; on [listener.https], which needs a certificate for mta-sts.{domain}; the id changes with the policy.");
    let _ = writeln!(z, "_mta-sts.{domain}.\tIN\tTXT\t\"v=STSv1; id={sts_id}\"");
    let _ = writeln!(z, "mta-sts.{domain}.\tIN\tCNAME\t{host}.");
    let tlsrpt = i.tlsrpt_rua.map_or_else(|| format!("postmaster@{domain}"), str::to_string);
    let _ = writeln!(z, "; TLS reporting (RFC 8460): senders report failed TLS deliveries to {domain} to {tlsrpt}.");
    let _ = writeln!(z, "_smtp._tls.{domain}.\tIN\tTXT\t\"v=TLSRPTv1; rua=mailto:{tlsrpt}\"");
    let _ = writeln!(z, "; Mail client autoconfiguration (RFC 6186, RFC 8314 for the implicit-TLS ports).");
    for (service, port) in [("submissions", 465), ("submission", 587), ("imaps", 993), ("imap", 143)] {
        let _ = writeln!(z, "_{service}._tcp.{domain}.\tIN\tSRV\t0 1 {port} {host}.");
    }
    let _ = writeln!(z, "; Thunderbird's autoconfig and Outlook's autodiscover ask these names (served on [listener.https]).");
    let _ = writeln!(z, "autoconfig.{domain}.\tIN\tCNAME\t{host}.");
    let _ = writeln!(z, "autodiscover.{domain}.\tIN\tCNAME\t{host}.");
    let _ = writeln!(z, "_autodiscover._tcp.{domain}.\tIN\tSRV\t0 1 443 {host}.");
    let _ = writeln!(z, "; {host} needs address records, and its addresses a PTR record naming {host}:");
    let _ = writeln!(z, "; {host}.\tIN\tA\t<this server's IPv4 address>");
    let _ = writeln!(z, "; {host}.\tIN\tAAAA\t<this server's IPv6 address>");
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_record_set() {
        let key = DkimKey {
            domain: "example.test".into(),
            selector: "s1".into(),
            algorithm: "ed25519".into(),
            private_key: vec![],
            public_key: vec![0; 32],
            active: true,
            created: 0,
        };
        let keys = [key];
        let mut config = rampart_config::Config::default();
        config.server.hostname = "mx.example.test".into();
        let z = zone("Example.TEST.", &Inputs::from_config(&config, &keys));
        assert!(z.contains("example.test.\tIN\tMX\t10 mx.example.test."));
        assert!(z.contains("example.test.\tIN\tTXT\t\"v=spf1 mx -all\""));
        assert!(z.contains("s1._domainkey.example.test.\tIN\tTXT\t(\"v=DKIM1; k=ed25519; p=AAAA"));
        assert!(z.contains("_dmarc.example.test.\tIN\tTXT\t\"v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:postmaster@example.test\""));
        assert!(z.contains("_smtp._tls.example.test.\tIN\tTXT\t\"v=TLSRPTv1; rua=mailto:postmaster@example.test\""));
        let id = config.mta_sts.policy_id("mx.example.test");
        assert!(z.contains(&format!("_mta-sts.example.test.\tIN\tTXT\t\"v=STSv1; id={id}\"")));
        assert!(z.contains("mta-sts.example.test.\tIN\tCNAME\tmx.example.test."));
        assert!(z.contains("_submissions._tcp.example.test.\tIN\tSRV\t0 1 465 mx.example.test."));
        assert!(z.contains("_imaps._tcp.example.test.\tIN\tSRV\t0 1 993 mx.example.test."));
        assert!(z.contains("autoconfig.example.test.\tIN\tCNAME\tmx.example.test."));
        assert!(z.contains("autodiscover.example.test.\tIN\tCNAME\tmx.example.test."));
    }
}
