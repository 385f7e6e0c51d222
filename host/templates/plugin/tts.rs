//! `{{name}}`: a text-to-speech plugin for OpenClaw Voice.
//!
//! Made by `openclaw-voice plugins new {{name}} --tts`: it "speaks" one beep per word, one chunk
//! per word, so the host plays the first while the rest is made. Replace `Beeps` with your
//! engine; docs/PLUGINS.md in the OpenClaw Voice repository says what the host expects.

use plugin_api::prelude::*;
use serde::Deserialize;

/// The provider's settings: its `[providers.<id>.settings]` table in the host's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// Output sample rate in Hz.
    sample_rate: u32,
    /// Pitch of the beeps in Hz.
    pitch_hz: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sample_rate: 16_000,
            pitch_hz: 440.0,
        }
    }
}

impl PluginSettings for Settings {
    /// Rules beyond the types; `check-config` runs this too, so no network or model load here.
    fn check(&self) -> Result<(), SettingsError> {
        if !(8_000..=48_000).contains(&self.sample_rate) {
            return Err(SettingsError::new("sample_rate", "must be 8000 to 48000"));
        }
        if !(50.0..=4_000.0).contains(&self.pitch_hz) {
            return Err(SettingsError::new("pitch_hz", "must be 50 to 4000"));
        }
        Ok(())
    }
}

/// The provider: built once from its settings, then called from several threads at once.
struct Provider {
    settings: Settings,
}

impl TextToSpeech for Provider {
    fn synthesize(&self, text: &str, _: &SynthesisOptions, cancel: CancelToken) -> Synthesis {
        text_to_say(text, 10_000)?;
        let words = text.split_whitespace().count();
        Ok(Box::new(Beeps {
            left: words,
            settings: self.settings.clone(),
            cancel,
        }))
    }
}

/// The audio of one synthesis: a 200 ms beep and a 100 ms pause per word.
struct Beeps {
    left: usize,
    settings: Settings,
    cancel: CancelToken,
}

impl AudioStream for Beeps {
    fn next_chunk(&mut self) -> Result<Option<AudioChunk>, PluginError> {
        // The host cancels on a barge-in: stop making audio at once.
        if self.cancel.is_cancelled() || self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let rate = self.settings.sample_rate;
        let beep = (rate / 5) as usize;
        let mut samples: Vec<i16> = (0..beep)
            .map(|n| {
                let t = n as f32 / rate as f32;
                ((t * self.settings.pitch_hz * std::f32::consts::TAU).sin() * 8_000.0) as i16
            })
            .collect();
        samples.resize(beep + beep / 2, 0);
        Ok(Some(AudioChunk::new(samples, rate)))
    }
}

fn definition() -> PluginDefinition {
    PluginDefinition::new("{{name}}", env!("CARGO_PKG_VERSION"))
        .description("{{description}}")
        .capabilities(Capabilities::new().streaming(true))
        .tts(|settings: Settings| Ok(Provider { settings }))
}

plugin_api::export_plugin!(definition);

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::TestPlugin;

    #[test]
    fn behaves_as_the_host_expects() {
        let plugin = TestPlugin::new(definition);
        plugin.check_tts("", "one two three four").unwrap();
        plugin.check_tts("sample_rate = 48000", "one two three").unwrap();
    }

    #[test]
    fn one_chunk_per_word() {
        let tts = TestPlugin::new(definition).tts("").unwrap();
        let chunks = tts
            .synthesize_all("hello there", &SynthesisOptions::default())
            .unwrap();
        assert_eq!(chunks.len(), 2);
    }

    #[test]
    fn a_bad_setting_is_named() {
        let err = TestPlugin::new(definition)
            .validate_config(Role::TextToSpeech, "sample_rate = 100")
            .unwrap_err();
        assert!(err.message().starts_with("setting `sample_rate`"), "{err}");
    }
}
