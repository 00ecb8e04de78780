//! [`ContainmentStore`] for PostgreSQL: signals, the evidence the score reads, suspensions and
//! the held part of the queue; the same behaviour as `sqlite::containment` (held to it by
//! `crate::role_tests`). A suspension made on one node holds the account's queued mail for
//! every node: holding is a column of the shared queue.

use std::collections::BTreeMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::{PgStore, quota, release_blobs};
use crate::containment::{Evidence, NewNetwork, Signal, Suspended, Suspension, SuspensionScope, login_network};
use crate::quota::BUCKET;
use crate::{AccountId, ContainmentStore, Result};

fn suspension_from_row(account: &str, r: &Row) -> Option<Suspension> {
    let scope: Option<String> = r.get(0);
    scope.map(|s| Suspension {
        account: account.to_string(),
        scope: SuspensionScope::parse(&s),
        reason: r.get(1),
        automatic: r.get(2),
        since: r.get(3),
    })
}

/// The account's suspension, if any, and when it was last resumed.
async fn state(client: &impl GenericClient, account: &str) -> Result<(Option<Suspension>, i64)> {
    let row = client
        .query_opt("SELECT scope, reason, automatic, since, resumed FROM sending_state WHERE account = $1", &[&account])
        .await?;
    Ok(match row {
        Some(r) => (suspension_from_row(account, &r), r.get(4)),
        None => (None, 0),
    })
}

/// The first network the account logged in from within the window, when it had logged in
/// from another one before, and what it sent since (as `sqlite::containment::new_network`).
async fn new_network(client: &impl GenericClient, account: &str, since: i64) -> Result<Option<NewNetwork>> {
    let rows = client.query("SELECT net, first_seen FROM known_logins WHERE account = $1", &[&account]).await?;
    let mut first: BTreeMap<String, i64> = BTreeMap::new();
    for r in &rows {
        let (net, seen): (String, i64) = (r.get(0), r.get(1));
        let e = first.entry(login_network(&net)).or_insert(seen);
        *e = (*e).min(seen);
    }
    let oldest = first.values().copied().min();
    let found = first
        .into_iter()
        .filter(|&(_, seen)| seen >= since && oldest.is_some_and(|o| o < seen))
        .min_by_key(|&(_, seen)| seen);
    let Some((net, first_seen)) = found else { return Ok(None) };
    let messages_since: i64 = client
        .query_one(
            "SELECT coalesce(sum(messages), 0)::bigint FROM quota_counts WHERE scope = $1 AND bucket >= $2",
            &[&account, &first_seen.div_euclid(BUCKET)],
        )
        .await?
        .get(0);
    Ok(Some(NewNetwork { net, first_seen, messages_since: messages_since as u64 }))
}

async fn evidence(client: &impl GenericClient, account: &str, window_start: i64) -> Result<Evidence> {
    let (suspension, resumed) = state(client, account).await?;
    let since = window_start.max(resumed);
    let signals = client
        .query(
            "SELECT kind, sum(count)::bigint FROM account_signals WHERE account = $1 AND at >= $2 GROUP BY kind ORDER BY kind",
            &[&account, &since],
        )
        .await?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect();
    let external: i64 = client
        .query_one(
            "SELECT coalesce(sum(external), 0)::bigint FROM quota_counts WHERE scope = $1 AND bucket >= $2",
            &[&account, &since.div_euclid(BUCKET)],
        )
        .await?
        .get(0);
    let login_networks = client
        .query("SELECT net FROM known_logins WHERE account = $1 AND last_seen >= $2 ORDER BY net", &[&account, &since])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Evidence {
        since,
        signals,
        external_recipients: external as u64,
        distinct_external: quota::distinct_external(client, account, since.div_euclid(BUCKET)).await?,
        login_networks,
        new_network: new_network(client, account, since).await?,
        exempt: quota::exempt(client, account).await?,
        suspension,
    })
}

/// Ids of held queue entries: one by id, or all of an account's; locked until the transaction
/// ends, so a node delivering the queue cannot take one meanwhile.
async fn held_ids(txn: &Transaction<'_>, id: Option<&str>, account: Option<&str>) -> Result<Vec<String>> {
    let rows = match (id, account) {
        (Some(id), _) => txn.query("SELECT id FROM queue WHERE id = $1 AND held FOR UPDATE", &[&id]).await?,
        (None, Some(a)) => {
            txn.query(
                "SELECT id FROM queue WHERE account = $1 AND account <> '' AND held ORDER BY created, id FOR UPDATE",
                &[&a.to_lowercase()],
            )
            .await?
        }
        (None, None) => return Ok(Vec::new()),
    };
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[async_trait]
impl ContainmentStore for PgStore {
    async fn evidence(&self, account: &str, window_start: i64) -> Result<Evidence> {
        evidence(&self.conn().await?, &account.to_lowercase(), window_start).await
    }

    async fn record_signal(&self, signal: Signal, window_start: i64, now: i64) -> Result<Evidence> {
        let account = signal.account.to_lowercase();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        if !quota::exempt(&txn, &account).await? {
            txn.execute(
                "INSERT INTO account_signals (account, kind, count, detail, at) VALUES ($1, $2, $3, $4, $5)",
                &[&account, &signal.kind, &(signal.count as i64), &signal.detail, &now],
            )
            .await?;
        }
        let evidence = evidence(&txn, &account, window_start).await?;
        txn.commit().await?;
        Ok(evidence)
    }

    async fn suspend(&self, s: Suspension) -> Result<Suspended> {
        let account = s.account.to_lowercase();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        // The row locked, so that of two suspensions at once only the first is "new".
        let before =
            txn.query_opt("SELECT scope FROM sending_state WHERE account = $1 FOR UPDATE", &[&account]).await?;
        let newly = before.is_none_or(|r| r.get::<_, Option<String>>(0).is_none());
        txn.execute(
            "INSERT INTO sending_state (account, scope, reason, automatic, since) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account) DO UPDATE SET scope = excluded.scope, reason = excluded.reason, \
             automatic = excluded.automatic, \
             since = CASE WHEN sending_state.scope IS NULL THEN excluded.since ELSE sending_state.since END",
            &[&account, &s.scope.as_str(), &s.reason, &s.automatic, &s.since],
        )
        .await?;
        let held = txn.execute("UPDATE queue SET held = true WHERE account = $1 AND account <> '' AND NOT held", &[&account]).await?;
        txn.commit().await?;
        Ok(Suspended { newly, held })
    }

    async fn resume(&self, account: &str, now: i64) -> Result<Option<u64>> {
        let account = account.to_lowercase();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let n = txn
            .execute(
                "UPDATE sending_state SET scope = NULL, resumed = $2 WHERE account = $1 AND scope IS NOT NULL",
                &[&account, &now],
            )
            .await?;
        if n == 0 {
            return Ok(None);
        }
        // Its signals are forgotten outright: one recorded in the second of the resume would
        // otherwise still count.
        txn.execute("DELETE FROM account_signals WHERE account = $1", &[&account]).await?;
        let held: i64 = txn
            .query_one("SELECT count(*) FROM queue WHERE account = $1 AND account <> '' AND held", &[&account])
            .await?
            .get(0);
        txn.commit().await?;
        Ok(Some(held as u64))
    }

    async fn suspension(&self, account: &str) -> Result<Option<Suspension>> {
        Ok(state(&self.conn().await?, &account.to_lowercase()).await?.0)
    }

    async fn suspensions(&self) -> Result<Vec<Suspension>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT scope, reason, automatic, since, account FROM sending_state WHERE scope IS NOT NULL ORDER BY account",
                &[],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| suspension_from_row(&r.get::<_, String>(4), r)).collect())
    }

    async fn queue_release_held(&self, id: Option<&str>, account: Option<&str>, now: i64) -> Result<u64> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let ids = held_ids(&txn, id, account).await?;
        for id in &ids {
            txn.execute("UPDATE queue SET held = false WHERE id = $1", &[id]).await?;
            txn.execute("UPDATE queue_rcpts SET next_attempt = $2 WHERE queue_id = $1 AND state = 'pending'", &[id, &now])
                .await?;
        }
        txn.commit().await?;
        Ok(ids.len() as u64)
    }

    async fn queue_delete_held(&self, account: &str) -> Result<u64> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let ids = held_ids(&txn, None, Some(account)).await?;
        for id in &ids {
            let blob: String = txn.query_one("DELETE FROM queue WHERE id = $1 RETURNING blob_id", &[id]).await?.get(0);
            release_blobs(&txn, &[(blob, 1)]).await?;
        }
        txn.commit().await?;
        Ok(ids.len() as u64)
    }

    async fn sent_bounced(&self, message_id: &str, rcpts: Vec<String>, accounts: Vec<AccountId>) -> Result<Vec<(String, u64)>> {
        let rcpts: Vec<String> = rcpts.iter().map(|r| r.to_lowercase()).collect();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let mut found = Vec::new();
        for id in accounts {
            let Some(row) = txn.query_opt("SELECT address FROM accounts WHERE id = $1", &[&id]).await? else { continue };
            let account: String = row.get(0);
            // Taken (deleted) as they are matched: the same report delivered twice, even to
            // two nodes at once, counts once.
            let taken = txn
                .execute(
                    "DELETE FROM sent_rcpts WHERE message_id = $1 AND rcpt = ANY($2) AND account = $3",
                    &[&message_id, &rcpts, &account],
                )
                .await?;
            if taken > 0 {
                found.push((account, taken));
            }
        }
        txn.commit().await?;
        Ok(found)
    }

    async fn signals_prune(&self, before: i64) -> Result<()> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        txn.execute("DELETE FROM account_signals WHERE at < $1", &[&before]).await?;
        txn.execute("DELETE FROM sent_rcpts WHERE at < $1", &[&before]).await?;
        txn.commit().await?;
        Ok(())
    }
}
