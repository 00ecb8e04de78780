//! Recipient callouts: asking the downstream whether it would take a recipient, with a RCPT
//! probe from the null sender (`MAIL FROM:<>`, `RCPT TO:<address>`, `QUIT`; no DATA, so
//! nothing is delivered), and remembering its answers. A 2xx means the recipient exists, a
//! 5xx that it does not; anything else (4xx, no connection, a timeout, TLS required but not
//! offered) is no answer, which is never taken for "yes" and never cached.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_config::OutboundTls;
use tracing::info;

use crate::client::TlsClient;
use crate::dns::{self, Resolver};
use crate::outbound::{self, Peer};

/// Most answers remembered per route. Each entry is an address and a deadline (~100 bytes),
/// so the cap bounds the cache near 10 MB whatever addresses clients try.
const MAX_CACHED: usize = 100_000;

/// What the downstream said about a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Exists,
    /// Refused with a permanent error (its reply).
    Unknown(String),
    /// No answer to go by (why).
    Unavailable(String),
}

/// Answers remembered until their deadline: positive and negative ones for their own time.
#[derive(Debug)]
pub struct Cache {
    positive: Duration,
    negative: Duration,
    entries: Mutex<HashMap<String, (bool, Instant)>>,
}

impl Cache {
    pub fn new(positive: Duration, negative: Duration) -> Cache {
        Cache { positive, negative, entries: Mutex::new(HashMap::new()) }
    }

    /// The remembered answer for `key` (a lowercase address) at `now`, if still valid.
    pub fn get(&self, key: &str, now: Instant) -> Option<bool> {
        let mut entries = self.entries.lock().expect("callout cache lock");
        match entries.get(key) {
            Some(&(exists, until)) if now < until => Some(exists),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers an answer; a zero time means "do not remember".
    pub fn put(&self, key: &str, exists: bool, now: Instant) {
        let ttl = if exists { self.positive } else { self.negative };
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().expect("callout cache lock");
        if entries.len() >= MAX_CACHED && !entries.contains_key(key) {
            entries.retain(|_, (_, until)| now < *until);
            if entries.len() >= MAX_CACHED {
                // Still full of live answers: start over rather than grow (a flood of
                // addresses must not take the memory); the downstream is simply asked again.
                entries.clear();
            }
        }
        entries.insert(key.to_string(), (exists, now + ttl));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

/// How to reach a route's downstream for callouts.
pub struct Settings {
    /// Our name, for EHLO.
    pub hostname: String,
    pub host: String,
    pub port: u16,
    /// `Require` or `Opportunistic`, as the route's `tls`.
    pub policy: OutboundTls,
    /// Trust anchors and the route's client certificate.
    pub tls: TlsClient,
    pub resolver: Arc<Resolver>,
    /// The whole probe: connect, TLS, MAIL and RCPT.
    pub timeout: Duration,
    pub cache_positive: Duration,
    pub cache_negative: Duration,
}

/// A route's callout: the probe and its cache.
pub struct Callout {
    settings: Settings,
    cache: Cache,
}

impl Callout {
    pub fn new(settings: Settings) -> Callout {
        let cache = Cache::new(settings.cache_positive, settings.cache_negative);
        Callout { settings, cache }
    }

    /// The downstream's answer for `address`, from the cache or a probe.
    pub async fn verify(&self, address: &str) -> Answer {
        let key = address.to_lowercase();
        match self.cache.get(&key, Instant::now()) {
            Some(true) => return Answer::Exists,
            Some(false) => return Answer::Unknown("refused by the downstream (cached)".into()),
            None => {}
        }
        let answer = match tokio::time::timeout(self.settings.timeout, self.probe(address)).await {
            Ok(answer) => answer,
            Err(_) => Answer::Unavailable(format!("no answer within {}s", self.settings.timeout.as_secs())),
        };
        match &answer {
            Answer::Exists => self.cache.put(&key, true, Instant::now()),
            Answer::Unknown(_) => self.cache.put(&key, false, Instant::now()),
            Answer::Unavailable(_) => {}
        }
        let (result, detail) = match &answer {
            Answer::Exists => ("exists", ""),
            Answer::Unknown(why) => ("unknown", why.as_str()),
            Answer::Unavailable(why) => ("unavailable", why.as_str()),
        };
        info!(event = "gateway_callout", rcpt = %address, host = %self.settings.host, result, detail = %detail);
        answer
    }

    /// Asks each address of the downstream in turn until one answers.
    async fn probe(&self, address: &str) -> Answer {
        let s = &self.settings;
        let ips = match dns::addresses(&s.resolver, &s.host).await {
            Ok(ips) => ips,
            Err(e) => return Answer::Unavailable(e),
        };
        let mut last = Answer::Unavailable(format!("no address for {}", s.host));
        for ip in ips {
            last = self.probe_at(SocketAddr::new(ip, s.port), address).await;
            if !matches!(last, Answer::Unavailable(_)) {
                break;
            }
        }
        last
    }

    async fn probe_at(&self, addr: SocketAddr, address: &str) -> Answer {
        let s = &self.settings;
        let peer = Peer { hostname: &s.hostname, tls: &s.tls, policy: s.policy, host: &s.host, addr };
        let (mut c, _) = match outbound::open(&peer, s.timeout, s.timeout).await {
            Ok(opened) => opened,
            Err(e) => return Answer::Unavailable(format!("[{addr}]: {}", e.0)),
        };
        let answer = match c.command("MAIL FROM:<>").await {
            Ok(r) if r.is_positive() => match c.command(&format!("RCPT TO:<{address}>")).await {
                Ok(r) if r.is_positive() => Answer::Exists,
                Ok(r) if !r.is_transient() => Answer::Unknown(r.text()),
                Ok(r) => Answer::Unavailable(r.text()),
                Err(e) => Answer::Unavailable(e.to_string()),
            },
            // A downstream that refuses the null sender cannot be asked; that says nothing
            // about the recipient.
            Ok(r) => Answer::Unavailable(format!("MAIL FROM:<> refused: {}", r.text())),
            Err(e) => Answer::Unavailable(e.to_string()),
        };
        c.quit().await;
        answer
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn answers_are_remembered_for_their_own_time() {
        let cache = Cache::new(Duration::from_secs(100), Duration::from_secs(10));
        let t0 = Instant::now();
        cache.put("yes@corp.test", true, t0);
        cache.put("no@corp.test", false, t0);
        assert_eq!(cache.get("yes@corp.test", t0 + Duration::from_secs(50)), Some(true));
        assert_eq!(cache.get("no@corp.test", t0 + Duration::from_secs(5)), Some(false));
        assert_eq!(cache.get("no@corp.test", t0 + Duration::from_secs(11)), None);
        assert_eq!(cache.get("yes@corp.test", t0 + Duration::from_secs(101)), None);
        assert_eq!(cache.get("other@corp.test", t0), None);
        // Expired entries are dropped when read.
        assert_eq!(cache.len(), 0);
        let off = Cache::new(Duration::ZERO, Duration::from_secs(1));
        off.put("yes@corp.test", true, t0);
        assert_eq!(off.get("yes@corp.test", t0), None);
    }

    #[test]
    fn a_full_cache_drops_expired_answers_first() {
        let cache = Cache::new(Duration::from_secs(10), Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..MAX_CACHED {
            cache.put(&format!("{i}@corp.test"), i % 2 == 0, t0);
        }
        // The negative half has expired by now: making room keeps the positive half.
        let later = t0 + Duration::from_secs(2);
        cache.put("new@corp.test", true, later);
        assert_eq!(cache.len(), MAX_CACHED / 2 + 1);
        assert_eq!(cache.get("0@corp.test", later), Some(true));
        assert_eq!(cache.get("new@corp.test", later), Some(true));
    }

    /// A downstream that answers RCPT from `replies` (address → reply line), counting probes.
    async fn downstream(replies: Vec<(&'static str, &'static str)>) -> (u16, Arc<Mutex<u32>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let probes = Arc::new(Mutex::new(0));
        let count = probes.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                *count.lock().unwrap() += 1;
                let replies = replies.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = BufReader::new(r).lines();
                    w.write_all(b"220 downstream.test ESMTP\r\n").await.unwrap();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let reply = if upper.starts_with("EHLO") {
                            "250-downstream.test\r\n250 PIPELINING".to_string()
                        } else if upper.starts_with("RCPT") {
                            let rcpt = line[9..].trim_matches(['<', '>']).to_lowercase();
                            replies.iter().find(|(a, _)| *a == rcpt).map_or("550 5.1.1 no such user".into(), |(_, r)| r.to_string())
                        } else if upper.starts_with("QUIT") {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            "250 ok".to_string()
                        };
                        w.write_all(format!("{reply}\r\n").as_bytes()).await.unwrap();
                    }
                });
            }
        });
        (port, probes)
    }

    fn callout(port: u16, policy: OutboundTls) -> Callout {
        let roots = crate::outbound::root_store(None).unwrap();
        Callout::new(Settings {
            hostname: "gw.example.test".into(),
            host: "127.0.0.1".into(),
            port,
            policy,
            tls: TlsClient::new(roots).unwrap(),
            resolver: Arc::new(crate::dns::resolver(&["127.0.0.1:9".parse().unwrap()]).unwrap()),
            timeout: Duration::from_secs(5),
            cache_positive: Duration::from_secs(60),
            cache_negative: Duration::from_secs(60),
        })
    }

    #[tokio::test]
    async fn probes_ask_once_then_the_cache_answers() {
        let (port, probes) = downstream(vec![("carol@corp.test", "250 2.1.5 ok"), ("busy@corp.test", "451 4.3.0 later")]).await;
        let c = callout(port, OutboundTls::Opportunistic);
        assert_eq!(c.verify("Carol@corp.test").await, Answer::Exists);
        assert_eq!(c.verify("carol@CORP.test").await, Answer::Exists);
        assert!(matches!(c.verify("nobody@corp.test").await, Answer::Unknown(r) if r.contains("5.1.1")));
        assert!(matches!(c.verify("nobody@corp.test").await, Answer::Unknown(_)));
        assert_eq!(*probes.lock().unwrap(), 2);
        // A temporary refusal is no answer, and is asked again next time.
        assert!(matches!(c.verify("busy@corp.test").await, Answer::Unavailable(_)));
        assert!(matches!(c.verify("busy@corp.test").await, Answer::Unavailable(_)));
        assert_eq!(*probes.lock().unwrap(), 4);
    }

    #[tokio::test]
    async fn no_downstream_or_no_tls_is_no_answer() {
        let (port, _) = downstream(vec![("carol@corp.test", "250 ok")]).await;
        // TLS is required and this downstream offers no STARTTLS.
        let c = callout(port, OutboundTls::Require);
        assert!(matches!(c.verify("carol@corp.test").await, Answer::Unavailable(why) if why.contains("STARTTLS")));
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let c = callout(closed, OutboundTls::Opportunistic);
        assert!(matches!(c.verify("carol@corp.test").await, Answer::Unavailable(_)));
    }
}
