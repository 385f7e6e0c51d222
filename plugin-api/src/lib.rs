//! # OpenClaw Voice plugin API
//!
//! The one crate a speech-to-text or text-to-speech plugin for
//! [OpenClaw Voice](https://github.com/openclaw/openclaw-voice) depends on.
//!
//! Start from [`prelude`]: it holds everything a plugin names, in plain Rust types (`String`,
//! `Vec`, `Option`, `&[i16]`), so plugin code never touches an abi_stable type.
//!
//! - [`sdk`]: the traits a plugin implements ([`sdk::SpeechToText`], [`sdk::TextToSpeech`]),
//!   the [`sdk::PluginDefinition`] builder and the [`export_plugin!`] macro, which wraps every
//!   call in `catch_unwind` so a plugin panic becomes an `Internal` error instead of killing
//!   the host.
//! - [`settings`]: typed settings, parsed and checked once, errors naming the key.
//! - [`testing`]: drive your plugin in-process through the same adapters, and check the
//!   behaviour the host relies on (cancel, chunk sizes, sample rates, error kinds).
//! - [`abi`]: the contract between host and plugin (what crosses the library boundary). Plugin
//!   code does not import from it; its types reach you through the prelude, with plain-Rust
//!   constructors and accessors.
//!
//! A complete speech-to-text plugin (build it as a `cdylib`):
//!
//! ```
//! use plugin_api::prelude::*;
//!
//! /// Reports how long the utterance was, instead of what was said.
//! struct Stopwatch;
//!
//! impl SpeechToText for Stopwatch {
//!     fn transcribe(&self, audio: Pcm16kMono<'_>, _: &TranscribeOptions) -> Result<Transcript, PluginError> {
//!         Ok(Transcript::new(format!("{} milliseconds", audio.duration_ms())))
//!     }
//! }
//!
//! fn definition() -> PluginDefinition {
//!     PluginDefinition::new("stopwatch", env!("CARGO_PKG_VERSION"))
//!         .description("Transcribes every utterance as its duration")
//!         .stt(|_: NoSettings| Ok(Stopwatch))
//! }
//!
//! plugin_api::export_plugin!(definition);
//! # fn main() {
//! #     let plugin = plugin_api::testing::TestPlugin::new(definition);
//! #     let stt = plugin.stt("").unwrap();
//! #     let text = stt.transcribe(&[0; 8_000], &TranscribeOptions::default()).unwrap();
//! #     assert_eq!(text.text(), "500 milliseconds");
//! # }
//! ```
//!
//! The host calls plugins synchronously from a blocking thread pool with a timeout, so plugin
//! code may block; a plugin that needs async I/O owns its own runtime. Logs written with the
//! `log` crate appear in the host's logs under the plugin's name.
#![deny(missing_docs)]

pub mod abi;
pub mod sdk;
pub mod settings;
pub mod testing;
mod types;

/// Everything a plugin names: `use plugin_api::prelude::*;`.
///
/// ```
/// use plugin_api::prelude::*;
/// let err = PluginError::invalid_input("nothing to say");
/// assert_eq!(err.kind, ErrorKind::InvalidInput);
/// ```
pub mod prelude {
    pub use crate::abi::{
        AudioChunk, Capabilities, DetailedTranscript, ErrorKind, HealthReport, PartialTranscript,
        Pcm16kMono, PluginError, Role, Segment, SynthesisOptions, TranscribeOptions, Transcript,
        Voice, Word, STT_SAMPLE_RATE,
    };
    pub use crate::log;
    pub use crate::sdk::{
        secret_from_env, text_to_say, AudioStream, CancelToken, ChannelStream, PluginDefinition,
        SpeechToText, Synthesis, TextToSpeech, Transcription, TranscriptionStream, VecStream,
    };
    pub use crate::settings::{NoSettings, PluginSettings, SettingsError};
}

/// The abi_stable version this API is built on, re-exported for the [`export_plugin!`] macro.
pub use abi_stable;
/// The `log` crate, re-exported so plugins log through the host's bridge with the same version.
pub use log;
