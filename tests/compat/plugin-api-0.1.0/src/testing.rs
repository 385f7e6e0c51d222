//! Drive a plugin in-process, through the same adapters the exported module uses, without
//! building a `cdylib` or loading it: unit tests for plugin authors.
//!
//! ```
//! use plugin_api::abi::{Pcm16kMono, TranscribeOptions, Transcript, PluginError};
//! use plugin_api::sdk::{PluginDefinition, SpeechToText};
//! use plugin_api::testing::TestPlugin;
//!
//! struct Silent;
//! impl SpeechToText for Silent {
//!     fn transcribe(&self, _: Pcm16kMono<'_>, _: &TranscribeOptions) -> Result<Transcript, PluginError> {
//!         Ok(Transcript::empty())
//!     }
//! }
//! fn definition() -> PluginDefinition {
//!     PluginDefinition::new("silent", "0.1.0").speech_to_text(|_settings: &str| Ok(Silent))
//! }
//!
//! let plugin = TestPlugin::new(definition);
//! let stt = plugin.stt("").unwrap();
//! assert_eq!(stt.transcribe(&[0; 16_000], &TranscribeOptions::default()).unwrap().text, "");
//! ```

use abi_stable::std_types::{ROption, RStr};

use crate::abi::{
    AudioChunk, HealthReport, HostContext, LogLevel, Pcm16kMono, PluginError, PluginInfo, Role,
    SpeechStreamBox, SttBox, SynthesisOptions, TranscribeOptions, Transcript, TtsBox, Voice,
};
use crate::sdk::{adapter, PluginDefinition};

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

extern "C" fn print_log(level: LogLevel, plugin: RStr<'_>, target: RStr<'_>, message: RStr<'_>) {
    eprintln!("[{level:?} {plugin} {target}] {message}");
}
