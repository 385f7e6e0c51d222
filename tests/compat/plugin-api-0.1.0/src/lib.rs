//! # OpenClaw Voice plugin API
//!
//! The one crate a speech-to-text or text-to-speech plugin for
//! [OpenClaw Voice](https://github.com/openclaw/openclaw-voice) depends on.
//!
//! - [`abi`]: the stable ABI (abi_stable types) shared by host and plugins.
//! - [`sdk`]: plain Rust traits ([`sdk::SpeechToText`], [`sdk::TextToSpeech`]), the
//!   [`sdk::PluginDefinition`] builder and the [`export_plugin!`] macro, which wraps every call
//!   in `catch_unwind` so a plugin panic becomes an `Internal` error instead of killing the host.
//! - [`testing`]: drive your plugin in-process through the same adapters, in unit tests.
//!
//! A complete plugin (build it as a `cdylib`):
//!
//! ```
//! use plugin_api::abi::{Pcm16kMono, PluginError, TranscribeOptions, Transcript};
//! use plugin_api::sdk::{PluginDefinition, SpeechToText};
//!
//! /// Reports how long the utterance was, instead of what was said.
//! struct Stopwatch;
//!
//! impl SpeechToText for Stopwatch {
//!     fn transcribe(
//!         &self,
//!         audio: Pcm16kMono<'_>,
//!         _options: &TranscribeOptions,
//!     ) -> Result<Transcript, PluginError> {
//!         Ok(Transcript::new(format!("{} milliseconds", audio.duration_ms())))
//!     }
//! }
//!
//! fn definition() -> PluginDefinition {
//!     PluginDefinition::new("stopwatch", env!("CARGO_PKG_VERSION"))
//!         .description("Transcribes every utterance as its duration")
//!         .speech_to_text(|_settings: &str| Ok(Stopwatch))
//! }
//!
//! plugin_api::export_plugin!(definition);
//! # fn main() {}
//! ```
//!
//! The host calls plugins synchronously from a blocking thread pool with a timeout, so plugin
//! code may block; a plugin that needs async I/O owns its own runtime. Logs written with the
//! `log` crate appear in the host's logs under the plugin's name.
#![deny(missing_docs)]

pub mod abi;
pub mod sdk;
pub mod testing;

/// The abi_stable version this API is built on, re-exported for the [`export_plugin!`] macro.
pub use abi_stable;
/// The `log` crate, re-exported so plugins log through the host's bridge with the same version.
pub use log;
