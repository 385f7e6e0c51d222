//! `elevenlabs`: a text-to-speech plugin for OpenClaw Voice that streams speech from
//! [ElevenLabs](https://elevenlabs.io/docs/api-reference/text-to-speech/stream).
//!
//! One synthesis is one
//! `POST {base_url}/v1/text-to-speech/{voice_id}/stream?output_format=pcm_24000`, with the key
//! in `xi-api-key` and a JSON body (`text`, `model_id`, `voice_settings`, `language_code`).
//! The answer is raw 16-bit mono PCM, sent in chunks as it is made; a worker thread hands each
//! piece to the host the moment it arrives ([`pcm_stream`]), so the first audio plays while
//! ElevenLabs is still speaking the rest. Nothing is decoded. [`voices`](ElevenLabs::voices)
//! comes from `GET /v1/voices`.
//!
//! Failures come back typed, with ElevenLabs' own error text and never the key: 401/403 →
//! `Auth` (a spent quota included: ElevenLabs answers it with 401 `quota_exceeded`), 422 →
//! `InvalidInput` with the field the API names, 429 → `RateLimited`, 5xx and refused
//! connections → `Unavailable`, silence for longer than `timeout_ms` → `Timeout`. 429, 5xx and
//! refused connections are retried with jittered exponential backoff (honouring
//! `Retry-After`) until audio starts; never after, which would repeat speech. Settings are
//! described in [`settings`].
//!
//! ```toml
//! [providers.elevenlabs]
//! timeout_ms = 8000
//! [providers.elevenlabs.settings]
//! api_key_env = "ELEVENLABS_API_KEY"
//! ```

pub mod settings;

use openclaw_plugin_http::{http, pcm_stream};
use std::sync::Arc;

use plugin_api::prelude::*;
use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};

use crate::http::Api;
use crate::settings::{check_voice_id, Settings, VoiceSettings};

/// The plugin's name.
pub const PLUGIN: &str = "elevenlabs";

/// Longest text accepted in one synthesis, in characters (the most any ElevenLabs model
/// takes per request is 40 000; the host sends a sentence at a time).
pub const MAX_TEXT_CHARS: usize = 10_000;

/// The ElevenLabs text-to-speech provider.
#[derive(Debug)]
pub struct ElevenLabs {
    settings: Settings,
    api: Arc<Api>,
}

/// The JSON body of a synthesis.
#[derive(Debug, Serialize)]
struct SpeechRequest<'a> {
    text: &'a str,
    model_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    voice_settings: Option<VoiceSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language_code: Option<&'a str>,
}

impl ElevenLabs {
    /// Builds a provider from checked settings (what the plugin's definition does): reads the
    /// key, makes no request.
    pub fn from_settings(settings: Settings) -> Result<Self, PluginError> {
        let api = Arc::new(Api::new(settings.api())?);
        Ok(ElevenLabs { settings, api })
    }

    fn path(&self, voice_id: &str) -> String {
        let mut url = format!(
            "/v1/text-to-speech/{voice_id}/stream?output_format={}",
            self.settings.output_format.as_str()
        );
        if let Some(level) = self.settings.optimize_streaming_latency {
            url.push_str(&format!("&optimize_streaming_latency={level}"));
        }
        url
    }
}

impl TextToSpeech for ElevenLabs {
    fn synthesize(&self, text: &str, options: &SynthesisOptions, cancel: CancelToken) -> Synthesis {
        let chars = text_to_say(text, MAX_TEXT_CHARS)?;
        let voice_id = options.voice_or(&self.settings.voice_id, check_voice_id)?;
        let voice_settings = self.settings.voice_settings();
        let body = serde_json::to_vec(&SpeechRequest {
            text,
            model_id: &self.settings.model_id,
            voice_settings: voice_settings.is_set().then_some(voice_settings),
            language_code: self.settings.language_code.as_deref(),
        })
        .map_err(|e| PluginError::internal(format!("{PLUGIN}: building the request: {e}")))?;
        let path = self.path(voice_id);
        log::debug!(
            "synthesizing {chars} characters with voice {voice_id}, model {}",
            self.settings.model_id
        );
        let stream = pcm_stream::start(
            self.api.clone(),
            self.settings.output_format.sample_rate(),
            cancel,
            move |api, cancel| {
                api.call("synthesis", Some(cancel), &path, |client, url| {
                    Ok(client
                        .post(url)
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.clone()))
                })
            },
        )?;
        Ok(Box::new(stream))
    }

    fn voices(&self) -> Result<Vec<Voice>, PluginError> {
        let response = self
            .api
            .call("listing voices", None, "/v1/voices", |client, url| {
                Ok(client.get(url))
            })?;
        let listing: VoiceList = response.json().map_err(|e| {
            PluginError::unavailable(format!(
                "{PLUGIN}: the voice list is not what the API documents: {e}"
            ))
        })?;
        Ok(listing
            .voices
            .into_iter()
            .map(VoiceEntry::into_voice)
            .collect())
    }

    fn health(&self) -> Result<HealthReport, PluginError> {
        // A cheap real request to each server: it proves they answer and accept the key.
        Ok(self.api.probe("/v1/voices"))
    }
}

/// `GET /v1/voices` (the fields the plugin uses).
#[derive(Debug, Deserialize)]
struct VoiceList {
    voices: Vec<VoiceEntry>,
}

#[derive(Debug, Deserialize)]
struct VoiceEntry {
    voice_id: String,
    name: String,
    #[serde(default)]
    labels: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    verified_languages: Option<Vec<VerifiedLanguage>>,
}

#[derive(Debug, Deserialize)]
struct VerifiedLanguage {
    language: String,
}

impl VoiceEntry {
    fn into_voice(self) -> Voice {
        let language = self
            .labels
            .as_ref()
            .and_then(|labels| labels.get("language"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| {
                self.verified_languages
                    .as_ref()
                    .and_then(|v| v.first())
                    .map(|l| l.language.clone())
            });
        let voice = Voice::new(self.voice_id, self.name);
        match language {
            Some(l) => voice.with_language(l),
            None => voice,
        }
    }
}

/// The plugin definition (what [`plugin_api::export_plugin!`] exports).
pub fn definition() -> PluginDefinition {
    PluginDefinition::new(PLUGIN, env!("CARGO_PKG_VERSION"))
        .description("Streamed text-to-speech with ElevenLabs (raw PCM, first audio as it comes)")
        .capabilities(
            Capabilities::new()
                .streaming(true)
                .sample_rates([16_000, 22_050, 24_000, 44_100]),
        )
        .tts(ElevenLabs::from_settings)
}

plugin_api::export_plugin!(definition);

#[cfg(test)]
mod tests;
