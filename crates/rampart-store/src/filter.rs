//! The content layer's memory: the classifier's token counts (per account and global) and
//! what greylisting remembers. The classifier and the greylisting policy themselves live above
//! the store; this role keeps their data consistent under concurrent sessions (each update is
//! one writer job).

use std::collections::HashMap;

use async_trait::async_trait;

use crate::{AccountId, Result};

/// Learnt messages (or messages containing a token) of each class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassCounts {
    pub spam: u32,
    pub ham: u32,
}

/// What the classifier needs to score one message: the messages learnt in a scope and the
/// counts of the message's tokens there (tokens never seen are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenStats {
    pub messages: ClassCounts,
    pub tokens: HashMap<u64, ClassCounts>,
}

/// Where the classifier learns and scores: one account's own counts, or everyone's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Global,
    Account(AccountId),
}

impl Scope {
    /// The scope column: an account id, 0 for global (account ids start at 1).
    pub fn key(self) -> i64 {
        match self {
            Scope::Global => 0,
            Scope::Account(id) => id,
        }
    }
}

/// One message to learn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lesson {
    /// The scopes to learn in (an account's and the global one, usually).
    pub scopes: Vec<Scope>,
    /// A stable fingerprint of the message, so learning it again as the same class does nothing
    /// and as the other class moves it.
    pub message: String,
    /// Its distinct tokens.
    pub tokens: Vec<u64>,
    pub spam: bool,
}

/// What greylisting asks about one message: the client's network, a triplet per recipient,
/// and the sender's domain when it authenticated (SPF or aligned DKIM pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreylistQuery {
    pub net: String,
    pub triplets: Vec<String>,
    pub authenticated_domain: Option<String>,
    pub now: i64,
    /// Seconds a new triplet waits before a retry is accepted.
    pub delay: i64,
    /// Seconds a waiting triplet is remembered.
    pub retry_window: i64,
    /// Seconds passed triplets, clients and domains are remembered after their last message.
    pub expire: i64,
    /// Messages with an authenticated sender after which its domain is exempt.
    pub good_history: u32,
}

/// Greylisting's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greylisting {
    /// Every triplet waited long enough (or was seen passing before).
    Passed,
    /// The client's network passed before: it retries, whatever the triplet.
    KnownClient,
    /// The sender's authenticated domain has a good history.
    GoodDomain,
    /// A new or too-early triplet: try again after this time (unix seconds).
    Deferred { retry_after: i64 },
}

#[async_trait]
pub trait FilterStore: Send + Sync + 'static {
    /// The counts the classifier needs for `tokens` in `scope`.
    async fn token_stats(&self, scope: Scope, tokens: Vec<u64>) -> Result<TokenStats>;
    /// Learns a message in each of its scopes; returns in how many scopes anything changed
    /// (0: already learnt as that class everywhere).
    async fn learn(&self, lesson: Lesson) -> Result<usize>;
    /// Messages learnt in `scope`.
    async fn learnt(&self, scope: Scope) -> Result<ClassCounts>;

    /// Greylisting for one message: looks up and records its triplets in one step.
    async fn greylist(&self, query: GreylistQuery) -> Result<Greylisting>;
    /// A message from `domain` (authenticated) was accepted: one more for its history.
    async fn greylist_good(&self, domain: &str, now: i64) -> Result<()>;
    /// Forgets what greylisting remembered longer than its windows.
    async fn greylist_prune(&self, now: i64, retry_window: i64, expire: i64) -> Result<()>;
}
