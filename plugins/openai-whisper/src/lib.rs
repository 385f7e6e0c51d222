//! `openai-whisper`: a speech-to-text plugin for OpenClaw Voice that sends each utterance to
//! OpenAI's transcription API, or to any server that speaks it: Groq, a whisper.cpp server,
//! speaches, an in-cluster pool.
//!
//! One utterance is one `POST {base_url}/v1/audio/transcriptions`, `multipart/form-data` with
//! `file` (the 16 kHz mono audio as a WAV file built in memory), `model`, `response_format`
//! and, when known, `language`, `prompt` and `temperature`; the key goes in
//! `Authorization: Bearer`. `verbose_json` answers give timed segments, from which the
//! segments Whisper scores as "no speech" are dropped.
//!
//! Failures come back typed, with the API's own error text and never the key: 401/403 →
//! `Auth`, 400/413/415 → `InvalidInput`, 429 → `RateLimited` (with the delay asked for),
//! 5xx and refused connections → `Unavailable`, no answer in time → `Timeout`. 429, 5xx and
//! refused connections are retried with jittered exponential backoff, honouring
//! `Retry-After`. Settings are described in [`settings`]. A provider entry in the host config:
//!
//! ```toml
//! [providers.openai-whisper]
//! timeout_ms = 12000
//! [providers.openai-whisper.settings]
//! api_key_env = "OPENAI_API_KEY"
//! ```

pub mod multipart;
pub mod settings;
pub mod wav;

use openclaw_plugin_http::http;
use std::time::Instant;

use plugin_api::prelude::*;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;

use crate::http::Api;
use crate::settings::Settings;

/// The plugin's name.
pub const PLUGIN: &str = "openai-whisper";

/// Largest upload the OpenAI API takes (25 MB; about 13 minutes of 16 kHz audio).
pub const MAX_UPLOAD_BYTES: usize = 25 * 1024 * 1024;

/// Whisper's own thresholds for a segment that is probably not speech.
const NO_SPEECH_PROB: f64 = 0.6;
const NO_SPEECH_LOGPROB: f64 = -1.0;

/// The transcription provider.
#[derive(Debug)]
pub struct OpenAiWhisper {
    settings: Settings,
    api: Api,
    response_format: &'static str,
}

impl OpenAiWhisper {
    /// Builds a provider from checked settings (what the plugin's definition does): reads the
    /// key, makes no request.
    pub fn from_settings(settings: Settings) -> Result<Self, PluginError> {
        let api = Api::new(settings.api())?;
        Ok(OpenAiWhisper {
            response_format: settings.response_format.resolve(&settings.model),
            settings,
            api,
        })
    }

    /// The `multipart/form-data` body and its Content-Type. Built in memory (not as a streamed
    /// form), so that every attempt sends the same bytes and a refused connection is reported
    /// as one.
    fn upload(&self, wav: &[u8], options: &TranscribeOptions) -> (String, Vec<u8>) {
        let mut form = multipart::Form::new();
        form.file("file", "utterance.wav", "audio/wav", wav);
        form.text("model", &self.settings.model);
        form.text("response_format", self.response_format);
        let language = self.settings.language.as_deref().or(options.language());
        // `auto`: the server detects it, which is what leaving the field out asks for.
        if let Some(language) = language.filter(|l| !l.is_empty() && *l != "auto") {
            form.text("language", language);
        }
        let prompt = options.prompt().or(self.settings.prompt.as_deref());
        if let Some(prompt) = prompt.filter(|p| !p.is_empty()) {
            form.text("prompt", prompt);
        }
        if let Some(t) = self.settings.temperature {
            form.text("temperature", &t.to_string());
        }
        form.finish()
    }

    fn parse(&self, body: &str, options: &TranscribeOptions) -> Result<Transcript, PluginError> {
        let bad = |e: serde_json::Error| {
            PluginError::unavailable(format!(
                "{PLUGIN}: the server's answer is not the {} the API documents: {e}",
                self.response_format
            ))
        };
        let mut transcript = match self.response_format {
            "text" => Transcript::new(body.trim()),
            "json" => {
                let answer: JsonAnswer = serde_json::from_str(body).map_err(bad)?;
                Transcript::new(answer.text.trim())
            }
            _ => {
                let answer: VerboseAnswer = serde_json::from_str(body).map_err(bad)?;
                answer.into_transcript(self.settings.drop_no_speech)
            }
        };
        if transcript.language.is_none() {
            let language = self.settings.language.as_deref().or(options.language());
            if let Some(language) = language.filter(|l| *l != "auto") {
                transcript = transcript.with_language(language);
            }
        }
        Ok(transcript)
    }
}

impl SpeechToText for OpenAiWhisper {
    fn transcribe(&self, audio: Pcm16kMono<'_>, options: &TranscribeOptions) -> Transcription {
        let samples = audio.as_slice();
        if samples.is_empty() {
            return Err(PluginError::invalid_input(
                "no audio: the utterance is empty",
            ));
        }
        let wav = wav::encode(samples, STT_SAMPLE_RATE);
        if wav.len() > MAX_UPLOAD_BYTES {
            return Err(PluginError::invalid_input(format!(
                "the utterance is too long to upload ({} s; the API takes at most 25 MB)",
                audio.duration_ms() / 1000
            )));
        }
        let started = Instant::now();
        let timeout = std::time::Duration::from_millis(self.settings.timeout_ms);
        let (content_type, body) = self.upload(&wav, options);
        let path = "/v1/audio/transcriptions";
        let response = self.api.call("transcription", None, path, |client, url| {
            Ok(client
                .post(url)
                .timeout(timeout)
                .header(CONTENT_TYPE, &content_type)
                .body(body.clone()))
        })?;
        let body = response.text().map_err(|e| {
            self.api
                .read_error("transcription", &std::io::Error::other(e))
        })?;
        let transcript = self.parse(&body, options)?;
        log::debug!(
            "transcribed {} ms of audio in {} ms with {} ({} characters)",
            audio.duration_ms(),
            started.elapsed().as_millis(),
            self.settings.model,
            transcript.text.len()
        );
        Ok(transcript)
    }

    fn health(&self) -> Result<HealthReport, PluginError> {
        // A cheap real request to each server: it proves they answer and accept the key.
        Ok(self.api.probe("/v1/models"))
    }
}

/// A `json` answer.
#[derive(Debug, Deserialize)]
struct JsonAnswer {
    text: String,
}

/// A `verbose_json` answer (fields the plugin uses).
#[derive(Debug, Deserialize)]
struct VerboseAnswer {
    text: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    segments: Option<Vec<VerboseSegment>>,
}

#[derive(Debug, Deserialize)]
struct VerboseSegment {
    start: f64,
    end: f64,
    text: String,
    #[serde(default)]
    avg_logprob: Option<f64>,
    #[serde(default)]
    no_speech_prob: Option<f64>,
}

impl VerboseSegment {
    fn is_speech(&self) -> bool {
        match (self.no_speech_prob, self.avg_logprob) {
            (Some(p), Some(lp)) => !(p > NO_SPEECH_PROB && lp < NO_SPEECH_LOGPROB),
            _ => true,
        }
    }
}

impl VerboseAnswer {
    fn into_transcript(self, drop_no_speech: bool) -> Transcript {
        let Some(segments) = self.segments else {
            let mut t = Transcript::new(self.text.trim());
            if let Some(language) = self.language.as_deref().and_then(language_code) {
                t = t.with_language(language);
            }
            return t;
        };
        let kept: Vec<VerboseSegment> = segments
            .into_iter()
            .filter(|s| !drop_no_speech || s.is_speech())
            .collect();
        let text = kept
            .iter()
            .map(|s| s.text.trim())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let logprobs: Vec<f64> = kept.iter().filter_map(|s| s.avg_logprob).collect();
        let ms = |s: f64| (s.max(0.0) * 1000.0).round() as u32;
        let mut t = Transcript::new(text).with_segments(
            kept.iter()
                .map(|s| Segment {
                    start_ms: ms(s.start),
                    end_ms: ms(s.end),
                    text: s.text.trim().into(),
                })
                .collect(),
        );
        if !logprobs.is_empty() {
            let mean = logprobs.iter().sum::<f64>() / logprobs.len() as f64;
            t = t.with_confidence(mean.exp().clamp(0.0, 1.0) as f32);
        }
        if let Some(language) = self.language.as_deref().and_then(language_code) {
            t = t.with_language(language);
        }
        t
    }
}

/// The ISO 639-1 code for the language name `verbose_json` reports (`english`), or the value
/// itself when it is already a code.
fn language_code(name: &str) -> Option<String> {
    const NAMES: &[(&str, &str)] = &[
        ("english", "en"),
        ("german", "de"),
        ("french", "fr"),
        ("spanish", "es"),
        ("italian", "it"),
        ("portuguese", "pt"),
        ("dutch", "nl"),
        ("polish", "pl"),
        ("russian", "ru"),
        ("ukrainian", "uk"),
        ("turkish", "tr"),
        ("swedish", "sv"),
        ("norwegian", "no"),
        ("danish", "da"),
        ("finnish", "fi"),
        ("czech", "cs"),
        ("greek", "el"),
        ("arabic", "ar"),
        ("hebrew", "he"),
        ("hindi", "hi"),
        ("japanese", "ja"),
        ("korean", "ko"),
        ("chinese", "zh"),
        ("vietnamese", "vi"),
        ("indonesian", "id"),
    ];
    let lower = name.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return None;
    }
    if lower.len() <= 3 {
        return Some(lower);
    }
    NAMES
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, code)| code.to_string())
        .or(Some(lower))
}

/// The plugin definition (what [`plugin_api::export_plugin!`] exports).
pub fn definition() -> PluginDefinition {
    PluginDefinition::new(PLUGIN, env!("CARGO_PKG_VERSION"))
        .description(
            "Speech-to-text with OpenAI's transcription API or any compatible server (Groq, \
             whisper.cpp, speaches)",
        )
        .capabilities(Capabilities::new().sample_rates([STT_SAMPLE_RATE]))
        .stt(OpenAiWhisper::from_settings)
}

plugin_api::export_plugin!(definition);

#[cfg(test)]
mod tests;
