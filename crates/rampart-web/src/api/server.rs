//! Admin endpoints about the server rather than accounts: bans, the outbound queue, DKIM keys
//! and why a message was accepted. Each is a CLI command too (`rampart ban`, `queue list`,
//! `dkim list`, `message why`) over the same store and guard code.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use rampart_store::{MessageInfo, StoreError};
use tracing::info;

use crate::Services;
use crate::error::{ApiError, ApiResult, Body};
use crate::session::Admin;

/// Longest ban an administrator sets here: a year (the guard's own bans stop at max_ban_time).
const MAX_MANUAL_BAN: u64 = 365 * 24 * 3600;

#[derive(Deserialize)]
pub struct NewBan {
    net: String,
    /// Default: one day, as `rampart ban add`.
    seconds: Option<u64>,
    reason: Option<String>,
}

pub async fn ban_add(State(s): State<Arc<Services>>, Admin(c): Admin, Body(req): Body<NewBan>) -> ApiResult<Json<Value>> {
    c.scope("bans")?;
    let net = rampart_guard::parse_net(&req.net).map_err(ApiError::BadRequest)?;
    let seconds = req.seconds.unwrap_or(24 * 3600).clamp(1, MAX_MANUAL_BAN);
    let reason = req.reason.as_deref().unwrap_or("manual");
    if reason.is_empty() || reason.len() > 64 || !reason.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(ApiError::BadRequest("a reason is 1 to 64 letters, digits, _ and -".into()));
    }
    let ban = rampart_guard::ban_manually(s.store.as_ref(), net, Duration::from_secs(seconds), reason).await?;
    info!(event = "ban_added", proto = "web", net = %ban.net, until = %rampart_guard::fmt_time(ban.until), by = %c.who());
    Ok(Json(json!({ "net": ban.net, "until": ban.until, "offenses": ban.offenses })))
}

#[derive(Deserialize)]
pub struct Net {
    net: String,
}

/// `DELETE /api/v1/bans?net=NET`: lifts a ban and forgets its history.
pub async fn ban_remove(State(s): State<Arc<Services>>, Admin(c): Admin, Query(q): Query<Net>) -> ApiResult<Json<Value>> {
    c.scope("bans")?;
    let key = rampart_guard::parse_net(&q.net).map_err(ApiError::BadRequest)?.to_string();
    if !s.store.ban_remove(&key).await? {
        return Err(ApiError::NotFound);
    }
    info!(event = "ban_lifted", proto = "web", net = %key, by = %c.who());
    Ok(Json(json!({ "ok": true })))
}

pub async fn queue(State(s): State<Arc<Services>>, Admin(c): Admin) -> ApiResult<Json<Value>> {
    c.scope("queue")?;
    let list: Vec<Value> = s
        .store
        .queue_list()
        .await?
        .iter()
        .map(|e| {
            let rcpts: Vec<Value> = e
                .rcpts
                .iter()
                .map(|r| json!({ "rcpt": r.rcpt, "state": r.state.as_str(), "attempts": r.attempts,
                                 "next_attempt": r.next_attempt, "last_error": r.last_error }))
                .collect();
            json!({ "id": e.id, "sender": e.sender, "size": e.size, "created": e.created, "dsn": e.is_dsn, "rcpts": rcpts })
        })
        .collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
pub struct Domain {
    domain: Option<String>,
}

/// DKIM keys (public halves only) with their DNS record names.
pub async fn dkim(State(s): State<Arc<Services>>, Admin(c): Admin, Query(q): Query<Domain>) -> ApiResult<Json<Value>> {
    c.scope("domains")?;
    let domain = q.domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase());
    let list: Vec<Value> = s
        .store
        .dkim_keys(domain.as_deref())
        .await?
        .iter()
        .map(|k| json!({ "domain": k.domain, "selector": k.selector, "algorithm": k.algorithm, "active": k.active,
                         "record": format!("{}._domainkey.{}", k.selector, k.domain), "created": k.created }))
        .collect();
    Ok(Json(json!(list)))
}

/// Most messages one search returns.
const MAX_SEARCH: u32 = 500;

#[derive(Deserialize)]
pub struct Search {
    address: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<u32>,
    /// With or without the angle brackets.
    message_id: Option<String>,
}

/// A Message-ID search reads the header section of at most this many of the newest messages
/// that match the other criteria (Message-IDs are not indexed): narrow it by address or time
/// on a large server.
const MAX_SCAN: u32 = 5000;
/// How much of a message is read to find its Message-ID: header sections of real mail fit.
const HEADER_BYTES: usize = 64 * 1024;

/// The start of a message up to its blank line or `HEADER_BYTES` (each read returns at most
/// one piece: the prefix, then a chunk of the body).
async fn header_section(reader: &mut rampart_store::MessageReader) -> Result<Vec<u8>, StoreError> {
    let mut head = Vec::new();
    while head.len() < HEADER_BYTES && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if reader.read_at(head.len() as u64, HEADER_BYTES - head.len(), &mut head).await? == 0 {
            break;
        }
    }
    Ok(head)
}

/// The messages among `found` whose Message-ID is `wanted`, at most `limit`.
async fn with_message_id(s: &Services, found: Vec<MessageInfo>, wanted: &str, limit: u32) -> ApiResult<Vec<MessageInfo>> {
    let mut out = Vec::new();
    for m in found {
        let mut reader = match s.store.open_message(m.mailbox_id, m.uid).await {
            Ok(r) => r,
            // Expunged since the search: not a match.
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let head = header_section(&mut reader).await?;
        let parsed = mail_parser::MessageParser::default().parse_headers(&head[..]);
        if parsed.as_ref().and_then(|p| p.message_id()) == Some(wanted) {
            out.push(m);
            if out.len() >= limit as usize {
                break;
            }
        }
    }
    Ok(out)
}

/// The decision of a stored trail, if it has one.
fn verdict(trail: &str) -> Option<String> {
    rampart_pipeline::Trail::from_json(trail)?.find(rampart_pipeline::Stage::Decision).map(|d| d.detail.clone())
}

/// Stored messages by recipient account, time and Message-ID, newest first (`rampart message
/// search`).
pub async fn message_search(State(s): State<Arc<Services>>, Admin(c): Admin, Query(q): Query<Search>) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    let address = q.address.as_deref().map(str::trim).filter(|a| !a.is_empty());
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_SEARCH);
    let message_id = q.message_id.as_deref().map(|m| m.trim().trim_start_matches('<').trim_end_matches('>')).filter(|m| !m.is_empty());
    let (since, until) = (q.since.unwrap_or(0), q.until.unwrap_or(i64::MAX));
    let found = match message_id {
        Some(wanted) => with_message_id(&s, s.store.messages_search(address, since, until, MAX_SCAN).await?, wanted, limit).await?,
        None => s.store.messages_search(address, since, until, limit).await?,
    };
    let list: Vec<Value> = found
        .iter()
        .map(|m| json!({ "id": m.reference, "mailbox": m.mailbox, "uid": m.uid, "size": m.size, "received": m.internal_date,
                         "verdict": verdict(&m.trail) }))
        .collect();
    Ok(Json(json!(list)))
}

/// Why a stored message was accepted: its verdict trail (`rampart message why ID`).
pub async fn message_why(State(s): State<Arc<Services>>, Admin(c): Admin, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    let found = s.store.messages_by_reference(&id).await?;
    if found.is_empty() {
        return Err(ApiError::NotFound);
    }
    let list: Vec<Value> = found
        .iter()
        .map(|m| {
            let text = rampart_pipeline::Trail::from_json(&m.trail).map_or_else(|| m.trail.clone(), |t| t.render());
            json!({ "mailbox": m.mailbox, "uid": m.uid, "size": m.size, "received": m.internal_date,
                    "verdict": verdict(&m.trail), "trail": text })
        })
        .collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
pub struct Hours {
    hours: Option<i64>,
}

/// The dashboard's hourly counts for the last `hours` (default 48, at most a week): one array
/// per series, oldest hour first, and the hours themselves (unix seconds).
pub async fn stats(State(s): State<Arc<Services>>, Admin(c): Admin, Query(q): Query<Hours>) -> ApiResult<Json<Value>> {
    c.scope("stats")?;
    let hours = q.hours.unwrap_or(48).clamp(1, 7 * 24);
    let now = crate::now() / 3600;
    let first = now - hours + 1;
    let mut series: std::collections::BTreeMap<String, Vec<u64>> = std::collections::BTreeMap::new();
    for (hour, name, count) in s.store.stats_since(first).await? {
        if let Some(slot) = usize::try_from(hour - first).ok().filter(|i| *i < hours as usize) {
            series.entry(name).or_insert_with(|| vec![0; hours as usize])[slot] += count;
        }
    }
    let times: Vec<i64> = (first..=now).map(|h| h * 3600).collect();
    Ok(Json(json!({ "hours": times, "series": series })))
}

/// DMARC aggregate reports received about our domains (`rampart dmarc reports`).
pub async fn dmarc_reports(State(s): State<Arc<Services>>, Admin(c): Admin) -> ApiResult<Json<Value>> {
    c.scope("domains")?;
    let list: Vec<Value> = s
        .store
        .dmarc_reports()
        .await?
        .iter()
        .map(|r| json!({ "domain": r.domain, "org_name": r.org_name, "report_id": r.report_id, "begin": r.date_begin,
                         "end": r.date_end, "messages": r.messages, "passed": r.passed, "received": r.received }))
        .collect();
    Ok(Json(json!(list)))
}

/// The records a local domain needs, each looked up live: ok, missing, wrong (`rampart dns check`).
pub async fn domain_dns(State(s): State<Arc<Services>>, Admin(c): Admin, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.scope("domains")?;
    if !s.store.is_local_domain(&name).await? {
        return Err(ApiError::NotFound);
    }
    let records = s.dns.check(&name).await?;
    Ok(Json(json!(records)))
}

/// The firewall rules the running server applies (`rampart firewall list` shows the file's).
pub async fn firewall(State(s): State<Arc<Services>>, Admin(c): Admin) -> ApiResult<Json<Value>> {
    c.scope("bans")?;
    let list: Vec<Value> =
        s.guard.firewall_rules().into_iter().map(|(scope, kind, net)| json!({ "scope": scope, "kind": kind, "net": net })).collect();
    Ok(Json(json!(list)))
}

/// Tries a queued message's pending recipients at the next queue run (`rampart queue retry`).
pub async fn queue_retry(State(s): State<Arc<Services>>, Admin(c): Admin, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    c.scope("queue")?;
    s.store.queue_retry(&id).await?;
    info!(event = "queue_retry", proto = "web", id = %id, by = %c.who());
    Ok(Json(json!({ "ok": true })))
}

/// Drops a queued message without delivering or bouncing it (`rampart queue delete`).
pub async fn queue_delete(State(s): State<Arc<Services>>, Admin(c): Admin, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    c.scope("queue")?;
    s.store.queue_delete(&id).await?;
    info!(event = "queue_deleted", proto = "web", id = %id, by = %c.who());
    Ok(Json(json!({ "ok": true })))
}
