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
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::health::HealthSummary;
use super::OpsState;

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// `ops.bind` is not an address.
    #[error("`ops.bind` = `{bind}` is not an address like 127.0.0.1:3001")]
    BadAddress {
        /// The configured value.
        bind: String,
    },
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

impl OpsServer {
    /// Binds `bind` and serves `state` until [`OpsServer::stop`].
    pub async fn start(bind: &str, state: Arc<OpsState>) -> Result<OpsServer, ServerError> {
        let addr: SocketAddr = bind.parse().map_err(|_| ServerError::BadAddress {
            bind: bind.to_string(),
        })?;
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
        let app = router(state);
        let shutdown = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!("the ops server stopped: {e}");
            }
        });
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
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
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
        let server = OpsServer::start("127.0.0.1:0", state.clone())
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
