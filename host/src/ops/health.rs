//! `/health`: one status for the process and one per service (the Discord gateway, voice
//! sessions, the agent, every configured provider).
//!
//! - **healthy** (200): everything is up.
//! - **degraded** (200): something is down but the bot still works (a provider's circuit is
//!   open and a fallback for its role works, the agent's last call failed, or the process is
//!   still starting).
//! - **unhealthy** (503): a role has no working provider, or the gateway is down.
//!
//! Nothing here is secret: provider ids, plugin names, error *kinds* and counts only.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{AgentHealth, GatewayStatus, OpsState, StorageStatus, TurnTaking};
use crate::plugins::breaker::CircuitState;
use crate::plugins::{StatsSnapshot, WorkerStatus};

/// The process's overall health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything is up.
    Healthy,
    /// Working, with something down.
    Degraded,
    /// Not working.
    Unhealthy,
}

impl HealthStatus {
    /// The HTTP status `/health` answers with.
    pub(crate) fn http_status(self) -> u16 {
        match self {
            HealthStatus::Healthy | HealthStatus::Degraded => 200,
            HealthStatus::Unhealthy => 503,
        }
    }

    fn worst(self, other: HealthStatus) -> HealthStatus {
        let rank = |s: HealthStatus| match s {
            HealthStatus::Healthy => 0,
            HealthStatus::Degraded => 1,
            HealthStatus::Unhealthy => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// One service's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceHealth {
    /// `up`, `down`, `starting`, `connecting`, `disabled`.
    pub status: &'static str,
    /// `stt` or `tts`, for providers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// The plugin behind a provider; the agent's kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `closed`, `open` or `half_open`, for providers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit: Option<&'static str>,
    /// Why the circuit opened: the error kind (`auth`, `timeout`…), while not closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_reason: Option<&'static str>,
    /// How often the circuit opened since start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_opened: Option<u64>,
    /// The last error's kind (`timeout`, `auth`…), never its message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<&'static str>,
    /// Seconds since the last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_age_seconds: Option<f64>,
    /// Calls made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
    /// Calls that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<u64>,
    /// Open voice sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<i64>,
    /// Of the voice sessions, those whose received audio is DAVE end-to-end encrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dave: Option<i64>,
    /// Of the voice sessions, those whose received audio has transport encryption only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_only: Option<i64>,
    /// Why a service is degraded, in words (never a secret, never a name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The provider's own answer to its last health check: `healthy` or `unhealthy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<&'static str>,
    /// What that check found (the plugin's words, secrets scrubbed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_detail: Option<String>,
    /// Seconds since that check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_age_seconds: Option<f64>,
    /// For a provider in a worker process: its process id (`null` while it restarts) and how
    /// often it was restarted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerStatus>,
}

impl ServiceHealth {
    fn status(status: &'static str) -> Self {
        ServiceHealth {
            status,
            role: None,
            kind: None,
            circuit: None,
            circuit_reason: None,
            circuit_opened: None,
            last_error: None,
            last_error_age_seconds: None,
            calls: None,
            failures: None,
            active: None,
            dave: None,
            transport_only: None,
            reason: None,
            check: None,
            check_detail: None,
            check_age_seconds: None,
            worker: None,
        }
    }
}

/// The full `/health` body (with the token, or when no token is configured).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// Overall.
    pub status: HealthStatus,
    /// Now, RFC 3339 UTC.
    pub timestamp: String,
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// The binary's version.
    pub version: &'static str,
    /// The environment name.
    pub environment: String,
    /// Resident memory, bytes (Linux).
    pub rss_bytes: Option<u64>,
    /// Whether a shutdown signal was received.
    pub shutting_down: bool,
    /// Per service; providers are `stt:<id>` and `tts:<id>`.
    pub services: BTreeMap<String, ServiceHealth>,
}

/// The short `/health` body, for callers without the token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct HealthSummary {
    /// Overall.
    pub status: HealthStatus,
    /// Now, RFC 3339 UTC.
    pub timestamp: String,
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// The binary's version.
    pub version: &'static str,
}

impl From<&HealthReport> for HealthSummary {
    fn from(r: &HealthReport) -> Self {
        HealthSummary {
            status: r.status,
            timestamp: r.timestamp.clone(),
            uptime_seconds: r.uptime_seconds,
            version: r.version,
        }
    }
}

/// Whether a provider is out of rotation: its circuit breaker is open, or half-open (the
/// cooldown is over and the next call is a probe). The breaker is fed by every call's outcome
/// (`plugins::breaker`); this is the one place health and metrics read it.
pub(crate) fn circuit_open(snapshot: &StatsSnapshot) -> bool {
    snapshot.circuit.state != CircuitState::Closed
}

/// One provider, as the health computation sees it.
#[derive(Debug, Clone)]
pub(crate) struct ProviderView {
    /// `stt` or `tts`.
    pub role: &'static str,
    /// Provider id.
    pub id: String,
    /// Plugin name.
    pub plugin: String,
    /// Its statistics now.
    pub snapshot: StatsSnapshot,
    /// Its worker process, when it runs in one.
    pub worker: Option<WorkerStatus>,
}

/// Everything the health computation reads, gathered at one moment.
#[derive(Debug, Clone)]
pub(crate) struct HealthInput {
    /// The gateway.
    pub gateway: GatewayStatus,
    /// Whether the providers were built.
    pub providers_ready: bool,
    /// Every built provider.
    pub providers: Vec<ProviderView>,
    /// The agent's kind, once built.
    pub agent_kind: Option<&'static str>,
    /// The agent's recent outcomes.
    pub agent: AgentHealth,
    /// Open voice sessions.
    pub voice_sessions: i64,
    /// Speakers Discord says are speaking whose audio does not decode (the hearing guard).
    pub unheard_speakers: i64,
    /// Sessions hearing DAVE-encrypted audio, and transport encryption only.
    pub dave_sessions: i64,
    pub transport_only_sessions: i64,
    /// The guild settings store.
    pub storage: StorageStatus,
    /// The turn taking that runs, once the providers are built.
    pub turn_taking: Option<TurnTaking>,
}

/// One provider's service entry, and whether it counts as working (circuit not open, and
/// its own health check, when one ran, not unhealthy).
fn provider_service(p: &ProviderView, age: &dyn Fn(SystemTime) -> f64) -> (ServiceHealth, bool) {
    let is_open = circuit_open(&p.snapshot);
    let says_unhealthy = p.snapshot.health.as_ref().is_some_and(|h| !h.healthy);
    let failures: u64 = p.snapshot.failures.values().sum();
    let mut s = ServiceHealth::status(match (is_open, says_unhealthy) {
        (true, _) => "down",
        (false, true) => "unhealthy",
        (false, false) => "up",
    });
    if let Some(h) = &p.snapshot.health {
        s.check = Some(if h.healthy { "healthy" } else { "unhealthy" });
        s.check_detail = Some(crate::telemetry::scrub(&h.detail));
        s.check_age_seconds = Some(age(h.at));
    }
    s.worker = p.worker;
    s.role = Some(p.role);
    s.kind = Some(p.plugin.clone());
    s.circuit = Some(p.snapshot.circuit.state.as_str());
    s.circuit_reason = p.snapshot.circuit.reason.map(|r| r.kind().as_str());
    s.circuit_opened = Some(p.snapshot.circuit.times_opened);
    if let Some(e) = &p.snapshot.last_error {
        s.last_error = Some(e.kind.as_str());
        s.last_error_age_seconds = Some(age(e.at));
    }
    s.calls = Some(p.snapshot.calls);
    s.failures = Some(failures);
    (s, !is_open && !says_unhealthy)
}

/// Computes the services and the overall status.
pub(crate) fn evaluate(
    input: &HealthInput,
    now: SystemTime,
) -> (HealthStatus, BTreeMap<String, ServiceHealth>) {
    let age = |at: SystemTime| {
        now.duration_since(at)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
    };
    let mut status = HealthStatus::Healthy;
    let mut services = BTreeMap::new();
    let parts = [
        Some(("discord_gateway", gateway_service(input.gateway))),
        storage_service(&input.storage).map(|s| ("guild_settings", s)),
        Some(("voice_sessions", sessions_service(input))),
        Some(("agent", agent_service(input, &age))),
        input
            .turn_taking
            .map(|t| ("turn_taking", turn_taking_service(t))),
    ];
    for (name, (worst, service)) in parts.into_iter().flatten() {
        status = status.worst(worst);
        services.insert(name.to_string(), service);
    }
    status = status.worst(provider_services(input, &age, &mut services));
    (status, services)
}

/// The gateway: down is unhealthy, connecting degraded.
fn gateway_service(gateway: GatewayStatus) -> (HealthStatus, ServiceHealth) {
    let (worst, name) = match gateway {
        GatewayStatus::Disabled => (HealthStatus::Healthy, "disabled"),
        GatewayStatus::Connecting => (HealthStatus::Degraded, "connecting"),
        GatewayStatus::Up => (HealthStatus::Healthy, "up"),
        GatewayStatus::Down => (HealthStatus::Unhealthy, "down"),
    };
    (worst, ServiceHealth::status(name))
}

/// The guild settings store, when one is used.
fn storage_service(storage: &StorageStatus) -> Option<(HealthStatus, ServiceHealth)> {
    match storage {
        StorageStatus::NotUsed => None,
        StorageStatus::Up(backend) => {
            let mut s = ServiceHealth::status("up");
            s.kind = Some(backend.to_string());
            Some((HealthStatus::Healthy, s))
        }
        // Settings changes are refused and guilds run on defaults: an operator must act.
        StorageStatus::Down => Some((HealthStatus::Unhealthy, ServiceHealth::status("down"))),
    }
}

/// The voice sessions, degraded while someone speaks whom the bot cannot hear.
fn sessions_service(input: &HealthInput) -> (HealthStatus, ServiceHealth) {
    let mut sessions = ServiceHealth::status("up");
    sessions.active = Some(input.voice_sessions);
    sessions.dave = Some(input.dave_sessions);
    sessions.transport_only = Some(input.transport_only_sessions);
    if input.unheard_speakers == 0 {
        return (HealthStatus::Healthy, sessions);
    }
    // The bot is in a call and cannot hear someone who speaks: DAVE frames it cannot
    // decrypt, most likely.
    sessions.status = "degraded";
    sessions.reason = Some(format!(
        "{} speaker(s) Discord says are speaking but none of their audio decodes",
        input.unheard_speakers
    ));
    (HealthStatus::Degraded, sessions)
}

/// The turn taking: `kind` is what runs (`silero+smart-turn`); `fallback` when a model the
/// configuration asks for is not installed. The bot works either way (the energy gate and a
/// fixed silence are the documented fallback), so this never degrades the status.
fn turn_taking_service(t: TurnTaking) -> (HealthStatus, ServiceHealth) {
    let mut service = ServiceHealth::status(if t.fallback { "fallback" } else { "up" });
    service.kind = Some(format!("{}+{}", t.vad, t.turn_model));
    if t.fallback {
        service.reason = Some(
            "a turn-taking model or ONNX Runtime is not installed: run scripts/fetch-turn-models \
             (docs/MODELS.md)"
                .into(),
        );
    }
    (HealthStatus::Healthy, service)
}

/// The agent: down (its last call failed) or starting is degraded.
fn agent_service(
    input: &HealthInput,
    age: &dyn Fn(SystemTime) -> f64,
) -> (HealthStatus, ServiceHealth) {
    let mut agent = ServiceHealth::status(match input.agent_kind {
        None => "starting",
        Some(_) => {
            let failing = match (input.agent.last_error, input.agent.last_success) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some((_, error_at)), Some(success_at)) => error_at > success_at,
            };
            if failing {
                "down"
            } else {
                "up"
            }
        }
    });
    agent.kind = input.agent_kind.map(str::to_string);
    if let Some((kind, at)) = input.agent.last_error {
        agent.last_error = Some(kind);
        agent.last_error_age_seconds = Some(age(at));
    }
    let worst = if agent.status == "up" {
        HealthStatus::Healthy
    } else {
        HealthStatus::Degraded
    };
    (worst, agent)
}

/// Each provider as `stt:<id>`/`tts:<id>`: a role with no working provider is unhealthy, one
/// with an open circuit degraded; before they are built, both roles are `starting`.
fn provider_services(
    input: &HealthInput,
    age: &dyn Fn(SystemTime) -> f64,
    services: &mut BTreeMap<String, ServiceHealth>,
) -> HealthStatus {
    if !input.providers_ready {
        for role in ["stt", "tts"] {
            services.insert(role.to_string(), ServiceHealth::status("starting"));
        }
        return HealthStatus::Degraded;
    }
    let mut status = HealthStatus::Healthy;
    for role in ["stt", "tts"] {
        let mut working = 0;
        let mut open = 0;
        for p in input.providers.iter().filter(|p| p.role == role) {
            let (service, works) = provider_service(p, &age);
            if works {
                working += 1;
            } else {
                open += 1;
            }
            services.insert(format!("{role}:{}", p.id), service);
        }
        if working == 0 {
            status = HealthStatus::Unhealthy;
        } else if open > 0 {
            status = status.worst(HealthStatus::Degraded);
        }
    }
    status
}

impl OpsState {
    /// What `evaluate` needs, read now.
    pub(crate) fn health_input(&self) -> HealthInput {
        let components = self.components();
        let mut providers = Vec::new();
        for p in &components.stt {
            providers.push(ProviderView {
                role: "stt",
                id: p.id.clone(),
                plugin: p.plugin.clone(),
                snapshot: p.stats().snapshot(),
                worker: p.worker(),
            });
        }
        for p in &components.tts {
            providers.push(ProviderView {
                role: "tts",
                id: p.id.clone(),
                plugin: p.plugin.clone(),
                snapshot: p.stats().snapshot(),
                worker: p.worker(),
            });
        }
        HealthInput {
            gateway: self.gateway(),
            providers_ready: self.providers_ready(),
            providers,
            agent_kind: components.agent_kind,
            agent: self.agent_health(),
            voice_sessions: self.metrics().voice_connections_active(),
            unheard_speakers: super::hearing::UNHEARD_SPEAKERS.get(),
            dave_sessions: super::hearing::DAVE_SESSIONS.get(),
            transport_only_sessions: super::hearing::TRANSPORT_ONLY_SESSIONS.get(),
            storage: self.storage(),
            turn_taking: components.turn_taking,
        }
    }

    /// The full health report, now.
    pub fn health(&self) -> HealthReport {
        let now = SystemTime::now();
        let (status, services) = evaluate(&self.health_input(), now);
        HealthReport {
            status,
            timestamp: rfc3339(now),
            uptime_seconds: (self.uptime().as_secs_f64() * 1000.0).round() / 1000.0,
            version: env!("CARGO_PKG_VERSION"),
            environment: self.environment().to_string(),
            rss_bytes: rss_bytes(),
            shutting_down: self.is_draining(),
            services,
        }
    }
}

/// The process's resident memory in bytes (Linux `VmRSS`).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `2026-11-27T10:21:42.123Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::breaker::{CircuitSnapshot, OpenReason};
    use crate::plugins::stats::LastError;
    use plugin_api::abi::ErrorKind;

    /// Statistics with the circuit `open` or closed, and an error `error_age` s old.
    fn snapshot(open: bool, error_age: Option<u64>) -> StatsSnapshot {
        StatsSnapshot {
            calls: 2,
            successes: 1,
            failures: error_age
                .map(|_| [("timeout", 1)].into_iter().collect())
                .unwrap_or_default(),
            last_error: error_age.map(|s| LastError {
                kind: ErrorKind::Timeout,
                at: now() - Duration::from_secs(s),
            }),
            circuit: CircuitSnapshot {
                state: if open {
                    CircuitState::Open
                } else {
                    CircuitState::Closed
                },
                reason: open.then_some(OpenReason::Consecutive(3, ErrorKind::Timeout)),
                times_opened: u64::from(open),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn provider(role: &'static str, id: &str, snap: StatsSnapshot) -> ProviderView {
        ProviderView {
            role,
            id: id.into(),
            plugin: "fault".into(),
            snapshot: snap,
            worker: None,
        }
    }

    fn input(providers: Vec<ProviderView>) -> HealthInput {
        HealthInput {
            gateway: GatewayStatus::Disabled,
            providers_ready: true,
            providers,
            agent_kind: Some("echo"),
            agent: AgentHealth::default(),
            voice_sessions: 0,
            unheard_speakers: 0,
            dave_sessions: 0,
            transport_only_sessions: 0,
            storage: StorageStatus::NotUsed,
            turn_taking: None,
        }
    }

    #[test]
    fn the_turn_taking_fallback_is_shown_and_degrades_nothing() {
        use crate::config::{PipelineConfig, TurnModelKind, VadKind};
        let mut i = input(vec![
            provider("stt", "a", snapshot(false, None)),
            provider("tts", "b", snapshot(false, None)),
        ]);
        // The defaults ask for Silero and Smart Turn; none installed: the fallback runs,
        // with the warning `TurnModels::load` gives then.
        let missing = crate::pipeline::TurnModels {
            warning: Some("turn-taking models not installed".into()),
            ..Default::default()
        };
        i.turn_taking = Some(TurnTaking::of(&missing));
        let (status, services) = evaluate(&i, now());
        assert_eq!(status, HealthStatus::Healthy);
        let t = &services["turn_taking"];
        assert_eq!(
            (t.status, t.kind.as_deref()),
            ("fallback", Some("energy+silence"))
        );
        assert!(t
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("fetch-turn-models")));
        // Chosen on purpose: up, no reason.
        let energy = PipelineConfig {
            vad: VadKind::Energy,
            turn_model: TurnModelKind::None,
            ..PipelineConfig::default()
        };
        let chosen = crate::pipeline::TurnModels::load(&energy).unwrap();
        i.turn_taking = Some(TurnTaking::of(&chosen));
        let (_, services) = evaluate(&i, now());
        let t = &services["turn_taking"];
        assert_eq!((t.status, t.reason.as_deref()), ("up", None));
        // Before the providers are built there is no entry.
        i.turn_taking = None;
        assert!(!evaluate(&i, now()).1.contains_key("turn_taking"));
    }

    #[test]
    fn a_settings_store_that_could_not_open_is_unhealthy() {
        let mut i = input(vec![
            provider("stt", "a", snapshot(false, None)),
            provider("tts", "b", snapshot(false, None)),
        ]);
        i.storage = StorageStatus::Up("sqlite");
        let (status, services) = evaluate(&i, now());
        assert_eq!(status, HealthStatus::Healthy);
        assert_eq!(services["guild_settings"].kind.as_deref(), Some("sqlite"));
        i.storage = StorageStatus::Down;
        let (status, services) = evaluate(&i, now());
        assert_eq!(status, HealthStatus::Unhealthy);
        assert_eq!(services["guild_settings"].status, "down");
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(2_000)
    }

    #[test]
    fn out_of_rotation_while_the_circuit_is_not_closed() {
        assert!(!circuit_open(&snapshot(false, None)));
        assert!(
            !circuit_open(&snapshot(false, Some(1))),
            "one error is not an open circuit"
        );
        assert!(circuit_open(&snapshot(true, Some(1))));
        let mut half = snapshot(true, Some(1));
        half.circuit.state = CircuitState::HalfOpen;
        assert!(circuit_open(&half));
    }

    #[test]
    fn healthy_when_every_provider_works() {
        let (status, services) = evaluate(
            &input(vec![
                provider("stt", "a", snapshot(false, Some(50))),
                provider("tts", "b", snapshot(false, None)),
            ]),
            now(),
        );
        assert_eq!(status, HealthStatus::Healthy);
        assert_eq!(services["stt:a"].circuit, Some("closed"));
        assert_eq!(services["discord_gateway"].status, "disabled");
        assert_eq!(services["agent"].kind.as_deref(), Some("echo"));
    }

    #[test]
    fn degraded_when_a_provider_is_down_but_a_fallback_works() {
        let (status, services) = evaluate(
            &input(vec![
                provider("stt", "a", snapshot(true, Some(3))),
                provider("stt", "b", snapshot(false, None)),
                provider("tts", "c", snapshot(false, None)),
            ]),
            now(),
        );
        assert_eq!(status, HealthStatus::Degraded);
        assert_eq!(status.http_status(), 200);
        let a = &services["stt:a"];
        assert_eq!(
            (a.status, a.circuit, a.last_error),
            ("down", Some("open"), Some("timeout"))
        );
        assert_eq!(a.circuit_reason, Some("timeout"));
        assert_eq!(a.circuit_opened, Some(1));
        assert_eq!(a.last_error_age_seconds, Some(3.0));
    }

    #[test]
    fn unhealthy_when_a_role_has_no_working_provider_or_the_gateway_is_down() {
        let (status, _) = evaluate(
            &input(vec![
                provider("stt", "a", snapshot(false, None)),
                provider("tts", "c", snapshot(true, Some(9))),
            ]),
            now(),
        );
        assert_eq!(status, HealthStatus::Unhealthy);
        assert_eq!(status.http_status(), 503);
        let (status, _) = evaluate(
            &input(vec![provider("stt", "a", snapshot(false, None))]),
            now(),
        );
        assert_eq!(status, HealthStatus::Unhealthy, "no tts provider at all");
        let mut gateway_down = input(vec![
            provider("stt", "a", snapshot(false, None)),
            provider("tts", "c", snapshot(false, None)),
        ]);
        gateway_down.gateway = GatewayStatus::Down;
        assert_eq!(evaluate(&gateway_down, now()).0, HealthStatus::Unhealthy);
    }

    #[test]
    fn starting_and_a_failing_agent_are_degraded() {
        let mut starting = input(vec![]);
        starting.providers_ready = false;
        starting.agent_kind = None;
        let (status, services) = evaluate(&starting, now());
        assert_eq!(status, HealthStatus::Degraded);
        assert_eq!(services["stt"].status, "starting");

        let mut agent_down = input(vec![
            provider("stt", "a", snapshot(false, None)),
            provider("tts", "c", snapshot(false, None)),
        ]);
        agent_down.agent.last_error = Some(("timeout", now()));
        let (status, services) = evaluate(&agent_down, now());
        assert_eq!(status, HealthStatus::Degraded);
        assert_eq!(services["agent"].status, "down");
        assert_eq!(services["agent"].last_error, Some("timeout"));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
    }
}
