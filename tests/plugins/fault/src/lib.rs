//! `fault`: a test plugin whose settings choose how it misbehaves, so the host's containment
//! (panics, hangs, typed errors) can be tested against a real `cdylib`.
//!
//! It provides both speech-to-text and text-to-speech. Settings (all optional):
//!
//! ```toml
//! mode = "ok"              # ok | error | panic-in-constructor | panic-in-validate
//!                          # | panic-in-call | panic-in-stream | hang
//!                          # | abort | segfault | stack-overflow | oom (crash the process:
//!                          #   only a worker process survives these, see `isolation`)
//! fail_calls = 1           # misbehave on the first N calls only, then act as `ok` (default: all)
//! once_file = "/tmp/x"     # misbehave only while this file does not exist, creating it first:
//!                          # "once" across worker restarts (a counter restarts with the process)
//! outage_file = "/tmp/x"   # misbehave only while this file exists, act as `ok` otherwise: an
//!                          # outage a script starts and ends (scripts/drill)
//! hang_ms = 3600000        # how long `hang` blocks a call (default: one hour)
//! error_kind = "unavailable"  # for `error`: config | auth | rate_limited | timeout
//!                             # | unavailable | invalid_input | internal
//! retryable = true         # for `error`: overrides the kind's default
//! retry_after_ms = 1500    # for `error`: the delay the "provider" asks for
//! message = "..."          # for `error`: the message
//! api_key_env = "VAR"      # a secret the provider needs; setup fails when it is not set
//! chunks = 2               # for text-to-speech in `ok`: chunks per synthesis
//! setup_delay_ms = 0       # building the provider takes this long (a slow model load)
//! ```
//!
//! In `ok` mode, `transcribe` does a small computation over every sample (their count and sum)
//! and reports it as the text: `"16000 samples, sum 12345"`. The ABI benchmark compares this
//! call through the loaded library against the same work done by a direct Rust call.
//!
//! It also streams speech-to-text: pushed audio answers with a partial transcript
//! (`"3200 samples so far"`), and finishing gives the same text `transcribe` would for all the
//! audio pushed, with one word timing per 100 ms of audio.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plugin_api::prelude::*;
use serde::Deserialize;

/// How the provider behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    /// Works.
    #[default]
    Ok,
    /// Every call returns the configured error.
    Error,
    /// Building the provider panics.
    PanicInConstructor,
    /// Checking the settings panics.
    PanicInValidate,
    /// `transcribe` and `synthesize` panic.
    PanicInCall,
    /// `synthesize` succeeds, then the stream panics after its first chunk.
    PanicInStream,
    /// `transcribe` and `synthesize` block for `hang_ms`.
    Hang,
    /// `transcribe` and `synthesize` call `abort()`.
    Abort,
    /// `transcribe` and `synthesize` write through a null pointer (SIGSEGV).
    Segfault,
    /// `transcribe` and `synthesize` recurse until the stack overflows.
    StackOverflow,
    /// `transcribe` and `synthesize` allocate (and touch) memory until allocation fails,
    /// which aborts; they give up with an error after 8 GiB so a machine without a limit
    /// survives the test.
    Oom,
}

/// [`ErrorKind`], as written in settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Config,
    Auth,
    RateLimited,
    Timeout,
    #[default]
    Unavailable,
    InvalidInput,
    Internal,
}

impl From<Kind> for ErrorKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Config => ErrorKind::Config,
            Kind::Auth => ErrorKind::Auth,
            Kind::RateLimited => ErrorKind::RateLimited,
            Kind::Timeout => ErrorKind::Timeout,
            Kind::Unavailable => ErrorKind::Unavailable,
            Kind::InvalidInput => ErrorKind::InvalidInput,
            Kind::Internal => ErrorKind::Internal,
        }
    }
}

/// The provider's settings; see the crate docs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    mode: Mode,
    fail_calls: Option<u64>,
    once_file: Option<String>,
    outage_file: Option<std::path::PathBuf>,
    hang_ms: u64,
    error_kind: Kind,
    retryable: Option<bool>,
    retry_after_ms: Option<u64>,
    message: String,
    api_key_env: Option<String>,
    chunks: u32,
    setup_delay_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Ok,
            fail_calls: None,
            once_file: None,
            outage_file: None,
            hang_ms: 3_600_000,
            error_kind: Kind::Unavailable,
            retryable: None,
            retry_after_ms: None,
            message: "the fault plugin was told to fail".into(),
            api_key_env: None,
            chunks: 2,
            setup_delay_ms: 0,
        }
    }
}

impl PluginSettings for Settings {
    /// `check-config`: the panic it was told to make, and the secret it needs.
    fn check_environment(&self) -> Result<(), PluginError> {
        if self.mode == Mode::PanicInValidate {
            panic!("fault plugin: panic in validate_config, as configured");
        }
        self.secret()
    }
}

impl Settings {
    /// Reads the secret like a real provider would; only the variable's name is ever logged.
    fn secret(&self) -> Result<(), PluginError> {
        if let Some(var) = &self.api_key_env {
            secret_from_env("fault", var)?;
            log::info!("secret found in {var}");
        }
        Ok(())
    }

    fn error(&self) -> PluginError {
        let mut error = PluginError::new(self.error_kind.into(), self.message.clone())
            .with_retry_after(self.retry_after_ms);
        if let Some(retryable) = self.retryable {
            error = error.with_retryable(retryable);
        }
        error
    }
}

/// The state shared by both roles: the settings and how many calls were made.
struct Fault {
    settings: Settings,
    calls: AtomicU64,
}

impl Fault {
    fn new(settings: Settings, role: Role) -> Result<Self, PluginError> {
        settings.secret()?;
        if settings.mode == Mode::PanicInConstructor {
            panic!("fault plugin: panic in the {role} constructor, as configured");
        }
        std::thread::sleep(Duration::from_millis(settings.setup_delay_ms));
        Ok(Fault {
            settings,
            calls: AtomicU64::new(0),
        })
    }

    /// The mode this call runs in: the configured one for the first `fail_calls` calls, and
    /// while `outage_file` exists when it is set.
    fn mode_for_call(&self) -> Mode {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(file) = &self.settings.outage_file {
            if !file.exists() {
                return Mode::Ok;
            }
        }
        if let Some(path) = &self.settings.once_file {
            if std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .is_err()
            {
                return Mode::Ok;
            }
        }
        match self.settings.fail_calls {
            Some(limit) if n >= limit => Mode::Ok,
            _ => self.settings.mode,
        }
    }

    /// Applies the faults every call shares; `Ok(mode)` means the call goes on.
    fn misbehave(&self, what: &str) -> Result<Mode, PluginError> {
        let mode = self.mode_for_call();
        match mode {
            Mode::Error => Err(self.settings.error()),
            Mode::PanicInCall => panic!("fault plugin: panic in {what}, as configured"),
            Mode::Hang => {
                std::thread::sleep(Duration::from_millis(self.settings.hang_ms));
                Ok(mode)
            }
            Mode::Abort => std::process::abort(),
            Mode::Segfault => {
                // SAFETY: none; crashing the process with SIGSEGV is this mode's purpose.
                unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
                Ok(mode)
            }
            Mode::StackOverflow => {
                let depth = recurse(std::hint::black_box(1));
                Err(PluginError::internal(format!(
                    "the stack did not overflow ({depth})"
                )))
            }
            Mode::Oom => Err(exhaust_memory()),
            _ => Ok(mode),
        }
    }
}

/// Recurses with a large frame until the stack overflows.
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 512]);
    recurse(frame[0].wrapping_add(1)).wrapping_add(frame[511])
}

/// Allocates 64 MiB blocks (touching every page) until allocation fails, which aborts.
fn exhaust_memory() -> PluginError {
    const BLOCK: usize = 64 << 20;
    let mut held: Vec<Vec<u8>> = Vec::new();
    while held.len() * BLOCK < 8 << 30 {
        let mut block = vec![0u8; BLOCK];
        for i in (0..BLOCK).step_by(4096) {
            block[i] = 1;
        }
        held.push(std::hint::black_box(block));
    }
    PluginError::internal("allocated 8 GiB without hitting a limit; giving up")
}

/// The work `ok` mode does for one utterance; the ABI benchmark repeats it in a direct call.
fn describe(samples: &[i16]) -> Transcript {
    let sum: i64 = samples.iter().map(|&s| i64::from(s)).sum();
    Transcript::new(format!("{} samples, sum {sum}", samples.len()))
}

impl SpeechToText for Fault {
    fn transcribe(
        &self,
        audio: Pcm16kMono<'_>,
        _options: &TranscribeOptions,
    ) -> Result<Transcript, PluginError> {
        self.misbehave("transcribe")?;
        Ok(describe(audio.as_slice()))
    }

    fn health(&self) -> Result<HealthReport, PluginError> {
        Ok(HealthReport::healthy(format!(
            "fault plugin in {:?} mode",
            self.settings.mode
        )))
    }

    fn start_stream(
        &self,
        _options: &TranscribeOptions,
        cancel: CancelToken,
    ) -> Result<Option<Box<dyn TranscriptionStream>>, PluginError> {
        self.misbehave("start_stream")?;
        Ok(Some(Box::new(Accumulator {
            samples: Vec::new(),
            cancel,
        })))
    }
}

/// A transcription stream that gathers the audio and describes it, like `transcribe`.
struct Accumulator {
    samples: Vec<i16>,
    cancel: CancelToken,
}

impl TranscriptionStream for Accumulator {
    fn push(&mut self, samples: &[i16]) -> Result<Option<PartialTranscript>, PluginError> {
        if self.cancel.is_cancelled() {
            return Err(PluginError::invalid_input("the stream was cancelled"));
        }
        self.samples.extend_from_slice(samples);
        Ok(Some(PartialTranscript {
            text: format!("{} samples so far", self.samples.len()).into(),
            audio_ms: (self.samples.len() / 16) as u32,
        }))
    }

    fn finish(&mut self) -> Result<DetailedTranscript, PluginError> {
        let words = (0..self.samples.len() / 1600)
            .map(|i| Word {
                start_ms: (i * 100) as u32,
                end_ms: (i * 100 + 100) as u32,
                text: format!("w{i}").into(),
                probability: Some(1.0).into(),
            })
            .collect::<Vec<_>>();
        Ok(DetailedTranscript {
            transcript: describe(&self.samples),
            words: words.into(),
            language_probability: None.into(),
        })
    }
}

/// The text-to-speech side; a newtype so both traits can have their own `health`.
struct FaultVoice(Fault);

impl TextToSpeech for FaultVoice {
    fn synthesize(
        &self,
        text: &str,
        _options: &SynthesisOptions,
        cancel: CancelToken,
    ) -> Result<Box<dyn AudioStream>, PluginError> {
        let mode = self.0.misbehave("synthesize")?;
        Ok(Box::new(Chunks {
            left: self.0.settings.chunks,
            value: text.len() as i16,
            panic_in_stream: mode == Mode::PanicInStream,
            panic_now: false,
            cancel,
        }))
    }

    fn voices(&self) -> Result<Vec<Voice>, PluginError> {
        Ok(vec![Voice::new("fault", "Fault injector")])
    }
}

/// `left` chunks of 10 ms at 16 kHz, each filled with `value`.
struct Chunks {
    left: u32,
    value: i16,
    /// Whether the stream panics once its first chunk is delivered.
    panic_in_stream: bool,
    /// Set after the first chunk when `panic_in_stream`: the next call panics.
    panic_now: bool,
    cancel: CancelToken,
}

impl AudioStream for Chunks {
    fn next_chunk(&mut self) -> Result<Option<AudioChunk>, PluginError> {
        if self.cancel.is_cancelled() {
            return Ok(None);
        }
        if self.panic_now {
            panic!("fault plugin: panic in the speech stream, as configured");
        }
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.panic_now = self.panic_in_stream;
        Ok(Some(AudioChunk::new(vec![self.value; 160], 16_000)))
    }
}

fn definition() -> PluginDefinition {
    PluginDefinition::new("fault", env!("CARGO_PKG_VERSION"))
        .description("Test plugin that fails on purpose, as its settings say")
        .capabilities(Capabilities::new().sample_rates([16_000]).voices(["fault"]))
        .stt(|settings: Settings| Fault::new(settings, Role::SpeechToText))
        .tts(|settings: Settings| Fault::new(settings, Role::TextToSpeech).map(FaultVoice))
}

plugin_api::export_plugin!(definition);

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::TestPlugin;

    #[test]
    fn ok_mode_sums_the_samples() {
        let plugin = TestPlugin::new(definition);
        let stt = plugin.stt("").unwrap();
        let t = stt
            .transcribe(&[1, 2, 3, -10], &TranscribeOptions::default())
            .unwrap();
        assert_eq!(t.text, "4 samples, sum -4");
    }

    #[test]
    fn fail_calls_limits_the_fault() {
        let plugin = TestPlugin::new(definition);
        let stt = plugin.stt("mode = \"error\"\nfail_calls = 1").unwrap();
        let opts = TranscribeOptions::default();
        assert_eq!(
            stt.transcribe(&[1], &opts).unwrap_err().kind,
            ErrorKind::Unavailable
        );
        assert_eq!(
            stt.transcribe(&[1], &opts).unwrap().text,
            "1 samples, sum 1"
        );
    }

    #[test]
    fn outage_file_turns_the_fault_on_and_off() {
        let file = std::env::temp_dir().join(format!("fault-outage-{}", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let plugin = TestPlugin::new(definition);
        let stt = plugin
            .stt(&format!(
                "mode = \"error\"\noutage_file = {:?}",
                file.display().to_string()
            ))
            .unwrap();
        let opts = TranscribeOptions::default();
        assert!(stt.transcribe(&[1], &opts).is_ok(), "no file, no outage");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(
            stt.transcribe(&[1], &opts).unwrap_err().kind,
            ErrorKind::Unavailable
        );
        std::fs::remove_file(&file).unwrap();
        assert!(stt.transcribe(&[1], &opts).is_ok(), "the outage is over");
    }

    #[test]
    fn configured_error_is_returned_as_set() {
        let plugin = TestPlugin::new(definition);
        let stt = plugin
            .stt("mode = \"error\"\nerror_kind = \"rate_limited\"\nretry_after_ms = 250\nretryable = false\nmessage = \"slow down\"")
            .unwrap();
        let err = stt
            .transcribe(&[], &TranscribeOptions::default())
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert!(!err.retryable);
        assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));
        assert_eq!(err.message(), "slow down");
    }

    #[test]
    fn stream_panics_after_the_first_chunk() {
        let plugin = TestPlugin::new(definition);
        let tts = plugin.tts("mode = \"panic-in-stream\"").unwrap();
        let stream = tts.synthesize("hi", &SynthesisOptions::default()).unwrap();
        assert!(stream.next_chunk().unwrap().is_some());
        let err = stream.next_chunk().unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(err.message().contains("speech stream"), "{}", err.message());
    }

    #[test]
    fn streams_describe_what_was_pushed() {
        let plugin = TestPlugin::new(definition);
        let stt = plugin.stt("").unwrap();
        let stream = stt
            .start_stream(&TranscribeOptions::default())
            .unwrap()
            .expect("the fault plugin streams");
        let partial = stream.push(&[1; 1600]).unwrap().unwrap();
        assert_eq!(partial.text, "1600 samples so far");
        stream.push(&[2; 1600]).unwrap();
        let done = stream.finish().unwrap();
        assert_eq!(done.transcript.text, "3200 samples, sum 4800");
        assert_eq!(done.words.len(), 2);
        assert!(
            stream.finish().is_err(),
            "a finished stream refuses more calls"
        );
    }

    #[test]
    fn unknown_setting_is_refused_with_its_name() {
        let plugin = TestPlugin::new(definition);
        let err = plugin
            .validate_config(Role::SpeechToText, "mood = \"ok\"")
            .unwrap_err();
        assert!(err.message().contains("mood"), "{}", err.message());
    }
}
