//! The Prometheus endpoint: `GET /metrics` on `listener.metrics`.

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

pub async fn serve(tcp: TcpListener, handle: PrometheusHandle) {
    let app = Router::new().route("/metrics", get(move || std::future::ready(handle.render())));
    if let Err(e) = axum::serve(tcp, app).await {
        tracing::warn!(event = "metrics_listener_failed", error = %e);
    }
}
