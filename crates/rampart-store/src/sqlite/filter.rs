//! [`FilterStore`] for SQLite: classifier counts and greylisting's memory.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::filter::{ClassCounts, FilterStore, GreylistQuery, Greylisting, Lesson, Scope, TokenStats};
use crate::Result;

/// Tokens asked per statement: SQLite's default limit on bound parameters is 32766, and
/// shorter statements are cached better.
const TOKENS_PER_QUERY: usize = 500;

fn totals(conn: &Connection, scope: i64) -> Result<ClassCounts> {
    let counts = conn
        .prepare_cached("SELECT spam, ham FROM bayes_totals WHERE scope = ?1")?
        .query_row([scope], |r| Ok(ClassCounts { spam: r.get(0)?, ham: r.get(1)? }))
        .optional()?;
    Ok(counts.unwrap_or_default())
}

fn token_stats(conn: &Connection, scope: i64, tokens: &[u64]) -> Result<TokenStats> {
    let mut stats = TokenStats { messages: totals(conn, scope)?, tokens: HashMap::new() };
    for chunk in tokens.chunks(TOKENS_PER_QUERY) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!("SELECT token, spam, ham FROM bayes_tokens WHERE scope = ? AND token IN ({marks})");
        let mut stmt = conn.prepare_cached(&sql)?;
        let args = std::iter::once(scope).chain(chunk.iter().map(|t| *t as i64));
        let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
            Ok((r.get::<_, i64>(0)? as u64, ClassCounts { spam: r.get(1)?, ham: r.get(2)? }))
        })?;
        for row in rows {
            let (token, counts) = row?;
            stats.tokens.insert(token, counts);
        }
    }
    Ok(stats)
}

/// Adds `delta` messages of the class to the scope's totals and to each token's counts.
fn count(conn: &Connection, scope: i64, tokens: &[u64], spam: bool, delta: i64) -> Result<()> {
    let (column, other) = if spam { ("spam", "ham") } else { ("ham", "spam") };
    conn.prepare_cached(&format!(
        "INSERT INTO bayes_totals (scope, {column}, {other}) VALUES (?1, MAX(?2, 0), 0) \
         ON CONFLICT (scope) DO UPDATE SET {column} = MAX({column} + ?2, 0)"
    ))?
    .execute(params![scope, delta])?;
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO bayes_tokens (scope, token, {column}, {other}) VALUES (?1, ?2, MAX(?3, 0), 0) \
         ON CONFLICT (scope, token) DO UPDATE SET {column} = MAX({column} + ?3, 0)"
    ))?;
    for t in tokens {
        stmt.execute(params![scope, *t as i64, delta])?;
    }
    // Tokens no message counts any more only take space.
    if delta < 0 {
        conn.prepare_cached("DELETE FROM bayes_tokens WHERE scope = ?1 AND spam = 0 AND ham = 0")?.execute([scope])?;
    }
    Ok(())
}

/// Learns `lesson` in one scope: nothing when it was learnt as this class, a move from the
/// other class when it was learnt as that. Returns whether anything changed.
fn learn_in(conn: &Connection, scope: i64, lesson: &Lesson) -> Result<bool> {
    let before: Option<bool> = conn
        .prepare_cached("SELECT spam FROM bayes_seen WHERE scope = ?1 AND message = ?2")?
        .query_row(params![scope, lesson.message], |r| r.get(0))
        .optional()?;
    match before {
        Some(was_spam) if was_spam == lesson.spam => return Ok(false),
        Some(was_spam) => count(conn, scope, &lesson.tokens, was_spam, -1)?,
        None => {}
    }
    count(conn, scope, &lesson.tokens, lesson.spam, 1)?;
    conn.prepare_cached(
        "INSERT INTO bayes_seen (scope, message, spam) VALUES (?1, ?2, ?3) \
         ON CONFLICT (scope, message) DO UPDATE SET spam = excluded.spam",
    )?
    .execute(params![scope, lesson.message, lesson.spam])?;
    Ok(true)
}

/// The greylisting decision, with its bookkeeping, in one transaction.
fn greylist(conn: &Connection, q: &GreylistQuery) -> Result<Greylisting> {
    let fresh = |last_seen: i64| q.now - last_seen <= q.expire;
    let client: Option<i64> =
        conn.prepare_cached("SELECT last_seen FROM greylist_clients WHERE net = ?1")?.query_row([&q.net], |r| r.get(0)).optional()?;
    if client.is_some_and(fresh) {
        conn.prepare_cached("UPDATE greylist_clients SET last_seen = ?2 WHERE net = ?1")?.execute(params![q.net, q.now])?;
        return Ok(Greylisting::KnownClient);
    }
    if let Some(domain) = &q.authenticated_domain {
        let good: Option<(u32, i64)> = conn
            .prepare_cached("SELECT good, last_seen FROM greylist_domains WHERE domain = ?1")?
            .query_row([domain], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if good.is_some_and(|(n, last)| n >= q.good_history && fresh(last)) {
            return Ok(Greylisting::GoodDomain);
        }
    }
    let mut retry_after = 0;
    for triplet in &q.triplets {
        let row: Option<(i64, bool, i64)> = conn
            .prepare_cached("SELECT first_seen, passed, last_seen FROM greylist WHERE triplet = ?1")?
            .query_row([triplet], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let ready = match row {
            Some((_, true, last)) if fresh(last) => true,
            Some((first, false, _)) if q.now - first <= q.retry_window => q.now - first >= q.delay,
            // New, or forgotten: the wait starts now.
            _ => {
                conn.prepare_cached(
                    "INSERT INTO greylist (triplet, first_seen, passed, last_seen) VALUES (?1, ?2, 0, ?2) \
                     ON CONFLICT (triplet) DO UPDATE SET first_seen = ?2, passed = 0, last_seen = ?2",
                )?
                .execute(params![triplet, q.now])?;
                retry_after = retry_after.max(q.now + q.delay);
                continue;
            }
        };
        if !ready {
            retry_after = retry_after.max(row.map_or(q.now, |(first, _, _)| first) + q.delay);
        }
    }
    if retry_after > 0 {
        return Ok(Greylisting::Deferred { retry_after });
    }
    for triplet in &q.triplets {
        conn.prepare_cached("UPDATE greylist SET passed = 1, last_seen = ?2 WHERE triplet = ?1")?.execute(params![triplet, q.now])?;
    }
    conn.prepare_cached(
        "INSERT INTO greylist_clients (net, last_seen) VALUES (?1, ?2) ON CONFLICT (net) DO UPDATE SET last_seen = ?2",
    )?
    .execute(params![q.net, q.now])?;
    Ok(Greylisting::Passed)
}

#[async_trait]
impl FilterStore for SqliteStore {
    async fn token_stats(&self, scope: Scope, tokens: Vec<u64>) -> Result<TokenStats> {
        self.read(move |conn| token_stats(conn, scope.key(), &tokens)).await
    }

    async fn learn(&self, lesson: Lesson) -> Result<usize> {
        self.write(move |conn, _| {
            let mut changed = 0;
            for scope in &lesson.scopes {
                changed += usize::from(learn_in(conn, scope.key(), &lesson)?);
            }
            Ok(changed)
        })
        .await
    }

    async fn learnt(&self, scope: Scope) -> Result<ClassCounts> {
        self.read(move |conn| totals(conn, scope.key())).await
    }

    async fn greylist(&self, query: GreylistQuery) -> Result<Greylisting> {
        self.write(move |conn, _| greylist(conn, &query)).await
    }

    async fn greylist_good(&self, domain: &str, now: i64) -> Result<()> {
        let domain = domain.to_string();
        self.write(move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO greylist_domains (domain, good, last_seen) VALUES (?1, 1, ?2) \
                 ON CONFLICT (domain) DO UPDATE SET good = good + 1, last_seen = ?2",
            )?
            .execute(params![domain, now])?;
            Ok(())
        })
        .await
    }

    async fn greylist_prune(&self, now: i64, retry_window: i64, expire: i64) -> Result<()> {
        self.write(move |conn, _| {
            conn.execute("DELETE FROM greylist WHERE (passed = 0 AND first_seen < ?1) OR last_seen < ?2", params![now - retry_window, now - expire])?;
            conn.execute("DELETE FROM greylist_clients WHERE last_seen < ?1", [now - expire])?;
            conn.execute("DELETE FROM greylist_domains WHERE last_seen < ?1", [now - expire])?;
            Ok(())
        })
        .await
    }
}
