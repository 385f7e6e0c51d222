//! The stable ABI: every type that crosses the boundary between the host and a plugin.
//!
//! Everything here is `#[repr(C)]` + [`StableAbi`], so `abi_stable` can check at load time that
//! host and plugin agree on the layout. Plugin authors rarely touch this module directly:
//! the [`sdk`](crate::sdk) wraps it in plain Rust traits. The host uses it through
//! [`PluginModule_Ref`].
//!
//! Compatibility rule: while plugin-api is `0.x`, a minor version bump may change this module
//! (abi_stable then refuses to load a plugin built against another minor version); a patch bump
//! never does. New functions are appended to [`PluginModule`] after its last prefix field.

// The `sabi_trait` and `StableAbi` macros expand to impls the lint flags.
#![allow(non_local_definitions)]
// `PluginModule_Ref` is the name abi_stable's convention gives the prefix reference.
#![allow(non_camel_case_types)]

use std::fmt;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// The version of the plugin API this crate implements (its crate version).
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Sample rate of every buffer handed to a speech-to-text provider.
pub const STT_SAMPLE_RATE: u32 = 16_000;

/// What a plugin can provide.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Speech-to-text: turns 16 kHz mono audio into a [`Transcript`].
    SpeechToText,
    /// Text-to-speech: turns text into a stream of [`AudioChunk`]s.
    TextToSpeech,
}

impl Role {
    /// Short name used in config and logs: `stt` or `tts`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SpeechToText => "stt",
            Role::TextToSpeech => "tts",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The category of a [`PluginError`]; the host decides retries and failover from it.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The provider's configuration is wrong (a missing or malformed key, a missing model).
    Config,
    /// Credentials were refused (HTTP 401/403, a missing or wrong key).
    Auth,
    /// The provider asked us to slow down; see `retry_after_ms`.
    RateLimited,
    /// The call took longer than allowed.
    Timeout,
    /// The provider cannot be reached or is failing (5xx, connection refused).
    Unavailable,
    /// The input was refused (empty audio, text too long, unsupported format).
    InvalidInput,
    /// A bug or an unexpected state inside the plugin, including a caught panic.
    Internal,
}

impl ErrorKind {
    /// Stable lower-case name, used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Auth => "auth",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether an error of this kind is worth retrying by default.
    pub fn is_retryable_by_default(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::Timeout | ErrorKind::Unavailable
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error returned by a plugin. Its message must never contain a secret.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct PluginError {
    /// What went wrong, as a category.
    pub kind: ErrorKind,
    /// A human-readable, actionable description.
    pub message: RString,
    /// Whether the same call may succeed if tried again.
    pub retryable: bool,
    /// How long the provider asked us to wait before retrying, if it said.
    pub retry_after_ms: ROption<u64>,
}

impl PluginError {
    /// An error of `kind`, retryable as the kind is by default.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            message: RString::from(message.into()),
            retryable: kind.is_retryable_by_default(),
            retry_after_ms: ROption::RNone,
        }
    }
    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    /// An authentication error.
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }
    /// A rate-limit error, with the delay the provider asked for.
    pub fn rate_limited(message: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        Self::new(ErrorKind::RateLimited, message).with_retry_after(retry_after_ms)
    }
    /// A timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }
    /// The provider is unreachable or failing.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    /// The input was refused.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// Overrides whether the error is retryable.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }
    /// Sets the delay the provider asked for.
    pub fn with_retry_after(mut self, retry_after_ms: Option<u64>) -> Self {
        self.retry_after_ms = retry_after_ms.into();
        self
    }
    /// The message as a `&str`.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }
    /// The delay the provider asked for, if any.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after_ms
            .into_option()
            .map(std::time::Duration::from_millis)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}

/// What a provider can do, as far as it knows before being configured.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct Capabilities {
    /// Language codes (`en`, `de`…) the provider handles; empty means "any or unknown".
    pub languages: RVec<RString>,
    /// Whether results stream (TTS audio arrives in several chunks before synthesis ends).
    pub streaming: bool,
    /// Sample rates the provider produces (TTS) or accepts natively (STT).
    pub sample_rates: RVec<u32>,
    /// Voice ids, where they are known without a network call.
    pub voices: RVec<RString>,
}

/// Describes a plugin library: returned by [`PluginModule::info`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct PluginInfo {
    /// Unique plugin name (`local-whisper`, `elevenlabs`); providers refer to it in config.
    pub name: RString,
    /// The plugin's own version.
    pub version: RString,
    /// One line saying what it is.
    pub description: RString,
    /// The plugin-api version it was built against ([`API_VERSION`] at its build time).
    pub api_version: RString,
    /// The roles it can fill.
    pub provides: RVec<Role>,
    /// What it can do.
    pub capabilities: Capabilities,
}

/// Audio for speech-to-text: 16 kHz, mono, signed 16-bit samples. The type says the format so
/// that no caller can hand over 48 kHz stereo by mistake.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct Pcm16kMono<'a> {
    /// The samples, one per 1/16000 s.
    pub samples: RSlice<'a, i16>,
}

impl<'a> Pcm16kMono<'a> {
    /// Wraps samples that are already 16 kHz mono.
    pub fn new(samples: &'a [i16]) -> Self {
        Pcm16kMono {
            samples: RSlice::from_slice(samples),
        }
    }
    /// The samples.
    pub fn as_slice(&self) -> &'a [i16] {
        self.samples.as_slice()
    }
    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(STT_SAMPLE_RATE)
    }
}

/// Options for one transcription.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct TranscribeOptions {
    /// Expected language code, if known (`en`).
    pub language: ROption<RString>,
    /// Text that primes the model (names, vocabulary, the previous turn).
    pub prompt: ROption<RString>,
}

impl TranscribeOptions {
    /// The language, if set.
    pub fn language(&self) -> Option<&str> {
        self.language.as_ref().map(|s| s.as_str()).into_option()
    }
    /// The prompt, if set.
    pub fn prompt(&self) -> Option<&str> {
        self.prompt.as_ref().map(|s| s.as_str()).into_option()
    }
}

/// A timed piece of a transcript.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Segment {
    /// Start, in milliseconds from the start of the audio.
    pub start_ms: u32,
    /// End, in milliseconds from the start of the audio.
    pub end_ms: u32,
    /// The text of this segment.
    pub text: RString,
}

/// The result of a transcription. An empty `text` means "nobody said anything".
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct Transcript {
    /// The whole text.
    pub text: RString,
    /// The detected or configured language.
    pub language: ROption<RString>,
    /// Timed segments, where the provider reports them.
    pub segments: RVec<Segment>,
    /// Confidence from 0 to 1, where the provider reports one.
    pub confidence: ROption<f32>,
}

impl Transcript {
    /// A transcript with just a text.
    pub fn new(text: impl Into<String>) -> Self {
        Transcript {
            text: RString::from(text.into()),
            ..Default::default()
        }
    }
    /// An empty transcript: silence, noise or a dropped hallucination.
    pub fn empty() -> Self {
        Self::default()
    }
    /// Sets the language.
    pub fn with_language(mut self, language: impl Into<String>) -> Self {
        self.language = ROption::RSome(RString::from(language.into()));
        self
    }
    /// Sets the segments.
    pub fn with_segments(mut self, segments: Vec<Segment>) -> Self {
        self.segments = RVec::from(segments);
        self
    }
    /// Sets the confidence.
    pub fn with_confidence(mut self, confidence: f32) -> Self {
        self.confidence = ROption::RSome(confidence);
        self
    }
}

/// A voice a TTS provider offers.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Voice {
    /// The id to put in config or [`SynthesisOptions::voice`].
    pub id: RString,
    /// A display name.
    pub name: RString,
    /// Its language code, if known.
    pub language: ROption<RString>,
}

impl Voice {
    /// A voice with an id and a display name.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Voice {
            id: RString::from(id.into()),
            name: RString::from(name.into()),
            language: ROption::RNone,
        }
    }
}

/// Options for one synthesis.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct SynthesisOptions {
    /// Voice id; `None` uses the provider's configured voice.
    pub voice: ROption<RString>,
    /// Language code, if the text's language is known.
    pub language: ROption<RString>,
    /// Sample rate the host would prefer; providers may ignore it.
    pub preferred_sample_rate: ROption<u32>,
}

impl SynthesisOptions {
    /// The voice, if set.
    pub fn voice(&self) -> Option<&str> {
        self.voice.as_ref().map(|s| s.as_str()).into_option()
    }
    /// The language, if set.
    pub fn language(&self) -> Option<&str> {
        self.language.as_ref().map(|s| s.as_str()).into_option()
    }
}

/// A piece of synthesized speech: mono signed 16-bit PCM at `sample_rate`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct AudioChunk {
    /// Mono samples.
    pub samples: RVec<i16>,
    /// Samples per second.
    pub sample_rate: u32,
}

impl AudioChunk {
    /// A chunk of mono samples at `sample_rate`.
    pub fn new(samples: Vec<i16>, sample_rate: u32) -> Self {
        AudioChunk {
            samples: RVec::from(samples),
            sample_rate,
        }
    }
    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        if self.sample_rate == 0 {
            return 0;
        }
        self.samples.len() as u64 * 1000 / u64::from(self.sample_rate)
    }
}

/// The answer to a health probe.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct HealthReport {
    /// Whether the provider can serve calls now.
    pub healthy: bool,
    /// What was checked, or what is wrong (no secrets).
    pub detail: RString,
}

impl HealthReport {
    /// A healthy report.
    pub fn healthy(detail: impl Into<String>) -> Self {
        HealthReport {
            healthy: true,
            detail: RString::from(detail.into()),
        }
    }
    /// An unhealthy report.
    pub fn unhealthy(detail: impl Into<String>) -> Self {
        HealthReport {
            healthy: false,
            detail: RString::from(detail.into()),
        }
    }
}

/// Log levels passed through the host's log callback.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Normal operation.
    Info,
    /// Detail for debugging.
    Debug,
    /// Very detailed tracing.
    Trace,
}

/// The host's log sink: `(level, plugin name, target, message)`.
pub type LogCallback = extern "C" fn(LogLevel, RStr<'_>, RStr<'_>, RStr<'_>);

/// What the host hands a plugin once, right after loading it.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct HostContext {
    /// Where the plugin's `log` records go.
    pub log: extern "C" fn(LogLevel, RStr<'_>, RStr<'_>, RStr<'_>),
    /// The most verbose level the host will keep; the plugin skips formatting the rest.
    pub max_level: LogLevel,
}

/// A speech-to-text provider instance, as seen across the ABI.
#[sabi_trait]
pub trait SttProvider: Send + Sync {
    /// Transcribes one utterance.
    fn transcribe(
        &self,
        audio: Pcm16kMono<'_>,
        options: &TranscribeOptions,
    ) -> RResult<Transcript, PluginError>;

    /// Reports whether the provider can serve calls.
    #[sabi(last_prefix_field)]
    fn health(&self) -> RResult<HealthReport, PluginError>;
}

/// A stream of synthesized audio, pulled by the host chunk by chunk.
#[sabi_trait]
pub trait SpeechStream: Send + Sync {
    /// The next chunk; `None` once synthesis is complete or cancelled. Blocks until a chunk is
    /// ready.
    fn next_chunk(&self) -> RResult<ROption<AudioChunk>, PluginError>;

    /// Asks the stream to stop; may be called from another thread while `next_chunk` blocks.
    #[sabi(last_prefix_field)]
    fn cancel(&self);
}

/// A text-to-speech provider instance, as seen across the ABI.
#[sabi_trait]
pub trait TtsProvider: Send + Sync {
    /// The voices this provider offers.
    fn voices(&self) -> RResult<RVec<Voice>, PluginError>;

    /// Starts synthesizing `text`; audio is pulled from the returned stream.
    fn synthesize(
        &self,
        text: RStr<'_>,
        options: &SynthesisOptions,
    ) -> RResult<SpeechStreamBox, PluginError>;

    /// Reports whether the provider can serve calls.
    #[sabi(last_prefix_field)]
    fn health(&self) -> RResult<HealthReport, PluginError>;
}

/// An owned, type-erased speech-to-text provider.
pub type SttBox = SttProvider_TO<'static, RBox<()>>;
/// An owned, type-erased text-to-speech provider.
pub type TtsBox = TtsProvider_TO<'static, RBox<()>>;
/// An owned, type-erased speech stream.
pub type SpeechStreamBox = SpeechStream_TO<'static, RBox<()>>;

/// The root module every plugin library exports (through [`export_plugin!`](crate::export_plugin)).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// Describes the plugin.
    pub info: extern "C" fn() -> RResult<PluginInfo, PluginError>,
    /// Called once by the host right after loading, before anything else.
    pub init: extern "C" fn(HostContext),
    /// Checks a provider's settings (TOML text) without building the provider.
    pub validate_config: extern "C" fn(Role, RStr<'_>) -> RResult<(), PluginError>,
    /// Builds a speech-to-text provider from its settings (TOML text).
    pub new_stt: extern "C" fn(RStr<'_>) -> RResult<SttBox, PluginError>,
    /// Builds a text-to-speech provider from its settings (TOML text).
    #[sabi(last_prefix_field)]
    pub new_tts: extern "C" fn(RStr<'_>) -> RResult<TtsBox, PluginError>,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "openclaw_voice_plugin";
    const NAME: &'static str = "openclaw_voice_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
