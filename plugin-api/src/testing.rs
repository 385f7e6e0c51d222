//! Drive a plugin in-process, through the same adapters the exported module uses, without
//! building a `cdylib` or loading it: unit tests for plugin authors.
//!
//! [`TestPlugin::check_tts`] and [`TestPlugin::check_stt`] go further: they check what the
//! host relies on (a cancel honoured within one chunk while the producer runs, chunk sizes,
//! one sample rate per stream, error kinds), and say what is wrong in words.
//!
//! ```
//! use plugin_api::prelude::*;
//! use plugin_api::testing::TestPlugin;
//!
//! struct Silent;
//! impl SpeechToText for Silent {
//!     fn transcribe(&self, _: Pcm16kMono<'_>, _: &TranscribeOptions) -> Result<Transcript, PluginError> {
//!         Ok(Transcript::empty())
//!     }
//! }
//! fn definition() -> PluginDefinition {
//!     PluginDefinition::new("silent", "0.1.0").stt(|_: NoSettings| Ok(Silent))
//! }
//!
//! let plugin = TestPlugin::new(definition);
//! let stt = plugin.stt("").unwrap();
//! assert_eq!(stt.transcribe(&[0; 16_000], &TranscribeOptions::default()).unwrap().text(), "");
//! plugin.check_stt("").unwrap();
//! ```

use std::fmt;
use std::sync::mpsc;
use std::time::Duration;

use abi_stable::std_types::{ROption, RStr};

use crate::abi::ErrorKind;
use crate::abi::{
    AudioChunk, DetailedTranscript, HealthReport, HostContext, LogLevel, PartialTranscript,
    Pcm16kMono, PluginError, PluginInfo, Role, SpeechStreamBox, SttBox, SttStreamBox,
    SynthesisOptions, TranscribeOptions, Transcript, TtsBox, Voice, API_VERSION,
};
use crate::sdk::{adapter, AudioStream, CancelToken, PluginDefinition, TextToSpeech};

/// A plugin definition, wrapped exactly as the exported module wraps it.
pub struct TestPlugin {
    definition: &'static PluginDefinition,
}

impl TestPlugin {
    /// Builds the definition (once; it is leaked, as in a loaded library) and initialises the
    /// log bridge with a callback that prints to stderr.
    pub fn new(build: fn() -> PluginDefinition) -> Self {
        let definition: &'static PluginDefinition = Box::leak(Box::new(build()));
        adapter::init(
            || definition,
            HostContext {
                log: print_log,
                max_level: LogLevel::Debug,
            },
        );
        // What a host does next: say which plugin-api it speaks (this crate's).
        let _ = adapter::handshake(RStr::from_str(API_VERSION));
        TestPlugin { definition }
    }

    /// `PluginModule::info`.
    pub fn info(&self) -> Result<PluginInfo, PluginError> {
        adapter::info(|| self.definition).into_result()
    }

    /// `PluginModule::validate_config`.
    pub fn validate_config(&self, role: Role, settings: &str) -> Result<(), PluginError> {
        adapter::validate_config(|| self.definition, role, RStr::from_str(settings)).into_result()
    }

    /// Builds a speech-to-text provider from TOML settings.
    pub fn stt(&self, settings: &str) -> Result<TestStt, PluginError> {
        adapter::new_stt(|| self.definition, RStr::from_str(settings))
            .into_result()
            .map(TestStt)
    }

    /// Builds a text-to-speech provider from TOML settings.
    pub fn tts(&self, settings: &str) -> Result<TestTts, PluginError> {
        adapter::new_tts(|| self.definition, RStr::from_str(settings))
            .into_result()
            .map(TestTts)
    }
}

/// A speech-to-text provider behind the ABI adapter.
pub struct TestStt(pub SttBox);

impl TestStt {
    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(
        &self,
        samples_16k_mono: &[i16],
        options: &TranscribeOptions,
    ) -> Result<Transcript, PluginError> {
        self.0
            .transcribe(Pcm16kMono::new(samples_16k_mono), options)
            .into_result()
    }

    /// The provider's health.
    pub fn health(&self) -> Result<HealthReport, PluginError> {
        self.0.health().into_result()
    }

    /// Transcribes with word timings and language detail.
    pub fn transcribe_detailed(
        &self,
        samples_16k_mono: &[i16],
        options: &TranscribeOptions,
    ) -> Result<DetailedTranscript, PluginError> {
        self.0
            .transcribe_detailed(Pcm16kMono::new(samples_16k_mono), options)
            .into_result()
    }

    /// Starts a streaming transcription; `None` when the provider does not stream.
    pub fn start_stream(
        &self,
        options: &TranscribeOptions,
    ) -> Result<Option<TestSttStream>, PluginError> {
        self.0
            .start_stream(options)
            .into_result()
            .map(|s| s.into_option().map(TestSttStream))
    }
}

/// A streaming transcription behind the ABI adapter.
pub struct TestSttStream(pub SttStreamBox);

impl TestSttStream {
    /// Pushes samples; a new partial transcript, if any.
    pub fn push(&self, samples_16k_mono: &[i16]) -> Result<Option<PartialTranscript>, PluginError> {
        self.0
            .push(Pcm16kMono::new(samples_16k_mono))
            .into_result()
            .map(|p| p.into_option())
    }

    /// Ends the audio: the final transcript.
    pub fn finish(&self) -> Result<DetailedTranscript, PluginError> {
        self.0.finish().into_result()
    }

    /// Abandons the stream.
    pub fn cancel(&self) {
        self.0.cancel();
    }
}

/// A text-to-speech provider behind the ABI adapter.
pub struct TestTts(pub TtsBox);

impl TestTts {
    /// The voices on offer.
    pub fn voices(&self) -> Result<Vec<Voice>, PluginError> {
        self.0.voices().into_result().map(|v| v.into_vec())
    }

    /// Starts a synthesis and returns the stream.
    pub fn synthesize(
        &self,
        text: &str,
        options: &SynthesisOptions,
    ) -> Result<SpeechStreamBox, PluginError> {
        self.0
            .synthesize(RStr::from_str(text), options)
            .into_result()
    }

    /// Starts a synthesis; pull its audio with [`TestSpeech::next_chunk`].
    ///
    /// ```
    /// # use plugin_api::prelude::*;
    /// # struct Two;
    /// # impl TextToSpeech for Two {
    /// #     fn synthesize(&self, _: &str, _: &SynthesisOptions, _: CancelToken)
    /// #         -> Result<Box<dyn AudioStream>, PluginError> {
    /// #         let chunk = AudioChunk::new(vec![1; 160], 16_000);
    /// #         Ok(Box::new(VecStream::new(vec![chunk.clone(), chunk])))
    /// #     }
    /// # }
    /// # fn definition() -> PluginDefinition {
    /// #     PluginDefinition::new("two", "0.1.0").tts(|_: NoSettings| Ok(Two))
    /// # }
    /// let plugin = plugin_api::testing::TestPlugin::new(definition);
    /// let speech = plugin.tts("").unwrap().start("hi", &SynthesisOptions::default()).unwrap();
    /// assert_eq!(speech.next_chunk().unwrap().unwrap().samples().len(), 160);
    /// speech.cancel();
    /// assert_eq!(speech.next_chunk().unwrap(), None);
    /// ```
    pub fn start(&self, text: &str, options: &SynthesisOptions) -> Result<TestSpeech, PluginError> {
        self.synthesize(text, options).map(TestSpeech)
    }

    /// Synthesizes `text` and collects every chunk.
    pub fn synthesize_all(
        &self,
        text: &str,
        options: &SynthesisOptions,
    ) -> Result<Vec<AudioChunk>, PluginError> {
        let stream = self.synthesize(text, options)?;
        let mut chunks = Vec::new();
        while let ROption::RSome(chunk) = stream.next_chunk().into_result()? {
            chunks.push(chunk);
        }
        Ok(chunks)
    }

    /// The provider's health.
    pub fn health(&self) -> Result<HealthReport, PluginError> {
        self.0.health().into_result()
    }
}

/// A synthesis behind the ABI adapter, in plain Rust types.
pub struct TestSpeech(SpeechStreamBox);

impl TestSpeech {
    /// The next chunk; `None` once synthesis is complete or cancelled.
    pub fn next_chunk(&self) -> Result<Option<AudioChunk>, PluginError> {
        self.0.next_chunk().into_result().map(ROption::into_option)
    }

    /// Cancels the synthesis, as the host does on barge-in.
    pub fn cancel(&self) {
        self.0.cancel();
    }
}

/// The longest chunk [`TestPlugin::check_tts`] accepts: the host plays a reply as its chunks
/// arrive, so a long chunk delays the first sound and a barge-in.
pub const MAX_CHUNK_MS: u64 = 1_000;

/// How long [`TestPlugin::check_tts`] waits for the stream to end after a cancel.
pub const CANCEL_WITHIN: Duration = Duration::from_secs(1);

/// How long [`TestPlugin::check_tts`] waits for the first chunk.
const FIRST_CHUNK_WITHIN: Duration = Duration::from_secs(30);

/// What [`TestPlugin::check_tts`] or [`TestPlugin::check_stt`] found wrong, one problem a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFailure {
    /// Each problem, in words.
    pub problems: Vec<String>,
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the plugin does not behave as the host expects:")?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CheckFailure {}

fn verdict(problems: Vec<String>) -> Result<(), CheckFailure> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CheckFailure { problems })
    }
}

impl TestPlugin {
    /// Checks a text-to-speech provider built from `settings` the way the host uses it,
    /// speaking `text` (several words, so that it makes more than one chunk):
    ///
    /// - every chunk is non-empty, at most [`MAX_CHUNK_MS`] long, at one sample rate between
    ///   8 and 48 kHz for the whole stream, and among the declared `sample_rates` if any;
    /// - a cancel is honoured by the plugin's own stream within one chunk, and within
    ///   [`CANCEL_WITHIN`], while its producer runs (the stream is pulled directly, without the
    ///   adapter's end-of-stream on cancel that the host also has);
    /// - empty text and an unknown voice are refused as `InvalidInput` or `Config` (or
    ///   accepted), never an `Internal` error or a panic.
    ///
    /// ```
    /// # use plugin_api::prelude::*;
    /// # struct Deaf;
    /// # impl TextToSpeech for Deaf {
    /// #     fn synthesize(&self, text: &str, _: &SynthesisOptions, _: CancelToken)
    /// #         -> Result<Box<dyn AudioStream>, PluginError> {
    /// #         let chunks = text.split(' ').map(|_| AudioChunk::new(vec![1; 1_600], 16_000));
    /// #         Ok(Box::new(VecStream::new(chunks.collect())))
    /// #     }
    /// # }
    /// # fn definition() -> PluginDefinition {
    /// #     PluginDefinition::new("deaf", "0.1.0").tts(|_: NoSettings| Ok(Deaf))
    /// # }
    /// // `Deaf` ignores its `CancelToken`:
    /// let failure = plugin_api::testing::TestPlugin::new(definition)
    ///     .check_tts("", "one two three four")
    ///     .unwrap_err();
    /// assert!(failure.to_string().contains("after cancel"), "{failure}");
    /// ```
    pub fn check_tts(&self, settings: &str, text: &str) -> Result<(), CheckFailure> {
        let tts = self.tts(settings).map_err(|e| CheckFailure {
            problems: vec![format!("building the provider failed: {e}")],
        })?;
        let mut problems = Vec::new();
        let declared = self.definition.info().capabilities;
        let made = match tts.synthesize_all(text, &SynthesisOptions::default()) {
            Ok(chunks) => {
                check_chunks(&chunks, declared.rates(), &mut problems);
                chunks.len()
            }
            Err(e) => {
                problems.push(format!("synthesizing {text:?} failed: {e}"));
                0
            }
        };
        check_refusals(&tts, &mut problems);
        if made < 3 {
            problems.push(format!(
                "{text:?} made {made} chunk(s), too few to check cancel: use a longer text"
            ));
            return verdict(problems);
        }
        match self.definition.tts.as_ref().map(|build| build(settings)) {
            Some(Ok(raw)) => check_cancel(raw.as_ref(), text, &mut problems),
            Some(Err(e)) => problems.push(format!("building the provider failed: {e}")),
            None => problems.push("the plugin does not provide tts".into()),
        }
        verdict(problems)
    }

    /// Checks a speech-to-text provider built from `settings` the way the host uses it: a
    /// second of silence transcribes (plain and detailed), empty audio is accepted or refused
    /// as `InvalidInput`, health answers, and a stream (where the provider streams) takes
    /// audio and finishes; no call ends in an `Internal` error or a panic.
    ///
    /// ```
    /// # use plugin_api::prelude::*;
    /// # struct Fussy;
    /// # impl SpeechToText for Fussy {
    /// #     fn transcribe(&self, audio: Pcm16kMono<'_>, _: &TranscribeOptions) -> Result<Transcript, PluginError> {
    /// #         if audio.as_slice().is_empty() {
    /// #             panic!("no audio"); // a bug the check finds
    /// #         }
    /// #         Ok(Transcript::empty())
    /// #     }
    /// # }
    /// # fn definition() -> PluginDefinition {
    /// #     PluginDefinition::new("fussy", "0.1.0").stt(|_: NoSettings| Ok(Fussy))
    /// # }
    /// // `Fussy` panics on empty audio:
    /// let failure = plugin_api::testing::TestPlugin::new(definition).check_stt("").unwrap_err();
    /// assert!(failure.problems[0].starts_with("empty audio must be transcribed"), "{failure}");
    /// ```
    pub fn check_stt(&self, settings: &str) -> Result<(), CheckFailure> {
        let stt = self.stt(settings).map_err(|e| CheckFailure {
            problems: vec![format!("building the provider failed: {e}")],
        })?;
        let mut problems = Vec::new();
        let options = TranscribeOptions::default();
        let silence = vec![0i16; 16_000];
        if let Err(e) = stt.transcribe(&silence, &options) {
            problems.push(format!("transcribing a second of silence failed: {e}"));
        }
        if let Err(e) = stt.transcribe_detailed(&silence, &options) {
            problems.push(format!(
                "transcribe_detailed on a second of silence failed: {e}"
            ));
        }
        match stt.transcribe(&[], &options) {
            Err(e) if e.kind != ErrorKind::InvalidInput => problems.push(format!(
                "empty audio must be transcribed or refused as invalid_input, not: {e}"
            )),
            _ => {}
        }
        if let Err(e) = stt.health() {
            problems.push(format!("health failed: {e}"));
        }
        match stt.start_stream(&options) {
            Ok(Some(stream)) => {
                if let Err(e) = stream.push(&silence[..8_000]).and_then(|_| stream.finish()) {
                    problems.push(format!("a stream of half a second of silence failed: {e}"));
                }
            }
            Ok(None) => {}
            Err(e) => problems.push(format!("start_stream failed: {e}")),
        }
        verdict(problems)
    }
}

fn check_chunks(chunks: &[AudioChunk], declared: &[u32], problems: &mut Vec<String>) {
    let Some(first) = chunks.first() else {
        problems.push("the synthesis produced no audio".into());
        return;
    };
    // The first chunk found wrong is reported; the rest are likely wrong the same way.
    let before = problems.len();
    for (n, chunk) in chunks.iter().enumerate() {
        if problems.len() > before {
            return;
        }
        let rate = chunk.sample_rate;
        if chunk.samples().is_empty() {
            problems.push(format!(
                "chunk {n} is empty: end the stream with `None` instead"
            ));
        }
        if !(8_000..=48_000).contains(&rate) {
            problems.push(format!(
                "chunk {n} has sample rate {rate} Hz (8000 to 48000 expected)"
            ));
        } else if rate != first.sample_rate {
            problems.push(format!(
                "chunk {n} is at {rate} Hz but the stream started at {} Hz: one rate per stream",
                first.sample_rate
            ));
        } else if !declared.is_empty() && !declared.contains(&rate) {
            problems.push(format!(
                "chunk {n} is at {rate} Hz, which the capabilities do not declare ({declared:?})"
            ));
        }
        if chunk.duration_ms() > MAX_CHUNK_MS {
            problems.push(format!(
                "chunk {n} is {} ms long: yield at most {MAX_CHUNK_MS} ms at a time, so the host \
                 can start playing (and stop on a barge-in) early",
                chunk.duration_ms()
            ));
        }
    }
}

fn check_refusals(tts: &TestTts, problems: &mut Vec<String>) {
    let voice = SynthesisOptions {
        voice: ROption::RSome("no-such-voice-for-the-check".into()),
        ..SynthesisOptions::default()
    };
    let cases = [
        ("empty text", "", SynthesisOptions::default()),
        ("an unknown voice", "hello", voice),
    ];
    for (what, text, options) in cases {
        if let Err(e) = tts.synthesize_all(text, &options) {
            if !matches!(e.kind, ErrorKind::InvalidInput | ErrorKind::Config) {
                problems.push(format!(
                    "{what} must be refused as invalid_input or config, not: {e}"
                ));
            }
        }
    }
}

/// Pulls the plugin's own stream on a thread: one chunk, then a cancel, then at most one more
/// chunk before the end, each pull within its deadline (`text` makes three chunks or more).
fn check_cancel(tts: &dyn TextToSpeech, text: &str, problems: &mut Vec<String>) {
    let cancel = CancelToken::new();
    let stream = match tts.synthesize(text, &SynthesisOptions::default(), cancel.clone()) {
        Ok(stream) => stream,
        Err(e) => return problems.push(format!("synthesizing {text:?} failed: {e}")),
    };
    let (ask, asked) = mpsc::channel::<()>();
    let (answer, answers) = mpsc::channel();
    std::thread::spawn(move || pull_on_request(stream, asked, answer));
    let pull = |within: Duration| -> Result<Option<AudioChunk>, String> {
        ask.send(())
            .map_err(|_| "the stream panicked".to_string())?;
        match answers.recv_timeout(within) {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) => Err(format!("the stream failed: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("no answer within {within:?}")),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err("the stream panicked".into()),
        }
    };
    match pull(FIRST_CHUNK_WITHIN) {
        Ok(Some(_)) => {}
        Ok(None) => return problems.push("the synthesis produced no audio".into()),
        Err(e) => return problems.push(format!("first chunk: {e}")),
    }
    cancel.cancel();
    for extra in 0..2 {
        match pull(CANCEL_WITHIN) {
            Ok(None) => return,
            Ok(Some(_)) if extra == 0 => {}
            Ok(Some(_)) => {
                return problems.push(
                    "the stream went on yielding audio after cancel: check the CancelToken \
                     before each chunk, and stop the producer"
                        .into(),
                )
            }
            Err(e) => return problems.push(format!("after cancel: {e}")),
        }
    }
}

fn pull_on_request(
    mut stream: Box<dyn AudioStream>,
    asked: mpsc::Receiver<()>,
    answer: mpsc::Sender<Result<Option<AudioChunk>, PluginError>>,
) {
    while asked.recv().is_ok() {
        if answer.send(stream.next_chunk()).is_err() {
            return;
        }
    }
}

extern "C" fn print_log(level: LogLevel, plugin: RStr<'_>, target: RStr<'_>, message: RStr<'_>) {
    eprintln!("[{level:?} {plugin} {target}] {message}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use crate::settings::SettingsError;

    /// Words as 100 ms chunks at `rate`, through a producer thread and a `ChannelStream`;
    /// `honour_cancel` says whether the producer looks at the token.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Settings {
        rate: u32,
        chunk_ms: u32,
        honour_cancel: bool,
    }
    impl Default for Settings {
        fn default() -> Self {
            Settings {
                rate: 16_000,
                chunk_ms: 100,
                honour_cancel: true,
            }
        }
    }
    impl PluginSettings for Settings {
        fn check(&self) -> Result<(), SettingsError> {
            if self.rate == 0 {
                return Err(SettingsError::new("rate", "must not be 0"));
            }
            Ok(())
        }
    }

    struct Words(Settings);

    struct Own {
        chunks: std::vec::IntoIter<AudioChunk>,
        cancel: CancelToken,
        honour: bool,
    }
    impl AudioStream for Own {
        fn next_chunk(&mut self) -> Result<Option<AudioChunk>, PluginError> {
            if self.honour && self.cancel.is_cancelled() {
                return Ok(None);
            }
            Ok(self.chunks.next())
        }
    }

    impl TextToSpeech for Words {
        fn synthesize(
            &self,
            text: &str,
            options: &SynthesisOptions,
            cancel: CancelToken,
        ) -> Synthesis {
            if text.is_empty() {
                return Err(PluginError::invalid_input("empty"));
            }
            if options.voice().is_some() {
                return Err(PluginError::internal("voices are not handled"));
            }
            let n = (self.0.rate * self.0.chunk_ms / 1000) as usize;
            let chunks = text
                .split(' ')
                .map(|_| AudioChunk::new(vec![100; n], self.0.rate))
                .collect::<Vec<_>>();
            Ok(Box::new(Own {
                chunks: chunks.into_iter(),
                cancel,
                honour: self.0.honour_cancel,
            }))
        }
    }

    fn definition() -> PluginDefinition {
        PluginDefinition::new("words", "0.1.0")
            .capabilities(Capabilities::new().sample_rates([16_000, 24_000]))
            .tts(|s: Settings| Ok(Words(s)))
    }

    fn problems(settings: &str) -> Vec<String> {
        match TestPlugin::new(definition).check_tts(settings, "one two three four") {
            Ok(()) => Vec::new(),
            Err(failure) => failure.problems,
        }
    }

    #[test]
    fn a_stream_that_ignores_cancel_fails_the_check() {
        let found = problems("honour_cancel = false");
        assert!(
            found.iter().any(|p| p.contains("after cancel")),
            "{found:?}"
        );
        // Through the adapter the host uses, the same stream looks fine: the SDK ends it.
        let tts = TestPlugin::new(definition)
            .tts("honour_cancel = false")
            .unwrap();
        let speech = tts
            .start("one two three", &SynthesisOptions::default())
            .unwrap();
        assert!(speech.next_chunk().unwrap().is_some());
        speech.cancel();
        assert_eq!(speech.next_chunk().unwrap(), None);
    }

    #[test]
    fn chunk_sizes_rates_and_error_kinds_are_checked() {
        let found = problems("chunk_ms = 1500");
        assert!(
            found.iter().any(|p| p.contains("1500 ms long")),
            "{found:?}"
        );
        let found = problems("rate = 8000");
        assert!(
            found.iter().any(|p| p.contains("do not declare")),
            "{found:?}"
        );
        // The unknown voice ends in `Internal` in every run above.
        assert!(
            found.iter().any(|p| p.contains("an unknown voice")),
            "{found:?}"
        );
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn typed_settings_validate_without_a_role_check_or_a_second_parser() {
        let plugin = TestPlugin::new(definition);
        let err = plugin
            .validate_config(Role::TextToSpeech, "rate = \"fast\"")
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(
            err.message().starts_with("setting `rate`: invalid type"),
            "{err}"
        );
        let err = plugin
            .validate_config(Role::TextToSpeech, "rate = 0")
            .unwrap_err();
        assert_eq!(err.message(), "setting `rate`: must not be 0");
        assert!(plugin
            .validate_config(Role::TextToSpeech, "rate = 24000")
            .is_ok());
        let err = plugin.validate_config(Role::SpeechToText, "").unwrap_err();
        assert!(err.message().contains("does not provide stt"), "{err}");
        assert!(plugin.stt("").is_err());
    }
}
