//! `espeak`: a local text-to-speech plugin for OpenClaw Voice that runs the
//! [espeak-ng](https://github.com/espeak-ng/espeak-ng) program.
//!
//! espeak-ng is a small formant synthesizer: robotic, but it needs no model download, runs on
//! any CPU and makes speech hundreds of times faster than real time, so it is a good fallback
//! voice and a good voice for tests. Install it with `apt-get install espeak-ng`.
//!
//! How a synthesis runs:
//!
//! 1. the text is split into sentences ([`split`]);
//! 2. a worker thread runs `espeak-ng --stdin --stdout` once per sentence, text on stdin
//!    ([`engine`]), and decodes the WAV it writes as it arrives ([`wav`]);
//! 3. the audio goes to the host in chunks of at most `chunk_ms`, with espeak-ng's leading
//!    silence and final pause trimmed ([`stream`]), while the next sentence is made.
//!
//! Output is mono 16-bit PCM at the rate in espeak-ng's WAV header (22050 Hz). Settings are
//! described in [`settings`]. A minimal provider entry in the host config:
//!
//! ```toml
//! [providers.tts]
//! plugin = "espeak"
//! [providers.tts.settings]
//! voice = "en-us"
//! ```

pub mod engine;
pub mod settings;
pub mod split;
pub mod stream;
pub mod wav;

use std::sync::{Arc, Mutex};

use plugin_api::prelude::*;

use crate::engine::{Espeak, Prosody, VoiceOrigin};
use crate::settings::{check_voice_name, Settings};
use crate::stream::Standby;

/// The sample rate espeak-ng writes (the stream reports the rate from each WAV header).
pub const SAMPLE_RATE: u32 = 22_050;

/// Longest text accepted in one synthesis, in characters (about 2 hours of speech).
pub const MAX_TEXT_CHARS: usize = 100_000;

/// The espeak-ng text-to-speech provider.
pub struct EspeakTts {
    settings: Settings,
    engine: Espeak,
    voices: Mutex<Option<Vec<Voice>>>,
    /// A started espeak-ng waiting for the next synthesis, when `prespawn` is on.
    standby: Option<Arc<Standby>>,
}

impl EspeakTts {
    /// Builds a provider from its settings (TOML text): checks them, finds the program and
    /// checks that it accepts the configured voice.
    pub fn new(settings_text: &str) -> Result<Self, PluginError> {
        Self::from_settings(Settings::parse(settings_text)?)
    }

    /// Builds a provider from checked settings: finds the program and checks that it accepts
    /// the configured voice.
    pub fn from_settings(settings: Settings) -> Result<Self, PluginError> {
        let engine = settings.engine()?;
        let standby = settings
            .prespawn
            .then(|| Arc::new(Standby::new(engine.clone(), default_prosody(&settings))));
        Ok(EspeakTts {
            settings,
            engine,
            voices: Mutex::new(None),
            standby,
        })
    }

    /// The voice for one synthesis: the request's voice, else the request's language when the
    /// configured voice speaks another one, else the configured voice.
    fn choose_voice(
        &self,
        options: &SynthesisOptions,
    ) -> Result<(String, VoiceOrigin), PluginError> {
        if let Some(voice) = options.voice().filter(|v| !v.is_empty()) {
            check_voice_name(voice)
                .map_err(|why| PluginError::invalid_input(format!("voice {why}")))?;
            return Ok((voice.to_string(), VoiceOrigin::Request));
        }
        if let Some(language) = options.language().filter(|l| !l.is_empty()) {
            let language = language.to_ascii_lowercase().replace('_', "-");
            let primary = |tag: &str| {
                tag.split(['-', '+'])
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            };
            if primary(&language) != primary(&self.settings.voice) {
                check_voice_name(&language)
                    .map_err(|why| PluginError::invalid_input(format!("language {why}")))?;
                return Ok((language, VoiceOrigin::Request));
            }
        }
        Ok((self.settings.voice.clone(), VoiceOrigin::Settings))
    }
}

/// The voice and prosody of the settings.
fn default_prosody(settings: &Settings) -> Prosody {
    Prosody {
        voice: settings.voice.clone(),
        rate: settings.rate,
        pitch: settings.pitch,
        amplitude: settings.amplitude,
    }
}

impl TextToSpeech for EspeakTts {
    fn synthesize(&self, text: &str, options: &SynthesisOptions, cancel: CancelToken) -> Synthesis {
        text_to_say(text, MAX_TEXT_CHARS)?;
        let sentences = split::split_sentences(text);
        if sentences.is_empty() {
            return Err(PluginError::invalid_input(
                "nothing to say: the text is only punctuation",
            ));
        }
        let (voice, voice_origin) = self.choose_voice(options)?;
        log::debug!(
            "speaking {} sentences ({} bytes) with voice {voice}",
            sentences.len(),
            text.len()
        );
        let job = stream::Job {
            engine: self.engine.clone(),
            prosody: Prosody {
                voice,
                ..default_prosody(&self.settings)
            },
            voice_origin,
            sentences,
            chunk_ms: self.settings.chunk_ms,
            gap_ms: self.settings.gap_ms,
            trim_silence: self.settings.trim_silence,
            standby: self.standby.as_ref().map(Arc::downgrade),
        };
        let (stream, _worker) = stream::start(job, cancel)?;
        Ok(Box::new(stream))
    }

    fn voices(&self) -> Result<Vec<Voice>, PluginError> {
        let mut cached = self.voices.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(voices) = cached.as_ref() {
            return Ok(voices.clone());
        }
        let voices = self
            .engine
            .voices()
            .map_err(|e| e.into_plugin_error(VoiceOrigin::Settings))?;
        *cached = Some(voices.clone());
        Ok(voices)
    }

    fn health(&self) -> Result<HealthReport, PluginError> {
        Ok(match self.engine.version() {
            Ok(version) => {
                HealthReport::healthy(format!("`{}` runs: {version}", self.engine.name()))
            }
            Err(e) => HealthReport::unhealthy(e.to_string()),
        })
    }
}

/// The voices of the `espeak-ng` on the `PATH`, for `plugins list` (`espeak-ng --voices`, a
/// local command of a few milliseconds, run once when the library is loaded); none when it is
/// not installed (`check-config` says so for a provider that needs it).
fn installed_voices() -> Vec<String> {
    engine::Espeak::locate("espeak-ng")
        .ok()
        .and_then(|e| e.voices().ok())
        .map(|voices| voices.into_iter().map(|v| v.id.to_string()).collect())
        .unwrap_or_default()
}

/// The plugin definition (what [`plugin_api::export_plugin!`] exports).
pub fn definition() -> PluginDefinition {
    PluginDefinition::new("espeak", env!("CARGO_PKG_VERSION"))
        .description("Local text-to-speech with espeak-ng, streamed sentence by sentence")
        .capabilities(
            Capabilities::new()
                .streaming(true)
                .sample_rates([SAMPLE_RATE])
                .voices(installed_voices()),
        )
        .tts(EspeakTts::from_settings)
}

plugin_api::export_plugin!(definition);

#[cfg(test)]
mod tests;
