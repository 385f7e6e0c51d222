//! The ops HTTP server (axum): `GET /health`, `GET /ready`, `GET /metrics`.
//!
//! With `ops.token_env` set, `/metrics` needs `Authorization: Bearer <token>` (401 without),
//! and `/health` without it answers only the status and timestamp (same HTTP status), so
//! load balancers can probe it while the details stay private. `/ready` is always open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::health::HealthSummary;
use super::OpsState;

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The address could not be bound (in use, not permitted).
    #[error(
        "cannot listen on {addr} (`ops.bind`): {reason}; pick a free port, or set \
         OPENCLAW__OPS__BIND=127.0.0.1:0 for any free one"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// A running ops server.
pub struct OpsServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Limits on the connections the server holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; the ones over it are closed when accepted.
    pub max_connections: usize,
    /// How long a request's headers may take to arrive.
    pub header_read_timeout: Duration,
}

impl Limits {
    /// `ops.max_connections` and `ops.header_read_timeout_ms`.
    pub fn from_config(ops: &crate::config::OpsConfig) -> Limits {
        Limits {
            max_connections: ops.max_connections,
            header_read_timeout: Duration::from_millis(ops.header_read_timeout_ms),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&crate::config::OpsConfig::default())
    }
}

impl OpsServer {
    /// Binds `addr` and serves `state` within `limits` until [`OpsServer::stop`].
    pub async fn start(
        addr: SocketAddr,
        state: Arc<OpsState>,
        limits: Limits,
    ) -> Result<OpsServer, ServerError> {
        let listener =
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| ServerError::Bind {
                    addr,
                    reason: e.to_string(),
                })?;
        let addr = listener.local_addr().map_err(|e| ServerError::Bind {
            addr,
            reason: e.to_string(),
        })?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, router(state), limits, stop.clone()));
        Ok(OpsServer { addr, stop, task })
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits (at most `timeout`) for open requests.
    pub async fn stop(self, timeout: Duration) {
        self.stop.cancel();
        let mut task = self.task;
        if tokio::time::timeout(timeout, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// The accept loop: a connection over `limits.max_connections` is closed at once; each one
/// served is HTTP/1.1 with hyper's header read timeout, and finishes its request when `stop`
/// is cancelled.
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut refused_logged = false;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or the like: wait a little rather than spin.
                tracing::warn!("ops server: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !refused_logged {
                tracing::warn!(
                    max = limits.max_connections,
                    "ops server: connection limit reached (`ops.max_connections`); closing \
                     new connections until some end"
                );
                refused_logged = true;
            }
            drop(stream);
            continue;
        };
        refused_logged = false;
        tokio::spawn(serve_connection(
            stream,
            app.clone(),
            limits,
            stop.clone(),
            slot,
        ));
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let service = hyper_util::service::TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The routes, for the server and for tests.
pub fn router(state: Arc<OpsState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Whether the request carries the configured token (always true without one).
fn authorized(state: &OpsState, headers: &HeaderMap) -> bool {
    let Some(token) = state.token() else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        // The scheme is case-insensitive (RFC 9110 §11.1): `Bearer`, `bearer`, `BEARER`.
        .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then_some(token))
        .map(str::trim)
        .unwrap_or("");
    constant_time_eq(given.as_bytes(), token.as_bytes())
}

/// Compares without stopping at the first difference, so timing says nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn health(State(state): State<Arc<OpsState>>, headers: HeaderMap) -> Response {
    let report = state.health();
    let code = status(report.status.http_status());
    if authorized(&state, &headers) {
        (code, Json(report)).into_response()
    } else {
        (code, Json(HealthSummary::from(&report))).into_response()
    }
}

async fn ready(State(state): State<Arc<OpsState>>) -> Response {
    let readiness = state.readiness();
    let code = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(readiness)).into_response()
}

async fn metrics(State(state): State<Arc<OpsState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            "a bearer token is required (ops.token_env)\n",
        )
            .into_response();
    }
    match state.metrics().render() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(prometheus::TEXT_FORMAT),
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("{e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot render metrics\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Components;

    async fn get(state: &Arc<OpsState>, path: &str, token: Option<&str>) -> (u16, String) {
        let server = OpsServer::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            state.clone(),
            Limits::default(),
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        let response = tokio::task::spawn_blocking({
            let path = path.to_string();
            let token = token.map(str::to_string);
            move || raw_get(addr, &path, token.as_deref())
        })
        .await
        .unwrap();
        server.stop(Duration::from_secs(1)).await;
        response
    }

    fn raw_get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let code = out[9..12].parse().unwrap();
        let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
        (code, body)
    }

    #[tokio::test]
    async fn ready_flips_when_the_providers_are_built() {
        let state = OpsState::with_environment("test", None).unwrap();
        state.set_config_loaded();
        let (code, body) = get(&state, "/ready", None).await;
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("providers"), "{body}");
        state.set_components(Components::default());
        assert_eq!(get(&state, "/ready", None).await.0, 200);
    }

    #[tokio::test]
    async fn the_token_guards_metrics_and_health_details() {
        let state = OpsState::with_environment("test", Some("opensesame-123".into())).unwrap();
        assert_eq!(get(&state, "/metrics", None).await.0, 401);
        assert_eq!(get(&state, "/metrics", Some("wrong")).await.0, 401);
        let (code, body) = get(&state, "/metrics", Some("opensesame-123")).await;
        assert_eq!(code, 200);
        assert!(body.contains("# TYPE response_latency_seconds histogram"));

        let (_, summary) = get(&state, "/health", None).await;
        assert!(summary.contains("\"status\""), "{summary}");
        assert!(!summary.contains("services"), "{summary}");
        let (_, detail) = get(&state, "/health", Some("opensesame-123")).await;
        assert!(detail.contains("services"), "{detail}");
        assert!(!detail.contains("opensesame"), "{detail}");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
