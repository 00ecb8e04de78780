//! The JSON API under `/api/v1/`: what the pages use, and what automation uses with an API
//! token. [`account`] is a user's own account (self-service), [`admin`] the whole server.
//! Every route is listed in the OpenAPI document (`/api/v1/openapi.json`, [`crate::openapi`]).

mod account;
mod admin;
mod certs;
mod encryption;
mod pgp;
mod server;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::{Services, login, openapi};

pub fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/login", post(login::login))
        .route("/api/v1/logout", post(login::logout))
        .route("/api/v1/logout-all", post(login::logout_all))
        .route("/api/v1/me", get(login::me))
        .route("/api/v1/me/password", post(account::change_password))
        .route("/api/v1/me/totp", post(account::totp_begin).delete(account::totp_disable))
        .route("/api/v1/me/totp/confirm", post(account::totp_confirm))
        .route("/api/v1/me/totp/recovery-codes", get(account::recovery_codes_left).post(account::recovery_codes))
        .route("/api/v1/me/app-passwords", get(account::app_passwords).post(account::app_password_add))
        .route("/api/v1/me/app-passwords/{name}", delete(account::app_password_revoke))
        .route("/api/v1/me/quarantine", get(account::quarantine))
        .route("/api/v1/me/quarantine/{id}/release", post(account::quarantine_release))
        .route("/api/v1/me/mobileconfig", get(crate::autoconfig::mobileconfig))
        .route("/api/v1/me/logins", get(account::logins))
        .route("/api/v1/me/pgp", get(pgp::my_key).put(pgp::my_key_set).delete(pgp::my_key_remove))
        .route("/api/v1/me/encryption", get(encryption::my_status).post(encryption::my_enable))
        .route("/api/v1/me/encryption/recover", post(encryption::my_recover))
        .route("/api/v1/domains", get(admin::domains).post(admin::domain_add))
        .route("/api/v1/domains/{name}", delete(admin::domain_remove))
        .route("/api/v1/domains/{name}/dns", get(server::domain_dns))
        .route("/api/v1/users", get(admin::users).post(admin::user_add))
        .route("/api/v1/users/{address}", get(admin::user).delete(admin::user_remove))
        .route("/api/v1/users/{address}/role", put(admin::user_role))
        .route("/api/v1/users/{address}/suspended", put(admin::user_suspended))
        .route("/api/v1/users/{address}/password", put(admin::user_password))
        .route("/api/v1/users/{address}/totp", delete(admin::user_totp_disable))
        .route("/api/v1/users/{address}/sessions", delete(admin::user_logout))
        .route("/api/v1/users/{address}/logins", get(admin::user_logins))
        .route("/api/v1/users/{address}/app-passwords", get(admin::user_app_passwords).post(admin::user_app_password_add))
        .route("/api/v1/users/{address}/app-passwords/{name}", delete(admin::user_app_password_revoke))
        .route("/api/v1/users/{address}/pgp", get(pgp::user_key).put(pgp::user_key_set).delete(pgp::user_key_remove))
        .route("/api/v1/users/{address}/encryption", get(encryption::user_status))
        .route("/api/v1/aliases", get(admin::aliases).post(admin::alias_add))
        .route("/api/v1/aliases/{alias}", delete(admin::alias_remove))
        .route("/api/v1/quarantine", get(admin::quarantine))
        .route("/api/v1/quarantine/{id}", get(admin::quarantine_show).delete(admin::quarantine_delete))
        .route("/api/v1/quarantine/{id}/release", post(admin::quarantine_release))
        .route("/api/v1/spam/stats", get(admin::spam_stats))
        .route("/api/v1/bans", get(admin::bans).post(server::ban_add).delete(server::ban_remove))
        .route("/api/v1/queue", get(server::queue))
        .route("/api/v1/queue/{id}", delete(server::queue_delete))
        .route("/api/v1/queue/{id}/retry", post(server::queue_retry))
        .route("/api/v1/firewall", get(server::firewall))
        .route("/api/v1/stats", get(server::stats))
        .route("/api/v1/dkim", get(server::dkim))
        .route("/api/v1/dmarc/reports", get(server::dmarc_reports))
        .route("/api/v1/messages", get(server::message_search))
        .route("/api/v1/messages/{id}/why", get(server::message_why))
        .route("/api/v1/dashboard/certificates", get(crate::dashboard::certificates))
        .route("/api/v1/certificates", get(certs::list).post(certs::import))
        .route("/api/v1/certificates/self-signed", post(certs::self_signed))
        .route("/api/v1/certificates/csr", post(certs::csr))
        .route("/api/v1/certificates/acme", post(certs::acme))
        .route("/api/v1/certificates/{id}", get(certs::show).delete(certs::delete))
        .route("/api/v1/certificates/{id}/uses", post(certs::assign).delete(certs::unassign))
        .route("/api/v1/audit", get(crate::audit::report).post(crate::audit::rerun))
}

/// A held message as the API shows it.
fn held_json(h: &rampart_store::quarantine::Held) -> serde_json::Value {
    serde_json::json!({
        "id": h.id, "size": h.size, "created": h.created, "sender": h.sender, "subject": h.subject,
        "reason": h.reason, "score": h.score, "recipients": h.recipients,
    })
}

/// An account's login history, most recent first.
async fn logins_json(s: &Services, address: &str) -> Result<serde_json::Value, crate::error::ApiError> {
    let list: Vec<serde_json::Value> = s
        .store
        .login_history(address)
        .await?
        .iter()
        .map(|l| serde_json::json!({ "net": l.net, "proto": l.proto, "first": l.first_seen, "last": l.last_seen, "logins": l.logins }))
        .collect();
    Ok(serde_json::json!(list))
}

fn app_password_json(a: &rampart_store::AppPassword) -> serde_json::Value {
    serde_json::json!({ "name": a.name, "created": a.created, "last_used": a.last_used })
}

/// A new password after the policy accepted it: its secrets, or the policy's sentence.
fn checked_secrets(s: &Services, address: &str, password: &str) -> Result<rampart_store::Secrets, crate::error::ApiError> {
    use crate::error::ApiError;
    s.policy.check(password, address).map_err(|why| ApiError::BadRequest(format!("password refused: {why}")))?;
    s.auth.secrets(password).map_err(|_| ApiError::Internal)
}

/// A new app password: created, stored hashed, returned once.
async fn new_app_password(s: &Services, address: &str, name: &str) -> Result<String, crate::error::ApiError> {
    let password = rampart_auth::new_app_password();
    let hash = rampart_auth::hash_password(&password, s.auth.settings().hash).map_err(|_| crate::error::ApiError::Internal)?;
    s.store.add_app_password(address, name, &hash).await?;
    Ok(password)
}
