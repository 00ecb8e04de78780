//! DNS blocklists (RFC 5782): client addresses (DNSBL, once per connection) and the domains a
//! message names (URIBL / DBL style, at the end of data). Each list answers with an entry:
//! listed (its score, or a refusal for a client list with `reject`), not listed, unused
//! (127.255.255.x: the list refuses our queries, as Spamhaus does for public resolvers and
//! unregistered users — never read as "listed"), or a DNS error (nothing is concluded).
//!
//! Answers come through [`Dns`], cached for their TTL, so a busy client or a domain named in
//! every message of a campaign is asked once.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use futures_util::future::join_all;

use crate::dns::Dns;
use crate::trail::{Entry, Outcome, Reason, Stage};

/// One configured list.
#[derive(Debug, Clone, PartialEq)]
pub struct List {
    pub zone: String,
    /// Added when listed and the answer has no score of its own in `codes`.
    pub score: f64,
    pub codes: BTreeMap<Ipv4Addr, f64>,
    /// A listed client is refused (client lists only).
    pub reject: bool,
}

/// The name to ask a client list about `ip` (RFC 5782 §2.1 and §2.4): IPv4 octets reversed,
/// IPv6 as 32 reversed nibbles.
pub fn client_query(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}.")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(64 + zone.len());
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            format!("{name}{zone}.")
        }
    }
}

/// What one list said about one name, before it becomes an entry.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    NotListed,
    /// The list's answer codes (127.0.0.x).
    Listed(Vec<Ipv4Addr>),
    /// 127.255.255.0/24: the list does not answer us (RFC 5782 §2.1 reserves 127.0.0.0/8 for
    /// answers; Spamhaus uses this range for "query refused").
    Unused(Ipv4Addr),
    Error,
}

async fn ask(dns: &Dns, name: &str) -> Answer {
    match dns.list_lookup(name).await {
        Err(_) => Answer::Error,
        Ok(None) => Answer::NotListed,
        Ok(Some(codes)) => {
            if let Some(refused) = codes.iter().find(|c| c.octets()[..3] == [127, 255, 255]) {
                return Answer::Unused(*refused);
            }
            // RFC 5782 §2.1: a listing is an address in 127.0.0.0/8; anything else is a
            // misconfigured or hijacked zone (wildcarded domain), not a listing.
            let listed: Vec<Ipv4Addr> = codes.into_iter().filter(|c| c.octets()[0] == 127).collect();
            if listed.is_empty() { Answer::NotListed } else { Answer::Listed(listed) }
        }
    }
}

impl List {
    /// The score of a listing: the highest score `codes` gives any answer, else `score`.
    fn listing_score(&self, codes: &[Ipv4Addr]) -> f64 {
        codes.iter().filter_map(|c| self.codes.get(c).copied()).reduce(f64::max).unwrap_or(self.score)
    }

    fn entry(&self, stage: Stage, subject: &str, answer: Answer, may_refuse: bool) -> Entry {
        let base = |result, reason| Entry::new(stage, result, reason).domain(self.zone.clone());
        let domain_list = stage == Stage::Domainbl;
        match answer {
            Answer::NotListed if domain_list => base(Outcome::Pass, Reason::DomainblNotListed),
            Answer::NotListed => base(Outcome::Pass, Reason::DnsblNotListed),
            Answer::Unused(code) => base(Outcome::None, Reason::DnsblUnused).detail(format!("{subject}: answered {code}")),
            Answer::Error => base(Outcome::TempError, Reason::DnsblDnsError).detail(subject.to_string()),
            Answer::Listed(_) if may_refuse && self.reject => base(Outcome::Fail, Reason::DnsblListed).detail(subject.to_string()),
            Answer::Listed(codes) => {
                let shown: Vec<String> = codes.iter().map(Ipv4Addr::to_string).collect();
                let reason = if domain_list { Reason::DomainblListed } else { Reason::DnsblListed };
                base(Outcome::Neutral, reason)
                    .detail(format!("{subject}: {}", shown.join(",")))
                    .score(self.listing_score(&codes))
            }
        }
    }
}

/// Asks every client list about `ip` at once. A listing on a list with `reject` is a failing
/// entry that `decide` refuses with 554 5.7.1 naming the list; on others it adds its score.
pub async fn check_client(dns: &Dns, lists: &[List], ip: IpAddr) -> Vec<Entry> {
    let asks = lists.iter().map(|l| async move {
        let answer = ask(dns, &client_query(ip, &l.zone)).await;
        l.entry(Stage::Dnsbl, &ip.to_string(), answer, true)
    });
    join_all(asks).await
}

/// Asks the domain lists about `domains` (registrable domains, deduplicated by the caller),
/// at most `max_lookups` questions in all. Only listings are kept as entries (one per domain
/// and list), plus one entry when the cap cut the work short: a message naming 40 clean
/// domains should not bury its trail in "not listed".
pub async fn check_domains(dns: &Dns, lists: &[List], domains: &[String], max_lookups: usize) -> Vec<Entry> {
    let mut questions = Vec::new();
    'outer: for domain in domains {
        for list in lists {
            if questions.len() >= max_lookups {
                break 'outer;
            }
            questions.push((domain.as_str(), list));
        }
    }
    let total = domains.len() * lists.len();
    let asks = questions.into_iter().map(|(domain, list)| async move {
        let name = format!("{}.{}.", domain.trim_end_matches('.'), list.zone.trim_end_matches('.'));
        let answer = ask(dns, &name).await;
        list.entry(Stage::Domainbl, domain, answer, false)
    });
    let mut entries: Vec<Entry> = join_all(asks).await.into_iter().filter(|e| e.reason == Reason::DomainblListed).collect();
    if total > max_lookups {
        tracing::info!(event = "domainbl_cap", domains = domains.len(), lists = lists.len(), asked = max_lookups);
        entries.push(
            Entry::new(Stage::Domainbl, Outcome::None, Reason::DomainblLookupCap)
                .detail(format!("{total} lookups needed, {max_lookups} made"))
                .limit(max_lookups as u64),
        );
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{Action, Policy, decide};
    use crate::trail::Trail;

    fn list(zone: &str, score: f64, reject: bool) -> List {
        List { zone: zone.into(), score, codes: BTreeMap::new(), reject }
    }

    #[test]
    fn query_names_follow_rfc_5782() {
        assert_eq!(client_query("192.0.2.99".parse().unwrap(), "bl.test"), "99.2.0.192.bl.test.");
        assert_eq!(
            client_query("2001:db8:1:2:3:4:567:89ab".parse().unwrap(), "bl.test."),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test."
        );
    }

    #[tokio::test]
    async fn client_lists() {
        let dns = Dns::offline();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let answer = |zone: &str, code: &str| dns.put_addresses(&client_query(ip, zone), &[code.parse().unwrap()]);
        answer("block.test", "127.0.0.2");
        answer("score.test", "127.0.0.4");
        answer("refused.test", "127.255.255.254");
        answer("hijacked.test", "198.51.100.1");
        let mut coded = list("score.test", 3.0, false);
        coded.codes.insert("127.0.0.4".parse().unwrap(), 1.5);
        let lists = [list("block.test", 3.0, true), coded, list("refused.test", 3.0, true), list("clean.test", 3.0, true), list("hijacked.test", 3.0, true)];
        let entries = check_client(&dns, &lists, ip).await;
        let got: Vec<(Outcome, Reason, Option<f64>)> = entries.iter().map(|e| (e.result, e.reason, e.score)).collect();
        assert_eq!(
            got,
            [
                (Outcome::Fail, Reason::DnsblListed, None),
                (Outcome::Neutral, Reason::DnsblListed, Some(1.5)),
                (Outcome::None, Reason::DnsblUnused, None),
                (Outcome::Pass, Reason::DnsblNotListed, None),
                (Outcome::Pass, Reason::DnsblNotListed, None),
            ]
        );
        let d = decide(&Trail(entries.clone()), &Policy::default());
        assert_eq!(d.action, Action::Reject);
        assert!(d.refusal.unwrap().text.contains("blocked using block.test"));
        // Without the reject list, the scoring list only adds its score.
        let d = decide(&Trail(entries[1..].to_vec()), &Policy::default());
        assert_eq!(d.action, Action::Accept);
    }

    #[tokio::test]
    async fn domain_lists_keep_listings_and_say_when_capped() {
        let dns = Dns::offline();
        dns.put_addresses("evil.example.dbl.test", &["127.0.1.2".parse().unwrap()]);
        let lists = [list("dbl.test", 5.0, false)];
        let domains = vec!["good.example".to_string(), "evil.example".to_string()];
        let entries = check_domains(&dns, &lists, &domains, 50).await;
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].reason, entries[0].score, entries[0].domain.as_deref()), (Reason::DomainblListed, Some(5.0), Some("dbl.test")));
        assert!(entries[0].detail.starts_with("evil.example"));
        let capped = check_domains(&dns, &lists, &domains, 1).await;
        assert_eq!(capped.len(), 1);
        assert_eq!(capped[0].reason, Reason::DomainblLookupCap);
    }
}
