//! `tone`: an example text-to-speech plugin that "speaks" one beep per word.
//!
//! It is the smallest useful plugin: typed settings (parsed and checked by the SDK), a voice
//! list, a stream that yields one chunk per word (so the host can start playing at once), and
//! cancellation. Copy this crate to start your own plugin (or run `openclaw-voice plugins new`).

use plugin_api::prelude::*;
use serde::Deserialize;

/// Settings, from the provider's `settings` table in the host config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// Output sample rate in Hz.
    sample_rate: u32,
    /// Length of each beep in milliseconds.
    beep_ms: u32,
    /// Pause between beeps in milliseconds.
    gap_ms: u32,
    /// Default voice: `low` (220 Hz) or `high` (880 Hz).
    voice: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sample_rate: 16_000,
            beep_ms: 120,
            gap_ms: 60,
            voice: "low".into(),
        }
    }
}

impl PluginSettings for Settings {
    fn check(&self) -> Result<(), SettingsError> {
        if !(8_000..=48_000).contains(&self.sample_rate) {
            return Err(SettingsError::new(
                "sample_rate",
                format!(
                    "must be between 8000 and 48000 Hz, got {}",
                    self.sample_rate
                ),
            ));
        }
        if self.beep_ms == 0 || self.beep_ms > 2_000 {
            return Err(SettingsError::new("beep_ms", "must be between 1 and 2000"));
        }
        frequency(&self.voice).map_err(|e| SettingsError::new("voice", e.message()))?;
        Ok(())
    }
}

fn frequency(voice: &str) -> Result<f32, PluginError> {
    match voice {
        "low" => Ok(220.0),
        "high" => Ok(880.0),
        other => Err(PluginError::invalid_input(format!(
            "unknown voice `{other}`; this plugin has `low` and `high`"
        ))),
    }
}

/// The text-to-speech provider.
struct ToneVoice {
    settings: Settings,
}

impl TextToSpeech for ToneVoice {
    fn synthesize(&self, text: &str, options: &SynthesisOptions, cancel: CancelToken) -> Synthesis {
        let hz = frequency(options.voice().unwrap_or(&self.settings.voice))?;
        let words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        if words.is_empty() {
            return Err(PluginError::invalid_input(
                "nothing to say: the text is empty",
            ));
        }
        plugin_api::log::debug!("beeping {} words at {hz} Hz", words.len());
        Ok(Box::new(Beeps {
            words: words.into_iter(),
            hz,
            settings: self.settings.clone(),
            cancel,
        }))
    }

    fn voices(&self) -> Result<Vec<Voice>, PluginError> {
        Ok(vec![
            Voice::new("low", "Low beep (220 Hz)"),
            Voice::new("high", "High beep (880 Hz)"),
        ])
    }
}

/// One chunk per word: a beep whose length grows with the word, then a gap.
struct Beeps {
    words: std::vec::IntoIter<String>,
    hz: f32,
    settings: Settings,
    cancel: CancelToken,
}

impl AudioStream for Beeps {
    fn next_chunk(&mut self) -> Result<Option<AudioChunk>, PluginError> {
        if self.cancel.is_cancelled() {
            return Ok(None);
        }
        let Some(word) = self.words.next() else {
            return Ok(None);
        };
        let rate = self.settings.sample_rate;
        let beep_ms = self.settings.beep_ms * (1 + word.chars().count() as u32 / 4);
        let beep = (rate * beep_ms / 1000) as usize;
        let gap = (rate * self.settings.gap_ms / 1000) as usize;
        let mut samples = Vec::with_capacity(beep + gap);
        for n in 0..beep {
            let t = n as f32 / rate as f32;
            // A short fade in and out avoids clicks.
            let edge = (n.min(beep - n) as f32 / (rate as f32 * 0.005)).min(1.0);
            let value = (t * self.hz * std::f32::consts::TAU).sin() * 0.3 * edge;
            samples.push((value * i16::MAX as f32) as i16);
        }
        samples.resize(beep + gap, 0);
        Ok(Some(AudioChunk::new(samples, rate)))
    }
}

fn definition() -> PluginDefinition {
    PluginDefinition::new("tone", env!("CARGO_PKG_VERSION"))
        .description("Example text-to-speech that speaks one beep per word")
        .capabilities(
            Capabilities::new()
                .streaming(true)
                .sample_rates([8_000, 16_000, 24_000, 48_000])
                .voices(["low", "high"]),
        )
        .tts(|settings: Settings| Ok(ToneVoice { settings }))
}

plugin_api::export_plugin!(definition);

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::TestPlugin;

    #[test]
    fn behaves_as_the_host_expects() {
        let plugin = TestPlugin::new(definition);
        plugin.check_tts("", "one two three four five").unwrap();
        plugin
            .check_tts("sample_rate = 48000\nvoice = \"high\"", "hello there world")
            .unwrap();
    }

    #[test]
    fn one_chunk_per_word_at_configured_rate() {
        let plugin = TestPlugin::new(definition);
        let tts = plugin.tts("sample_rate = 8000").unwrap();
        let chunks = tts
            .synthesize_all("hello there world", &SynthesisOptions::default())
            .unwrap();
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.sample_rate == 8000));
        assert!(chunks[0].samples().iter().any(|&s| s.abs() > 1000));
    }

    #[test]
    fn misspelt_setting_is_refused_with_its_name() {
        let plugin = TestPlugin::new(definition);
        let err = plugin
            .validate_config(Role::TextToSpeech, "sample_rat = 8000")
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err.message().contains("sample_rat"), "{}", err.message());
        let err = plugin
            .validate_config(Role::TextToSpeech, "sample_rate = \"fast\"")
            .unwrap_err();
        assert!(
            err.message()
                .starts_with("setting `sample_rate`: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn stt_is_not_provided() {
        let plugin = TestPlugin::new(definition);
        assert!(plugin.stt("").is_err());
        assert_eq!(plugin.info().unwrap().roles(), [Role::TextToSpeech]);
    }
}
