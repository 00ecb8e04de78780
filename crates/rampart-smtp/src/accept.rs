//! Accepted connections: served to their end, or turned away.

use std::net::SocketAddr;
use std::sync::Arc;

use rampart_config::TlsMode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::info;

use crate::conn;
use crate::session::{Services, Session, Settings};

/// Serves one accepted SMTP connection to its end.
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
