//! Accepted connections: served to their end, or turned away. What the guard decided at
//! accept becomes the connect stage's trail entry, and a refusal's reply comes from the one
//! `decide` like every other.

use std::net::SocketAddr;
use std::sync::Arc;

use rampart_config::TlsMode;
use rampart_guard::{Basis, Refusal};
use rampart_pipeline::{Entry, Outcome, Reason, Stage, Trail};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::info;

use crate::conn;
use crate::session::{Services, Session, Settings};

/// The connect stage's entry for a client the guard let in.
pub fn admitted(basis: Basis) -> Entry {
    let reason = match basis {
        Basis::Admitted => Reason::Admitted,
        Basis::Allowlisted => Reason::Allowlisted,
        Basis::LimitException => Reason::LimitException,
    };
    Entry::new(Stage::Connect, Outcome::Pass, reason)
}

/// The connect stage's entry for a client turned away: final refusals fail, the others are
/// "try later".
pub fn refused(refusal: &Refusal) -> Entry {
    let reason = match refusal {
        Refusal::Firewall => Reason::Firewall,
        Refusal::Banned { .. } => Reason::Banned,
        Refusal::ConnectionsPerIp => Reason::ConnectionsPerIp,
        Refusal::ConnectionsPerNet => Reason::ConnectionsPerNet,
        Refusal::ConnectionRate => Reason::ConnectionRate,
        Refusal::ListenerConnections => Reason::ListenerConnections,
    };
    let result = if refusal.is_permanent() { Outcome::Fail } else { Outcome::TempError };
    Entry::new(Stage::Connect, result, reason)
}

/// Serves one accepted SMTP connection to its end; `basis` is why the guard let it in.
pub async fn handle(
    stream: TcpStream,
    remote: SocketAddr,
    services: Arc<Services>,
    settings: Arc<Settings>,
    acceptor: rampart_tls::TlsAcceptor,
    basis: Basis,
) {
    let _ = stream.set_nodelay(true);
    let listener = settings.listener;
    info!(event = "connect", listener, ip = %remote.ip(), port = remote.port());
    let mut io: Box<dyn conn::Io> = Box::new(stream);
    let guard = services.guard.clone();
    let mut session = Session::new(services, settings.clone(), remote, admitted(basis));
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

/// Turns away a connection at accept with the reply `decide` gives its refusal (`421 4.7.0`
/// for "try later", `554 5.7.1` for "never") when `banner` allows saying "never"; nothing at
/// all where the protocol starts with TLS, since no clear-text byte may go there.
pub async fn refuse(mut stream: TcpStream, settings: &Settings, hostname: &str, refusal: &Refusal, banner: bool) {
    if settings.tls == TlsMode::Starttls && (banner || !refusal.is_permanent()) {
        let decision = rampart_pipeline::decide(&Trail(vec![refused(refusal)]), &Default::default());
        if let Some(r) = decision.refusal {
            let reply = format!("{} {} {hostname} {}\r\n", r.code, r.status, r.text);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.write_all(reply.as_bytes())).await;
        }
    }
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_refusals_keep_their_replies() {
        let reply = |r: &Refusal| rampart_pipeline::decide(&Trail(vec![refused(r)]), &Default::default()).refusal.map(|r| (r.code, r.status));
        assert_eq!(reply(&Refusal::Firewall), Some((554, "5.7.1")));
        assert_eq!(reply(&Refusal::Banned { until: 0, reason: String::new() }), Some((554, "5.7.1")));
        for r in [Refusal::ConnectionsPerIp, Refusal::ConnectionsPerNet, Refusal::ConnectionRate, Refusal::ListenerConnections] {
            assert_eq!(reply(&r), Some((421, "4.7.0")), "{r:?}");
        }
        assert_eq!(admitted(Basis::LimitException).reason, Reason::LimitException);
    }
}
