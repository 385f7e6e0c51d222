//! The author-facing SDK: plain Rust traits, a plugin definition builder, and the adapters that
//! turn them into the ABI types with every call guarded by `catch_unwind`.
//!
//! A plugin implements [`SpeechToText`] and/or [`TextToSpeech`], describes itself with a
//! [`PluginDefinition`], and exports it with [`export_plugin!`](crate::export_plugin).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};

use crate::settings::PluginSettings;

mod program;
pub use program::find_program;

use crate::abi::{
    AudioChunk, Capabilities, DetailedTranscript, HealthReport, HostContext, LogLevel,
    PartialTranscript, Pcm16kMono, PluginError, PluginInfo, Role, SpeechStreamBox, SpeechStream_TO,
    SttBox, SttProvider, SttProvider_TO, SttStreamBox, SttStream_TO, SynthesisOptions,
    TranscribeOptions, Transcript, TtsBox, TtsProvider, TtsProvider_TO, Voice, API_VERSION,
    MIN_HOST_API,
};

/// A speech-to-text engine, written as plain Rust.
///
/// ```
/// use plugin_api::prelude::*;
///
/// /// Hears everything as "hello", and says it is ready only with a word set.
/// struct Hello { word: String }
///
/// impl SpeechToText for Hello {
///     fn transcribe(&self, audio: Pcm16kMono<'_>, options: &TranscribeOptions) -> Result<Transcript, PluginError> {
///         if audio.as_slice().is_empty() {
///             return Ok(Transcript::empty());
///         }
///         Ok(Transcript::new(&self.word).with_language(options.language().unwrap_or("en")))
///     }
///
///     fn health(&self) -> Result<HealthReport, PluginError> {
///         Ok(if self.word.is_empty() {
///             HealthReport::unhealthy("no word to say")
///         } else {
///             HealthReport::healthy("ready")
///         })
///     }
/// }
///
/// let stt = Hello { word: "hello".into() };
/// let options = TranscribeOptions::new().with_language("de");
/// let transcript = stt.transcribe(Pcm16kMono::new(&[1; 160]), &options).unwrap();
/// assert_eq!((transcript.text(), transcript.language_code()), ("hello", Some("de")));
/// assert!(stt.health().unwrap().healthy);
/// ```
pub trait SpeechToText: Send + Sync + 'static {
    /// Transcribes one utterance of 16 kHz mono audio. Return [`Transcript::empty`] when
    /// nothing was said.
    fn transcribe(
        &self,
        audio: Pcm16kMono<'_>,
        options: &TranscribeOptions,
    ) -> Result<Transcript, PluginError>;

    /// Reports whether calls can succeed now. The default says "healthy".
    fn health(&self) -> Result<HealthReport, PluginError> {
        Ok(HealthReport::healthy("ok"))
    }

    /// Transcribes with word timings and language detail, where the engine has them. The
    /// default is [`transcribe`](Self::transcribe) with no words.
    fn transcribe_detailed(
        &self,
        audio: Pcm16kMono<'_>,
        options: &TranscribeOptions,
    ) -> Result<DetailedTranscript, PluginError> {
        self.transcribe(audio, options)
            .map(DetailedTranscript::from)
    }

    /// Starts a streaming transcription, for engines that can transcribe while the speaker
    /// talks. The default, `None`, says this engine does not stream; the host then sends whole
    /// utterances to [`transcribe`](Self::transcribe). `cancel` is set when the host abandons
    /// the stream.
    fn start_stream(
        &self,
        options: &TranscribeOptions,
        cancel: CancelToken,
    ) -> Result<Option<Box<dyn TranscriptionStream>>, PluginError> {
        let _ = (options, cancel);
        Ok(None)
    }
}

/// A streaming transcription, written as plain Rust: audio arrives in pieces while the
/// speaker talks.
///
/// ```
/// use plugin_api::prelude::*;
///
/// /// Counts the audio it was given.
/// struct Counting { samples: usize }
///
/// impl TranscriptionStream for Counting {
///     fn push(&mut self, samples: &[i16]) -> Result<Option<PartialTranscript>, PluginError> {
///         self.samples += samples.len();
///         let ms = (self.samples * 1000 / STT_SAMPLE_RATE as usize) as u32;
///         Ok(Some(PartialTranscript::new(format!("{ms} ms so far"), ms)))
///     }
///     fn finish(&mut self) -> Result<DetailedTranscript, PluginError> {
///         let words = vec![Word::new(0, 500, "counted", Some(0.9))];
///         Ok(DetailedTranscript::from(Transcript::new("counted")).with_words(words))
///     }
/// }
///
/// let mut stream = Counting { samples: 0 };
/// assert_eq!(stream.push(&[0; 8_000]).unwrap().unwrap().audio_ms, 500);
/// assert_eq!(stream.finish().unwrap().word_list().len(), 1);
/// ```
pub trait TranscriptionStream: Send + 'static {
    /// Adds 16 kHz mono samples that follow the ones pushed before; returns a partial
    /// transcript when there is a new one.
    fn push(&mut self, samples: &[i16]) -> Result<Option<PartialTranscript>, PluginError>;

    /// The audio has ended: the final transcript.
    fn finish(&mut self) -> Result<DetailedTranscript, PluginError>;
}

/// What [`TextToSpeech::synthesize`] returns: the stream of audio, or why there is none.
pub type Synthesis = Result<Box<dyn AudioStream>, PluginError>;

/// What [`SpeechToText::transcribe`] returns: the transcript, or why there is none.
pub type Transcription = Result<Transcript, PluginError>;

/// A text-to-speech engine, written as plain Rust.
///
/// ```
/// use plugin_api::prelude::*;
///
/// /// Half a second of silence per word, in one chunk per word.
/// struct Quiet;
///
/// impl TextToSpeech for Quiet {
///     fn synthesize(&self, text: &str, options: &SynthesisOptions, _cancel: CancelToken)
///         -> Result<Box<dyn AudioStream>, PluginError> {
///         if let Some(voice) = options.voice().filter(|v| *v != "quiet") {
///             return Err(PluginError::invalid_input(format!("no voice `{voice}`: try `quiet`")));
///         }
///         let chunks = text.split_whitespace().map(|_| AudioChunk::new(vec![0; 8_000], 16_000));
///         Ok(Box::new(VecStream::new(chunks.collect())))
///     }
///
///     fn voices(&self) -> Result<Vec<Voice>, PluginError> {
///         Ok(vec![Voice::new("quiet", "Quiet").with_language("en")])
///     }
/// }
///
/// let mut stream = Quiet.synthesize("two words", &SynthesisOptions::new(), CancelToken::new()).unwrap();
/// assert_eq!(stream.next_chunk().unwrap().unwrap().duration_ms(), 500);
/// let wrong = SynthesisOptions::new().with_voice("loud");
/// let err = Quiet.synthesize("hi", &wrong, CancelToken::new()).err().unwrap();
/// assert_eq!(err.kind, ErrorKind::InvalidInput);
/// ```
pub trait TextToSpeech: Send + Sync + 'static {
    /// Starts synthesizing `text`. Long work belongs in the returned stream, so the host can
    /// play the first chunk while the rest is made. Check `cancel` in long loops.
    /// Implementations may write the return type as [`Synthesis`].
    fn synthesize(
        &self,
        text: &str,
        options: &SynthesisOptions,
        cancel: CancelToken,
    ) -> Result<Box<dyn AudioStream>, PluginError>;

    /// The voices on offer. The default is none listed.
    fn voices(&self) -> Result<Vec<Voice>, PluginError> {
        Ok(Vec::new())
    }

    /// Reports whether calls can succeed now. The default says "healthy".
    fn health(&self) -> Result<HealthReport, PluginError> {
        Ok(HealthReport::healthy("ok"))
    }
}

/// Synthesized audio, pulled one chunk at a time.
///
/// ```
/// use plugin_api::prelude::*;
///
/// /// Made on demand, one 100 ms chunk per pull, until cancelled or done.
/// struct Ticks { left: u32, cancel: CancelToken }
///
/// impl AudioStream for Ticks {
///     fn next_chunk(&mut self) -> Result<Option<AudioChunk>, PluginError> {
///         if self.cancel.is_cancelled() || self.left == 0 {
///             return Ok(None);
///         }
///         self.left -= 1;
///         Ok(Some(AudioChunk::new(vec![100; 1_600], 16_000)))
///     }
/// }
///
/// let cancel = CancelToken::new();
/// let mut ticks = Ticks { left: 10, cancel: cancel.clone() };
/// assert!(ticks.next_chunk().unwrap().is_some());
/// cancel.cancel();
/// assert!(ticks.next_chunk().unwrap().is_none());
/// ```
pub trait AudioStream: Send + 'static {
    /// The next chunk, or `None` when synthesis is complete.
    fn next_chunk(&mut self) -> Result<Option<AudioChunk>, PluginError>;
}

/// Set when the host cancels a synthesis (barge-in, shutdown). Cheap to clone and check.
///
/// ```
/// let token = plugin_api::prelude::CancelToken::new();
/// let seen_by_the_producer = token.clone();
/// assert!(!seen_by_the_producer.is_cancelled());
/// token.cancel();
/// assert!(seen_by_the_producer.is_cancelled());
/// ```
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }
    /// Marks the synthesis as cancelled.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether the synthesis was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// An [`AudioStream`] over chunks that are already made.
///
/// ```
/// use plugin_api::prelude::*;
/// let mut stream = VecStream::new(vec![AudioChunk::new(vec![1, 2, 3], 8_000)]);
/// assert_eq!(stream.next_chunk().unwrap().unwrap().samples(), &[1, 2, 3]);
/// assert_eq!(stream.next_chunk().unwrap(), None);
/// ```
pub struct VecStream(std::vec::IntoIter<AudioChunk>);

impl VecStream {
    /// A stream that yields `chunks` in order.
    pub fn new(chunks: Vec<AudioChunk>) -> Self {
        VecStream(chunks.into_iter())
    }
}

impl AudioStream for VecStream {
    fn next_chunk(&mut self) -> Result<Option<AudioChunk>, PluginError> {
        Ok(self.0.next())
    }
}

/// An [`AudioStream`] fed from another thread through a channel: the producer sends chunks
/// (or an error) as they arrive, and dropping the sender ends the stream. A cancel ends it at
/// once, and the producer's next `send` fails: stop producing then.
///
/// ```
/// use plugin_api::prelude::*;
///
/// let cancel = CancelToken::new();
/// let (sender, mut stream) = ChannelStream::new(cancel.clone());
/// let producer = std::thread::spawn(move || {
///     for _ in 0..3 {
///         if sender.send(Ok(AudioChunk::new(vec![7; 320], 16_000))).is_err() {
///             return; // the stream is gone: stop producing
///         }
///     }
/// });
/// let mut chunks = 0;
/// while let Some(chunk) = stream.next_chunk().unwrap() {
///     assert_eq!(chunk.sample_rate, 16_000);
///     chunks += 1;
/// }
/// producer.join().unwrap();
/// assert_eq!(chunks, 3);
/// ```
pub struct ChannelStream {
    receiver: mpsc::Receiver<Result<AudioChunk, PluginError>>,
    cancel: CancelToken,
}

impl ChannelStream {
    /// A stream and the sender that feeds it.
    pub fn new(cancel: CancelToken) -> (mpsc::SyncSender<Result<AudioChunk, PluginError>>, Self) {
        let (sender, receiver) = mpsc::sync_channel(64);
        (sender, ChannelStream { receiver, cancel })
    }
}

impl AudioStream for ChannelStream {
    fn next_chunk(&mut self) -> Result<Option<AudioChunk>, PluginError> {
        loop {
            if self.cancel.is_cancelled() {
                return Ok(None);
            }
            match self.receiver.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(chunk)) => return Ok(Some(chunk)),
                Ok(Err(e)) => return Err(e),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
    }
}

type SttFactory = Box<dyn Fn(&str) -> Result<Box<dyn SpeechToText>, PluginError> + Send + Sync>;
type TtsFactory = Box<dyn Fn(&str) -> Result<Box<dyn TextToSpeech>, PluginError> + Send + Sync>;
type Validator = Box<dyn Fn(Role, &str) -> Result<(), PluginError> + Send + Sync>;
type Check = Box<dyn Fn(&str) -> Result<(), PluginError> + Send + Sync>;

/// Describes a plugin: its name and version, and how to build its providers.
///
/// ```
/// use plugin_api::prelude::*;
/// let def = PluginDefinition::new("demo", "1.0.0").description("Does nothing yet");
/// assert_eq!(def.name(), "demo");
/// assert!(def.provides().is_empty());
/// ```
pub struct PluginDefinition {
    name: String,
    version: String,
    description: String,
    capabilities: Capabilities,
    pub(crate) stt: Option<SttFactory>,
    pub(crate) tts: Option<TtsFactory>,
    validator: Option<Validator>,
    // The typed settings' parse-and-check, per role (set by `stt`/`tts`).
    stt_check: Option<Check>,
    tts_check: Option<Check>,
}

impl PluginDefinition {
    /// A plugin called `name` (what config refers to) at `version`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        PluginDefinition {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            capabilities: Capabilities::default(),
            stt: None,
            tts: None,
            validator: None,
            stt_check: None,
            tts_check: None,
        }
    }

    /// One line saying what the plugin is.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// What the plugin can do.
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Registers the speech-to-text provider, built from its settings type `T`.
    ///
    /// The SDK parses the provider's `settings` table into `T` and runs
    /// [`PluginSettings::check`] before calling `constructor`, and the host's `check-config`
    /// runs the same two steps without building the provider. Errors name the key.
    ///
    /// ```
    /// use plugin_api::prelude::*;
    /// use plugin_api::testing::TestPlugin;
    ///
    /// #[derive(serde::Deserialize)]
    /// #[serde(deny_unknown_fields)]
    /// struct Settings { word: String }
    /// impl PluginSettings for Settings {}
    ///
    /// struct Parrot(String);
    /// impl SpeechToText for Parrot {
    ///     fn transcribe(&self, _: Pcm16kMono<'_>, _: &TranscribeOptions) -> Result<Transcript, PluginError> {
    ///         Ok(Transcript::new(self.0.clone()))
    ///     }
    /// }
    /// fn definition() -> PluginDefinition {
    ///     PluginDefinition::new("parrot", "0.1.0").stt(|s: Settings| Ok(Parrot(s.word)))
    /// }
    ///
    /// let plugin = TestPlugin::new(definition);
    /// let stt = plugin.stt("word = \"polly\"").unwrap();
    /// assert_eq!(stt.transcribe(&[0; 160], &TranscribeOptions::default()).unwrap().text(), "polly");
    /// let err = plugin.validate_config(Role::SpeechToText, "word = 1").unwrap_err();
    /// assert!(err.message().starts_with("setting `word`: invalid type"), "{err}");
    /// ```
    pub fn stt<T, S, F>(mut self, constructor: F) -> Self
    where
        T: PluginSettings,
        S: SpeechToText,
        F: Fn(T) -> Result<S, PluginError> + Send + Sync + 'static,
    {
        self.stt = Some(Box::new(move |text| {
            let settings = crate::settings::parse::<T>(text)?;
            constructor(settings).map(|s| Box::new(s) as Box<dyn SpeechToText>)
        }));
        self.stt_check = Some(typed_check::<T>());
        self
    }

    /// Registers the text-to-speech provider, built from its settings type `T`; see
    /// [`stt`](Self::stt).
    ///
    /// ```
    /// use plugin_api::prelude::*;
    ///
    /// struct Silence;
    /// impl TextToSpeech for Silence {
    ///     fn synthesize(&self, _: &str, _: &SynthesisOptions, _: CancelToken)
    ///         -> Result<Box<dyn AudioStream>, PluginError> {
    ///         Ok(Box::new(VecStream::new(vec![AudioChunk::new(vec![0; 1_600], 16_000)])))
    ///     }
    /// }
    /// let def = PluginDefinition::new("silence", "0.1.0").tts(|_: NoSettings| Ok(Silence));
    /// assert_eq!(def.provides(), vec![Role::TextToSpeech]);
    /// ```
    pub fn tts<T, P, F>(mut self, constructor: F) -> Self
    where
        T: PluginSettings,
        P: TextToSpeech,
        F: Fn(T) -> Result<P, PluginError> + Send + Sync + 'static,
    {
        self.tts = Some(Box::new(move |text| {
            let settings = crate::settings::parse::<T>(text)?;
            constructor(settings).map(|t| Box::new(t) as Box<dyn TextToSpeech>)
        }));
        self.tts_check = Some(typed_check::<T>());
        self
    }

    /// Registers the speech-to-text constructor; it gets the provider's settings as TOML text.
    /// [`stt`](Self::stt), which takes a settings type, parses and checks them for you.
    pub fn speech_to_text<S, F>(mut self, constructor: F) -> Self
    where
        S: SpeechToText,
        F: Fn(&str) -> Result<S, PluginError> + Send + Sync + 'static,
    {
        self.stt = Some(Box::new(move |config| {
            constructor(config).map(|s| Box::new(s) as Box<dyn SpeechToText>)
        }));
        self.stt_check = None;
        self
    }

    /// Registers the text-to-speech constructor; it gets the provider's settings as TOML text.
    /// [`tts`](Self::tts), which takes a settings type, parses and checks them for you.
    pub fn text_to_speech<T, F>(mut self, constructor: F) -> Self
    where
        T: TextToSpeech,
        F: Fn(&str) -> Result<T, PluginError> + Send + Sync + 'static,
    {
        self.tts = Some(Box::new(move |config| {
            constructor(config).map(|t| Box::new(t) as Box<dyn TextToSpeech>)
        }));
        self.tts_check = None;
        self
    }

    /// Registers a settings check that runs without building a provider (no network, no model
    /// load), for plugins registered with [`speech_to_text`](Self::speech_to_text) or
    /// [`text_to_speech`](Self::text_to_speech); typed settings ([`stt`](Self::stt),
    /// [`tts`](Self::tts)) need none. Without either, the settings need only be valid TOML.
    pub fn validate_config<F>(mut self, validator: F) -> Self
    where
        F: Fn(Role, &str) -> Result<(), PluginError> + Send + Sync + 'static,
    {
        self.validator = Some(Box::new(validator));
        self
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The roles this definition can fill.
    pub fn provides(&self) -> Vec<Role> {
        let mut roles = Vec::new();
        if self.stt.is_some() {
            roles.push(Role::SpeechToText);
        }
        if self.tts.is_some() {
            roles.push(Role::TextToSpeech);
        }
        roles
    }

    /// The ABI description of this plugin.
    pub fn info(&self) -> PluginInfo {
        PluginInfo {
            name: self.name.as_str().into(),
            version: self.version.as_str().into(),
            description: self.description.as_str().into(),
            api_version: API_VERSION.into(),
            provides: RVec::from(self.provides()),
            capabilities: self.capabilities.clone(),
        }
    }

    fn not_provided(&self, role: Role) -> PluginError {
        PluginError::config(format!("plugin `{}` does not provide {role}", self.name))
    }

    fn validate(&self, role: Role, config: &str) -> Result<(), PluginError> {
        let provided = match role {
            Role::SpeechToText => self.stt.is_some(),
            Role::TextToSpeech => self.tts.is_some(),
        };
        if !provided {
            return Err(self.not_provided(role));
        }
        let typed = match role {
            Role::SpeechToText => self.stt_check.as_ref(),
            Role::TextToSpeech => self.tts_check.as_ref(),
        };
        if let Some(check) = typed {
            check(config)?;
        }
        match &self.validator {
            Some(validator) => validator(role, config),
            None if typed.is_some() => Ok(()),
            None => config
                .parse::<toml::Table>()
                .map(|_| ())
                .map_err(|e| PluginError::config(format!("settings are not valid TOML: {e}"))),
        }
    }
}

/// Parses and checks settings of type `T` and what they point at, dropping the result:
/// `validate_config`'s job.
fn typed_check<T: PluginSettings>() -> Check {
    Box::new(|text| crate::settings::parse::<T>(text)?.check_environment())
}

/// Parses a provider's settings into `T`, with errors that name the offending key
/// (``setting `voice.speed`: invalid type: …``).
///
/// Use `#[serde(deny_unknown_fields)]` on `T` so that misspelt keys are refused. Plugins
/// registered with [`PluginDefinition::stt`] or [`PluginDefinition::tts`] never call this:
/// the SDK parses their settings type itself.
pub fn parse_settings<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, PluginError> {
    crate::settings::deserialize(config).map_err(PluginError::from)
}

/// Checks the text a text-to-speech provider is asked to say: not blank, and at most
/// `max_chars` characters. Returns its length in characters; the error is `InvalidInput`.
///
/// ```
/// use plugin_api::prelude::*;
/// assert_eq!(text_to_say("Hello.", 100).unwrap(), 6);
/// assert_eq!(text_to_say(" \n", 100).unwrap_err().kind, ErrorKind::InvalidInput);
/// assert!(text_to_say("Hello.", 3).unwrap_err().message().contains("at most 3"));
/// ```
pub fn text_to_say(text: &str, max_chars: usize) -> Result<usize, PluginError> {
    if text.trim().is_empty() {
        return Err(PluginError::invalid_input(
            "nothing to say: the text is empty",
        ));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(PluginError::invalid_input(format!(
            "text is too long ({chars} characters, at most {max_chars})"
        )));
    }
    Ok(chars)
}

/// Reads a secret from the environment variable `var`, for the provider `provider`: an
/// `Auth` error naming the variable (never the value) when it is unset or empty.
///
/// ```
/// use plugin_api::prelude::*;
/// let err = secret_from_env("my-cloud", "OCV_DOCTEST_SURELY_UNSET").unwrap_err();
/// assert_eq!(err.kind, ErrorKind::Auth);
/// assert!(err.message().contains("OCV_DOCTEST_SURELY_UNSET"), "{err}");
/// ```
pub fn secret_from_env(provider: &str, var: &str) -> Result<String, PluginError> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        Ok(_) => Err(PluginError::auth(format!(
            "`{provider}` needs the environment variable {var}, which is empty"
        ))
        .with_retryable(false)),
        Err(_) => Err(PluginError::auth(format!(
            "`{provider}` needs the environment variable {var}, which is not set"
        ))
        .with_retryable(false)),
    }
}

/// `major.minor.patch` as numbers; `None` when it is not one.
fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.trim().split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch = it.next().map_or(Some(0), |p| {
        p.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    })?;
    Some((major, minor, patch))
}

/// Whether a host speaking `host_api` can run a plugin built against this crate: the same
/// ABI line (major, and minor while major is 0) and not older than [`MIN_HOST_API`].
fn check_host_api(host_api: &str) -> Result<(), PluginError> {
    let refuse = |why: &str| {
        Err(PluginError::config(format!(
            "this plugin was built against plugin-api {API_VERSION} and needs a host that speaks \
             plugin-api {MIN_HOST_API} or later in the same line; the host speaks {host_api}: \
             {why}"
        ))
        .with_retryable(false))
    };
    let (Some(host), Some(min)) = (parse_version(host_api), parse_version(MIN_HOST_API)) else {
        return refuse("not a version number");
    };
    if host.0 != min.0 || (host.0 == 0 && host.1 != min.1) {
        return refuse("another ABI line");
    }
    if host < min {
        return refuse("upgrade openclaw-voice");
    }
    Ok(())
}

/// Turns a caught panic into a [`PluginError`] of kind `Internal`.
fn panic_error(what: &str, payload: Box<dyn Any + Send>) -> PluginError {
    let detail = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    };
    PluginError::internal(format!("plugin panicked in {what}: {detail}")).with_retryable(false)
}

/// Runs `f`, turning a panic into an `Internal` error.
fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => RResult::RErr(panic_error(what, payload)),
    }
}

struct SttAdapter(Box<dyn SpeechToText>);

impl SttProvider for SttAdapter {
    fn transcribe(
        &self,
        audio: Pcm16kMono<'_>,
        options: &TranscribeOptions,
    ) -> RResult<Transcript, PluginError> {
        guard("transcribe", || self.0.transcribe(audio, options))
    }

    fn health(&self) -> RResult<HealthReport, PluginError> {
        guard("health", || self.0.health())
    }

    fn transcribe_detailed(
        &self,
        audio: Pcm16kMono<'_>,
        options: &TranscribeOptions,
    ) -> RResult<DetailedTranscript, PluginError> {
        guard("transcribe_detailed", || {
            self.0.transcribe_detailed(audio, options)
        })
    }

    fn start_stream(
        &self,
        options: &TranscribeOptions,
    ) -> RResult<ROption<SttStreamBox>, PluginError> {
        guard("start_stream", || {
            let cancel = CancelToken::new();
            let stream = self.0.start_stream(options, cancel.clone())?;
            Ok(ROption::from(stream.map(|stream| {
                let adapter = SttStreamAdapter {
                    stream: Mutex::new(Some(stream)),
                    cancel,
                };
                SttStream_TO::from_value(adapter, TD_Opaque)
            })))
        })
    }
}

struct SttStreamAdapter {
    // `None` once finished, failed or panicked: later calls are refused.
    stream: Mutex<Option<Box<dyn TranscriptionStream>>>,
    cancel: CancelToken,
}

impl SttStreamAdapter {
    fn with_stream<T>(
        &self,
        what: &str,
        keep: impl FnOnce(&Result<T, PluginError>) -> bool,
        f: impl FnOnce(&mut Box<dyn TranscriptionStream>) -> Result<T, PluginError>,
    ) -> RResult<T, PluginError> {
        if self.cancel.is_cancelled() {
            return RResult::RErr(PluginError::invalid_input(format!(
                "{what} on a cancelled transcription stream"
            )));
        }
        let mut slot = match self.stream.lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(stream) = slot.as_mut() else {
            return RResult::RErr(PluginError::invalid_input(format!(
                "{what} on a transcription stream that already ended"
            )));
        };
        let result = guard(what, || f(stream)).into_result();
        if !keep(&result) {
            *slot = None;
        }
        result.into()
    }
}

impl crate::abi::SttStream for SttStreamAdapter {
    fn push(&self, audio: Pcm16kMono<'_>) -> RResult<ROption<PartialTranscript>, PluginError> {
        self.with_stream("push", Result::is_ok, |s| s.push(audio.as_slice()))
            .map(ROption::from)
    }

    fn finish(&self) -> RResult<DetailedTranscript, PluginError> {
        self.with_stream("finish", |_| false, |s| s.finish())
    }

    fn cancel(&self) {
        self.cancel.cancel();
    }
}

struct TtsAdapter(Box<dyn TextToSpeech>);

impl TtsProvider for TtsAdapter {
    fn voices(&self) -> RResult<RVec<Voice>, PluginError> {
        guard("voices", || self.0.voices().map(RVec::from))
    }

    fn synthesize(
        &self,
        text: RStr<'_>,
        options: &SynthesisOptions,
    ) -> RResult<SpeechStreamBox, PluginError> {
        guard("synthesize", || {
            let cancel = CancelToken::new();
            let stream = self.0.synthesize(text.as_str(), options, cancel.clone())?;
            let adapter = StreamAdapter {
                stream: Mutex::new(Some(stream)),
                cancel,
            };
            Ok(SpeechStream_TO::from_value(adapter, TD_Opaque))
        })
    }

    fn health(&self) -> RResult<HealthReport, PluginError> {
        guard("health", || self.0.health())
    }
}

struct StreamAdapter {
    // `None` once the stream ended, failed or panicked: later calls return end-of-stream.
    stream: Mutex<Option<Box<dyn AudioStream>>>,
    cancel: CancelToken,
}

impl crate::abi::SpeechStream for StreamAdapter {
    fn next_chunk(&self) -> RResult<ROption<AudioChunk>, PluginError> {
        if self.cancel.is_cancelled() {
            return RResult::ROk(ROption::RNone);
        }
        let mut slot = match self.stream.lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(stream) = slot.as_mut() else {
            return RResult::ROk(ROption::RNone);
        };
        let result = guard("next_chunk", || stream.next_chunk());
        match &result {
            RResult::ROk(Some(_)) => {}
            _ => *slot = None,
        }
        result.map(ROption::from)
    }

    fn cancel(&self) {
        self.cancel.cancel();
    }
}

/// The functions behind the exported root module; [`export_plugin!`](crate::export_plugin) and
/// [`testing`](crate::testing) call these, so a test drives exactly what the host drives.
#[doc(hidden)]
pub mod adapter {
    use super::*;

    /// Whether the host said which plugin-api it speaks (set by [`handshake`]; one flag per
    /// library, since each cdylib has its own copy of this crate).
    static HANDSHAKEN: AtomicBool = AtomicBool::new(false);

    /// `PluginModule::handshake`: refuses a host older than [`MIN_HOST_API`].
    pub fn handshake(host_api: RStr<'_>) -> RResult<(), PluginError> {
        guard("handshake", || {
            super::check_host_api(host_api.as_str())?;
            HANDSHAKEN.store(true, Ordering::SeqCst);
            Ok(())
        })
    }

    /// `PluginModule::info`; fails when the host never called [`handshake`] (a host older
    /// than [`MIN_HOST_API`]), so that host refuses the plugin with the reason.
    pub fn info(
        definition: impl FnOnce() -> &'static PluginDefinition,
    ) -> RResult<PluginInfo, PluginError> {
        guard("info", || {
            if !HANDSHAKEN.load(Ordering::SeqCst) {
                return Err(PluginError::config(format!(
                    "this plugin was built against plugin-api {API_VERSION} and needs a host \
                     that speaks plugin-api {MIN_HOST_API} or later; this host is older (it did \
                     not say which version it speaks): upgrade openclaw-voice"
                ))
                .with_retryable(false));
            }
            Ok(definition().info())
        })
    }

    /// `PluginModule::init`.
    pub fn init(definition: impl FnOnce() -> &'static PluginDefinition, host: HostContext) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let name = definition().name().to_string();
            super::logging::install(name, host);
        }));
    }

    /// `PluginModule::validate_config`.
    pub fn validate_config(
        definition: impl FnOnce() -> &'static PluginDefinition,
        role: Role,
        config: RStr<'_>,
    ) -> RResult<(), PluginError> {
        guard("validate_config", || {
            definition().validate(role, config.as_str())
        })
    }

    /// `PluginModule::new_stt`.
    pub fn new_stt(
        definition: impl FnOnce() -> &'static PluginDefinition,
        config: RStr<'_>,
    ) -> RResult<SttBox, PluginError> {
        guard("new_stt", || {
            let def = definition();
            let factory = def
                .stt
                .as_ref()
                .ok_or_else(|| def.not_provided(Role::SpeechToText))?;
            let provider = factory(config.as_str())?;
            Ok(SttProvider_TO::from_value(SttAdapter(provider), TD_Opaque))
        })
    }

    /// `PluginModule::new_tts`.
    pub fn new_tts(
        definition: impl FnOnce() -> &'static PluginDefinition,
        config: RStr<'_>,
    ) -> RResult<TtsBox, PluginError> {
        guard("new_tts", || {
            let def = definition();
            let factory = def
                .tts
                .as_ref()
                .ok_or_else(|| def.not_provided(Role::TextToSpeech))?;
            let provider = factory(config.as_str())?;
            Ok(TtsProvider_TO::from_value(TtsAdapter(provider), TD_Opaque))
        })
    }

    /// Lazily builds the definition once; used by the generated statics.
    pub fn definition_cell(
        cell: &'static OnceLock<PluginDefinition>,
        build: fn() -> PluginDefinition,
    ) -> &'static PluginDefinition {
        cell.get_or_init(build)
    }
}

/// The log bridge: `log` records from the plugin go to the host's callback, tagged with the
/// plugin's name, and panics are reported there too instead of on stderr.
pub mod logging {
    use super::*;

    struct Bridge {
        plugin: String,
        host: HostContext,
    }

    fn to_abi(level: log::Level) -> LogLevel {
        match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        }
    }

    fn to_filter(level: LogLevel) -> log::LevelFilter {
        match level {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }

    impl log::Log for Bridge {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            to_abi(metadata.level()) <= self.host.max_level
        }

        fn log(&self, record: &log::Record<'_>) {
            if !self.enabled(record.metadata()) {
                return;
            }
            let message = record.args().to_string();
            (self.host.log)(
                to_abi(record.level()),
                RStr::from_str(&self.plugin),
                RStr::from_str(record.target()),
                RStr::from_str(&message),
            );
        }

        fn flush(&self) {}
    }

    static INSTALLED: OnceLock<()> = OnceLock::new();

    /// Routes this library's `log` output and panic messages to the host. Idempotent.
    pub fn install(plugin: String, host: HostContext) {
        INSTALLED.get_or_init(|| {
            let name = plugin.clone();
            if log::set_boxed_logger(Box::new(Bridge { plugin, host })).is_ok() {
                log::set_max_level(to_filter(host.max_level));
            }
            std::panic::set_hook(Box::new(move |panic| {
                let message = RString::from(panic.to_string());
                (host.log)(
                    LogLevel::Error,
                    RStr::from_str(&name),
                    RStr::from_str("panic"),
                    message.as_rstr(),
                );
            }));
        });
    }
}

/// Generates the exported root module for a plugin from a function returning its
/// [`PluginDefinition`]. Use it once, at the crate root of a `cdylib`:
///
/// ```
/// fn definition() -> plugin_api::sdk::PluginDefinition {
///     plugin_api::sdk::PluginDefinition::new("empty", "0.1.0")
/// }
/// plugin_api::export_plugin!(definition);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($definition:path) => {
        // A panic must unwind to the SDK's `catch_unwind` to become an error; with
        // `panic = "abort"` the first panic in the plugin would kill the whole host.
        #[cfg(panic = "abort")]
        compile_error!(
            "OpenClaw Voice plugins must be built with `panic = \"unwind\"` (the default): with \
             `panic = \"abort\"` a panic in the plugin kills the host instead of becoming an \
             error. Remove `panic = \"abort\"` from this crate's profile."
        );
        const _: () = {
            use $crate::abi_stable::std_types::{RResult, RStr};
            use $crate::abi::{
                HostContext, PluginError, PluginInfo, PluginModule, PluginModule_Ref, Role,
                SttBox, TtsBox,
            };

            static __OCV_DEFINITION: ::std::sync::OnceLock<$crate::sdk::PluginDefinition> =
                ::std::sync::OnceLock::new();

            fn __ocv_definition() -> &'static $crate::sdk::PluginDefinition {
                $crate::sdk::adapter::definition_cell(&__OCV_DEFINITION, $definition)
            }
            extern "C" fn __ocv_info() -> RResult<PluginInfo, PluginError> {
                $crate::sdk::adapter::info(__ocv_definition)
            }
            extern "C" fn __ocv_init(host: HostContext) {
                $crate::sdk::adapter::init(__ocv_definition, host)
            }
            extern "C" fn __ocv_validate_config(role: Role, config: RStr<'_>) -> RResult<(), PluginError> {
                $crate::sdk::adapter::validate_config(__ocv_definition, role, config)
            }
            extern "C" fn __ocv_new_stt(config: RStr<'_>) -> RResult<SttBox, PluginError> {
                $crate::sdk::adapter::new_stt(__ocv_definition, config)
            }
            extern "C" fn __ocv_new_tts(config: RStr<'_>) -> RResult<TtsBox, PluginError> {
                $crate::sdk::adapter::new_tts(__ocv_definition, config)
            }
            extern "C" fn __ocv_handshake(host_api: RStr<'_>) -> RResult<(), PluginError> {
                $crate::sdk::adapter::handshake(host_api)
            }
            fn __ocv_root_module() -> PluginModule_Ref {
                $crate::abi_stable::prefix_type::PrefixTypeTrait::leak_into_prefix(PluginModule {
                    info: __ocv_info,
                    init: __ocv_init,
                    validate_config: __ocv_validate_config,
                    new_stt: __ocv_new_stt,
                    new_tts: __ocv_new_tts,
                    handshake: __ocv_handshake,
                })
            }
            extern "C" fn __ocv_erased_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(__ocv_root_module)
            }

            // The symbol name is abi_stable's `ROOT_MODULE_LOADER_NAME` (checked by a test).
            #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
            static LIB_HEADER: $crate::abi_stable::library::LibHeader = unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<PluginModule_Ref>(
                    __ocv_erased_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            };
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_symbol_name_matches_abi_stable() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }

    #[test]
    fn panic_payloads_become_internal_errors() {
        let err = guard::<()>("transcribe", || panic!("boom {}", 42)).unwrap_err();
        assert_eq!(err.kind, crate::abi::ErrorKind::Internal);
        assert!(err.message().contains("boom 42"), "{}", err.message());
        assert!(err.message().contains("transcribe"));
    }

    #[test]
    fn parse_settings_names_unknown_key() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            model: String,
        }
        let err = parse_settings::<S>("model = \"x\"\nmodle = 1").unwrap_err();
        assert!(err.message().contains("modle"), "{}", err.message());
    }

    #[test]
    fn host_versions_are_checked_against_the_minimum() {
        assert!(check_host_api(MIN_HOST_API).is_ok());
        assert!(check_host_api(API_VERSION).is_ok());
        let err = check_host_api("0.1.0").unwrap_err();
        assert!(err.message().contains("upgrade openclaw-voice"), "{err}");
        assert!(check_host_api("0.2.0").is_err());
        assert!(check_host_api("1.0.0").is_err());
        assert!(check_host_api("garbage").is_err());
    }

    #[test]
    fn channel_stream_ends_on_cancel() {
        let cancel = CancelToken::new();
        let (tx, mut stream) = ChannelStream::new(cancel.clone());
        tx.send(Ok(AudioChunk::new(vec![1, 2], 16_000))).unwrap();
        assert!(stream.next_chunk().unwrap().is_some());
        cancel.cancel();
        assert!(stream.next_chunk().unwrap().is_none());
    }
}
