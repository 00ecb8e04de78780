//! The runner over a real store against the scripted MX ([`crate::fake_mx`]): a backlog to one
//! domain goes over `per_domain_concurrency` connections, a server dropping reused connections
//! costs no deferral, and an unreachable destination defers the whole lane in one go.

use std::sync::Arc;
use std::time::Duration;

use rampart_pipeline::Reason;
use rampart_store::{QueueEntry, SqliteStore, Store};
use tokio::sync::Notify;

use super::{Generated, Runner, RunnerOptions, inject};
use crate::fake_mx::{FakeMx, Script, outbound_to};
use crate::outbound::Outbound;

struct Setup {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn queued(messages: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    for n in 0..messages {
        let id = format!("M{n}");
        let rcpts = [format!("r{n}@remote.test")];
        let message = format!("Subject: {n}\r\n\r\nbody\r\n").into_bytes();
        let g = Generated {
            id: &id,
            sender: "s@local.test",
            rcpts: &rcpts,
            message: &message,
            reason: Reason::DmarcReportSent,
            is_dsn: false,
        };
        let done = inject(store.as_ref(), "client.test", "+", &g)
            .await
            .unwrap();
        assert!(done.queued);
    }
    Setup { store, _dir: dir }
}

fn start(
    store: &Arc<dyn Store>,
    outbound: Outbound,
    per_domain: usize,
) -> tokio::task::JoinHandle<()> {
    let options = RunnerOptions {
        concurrency: 8,
        per_domain_concurrency: per_domain,
        retry_schedule: vec![Duration::from_secs(600)],
        expiry: Duration::from_secs(86400),
        recipient_delimiter: "+".into(),
        sending: None,
    };
    let runner = Runner::new(
        store.clone(),
        Arc::new(outbound),
        options,
        Arc::new(Notify::new()),
    );
    tokio::spawn(runner.run())
}

/// Waits until `done` holds for the queue's entries (10 s at most).
async fn until(store: &Arc<dyn Store>, done: impl Fn(&[QueueEntry]) -> bool) -> Vec<QueueEntry> {
    for _ in 0..1000 {
        let list = store.queue_list().await.unwrap();
        if done(&list) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the queue did not settle: {:?}",
        store.queue_list().await.unwrap()
    );
}

#[tokio::test]
async fn a_backlog_to_one_domain_reuses_its_connections() {
    let mx = FakeMx::start(Script {
        pipelining: true,
        ..Script::default()
    })
    .await;
    let s = queued(30).await;
    let runner = start(&s.store, outbound_to(&mx), 3);
    until(&s.store, |q| q.is_empty()).await;
    runner.abort();
    assert_eq!(mx.messages(), 30);
    assert!(
        mx.connections() <= 3,
        "{} connections for 30 messages",
        mx.connections()
    );
}

#[tokio::test]
async fn dropped_reused_connections_cost_no_deferral() {
    let mx = FakeMx::start(Script {
        pipelining: true,
        drop_after: Some(4),
        ..Script::default()
    })
    .await;
    let s = queued(20).await;
    let runner = start(&s.store, outbound_to(&mx), 2);
    // A deferral would wait the 10-minute retry schedule: an empty queue means none.
    until(&s.store, |q| q.is_empty()).await;
    runner.abort();
    assert_eq!(mx.messages(), 20);
    assert!(
        mx.connections() >= 5,
        "a connection carried more than the server allows"
    );
}

#[tokio::test]
async fn an_unreachable_domain_defers_every_waiting_message() {
    let mx = FakeMx::start(Script::default()).await;
    let mut outbound = outbound_to(&mx);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    outbound.routes[0].route.port = Some(port);
    let s = queued(6).await;
    let runner = start(&s.store, outbound, 3);
    let list = until(&s.store, |q| {
        q.iter().flat_map(|e| &e.rcpts).all(|r| r.attempts == 1)
    })
    .await;
    runner.abort();
    assert_eq!(list.len(), 6);
    let now = chrono::Utc::now().timestamp();
    for r in list.iter().flat_map(|e| &e.rcpts) {
        assert!(
            r.last_error.contains(&format!("127.0.0.1:{port}")),
            "{}",
            r.last_error
        );
        assert!(r.next_attempt > now + 500, "deferred on the retry schedule");
    }
}
