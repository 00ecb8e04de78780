//! Caches for mail-auth's parsed DNS records (SPF, DKIM keys, DMARC policies, addresses,
//! PTR names), kept for the records' TTLs. hickory already caches raw answers; these save
//! re-parsing the same SPF or DMARC record for every message from a busy sender.
//!
//! mail-auth asks a cache before its resolver, so the caches are also where answers are put
//! in ahead: [`crate::dns::Dns`] fills them, and offline DNS (tests) gives every question no
//! entry answers a fixed "no such record" instead of asking a resolver.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{DnsError, DnssecStatus, Error, MX, Parameters, RecordSet, ResolverCache, Txt};

/// Entries per cache; past it expired entries are dropped, and if that is not enough, all.
const MAX_ENTRIES: usize = 10_000;

pub struct TtlCache<K, V> {
    map: Mutex<HashMap<K, (V, Instant)>>,
    /// What a question with no entry gets: `None` sends it to the resolver (live DNS); offline
    /// DNS answers "no such record" here instead.
    unanswered: Option<V>,
}

impl<K, V> Default for TtlCache<K, V> {
    fn default() -> Self {
        TtlCache { map: Mutex::new(HashMap::new()), unanswered: None }
    }
}

impl<K, V> TtlCache<K, V> {
    fn answering(unanswered: V) -> Self {
        TtlCache { map: Mutex::new(HashMap::new()), unanswered: Some(unanswered) }
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for TtlCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.lock().expect("cache lock");
        let hit = map.get(name).filter(|(_, until)| *until > Instant::now()).map(|(v, _)| v.clone());
        hit.or_else(|| self.unanswered.clone())
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.lock().expect("cache lock").remove(name).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let now = Instant::now();
        if valid_until <= now {
            return;
        }
        let mut map = self.map.lock().expect("cache lock");
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (value, valid_until));
    }
}

pub type TxtCache = TtlCache<Box<str>, Txt>;
type MxCache = TtlCache<Box<str>, RecordSet<MX>>;
type V4Cache = TtlCache<Box<str>, RecordSet<Ipv4Addr>>;
type V6Cache = TtlCache<Box<str>, RecordSet<Ipv6Addr>>;
type PtrCache = TtlCache<IpAddr, RecordSet<Box<str>>>;

/// Parameters for a mail-auth check with every cache attached.
pub type Cached<'x, P> = Parameters<'x, P, TxtCache, MxCache, V4Cache, V6Cache, PtrCache>;

#[derive(Default)]
pub struct Caches {
    pub txt: TxtCache,
    pub mx: MxCache,
    pub v4: V4Cache,
    pub v6: V6Cache,
    pub ptr: PtrCache,
}

/// An answer as mail-auth's resolver returns it.
pub fn records<T>(items: Vec<T>) -> RecordSet<T> {
    RecordSet { rrset: items.into(), dnssec_status: DnssecStatus::Indeterminate }
}

/// The error mail-auth's resolver gives for NXDOMAIN.
pub fn not_found() -> Error {
    Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain))
}

impl Caches {
    /// Caches for offline DNS: a TXT question nobody answered gets NXDOMAIN, a PTR question an
    /// answer without names (no PTR). Address and MX questions still go to the resolver
    /// (which has no servers, so they fail): mail-auth's SPF `exists:` counts any cached
    /// address answer, even an empty one, as "the name exists".
    pub fn offline() -> Caches {
        Caches {
            txt: TtlCache::answering(Txt::Error(not_found())),
            ptr: TtlCache::answering(records(Vec::new())),
            ..Caches::default()
        }
    }

    pub fn params<'x, P>(&'x self, params: P) -> Cached<'x, P> {
        Parameters::new(params)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.v4)
            .with_ipv6_cache(&self.v6)
            .with_ptr_cache(&self.ptr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_expire_and_the_size_is_bounded() {
        let c: TtlCache<Box<str>, u32> = TtlCache::default();
        c.insert("a".into(), 1, Instant::now() + Duration::from_secs(60));
        c.insert("gone".into(), 2, Instant::now());
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("gone"), None);
        for i in 0..MAX_ENTRIES + 5 {
            c.insert(i.to_string().into(), 0, Instant::now() + Duration::from_secs(60));
        }
        assert!(c.map.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
