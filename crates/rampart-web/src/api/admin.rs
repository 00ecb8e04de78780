//! Admin endpoints: domains, users (roles, passwords, 2FA, sessions, app passwords), aliases,
//! the quarantine, classifier counts and bans. Each is a CLI command too and calls the same
//! store and auth code.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use rampart_store::Role;
use rampart_store::filter::Scope;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::info;

use super::{app_password_json, checked_secrets, held_json, logins_json, new_app_password};
use crate::Services;
use crate::error::{ApiError, ApiResult, Body};
use crate::session::Admin;

fn ok() -> Json<Value> {
    Json(json!({ "ok": true }))
}

pub async fn domains(State(s): State<Arc<Services>>, Admin(c): Admin) -> ApiResult<Json<Value>> {
    c.scope("domains")?;
    Ok(Json(json!(s.store.list_domains().await?)))
}

#[derive(Deserialize)]
pub struct NewDomain {
    name: String,
}

pub async fn domain_add(State(s): State<Arc<Services>>, Admin(c): Admin, Body(req): Body<NewDomain>) -> ApiResult<Json<Value>> {
    c.scope("domains")?;
    s.store.add_domain(&req.name).await?;
    info!(event = "domain_added", proto = "web", domain = %req.name.to_ascii_lowercase(), by = %c.who());
    Ok(ok())
}

pub async fn domain_remove(State(s): State<Arc<Services>>, Admin(c): Admin, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.scope("domains")?;
    s.store.remove_domain(&name).await?;
    info!(event = "domain_removed", proto = "web", domain = %name.to_ascii_lowercase(), by = %c.who());
    Ok(ok())
}

/// `suspended`: by the web's suspension (no credentials) or by `rampart user suspend` /
/// containment (logins and sending refused). `quota`: the sending quotas' use and limits.
async fn account_json(s: &Services, a: &rampart_store::WebAccount) -> ApiResult<Value> {
    let suspended = a.suspended || s.guard.login_suspended(&a.account.address).await;
    let quota = s.dashboard.quota(&a.account.address).await?;
    Ok(json!({ "address": a.account.address, "role": a.role.name(), "totp": a.totp, "suspended": suspended,
               "created": a.account.created, "quota": quota }))
}

pub async fn users(State(s): State<Arc<Services>>, Admin(c): Admin) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    let mut list = Vec::new();
    for a in s.store.web_accounts().await? {
        list.push(account_json(&s, &a).await?);
    }
    Ok(Json(json!(list)))
}

pub async fn user(State(s): State<Arc<Services>>, Admin(c): Admin, Path(address): Path<String>) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    let a = s.store.web_account(&address).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(account_json(&s, &a).await?))
}

#[derive(Deserialize)]
pub struct NewUser {
    address: String,
    password: String,
    #[serde(default)]
    role: Option<String>,
}

fn parse_role(role: &str) -> Result<Role, ApiError> {
    Role::parse(role).ok_or_else(|| ApiError::BadRequest(format!("`{role}` is not a role: admin or user")))
}

pub async fn user_add(State(s): State<Arc<Services>>, Admin(c): Admin, Body(req): Body<NewUser>) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    let role = req.role.as_deref().map(parse_role).transpose()?;
    if role == Some(Role::Admin) {
        c.full_admin()?;
    }
    let address = rampart_store::address::canonical(&req.address)?;
    let secrets = checked_secrets(&s, &address, &req.password)?;
    s.store.add_account_with(&address, &secrets).await?;
    if let Some(role) = role {
        s.store.set_role(&address, role).await?;
    }
    info!(event = "user_added", proto = "web", user = %address, by = %c.who());
    Ok(Json(json!({ "address": address })))
}

pub async fn user_remove(State(s): State<Arc<Services>>, Admin(c): Admin, Path(address): Path<String>) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    s.store.remove_account(&address).await?;
    info!(event = "user_removed", proto = "web", user = %address, by = %c.who());
    Ok(ok())
}

#[derive(Deserialize)]
pub struct SetRole {
    role: String,
}

pub async fn user_role(
    State(s): State<Arc<Services>>,
    Admin(c): Admin,
    Path(address): Path<String>,
    Body(req): Body<SetRole>,
) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    c.full_admin()?;
    let role = parse_role(&req.role)?;
    s.store.set_role(&address, role).await?;
    info!(event = "role_changed", proto = "web", user = %address, role = role.name(), by = %c.who());
    Ok(ok())
}

#[derive(Deserialize)]
pub struct Suspend {
    suspended: bool,
}

/// Suspends (no IMAP, SMTP or web login; its web sessions end) or restores an account.
pub async fn user_suspended(
    State(s): State<Arc<Services>>,
    Admin(c): Admin,
    Path(address): Path<String>,
    Body(req): Body<Suspend>,
) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    s.store.set_suspended(&address, req.suspended).await?;
    if req.suspended {
        // Ended, not just hidden: lifting the suspension must not revive them.
        s.store.sessions_remove(account_id(&s, &address).await?, None).await?;
    }
    info!(event = "account_suspended", proto = "web", user = %address, suspended = req.suspended, by = %c.who());
    Ok(ok())
}

#[derive(Deserialize)]
pub struct SetPassword {
    password: String,
}

pub async fn user_password(
    State(s): State<Arc<Services>>,
    Admin(c): Admin,
    Path(address): Path<String>,
    Body(req): Body<SetPassword>,
) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    let address = rampart_store::address::canonical(&address)?;
    admin_target_needs_full_admin(&s, &c, &address).await?;
    let secrets = checked_secrets(&s, &address, &req.password)?;
    s.store.set_secrets(&address, &secrets).await?;
    // A reset is what follows a compromise: whoever held a session loses it.
    let account = account_id(&s, &address).await?;
    s.store.sessions_remove(account, None).await?;
    info!(event = "password_changed", proto = "web", user = %address, by = %c.who());
    // Per-user encryption: the old password's wrap cannot be remade without the old
    // password; it goes, and the user's recovery code opens the mail again.
    if s.store.has_user_key(account).await? {
        s.store.remove_user_key_wrap(account, rampart_store::userkey::PASSWORD).await?;
        return Ok(Json(json!({ "ok": true, "per_user_encryption": "the mail needs the user's recovery code (rampart user encryption recover)" })));
    }
    Ok(ok())
}

/// Acting on an administrator's credentials takes full admin rights (see `Caller::full_admin`).
async fn admin_target_needs_full_admin(s: &Services, c: &crate::session::Caller, address: &str) -> Result<(), ApiError> {
    if s.store.web_account(address).await?.is_some_and(|a| a.role == Role::Admin) {
        c.full_admin()?;
    }
    Ok(())
}

async fn account_id(s: &Services, address: &str) -> Result<rampart_store::AccountId, ApiError> {
    Ok(s.store.account(address).await?.ok_or(ApiError::NotFound)?.id)
}

pub async fn user_totp_disable(
    State(s): State<Arc<Services>>,
    Admin(c): Admin,
    Path(address): Path<String>,
) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    admin_target_needs_full_admin(&s, &c, &address).await?;
    let id = account_id(&s, &address).await?;
    let removed = s.store.totp_remove(id).await?;
    s.store.sessions_remove(id, None).await?;
    info!(event = "totp_disabled", proto = "web", user = %address, by = %c.who());
    Ok(Json(json!({ "ok": removed })))
}

pub async fn user_logout(State(s): State<Arc<Services>>, Admin(c): Admin, Path(address): Path<String>) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    let n = s.store.sessions_remove(account_id(&s, &address).await?, None).await?;
    Ok(Json(json!({ "sessions": n })))
}

pub async fn user_logins(State(s): State<Arc<Services>>, Admin(c): Admin, Path(address): Path<String>) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    let address = rampart_store::address::canonical(&address)?;
    Ok(Json(logins_json(&s, &address).await?))
}

pub async fn user_app_passwords(
    State(s): State<Arc<Services>>,
    Admin(c): Admin,
    Path(address): Path<String>,
) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    let list: Vec<Value> = s.store.list_app_passwords(&address).await?.iter().map(app_password_json).collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
pub struct Name {
    name: String,
}

pub async fn user_app_password_add(
    State(s): State<Arc<Services>>,
    Admin(c): Admin,
    Path(address): Path<String>,
    Body(req): Body<Name>,
) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    let password = new_app_password(&s, &address, &req.name).await?;
    Ok(Json(json!({ "name": req.name.trim(), "password": password })))
}

pub async fn user_app_password_revoke(
    State(s): State<Arc<Services>>,
    Admin(c): Admin,
    Path((address, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    s.store.revoke_app_password(&address, &name).await?;
    Ok(ok())
}

pub async fn aliases(State(s): State<Arc<Services>>, Admin(c): Admin) -> ApiResult<Json<Value>> {
    c.scope("aliases")?;
    let list: Vec<Value> = s.store.list_aliases().await?.iter().map(|a| json!({ "alias": a.address, "target": a.target })).collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
pub struct NewAlias {
    alias: String,
    target: String,
}

pub async fn alias_add(State(s): State<Arc<Services>>, Admin(c): Admin, Body(req): Body<NewAlias>) -> ApiResult<Json<Value>> {
    c.scope("aliases")?;
    s.store.add_alias(&req.alias, &req.target).await?;
    info!(event = "alias_added", proto = "web", alias = %req.alias, target = %req.target, by = %c.who());
    Ok(ok())
}

#[derive(Deserialize)]
pub struct Target {
    target: Option<String>,
}

pub async fn alias_remove(
    State(s): State<Arc<Services>>,
    Admin(c): Admin,
    Path(alias): Path<String>,
    Query(q): Query<Target>,
) -> ApiResult<Json<Value>> {
    c.scope("aliases")?;
    s.store.remove_alias(&alias, q.target.as_deref()).await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub struct User {
    user: Option<String>,
}

async fn user_filter(s: &Services, user: Option<&str>) -> Result<Option<rampart_store::AccountId>, ApiError> {
    match user {
        Some(u) => Ok(Some(account_id(s, u).await?)),
        None => Ok(None),
    }
}

pub async fn quarantine(State(s): State<Arc<Services>>, Admin(c): Admin, Query(q): Query<User>) -> ApiResult<Json<Value>> {
    c.scope("quarantine")?;
    let account = user_filter(&s, q.user.as_deref()).await?;
    let list: Vec<Value> = s.store.held(account).await?.iter().map(held_json).collect();
    Ok(Json(json!(list)))
}

/// One held message: why it was held (its trail) and its header section (`rampart quarantine show`).
pub async fn quarantine_show(State(s): State<Arc<Services>>, Admin(c): Admin, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    c.scope("quarantine")?;
    let h = s.store.held_one(&id).await?.ok_or(ApiError::NotFound)?;
    let message = s.store.held_message(&id).await?;
    let end = message.windows(4).position(|w| w == b"\r\n\r\n").map_or(message.len(), |i| i + 2);
    let trail = rampart_pipeline::Trail::from_json(&h.trail).map_or_else(|| h.trail.clone(), |t| t.render());
    let mut body = held_json(&h);
    body["trail"] = json!(trail);
    body["headers"] = json!(String::from_utf8_lossy(&message[..end]));
    Ok(Json(body))
}

pub async fn quarantine_release(
    State(s): State<Arc<Services>>,
    Admin(c): Admin,
    Path(id): Path<String>,
    Query(q): Query<User>,
) -> ApiResult<Json<Value>> {
    c.scope("quarantine")?;
    let account = user_filter(&s, q.user.as_deref()).await?;
    let n = s.quarantine.release(&id, account).await?;
    info!(event = "quarantine_released", proto = "web", id = %id, by = %c.who(), mailboxes = n);
    Ok(Json(json!({ "released": n })))
}

pub async fn quarantine_delete(
    State(s): State<Arc<Services>>,
    Admin(c): Admin,
    Path(id): Path<String>,
    Query(q): Query<User>,
) -> ApiResult<Json<Value>> {
    c.scope("quarantine")?;
    let account = user_filter(&s, q.user.as_deref()).await?;
    if !s.store.delete_held(&id, account).await? {
        return Err(ApiError::NotFound);
    }
    Ok(ok())
}

/// What the classifier has learnt, globally or for one user (`rampart spam stats`).
pub async fn spam_stats(State(s): State<Arc<Services>>, Admin(c): Admin, Query(q): Query<User>) -> ApiResult<Json<Value>> {
    c.scope("spam")?;
    let scope = user_filter(&s, q.user.as_deref()).await?.map_or(Scope::Global, Scope::Account);
    let counts = s.store.learnt(scope).await?;
    Ok(Json(json!({ "spam": counts.spam, "ham": counts.ham })))
}

/// Active bans (`rampart ban list`).
pub async fn bans(State(s): State<Arc<Services>>, Admin(c): Admin) -> ApiResult<Json<Value>> {
    c.scope("bans")?;
    let now = crate::now();
    let list: Vec<Value> = s
        .store
        .bans()
        .await?
        .iter()
        .filter(|b| b.until > now)
        .map(|b| json!({ "net": b.net, "until": b.until, "reason": b.reason, "offenses": b.offenses }))
        .collect();
    Ok(Json(json!(list)))
}
