//! A scripted remote SMTP server on loopback for the outbound and queue tests: it answers
//! like a plain MX (no STARTTLS), logs the commands of each connection, counts messages, and
//! can misbehave on cue (drop a connection the client is reusing, refuse recipients, hang up
//! after the message before its reply).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use rampart_config::{OutboundTls, Route};

use crate::outbound::Outbound;

/// How the server behaves.
#[derive(Clone, Default)]
pub struct Script {
    /// Advertise PIPELINING.
    pub pipelining: bool,
    /// After this many messages on one connection, hang up when the next command arrives,
    /// without a reply: a server that closed an idle connection.
    pub drop_after: Option<usize>,
    /// Hang up after the end of each message instead of replying to it.
    pub drop_after_data: bool,
    /// Answer DATA with 354 even when no recipient was accepted (RFC 2920 §3.1 says refuse),
    /// and refuse the message that follows.
    pub data_without_recipients: bool,
}

/// The running server; it stops with the test's runtime.
pub struct FakeMx {
    pub addr: SocketAddr,
    /// Commands received, one list per connection (DATA's content left out; a "." for each
    /// message accepted).
    log: Arc<Mutex<Vec<Vec<String>>>>,
}

impl FakeMx {
    pub async fn start(script: Script) -> FakeMx {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let connections = log.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = {
                    let mut log = connections.lock().unwrap();
                    log.push(Vec::new());
                    log.len() - 1
                };
                tokio::spawn(serve(stream, script.clone(), connections.clone(), n));
            }
        });
        FakeMx { addr, log }
    }

    pub fn connections(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The commands of connection `n`.
    pub fn commands(&self, n: usize) -> Vec<String> {
        self.log.lock().unwrap()[n].clone()
    }

    /// Messages accepted over all connections.
    pub fn messages(&self) -> usize {
        self.log.lock().unwrap().iter().flatten().filter(|c| *c == ".").count()
    }
}

/// An `Outbound` whose route sends `remote.test` to the fake MX (no DNS involved: the route's
/// host is an address).
pub fn outbound_to(mx: &FakeMx) -> Outbound {
    let route = Route {
        domains: vec!["remote.test".into()],
        host: Some(mx.addr.ip().to_string()),
        port: Some(mx.addr.port()),
        tls: OutboundTls::Opportunistic,
        auth_username: None,
        auth_password: None,
        auth_password_file: None,
        client_cert: None,
        client_key: None,
    };
    Outbound {
        // Never asked: the route names an address.
        resolver: crate::dns::resolver(&["127.0.0.1:9".parse().unwrap()]).unwrap(),
        hostname: "client.test".into(),
        remote_port: mx.addr.port(),
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
        routes: vec![crate::outbound::ResolvedRoute { route, password: None, tls: None }],
        tls: crate::client::TlsClient::new(crate::outbound::root_store(None).unwrap()).unwrap(),
        policies: None,
    }
}

/// The reply to RCPT TO for `rcpt`: local parts starting with `refused` get 550, `later` 451.
fn rcpt_reply(rcpt: &str) -> &'static str {
    let local = rcpt.trim_start_matches("RCPT TO:<");
    if local.starts_with("refused") {
        "550 5.1.1 no such user\r\n"
    } else if local.starts_with("later") {
        "451 4.3.0 try later\r\n"
    } else {
        "250 2.1.5 ok\r\n"
    }
}

async fn serve(stream: tokio::net::TcpStream, script: Script, log: Arc<Mutex<Vec<Vec<String>>>>, n: usize) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 fake.test ESMTP\r\n").await;
    let (mut messages, mut accepted) = (0, 0);
    while let Ok(Some(line)) = lines.next_line().await {
        if script.drop_after.is_some_and(|d| messages >= d) {
            return;
        }
        log.lock().unwrap()[n].push(line.clone());
        let verb = line.split([' ', ':']).next().unwrap_or_default().to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" if script.pipelining => "250-fake.test\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n".into(),
            "EHLO" => "250-fake.test\r\n250 SIZE 1000000\r\n".into(),
            "MAIL" | "RSET" => {
                accepted = 0;
                "250 2.0.0 ok\r\n".into()
            }
            "RCPT" => {
                let r = rcpt_reply(&line);
                accepted += usize::from(r.starts_with('2'));
                r.into()
            }
            "DATA" if accepted == 0 && !script.data_without_recipients => "554 5.5.1 no valid recipients\r\n".into(),
            "DATA" => {
                let _ = write.write_all(b"354 go ahead\r\n").await;
                let mut content = 0;
                while let Ok(Some(l)) = lines.next_line().await {
                    if l == "." {
                        break;
                    }
                    content += 1;
                }
                if accepted == 0 {
                    log.lock().unwrap()[n].push(format!("(refused: {content} lines, no recipients)"));
                    "554 5.5.1 no valid recipients\r\n".into()
                } else if script.drop_after_data {
                    return;
                } else {
                    messages += 1;
                    log.lock().unwrap()[n].push(".".into());
                    format!("250 2.0.0 queued as {n}.{messages}\r\n")
                }
            }
            "QUIT" => {
                let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                return;
            }
            _ => "500 5.5.2 what?\r\n".into(),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
