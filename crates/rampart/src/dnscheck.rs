//! `rampart dns check DOMAIN` and the web's DNS page: each record `rampart dns records` asks
//! for, looked up live and marked ok, missing or wrong.

use std::sync::Arc;

use hickory_resolver::proto::rr::{RData, RecordType};
use rampart_web::RecordCheck;

/// One record the zone snippet asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub name: String,
    pub rtype: String,
    pub value: String,
}

/// The records of a zone snippet from [`crate::records::zone`] (its non-comment lines:
/// `NAME<TAB>IN<TAB>TYPE<TAB>VALUE`); TXT values are their strings joined, as resolvers see them.
pub fn expected(zone: &str) -> Vec<Expected> {
    zone.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut parts = l.splitn(4, '\t');
            let (name, _class, rtype, value) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            let value = if rtype == "TXT" { quoted_strings(value) } else { value.trim().to_string() };
            Some(Expected { name: name.to_string(), rtype: rtype.to_string(), value })
        })
        .collect()
}

/// The quoted strings of a TXT value, joined (`( "a" "b" )` → `ab`).
fn quoted_strings(value: &str) -> String {
    value.split('"').skip(1).step_by(2).collect()
}

fn normal(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A TXT record's character-strings joined into one value, as published records are compared.
pub fn txt_text(t: &hickory_resolver::proto::rr::rdata::TXT) -> String {
    t.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

/// A found value in the form [`expected`] gives.
fn found_value(data: &RData) -> Option<String> {
    match data {
        RData::TXT(t) => Some(txt_text(t)),
        RData::MX(_) | RData::CNAME(_) | RData::SRV(_) => Some(data.to_string()),
        _ => None,
    }
}

/// The tag a TXT record starts with (`v=spf1`, `v=DKIM1`): records with another tag at the
/// same name are someone else's, not a wrong version of ours.
fn tag(value: &str) -> &str {
    value.split([';', ' ']).next().unwrap_or("").trim()
}

/// Looks one record up and compares.
pub async fn check_one(resolver: &rampart_smtp::dns::Resolver, e: &Expected) -> RecordCheck {
    let rtype = match e.rtype.as_str() {
        "MX" => RecordType::MX,
        "TXT" => RecordType::TXT,
        "CNAME" => RecordType::CNAME,
        "SRV" => RecordType::SRV,
        _ => RecordType::TXT,
    };
    let result = |status: &'static str, found: Vec<String>| RecordCheck {
        name: e.name.clone(),
        rtype: e.rtype.clone(),
        expected: e.value.clone(),
        found,
        status,
    };
    let found: Vec<String> = match resolver.lookup(e.name.as_str(), rtype).await {
        Ok(lookup) => lookup.answers().iter().filter(|r| r.record_type() == rtype).filter_map(|r| found_value(&r.data)).collect(),
        Err(err) if err.is_nx_domain() || err.is_no_records_found() => Vec::new(),
        Err(err) => return result("error", vec![err.to_string()]),
    };
    let ours: Vec<&String> = if rtype == RecordType::TXT {
        found.iter().filter(|f| tag(f).eq_ignore_ascii_case(tag(&e.value))).collect()
    } else {
        found.iter().collect()
    };
    let want = normal(&e.value).split_whitespace().collect::<Vec<_>>().join(" ");
    let status = if ours.iter().any(|f| normal(f).split_whitespace().collect::<Vec<_>>().join(" ") == want) {
        "ok"
    } else if ours.is_empty() {
        "missing"
    } else {
        "wrong"
    };
    result(status, found)
}

/// Every record `rampart dns records DOMAIN` prints, checked live.
pub async fn check(
    store: &dyn rampart_store::Store,
    config: &rampart_config::Config,
    resolver: &rampart_smtp::dns::Resolver,
    domain: &str,
) -> Result<Vec<RecordCheck>, rampart_store::StoreError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let keys = store.dkim_keys(Some(&domain)).await?;
    let zone = crate::records::zone(&domain, &crate::records::Inputs::from_config(config, &keys));
    let mut out = Vec::new();
    for e in expected(&zone) {
        out.push(check_one(resolver, &e).await);
    }
    Ok(out)
}

/// [`check`] for the web listener.
pub struct Checker {
    pub store: Arc<dyn rampart_store::Store>,
    pub config: rampart_config::Config,
    pub resolver: rampart_smtp::dns::Resolver,
}

#[async_trait::async_trait]
impl rampart_web::DnsCheck for Checker {
    async fn check(&self, domain: &str) -> Result<Vec<RecordCheck>, rampart_store::StoreError> {
        check(self.store.as_ref(), &self.config, &self.resolver, domain).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_lines_become_expected_records() {
        let zone = "; comment\nexample.test.\tIN\tMX\t10 mx.example.test.\n\
                    s1._domainkey.example.test.\tIN\tTXT\t( \"v=DKIM1; k=rsa; \" \"p=AB\" )\n";
        let e = expected(zone);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0], Expected { name: "example.test.".into(), rtype: "MX".into(), value: "10 mx.example.test.".into() });
        assert_eq!(e[1].value, "v=DKIM1; k=rsa; p=AB");
        assert_eq!(tag("v=spf1 mx -all"), "v=spf1");
        assert_eq!(tag("v=DMARC1; p=none"), "v=DMARC1");
    }
}
