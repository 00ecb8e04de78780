//! Accepted connections: served to their end (implicit TLS, then the driver), or turned away.

use std::net::SocketAddr;
use std::sync::Arc;

use rampart_config::TlsMode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::info;

use crate::conn;
use crate::session::{Services, Session, Settings};

/// Serves one accepted IMAP connection to its end.
pub async fn handle(
    stream: TcpStream,
    remote: SocketAddr,
    services: Arc<Services>,
    settings: Arc<Settings>,
    acceptor: rampart_tls::TlsAcceptor,
) {
    let _ = stream.set_nodelay(true);
    let listener = settings.listener;
    info!(event = "connect", proto = "imap", listener, ip = %remote.ip(), port = remote.port());
    let mut io: Box<dyn conn::Io> = Box::new(stream);
    let mut session = Session::new(services.clone(), settings.clone(), remote, false);
    if settings.tls == TlsMode::Implicit {
        match conn::tls_accept(&acceptor, io, &services.guard).await {
            Ok((tls, cb)) => {
                io = tls;
                session.tls_started(cb);
            }
            Err(e) => {
                info!(event = "tls_failed", proto = "imap", listener, ip = %remote.ip(), error = %e);
                return;
            }
        }
    }
    let end = conn::run(io, session, Some(acceptor)).await;
    info!(event = "disconnect", proto = "imap", listener, ip = %remote.ip(), end = ?end);
}

/// Turns away a connection at accept: `* BYE` where the protocol starts in clear text
/// (RFC 3501 §7.1.5), a plain close where it starts with TLS. `permanent` (firewall, ban)
/// says nothing unless `banner` asks for it, so a banned scanner learns nothing.
pub async fn refuse(mut stream: TcpStream, settings: &Settings, permanent: bool, banner: bool) {
    if settings.tls == TlsMode::Starttls && (banner || !permanent) {
        let reply: &[u8] =
            if permanent { b"* BYE Access denied\r\n" } else { b"* BYE Too many connections, try again later\r\n" };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.write_all(reply)).await;
    }
    let _ = stream.shutdown().await;
}
