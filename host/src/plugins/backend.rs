//! Where a provider's calls go: to its library loaded in this process (`in-process`), or to
//! a worker process that loaded it (`process`, see [`worker`](super::worker)). The provider
//! handles in [`provider`](super::provider) call these from blocking threads, with the call's
//! deadline; both kinds answer with the same [`PluginError`]s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use abi_stable::std_types::{ROption, RResult, RStr};
use plugin_api::abi::{
    AudioChunk, DetailedTranscript, HealthReport, PartialTranscript, Pcm16kMono, PluginError,
    PluginModule_Ref, Role, SpeechStreamBox, SttBox, SttStreamBox, SynthesisOptions,
    TranscribeOptions, TtsBox, Voice,
};

use super::worker::{Channel, Reply, Request, Worker};

/// A speech-to-text provider's calls.
pub(crate) enum SttBackend {
    /// The library is loaded in this process.
    InProcess(SttBox),
    /// A worker process serves the calls.
    Worker(Arc<Worker>),
}

/// A text-to-speech provider's calls.
pub(crate) enum TtsBackend {
    /// The library is loaded in this process.
    InProcess(TtsBox),
    /// A worker process serves the calls.
    Worker(Arc<Worker>),
}

/// What building a provider of one role needs to know of its backend: the plugin
/// constructor for the role, and how each kind of backend is wrapped.
pub(crate) trait RoleBackend: Sized {
    /// What the plugin's constructor returns in this process.
    type InProcess: Send + 'static;
    /// The role.
    const ROLE: Role;
    /// The plugin module's constructor for the role.
    fn constructor(module: PluginModule_Ref) -> Constructor<Self::InProcess>;
    /// A backend that calls the library in this process.
    fn in_process(boxed: Self::InProcess) -> Self;
    /// A backend that calls a worker process.
    fn worker(worker: Arc<Worker>) -> Self;
}

/// A plugin constructor: settings text in, a provider out.
pub(crate) type Constructor<T> = extern "C" fn(RStr<'_>) -> RResult<T, PluginError>;

/// Implements [`RoleBackend`] for a role's backend enum.
macro_rules! role_backend {
    ($backend:ident, $boxed:ty, $role:expr, $constructor:ident) => {
        impl RoleBackend for $backend {
            type InProcess = $boxed;
            const ROLE: Role = $role;
            fn constructor(module: PluginModule_Ref) -> Constructor<$boxed> {
                module.$constructor()
            }
            fn in_process(boxed: $boxed) -> Self {
                $backend::InProcess(boxed)
            }
            fn worker(worker: Arc<Worker>) -> Self {
                $backend::Worker(worker)
            }
        }
    };
}

role_backend!(SttBackend, SttBox, Role::SpeechToText, new_stt);
role_backend!(TtsBackend, TtsBox, Role::TextToSpeech, new_tts);

fn unexpected(what: &str, reply: &Reply) -> PluginError {
    PluginError::internal(format!(
        "worker answered {what} with an unexpected {reply:?}"
    ))
}

/// A worker's state, for `/health` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WorkerStatus {
    /// The worker's process id while it runs; `None` while it is being restarted.
    pub pid: Option<u32>,
    /// How many times it was restarted.
    pub restarts: u64,
}

fn status(worker: &Worker) -> WorkerStatus {
    WorkerStatus {
        pid: worker.pid(),
        restarts: worker.restarts(),
    }
}

impl SttBackend {
    /// The worker's state, when the provider runs in one.
    pub(crate) fn worker(&self) -> Option<WorkerStatus> {
        match self {
            SttBackend::Worker(w) => Some(status(w)),
            SttBackend::InProcess(_) => None,
        }
    }

    /// Transcribes with the plugin's `transcribe_detailed`: words where it reports them (a
    /// plugin built against plugin-api 0.1.0 gets the SDK's default, none).
    pub(crate) fn transcribe(
        &self,
        samples: &[i16],
        options: &TranscribeOptions,
        deadline: Instant,
    ) -> Result<DetailedTranscript, PluginError> {
        match self {
            SttBackend::InProcess(p) => p
                .transcribe_detailed(Pcm16kMono::new(samples), options)
                .into_result(),
            SttBackend::Worker(w) => {
                match w.call(
                    &Request::Transcribe(options.clone(), samples.to_vec()),
                    deadline,
                )? {
                    Reply::Transcript(t) => Ok(t),
                    other => Err(unexpected("transcribe", &other)),
                }
            }
        }
    }

    pub(crate) fn health(&self, deadline: Instant) -> Result<HealthReport, PluginError> {
        match self {
            SttBackend::InProcess(p) => p.health().into_result(),
            SttBackend::Worker(w) => health(w, deadline),
        }
    }

    /// Starts a streaming transcription; `None` when the provider does not stream.
    pub(crate) fn start_stream(
        &self,
        options: &TranscribeOptions,
        deadline: Instant,
    ) -> Result<Option<Box<dyn SttStreamBackend>>, PluginError> {
        match self {
            SttBackend::InProcess(p) => Ok(p
                .start_stream(options)
                .into_result()?
                .into_option()
                .map(|s| Box::new(s) as Box<dyn SttStreamBackend>)),
            SttBackend::Worker(w) => {
                let channel = w.open(&Request::StreamStart(options.clone()))?;
                match channel.recv(deadline)? {
                    Reply::StreamStarted(true) => Ok(Some(Box::new(channel))),
                    Reply::StreamStarted(false) => Ok(None),
                    other => Err(unexpected("start_stream", &other)),
                }
            }
        }
    }
}

fn health(worker: &Arc<Worker>, deadline: Instant) -> Result<HealthReport, PluginError> {
    match worker.call(&Request::Health, deadline)? {
        Reply::Health(h) => Ok(h),
        other => Err(unexpected("health", &other)),
    }
}

/// A streaming transcription's calls.
pub(crate) trait SttStreamBackend: Send + Sync {
    /// Pushes audio; a new partial transcript, if any.
    fn push(
        &self,
        samples: &[i16],
        deadline: Instant,
    ) -> Result<Option<PartialTranscript>, PluginError>;
    /// Ends the audio: the final transcript.
    fn finish(&self, deadline: Instant) -> Result<DetailedTranscript, PluginError>;
    /// Abandons the stream.
    fn cancel(&self);
}

impl SttStreamBackend for SttStreamBox {
    fn push(&self, samples: &[i16], _: Instant) -> Result<Option<PartialTranscript>, PluginError> {
        SttStreamBox::push(self, Pcm16kMono::new(samples))
            .into_result()
            .map(ROption::into_option)
    }
    fn finish(&self, _: Instant) -> Result<DetailedTranscript, PluginError> {
        SttStreamBox::finish(self).into_result()
    }
    fn cancel(&self) {
        SttStreamBox::cancel(self)
    }
}

impl SttStreamBackend for Channel {
    fn push(
        &self,
        samples: &[i16],
        deadline: Instant,
    ) -> Result<Option<PartialTranscript>, PluginError> {
        self.send(&Request::StreamPush(samples.to_vec()))?;
        match self.recv(deadline)? {
            Reply::Partial(p) => Ok(p),
            other => Err(unexpected("push", &other)),
        }
    }
    fn finish(&self, deadline: Instant) -> Result<DetailedTranscript, PluginError> {
        self.send(&Request::StreamFinish)?;
        match self.recv(deadline)? {
            Reply::Final(t) => Ok(t),
            other => Err(unexpected("finish", &other)),
        }
    }
    fn cancel(&self) {
        Channel::cancel(self)
    }
}

/// Synthesized audio, pulled chunk by chunk on a blocking thread.
pub(crate) trait ChunkSource: Send + Sync {
    /// The next chunk; `None` at the end.
    fn next_chunk(&self) -> Result<Option<AudioChunk>, PluginError>;
    /// Stops the synthesis; may be called from another thread while `next_chunk` waits.
    fn cancel(&self);
}

impl ChunkSource for SpeechStreamBox {
    fn next_chunk(&self) -> Result<Option<AudioChunk>, PluginError> {
        SpeechStreamBox::next_chunk(self)
            .into_result()
            .map(ROption::into_option)
    }
    fn cancel(&self) {
        SpeechStreamBox::cancel(self)
    }
}

/// A synthesis served by a worker: each chunk must come within `chunk_timeout`.
struct WorkerSpeech {
    channel: Channel,
    chunk_timeout: Duration,
}

impl ChunkSource for WorkerSpeech {
    fn next_chunk(&self) -> Result<Option<AudioChunk>, PluginError> {
        match self.channel.recv(Instant::now() + self.chunk_timeout)? {
            Reply::Chunk(chunk) => Ok(Some(chunk)),
            Reply::End => Ok(None),
            other => Err(unexpected("synthesize", &other)),
        }
    }
    fn cancel(&self) {
        self.channel.cancel();
    }
}

impl TtsBackend {
    /// The worker's state, when the provider runs in one.
    pub(crate) fn worker(&self) -> Option<WorkerStatus> {
        match self {
            TtsBackend::Worker(w) => Some(status(w)),
            TtsBackend::InProcess(_) => None,
        }
    }

    pub(crate) fn voices(&self, deadline: Instant) -> Result<Vec<Voice>, PluginError> {
        match self {
            TtsBackend::InProcess(p) => p.voices().into_result().map(|v| v.into_vec()),
            TtsBackend::Worker(w) => match w.call(&Request::Voices, deadline)? {
                Reply::Voices(v) => Ok(v),
                other => Err(unexpected("voices", &other)),
            },
        }
    }

    pub(crate) fn health(&self, deadline: Instant) -> Result<HealthReport, PluginError> {
        match self {
            TtsBackend::InProcess(p) => p.health().into_result(),
            TtsBackend::Worker(w) => health(w, deadline),
        }
    }

    /// Starts a synthesis.
    pub(crate) fn synthesize(
        &self,
        text: &str,
        options: &SynthesisOptions,
        chunk_timeout: Duration,
    ) -> Result<Arc<dyn ChunkSource>, PluginError> {
        match self {
            TtsBackend::InProcess(p) => {
                let stream = p.synthesize(RStr::from_str(text), options).into_result()?;
                Ok(Arc::new(stream))
            }
            TtsBackend::Worker(w) => {
                let channel = w.open(&Request::Synthesize(text.to_string(), options.clone()))?;
                Ok(Arc::new(WorkerSpeech {
                    channel,
                    chunk_timeout,
                }))
            }
        }
    }
}
