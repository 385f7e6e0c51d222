//! Graceful shutdown: the first SIGTERM or SIGINT starts it, a second one exits at once.
//!
//! From the first signal the process has `ops.shutdown_deadline_ms` in all: turns in flight
//! may finish during the drain budget ([`Shutdown::drain_budget`]); what is left (the
//! reserve) is for cancelling what did not finish, leaving voice channels, closing the ops
//! server and flushing Sentry, so the process exits 0 within the deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Exit status after a second signal: 128 + SIGINT.
pub(crate) const EXIT_ON_SECOND_SIGNAL: i32 = 130;

/// The most time kept back from draining for the rest of the shutdown.
const MAX_RESERVE: Duration = Duration::from_millis(1_500);

/// Signal handlers could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for {signal}: {reason}")]
pub struct ShutdownError {
    /// The signal.
    pub signal: &'static str,
    /// Why.
    pub reason: String,
}

/// The shutdown request and its deadline.
#[derive(Clone)]
pub struct Shutdown {
    token: CancellationToken,
    deadline: Duration,
    requested_at: Arc<Mutex<Option<Instant>>>,
}

impl Shutdown {
    /// A shutdown that only [`Shutdown::trigger`] starts (tests, embedding).
    pub(crate) fn manual(deadline: Duration) -> Shutdown {
        Shutdown {
            token: CancellationToken::new(),
            deadline,
            requested_at: Arc::new(Mutex::new(None)),
        }
    }

    /// Listens for SIGTERM and SIGINT: the first starts the shutdown, a second exits the
    /// process at once with status 130. Must be called inside the runtime.
    pub fn install(deadline: Duration) -> Result<Shutdown, ShutdownError> {
        let shutdown = Shutdown::manual(deadline);
        let mut signals = Signals::new()?;
        let me = shutdown.clone();
        tokio::spawn(async move {
            let first = signals.next().await;
            tracing::info!(
                signal = first,
                deadline_ms = me.deadline.as_millis() as u64,
                "shutting down: no new turns; in-flight turns may finish within the deadline"
            );
            me.trigger();
            let second = signals.next().await;
            eprintln!("{second} again: exiting now");
            std::process::exit(EXIT_ON_SECOND_SIGNAL);
        });
        Ok(shutdown)
    }

    /// Starts the shutdown (idempotent); the deadline counts from the first call.
    pub(crate) fn trigger(&self) {
        let mut at = match self.requested_at.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if at.is_none() {
            *at = Some(Instant::now());
        }
        self.token.cancel();
    }

    /// Whether a shutdown was requested.
    pub(crate) fn is_requested(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when a shutdown is requested.
    pub(crate) async fn requested(&self) {
        self.token.cancelled().await
    }

    /// The whole deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// When the deadline ends (`None` before a shutdown is requested).
    pub(crate) fn ends_at(&self) -> Option<Instant> {
        let at = match self.requested_at.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        };
        at.map(|t| t + self.deadline)
    }

    /// Time left until the deadline (the whole deadline before a request).
    pub fn remaining(&self) -> Duration {
        match self.ends_at() {
            Some(end) => end.saturating_duration_since(Instant::now()),
            None => self.deadline,
        }
    }

    /// The time kept back from draining for cancelling, closing and flushing.
    pub(crate) fn reserve(&self) -> Duration {
        (self.deadline / 4).min(MAX_RESERVE)
    }

    /// How long in-flight work may still run before it is cancelled.
    pub(crate) fn drain_budget(&self) -> Duration {
        self.remaining().saturating_sub(self.reserve())
    }
}

/// SIGTERM and SIGINT as one stream of names.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> Result<Signals, ShutdownError> {
        use tokio::signal::unix::{signal, SignalKind};
        let fail = |signal: &'static str| {
            move |e: std::io::Error| ShutdownError {
                signal,
                reason: e.to_string(),
            }
        };
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(fail("SIGTERM"))?,
            int: signal(SignalKind::interrupt()).map_err(fail("SIGINT"))?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> Result<Signals, ShutdownError> {
        Ok(Signals {})
    }

    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_counts_from_the_first_request() {
        let s = Shutdown::manual(Duration::from_secs(10));
        assert!(!s.is_requested());
        assert_eq!(s.remaining(), Duration::from_secs(10));
        assert_eq!(s.reserve(), Duration::from_millis(1_500));
        s.trigger();
        std::thread::sleep(Duration::from_millis(50));
        s.trigger();
        assert!(s.is_requested());
        let left = s.remaining();
        assert!(left <= Duration::from_millis(9_950), "{left:?}");
        assert!(left > Duration::from_secs(8), "{left:?}");
        assert!(s.drain_budget() <= left.saturating_sub(s.reserve()));
        let over = Shutdown::manual(Duration::from_millis(10));
        over.trigger();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(over.remaining(), Duration::ZERO);
        assert_eq!(over.drain_budget(), Duration::ZERO);
    }

    #[test]
    fn short_deadlines_keep_a_quarter_in_reserve() {
        let s = Shutdown::manual(Duration::from_millis(2_000));
        assert_eq!(s.reserve(), Duration::from_millis(500));
        assert_eq!(s.drain_budget(), Duration::from_millis(1_500));
    }
}
