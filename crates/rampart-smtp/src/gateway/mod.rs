//! Gateway mode (`[[gateway.route]]`): domains whose mailboxes are on another server, the
//! downstream. This module answers the session's two questions about them:
//!
//! - is this recipient of a gateway domain known? ([`Route::verify`]: the static list, the
//!   recipients file, then the callout);
//! - is this client a downstream allowed to relay out? ([`Gateway::downstream`]: its address
//!   is in a route's `relay_from`).
//!
//! Delivery to the downstream is the queue's job: the binary turns each route into a queue
//! route (smart host = the downstream) placed before the `[[queue.route]]`s.

pub mod callout;
pub mod recipients;

use std::net::IpAddr;

use rampart_config::Cidr;
use rampart_store::address;

pub use callout::{Answer, Callout};
pub use recipients::{Patterns, RecipientsFile};

/// What a route knows about a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// Not a recipient of the downstream; why, for the trail.
    Unknown(String),
    /// Cannot tell now (callout without an answer, unreadable file); why.
    Unavailable(String),
}

/// One route at run time.
pub struct Route {
    /// Lowercase, without a trailing dot.
    domains: Vec<String>,
    relay_from: Vec<Cidr>,
    list: Patterns,
    file: Option<RecipientsFile>,
    callout: Option<Callout>,
}

impl Route {
    /// A route from its configuration; `callout` when `callout = true`.
    pub fn new(config: &rampart_config::GatewayRoute, callout: Option<Callout>) -> Route {
        Route {
            domains: config.domains.iter().map(|d| d.trim_end_matches('.').to_ascii_lowercase()).collect(),
            relay_from: config.relay_from.clone(),
            list: Patterns::parse(config.valid_recipients.iter().map(String::as_str)),
            file: config.recipients_file.clone().map(RecipientsFile::new),
            callout,
        }
    }

    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// Whether `domain` (any case, trailing dot or not) is the route's.
    pub fn has_domain(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Whether a downstream relaying out may use this envelope sender: `<>` (its bounces) or
    /// an address in the route's domains.
    pub fn may_send_as(&self, sender: &str) -> bool {
        sender.is_empty() || sender.rsplit_once('@').is_some_and(|(_, d)| self.has_domain(d))
    }

    /// Whether `address` (`local@domain`, domain in this route) is a recipient the downstream
    /// has: the list, then the file, then the callout. `delimiter` is the sub-address
    /// separator: `bob+tag@` is known when `bob@` is listed.
    pub async fn verify(&self, address: &str, delimiter: &str) -> Verdict {
        let lower = address.to_lowercase();
        let base = lower.rsplit_once('@').map(|(l, d)| format!("{}@{d}", address::strip_subaddress(l, delimiter))).filter(|b| *b != lower);
        if self.list.matches(&lower, base.as_deref()) {
            return Verdict::Valid;
        }
        let mut unreadable = None;
        if let Some(file) = &self.file {
            match file.current() {
                Ok(p) if p.matches(&lower, base.as_deref()) => return Verdict::Valid,
                Ok(_) => {}
                Err(e) => unreadable = Some(e),
            }
        }
        match (&self.callout, unreadable) {
            (Some(c), _) => match c.verify(address).await {
                Answer::Exists => Verdict::Valid,
                Answer::Unknown(why) => Verdict::Unknown(format!("callout: {why}")),
                Answer::Unavailable(why) => Verdict::Unavailable(format!("callout: {why}")),
            },
            (None, Some(e)) => Verdict::Unavailable(format!("recipients file: {e}")),
            (None, None) => Verdict::Unknown("not a known recipient".into()),
        }
    }
}

/// Every route, in configuration order.
#[derive(Default)]
pub struct Gateway {
    routes: Vec<Route>,
}

impl Gateway {
    pub fn new(routes: Vec<Route>) -> Gateway {
        Gateway { routes }
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route of a recipient domain.
    pub fn route_for(&self, domain: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.has_domain(domain))
    }

    /// Whether `address` is in a gateway domain.
    pub fn is_gateway_address(&self, address: &str) -> bool {
        address.rsplit_once('@').is_some_and(|(_, d)| self.route_for(d.trim_end_matches('>')).is_some())
    }

    /// The route whose `relay_from` holds `ip`: the client is that route's downstream.
    pub fn downstream(&self, ip: IpAddr) -> Option<usize> {
        self.routes.iter().position(|r| r.relay_from.iter().any(|c| c.contains(&ip)))
    }

    pub fn route(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> rampart_config::GatewayRoute {
        let text = format!("[[gateway.route]]\ndomains = [\"Corp.test.\", \"sub.corp.test\"]\ndownstream = \"127.0.0.1:25\"\n{extra}\n");
        let c = rampart_config::Config::from_toml(&text, &[], std::path::Path::new("/")).unwrap();
        c.gateway.route[0].clone()
    }

    #[tokio::test]
    async fn the_list_the_file_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rcpts");
        std::fs::write(&file, "filed@corp.test\n*@sub.corp.test\n").unwrap();
        let extra = format!("valid_recipients = [\"Bob@corp.test\"]\nrecipients_file = \"{}\"", file.display());
        let route = Route::new(&config(&extra), None);
        assert_eq!(route.verify("bob@corp.test", "+").await, Verdict::Valid);
        assert_eq!(route.verify("BOB+lists@Corp.test", "+").await, Verdict::Valid);
        assert_eq!(route.verify("filed@corp.test", "+").await, Verdict::Valid);
        assert_eq!(route.verify("anyone@sub.corp.test", "+").await, Verdict::Valid);
        assert!(matches!(route.verify("eve@corp.test", "+").await, Verdict::Unknown(_)));
        // No delimiter: a sub-address is an address of its own.
        assert!(matches!(route.verify("bob+lists@corp.test", "").await, Verdict::Unknown(_)));
        // A file that was never readable, and no callout to ask: no answer, not "unknown".
        let missing = Route::new(&config("recipients_file = \"/nonexistent/rcpts\""), None);
        assert!(matches!(missing.verify("eve@corp.test", "+").await, Verdict::Unavailable(_)));
    }

    #[test]
    fn routes_by_domain_and_by_client() {
        let relay = config("callout = true\nrelay_from = [\"10.0.0.0/24\", \"2001:db8::5\"]");
        let g = Gateway::new(vec![Route::new(&relay, None)]);
        assert!(g.route_for("CORP.TEST").is_some() && g.route_for("corp.test.").is_some());
        assert!(g.route_for("other.test").is_none() && g.route_for("xcorp.test").is_none());
        assert!(g.is_gateway_address("<a@sub.corp.test>") && !g.is_gateway_address("a@else.test"));
        assert_eq!(g.downstream("10.0.0.9".parse().unwrap()), Some(0));
        assert_eq!(g.downstream("::ffff:10.0.0.9".parse().unwrap()), Some(0));
        assert_eq!(g.downstream("2001:db8::5".parse().unwrap()), Some(0));
        assert_eq!(g.downstream("10.0.1.9".parse().unwrap()), None);
        let r = g.route(0).unwrap();
        assert!(r.may_send_as("") && r.may_send_as("ceo@Corp.test") && r.may_send_as("x@sub.corp.test"));
        assert!(!r.may_send_as("ceo@bank.test") && !r.may_send_as("ceo@corp.test.evil"));
        assert!(Gateway::default().is_empty());
    }
}
