//! The containment score without I/O: the evidence about one account over the window in,
//! points per signal out. Each part is named and explained, for the log line, the suspension's
//! reason and the mail that tells the user.

use std::collections::BTreeSet;

use rampart_config::Containment;
use rampart_store::containment::{Evidence, login_network};

/// Signal kinds as the store keeps them.
pub const QUOTA_HIT: &str = "quota_hit";
pub const OUTBOUND_REFUSED: &str = "outbound_refused";
pub const REMOTE_REFUSED: &str = "remote_refused";

/// One reason for points.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// A stable name for logs (`bounces`, `quota_hit`, ...).
    pub name: &'static str,
    pub points: f64,
    /// What happened, in words.
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Score {
    pub total: f64,
    pub parts: Vec<Part>,
}

impl Score {
    fn add(&mut self, name: &'static str, points: f64, what: String) {
        if points > 0.0 {
            self.total += points;
            self.parts.push(Part { name, points, what });
        }
    }

    pub fn reaches(&self, c: &Containment) -> bool {
        self.total >= c.threshold
    }

    /// `name:points,...` for one log field.
    pub fn summary(&self) -> String {
        self.parts.iter().map(|p| format!("{}:{:.1}", p.name, p.points)).collect::<Vec<_>>().join(",")
    }

    /// The parts in words, one per line with a leading dash.
    pub fn explain(&self) -> String {
        self.parts.iter().map(|p| format!("- {} ({:+.1})\n", p.what, p.points)).collect()
    }
}

pub fn score(e: &Evidence, c: &Containment) -> Score {
    let mut s = Score::default();
    let hits = e.signal(QUOTA_HIT);
    s.add("quota_hit", hits as f64 * c.quota_hit, format!("{hits} submission(s) refused for a sending quota"));
    let refused = e.signal(OUTBOUND_REFUSED);
    s.add("outbound_refused", refused as f64 * c.outbound_refused, format!("{refused} message(s) refused as spam or malware"));
    let bounced = e.signal(REMOTE_REFUSED);
    // Refusals can only come from what was sent; the share never exceeds one.
    let sent = e.external_recipients.max(bounced);
    if bounced >= c.bounce_min.max(1) && bounced as f64 >= c.bounce_share * sent as f64 {
        s.add("bounces", c.bounces, format!("remote servers refused {bounced} of {sent} recipient(s)"));
    }
    if c.many_recipients_min > 0 && e.distinct_external >= c.many_recipients_min {
        s.add("many_recipients", c.many_recipients, format!("mail to {} different outside recipients", e.distinct_external));
    }
    let nets: BTreeSet<String> = e.login_networks.iter().map(|n| login_network(n)).collect();
    if c.login_networks_min > 0 && nets.len() as u64 >= c.login_networks_min {
        s.add("login_networks", c.login_networks, format!("logins from {} different networks", nets.len()));
    }
    if let Some(new) = &e.new_network
        && c.new_network_burst_min > 0
        && new.messages_since >= c.new_network_burst_min
    {
        let what = format!("{} message(s) right after a login from a new network ({})", new.messages_since, new.net);
        s.add("new_network_burst", c.new_network_burst, what);
    }
    s
}

#[cfg(test)]
mod tests {
    use rampart_store::containment::NewNetwork;

    use super::*;

    fn evidence(signals: &[(&str, u64)]) -> Evidence {
        Evidence { signals: signals.iter().map(|(k, n)| (k.to_string(), *n)).collect(), ..Evidence::default() }
    }

    #[test]
    fn quiet_accounts_score_nothing() {
        let c = Containment::default();
        // A hundred ordinary messages in a day: to a few dozen people, from one network.
        let e = Evidence {
            external_recipients: 100,
            distinct_external: 60,
            login_networks: vec!["192.0.2.10/32".into(), "192.0.2.11/32".into()],
            ..Evidence::default()
        };
        let s = score(&e, &c);
        assert_eq!((s.total, s.parts.len()), (0.0, 0), "{s:?}");
        assert!(!s.reaches(&c));
    }

    #[test]
    fn each_signal_has_its_points() {
        let c = Containment::default();
        let s = score(&evidence(&[(QUOTA_HIT, 9)]), &c);
        assert_eq!(s.total, 9.0);
        assert!(!s.reaches(&c), "nine quota refusals are not yet enough");
        assert!(score(&evidence(&[(QUOTA_HIT, 10)]), &c).reaches(&c));
        let s = score(&evidence(&[(OUTBOUND_REFUSED, 3)]), &c);
        assert_eq!((s.total, s.summary().as_str()), (12.0, "outbound_refused:12.0"));
        assert!(s.explain().contains("3 message(s) refused as spam or malware (+12.0)"));
    }

    #[test]
    fn bounces_need_a_count_and_a_share() {
        let c = Containment::default();
        let with = |bounced, sent| Evidence { external_recipients: sent, ..evidence(&[(REMOTE_REFUSED, bounced)]) };
        assert_eq!(score(&with(9, 9), &c).total, 0.0, "fewer than bounce_min");
        assert_eq!(score(&with(10, 30), &c).total, 0.0, "a third is below the share");
        assert_eq!(score(&with(10, 20), &c).total, 10.0);
        // Refusals of mail sent before the window still count against what it holds.
        let s = score(&with(12, 0), &c);
        assert!(s.reaches(&c));
        assert_eq!(s.parts[0].what, "remote servers refused 12 of 12 recipient(s)");
    }

    #[test]
    fn networks_and_bursts() {
        let c = Containment::default();
        let nets = |list: &[&str]| Evidence { login_networks: list.iter().map(|n| n.to_string()).collect(), ..Evidence::default() };
        // Four addresses in one /24 are one network.
        assert_eq!(score(&nets(&["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32", "192.0.2.4/32"]), &c).total, 0.0);
        let four = nets(&["192.0.2.1/32", "198.51.100.1/32", "203.0.113.1/32", "2001:db8::/64"]);
        assert_eq!(score(&four, &c).total, 5.0);
        let burst = |n| Evidence {
            new_network: Some(NewNetwork { net: "203.0.113.9/32".into(), first_seen: 0, messages_since: n }),
            ..Evidence::default()
        };
        assert_eq!(score(&burst(29), &c).total, 0.0);
        assert_eq!(score(&burst(30), &c).total, 8.0);
        let both = Evidence { login_networks: four.login_networks.clone(), ..burst(30) };
        assert!(score(&both, &c).reaches(&c), "two weaker signals together");
        let many = Evidence { distinct_external: 300, ..Evidence::default() };
        assert_eq!(score(&many, &c).parts[0].name, "many_recipients");
    }
}
