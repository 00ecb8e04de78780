//! The milter session against small scripted filters written here (over TCP on 127.0.0.1 or a
//! Unix socket): each answers the commands it is sent as its script says, and records them, so
//! a test checks both what we sent and what we made of the answers.

use std::time::{Duration, Instant};

use rampart_config::{AppliesTo, Milter, OnError};
use rampart_external::milter::codec::{Actions, Command, Framer, MacroStage, OptNeg, Protocol, Reply, SymList};
use rampart_external::milter::{ErrorKind, Macros, MilterSession, Modification, Peer, SmtpReply, Stage, Step, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

/// Decides the replies to one command (none for a step negotiated as "no reply").
type Script = Box<dyn FnMut(&Command<'_>) -> Vec<Reply> + Send>;

/// What the filter received: each packet's code and data.
type Received = Vec<(u8, Vec<u8>)>;

fn optneg(actions: Actions, protocol: Protocol) -> OptNeg {
    OptNeg { version: 6, actions, protocol, symlists: Vec::new() }
}

fn cfg(address: String) -> Milter {
    Milter {
        name: "scripted".into(),
        address,
        stages: rampart_config::MILTER_STAGES.iter().map(|s| s.to_string()).collect(),
        on_error: OnError::Tempfail,
        applies_to: AppliesTo::Mx,
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
        eom_timeout: Duration::from_secs(5),
    }
}

/// A filter on 127.0.0.1 serving one connection; returns its config and what it received.
async fn filter(answer: OptNeg, script: Script) -> (Milter, JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        converse(stream, answer, script).await
    });
    (cfg(address), task)
}

/// Reads packets until QUIT or the end; answers OPTNEG, then each command by the script.
async fn converse<S: AsyncReadExt + AsyncWriteExt + Unpin>(mut s: S, answer: OptNeg, mut script: Script) -> Received {
    let mut framer = Framer::default();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = s.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return received;
        }
        framer.push(&buf[..n]);
        while let Some((code, data)) = framer.next_packet().unwrap() {
            received.push((code, data.clone()));
            let cmd = Command::decode(code, &data).unwrap();
            let replies = match cmd {
                Command::OptNeg { .. } => vec![Reply::OptNeg(answer.clone())],
                Command::Quit => return received,
                Command::Macros { .. } | Command::Abort => vec![],
                ref other => script(other),
            };
            let mut wire = Vec::new();
            for r in replies {
                r.encode(&mut wire).unwrap();
            }
            s.write_all(&wire).await.unwrap();
        }
    }
}

/// Continue to every command, accept at end of message.
fn continue_all() -> Script {
    Box::new(|_| vec![Reply::Continue])
}

fn decoded(received: &Received) -> Vec<Command<'_>> {
    received.iter().map(|(code, data)| Command::decode(*code, data).unwrap()).collect()
}

fn codes(received: &Received) -> String {
    received.iter().map(|(c, _)| *c as char).collect()
}

fn macros() -> Macros {
    let mut m = Macros::new();
    m.set("j", "mx.example.org").set("daemon_name", "smtp").set("client_addr", "192.0.2.7").set("i", "Q1");
    m.set("auth_authen", "alice");
    m
}

const PEER: &str = "192.0.2.7:40000";

/// Runs a conversation from connect to RCPT (one recipient), all answered with continue.
async fn up_to_rcpt(s: &mut MilterSession, m: &Macros) {
    assert_eq!(s.connect(m, "client.example", Peer::Inet(PEER.parse().unwrap())).await.unwrap(), Step::Continue);
    assert_eq!(s.helo(m, "client.example").await.unwrap(), Step::Continue);
    assert_eq!(s.mail(m, "<a@example.org>", &["SIZE=100"]).await.unwrap(), Step::Continue);
    assert_eq!(s.rcpt(m, "<b@example.net>", &[]).await.unwrap(), Step::Continue);
}

#[tokio::test]
async fn a_whole_message_goes_out_in_order_with_its_macros() {
    let script: Script = Box::new(|cmd| match cmd {
        Command::Eom => vec![Reply::Modify(Modification::AddHeader { name: "X-Scanned".into(), value: b"yes".to_vec() }), Reply::Continue],
        _ => vec![Reply::Continue],
    });
    let (cfg, server) = filter(optneg(Actions::ALL, Protocol(0)), script).await;
    // On a spawned task: the session's futures are Send, as the SMTP server needs.
    let client = tokio::spawn(async move {
        let mut s = MilterSession::open(&cfg).await.unwrap();
        let m = macros();
        up_to_rcpt(&mut s, &m).await;
        assert_eq!(s.data(&m).await.unwrap(), Step::Continue);
        let message = format!("Subject: hello\r\n\tworld\r\nFrom: <a@example.org>\r\n\r\n{}", "x".repeat(150_000));
        let (fields, body) = rampart_external::milter::content::split(message.as_bytes());
        for (name, value) in fields {
            assert_eq!(s.header(name, value).await.unwrap(), Step::Continue);
        }
        assert_eq!(s.eoh(&m).await.unwrap(), Step::Continue);
        assert_eq!(s.body(body).await.unwrap(), Step::Continue);
        let eom = s.eom(&m).await.unwrap();
        assert_eq!(eom.verdict, Verdict::Accept);
        assert_eq!(eom.modifications, vec![Modification::AddHeader { name: "X-Scanned".into(), value: b"yes".to_vec() }]);
        s.quit().await.unwrap();
    });
    client.await.unwrap();
    let got = server.await.unwrap();
    assert_eq!(codes(&got), "ODCHDMDRDTLLDNBBBDEQ");
    let cmds = decoded(&got);
    let pairs = |i: usize| match &cmds[i] {
        Command::Macros { pairs, .. } => pairs.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(pairs(1), vec![("j", "mx.example.org"), ("{daemon_name}", "smtp"), ("{client_addr}", "192.0.2.7")]);
    assert_eq!(cmds[2], Command::Connect { hostname: "client.example", peer: Peer::Inet(PEER.parse().unwrap()) });
    assert_eq!(pairs(4), vec![("i", "Q1"), ("{auth_authen}", "alice"), ("{mail_addr}", "a@example.org")]);
    assert_eq!(cmds[5], Command::Mail(vec!["<a@example.org>", "SIZE=100"]));
    assert_eq!(pairs(6), vec![("{rcpt_addr}", "b@example.net")]);
    assert_eq!(cmds[10], Command::Header { name: "Subject", value: b"hello\r\n\tworld" });
    assert_eq!(cmds[11], Command::Header { name: "From", value: b"<a@example.org>" });
    let body: Vec<usize> = cmds.iter().filter_map(|c| if let Command::Body(b) = c { Some(b.len()) } else { None }).collect();
    assert_eq!(body, vec![65535, 65535, 150_000 - 2 * 65535]);
    assert_eq!(pairs(17), vec![("i", "Q1")]);
}

#[tokio::test]
async fn a_reject_at_rcpt_refuses_only_that_recipient() {
    let script: Script = Box::new(|cmd| match cmd {
        Command::Rcpt(args) if args[0] == "<spamtrap@example.net>" => {
            vec![Reply::ReplyCode(SmtpReply { code: 550, lines: vec!["5.7.1 No such user".into()] })]
        }
        _ => vec![Reply::Continue],
    });
    let (cfg, server) = filter(optneg(Actions::ALL, Protocol(0)), script).await;
    let mut s = MilterSession::open(&cfg).await.unwrap();
    let m = Macros::new();
    up_to_rcpt(&mut s, &m).await;
    let refused = s.rcpt(&m, "<spamtrap@example.net>", &[]).await.unwrap();
    let want = SmtpReply { code: 550, lines: vec!["5.7.1 No such user".into()] };
    assert_eq!(refused, Step::Verdict(Verdict::Reject(Some(want))));
    assert_eq!(s.rcpt(&m, "<c@example.net>", &[]).await.unwrap(), Step::Continue);
    assert_eq!(s.data(&m).await.unwrap(), Step::Continue);
    assert_eq!(s.eom(&m).await.unwrap().verdict, Verdict::Accept);
    s.quit().await.unwrap();
    assert_eq!(codes(&server.await.unwrap()), "OCHDMDRDRDRTEQ");
}

/// A tempfail at MAIL ends the message with this filter: the rest is not sent, end of
/// message returns the verdict and the filter is told (abort); the next message starts afresh.
#[tokio::test]
async fn a_tempfail_at_mail_ends_the_message() {
    let mut first = true;
    let script: Script = Box::new(move |cmd| match cmd {
        Command::Mail(_) if first => {
            first = false;
            vec![Reply::Tempfail]
        }
        _ => vec![Reply::Continue],
    });
    let (cfg, server) = filter(optneg(Actions::ALL, Protocol(0)), script).await;
    let mut s = MilterSession::open(&cfg).await.unwrap();
    let m = Macros::new();
    s.connect(&m, "h", Peer::Unknown).await.unwrap();
    assert_eq!(s.mail(&m, "<a@example.org>", &[]).await.unwrap(), Step::Verdict(Verdict::Tempfail(None)));
    assert_eq!(s.rcpt(&m, "<b@example.net>", &[]).await.unwrap(), Step::Continue);
    assert_eq!(s.eom(&m).await.unwrap().verdict, Verdict::Tempfail(None));
    assert_eq!(s.mail(&m, "<a@example.org>", &[]).await.unwrap(), Step::Continue);
    assert_eq!(s.rcpt(&m, "<b@example.net>", &[]).await.unwrap(), Step::Continue);
    s.abort().await.unwrap();
    s.abort().await.unwrap();
    s.quit().await.unwrap();
    assert_eq!(codes(&server.await.unwrap()), "OCDMADMDRAQ");
}

#[tokio::test]
async fn every_modification_comes_back_in_order_and_progress_is_ignored() {
    let mods = vec![
        Modification::AddHeader { name: "X-Spam".into(), value: b"yes\r\n\tscore=12".to_vec() },
        Modification::ChangeHeader { index: 1, name: "Subject".into(), value: b"[SPAM] hello".to_vec() },
        Modification::InsertHeader { index: 0, name: "X-First".into(), value: b"1".to_vec() },
        Modification::ReplaceBody(b"new ".to_vec()),
        Modification::AddRcpt { rcpt: "<archive@example.org>".into(), args: None },
        Modification::ReplaceBody(b"body\r\n".to_vec()),
        Modification::AddRcpt { rcpt: "<audit@example.org>".into(), args: Some("NOTIFY=NEVER".into()) },
        Modification::DelRcpt("<b@example.net>".into()),
        Modification::ChangeFrom { from: "<bounces@example.org>".into(), args: None },
        Modification::Quarantine("held by policy".into()),
    ];
    let sent = mods.clone();
    let script: Script = Box::new(move |cmd| match cmd {
        Command::Eom => {
            let mut r: Vec<Reply> = sent.iter().cloned().map(Reply::Modify).collect();
            r.insert(3, Reply::Progress);
            r.push(Reply::Continue);
            r
        }
        _ => vec![Reply::Continue],
    });
    let (cfg, server) = filter(optneg(Actions::ALL, Protocol(0)), script).await;
    let mut s = MilterSession::open(&cfg).await.unwrap();
    let m = Macros::new();
    up_to_rcpt(&mut s, &m).await;
    s.data(&m).await.unwrap();
    s.eoh(&m).await.unwrap();
    s.body(b"old body\r\n").await.unwrap();
    let eom = s.eom(&m).await.unwrap();
    assert_eq!(eom.verdict, Verdict::Accept);
    let mut want: Vec<Modification> = mods.into_iter().filter(|m| !matches!(m, Modification::ReplaceBody(_))).collect();
    want.insert(3, Modification::ReplaceBody(b"new body\r\n".to_vec()));
    assert_eq!(eom.modifications, want);
    s.quit().await.unwrap();
    server.await.unwrap();
}

/// Discard, a reply code and a plain reject at end of message, over one connection.
#[tokio::test]
async fn discard_replycode_and_reject_at_end_of_message() {
    let mut n = 0;
    let script: Script = Box::new(move |cmd| match cmd {
        Command::Eom => {
            n += 1;
            match n {
                1 => vec![Reply::Discard],
                2 => vec![Reply::ReplyCode(SmtpReply { code: 451, lines: vec!["4.7.1 Try later".into(), "4.7.1 really".into()] })],
                _ => vec![Reply::Reject],
            }
        }
        _ => vec![Reply::Continue],
    });
    let (cfg, server) = filter(optneg(Actions::ALL, Protocol::NO_HELO), script).await;
    let mut s = MilterSession::open(&cfg).await.unwrap();
    let m = Macros::new();
    s.connect(&m, "h", Peer::Unix("/run/x")).await.unwrap();
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        s.mail(&m, "<>", &[]).await.unwrap();
        s.rcpt(&m, "<b@example.net>", &[]).await.unwrap();
        verdicts.push(s.eom(&m).await.unwrap().verdict);
    }
    let tempfail = SmtpReply { code: 451, lines: vec!["4.7.1 Try later".into(), "4.7.1 really".into()] };
    assert_eq!(verdicts, vec![Verdict::Discard, Verdict::Tempfail(Some(tempfail)), Verdict::Reject(None)]);
    s.quit().await.unwrap();
    assert_eq!(codes(&server.await.unwrap()), "OCDMDREDMDREDMDREQ");
}

/// A filter that reads but never answers end of message: a typed timeout after
/// `eom_timeout`, and the session refuses further use.
#[tokio::test]
async fn a_filter_that_hangs_times_out() {
    let script: Script = Box::new(|cmd| match cmd {
        Command::Eom => vec![],
        _ => vec![Reply::Continue],
    });
    let (mut cfg, _server) = filter(optneg(Actions::ALL, Protocol(0)), script).await;
    cfg.eom_timeout = Duration::from_millis(300);
    let mut s = MilterSession::open(&cfg).await.unwrap();
    let m = Macros::new();
    up_to_rcpt(&mut s, &m).await;
    let start = Instant::now();
    let e = s.eom(&m).await.unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Timeout(d) if d == Duration::from_millis(300)), "{e}");
    assert_eq!(e.stage, Stage::Eom);
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(e.to_string(), "milter scripted at eom: no answer within 300ms");
    let e = s.mail(&m, "<a@example.org>", &[]).await.unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Broken), "{e}");
}

/// A filter that never answers OPTNEG (the command timeout), and one that accepts the
/// connection and closes it.
#[tokio::test]
async fn silent_and_closing_filters_are_typed_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = cfg(listener.local_addr().unwrap().to_string());
    tokio::spawn(async move {
        let (mut held, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = held.read(&mut buf).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    c.command_timeout = Duration::from_millis(200);
    let e = MilterSession::open(&c).await.err().unwrap();
    assert!(matches!(e.kind, ErrorKind::Timeout(_)) && e.stage == Stage::Negotiate, "{e}");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = cfg(listener.local_addr().unwrap().to_string());
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        drop(s);
    });
    let e = MilterSession::open(&c).await.err().unwrap();
    assert!(matches!(e.kind, ErrorKind::Closed | ErrorKind::Io(_)), "{e}");

    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let e = MilterSession::open(&cfg(free.to_string())).await.err().unwrap();
    assert!(matches!(e.kind, ErrorKind::Unreachable(_)), "{e}");
    let e = MilterSession::open(&cfg("no-port".into())).await.err().unwrap();
    assert!(matches!(e.kind, ErrorKind::BadAddress(_)), "{e}");
}

/// Steps the filter skips are not sent; steps it will not answer are sent without waiting;
/// its symbol list picks the connect macros; SKIP stops the body.
#[tokio::test]
async fn negotiated_skips_no_replies_symbol_lists_and_skip() {
    let protocol = Protocol(Protocol::NO_HELO.0 | Protocol::NR_RCPT.0 | Protocol::NR_HEADER.0 | Protocol::NO_DATA.0);
    let mut answer = optneg(Actions::ADD_HEADERS, protocol);
    answer.symlists.push(SymList { stage: MacroStage::Connect, names: vec!["{client_addr}".into(), "{unset}".into()] });
    let script: Script = Box::new(|cmd| match cmd {
        Command::Rcpt(_) | Command::Header { .. } => vec![],
        Command::Body(_) => vec![Reply::Skip],
        _ => vec![Reply::Continue],
    });
    let (cfg, server) = filter(answer, script).await;
    let mut s = MilterSession::open(&cfg).await.unwrap();
    assert_eq!(s.negotiated(), (Actions::ADD_HEADERS, protocol));
    let m = macros();
    up_to_rcpt(&mut s, &m).await;
    s.header("Subject", b" hi").await.unwrap();
    s.eoh(&m).await.unwrap();
    assert_eq!(s.body(&vec![b'x'; 200_000]).await.unwrap(), Step::Continue);
    assert_eq!(s.body(b"more").await.unwrap(), Step::Continue);
    assert_eq!(s.eom(&m).await.unwrap().verdict, Verdict::Accept);
    s.quit().await.unwrap();
    let got = server.await.unwrap();
    assert_eq!(codes(&got), "ODCDMDRLDNBDEQ");
    assert_eq!(decoded(&got)[1], Command::Macros { stage: MacroStage::Connect, pairs: vec![("{client_addr}", "192.0.2.7")] });
}

/// Stages left out of `stages` are not sent; a filter that needs connect, MAIL or RCPT
/// cannot do without them; flags, actions and versions we did not offer fail negotiation.
#[tokio::test]
async fn negotiation_refuses_what_was_not_offered() {
    let (mut c, server) = filter(optneg(Actions::ALL, Protocol(0)), continue_all()).await;
    c.stages = vec!["connect".into(), "mail".into(), "rcpt".into(), "eom".into()];
    let mut s = MilterSession::open(&c).await.unwrap();
    let m = Macros::new();
    up_to_rcpt(&mut s, &m).await;
    s.data(&m).await.unwrap();
    s.header("Subject", b"x").await.unwrap();
    s.eoh(&m).await.unwrap();
    s.body(b"body").await.unwrap();
    s.eom(&m).await.unwrap();
    s.quit().await.unwrap();
    assert_eq!(codes(&server.await.unwrap()), "OCDMDRTNEQ");

    let refused = [
        (optneg(Actions::ALL, Protocol::HDR_LEADSPC), MILTER_ALL),
        (optneg(Actions(0x200), Protocol(0)), MILTER_ALL),
        (OptNeg { version: 7, actions: Actions(0), protocol: Protocol(0), symlists: vec![] }, MILTER_ALL),
        (optneg(Actions(0), Protocol(0)), &["connect", "mail", "eom"][..]),
    ];
    for (answer, stages) in refused {
        let (mut c, _server) = filter(answer.clone(), continue_all()).await;
        c.stages = stages.iter().map(|s| s.to_string()).collect();
        let e = MilterSession::open(&c).await.err().unwrap();
        assert!(matches!(e.kind, ErrorKind::Negotiation(_)), "{answer:?}: {e}");
    }
}

const MILTER_ALL: &[&str] = &rampart_config::MILTER_STAGES;

/// A modification the filter did not negotiate is a protocol error, never applied.
#[tokio::test]
async fn an_unnegotiated_modification_is_refused() {
    let script: Script = Box::new(|cmd| match cmd {
        Command::Eom => vec![Reply::Modify(Modification::ChangeFrom { from: "<x@evil.example>".into(), args: None }), Reply::Continue],
        _ => vec![Reply::Continue],
    });
    let (cfg, _server) = filter(optneg(Actions::ADD_HEADERS, Protocol(0)), script).await;
    let mut s = MilterSession::open(&cfg).await.unwrap();
    let m = Macros::new();
    up_to_rcpt(&mut s, &m).await;
    let e = s.eom(&m).await.unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NotNegotiated("change sender")), "{e}");
}

/// Over a Unix socket; accept at connect ends the conversation but for QUIT.
#[tokio::test]
async fn accept_at_connect_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("milter.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let script: Script = Box::new(|cmd| match cmd {
        Command::Connect { .. } => vec![Reply::Accept],
        _ => vec![Reply::Reject],
    });
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        converse(stream, optneg(Actions::ALL, Protocol(0)), script).await
    });
    let mut s = MilterSession::open(&cfg(path.display().to_string())).await.unwrap();
    let m = Macros::new();
    let peer = Peer::Inet("[2001:db8::7]:2525".parse().unwrap());
    assert_eq!(s.connect(&m, "[2001:db8::7]", peer).await.unwrap(), Step::Verdict(Verdict::Accept));
    up_to_rcpt_quietly(&mut s, &m).await;
    assert_eq!(s.eom(&m).await.unwrap().verdict, Verdict::Accept);
    s.quit().await.unwrap();
    assert_eq!(codes(&server.await.unwrap()), "OCQ");
}

async fn up_to_rcpt_quietly(s: &mut MilterSession, m: &Macros) {
    assert_eq!(s.helo(m, "h").await.unwrap(), Step::Continue);
    assert_eq!(s.mail(m, "<a@example.org>", &[]).await.unwrap(), Step::Continue);
    assert_eq!(s.rcpt(m, "<b@example.net>", &[]).await.unwrap(), Step::Continue);
}

/// A filter that asks to close the connection (SMFIR_SHUTDOWN) at HELO.
#[tokio::test]
async fn shutdown_closes_the_connection() {
    let script: Script = Box::new(|cmd| match cmd {
        Command::Helo(_) => vec![Reply::Shutdown],
        _ => vec![Reply::Continue],
    });
    let (cfg, server) = filter(optneg(Actions::ALL, Protocol(0)), script).await;
    let mut s = MilterSession::open(&cfg).await.unwrap();
    let m = Macros::new();
    s.connect(&m, "h", Peer::Unknown).await.unwrap();
    assert_eq!(s.helo(&m, "h").await.unwrap(), Step::Verdict(Verdict::CloseConnection));
    assert_eq!(s.mail(&m, "<a@example.org>", &[]).await.unwrap(), Step::Continue);
    s.quit().await.unwrap();
    assert_eq!(codes(&server.await.unwrap()), "OCHQ");
}
