//! SMTP for Rampart (RFC 5321), one module per layer:
//!
//! - [`command`] parses a command line into a typed [`command::Command`];
//! - [`data`] scans DATA/BDAT content: dot-unstuffing, the CRLF.CRLF terminator, the bare
//!   CR/LF/NUL refusal that defeats SMTP smuggling, and size/line limits while streaming;
//! - [`session`] is the state machine and policy: what each state allows, relay refusal,
//!   recipient lookup, storing the message;
//! - [`conn`] drives a session over any async stream: reading, pipelined replies, STARTTLS,
//!   timeouts;
//! - [`trace`] writes Return-Path and Received headers and makes transaction ids;
//! - outbound: [`queue`] runs the durable queue, [`outbound`] makes one delivery attempt over
//!   [`client`] after [`dns`] found the MX hosts, and [`dsn`] writes bounces.

#[cfg(feature = "server")]
pub mod client;
pub mod command;
#[cfg(feature = "server")]
pub mod conn;
pub mod data;
#[cfg(feature = "server")]
pub mod dns;
#[cfg(feature = "server")]
pub mod dsn;
#[cfg(feature = "server")]
pub mod outbound;
#[cfg(feature = "server")]
pub mod queue;
pub mod reply;
#[cfg(feature = "server")]
pub mod session;
#[cfg(feature = "server")]
pub mod trace;

#[cfg(feature = "server")]
use std::net::SocketAddr;
#[cfg(feature = "server")]
use std::sync::Arc;

#[cfg(feature = "server")]
use rampart_config::TlsMode;
#[cfg(feature = "server")]
use tokio::io::AsyncWriteExt;
#[cfg(feature = "server")]
use tokio::net::TcpStream;
#[cfg(feature = "server")]
use tracing::info;

pub use reply::Reply;
#[cfg(feature = "server")]
pub use session::{Role, Services, Session, Settings};

/// Serves one accepted SMTP connection to its end.
#[cfg(feature = "server")]
pub async fn handle(
    stream: TcpStream,
    remote: SocketAddr,
    services: Arc<Services>,
    settings: Arc<Settings>,
    acceptor: rampart_tls::TlsAcceptor,
) {
    let _ = stream.set_nodelay(true);
    let listener = settings.listener;
    info!(event = "connect", listener, ip = %remote.ip(), port = remote.port());
    let mut io: Box<dyn conn::Io> = Box::new(stream);
    let guard = services.guard.clone();
    let mut session = Session::new(services, settings.clone(), remote);
    if settings.tls == TlsMode::Implicit {
        match conn::tls_accept(&acceptor, io, &guard).await {
            Ok((tls, info)) => {
                io = tls;
                session.tls_started(info);
            }
            Err(e) => {
                info!(event = "tls_failed", listener, ip = %remote.ip(), error = %e);
                return;
            }
        }
    }
    let end = conn::run(io, session, Some(acceptor)).await;
    info!(event = "disconnect", listener, ip = %remote.ip(), end = ?end);
}

/// Turns away a connection at accept: `421 4.7.0` for "try later" (limits), `554 5.7.1`
/// for "never" (firewall, ban) when `banner` allows saying so; nothing at all where the
/// protocol starts with TLS, since no clear-text byte may go there.
#[cfg(feature = "server")]
pub async fn refuse(mut stream: TcpStream, settings: &Settings, hostname: &str, permanent: bool, banner: bool) {
    if settings.tls == TlsMode::Starttls && (banner || !permanent) {
        let reply = if permanent {
            format!("554 5.7.1 {hostname} Access denied\r\n")
        } else {
            format!("421 4.7.0 {hostname} Too many connections, try again later\r\n")
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.write_all(reply.as_bytes())).await;
    }
    let _ = stream.shutdown().await;
}
