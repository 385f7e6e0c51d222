//! `openai-tts`: a text-to-speech plugin for OpenClaw Voice that streams speech from OpenAI's
//! speech API, or from any server that speaks it (Kokoro-FastAPI, speaches, an in-cluster
//! pool). A second cloud voice beside `elevenlabs`, for failover.
//!
//! One synthesis is one `POST {base_url}/v1/audio/speech` with the key in
//! `Authorization: Bearer` and a JSON body (`model`, `input`, `voice`, `speed`,
//! `instructions`, and `response_format = "pcm"`: raw 24 kHz 16-bit little-endian mono, so
//! nothing is decoded). The body streams in as it is made; a worker thread hands each piece to
//! the host the moment it arrives ([`pcm_stream`]).
//!
//! Failures come back typed, with the API's own error text and never the key: 401/403 →
//! `Auth`, 400/413/415 → `InvalidInput`, 429 → `RateLimited` (a spent quota is not retried),
//! 5xx and refused connections → `Unavailable`, silence for longer than `timeout_ms` →
//! `Timeout`. 429, 5xx and refused connections are retried with jittered exponential backoff
//! (honouring `Retry-After`) until audio starts; never after. Settings are described in
//! [`settings`].
//!
//! ```toml
//! [providers.openai-tts]
//! timeout_ms = 8000
//! [providers.openai-tts.settings]
//! api_key_env = "OPENAI_API_KEY"
//! voice = "nova"
//! ```

pub mod settings;

use openclaw_plugin_http::{http, pcm_stream};
use std::sync::Arc;

use plugin_api::prelude::*;
use reqwest::header::CONTENT_TYPE;
use serde::Serialize;

use crate::http::Api;
use crate::settings::{check_voice, Settings};

/// The plugin's name.
pub const PLUGIN: &str = "openai-tts";

/// Sample rate of `response_format = "pcm"`.
pub const SAMPLE_RATE: u32 = 24_000;

/// Longest input the API takes, in characters.
pub const MAX_TEXT_CHARS: usize = 4_096;

/// OpenAI's voices (compatible servers may offer others; any name is passed on).
pub const VOICES: [&str; 11] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
];

/// The OpenAI speech provider.
#[derive(Debug)]
pub struct OpenAiTts {
    settings: Settings,
    api: Arc<Api>,
}

/// The JSON body of a synthesis.
#[derive(Debug, Serialize)]
struct SpeechRequest<'a> {
    model: &'a str,
    input: &'a str,
    voice: &'a str,
    response_format: &'static str,
    speed: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<&'a str>,
}

impl OpenAiTts {
    /// Builds a provider from checked settings (what the plugin's definition does): reads the
    /// key, makes no request.
    pub fn from_settings(settings: Settings) -> Result<Self, PluginError> {
        let api = Arc::new(Api::new(settings.api())?);
        Ok(OpenAiTts { settings, api })
    }
}

impl TextToSpeech for OpenAiTts {
    fn synthesize(&self, text: &str, options: &SynthesisOptions, cancel: CancelToken) -> Synthesis {
        let chars = text_to_say(text, MAX_TEXT_CHARS)?;
        let voice = options.voice_or(&self.settings.voice, check_voice)?;
        let body = serde_json::to_vec(&SpeechRequest {
            model: &self.settings.model,
            input: text,
            voice,
            response_format: "pcm",
            speed: self.settings.speed,
            instructions: self.settings.instructions.as_deref(),
        })
        .map_err(|e| PluginError::internal(format!("{PLUGIN}: building the request: {e}")))?;
        log::debug!(
            "synthesizing {chars} characters with voice {voice}, model {}",
            self.settings.model
        );
        let stream =
            pcm_stream::start(self.api.clone(), SAMPLE_RATE, cancel, move |api, cancel| {
                api.call(
                    "synthesis",
                    Some(cancel),
                    "/v1/audio/speech",
                    |client, url| {
                        Ok(client
                            .post(url)
                            .header(CONTENT_TYPE, "application/json")
                            .body(body.clone()))
                    },
                )
            })?;
        Ok(Box::new(stream))
    }

    fn voices(&self) -> Result<Vec<Voice>, PluginError> {
        // The API has no voice list; these are the documented ones.
        Ok(VOICES.iter().map(|v| Voice::new(*v, *v)).collect())
    }

    fn health(&self) -> Result<HealthReport, PluginError> {
        // A cheap real request to each server: it proves they answer and accept the key.
        Ok(self.api.probe("/v1/models"))
    }
}

/// The plugin definition (what [`plugin_api::export_plugin!`] exports).
pub fn definition() -> PluginDefinition {
    PluginDefinition::new(PLUGIN, env!("CARGO_PKG_VERSION"))
        .description(
            "Streamed text-to-speech with OpenAI's speech API or any compatible server (24 kHz PCM)",
        )
        .capabilities(
            Capabilities::new()
                .streaming(true)
                .sample_rates([SAMPLE_RATE])
                .voices(VOICES.iter().copied()),
        )
        .tts(OpenAiTts::from_settings)
}

plugin_api::export_plugin!(definition);

#[cfg(test)]
mod tests;
