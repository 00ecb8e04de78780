//! [`FilterStore`] for PostgreSQL: the classifier's token counts and greylisting's memory,
//! shared by every node (a message learnt or a client passed on one counts on all); the same
//! behaviour as `sqlite::filter` (held to it by `crate::role_tests`).
//!
//! Under concurrency: a message is claimed in `bayes_seen` with `INSERT … ON CONFLICT DO
//! NOTHING` (or its row locked) before its tokens are counted, so two nodes learning it at
//! once count it once; tokens are upserted in one statement each way, in ascending order, so
//! two lessons cannot deadlock on their rows.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};

use super::PgStore;
use crate::Result;
use crate::filter::{ClassCounts, FilterStore, GreylistQuery, Greylisting, Lesson, Scope, TokenStats};

fn counts(spam: i64, ham: i64) -> ClassCounts {
    ClassCounts { spam: spam as u32, ham: ham as u32 }
}

async fn totals(client: &impl GenericClient, scope: i64) -> Result<ClassCounts> {
    let stmt = client.prepare_cached("SELECT spam, ham FROM bayes_totals WHERE scope = $1").await?;
    let row = client.query_opt(&stmt, &[&scope]).await?;
    Ok(row.map(|r| counts(r.get(0), r.get(1))).unwrap_or_default())
}

/// Adds `delta` messages of the class to the scope's totals and to each token's counts
/// (`tokens` sorted and distinct).
async fn count(txn: &Transaction<'_>, scope: i64, tokens: &[i64], spam: bool, delta: i64) -> Result<()> {
    let (column, other) = if spam { ("spam", "ham") } else { ("ham", "spam") };
    txn.execute(
        &format!(
            "INSERT INTO bayes_totals (scope, {column}, {other}) VALUES ($1, greatest($2::bigint, 0), 0) \
             ON CONFLICT (scope) DO UPDATE SET {column} = greatest(bayes_totals.{column} + $2::bigint, 0)"
        ),
        &[&scope, &delta],
    )
    .await?;
    txn.execute(
        &format!(
            "INSERT INTO bayes_tokens (scope, token, {column}, {other}) \
             SELECT $1, t, greatest($3::bigint, 0), 0 FROM unnest($2::bigint[]) AS t ORDER BY t \
             ON CONFLICT (scope, token) DO UPDATE SET {column} = greatest(bayes_tokens.{column} + $3::bigint, 0)"
        ),
        &[&scope, &tokens, &delta],
    )
    .await?;
    // Tokens no message counts any more only take space.
    if delta < 0 {
        txn.execute("DELETE FROM bayes_tokens WHERE scope = $1 AND spam = 0 AND ham = 0", &[&scope]).await?;
    }
    Ok(())
}

/// Learns the lesson in one scope; whether anything changed.
async fn learn_in(txn: &Transaction<'_>, scope: i64, lesson: &Lesson, tokens: &[i64]) -> Result<bool> {
    let claimed = txn
        .execute(
            "INSERT INTO bayes_seen (scope, message, spam) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&scope, &lesson.message, &lesson.spam],
        )
        .await?;
    if claimed == 0 {
        let was_spam: bool = txn
            .query_one("SELECT spam FROM bayes_seen WHERE scope = $1 AND message = $2 FOR UPDATE", &[&scope, &lesson.message])
            .await?
            .get(0);
        if was_spam == lesson.spam {
            return Ok(false);
        }
        count(txn, scope, tokens, was_spam, -1).await?;
        txn.execute("UPDATE bayes_seen SET spam = $3 WHERE scope = $1 AND message = $2", &[&scope, &lesson.message, &lesson.spam])
            .await?;
    }
    count(txn, scope, tokens, lesson.spam, 1).await?;
    Ok(true)
}

/// Whether each triplet may pass now: the greatest time a deferred one may retry, or 0.
async fn triplets_ready(txn: &Transaction<'_>, q: &GreylistQuery) -> Result<i64> {
    let fresh = |last_seen: i64| q.now - last_seen <= q.expire;
    let mut retry_after = 0;
    for triplet in &q.triplets {
        let row = txn.query_opt("SELECT first_seen, passed, last_seen FROM greylist WHERE triplet = $1 FOR UPDATE", &[triplet]).await?;
        let row: Option<(i64, bool, i64)> = row.map(|r| (r.get(0), r.get(1), r.get(2)));
        let ready = match row {
            Some((_, true, last)) if fresh(last) => true,
            Some((first, false, _)) if q.now - first <= q.retry_window => q.now - first >= q.delay,
            // New, or forgotten: the wait starts now.
            _ => {
                txn.execute(
                    "INSERT INTO greylist (triplet, first_seen, passed, last_seen) VALUES ($1, $2, false, $2) \
                     ON CONFLICT (triplet) DO UPDATE SET first_seen = $2, passed = false, last_seen = $2",
                    &[triplet, &q.now],
                )
                .await?;
                retry_after = retry_after.max(q.now + q.delay);
                continue;
            }
        };
        if !ready {
            retry_after = retry_after.max(row.map_or(q.now, |(first, _, _)| first) + q.delay);
        }
    }
    Ok(retry_after)
}

/// The greylisting decision, with its bookkeeping, in one transaction.
async fn greylist(txn: &Transaction<'_>, q: &GreylistQuery) -> Result<Greylisting> {
    let fresh = |last_seen: i64| q.now - last_seen <= q.expire;
    let client = txn.query_opt("SELECT last_seen FROM greylist_clients WHERE net = $1", &[&q.net]).await?;
    if client.is_some_and(|r| fresh(r.get(0))) {
        txn.execute("UPDATE greylist_clients SET last_seen = $2 WHERE net = $1", &[&q.net, &q.now]).await?;
        return Ok(Greylisting::KnownClient);
    }
    if let Some(domain) = &q.authenticated_domain {
        let good = txn.query_opt("SELECT good, last_seen FROM greylist_domains WHERE domain = $1", &[domain]).await?;
        if good.is_some_and(|r| r.get::<_, i64>(0) >= i64::from(q.good_history) && fresh(r.get(1))) {
            return Ok(Greylisting::GoodDomain);
        }
    }
    let retry_after = triplets_ready(txn, q).await?;
    if retry_after > 0 {
        return Ok(Greylisting::Deferred { retry_after });
    }
    for triplet in &q.triplets {
        txn.execute("UPDATE greylist SET passed = true, last_seen = $2 WHERE triplet = $1", &[triplet, &q.now]).await?;
    }
    txn.execute(
        "INSERT INTO greylist_clients (net, last_seen) VALUES ($1, $2) ON CONFLICT (net) DO UPDATE SET last_seen = $2",
        &[&q.net, &q.now],
    )
    .await?;
    Ok(Greylisting::Passed)
}

#[async_trait]
impl FilterStore for PgStore {
    async fn token_stats(&self, scope: Scope, tokens: Vec<u64>) -> Result<TokenStats> {
        let conn = self.conn().await?;
        let scope = scope.key();
        // Tokens are u64 hashes kept as their i64 bit pattern, as in SQLite.
        let keys: Vec<i64> = tokens.iter().map(|t| *t as i64).collect();
        let stmt = conn.prepare_cached("SELECT token, spam, ham FROM bayes_tokens WHERE scope = $1 AND token = ANY($2)").await?;
        let rows = conn.query(&stmt, &[&scope, &keys]).await?;
        let tokens = rows.iter().map(|r| (r.get::<_, i64>(0) as u64, counts(r.get(1), r.get(2)))).collect::<HashMap<_, _>>();
        Ok(TokenStats { messages: totals(&conn, scope).await?, tokens })
    }

    async fn learn(&self, lesson: Lesson) -> Result<usize> {
        let mut tokens: Vec<i64> = lesson.tokens.iter().map(|t| *t as i64).collect();
        tokens.sort_unstable();
        tokens.dedup();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let mut changed = 0;
        for scope in &lesson.scopes {
            changed += usize::from(learn_in(&txn, scope.key(), &lesson, &tokens).await?);
        }
        txn.commit().await?;
        Ok(changed)
    }

    async fn learnt(&self, scope: Scope) -> Result<ClassCounts> {
        totals(&self.conn().await?, scope.key()).await
    }

    async fn greylist(&self, query: GreylistQuery) -> Result<Greylisting> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let answer = greylist(&txn, &query).await?;
        txn.commit().await?;
        Ok(answer)
    }

    async fn greylist_good(&self, domain: &str, now: i64) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO greylist_domains (domain, good, last_seen) VALUES ($1, 1, $2) \
                 ON CONFLICT (domain) DO UPDATE SET good = greylist_domains.good + 1, last_seen = $2",
                &[&domain, &now],
            )
            .await?;
        Ok(())
    }

    async fn greylist_prune(&self, now: i64, retry_window: i64, expire: i64) -> Result<()> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        txn.execute(
            "DELETE FROM greylist WHERE (NOT passed AND first_seen < $1) OR last_seen < $2",
            &[&(now - retry_window), &(now - expire)],
        )
        .await?;
        txn.execute("DELETE FROM greylist_clients WHERE last_seen < $1", &[&(now - expire)]).await?;
        txn.execute("DELETE FROM greylist_domains WHERE last_seen < $1", &[&(now - expire)]).await?;
        txn.commit().await?;
        Ok(())
    }
}
