//! Loading, overrides and validation: every problem names its key path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn load(text: &str, sets: &[&str]) -> Result<Config, ConfigError> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::from_toml(text, &sets, Path::new("/etc/rampart"))
}

#[test]
fn empty_file_is_the_defaults_with_resolved_paths() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.server.data_dir, PathBuf::from("/etc/rampart/data"));
    assert_eq!(c.listener.submissions.tls, TlsMode::Implicit);
    assert_eq!(c.listener.submission.tls, TlsMode::Starttls);
}

#[test]
fn a_partial_listener_table_keeps_its_role_defaults() {
    let c = load("[listener.submissions]\nbind = [\"127.0.0.1:4650\"]\n", &[]).unwrap();
    assert_eq!(c.listener.submissions.tls, TlsMode::Implicit);
    assert_eq!(c.listener.submissions.bind, vec!["127.0.0.1:4650".parse().unwrap()]);
    assert_eq!(c.listener.submissions.max_recipients, 100);
}

#[test]
fn set_overrides_by_dotted_path() {
    let c = load(
        "",
        &[
            r#"listener.smtp.bind=["127.0.0.1:2525"]"#,
            "listener.smtp.max_recipients=5",
            "server.hostname=mx.example.org",
            r#"listener.smtp.idle_timeout="10s""#,
        ],
    )
    .unwrap();
    assert_eq!(c.listener.smtp.bind, vec!["127.0.0.1:2525".parse().unwrap()]);
    assert_eq!(c.listener.smtp.max_recipients, 5);
    assert_eq!(c.server.hostname, "mx.example.org");
    assert_eq!(c.listener.smtp.idle_timeout, Duration::from_secs(10));
}

#[test]
fn unknown_keys_and_bad_values_name_their_path() {
    let e = load("[listener.smtp]\nbnd = []\n", &[]).unwrap_err().to_string();
    assert!(e.starts_with("listener.smtp"), "{e}");
    assert!(e.contains("bnd"), "{e}");
    let e = load("[listener.imap]\ntls = \"maybe\"\n", &[]).unwrap_err().to_string();
    assert!(e.starts_with("listener.imap.tls"), "{e}");
    let e = load("", &["listener.smtp.max_errors=\"lots\""]).unwrap_err().to_string();
    assert!(e.starts_with("listener.smtp.max_errors"), "{e}");
    let e = load("", &["listener.smtp.bind=[\"nowhere\"]"]).unwrap_err().to_string();
    assert!(e.starts_with("listener.smtp.bind"), "{e}");
}

#[test]
fn override_syntax_errors() {
    assert!(load("", &["novalue"]).is_err());
    assert!(load("", &["a..b=1"]).is_err());
    assert!(load("", &["server.hostname.x=1"]).is_err());
    assert!(load("", &["listener.smtp.bind=[\"unterminated"]).is_err());
}

#[test]
fn validation_names_keys() {
    let mut c = load("", &[]).unwrap();
    c.server.hostname = "not a host".into();
    c.listener.smtp.max_command_line = 100;
    c.listener.submission.bind = c.listener.smtp.bind.clone();
    c.listener.imaps.max_literal_before_login = 1 << 30;
    let errors: Vec<String> = c.validate().iter().map(|e| e.to_string()).collect();
    assert!(errors.iter().any(|e| e.starts_with("server.hostname:")), "{errors:?}");
    assert!(errors.iter().any(|e| e.starts_with("tls.cert:")), "{errors:?}");
    assert!(errors.iter().any(|e| e.starts_with("listener.smtp.max_command_line:")), "{errors:?}");
    assert!(errors.iter().any(|e| e.starts_with("listener.submission.bind:")), "{errors:?}");
    assert!(errors.iter().any(|e| e.starts_with("listener.imaps.max_literal_before_login:")), "{errors:?}");
    let mut c = load("", &[r#"auth_checks.trusted_arc_sealers=["not a domain"]"#, "dmarc.report_address=nobody"]).unwrap();
    c.dmarc.report_interval = Duration::from_secs(1);
    let errors: Vec<String> = c.validate().iter().map(|e| e.to_string()).collect();
    for key in ["auth_checks.trusted_arc_sealers:", "dmarc.report_address:", "dmarc.report_interval:"] {
        assert!(errors.iter().any(|e| e.starts_with(key)), "{key} in {errors:?}");
    }
    let e = load("", &["auth_checks.spf_fail=maybe"]).unwrap_err().to_string();
    assert!(e.starts_with("auth_checks.spf_fail"), "{e}");
}

#[test]
fn hostnames() {
    assert!(is_hostname("mx.example.test"));
    assert!(is_hostname("localhost"));
    assert!(!is_hostname("-bad.example"));
    assert!(!is_hostname("a b"));
    assert!(!is_hostname(""));
}

/// The key paths `validate` names, for a config edited by `edit`.
fn problems(edit: impl FnOnce(&mut Config)) -> Vec<String> {
    let mut c = load("", &[]).unwrap();
    edit(&mut c);
    c.validate().iter().map(|e| e.to_string()).filter(|e| !e.starts_with("tls.")).collect()
}

fn keys(errors: &[String]) -> Vec<&str> {
    errors.iter().map(|e| e.split_once(": ").map_or(e.as_str(), |(k, _)| k)).collect()
}

#[test]
fn the_defaults_are_valid_but_for_missing_certificates() {
    assert_eq!(problems(|_| {}), Vec::<String>::new());
}

#[test]
fn each_zero_guard_duration_names_its_own_key() {
    // Was: every one of them reported as guard.handshake_timeout.
    assert_eq!(keys(&problems(|c| c.guard.failure_window = Duration::ZERO)), ["guard.failure_window"]);
    let errors = problems(|c| {
        c.guard.ban_time = Duration::ZERO;
        c.guard.max_ban_time = Duration::ZERO;
    });
    assert_eq!(keys(&errors), ["guard.ban_time"]);
    assert_eq!(keys(&problems(|c| c.guard.handshake_timeout = Duration::ZERO)), ["guard.handshake_timeout"]);
}

#[test]
fn argon2_problems_name_their_own_key() {
    // Was: all reported as auth.argon2_memory_kib.
    assert_eq!(keys(&problems(|c| c.auth.argon2_iterations = 0)), ["auth.argon2_iterations"]);
    assert_eq!(keys(&problems(|c| c.auth.argon2_parallelism = 0)), ["auth.argon2_parallelism"]);
    assert_eq!(keys(&problems(|c| c.auth.argon2_memory_kib = 4)), ["auth.argon2_memory_kib"]);
}

#[test]
fn per_domain_concurrency_names_its_own_key() {
    // Was: reported as queue.concurrency.
    assert_eq!(keys(&problems(|c| c.queue.per_domain_concurrency = 0)), ["queue.per_domain_concurrency"]);
    assert_eq!(keys(&problems(|c| c.queue.concurrency = 0)), ["queue.concurrency"]);
}

fn route(edit: impl FnOnce(&mut Route)) -> Route {
    let mut r = Route {
        domains: vec!["*".into()],
        host: Some("smtp.example.test".into()),
        port: None,
        tls: OutboundTls::default(),
        auth_username: None,
        auth_password: None,
        auth_password_file: None,
        client_cert: None,
        client_key: None,
    };
    edit(&mut r);
    r
}

#[test]
fn a_route_names_the_key_the_file_has() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("client.pem");
    std::fs::write(&pem, "").unwrap();
    // Was: a lone client_key reported as client_cert, a key the file does not have.
    let r = route(|r| r.client_key = Some(pem.clone()));
    assert_eq!(keys(&problems(|c| c.queue.route = vec![r])), ["queue.route[0].client_key"]);
    let r = route(|r| r.client_cert = Some(pem.clone()));
    assert_eq!(keys(&problems(|c| c.queue.route = vec![r])), ["queue.route[0].client_cert"]);
    // Was: reported as auth_password, which the file does not have.
    let r = route(|r| r.auth_username = Some("me".into()));
    assert_eq!(keys(&problems(|c| c.queue.route = vec![r])), ["queue.route[0].auth_username"]);
}

#[test]
fn an_address_key_is_quoted_in_its_path() {
    // Was: submission.allowed_senders.bob@example.org, which reads as three nested keys.
    let errors = problems(|c| {
        c.submission.allowed_senders.insert("bob@example.org".into(), vec!["nobody".into()]);
    });
    assert_eq!(keys(&errors), [r#"submission.allowed_senders."bob@example.org""#]);
    let e = load("[submission.allowed_senders]\n\"bob@example.org\" = \"x\"\n", &[]).unwrap_err().to_string();
    assert!(e.starts_with(r#"submission.allowed_senders."bob@example.org""#), "{e}");
}

#[test]
fn routes_and_sni_entries_are_named_by_index() {
    let e = load("", &[r#"queue.route=[{domains = ["*"]}, {domains = ["x"], tls = "never"}]"#]).unwrap_err().to_string();
    assert!(e.starts_with("queue.route[1].tls:"), "{e}");
}

#[test]
fn store_backend_is_sqlite_or_postgres() {
    assert_eq!(load("[store]\nbackend = \"sqlite\"\n", &[]).unwrap().store.backend, StoreBackend::Sqlite);
    let e = load("[store]\nbackend = \"postgresql\"\n", &[]).unwrap_err().to_string();
    assert!(e.starts_with("store.backend:") && e.contains("postgresql") && e.contains("sqlite"), "{e}");
    // "postgres" is a known backend, with its keys.
    let c = load("[store]\nbackend = \"postgres\"\nurl = \"postgres://rampart@db.test/rampart\"\nca_file = \"db-ca.pem\"\n", &[])
        .unwrap();
    assert_eq!((c.store.backend, c.store.pool_size), (StoreBackend::Postgres, 16));
    assert!(c.store.ca_file.is_absolute(), "relative to the config file: {:?}", c.store.ca_file);
    let errors = c.validate().iter().map(ToString::to_string).collect::<Vec<_>>();
    assert!(!errors.iter().any(|e| e.starts_with("store.backend:")), "{errors:?}");
    assert!(errors.iter().any(|e| e.starts_with("store.ca_file:")), "{errors:?}");
    let errors = load("[store]\nbackend = \"postgres\"\npool_size = 0\n", &[]).unwrap().validate();
    let errors = errors.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert!(keys(&errors).contains(&"store.url") && keys(&errors).contains(&"store.pool_size"), "{errors:?}");
    // The SQLite default is untouched by the new keys.
    assert!(load("", &[]).unwrap().validate().iter().all(|e| !e.to_string().starts_with("store.")));
}

#[test]
fn cluster_node_id_defaults_to_the_host_name_and_is_checked() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.cluster.node_id, "");
    let id = c.node_id();
    assert!(!id.is_empty() && !id.contains(char::is_whitespace), "{id:?}");
    let c = load("[cluster]\nnode_id = \"mx-2\"\n", &[]).unwrap();
    assert_eq!(c.node_id(), "mx-2");
    assert!(c.validate().iter().all(|e| !e.to_string().starts_with("cluster.")));
    let errors = load("", &["cluster.node_id=\"a node\""]).unwrap().validate();
    let errors = errors.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert!(keys(&errors).contains(&"cluster.node_id"), "{errors:?}");
}

#[test]
fn an_unknown_section_is_named() {
    let e = load("[bogus]\nx = 1\n", &[]).unwrap_err().to_string();
    assert!(e.starts_with("bogus:"), "{e}");
}
