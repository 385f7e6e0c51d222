//! Host-side provider handles: every plugin call runs in `spawn_blocking`, under a per-provider
//! timeout and concurrency limit, and comes back as a typed [`ProviderError`].
//!
//! **Architecture Invariant:** no plugin call runs on an async worker thread or an audio
//! thread. A call that outlives its timeout is abandoned (its thread finishes on its own, still
//! holding one of the provider's permits) and reported as `Timeout`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use abi_stable::std_types::{ROption, RStr};
use plugin_api::abi::{
    ErrorKind, HealthReport, Pcm16kMono, PluginError, Role, SpeechStreamBox, SttBox,
    SynthesisOptions, TranscribeOptions, Transcript, TtsBox, Voice,
};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{timeout_at, Instant};

use super::stats::ProviderStats;

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

/// Runs `f` on the blocking pool under the provider's permit and deadline.
async fn call_blocking<T: Send + 'static>(
    stats: Option<&ProviderStats>,
    provider: &str,
    what: &str,
    permits: &Arc<Semaphore>,
    limit: Duration,
    f: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
) -> Result<T, ProviderError> {
    let started = Instant::now();
    let result = call_blocking_inner(provider, what, permits, limit, f).await;
    if let Some(stats) = stats {
        match &result {
            Ok(_) => stats.success(started.elapsed()),
            Err(e) => stats.failure(e.kind),
        }
    }
    result
}

async fn call_blocking_inner<T: Send + 'static>(
    provider: &str,
    what: &str,
    permits: &Arc<Semaphore>,
    limit: Duration,
    f: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
) -> Result<T, ProviderError> {
    let deadline = Instant::now() + limit;
    let permit = match timeout_at(deadline, permits.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) => return Err(ProviderError::internal(provider, "provider is shut down")),
        Err(_) => {
            return Err(ProviderError::timeout(
                provider,
                &format!("{what} (waiting for a free slot; earlier calls are stuck)"),
                limit,
            ))
        }
    };
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
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

/// A configured speech-to-text provider.
pub struct SpeechToTextProvider {
    /// Provider id from config.
    pub id: String,
    /// The plugin behind it.
    pub plugin: String,
    inner: Arc<SttBox>,
    timeout: Duration,
    permits: Arc<Semaphore>,
    stats: Arc<ProviderStats>,
}

impl SpeechToTextProvider {
    pub(crate) fn new(
        id: String,
        plugin: String,
        inner: SttBox,
        timeout: Duration,
        max_concurrent: usize,
    ) -> Self {
        SpeechToTextProvider {
            stats: Arc::new(ProviderStats::new(&id, &plugin, Role::SpeechToText)),
            id,
            plugin,
            inner: Arc::new(inner),
            timeout,
            permits: Arc::new(Semaphore::new(max_concurrent)),
        }
    }

    /// Call statistics.
    pub fn stats(&self) -> &Arc<ProviderStats> {
        &self.stats
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Transcribes 16 kHz mono audio.
    pub async fn transcribe(
        &self,
        audio_16k_mono: Arc<[i16]>,
        options: TranscribeOptions,
    ) -> Result<Transcript, ProviderError> {
        let inner = self.inner.clone();
        call_blocking(
            Some(&self.stats),
            &self.id,
            "transcribe",
            &self.permits,
            self.timeout,
            move || {
                inner
                    .transcribe(Pcm16kMono::new(&audio_16k_mono), &options)
                    .into_result()
            },
        )
        .await
    }

    /// Asks the plugin for its health.
    pub async fn health(&self) -> Result<HealthReport, ProviderError> {
        let inner = self.inner.clone();
        call_blocking(
            None,
            &self.id,
            "health",
            &self.permits,
            self.timeout,
            move || inner.health().into_result(),
        )
        .await
    }
}

/// A configured text-to-speech provider.
pub struct TextToSpeechProvider {
    /// Provider id from config.
    pub id: String,
    /// The plugin behind it.
    pub plugin: String,
    inner: Arc<TtsBox>,
    timeout: Duration,
    permits: Arc<Semaphore>,
    stats: Arc<ProviderStats>,
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
    pub(crate) fn new(
        id: String,
        plugin: String,
        inner: TtsBox,
        timeout: Duration,
        max_concurrent: usize,
    ) -> Self {
        TextToSpeechProvider {
            stats: Arc::new(ProviderStats::new(&id, &plugin, Role::TextToSpeech)),
            id,
            plugin,
            inner: Arc::new(inner),
            timeout,
            permits: Arc::new(Semaphore::new(max_concurrent)),
        }
    }

    /// Call statistics (latency is time to first audio).
    pub fn stats(&self) -> &Arc<ProviderStats> {
        &self.stats
    }

    /// The voices the plugin offers.
    pub async fn voices(&self) -> Result<Vec<Voice>, ProviderError> {
        let inner = self.inner.clone();
        call_blocking(
            None,
            &self.id,
            "voices",
            &self.permits,
            self.timeout,
            move || inner.voices().into_result().map(|v| v.into_vec()),
        )
        .await
    }

    /// Asks the plugin for its health.
    pub async fn health(&self) -> Result<HealthReport, ProviderError> {
        let inner = self.inner.clone();
        call_blocking(
            None,
            &self.id,
            "health",
            &self.permits,
            self.timeout,
            move || inner.health().into_result(),
        )
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
                pull_chunks(&id, &inner, &text, &options, &thread_control, &tx);
            }));
        });
        SpeechStream {
            provider: self.id.clone(),
            rx,
            control,
            chunk_timeout: self.timeout,
            stats: self.stats.clone(),
            started: Instant::now(),
            recorded: false,
        }
    }
}

#[derive(Default)]
struct StreamControl {
    cancelled: AtomicBool,
    stream: Mutex<Option<Arc<SpeechStreamBox>>>,
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
    inner: &TtsBox,
    text: &str,
    options: &SynthesisOptions,
    control: &StreamControl,
    tx: &mpsc::Sender<Result<Audio, ProviderError>>,
) {
    let stream = match inner
        .synthesize(RStr::from_str(text), options)
        .into_result()
    {
        Ok(stream) => Arc::new(stream),
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
        match stream.next_chunk().into_result() {
            Ok(ROption::RSome(chunk)) => {
                let audio = Audio {
                    sample_rate: chunk.sample_rate,
                    samples: chunk.samples.into_vec(),
                };
                if tx.blocking_send(Ok(audio)).is_err() {
                    stream.cancel();
                    return;
                }
            }
            Ok(ROption::RNone) => return,
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

    /// The next chunk, `None` at the end; a chunk that takes longer than the provider's
    /// timeout is a `Timeout` error (and the synthesis is cancelled).
    pub async fn next(&mut self) -> Option<Result<Audio, ProviderError>> {
        let item = match tokio::time::timeout(self.chunk_timeout, self.rx.recv()).await {
            Ok(item) => item,
            Err(_) => {
                self.control.cancel();
                Some(Err(ProviderError::timeout(
                    &self.provider,
                    "synthesis chunk",
                    self.chunk_timeout,
                )))
            }
        };
        if !self.recorded {
            match &item {
                Some(Ok(_)) => {
                    self.recorded = true;
                    self.stats.success(self.started.elapsed());
                }
                Some(Err(e)) => {
                    self.recorded = true;
                    self.stats.failure(e.kind);
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
