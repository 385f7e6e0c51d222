//! `{{name}}`: a speech-to-text plugin for OpenClaw Voice.
//!
//! Made by `openclaw-voice plugins new {{name}} --stt`: it transcribes every utterance as its
//! length ("1200 milliseconds"). Replace `transcribe` with your engine; docs/PLUGINS.md in the
//! OpenClaw Voice repository says what the host expects.

use plugin_api::prelude::*;
use serde::Deserialize;

/// The provider's settings: its `[providers.<id>.settings]` table in the host's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// The word after the number.
    unit: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            unit: "milliseconds".into(),
        }
    }
}

impl PluginSettings for Settings {
    /// Rules beyond the types; `check-config` runs this too, so no network or model load here.
    fn check(&self) -> Result<(), SettingsError> {
        if self.unit.trim().is_empty() {
            return Err(SettingsError::new("unit", "must not be empty"));
        }
        Ok(())
    }
}

/// The provider: built once from its settings, then called from several threads at once.
struct Provider {
    settings: Settings,
}

impl SpeechToText for Provider {
    fn transcribe(
        &self,
        audio: Pcm16kMono<'_>,
        _options: &TranscribeOptions,
    ) -> Result<Transcript, PluginError> {
        log::debug!("transcribing {} samples", audio.as_slice().len());
        Ok(Transcript::new(format!(
            "{} {}",
            audio.duration_ms(),
            self.settings.unit
        )))
    }
}

fn definition() -> PluginDefinition {
    PluginDefinition::new("{{name}}", env!("CARGO_PKG_VERSION"))
        .description("{{description}}")
        .stt(|settings: Settings| Ok(Provider { settings }))
}

plugin_api::export_plugin!(definition);

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::TestPlugin;

    #[test]
    fn behaves_as_the_host_expects() {
        TestPlugin::new(definition).check_stt("").unwrap();
    }

    #[test]
    fn transcribes_the_length() {
        let stt = TestPlugin::new(definition).stt("unit = \"ms\"").unwrap();
        let transcript = stt
            .transcribe(&[0; 8_000], &TranscribeOptions::default())
            .unwrap();
        assert_eq!(transcript.text(), "500 ms");
    }

    #[test]
    fn a_bad_setting_is_named() {
        let err = TestPlugin::new(definition)
            .validate_config(Role::SpeechToText, "unit = 3")
            .unwrap_err();
        assert!(err.message().starts_with("setting `unit`"), "{err}");
    }
}
