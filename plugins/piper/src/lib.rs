//! `piper`: local neural text-to-speech for OpenClaw Voice with
//! [Piper](https://github.com/OHF-Voice/piper1-gpl) voices (VITS models exported to ONNX, the
//! voices Home Assistant and Pipecat use), run on ONNX Runtime through `openclaw-onnx`.
//!
//! How a synthesis runs, as piper-tts does it:
//!
//! 1. the text is cut into sentences of clauses where espeak-ng would cut it ([`clauses`]);
//! 2. each sentence is phonemized to IPA by the espeak-ng program with the voice's
//!    `espeak.voice`, punctuation put back, one phoneme per codepoint ([`phonemize`]);
//! 3. the phonemes become ids with the voice's `phoneme_id_map`, padded, between `^` and `$`
//!    ([`voice`]);
//! 4. the model makes the sentence's audio, peak-normalized to 16-bit PCM ([`model`]);
//! 5. a worker thread does this sentence by sentence and streams chunks of at most
//!    `chunk_ms`, first sentence first, stopping when cancelled ([`stream`]).
//!
//! Settings are described in [`settings`]. A minimal provider entry in the host config:
//!
//! ```toml
//! [providers.piper]
//! plugin = "piper"
//! [providers.piper.settings]
//! voice = "en_US-joe-medium"   # in the models directory (`make model`), or a path to the .onnx
//! ```

pub mod clauses;
pub mod model;
pub mod phonemize;
pub mod settings;
pub mod stream;
pub mod voice;

use std::path::Path;
use std::sync::Arc;

use plugin_api::abi::{Capabilities, HealthReport, PluginError, Role, SynthesisOptions, Voice};
use plugin_api::abi_stable::std_types::ROption;
use plugin_api::sdk::{text_to_say, CancelToken, PluginDefinition, Synthesis, TextToSpeech};

use crate::model::VoiceModel;
use crate::phonemize::Phonemizer;
use crate::settings::Settings;
use crate::stream::{Engine, Job};
use crate::voice::{Scales, VoiceConfig};

/// Longest text accepted in one synthesis, in characters.
pub const MAX_TEXT_CHARS: usize = 100_000;

/// The Piper text-to-speech provider.
pub struct PiperTts {
    engine: Arc<Engine>,
    settings: Settings,
    scales: Scales,
    speaker: Option<i64>,
    name: String,
}

impl PiperTts {
    /// Builds a provider from its settings (TOML text): loads the voice and its model and
    /// checks that espeak-ng phonemizes with the voice's espeak voice.
    pub fn new(settings_text: &str) -> Result<Self, PluginError> {
        let (settings, voice, phonemizer) = check(settings_text)?;
        let speaker = voice.speaker_id(settings.speaker.as_ref())?;
        let model = VoiceModel::load(
            &settings.model_path()?,
            settings.onnxruntime.as_deref(),
            voice.num_speakers > 1,
            settings.threads as usize,
        )?;
        let scales = Scales {
            noise_scale: settings.noise_scale.unwrap_or(voice.scales.noise_scale),
            length_scale: settings.length_scale.unwrap_or(voice.scales.length_scale),
            noise_w: settings.noise_w.unwrap_or(voice.scales.noise_w),
        };
        let name = voice_name(&settings.model_path()?);
        phonemizer.prepare();
        plugin_api::log::info!(
            "voice {name} loaded: {} Hz, espeak voice {}, {} thread(s)",
            voice.sample_rate,
            voice.espeak_voice,
            settings.threads
        );
        Ok(PiperTts {
            engine: Arc::new(Engine {
                voice,
                model,
                phonemizer,
            }),
            settings,
            scales,
            speaker,
            name,
        })
    }

    /// Refuses a request for another voice or language than this provider's.
    fn check_request(&self, options: &SynthesisOptions) -> Result<(), PluginError> {
        if let Some(voice) = options.voice().filter(|v| !v.is_empty()) {
            if voice != self.name {
                return Err(PluginError::invalid_input(format!(
                    "this provider speaks only the Piper voice `{}`, not `{voice}`; configure \
                     a provider per voice",
                    self.name
                )));
            }
        }
        if let Some(language) = options.language().filter(|l| !l.is_empty()) {
            let primary = |tag: &str| {
                tag.split(['-', '_'])
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            };
            let ours = &self.engine.voice.espeak_voice;
            if primary(language) != primary(ours) {
                return Err(PluginError::invalid_input(format!(
                    "the Piper voice `{}` speaks `{ours}`, not `{language}`; choose a voice \
                     per language with `[tts.voices]`",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

/// A voice's name: its file name without `.onnx`.
fn voice_name(model: &Path) -> String {
    model
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".onnx").to_string())
        .unwrap_or_default()
}

/// Parses the settings and checks the voice files and espeak-ng, without loading the model.
fn check(settings_text: &str) -> Result<(Settings, VoiceConfig, Phonemizer), PluginError> {
    let settings = Settings::parse(settings_text)?;
    let model = settings.model_path()?;
    if !model.is_file() {
        return Err(PluginError::config(format!(
            "the Piper voice {} (setting `voice`) does not exist; `make model` fetches \
             en_US-joe-medium into the models directory",
            model.display()
        )));
    }
    let voice = VoiceConfig::load(&settings.config_path()?)?;
    voice.speaker_id(settings.speaker.as_ref())?;
    let phonemizer = Phonemizer::new(&settings.espeak_binary, &voice.espeak_voice)?;
    phonemizer.check()?;
    Ok((settings, voice, phonemizer))
}

impl TextToSpeech for PiperTts {
    fn synthesize(&self, text: &str, options: &SynthesisOptions, cancel: CancelToken) -> Synthesis {
        text_to_say(text, MAX_TEXT_CHARS)?;
        self.check_request(options)?;
        let sentences = clauses::split(text);
        if sentences.is_empty() {
            return Err(PluginError::invalid_input(
                "nothing to say: the text is empty or only punctuation",
            ));
        }
        let rate = self.engine.voice.sample_rate as usize;
        let job = Job {
            sentences,
            scales: self.scales,
            speaker: self.speaker,
            chunk_samples: rate * self.settings.chunk_ms as usize / 1000,
            silence_samples: rate * self.settings.sentence_silence_ms as usize / 1000,
        };
        let (stream, _worker) = stream::start(self.engine.clone(), job, cancel)?;
        Ok(Box::new(stream))
    }

    fn voices(&self) -> Result<Vec<Voice>, PluginError> {
        let mut voice = Voice::new(self.name.clone(), self.name.clone());
        voice.language = ROption::RSome(self.engine.voice.espeak_voice.as_str().into());
        Ok(vec![voice])
    }

    fn health(&self) -> Result<HealthReport, PluginError> {
        Ok(match self.engine.phonemizer.check() {
            Ok(()) => HealthReport::healthy(format!("voice {} loaded; espeak-ng runs", self.name)),
            Err(e) => HealthReport::unhealthy(e.message().to_string()),
        })
    }
}

/// The plugin definition (what [`plugin_api::export_plugin!`] exports).
pub fn definition() -> PluginDefinition {
    PluginDefinition::new("piper", env!("CARGO_PKG_VERSION"))
        .description("Local neural text-to-speech with Piper voices, streamed sentence by sentence")
        .capabilities(Capabilities {
            streaming: true,
            ..Capabilities::default()
        })
        .text_to_speech(PiperTts::new)
        .validate_config(|role, settings| match role {
            Role::TextToSpeech => check(settings).map(|_| ()),
            Role::SpeechToText => Err(PluginError::config(
                "piper only provides text-to-speech (tts)",
            )),
        })
}

plugin_api::export_plugin!(definition);

#[cfg(test)]
mod tests;
