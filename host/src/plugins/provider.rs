//! Host-side provider handles: every plugin call runs in `spawn_blocking`, under a per-provider
//! timeout and concurrency limit, and comes back as a typed [`ProviderError`]. Every outcome
//! feeds the provider's statistics and circuit breaker ([`ProviderStats`]), and is logged once:
//! a circuit that opens on an error waiting cannot fix (a refused key) is an `error` line the
//! first time only, not one per turn.
//!
//! **Architecture Invariant:** no plugin call runs on an async worker thread or an audio
//! thread. A call that outlives its timeout is abandoned (its thread finishes on its own, still
//! holding one of the provider's permits) and reported as `Timeout`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugin_api::abi::{
    DetailedTranscript, ErrorKind, HealthReport, PartialTranscript, PluginError, Role,
    SynthesisOptions, TranscribeOptions, Transcript, Voice,
};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{timeout_at, Instant};

use super::backend::{ChunkSource, SttBackend, SttStreamBackend, TtsBackend, WorkerStatus};
use super::breaker::{BreakerConfig, CircuitState, Transition};
use super::loader::PluginDescription;
use super::stats::{HealthAnswer, ProviderStats};
use crate::config::ProviderConfig;

/// A failed provider call, tagged with the provider's id.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("provider `{provider}`: {kind} error: {message}")]
pub struct ProviderError {
    /// The provider id from config.
    pub provider: String,
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The plugin's message (never a secret).
    pub message: String,
    /// Whether trying again may help.
    pub retryable: bool,
    /// How long the provider asked us to wait.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    pub(crate) fn from_plugin(provider: &str, e: PluginError) -> Self {
        ProviderError {
            provider: provider.to_string(),
            kind: e.kind,
            message: e.message().to_string(),
            retryable: e.retryable,
            retry_after: e.retry_after(),
        }
    }

    pub(crate) fn timeout(provider: &str, what: &str, after: Duration) -> Self {
        ProviderError {
            provider: provider.to_string(),
            kind: ErrorKind::Timeout,
            message: format!("{what} took longer than {} ms", after.as_millis()),
            retryable: true,
            retry_after: None,
        }
    }

    pub(crate) fn internal(provider: &str, message: impl Into<String>) -> Self {
        ProviderError {
            provider: provider.to_string(),
            kind: ErrorKind::Internal,
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    /// Whether the next provider in the failover list should be tried.
    pub fn should_fail_over(&self) -> bool {
        !matches!(self.kind, ErrorKind::InvalidInput)
    }
}

/// Records a successful call; logs the circuit closing again.
pub(crate) fn record_success(stats: &ProviderStats, latency: Duration) {
    if let Some(Transition::Closed { after }) = stats.success(latency) {
        tracing::info!(
            provider = %stats.id,
            plugin = %stats.plugin,
            "provider `{}` answers again: circuit closed after {:.1} s open",
            stats.id,
            after.as_secs_f64()
        );
    }
}

/// Records a failed call and logs it once: the circuit opening loudly (an `error` when waiting
/// cannot fix it), other failures as warnings while the circuit is closed, quietly while it is
/// open (failed probes, calls that were under way when it opened).
pub(crate) fn record_failure(stats: &ProviderStats, error: &ProviderError) {
    let transition = stats.failure(error.kind);
    let cooldown = stats.breaker_config().cooldown.as_secs_f64();
    let (id, plugin, kind) = (&stats.id, &stats.plugin, error.kind.as_str());
    match transition {
        Some(Transition::Opened {
            reason,
            first: true,
        }) if reason.is_fatal() => tracing::error!(
            provider = %id, plugin = %plugin, kind, circuit = "open",
            "{error}; waiting will not fix this, so the circuit is open: turns skip `{id}` and \
             probe it every {cooldown:.0} s (this is logged once)"
        ),
        Some(Transition::Opened {
            reason,
            first: true,
        }) => tracing::warn!(
            provider = %id, plugin = %plugin, kind, circuit = "open",
            "{error}; circuit opened after {reason}: turns skip `{id}` for {cooldown:.0} s, \
             then probe it"
        ),
        Some(Transition::Opened { first: false, .. }) => tracing::debug!(
            provider = %id, plugin = %plugin, kind, circuit = "open",
            "probe failed, the circuit stays open for {cooldown:.0} s: {error}"
        ),
        _ if stats.circuit().state != CircuitState::Closed => tracing::debug!(
            provider = %id, plugin = %plugin, kind, circuit = "open",
            "{error}"
        ),
        _ => tracing::warn!(provider = %id, plugin = %plugin, kind, "{error}"),
    }
}

/// Records what a health check found in the provider's statistics, and returns it.
fn record_health(
    stats: &ProviderStats,
    result: Result<HealthReport, ProviderError>,
) -> HealthAnswer {
    let answer = match result {
        Ok(report) => HealthAnswer {
            healthy: report.healthy,
            detail: report.detail.to_string(),
            at: std::time::SystemTime::now(),
        },
        Err(e) => HealthAnswer {
            healthy: false,
            detail: format!("the health check failed: {e}"),
            at: std::time::SystemTime::now(),
        },
    };
    stats.record_health(answer.clone());
    answer
}

/// Runs `f` on the blocking pool under the provider's permit and deadline (which `f` gets,
/// so that a worker call can kill a worker that misses it).
async fn call_blocking<T: Send + 'static>(
    stats: Option<&ProviderStats>,
    provider: &str,
    what: &str,
    permits: &Arc<Semaphore>,
    limit: Duration,
    f: impl FnOnce(std::time::Instant) -> Result<T, PluginError> + Send + 'static,
) -> Result<T, ProviderError> {
    let started = Instant::now();
    let deadline = started + limit;
    let result = match timeout_at(deadline, permits.clone().acquire_owned()).await {
        Ok(Ok(permit)) => {
            let std_deadline = deadline.into_std();
            let task = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                f(std_deadline)
            });
            match timeout_at(deadline, task).await {
                Err(_) => Err(ProviderError::timeout(provider, what, limit)),
                Ok(Err(join)) => Err(ProviderError::internal(
                    provider,
                    format!("{what} failed on its worker thread: {join}"),
                )),
                Ok(Ok(result)) => result.map_err(|e| ProviderError::from_plugin(provider, e)),
            }
        }
        Ok(Err(_)) => Err(ProviderError::internal(provider, "provider is shut down")),
        Err(_) => Err(ProviderError::timeout(
            provider,
            &format!("{what} (waiting for a free slot; earlier calls are stuck)"),
            limit,
        )),
    };
    match (stats, &result) {
        (Some(stats), Ok(_)) => record_success(stats, started.elapsed()),
        (Some(stats), Err(e)) => record_failure(stats, e),
        (None, _) => {}
    }
    result
}

/// Declares a provider handle: its [`ProviderCore`] (which it derefs to) and its backend,
/// with `new` and `worker`.
macro_rules! provider_handle {
    ($(#[$doc:meta])* $name:ident($backend:ty, $role:expr)) => {
        $(#[$doc])*
        pub struct $name {
            core: ProviderCore,
            inner: Arc<$backend>,
        }

        impl std::ops::Deref for $name {
            type Target = ProviderCore;
            fn deref(&self) -> &ProviderCore {
                &self.core
            }
        }

        impl $name {
            pub(crate) fn new(
                id: &str,
                info: PluginDescription,
                inner: $backend,
                cfg: &ProviderConfig,
            ) -> Self {
                $name {
                    core: ProviderCore::new(id, info, $role, cfg),
                    inner: Arc::new(inner),
                }
            }

            /// The worker process serving this provider, when it is isolated.
            pub fn worker(&self) -> Option<WorkerStatus> {
                self.inner.worker()
            }
        }
    };
}

/// What both kinds of provider handle share: who they are, the plugin behind them, their
/// timeout, their call permits and their statistics. The handles deref to it.
pub struct ProviderCore {
    /// Provider id from config.
    pub id: String,
    /// The plugin behind it.
    pub plugin: String,
    info: PluginDescription,
    timeout: Duration,
    permits: Arc<Semaphore>,
    stats: Arc<ProviderStats>,
}

impl ProviderCore {
    fn new(id: &str, info: PluginDescription, role: Role, cfg: &ProviderConfig) -> Self {
        let breaker = BreakerConfig::from(cfg.circuit);
        ProviderCore {
            stats: Arc::new(ProviderStats::new(id, &info.name, role).with_breaker(breaker)),
            id: id.to_string(),
            plugin: info.name.clone(),
            info,
            timeout: Duration::from_millis(cfg.timeout_ms),
            permits: Arc::new(Semaphore::new(cfg.max_concurrent_calls)),
        }
    }

    /// Call statistics (for text to speech, latency is time to first audio).
    pub fn stats(&self) -> &Arc<ProviderStats> {
        &self.stats
    }

    /// The per-call timeout (for text to speech, for the first chunk and each one after it).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// What the plugin behind it says of itself.
    pub fn plugin_info(&self) -> &PluginDescription {
        &self.info
    }

    /// Runs `f` on the blocking pool under this provider's permits, within `limit`;
    /// `record` feeds the outcome to the statistics.
    async fn call<T: Send + 'static>(
        &self,
        what: &str,
        record: bool,
        limit: Duration,
        f: impl FnOnce(std::time::Instant) -> Result<T, PluginError> + Send + 'static,
    ) -> Result<T, ProviderError> {
        let stats = record.then_some(&*self.stats);
        call_blocking(stats, &self.id, what, &self.permits, limit, f).await
    }

    /// Asks the plugin for its health with `health`, and records the answer (for `/health`).
    async fn check_health_with(
        &self,
        health: impl FnOnce(std::time::Instant) -> Result<HealthReport, PluginError> + Send + 'static,
    ) -> HealthAnswer {
        record_health(
            &self.stats,
            self.call("health", false, self.timeout, health).await,
        )
    }
}

provider_handle! {
    /// A configured speech-to-text provider.
    SpeechToTextProvider(SttBackend, Role::SpeechToText)
}

impl SpeechToTextProvider {
    /// Transcribes 16 kHz mono audio, within the provider's timeout.
    pub async fn transcribe(
        &self,
        audio_16k_mono: Arc<[i16]>,
        options: TranscribeOptions,
    ) -> Result<Transcript, ProviderError> {
        self.transcribe_within(audio_16k_mono, options, self.timeout)
            .await
            .map(|detailed| detailed.transcript)
    }

    /// Transcribes 16 kHz mono audio, within `limit` (a turn's remaining budget may be shorter
    /// than the provider's timeout), with the words where the provider reports them.
    pub(crate) async fn transcribe_within(
        &self,
        audio_16k_mono: Arc<[i16]>,
        options: TranscribeOptions,
        limit: Duration,
    ) -> Result<DetailedTranscript, ProviderError> {
        let inner = self.inner.clone();
        self.call("transcribe", true, limit, move |deadline| {
            inner.transcribe(&audio_16k_mono, &options, deadline)
        })
        .await
    }

    /// Starts a streaming transcription; `None` when the provider does not stream.
    pub async fn start_stream(
        &self,
        options: TranscribeOptions,
    ) -> Result<Option<TranscriptionStream>, ProviderError> {
        let inner = self.inner.clone();
        let stream = self
            .call("start_stream", false, self.timeout, move |deadline| {
                inner.start_stream(&options, deadline)
            })
            .await?;
        Ok(stream.map(|stream| TranscriptionStream {
            provider: self.id.clone(),
            stream: Arc::from(stream),
            permits: self.permits.clone(),
            timeout: self.timeout,
            stats: self.stats.clone(),
        }))
    }

    /// Asks the plugin for its health and records the answer (for `/health`).
    pub async fn check_health(&self) -> HealthAnswer {
        let inner = self.inner.clone();
        self.check_health_with(move |deadline| inner.health(deadline))
            .await
    }
}

/// A streaming transcription: audio pushed while the speaker talks, partial transcripts back,
/// the final one at the end. Each call runs off the async threads under the provider's
/// timeout; dropping the stream cancels it.
pub struct TranscriptionStream {
    provider: String,
    stream: Arc<dyn SttStreamBackend>,
    permits: Arc<Semaphore>,
    timeout: Duration,
    stats: Arc<ProviderStats>,
}

impl TranscriptionStream {
    /// Pushes 16 kHz mono audio that follows what was pushed before.
    pub async fn push(
        &self,
        samples: Arc<[i16]>,
    ) -> Result<Option<PartialTranscript>, ProviderError> {
        let stream = self.stream.clone();
        call_blocking(
            None,
            &self.provider,
            "stream push",
            &self.permits,
            self.timeout,
            move |deadline| stream.push(&samples, deadline),
        )
        .await
    }

    /// Ends the audio: the final transcript (counted in the provider's statistics).
    pub async fn finish(&self) -> Result<DetailedTranscript, ProviderError> {
        let stream = self.stream.clone();
        call_blocking(
            Some(&self.stats),
            &self.provider,
            "stream finish",
            &self.permits,
            self.timeout,
            move |deadline| stream.finish(deadline),
        )
        .await
    }

    /// Abandons the stream.
    pub fn cancel(&self) {
        self.stream.cancel();
    }
}

impl Drop for TranscriptionStream {
    fn drop(&mut self) {
        self.stream.cancel();
    }
}

provider_handle! {
    /// A configured text-to-speech provider.
    TextToSpeechProvider(TtsBackend, Role::TextToSpeech)
}

/// One piece of synthesized audio, mono.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Mono samples.
    pub samples: Vec<i16>,
    /// Samples per second.
    pub sample_rate: u32,
}

impl TextToSpeechProvider {
    /// The voices the plugin offers.
    pub async fn voices(&self) -> Result<Vec<Voice>, ProviderError> {
        let inner = self.inner.clone();
        self.call("voices", false, self.timeout, move |deadline| {
            inner.voices(deadline)
        })
        .await
    }

    /// Asks the plugin for its health and records the answer (for `/health`).
    pub async fn check_health(&self) -> HealthAnswer {
        let inner = self.inner.clone();
        self.check_health_with(move |deadline| inner.health(deadline))
            .await
    }

    /// Starts synthesizing `text`. Chunks are pulled on a blocking thread and delivered through
    /// the returned stream as they come; each must arrive within the provider's timeout.
    pub fn synthesize(&self, text: String, options: SynthesisOptions) -> SpeechStream {
        let (tx, rx) = mpsc::channel(32);
        let control = Arc::new(StreamControl::default());
        let inner = self.inner.clone();
        let permits = self.permits.clone();
        let id = self.id.clone();
        let thread_control = control.clone();
        let limit = self.timeout;
        tokio::spawn(async move {
            let permit = match tokio::time::timeout(limit, permits.acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    let _ = tx
                        .send(Err(ProviderError::timeout(
                            &id,
                            "synthesize (waiting for a free slot; earlier calls are stuck)",
                            limit,
                        )))
                        .await;
                    return;
                }
            };
            // Detached: the stream's channel, not the join handle, carries the outcome.
            drop(tokio::task::spawn_blocking(move || {
                let _permit = permit;
                pull_chunks(&id, &inner, &text, &options, limit, &thread_control, &tx);
            }));
        });
        SpeechStream {
            provider: self.id.clone(),
            rx,
            control,
            chunk_timeout: self.timeout,
            first_audio_by: None,
            stats: self.stats.clone(),
            started: Instant::now(),
            recorded: false,
        }
    }
}

#[derive(Default)]
struct StreamControl {
    cancelled: AtomicBool,
    stream: Mutex<Option<Arc<dyn ChunkSource>>>,
}

impl StreamControl {
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let stream = match self.stream.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(stream) = stream {
            stream.cancel();
        }
    }
}

fn pull_chunks(
    id: &str,
    inner: &TtsBackend,
    text: &str,
    options: &SynthesisOptions,
    chunk_timeout: Duration,
    control: &StreamControl,
    tx: &mpsc::Sender<Result<Audio, ProviderError>>,
) {
    let stream = match inner.synthesize(text, options, chunk_timeout) {
        Ok(stream) => stream,
        Err(e) => {
            let _ = tx.blocking_send(Err(ProviderError::from_plugin(id, e)));
            return;
        }
    };
    if let Ok(mut slot) = control.stream.lock() {
        *slot = Some(stream.clone());
    }
    loop {
        if control.cancelled.load(Ordering::SeqCst) {
            stream.cancel();
            return;
        }
        match stream.next_chunk() {
            Ok(Some(chunk)) => {
                let audio = Audio {
                    sample_rate: chunk.sample_rate,
                    samples: chunk.samples.into_vec(),
                };
                if tx.blocking_send(Ok(audio)).is_err() {
                    stream.cancel();
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = tx.blocking_send(Err(ProviderError::from_plugin(id, e)));
                return;
            }
        }
    }
}

/// Synthesized audio arriving from a provider. Dropping it cancels the synthesis.
pub struct SpeechStream {
    provider: String,
    rx: mpsc::Receiver<Result<Audio, ProviderError>>,
    control: Arc<StreamControl>,
    chunk_timeout: Duration,
    // A deadline for the first audio earlier than `chunk_timeout` allows (a turn's budget).
    first_audio_by: Option<Instant>,
    stats: Arc<ProviderStats>,
    started: Instant,
    // Whether this synthesis was counted (at its first audio or its first error).
    recorded: bool,
}

impl SpeechStream {
    /// The provider id.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Requires the first audio by `deadline` (when that is sooner than the provider's
    /// timeout allows): a turn's remaining budget.
    pub(crate) fn first_audio_by(mut self, deadline: Instant) -> Self {
        self.first_audio_by = Some(deadline);
        self
    }

    /// The next chunk, `None` at the end; a chunk that takes longer than the provider's
    /// timeout (or the first one, past [`first_audio_by`](Self::first_audio_by)) is a
    /// `Timeout` error, and the synthesis is cancelled.
    pub async fn next(&mut self) -> Option<Result<Audio, ProviderError>> {
        let deadline = match self.first_audio_by {
            Some(by) if !self.recorded => by.min(Instant::now() + self.chunk_timeout),
            _ => Instant::now() + self.chunk_timeout,
        };
        let item = match timeout_at(deadline, self.rx.recv()).await {
            Ok(item) => item,
            Err(_) => {
                self.control.cancel();
                let waited = if self.recorded {
                    self.chunk_timeout
                } else {
                    self.started.elapsed()
                };
                Some(Err(ProviderError::timeout(
                    &self.provider,
                    if self.recorded {
                        "synthesis chunk"
                    } else {
                        "synthesis (first audio)"
                    },
                    waited,
                )))
            }
        };
        if !self.recorded {
            match &item {
                Some(Ok(_)) => {
                    self.recorded = true;
                    record_success(&self.stats, self.started.elapsed());
                }
                Some(Err(e)) => {
                    self.recorded = true;
                    record_failure(&self.stats, e);
                }
                None => {}
            }
        }
        item
    }

    /// Stops the synthesis.
    pub fn cancel(&self) {
        self.control.cancel();
    }
}

impl Drop for SpeechStream {
    fn drop(&mut self) {
        self.control.cancel();
    }
}
