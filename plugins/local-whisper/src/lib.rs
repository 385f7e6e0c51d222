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

#[cfg(test)]
mod tests;

use plugin_api::abi::{Capabilities, PluginError, Role, STT_SAMPLE_RATE};
use plugin_api::sdk::PluginDefinition;

pub use crate::provider::LocalWhisper;
use crate::settings::Settings;

/// The plugin's name, as host config refers to it.
pub const PLUGIN_NAME: &str = "local-whisper";

/// Checks settings and that the model file is there, without loading it.
fn validate(role: Role, settings: &str) -> Result<(), PluginError> {
    if role != Role::SpeechToText {
        return Err(PluginError::config(format!(
            "{PLUGIN_NAME} provides speech-to-text only, not {role}"
        )));
    }
    let settings = Settings::parse(settings)?;
    let path = settings.model_path();
    model::check_file(&path, &settings.model_name)?;
    // Without loading it: an English-only model says so in its name (`ggml-tiny.en.bin`).
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
    let english_only = settings.model_name.ends_with(".en")
        || file.is_some_and(|f| f.contains(".en.") || f.ends_with(".en"));
    if english_only && settings.language != "en" {
        return Err(PluginError::config(format!(
            "language = \"{}\" needs a multilingual model, but {} is English-only (`.en`); \
             use a model without `.en` in its name, or language = \"en\"",
            settings.language,
            path.display()
        )));
    }
    Ok(())
}

fn definition() -> PluginDefinition {
    PluginDefinition::new(PLUGIN_NAME, env!("CARGO_PKG_VERSION"))
        .description("Speech-to-text with whisper.cpp on the local CPU")
        .capabilities(Capabilities {
            sample_rates: vec![STT_SAMPLE_RATE].into(),
            ..Capabilities::default()
        })
        .speech_to_text(LocalWhisper::new)
        .validate_config(validate)
}

plugin_api::export_plugin!(definition);
