//! `fault`: a test plugin whose settings choose how it misbehaves, so the host's containment
//! (panics, hangs, typed errors) can be tested against a real `cdylib`.
//!
//! It provides both speech-to-text and text-to-speech. Settings (all optional):
//!
//! ```toml
//! mode = "ok"              # ok | error | panic-in-constructor | panic-in-validate
//!                          # | panic-in-call | panic-in-stream | hang
//! fail_calls = 1           # misbehave on the first N calls only, then act as `ok` (default: all)
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plugin_api::abi::{
    AudioChunk, Capabilities, ErrorKind, HealthReport, Pcm16kMono, PluginError, Role,
    SynthesisOptions, TranscribeOptions, Transcript, Voice,
};
use plugin_api::sdk::{
    parse_settings, secret_from_env, AudioStream, CancelToken, PluginDefinition, SpeechToText,
    TextToSpeech,
};
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

impl Settings {
    fn parse(text: &str, role: Role) -> Result<Self, PluginError> {
        let settings: Settings = parse_settings(text)?;
        if settings.mode == Mode::PanicInValidate {
            panic!("fault plugin: panic in validate_config ({role}), as configured");
        }
        if let Some(var) = &settings.api_key_env {
            // Read like a real provider would; only the variable's name is ever logged.
            secret_from_env("fault", var)?;
            plugin_api::log::info!("{role}: secret found in {var}");
        }
        Ok(settings)
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
    fn new(settings: &str, role: Role) -> Result<Self, PluginError> {
        let settings = Settings::parse(settings, role)?;
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
            _ => Ok(mode),
        }
    }
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
        .capabilities(Capabilities {
            sample_rates: vec![16_000].into(),
            voices: vec!["fault".into()].into(),
            ..Capabilities::default()
        })
        .speech_to_text(|settings: &str| Fault::new(settings, Role::SpeechToText))
        .text_to_speech(|settings: &str| Fault::new(settings, Role::TextToSpeech).map(FaultVoice))
        .validate_config(|role, settings| Settings::parse(settings, role).map(|_| ()))
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
    fn unknown_setting_is_refused_with_its_name() {
        let plugin = TestPlugin::new(definition);
        let err = plugin
            .validate_config(Role::SpeechToText, "mood = \"ok\"")
            .unwrap_err();
        assert!(err.message().contains("mood"), "{}", err.message());
    }
}
