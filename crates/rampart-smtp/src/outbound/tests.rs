//! Sessions against the scripted MX ([`crate::fake_mx`]): one connection carries several
//! messages with RSET between them, and a connection that breaks says whether the server can
//! have the message (`Lost::Late`) or not (`Lost::Early`).

use std::time::Duration;

use super::*;
use crate::fake_mx::{FakeMx, Script, outbound_to};

const MESSAGE: &[u8] = b"Subject: hi\r\n\r\nhello\r\n";

async fn send(s: &mut Session, rcpts: &[&str]) -> Result<Vec<RcptResult>, Lost> {
    let rcpts: Vec<String> = rcpts.iter().map(|r| r.to_string()).collect();
    s.send(&Attempt { id: "T1", sender: "s@local.test", rcpts: &rcpts, message: MESSAGE, smtputf8: false }).await
}

fn delivered(results: &[RcptResult]) -> bool {
    results.iter().all(|r| matches!(r, RcptResult::Delivered { .. }))
}

#[tokio::test]
async fn one_connection_carries_several_messages() {
    for pipelining in [true, false] {
        let mx = FakeMx::start(Script { pipelining, ..Script::default() }).await;
        let out = outbound_to(&mx);
        let mut s = connect(&out, "remote.test", "T1", None).await.unwrap();
        for _ in 0..3 {
            assert!(delivered(&send(&mut s, &["a@remote.test", "b@remote.test"]).await.unwrap()));
        }
        assert_eq!(s.transactions, 3);
        assert!(s.reusable(100, Duration::from_secs(300)));
        assert!(!s.reusable(3, Duration::from_secs(300)), "used up");
        s.quit().await;
        assert_eq!(mx.connections(), 1);
        assert_eq!(mx.messages(), 3);
        let commands = mx.commands(0);
        // RSET opens every transaction after the first, and only those.
        assert_eq!(commands.iter().filter(|c| *c == "RSET").count(), 2, "{commands:?}");
        assert!(commands[1].starts_with("MAIL FROM:<s@local.test>"), "{commands:?}");
        assert_eq!(commands.last().unwrap(), "QUIT");
    }
}

#[tokio::test]
async fn refusals_leave_the_connection_usable() {
    let mx = FakeMx::start(Script { pipelining: true, ..Script::default() }).await;
    let out = outbound_to(&mx);
    let mut s = connect(&out, "remote.test", "T1", None).await.unwrap();
    let results = send(&mut s, &["refused@remote.test", "later@remote.test"]).await.unwrap();
    assert!(matches!(&results[0], RcptResult::Permanent { status, .. } if status == "5.1.1"), "{results:?}");
    assert!(matches!(&results[1], RcptResult::Temporary { .. }), "{results:?}");
    let results = send(&mut s, &["refused@remote.test", "a@remote.test"]).await.unwrap();
    assert!(matches!(&results[0], RcptResult::Permanent { .. }));
    assert!(matches!(&results[1], RcptResult::Delivered { reply } if reply.contains("queued")), "{results:?}");
    assert!(s.reusable(100, Duration::from_secs(300)));
    assert_eq!(mx.connections(), 1);
}

#[tokio::test]
async fn data_goes_with_the_envelope_and_an_unwanted_354_is_ended() {
    for data_without_recipients in [false, true] {
        let mx = FakeMx::start(Script { pipelining: true, data_without_recipients, ..Script::default() }).await;
        let out = outbound_to(&mx);
        let mut s = connect(&out, "remote.test", "T1", None).await.unwrap();
        let results = send(&mut s, &["refused@remote.test"]).await.unwrap();
        assert!(matches!(&results[0], RcptResult::Permanent { status, .. } if status == "5.1.1"), "{results:?}");
        // The connection still carries the next message; the refused one sent no content.
        assert!(delivered(&send(&mut s, &["a@remote.test"]).await.unwrap()));
        assert_eq!(mx.messages(), 1);
        let commands = mx.commands(0);
        let ended = commands.iter().filter(|c| c.starts_with("(refused: 0 lines")).count();
        assert_eq!(ended, usize::from(data_without_recipients), "{commands:?}");
        // DATA right after the RCPTs of each transaction, before any reply could be read.
        assert_eq!(commands.iter().filter(|c| *c == "DATA").count(), 2, "{commands:?}");
        let i = commands.iter().position(|c| c == "RCPT TO:<a@remote.test>").unwrap();
        assert_eq!(commands[i + 1], "DATA");
    }
}

#[tokio::test]
async fn a_reused_connection_the_server_dropped_lost_nothing() {
    for pipelining in [true, false] {
        let mx = FakeMx::start(Script { pipelining, drop_after: Some(1), ..Script::default() }).await;
        let out = outbound_to(&mx);
        let mut s = connect(&out, "remote.test", "T1", None).await.unwrap();
        assert!(delivered(&send(&mut s, &["a@remote.test"]).await.unwrap()));
        assert!(matches!(send(&mut s, &["a@remote.test"]).await, Err(Lost::Early(_))));
        assert!(!s.reusable(100, Duration::from_secs(300)), "a broken session is not used again");
        assert_eq!(mx.messages(), 1);
    }
}

#[tokio::test]
async fn a_connection_lost_after_the_message_may_have_delivered_it() {
    let mx = FakeMx::start(Script { pipelining: true, drop_after_data: true, ..Script::default() }).await;
    let out = outbound_to(&mx);
    let mut s = connect(&out, "remote.test", "T1", None).await.unwrap();
    assert!(matches!(send(&mut s, &["a@remote.test"]).await, Err(Lost::Late(_))));
    assert!(!s.reusable(100, Duration::from_secs(300)));
}

#[tokio::test]
async fn nobody_listening_is_a_temporary_failure_for_the_domain() {
    let mx = FakeMx::start(Script::default()).await;
    let mut out = outbound_to(&mx);
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    out.routes[0].route.port = Some(port);
    match connect(&out, "remote.test", "T1", None).await {
        Err(RcptResult::Temporary { reason }) => assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}
