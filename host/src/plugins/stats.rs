//! Per-provider statistics: calls, outcomes by error kind, latency, last error, and the
//! provider's circuit breaker, which every recorded outcome feeds. The ops endpoints read them
//! (`/health`, `/metrics`) through [`ProviderStats::snapshot`]; the failover loops ask
//! [`ProviderStats::admit`] before each call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use plugin_api::abi::{ErrorKind, Role};

use super::breaker::{Admission, BreakerConfig, CircuitBreaker, CircuitSnapshot, Transition};

/// Upper bounds (seconds) of the latency histogram buckets.
pub(crate) const LATENCY_BUCKETS: [f64; 9] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0];

/// A latency histogram with fixed buckets (cumulative counts are computed on read).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Count per bucket (non-cumulative), one more than [`LATENCY_BUCKETS`] for +Inf.
    pub counts: [u64; LATENCY_BUCKETS.len() + 1],
    /// Sum of observations, seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// Records one observation.
    pub(crate) fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let idx = LATENCY_BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[idx] += 1;
        self.sum += s;
        self.count += 1;
    }

    /// Cumulative counts per bucket bound, ending with +Inf.
    pub(crate) fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        let mut out = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            total += c;
            out.push((
                LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY),
                total,
            ));
        }
        out
    }
}

/// The last failure of a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct LastError {
    /// Its kind.
    pub kind: ErrorKind,
    /// When it happened.
    pub at: SystemTime,
}

/// Statistics for one provider. Cheap to update from any thread.
#[derive(Debug)]
pub struct ProviderStats {
    /// Provider id.
    pub id: String,
    /// The plugin behind it.
    pub plugin: String,
    /// Its role.
    pub role: Role,
    calls: AtomicU64,
    successes: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    failures: BTreeMap<&'static str, u64>,
    latency: Histogram,
    last_error: Option<LastError>,
    last_success: Option<SystemTime>,
    circuit: CircuitBreaker,
    health: Option<HealthAnswer>,
}

/// A copy of a provider's statistics at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Calls made (each transcription or synthesis, health probes excluded).
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Failures by error kind (`timeout`, `auth`…).
    pub failures: BTreeMap<&'static str, u64>,
    /// Latency of successful calls (STT: whole call; TTS: time to first audio).
    pub latency: Histogram,
    /// The last failure.
    pub last_error: Option<LastError>,
    /// When the last call succeeded.
    pub last_success: Option<SystemTime>,
    /// The circuit breaker: closed, open or half-open, and why.
    pub circuit: CircuitSnapshot,
    /// The provider's last answer to a health check, if one was made.
    pub health: Option<HealthAnswer>,
}

/// A provider's answer to a health check (its plugin's `health()`), or why it gave none.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthAnswer {
    /// Whether it said it can serve calls.
    pub healthy: bool,
    /// What it checked, or what is wrong (the plugin's words, or the call's error).
    pub detail: String,
    /// When it answered.
    pub at: SystemTime,
}

impl ProviderStats {
    /// Empty statistics, with a closed circuit breaker of the default configuration.
    pub fn new(id: &str, plugin: &str, role: Role) -> Self {
        ProviderStats {
            id: id.to_string(),
            plugin: plugin.to_string(),
            role,
            calls: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                failures: BTreeMap::new(),
                latency: Histogram::default(),
                last_error: None,
                last_success: None,
                circuit: CircuitBreaker::new(BreakerConfig::default()),
                health: None,
            }),
        }
    }

    /// The same, with a circuit breaker configured by `config`.
    pub(crate) fn with_breaker(self, config: BreakerConfig) -> Self {
        self.lock().circuit = CircuitBreaker::new(config);
        self
    }

    /// The circuit breaker's configuration.
    pub(crate) fn breaker_config(&self) -> BreakerConfig {
        *self.lock().circuit.config()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Asks the circuit breaker whether a call may go to the provider now (a half-open
    /// circuit lets one probe through). Record the call's outcome with [`success`](Self::success)
    /// or [`failure`](Self::failure).
    pub(crate) fn admit(&self) -> Admission {
        self.lock().circuit.admit(Instant::now())
    }

    /// Records a successful call and its latency; returns the circuit's change, if any.
    pub fn success(&self, latency: Duration) -> Option<Transition> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.successes.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.latency.observe(latency);
        inner.last_success = Some(SystemTime::now());
        inner.circuit.record_success(Instant::now())
    }

    /// Records a failed call; returns the circuit's change, if any.
    pub fn failure(&self, kind: ErrorKind) -> Option<Transition> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        *inner.failures.entry(kind.as_str()).or_default() += 1;
        inner.last_error = Some(LastError {
            kind,
            at: SystemTime::now(),
        });
        inner.circuit.record_failure(kind, Instant::now())
    }

    /// The circuit breaker's state now.
    pub fn circuit(&self) -> CircuitSnapshot {
        self.lock().circuit.snapshot(Instant::now())
    }

    /// A consistent copy.
    pub fn snapshot(&self) -> StatsSnapshot {
        let inner = self.lock();
        StatsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            successes: self.successes.load(Ordering::Relaxed),
            failures: inner.failures.clone(),
            latency: inner.latency.clone(),
            last_error: inner.last_error.clone(),
            last_success: inner.last_success,
            circuit: inner.circuit.snapshot(Instant::now()),
            health: inner.health.clone(),
        }
    }

    /// Records the answer to a health check.
    pub(crate) fn record_health(&self, answer: HealthAnswer) {
        self.lock().health = Some(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_latency_are_counted() {
        let s = ProviderStats::new("w", "local-whisper", Role::SpeechToText);
        s.success(Duration::from_millis(80));
        s.success(Duration::from_millis(700));
        s.failure(ErrorKind::Timeout);
        let snap = s.snapshot();
        assert_eq!((snap.calls, snap.successes), (3, 2));
        assert_eq!(snap.failures.get("timeout"), Some(&1));
        assert_eq!(snap.last_error.unwrap().kind, ErrorKind::Timeout);
        let cum = snap.latency.cumulative();
        assert_eq!(cum[0], (0.05, 0));
        assert_eq!(cum[1], (0.1, 1));
        assert_eq!(cum.last().unwrap().1, 2);
    }

    #[test]
    fn outcomes_drive_the_circuit_and_the_snapshot_shows_it() {
        use super::super::breaker::{CircuitState, OpenReason};
        let s = ProviderStats::new("cloud", "openai-whisper", Role::SpeechToText).with_breaker(
            BreakerConfig {
                failures: 2,
                cooldown: Duration::from_millis(50),
                ..BreakerConfig::default()
            },
        );
        assert_eq!(s.breaker_config().failures, 2);
        assert!(s.admit().is_admitted());
        assert_eq!(s.failure(ErrorKind::Timeout), None);
        assert!(s.failure(ErrorKind::Timeout).is_some());
        let snap = s.snapshot();
        assert_eq!(snap.circuit.state, CircuitState::Open);
        assert_eq!(
            snap.circuit.reason,
            Some(OpenReason::Consecutive(2, ErrorKind::Timeout))
        );
        assert!(!s.admit().is_admitted());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(s.circuit().state, CircuitState::HalfOpen);
        assert!(s.admit().is_admitted());
        assert!(matches!(
            s.success(Duration::from_millis(5)),
            Some(Transition::Closed { .. })
        ));
        assert_eq!(s.snapshot().circuit.state, CircuitState::Closed);
        assert_eq!(s.snapshot().circuit.times_opened, 1);
    }
}
