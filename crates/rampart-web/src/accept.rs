//! Accepted web connections: the TLS handshake (https), then HTTP/1.1 until the client is done
//! or a limit ends it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;
use tracing::{debug, info};

use crate::{Client, Settings};

/// A connection is closed this long after it opened, whatever it does: a browser simply
/// reconnects, and nobody holds a slot forever by trickling requests.
const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// The largest request head hyper buffers (request line and headers).
const MAX_HEAD: usize = 64 * 1024;

/// Serves one accepted https connection: handshake, then HTTP.
pub async fn handle_https(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    settings: std::sync::Arc<Settings>,
    acceptor: rampart_tls::TlsAcceptor,
    guard: std::sync::Arc<rampart_guard::Guard>,
) {
    let _ = stream.set_nodelay(true);
    let listener = settings.listener;
    let Some(permit) = guard.handshake_permit().await else {
        info!(event = "tls_failed", proto = "https", listener, ip = %remote.ip(), error = "too many TLS handshakes in progress");
        return;
    };
    let tls = match tokio::time::timeout(guard.handshake_timeout(), acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            info!(event = "tls_failed", proto = "https", listener, ip = %remote.ip(), error = %e);
            return;
        }
        Err(_) => {
            info!(event = "tls_failed", proto = "https", listener, ip = %remote.ip(), error = "TLS handshake timed out");
            return;
        }
    };
    drop(permit);
    serve(tls, remote, router, &settings).await;
}

/// Serves one accepted plain http connection (the redirect).
pub async fn handle_http(stream: TcpStream, remote: SocketAddr, router: Router, settings: std::sync::Arc<Settings>) {
    let _ = stream.set_nodelay(true);
    serve(stream, remote, router, &settings).await;
}

async fn serve<I>(io: I, remote: SocketAddr, router: Router, settings: &Settings)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(Client(remote));
        router.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(settings.idle_timeout).max_buf_size(MAX_HEAD);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Ok(Err(e)) = tokio::time::timeout(MAX_CONNECTION_LIFETIME, conn).await {
        debug!(event = "http_error", listener = settings.listener, ip = %remote.ip(), error = %e);
    }
}

/// Turns a connection away at accept: a closed connection says nothing to a banned scanner,
/// and HTTP has no greeting to carry a reason before TLS.
pub async fn refuse(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
}
