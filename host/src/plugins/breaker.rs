//! A circuit breaker per provider: a small, pure state machine. The caller passes the time, so
//! every transition is tested without sleeping; [`ProviderStats`](super::ProviderStats) owns
//! one per provider and feeds it every call's outcome.
//!
//! - **Closed**: calls go through. It opens after [`BreakerConfig::failures`] failures in a
//!   row, or when the failures among the last [`BreakerConfig::window`] calls reach
//!   [`BreakerConfig::failure_rate`], or at once on an error that waiting cannot fix (`Auth`,
//!   `Config`).
//! - **Open**: the failover loops skip the provider (unless every other one failed: then it is
//!   the last resort) until [`BreakerConfig::cooldown`] has passed.
//! - **Half-open**: the cooldown is over; the next call is let through as a probe (one at a
//!   time). Its success closes the circuit; its failure opens it for another cooldown.
//!
//! Any success closes the circuit, whoever made the call. `InvalidInput` says nothing about the
//! provider's health (the input was refused) and counts neither way.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use plugin_api::abi::ErrorKind;
use serde::Serialize;

/// When a circuit opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Failures in a row that open the circuit. Default: 3.
    pub failures: u32,
    /// Share of failed calls among the last `window` that opens the circuit, 0 to 1; 0 turns
    /// the rate rule off. Default: 0.5.
    pub failure_rate: f64,
    /// Calls the failure rate is measured over; the rule applies once this many were made.
    /// Default: 20.
    pub window: u32,
    /// How long an open circuit is skipped before a probe call. Default: 30 s.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 3,
            failure_rate: 0.5,
            window: 20,
            cooldown: Duration::from_secs(30),
        }
    }
}

impl From<crate::config::CircuitConfig> for BreakerConfig {
    fn from(c: crate::config::CircuitConfig) -> Self {
        BreakerConfig {
            failures: c.failures,
            failure_rate: c.failure_rate,
            window: c.window,
            cooldown: Duration::from_millis(c.cooldown_ms),
        }
    }
}

/// The state the ops endpoints show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through.
    #[default]
    Closed,
    /// Calls skip the provider until the cooldown is over.
    Open,
    /// The cooldown is over: the next call is a probe.
    HalfOpen,
}

impl CircuitState {
    /// `closed`, `open` or `half_open`, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    /// 0 closed, 1 half-open, 2 open: a gauge value that grows with trouble.
    pub fn gauge(self) -> u8 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a circuit opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenReason {
    /// An error that waiting cannot fix (`Auth`, `Config`).
    Fatal(ErrorKind),
    /// This many failures in a row (the last of this kind).
    Consecutive(u32, ErrorKind),
    /// `failures` of the last `calls` failed (the last of this kind).
    FailureRate {
        /// Failed calls in the window.
        failures: u32,
        /// Calls in the window.
        calls: u32,
        /// The last failure's kind.
        kind: ErrorKind,
    },
}

impl OpenReason {
    /// The kind of the failure that opened the circuit.
    pub fn kind(self) -> ErrorKind {
        match self {
            OpenReason::Fatal(kind)
            | OpenReason::Consecutive(_, kind)
            | OpenReason::FailureRate { kind, .. } => kind,
        }
    }

    /// Whether waiting will not fix it (bad key, bad settings).
    pub(crate) fn is_fatal(self) -> bool {
        matches!(self, OpenReason::Fatal(_))
    }
}

impl fmt::Display for OpenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenReason::Fatal(kind) => write!(f, "a {kind} error, which waiting will not fix"),
            OpenReason::Consecutive(n, kind) => write!(f, "{n} failures in a row (last: {kind})"),
            OpenReason::FailureRate {
                failures,
                calls,
                kind,
            } => write!(
                f,
                "{failures} of the last {calls} calls failed (last: {kind})"
            ),
        }
    }
}

/// Whether a call may go to the provider now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The circuit is closed.
    Allowed,
    /// The circuit is half-open and this call is its probe.
    Probe,
    /// The circuit is open (or a probe is already out): skip the provider.
    Rejected {
        /// Until the next probe is due.
        retry_in: Duration,
    },
}

impl Admission {
    /// Whether the call may go ahead.
    #[cfg(test)]
    pub(crate) fn is_admitted(self) -> bool {
        !matches!(self, Admission::Rejected { .. })
    }
}

/// A change of state, for the caller to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The circuit opened: `first` when it was closed before (log it loudly, once), not when a
    /// probe failed.
    Opened {
        /// Why.
        reason: OpenReason,
        /// Whether it was closed before.
        first: bool,
    },
    /// The circuit closed again after being open this long.
    Closed {
        /// How long it was open.
        after: Duration,
    },
}

/// The breaker's state at one moment, for the ops endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CircuitSnapshot {
    /// Closed, open or half-open.
    pub state: CircuitState,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Calls in the failure-rate window.
    pub window_calls: u32,
    /// Failures among them.
    pub window_failures: u32,
    /// How often the circuit opened (from closed) since start.
    pub times_opened: u64,
    /// Why it is open, while open or half-open.
    pub reason: Option<OpenReason>,
    /// How long it has been open, while open or half-open.
    pub open_for: Option<Duration>,
    /// Until the next probe is due, while open.
    pub next_probe_in: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct OpenSpell {
    since: Instant,
    probe_at: Instant,
    reason: OpenReason,
    // When the probe now out was let through.
    probe_started: Option<Instant>,
}

/// The state machine. Not thread-safe by itself: [`ProviderStats`](super::ProviderStats) keeps
/// it behind its lock.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    open: Option<OpenSpell>,
    consecutive: u32,
    // Outcomes of the last `window` calls: `true` for a failure.
    window: VecDeque<bool>,
    times_opened: u64,
}

impl CircuitBreaker {
    /// A closed circuit.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            open: None,
            consecutive: 0,
            window: VecDeque::with_capacity(config.window as usize),
            times_opened: 0,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> CircuitState {
        match &self.open {
            None => CircuitState::Closed,
            Some(spell) if now < spell.probe_at => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }

    /// Asks to make a call at `now`. A [`Admission::Probe`] must be followed by a recorded
    /// outcome; a probe that never reports (its turn was cancelled) expires after a cooldown.
    pub(crate) fn admit(&mut self, now: Instant) -> Admission {
        let cooldown = self.config.cooldown;
        let Some(spell) = self.open.as_mut() else {
            return Admission::Allowed;
        };
        if now < spell.probe_at {
            return Admission::Rejected {
                retry_in: spell.probe_at - now,
            };
        }
        if let Some(started) = spell.probe_started {
            let expires = started + cooldown;
            if now < expires {
                return Admission::Rejected {
                    retry_in: expires - now,
                };
            }
        }
        spell.probe_started = Some(now);
        Admission::Probe
    }

    /// Records a successful call.
    pub(crate) fn record_success(&mut self, now: Instant) -> Option<Transition> {
        self.consecutive = 0;
        match self.open.take() {
            Some(spell) => {
                self.window.clear();
                Some(Transition::Closed {
                    after: now.saturating_duration_since(spell.since),
                })
            }
            None => {
                self.push(false);
                None
            }
        }
    }

    /// Records a failed call of `kind`.
    pub(crate) fn record_failure(&mut self, kind: ErrorKind, now: Instant) -> Option<Transition> {
        if kind == ErrorKind::InvalidInput {
            // Says nothing about the provider; frees the probe slot if this was the probe.
            if let Some(spell) = self.open.as_mut() {
                spell.probe_started = None;
            }
            return None;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        let cooldown = self.config.cooldown;
        if let Some(spell) = self.open.as_mut() {
            if is_fatal(kind) {
                spell.reason = OpenReason::Fatal(kind);
            }
            // A failed probe starts another cooldown; calls that were already under way when
            // the circuit opened change nothing.
            let probing = spell.probe_started.take().is_some() || now >= spell.probe_at;
            if !probing {
                return None;
            }
            spell.probe_at = now + cooldown;
            return Some(Transition::Opened {
                reason: spell.reason,
                first: false,
            });
        }
        self.push(true);
        let reason = self.should_open(kind)?;
        self.open = Some(OpenSpell {
            since: now,
            probe_at: now + cooldown,
            reason,
            probe_started: None,
        });
        self.times_opened += 1;
        self.window.clear();
        Some(Transition::Opened {
            reason,
            first: true,
        })
    }

    fn should_open(&self, kind: ErrorKind) -> Option<OpenReason> {
        if is_fatal(kind) {
            return Some(OpenReason::Fatal(kind));
        }
        if self.consecutive >= self.config.failures.max(1) {
            return Some(OpenReason::Consecutive(self.consecutive, kind));
        }
        let calls = self.window.len() as u32;
        let failures = self.window.iter().filter(|f| **f).count() as u32;
        let full = calls >= self.config.window.max(1);
        if self.config.failure_rate > 0.0
            && full
            && f64::from(failures) >= self.config.failure_rate * f64::from(calls)
        {
            return Some(OpenReason::FailureRate {
                failures,
                calls,
                kind,
            });
        }
        None
    }

    fn push(&mut self, failed: bool) {
        let window = self.config.window.max(1) as usize;
        while self.window.len() >= window {
            self.window.pop_front();
        }
        self.window.push_back(failed);
    }

    /// The state at `now`, for the ops endpoints.
    pub fn snapshot(&self, now: Instant) -> CircuitSnapshot {
        CircuitSnapshot {
            state: self.state(now),
            consecutive_failures: self.consecutive,
            window_calls: self.window.len() as u32,
            window_failures: self.window.iter().filter(|f| **f).count() as u32,
            times_opened: self.times_opened,
            reason: self.open.map(|s| s.reason),
            open_for: self.open.map(|s| now.saturating_duration_since(s.since)),
            next_probe_in: self
                .open
                .and_then(|s| s.probe_at.checked_duration_since(now))
                .filter(|d| !d.is_zero()),
        }
    }
}

/// Errors that waiting cannot fix: the circuit opens at the first one.
fn is_fatal(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Auth | ErrorKind::Config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn breaker(failures: u32, rate: f64, window: u32) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failures,
            failure_rate: rate,
            window,
            cooldown: 10 * SEC,
        })
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let t = Instant::now();
        let mut b = breaker(3, 0.0, 20);
        assert_eq!(b.record_failure(ErrorKind::Timeout, t), None);
        assert_eq!(b.record_failure(ErrorKind::Unavailable, t), None);
        assert_eq!(b.record_success(t), None);
        assert_eq!(b.record_failure(ErrorKind::Timeout, t), None);
        assert_eq!(b.record_failure(ErrorKind::Timeout, t), None);
        assert_eq!(b.state(t), CircuitState::Closed);
        assert_eq!(
            b.record_failure(ErrorKind::Unavailable, t),
            Some(Transition::Opened {
                reason: OpenReason::Consecutive(3, ErrorKind::Unavailable),
                first: true
            })
        );
        assert_eq!(b.state(t), CircuitState::Open);
        assert_eq!(b.admit(t + SEC), Admission::Rejected { retry_in: 9 * SEC });
        assert_eq!(b.snapshot(t).times_opened, 1);
    }

    #[test]
    fn auth_and_config_errors_open_at_once() {
        for kind in [ErrorKind::Auth, ErrorKind::Config] {
            let t = Instant::now();
            let mut b = breaker(5, 0.5, 20);
            let transition = b.record_failure(kind, t);
            assert_eq!(
                transition,
                Some(Transition::Opened {
                    reason: OpenReason::Fatal(kind),
                    first: true
                })
            );
            assert!(b.snapshot(t).reason.unwrap().is_fatal());
        }
    }

    #[test]
    fn opens_on_the_failure_rate_once_the_window_is_full() {
        let t = Instant::now();
        let mut b = breaker(100, 0.5, 10);
        // Alternating outcomes: never 100 in a row, but half of them fail.
        let mut opened = None;
        for i in 0..10 {
            opened = if i % 2 == 0 {
                b.record_success(t)
            } else {
                b.record_failure(ErrorKind::Timeout, t)
            };
            if i < 9 {
                assert_eq!(opened, None, "call {i}: the window is not full yet");
            }
        }
        assert_eq!(
            opened,
            Some(Transition::Opened {
                reason: OpenReason::FailureRate {
                    failures: 5,
                    calls: 10,
                    kind: ErrorKind::Timeout
                },
                first: true
            })
        );
        // The window slides: 1 failure in 10 keeps it closed.
        let mut b = breaker(100, 0.5, 10);
        for _ in 0..30 {
            b.record_success(t);
        }
        assert_eq!(b.record_failure(ErrorKind::Timeout, t), None);
        let snap = b.snapshot(t);
        assert_eq!((snap.window_calls, snap.window_failures), (10, 1));
    }

    #[test]
    fn after_the_cooldown_one_probe_goes_through_and_its_success_closes() {
        let t = Instant::now();
        let mut b = breaker(1, 0.0, 20);
        b.record_failure(ErrorKind::Unavailable, t);
        assert_eq!(b.state(t + 9 * SEC), CircuitState::Open);
        assert_eq!(b.state(t + 10 * SEC), CircuitState::HalfOpen);
        assert_eq!(b.snapshot(t + 4 * SEC).next_probe_in, Some(6 * SEC));
        assert_eq!(b.admit(t + 10 * SEC), Admission::Probe);
        assert!(!b.admit(t + 11 * SEC).is_admitted(), "one probe at a time");
        assert_eq!(
            b.record_success(t + 12 * SEC),
            Some(Transition::Closed { after: 12 * SEC })
        );
        assert_eq!(b.state(t + 12 * SEC), CircuitState::Closed);
        assert_eq!(b.admit(t + 12 * SEC), Admission::Allowed);
        assert_eq!(b.snapshot(t + 12 * SEC).consecutive_failures, 0);
    }

    #[test]
    fn a_failed_probe_opens_for_another_cooldown_without_a_first_time_signal() {
        let t = Instant::now();
        let mut b = breaker(1, 0.0, 20);
        b.record_failure(ErrorKind::Auth, t);
        assert_eq!(b.admit(t + 10 * SEC), Admission::Probe);
        assert_eq!(
            b.record_failure(ErrorKind::Auth, t + 11 * SEC),
            Some(Transition::Opened {
                reason: OpenReason::Fatal(ErrorKind::Auth),
                first: false
            })
        );
        assert_eq!(b.state(t + 20 * SEC), CircuitState::Open);
        assert_eq!(b.state(t + 21 * SEC), CircuitState::HalfOpen);
        assert_eq!(b.snapshot(t).times_opened, 1);
    }

    #[test]
    fn failures_of_calls_already_in_flight_do_not_reopen_or_announce() {
        let t = Instant::now();
        let mut b = breaker(1, 0.0, 20);
        assert!(b.record_failure(ErrorKind::Timeout, t).is_some());
        // A second call that started before the circuit opened fails too.
        assert_eq!(b.record_failure(ErrorKind::Timeout, t + SEC), None);
        assert_eq!(
            b.state(t + 10 * SEC),
            CircuitState::HalfOpen,
            "cooldown unchanged"
        );
    }

    #[test]
    fn an_abandoned_probe_expires_after_a_cooldown() {
        let t = Instant::now();
        let mut b = breaker(1, 0.0, 20);
        b.record_failure(ErrorKind::Timeout, t);
        assert_eq!(b.admit(t + 10 * SEC), Admission::Probe);
        assert_eq!(
            b.admit(t + 15 * SEC),
            Admission::Rejected { retry_in: 5 * SEC }
        );
        assert_eq!(b.admit(t + 20 * SEC), Admission::Probe);
    }

    #[test]
    fn invalid_input_counts_neither_way_but_frees_the_probe() {
        let t = Instant::now();
        let mut b = breaker(2, 0.5, 2);
        for _ in 0..5 {
            assert_eq!(b.record_failure(ErrorKind::InvalidInput, t), None);
        }
        assert_eq!(b.state(t), CircuitState::Closed);
        assert_eq!(b.snapshot(t).window_calls, 0);
        b.record_failure(ErrorKind::Timeout, t);
        b.record_failure(ErrorKind::Timeout, t);
        assert_eq!(b.admit(t + 10 * SEC), Admission::Probe);
        assert_eq!(
            b.record_failure(ErrorKind::InvalidInput, t + 10 * SEC),
            None
        );
        assert_eq!(
            b.admit(t + 10 * SEC),
            Admission::Probe,
            "another probe may go"
        );
    }

    #[test]
    fn any_success_closes_an_open_circuit() {
        let t = Instant::now();
        let mut b = breaker(1, 0.0, 20);
        b.record_failure(ErrorKind::Unavailable, t);
        // A last-resort call while open succeeds.
        assert_eq!(
            b.record_success(t + SEC),
            Some(Transition::Closed { after: SEC })
        );
        assert_eq!(
            b.snapshot(t + SEC),
            CircuitSnapshot {
                times_opened: 1,
                ..CircuitSnapshot::default()
            }
        );
    }

    #[test]
    fn states_have_stable_names_and_gauges() {
        assert_eq!(CircuitState::HalfOpen.as_str(), "half_open");
        assert_eq!(
            serde_json::to_string(&CircuitState::HalfOpen).unwrap(),
            "\"half_open\""
        );
        assert_eq!(
            [
                CircuitState::Closed,
                CircuitState::HalfOpen,
                CircuitState::Open
            ]
            .map(|s| s.gauge()),
            [0, 1, 2]
        );
        assert_eq!(
            OpenReason::Consecutive(3, ErrorKind::Timeout).to_string(),
            "3 failures in a row (last: timeout)"
        );
    }
}
