//! What every serving command (`run`, headless or with Discord, and `simulate`) starts and
//! ends with, written once: the ops state, the SIGTERM/SIGINT handler and the ops server;
//! building the providers raced against a shutdown request; draining turns; and the end
//! (not ready, the server closed, error reports flushed) within the shutdown deadline.

use std::sync::Arc;
use std::time::Duration;

use super::{build_session_deps, start_health_checks};
use crate::config::{self, LoadedConfig};
use crate::ops::{OpsServer, OpsState, Shutdown};
use crate::pipeline::{Playback, SessionDeps, VoiceSession};
use crate::telemetry;

/// A serving command's ops side.
pub(super) struct Serving {
    /// Readiness, health and metrics.
    pub ops: Arc<OpsState>,
    /// The signal handler and the drain deadline.
    pub shutdown: Shutdown,
    /// The ops server, when `ops.enabled`.
    pub server: Option<OpsServer>,
}

impl Serving {
    /// The ops state, the signal handler and (when `ops.enabled`) the ops server.
    pub async fn start(loaded: &LoadedConfig) -> anyhow::Result<Serving> {
        let ops = OpsState::new(loaded)?;
        let shutdown = Shutdown::install(Duration::from_millis(
            loaded.config.ops.shutdown_deadline_ms,
        ))?;
        let server = start_ops_server(loaded, &ops).await?;
        Ok(Serving {
            ops,
            shutdown,
            server,
        })
    }

    /// Builds the providers and the agent, unless a shutdown is asked for first (`None`);
    /// with `health_checks`, starts the providers' background health checks.
    pub(crate) async fn session_deps(
        &self,
        loaded: &LoadedConfig,
        health_checks: bool,
    ) -> anyhow::Result<Option<SessionDeps>> {
        let deps = tokio::select! {
            deps = build_session_deps(loaded, &self.ops) => deps?,
            () = self.shutdown.requested() => return Ok(None),
        };
        if health_checks {
            start_health_checks(loaded, &self.ops);
        }
        Ok(Some(deps))
    }

    /// The end of every serving command: not ready any more, the ops server closed, error
    /// reports flushed, all within what is left of the shutdown deadline.
    pub async fn finish(self) {
        let Serving {
            ops,
            shutdown,
            server,
        } = self;
        ops.start_draining();
        if let Some(server) = server {
            server
                .stop(shutdown.remaining().min(Duration::from_secs(1)))
                .await;
        }
        telemetry::shutdown(
            shutdown
                .remaining()
                .min(telemetry::sentry::SHUTDOWN_TIMEOUT),
        );
    }
}

/// Starts the ops server when `ops.enabled`, and says where on stderr (tests read the line).
async fn start_ops_server(
    loaded: &LoadedConfig,
    ops: &Arc<OpsState>,
) -> anyhow::Result<Option<OpsServer>> {
    if !loaded.config.ops.enabled {
        return Ok(None);
    }
    let limits = crate::ops::server::Limits::from_config(&loaded.config.ops);
    let server = OpsServer::start(loaded.config.ops.bind, ops.clone(), limits).await?;
    let addr = server.local_addr();
    // Printed whatever the log level, so scripts and tests can find a port-0 address; shipped
    // like a log line when the CloudWatch sink is on.
    let line = match loaded.config.logging.format {
        config::LogFormat::Pretty => format!("ops server listening on http://{addr}"),
        config::LogFormat::Json => serde_json::json!({
            "timestamp": crate::ops::health::rfc3339(std::time::SystemTime::now()),
            "level": "INFO",
            "message": "ops server listening",
            "ops_addr": addr.to_string(),
        })
        .to_string(),
    };
    eprintln!("{line}");
    telemetry::cloudwatch::push(&line);
    Ok(Some(server))
}

/// After a shutdown request: lets the turns in flight finish within the drain budget, then
/// cancels what is left (reported `Cancelled`) and stops playback.
pub(super) async fn drain_session(
    work: &mut (impl std::future::Future<Output = ()> + Unpin),
    session: &VoiceSession,
    playback: &Playback,
    ops: &OpsState,
    shutdown: &Shutdown,
) {
    ops.start_draining();
    if tokio::time::timeout(shutdown.drain_budget(), &mut *work)
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!("shutdown deadline near: cancelling the turn in progress");
    session.shutdown();
    playback.stop();
    if tokio::time::timeout(shutdown.reserve() / 2, work)
        .await
        .is_err()
    {
        tracing::warn!("a turn did not end when cancelled (a provider call is stuck); leaving it");
    }
}
