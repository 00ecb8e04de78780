//! `GET /api/v1/openapi.json`: the API described as OpenAPI 3.1, from one table of routes.

use axum::Json;
use serde_json::{Map, Value, json};

/// (method, path, who may call it, summary). `public`: no login; `session`: any logged-in
/// user (an admin without required TOTP only where noted); `admin`: an admin or an API token.
pub const ROUTES: &[(&str, &str, &str, &str)] = &[
    ("get", "/api/v1/openapi.json", "public", "This document"),
    ("post", "/api/v1/login", "public", "Log in: {username, password, totp?}; sets the session cookie, returns the CSRF token"),
    ("post", "/api/v1/logout", "session", "End this session"),
    ("post", "/api/v1/logout-all", "session", "End every session of this account"),
    ("get", "/api/v1/me", "session", "The logged-in account, its role, 2FA state and CSRF token"),
    ("post", "/api/v1/me/password", "session", "Change the password: {current, new}"),
    ("post", "/api/v1/me/totp", "session", "Start TOTP enrollment (allowed before enrolling): secret, otpauth URI, QR code; {password} when the login is over 5 minutes old (else 403 reauth_required)"),
    ("delete", "/api/v1/me/totp", "session", "Turn TOTP off: {password}"),
    ("post", "/api/v1/me/totp/confirm", "session", "Confirm TOTP with a code: {code}; returns 10 recovery codes once"),
    ("get", "/api/v1/me/totp/recovery-codes", "session", "How many recovery codes are left"),
    ("post", "/api/v1/me/totp/recovery-codes", "session", "New recovery codes in place of the old: {password}; shown once"),
    ("get", "/api/v1/me/app-passwords", "session", "App passwords (names and dates)"),
    ("post", "/api/v1/me/app-passwords", "session", "Create an app password for a mail client: {name, password (yours; required with per-user encryption, so that it opens your mail)}; shown once"),
    ("delete", "/api/v1/me/app-passwords/{name}", "session", "Revoke an app password"),
    ("get", "/api/v1/me/pgp", "session", "Your OpenPGP key: fingerprint, algorithms, dates, user IDs, options; null without one"),
    ("put", "/api/v1/me/pgp", "session", "Set your OpenPGP key: {key (armored), protect_subject, publish, search}; delivered mail is stored encrypted to it"),
    ("delete", "/api/v1/me/pgp", "session", "Remove your OpenPGP key: later mail is stored as received"),
    ("get", "/api/v1/me/encryption", "session", "Per-user encryption: {enabled, since, wraps, password_opens, unlocked, unconverted}"),
    ("post", "/api/v1/me/encryption", "session", "Turn per-user encryption on: {password}; the answer holds the recovery code, shown once"),
    ("post", "/api/v1/me/encryption/recover", "session", "After an administrator's reset: {password, recovery_code}; your password opens your mail again"),
    ("get", "/api/v1/me/quarantine", "session", "Messages held for me"),
    ("post", "/api/v1/me/quarantine/{id}/release", "session", "Release a held message into my INBOX"),
    ("get", "/api/v1/me/mobileconfig", "session", "Apple configuration profile for my account"),
    ("get", "/api/v1/me/logins", "session", "My login history: network, protocol (smtp, imap, web), first and last time"),
    ("get", "/api/v1/domains", "admin", "Local domains"),
    ("post", "/api/v1/domains", "admin", "Add a domain: {name}"),
    ("delete", "/api/v1/domains/{name}", "admin", "Remove a domain (no accounts or aliases left)"),
    ("get", "/api/v1/domains/{name}/dns", "admin", "The DNS records the domain needs, each checked live: ok, missing, wrong"),
    ("get", "/api/v1/users", "admin", "Accounts with role, 2FA state, suspension and sending quotas (use and limit of each)"),
    ("post", "/api/v1/users", "admin", "Add an account: {address, password, role?}"),
    ("get", "/api/v1/users/{address}", "admin", "One account"),
    ("delete", "/api/v1/users/{address}", "admin", "Delete an account with its mail"),
    ("put", "/api/v1/users/{address}/role", "admin", "Set the role: {role: admin|user}"),
    ("put", "/api/v1/users/{address}/suspended", "admin", "Suspend or restore: {suspended: bool}; suspended accounts cannot log in"),
    ("put", "/api/v1/users/{address}/password", "admin", "Set the password: {password}"),
    ("delete", "/api/v1/users/{address}/totp", "admin", "Turn the account's TOTP off"),
    ("delete", "/api/v1/users/{address}/sessions", "admin", "End the account's web sessions"),
    ("get", "/api/v1/users/{address}/logins", "admin", "The account's login history"),
    ("get", "/api/v1/users/{address}/app-passwords", "admin", "The account's app passwords"),
    ("post", "/api/v1/users/{address}/app-passwords", "admin", "Create an app password: {name}; shown once"),
    ("delete", "/api/v1/users/{address}/app-passwords/{name}", "admin", "Revoke an app password"),
    ("get", "/api/v1/users/{address}/encryption", "admin", "A user's per-user encryption state (never the mail: the server cannot read it)"),
    ("get", "/api/v1/users/{address}/pgp", "admin", "The account's OpenPGP key"),
    ("put", "/api/v1/users/{address}/pgp", "admin", "Set the OpenPGP key: {key (armored), protect_subject, publish, search}"),
    ("delete", "/api/v1/users/{address}/pgp", "admin", "Remove the OpenPGP key"),
    ("get", "/api/v1/aliases", "admin", "Aliases"),
    ("post", "/api/v1/aliases", "admin", "Add an alias: {alias, target}"),
    ("delete", "/api/v1/aliases/{alias}", "admin", "Remove an alias (or one ?target=)"),
    ("get", "/api/v1/quarantine", "admin", "Held messages (?user=)"),
    ("get", "/api/v1/quarantine/{id}", "admin", "One held message: its trail and header section"),
    ("post", "/api/v1/quarantine/{id}/release", "admin", "Release a held message (?user=)"),
    ("delete", "/api/v1/quarantine/{id}", "admin", "Delete a held message (?user=)"),
    ("get", "/api/v1/spam/stats", "admin", "What the classifier learnt (?user=)"),
    ("get", "/api/v1/bans", "admin", "Active bans"),
    ("post", "/api/v1/bans", "admin", "Ban an address or network: {net, seconds?, reason?}"),
    ("delete", "/api/v1/bans", "admin", "Lift a ban (?net=)"),
    ("get", "/api/v1/queue", "admin", "The outbound queue"),
    ("post", "/api/v1/queue/{id}/retry", "admin", "Try a queued message's pending recipients at the next run"),
    ("delete", "/api/v1/queue/{id}", "admin", "Drop a queued message without delivering or bouncing it"),
    ("get", "/api/v1/firewall", "admin", "The firewall rules in force: global and per listener"),
    ("get", "/api/v1/stats", "admin", "Hourly counts for the dashboard (?hours=, default 48): messages, refusals by reason, logins, bans"),
    ("get", "/api/v1/dkim", "admin", "DKIM keys and their record names (?domain=)"),
    ("get", "/api/v1/dmarc/reports", "admin", "DMARC aggregate reports received"),
    ("get", "/api/v1/messages", "admin", "Stored messages, newest first (?address=, since=, until= unix seconds, message_id=, limit=)"),
    ("get", "/api/v1/messages/{id}/why", "admin", "Why a stored message was accepted: its verdict trail"),
    ("get", "/api/v1/dashboard/certificates", "admin", "The listeners' certificates: expiry, days left, status (ok, expiring, expired, error)"),
    ("get", "/api/v1/certificates", "admin", "Certificates: names, issuer, validity, key type, source, where used (never keys)"),
    ("post", "/api/v1/certificates", "admin", "Import a certificate: {cert, key?} as PEM; without key it completes the matching CSR"),
    ("post", "/api/v1/certificates/self-signed", "admin", "Make a self-signed certificate: {names, key_type?, days?}"),
    ("post", "/api/v1/certificates/csr", "admin", "Make a key and a PKCS#10 request: {names, key_type?}; returns the request"),
    ("post", "/api/v1/certificates/acme", "admin", "Ask the server to order a certificate by ACME now: {names}"),
    ("get", "/api/v1/certificates/{id}", "admin", "One certificate (a pending CSR with its request)"),
    ("delete", "/api/v1/certificates/{id}", "admin", "Delete a certificate and its uses"),
    ("post", "/api/v1/certificates/{id}/uses", "admin", "Use a certificate: {usage: listener|host|smart-host, target}"),
    ("delete", "/api/v1/certificates/{id}/uses", "admin", "Stop using a certificate somewhere: {usage, target}"),
    ("get", "/api/v1/audit", "admin", "The last run of `rampart audit`'s checks (scope stats), made in the background at start and every web.audit_interval: {run, running, started, computed (unix seconds, null before the first run), failed, interval, findings: [{severity (high, medium, low), area, subject, problem, fix}], most severe first}; the open-relay test runs only from the CLI"),
    ("post", "/api/v1/audit", "admin", "Run the audit again now, in the background (scope stats): returns {run}; GET /api/v1/audit shows it done once its run is at least that"),
];

/// The statuses an operation answers besides 200 (see `crate::error`), each body `{error, message}`.
fn responses(method: &str, who: &str, has_params: bool) -> Value {
    let error = |text: &str| json!({ "description": format!("{text}: {{error, message}}") });
    let mut r = Map::new();
    r.insert("200".into(), json!({ "description": "OK (JSON)" }));
    r.insert("400".into(), error("Malformed input: a body that is not the JSON asked for, a bad name, address or value"));
    if who != "public" {
        r.insert("401".into(), error("Not logged in, or the session expired"));
        r.insert("403".into(), error("Not allowed: role, token scope, missing CSRF token, or 2FA enrollment required first"));
    }
    if has_params {
        r.insert("404".into(), error("No such thing"));
    }
    if method != "get" && who != "public" {
        r.insert("409".into(), error("Conflicts with what is there: already exists, still in use, the last administrator"));
    }
    r.insert("default".into(), error("Any other error"));
    Value::Object(r)
}

pub async fn document() -> Json<Value> {
    let mut paths = Map::new();
    for (method, path, who, summary) in ROUTES {
        let security = match *who {
            "public" => json!([]),
            "session" => json!([{ "session": [] }]),
            _ => json!([{ "session": [] }, { "token": [] }]),
        };
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let op = json!({
            "summary": summary,
            "security": security,
            "parameters": params,
            "responses": responses(method, who, !params.is_empty()),
        });
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    Json(json!({
        "openapi": "3.1.0",
        "info": { "title": "Rampart API", "version": "1" },
        "paths": paths,
        "components": { "securitySchemes": {
            "session": { "type": "apiKey", "in": "cookie", "name": crate::session::COOKIE,
                         "description": "State-changing requests also need the X-CSRF-Token header" },
            "token": { "type": "http", "scheme": "bearer", "description": "rampart api-token add --name NAME" },
        }},
    }))
}
