//! `local-whisper`: an OpenClaw Voice speech-to-text plugin that runs
//! [whisper.cpp](https://github.com/ggml-org/whisper.cpp) (through `whisper-rs`) on the CPU.
//!
//! The model is loaded once per provider and kept warm; a small pool of decoder states lets
//! the host transcribe several utterances at once. Silence and Whisper's well-known
//! hallucinations on silence or noise come back as an empty transcript (see [`guard`]).
//! whisper.cpp's own logging goes to the host's log at debug level (see [`whisper_log`]).
//!
//! Settings are described in [`settings`]; a model is fetched with `scripts/fetch-model`.

pub mod guard;
pub mod model;
pub mod pool;
pub mod provider;
pub mod settings;
pub mod whisper_log;
mod words;

#[cfg(test)]
mod tests;

use plugin_api::prelude::*;

pub use crate::provider::LocalWhisper;

/// The plugin's name, as host config refers to it.
pub const PLUGIN_NAME: &str = "local-whisper";

fn definition() -> PluginDefinition {
    PluginDefinition::new(PLUGIN_NAME, env!("CARGO_PKG_VERSION"))
        .description("Speech-to-text with whisper.cpp on the local CPU")
        .capabilities(Capabilities::new().sample_rates([STT_SAMPLE_RATE]))
        .stt(LocalWhisper::from_settings)
}

plugin_api::export_plugin!(definition);
