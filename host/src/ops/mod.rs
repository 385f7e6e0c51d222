//! Operations: the state the ops endpoints report on ([`OpsState`]), the HTTP server for
//! `/health`, `/ready` and `/metrics` ([`server`]), how health and metrics are computed
//! ([`health`], [`metrics`]), and graceful shutdown on SIGTERM/SIGINT ([`shutdown`]).
//!
//! **Architecture Invariant:** nothing the ops endpoints return holds a secret, a transcript or
//! a user id; metric label values come from configuration (provider ids, plugin names) or
//! fixed sets (roles, outcomes, error kinds), never from users.

pub mod health;
pub mod hearing;
pub mod metrics;
pub mod server;
pub mod shutdown;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::config::LoadedConfig;
use crate::pipeline::{TurnModels, TurnOutcome, TurnReport};
use crate::plugins::{PluginDescription, SpeechToTextProvider, TextToSpeechProvider};
pub use metrics::{Metrics, MetricsError};
pub use server::{Limits, OpsServer, ServerError};
pub use shutdown::{Shutdown, ShutdownError};

/// The Discord gateway connection, as `/ready` and `/health` see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayStatus {
    /// Not configured (`discord.enabled = false`): headless.
    Disabled,
    /// Configured, not connected yet.
    Connecting,
    /// Connected.
    Up,
    /// Configured and lost.
    Down,
}

/// The guild settings store, as `/health` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageStatus {
    /// Not opened (headless, or before the bot starts).
    NotUsed,
    /// Open: `sqlite` or `postgres`.
    Up(&'static str),
    /// Could not be opened at start (corrupt, read-only, unreachable): unhealthy.
    Down,
}

/// What the process runs with: filled in once the providers are built.
#[derive(Default)]
pub struct Components {
    /// Speech-to-text providers, in failover order.
    pub stt: Vec<Arc<SpeechToTextProvider>>,
    /// Text-to-speech providers, in failover order.
    pub tts: Vec<Arc<TextToSpeechProvider>>,
    /// Every plugin loaded.
    pub plugins: Vec<PluginDescription>,
    /// `echo`, `openai-chat`.
    pub agent_kind: Option<&'static str>,
    /// The turn taking that runs.
    pub turn_taking: Option<TurnTaking>,
}

/// The turn taking a process runs (`/health`'s `turn_taking`), against what `[pipeline]`
/// asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnTaking {
    /// What tells speech: `silero` or `energy`.
    pub vad: &'static str,
    /// What ends a turn: `smart-turn` or `silence`.
    pub turn_model: &'static str,
    /// A model `[pipeline]` asks for (or ONNX Runtime) is not installed: the fallback runs.
    pub fallback: bool,
}

impl TurnTaking {
    /// What `models` run.
    pub(crate) fn of(models: &TurnModels) -> TurnTaking {
        TurnTaking {
            vad: if models.vad.is_some() {
                "silero"
            } else {
                "energy"
            },
            turn_model: if models.turn.is_some() {
                "smart-turn"
            } else {
                "silence"
            },
            fallback: models.is_fallback(),
        }
    }
}

/// The agent's recent outcomes, from turn reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AgentHealth {
    /// The last failure's kind (`timeout`, `http`…) and when.
    pub last_error: Option<(&'static str, SystemTime)>,
    /// When the agent last answered.
    pub last_success: Option<SystemTime>,
}

/// Whether the process takes traffic, and what it still waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Readiness {
    /// Ready for traffic.
    pub ready: bool,
    /// What is not up yet: `config`, `providers`, `discord_gateway`, or `shutting_down`.
    pub waiting_for: Vec<&'static str>,
}

/// The state the ops endpoints report on, shared by the server, the commands and the
/// sessions.
pub struct OpsState {
    environment: String,
    started: Instant,
    config_loaded: AtomicBool,
    providers_ready: AtomicBool,
    draining: AtomicBool,
    gateway: Mutex<GatewayStatus>,
    storage: Mutex<StorageStatus>,
    components: Arc<RwLock<Components>>,
    agent: Mutex<AgentHealth>,
    metrics: Metrics,
    token: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl OpsState {
    /// State for a process running `loaded`: config loaded, nothing else up yet. The bearer
    /// token is read now from the variable `ops.token_env` names.
    pub fn new(loaded: &LoadedConfig) -> Result<Arc<OpsState>, MetricsError> {
        let token = loaded
            .config
            .ops
            .token_env
            .as_ref()
            .and_then(|var| std::env::var(var).ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let state = OpsState::with_environment(&loaded.environment, token)?;
        state.config_loaded.store(true, Ordering::SeqCst);
        Ok(state)
    }

    /// State with nothing up yet (for tests and benchmarks; commands use [`OpsState::new`]).
    pub(crate) fn with_environment(
        environment: &str,
        token: Option<String>,
    ) -> Result<Arc<OpsState>, MetricsError> {
        let components = Arc::new(RwLock::new(Components::default()));
        let metrics = Metrics::new(components.clone())?;
        Ok(Arc::new(OpsState {
            environment: environment.to_string(),
            started: Instant::now(),
            config_loaded: AtomicBool::new(false),
            providers_ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            gateway: Mutex::new(GatewayStatus::Disabled),
            storage: Mutex::new(StorageStatus::NotUsed),
            components,
            agent: Mutex::new(AgentHealth::default()),
            metrics,
            token,
        }))
    }

    /// The environment name.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// Time since the process started serving.
    pub(crate) fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The bearer token `/metrics` and the detailed `/health` require, if any.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Marks the configuration as loaded (`new` does, for the process).
    #[cfg(test)]
    pub(crate) fn set_config_loaded(&self) {
        self.config_loaded.store(true, Ordering::SeqCst);
    }

    /// Records the built providers, the loaded plugins and the agent; the process is ready
    /// once the gateway is too.
    pub(crate) fn set_components(&self, components: Components) {
        match self.components.write() {
            Ok(mut c) => *c = components,
            Err(p) => *p.into_inner() = components,
        }
        self.providers_ready.store(true, Ordering::SeqCst);
    }

    /// Sets the gateway's state.
    pub(crate) fn set_gateway(&self, status: GatewayStatus) {
        *lock(&self.gateway) = status;
    }

    /// The gateway's state.
    pub fn gateway(&self) -> GatewayStatus {
        *lock(&self.gateway)
    }

    /// Sets the guild settings store's state.
    pub(crate) fn set_storage(&self, status: StorageStatus) {
        *lock(&self.storage) = status;
    }

    /// The guild settings store's state.
    pub fn storage(&self) -> StorageStatus {
        *lock(&self.storage)
    }

    /// Marks the process as shutting down: `/ready` answers 503 from now on.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the process is shutting down.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Ready when the config is loaded, the providers are built, the gateway (when
    /// configured) is up, and the process is not shutting down.
    pub(crate) fn readiness(&self) -> Readiness {
        let mut waiting_for = Vec::new();
        if !self.config_loaded.load(Ordering::SeqCst) {
            waiting_for.push("config");
        }
        if !self.providers_ready.load(Ordering::SeqCst) {
            waiting_for.push("providers");
        }
        if !matches!(self.gateway(), GatewayStatus::Disabled | GatewayStatus::Up) {
            waiting_for.push("discord_gateway");
        }
        if self.is_draining() {
            waiting_for.push("shutting_down");
        }
        Readiness {
            ready: waiting_for.is_empty(),
            waiting_for,
        }
    }

    /// Counts a voice connection for as long as the returned guard lives.
    pub(crate) fn voice_connection(self: &Arc<Self>) -> VoiceConnectionGuard {
        self.metrics.connection_opened();
        VoiceConnectionGuard {
            state: self.clone(),
        }
    }

    /// Counts a finished turn: metrics, the agent's health, and an error report (an error
    /// log, hence a Sentry event) when it failed. No transcript is logged here.
    pub(crate) fn observe_turn(&self, report: &TurnReport) {
        self.metrics.observe_turn(report);
        let agent_error = metrics::agent_error_label(report);
        {
            let mut agent = lock(&self.agent);
            if let Some(label) = agent_error {
                agent.last_error = Some((label, SystemTime::now()));
            } else if report.timeline.agent_first_token.is_some() {
                agent.last_success = Some(SystemTime::now());
            }
        }
        if let TurnOutcome::Failed(reason) = &report.outcome {
            tracing::error!(
                error_type = metrics::error_type(report).unwrap_or("turn"),
                speaker = %crate::telemetry::user_label(&report.speaker.id),
                errors = ?report.errors,
                "turn failed: {reason}"
            );
        }
    }

    /// The agent's recent outcomes.
    pub(crate) fn agent_health(&self) -> AgentHealth {
        *lock(&self.agent)
    }

    /// Checks every provider's health now and then every `interval`, off the turn path (a
    /// task of its own; each check runs under the provider's permits and timeout like any
    /// call). The answers land in the providers' statistics, where `/health` reads them. Ends
    /// when the state is dropped; an `interval` of zero checks nothing.
    pub(crate) fn spawn_health_checks(self: &Arc<Self>, interval: std::time::Duration) {
        if interval.is_zero() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(state) = weak.upgrade() {
                let (stt, tts) = {
                    let components = state.components();
                    (components.stt.clone(), components.tts.clone())
                };
                drop(state);
                let stt_checks = stt.iter().map(|p| p.check_health());
                let tts_checks = tts.iter().map(|p| p.check_health());
                futures_util::future::join(
                    futures_util::future::join_all(stt_checks),
                    futures_util::future::join_all(tts_checks),
                )
                .await;
                tokio::time::sleep(interval).await;
            }
        });
    }

    pub(crate) fn components(&self) -> std::sync::RwLockReadGuard<'_, Components> {
        match self.components.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub(crate) fn providers_ready(&self) -> bool {
        self.providers_ready.load(Ordering::SeqCst)
    }
}

/// Keeps `voice_connections_active` counted while a voice connection lasts.
pub(crate) struct VoiceConnectionGuard {
    state: Arc<OpsState>,
}

impl Drop for VoiceConnectionGuard {
    fn drop(&mut self) {
        self.state.metrics.connection_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_everything_is_up() {
        let state = OpsState::with_environment("test", None).unwrap();
        let r = state.readiness();
        assert!(!r.ready);
        assert_eq!(r.waiting_for, vec!["config", "providers"]);
        state.set_config_loaded();
        state.set_gateway(GatewayStatus::Connecting);
        state.set_components(Components::default());
        assert_eq!(state.readiness().waiting_for, vec!["discord_gateway"]);
        state.set_gateway(GatewayStatus::Up);
        assert!(state.readiness().ready);
        state.start_draining();
        assert_eq!(state.readiness().waiting_for, vec!["shutting_down"]);
    }

    #[test]
    fn voice_connections_are_counted_while_open() {
        let state = OpsState::with_environment("test", None).unwrap();
        let guard = state.voice_connection();
        assert_eq!(state.metrics().voice_connections_active(), 1);
        drop(guard);
        assert_eq!(state.metrics().voice_connections_active(), 0);
        assert_eq!(state.metrics().voice_connections_total(), 1);
    }
}
