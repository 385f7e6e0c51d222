//! Failover across the providers of one role, in the configured order, within a turn's time
//! budget. A provider whose circuit is open is skipped, and tried only as the last resort,
//! after every other provider failed; a half-open one gets its probe. So no turn is lost while
//! any provider works, and a provider that is down costs a turn nothing but a skip.
//!
//! [`FailoverOrder`] decides the order (the turn loop uses it for text-to-speech, one sentence
//! at a time); [`transcribe`] is the whole speech-to-text failover.

use std::sync::Arc;
use std::time::Duration;

use plugin_api::abi::{TranscribeOptions, Transcript, Word};
use tokio::time::Instant;

use super::breaker::Admission;
use super::provider::{ProviderCore, ProviderError, SpeechToTextProvider};
use super::stats::ProviderStats;

/// A provider in a failover list.
pub trait Member {
    /// Its id from config.
    fn id(&self) -> &str;
    /// Its statistics and circuit breaker.
    fn stats(&self) -> &Arc<ProviderStats>;
    /// Its per-call timeout.
    fn timeout(&self) -> Duration;
}

impl<P: std::ops::Deref<Target = ProviderCore>> Member for P {
    fn id(&self) -> &str {
        &self.id
    }
    fn stats(&self) -> &Arc<ProviderStats> {
        ProviderCore::stats(self)
    }
    fn timeout(&self) -> Duration {
        ProviderCore::timeout(self)
    }
}

/// Why a provider is being tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Its circuit is closed.
    Normal,
    /// Its circuit is half-open: this call is the probe.
    Probe,
    /// Its circuit is open, but every other provider failed.
    LastResort,
}

/// The providers to try for one call, in order: those whose circuit admits a call, in config
/// order, then those skipped for an open circuit. Admission is asked lazily, just before each
/// provider is tried, so a probe is only taken when it is used.
pub(crate) struct FailoverOrder<'a, P> {
    providers: &'a [Arc<P>],
    next: usize,
    skipped: Vec<usize>,
    last_resort: usize,
}

impl<'a, P: Member> FailoverOrder<'a, P> {
    /// The order for `providers` (in failover order).
    pub fn new(providers: &'a [Arc<P>]) -> Self {
        FailoverOrder {
            providers,
            next: 0,
            skipped: Vec::new(),
            last_resort: 0,
        }
    }
}

impl<'a, P: Member> Iterator for FailoverOrder<'a, P> {
    type Item = (&'a Arc<P>, Attempt);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(provider) = self.providers.get(self.next) {
            self.next += 1;
            match provider.stats().admit() {
                Admission::Allowed => return Some((provider, Attempt::Normal)),
                Admission::Probe => {
                    tracing::debug!(provider = provider.id(), "probing a half-open circuit");
                    return Some((provider, Attempt::Probe));
                }
                Admission::Rejected { retry_in } => {
                    tracing::debug!(
                        provider = provider.id(),
                        "skipped: circuit open, next probe in {:.1} s",
                        retry_in.as_secs_f64()
                    );
                    self.skipped.push(self.next - 1);
                }
            }
        }
        let index = *self.skipped.get(self.last_resort)?;
        self.last_resort += 1;
        let provider = &self.providers[index];
        tracing::debug!(
            provider = provider.id(),
            "every other provider failed: trying it though its circuit is open"
        );
        Some((provider, Attempt::LastResort))
    }
}

/// The time a turn may spend on one role, failovers included.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    total: Duration,
    deadline: Instant,
}

impl Budget {
    /// A budget of `total`, starting now.
    pub fn new(total: Duration) -> Self {
        Budget {
            total,
            deadline: Instant::now() + total,
        }
    }

    /// When it is spent.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The limit for a call whose own timeout is `timeout`: the smaller of that and what is
    /// left; `None` once the budget is spent.
    pub fn limit(&self, timeout: Duration) -> Option<Duration> {
        let left = self.deadline.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then(|| left.min(timeout))
    }

    /// The error reported for the first provider not tried because the budget was spent.
    pub fn spent(&self, provider: &str, role: &str) -> ProviderError {
        ProviderError::timeout(
            provider,
            &format!("not tried: the turn's {role} budget"),
            self.total,
        )
    }
}

/// A transcript, who made it, and the failures of the providers tried before.
#[derive(Debug, Clone)]
pub struct Transcribed {
    /// The transcript.
    pub transcript: Transcript,
    /// Its words with their timings and probabilities, where the provider reports them.
    pub words: Vec<Word>,
    /// The id of the provider that made it.
    pub provider: String,
    /// The errors of the providers that failed first, in order.
    pub errors: Vec<ProviderError>,
}

/// Transcribes with the first provider that answers, in failover order, within `budget`.
/// Returns the transcript, or every error met. Input refused as invalid is not tried
/// elsewhere ([`ProviderError::should_fail_over`]).
pub async fn transcribe(
    providers: &[Arc<SpeechToTextProvider>],
    audio_16k_mono: Arc<[i16]>,
    options: TranscribeOptions,
    budget: Duration,
) -> Result<Transcribed, Vec<ProviderError>> {
    let budget = Budget::new(budget);
    let mut errors = Vec::new();
    for (provider, _) in FailoverOrder::new(providers) {
        let Some(limit) = budget.limit(provider.timeout()) else {
            errors.push(budget.spent(&provider.id, "speech-to-text"));
            break;
        };
        match provider
            .transcribe_within(audio_16k_mono.clone(), options.clone(), limit)
            .await
        {
            Ok(detailed) => {
                return Ok(Transcribed {
                    transcript: detailed.transcript,
                    words: detailed.words.into_vec(),
                    provider: provider.id.clone(),
                    errors,
                })
            }
            Err(e) => {
                // The provider handle logged it (once).
                let fail_over = e.should_fail_over();
                tracing::debug!(provider = %provider.id, fail_over, "speech-to-text failed: {e}");
                errors.push(e);
                if !fail_over {
                    break;
                }
            }
        }
    }
    Err(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::abi::{ErrorKind, Role};

    use crate::plugins::breaker::BreakerConfig;

    struct Fake {
        id: &'static str,
        stats: Arc<ProviderStats>,
    }

    impl Member for Fake {
        fn id(&self) -> &str {
            self.id
        }
        fn stats(&self) -> &Arc<ProviderStats> {
            &self.stats
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(1)
        }
    }

    fn fake(id: &'static str) -> Arc<Fake> {
        Arc::new(Fake {
            id,
            stats: Arc::new(
                ProviderStats::new(id, "fake", Role::SpeechToText).with_breaker(BreakerConfig {
                    failures: 1,
                    cooldown: Duration::from_secs(60),
                    ..BreakerConfig::default()
                }),
            ),
        })
    }

    fn order(providers: &[Arc<Fake>]) -> Vec<(&'static str, Attempt)> {
        FailoverOrder::new(providers)
            .map(|(p, a)| (p.id, a))
            .collect()
    }

    #[test]
    fn closed_circuits_go_in_config_order_and_open_ones_last() {
        let providers = [fake("a"), fake("b"), fake("c")];
        assert_eq!(
            order(&providers),
            [
                ("a", Attempt::Normal),
                ("b", Attempt::Normal),
                ("c", Attempt::Normal)
            ]
        );
        providers[0].stats.failure(ErrorKind::Auth);
        providers[1].stats.failure(ErrorKind::Timeout);
        assert_eq!(
            order(&providers),
            [
                ("c", Attempt::Normal),
                ("a", Attempt::LastResort),
                ("b", Attempt::LastResort)
            ]
        );
    }

    #[test]
    fn admission_is_asked_only_when_a_provider_is_reached() {
        let providers = [fake("a"), fake("b")];
        let mut it = FailoverOrder::new(&providers);
        assert_eq!(it.next().map(|(p, _)| p.id), Some("a"));
        // "b" was never asked, so a failure now still shows in the order.
        providers[1].stats.failure(ErrorKind::Unavailable);
        assert_eq!(
            it.next().map(|(p, a)| (p.id, a)),
            Some(("b", Attempt::LastResort))
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn budgets_cap_each_call_and_run_out() {
        let budget = Budget::new(Duration::from_secs(10));
        let limit = budget.limit(Duration::from_secs(3)).unwrap();
        assert_eq!(limit, Duration::from_secs(3));
        assert!(budget.limit(Duration::from_secs(60)).unwrap() <= Duration::from_secs(10));
        let spent = Budget::new(Duration::ZERO);
        assert_eq!(spent.limit(Duration::from_secs(3)), None);
        let e = spent.spent("x", "speech-to-text");
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(e.message.contains("speech-to-text budget"), "{}", e.message);
    }
}
