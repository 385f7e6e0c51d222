//! The provider's settings (the `settings` table of an `elevenlabs` provider in the host
//! config), with their defaults and checks. Checking needs no network and no key.
//!
//! ```toml
//! [providers.elevenlabs.settings]
//! base_url = "https://api.elevenlabs.io"
//! api_key_env = "ELEVENLABS_API_KEY"   # required for api.elevenlabs.io
//! voice_id = "21m00Tcm4TlvDq8Ikt00"    # Rachel, a premade voice; `voices` lists the others
//! model_id = "eleven_flash_v2_5"       # the lowest-latency model
//! output_format = "pcm_24000"          # pcm_16000 | pcm_22050 | pcm_24000 | pcm_44100
//! # optimize_streaming_latency = 3     # 0 (off) to 4 (fastest, may mispronounce numbers)
//! # language_code = "en"               # models that support language enforcement only
//! # stability = 0.5                    # voice_settings, each 0 to 1; the voice's own when unset
//! # similarity_boost = 0.75
//! # style = 0.0
//! # use_speaker_boost = true
//! # speed = 1.0                        # 0.7 to 1.2
//! timeout_ms = 10000                   # until the audio starts, and longest pause within it
//! ```
//!
//! The timeout, retry and pool keys (`base_urls`: several equivalent servers, such as
//! regional proxies) are every HTTP plugin's: see `openclaw_plugin_http::settings`.

use plugin_api::prelude::*;
use serde::{Deserialize, Serialize};

use crate::http::{check_range, ApiSettings, AuthScheme};
use crate::PLUGIN;
use openclaw_plugin_http::settings::OfficialApi;

/// The ElevenLabs API, which needs a key.
const ELEVENLABS: OfficialApi = OfficialApi {
    base_url: "https://api.elevenlabs.io",
    host: "api.elevenlabs.io",
    key_var: "ELEVENLABS_API_KEY",
};

/// Raw PCM output formats: 16-bit mono at the named rate, so nothing is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OutputFormat {
    /// 16 kHz.
    #[serde(rename = "pcm_16000")]
    Pcm16000,
    /// 22.05 kHz.
    #[serde(rename = "pcm_22050")]
    Pcm22050,
    /// 24 kHz.
    #[serde(rename = "pcm_24000")]
    Pcm24000,
    /// 44.1 kHz (Pro plans and up).
    #[serde(rename = "pcm_44100")]
    Pcm44100,
}

impl OutputFormat {
    /// The `output_format` query value.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Pcm16000 => "pcm_16000",
            OutputFormat::Pcm22050 => "pcm_22050",
            OutputFormat::Pcm24000 => "pcm_24000",
            OutputFormat::Pcm44100 => "pcm_44100",
        }
    }

    /// Samples per second.
    pub fn sample_rate(self) -> u32 {
        match self {
            OutputFormat::Pcm16000 => 16_000,
            OutputFormat::Pcm22050 => 22_050,
            OutputFormat::Pcm24000 => 24_000,
            OutputFormat::Pcm44100 => 44_100,
        }
    }
}

/// The `voice_settings` object of a request; unset fields are left out, so the voice's own
/// settings apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VoiceSettings {
    /// Stability, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stability: Option<f32>,
    /// Similarity to the original voice, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity_boost: Option<f32>,
    /// Style exaggeration, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<f32>,
    /// Speaker boost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_speaker_boost: Option<bool>,
    /// Speed, 0.7 to 1.2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f32>,
}

impl VoiceSettings {
    /// Whether any field is set.
    pub fn is_set(&self) -> bool {
        *self != VoiceSettings::default()
    }
}

openclaw_plugin_http::http_settings! {
    /// Settings of an `elevenlabs` text-to-speech provider: its own keys below, and the
    /// connection keys of `openclaw_plugin_http::settings` (`api_key_env` is required for
    /// api.elevenlabs.io and sent as `xi-api-key`).
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    pub struct Settings {
        official: ELEVENLABS,
        /// The voice used when the host asks for none.
        pub voice_id: String = "21m00Tcm4TlvDq8Ikt00".into(),
        /// The model.
        pub model_id: String = "eleven_flash_v2_5".into(),
        /// The PCM format asked for.
        pub output_format: OutputFormat = OutputFormat::Pcm24000,
        /// `optimize_streaming_latency`, 0 to 4; left out when unset.
        pub optimize_streaming_latency: Option<u8> = None,
        /// `language_code` (ISO 639-1), for models that enforce a language.
        pub language_code: Option<String> = None,
        /// `voice_settings.stability`, 0 to 1.
        pub stability: Option<f32> = None,
        /// `voice_settings.similarity_boost`, 0 to 1.
        pub similarity_boost: Option<f32> = None,
        /// `voice_settings.style`, 0 to 1.
        pub style: Option<f32> = None,
        /// `voice_settings.use_speaker_boost`.
        pub use_speaker_boost: Option<bool> = None,
        /// `voice_settings.speed`, 0.7 to 1.2.
        pub speed: Option<f32> = None,
    }
}

impl Settings {
    /// The checks of this plugin's own keys (the connection keys are checked first).
    fn check_own(&self) -> Result<(), PluginError> {
        check_voice_id(&self.voice_id)
            .map_err(|why| PluginError::config(format!("`voice_id` {why}")))?;
        if self.model_id.trim().is_empty() {
            return Err(PluginError::config("`model_id` must not be empty"));
        }
        if let Some(level) = self.optimize_streaming_latency {
            check_range("optimize_streaming_latency", level, 0..=4)?;
        }
        if let Some(code) = &self.language_code {
            if !(2..=3).contains(&code.len()) || !code.chars().all(|c| c.is_ascii_lowercase()) {
                return Err(PluginError::config(format!(
                    "`language_code` must be an ISO 639-1 code such as \"en\", got \"{code}\""
                )));
            }
        }
        for (key, value) in [
            ("stability", self.stability),
            ("similarity_boost", self.similarity_boost),
            ("style", self.style),
        ] {
            if let Some(v) = value {
                check_range(key, v, 0.0..=1.0)?;
            }
        }
        if let Some(speed) = self.speed {
            check_range("speed", speed, 0.7..=1.2)?;
        }
        Ok(())
    }

    /// The `voice_settings` to send.
    pub fn voice_settings(&self) -> VoiceSettings {
        VoiceSettings {
            stability: self.stability,
            similarity_boost: self.similarity_boost,
            style: self.style,
            use_speaker_boost: self.use_speaker_boost,
            speed: self.speed,
        }
    }

    /// The HTTP settings.
    pub fn api(&self) -> ApiSettings<'_> {
        self.endpoints()
            .api(PLUGIN, AuthScheme::Header("xi-api-key"))
    }
}

/// Checks that `id` looks like an ElevenLabs voice id (it goes into the URL path). Returns why
/// not.
pub fn check_voice_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!("must be 1 to 64 characters, got \"{id}\""));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "may only hold letters, digits, `_` and `-`, got \"{id}\""
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_a_key_for_elevenlabs_only() {
        let err = Settings::parse("").unwrap_err();
        assert!(err.message().contains("api_key_env"), "{}", err.message());
        let s = Settings::parse("api_key_env = \"ELEVENLABS_API_KEY\"").unwrap();
        assert_eq!(s.model_id, "eleven_flash_v2_5");
        assert_eq!(s.output_format, OutputFormat::Pcm24000);
        assert!(!s.voice_settings().is_set());
        Settings::parse("base_url = \"http://127.0.0.1:1\"").unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        for (text, key) in [
            ("voice = \"x\"", "voice"),
            ("output_format = \"mp3_44100_128\"", "mp3_44100_128"),
            (
                "base_url = \"http://x\"\nvoice_id = \"../admin\"",
                "voice_id",
            ),
            ("base_url = \"http://x\"\nstability = 1.5", "stability"),
            ("base_url = \"http://x\"\nspeed = 2.0", "speed"),
            (
                "base_url = \"http://x\"\noptimize_streaming_latency = 5",
                "optimize_streaming_latency",
            ),
            (
                "base_url = \"http://x\"\nlanguage_code = \"EN\"",
                "language_code",
            ),
            ("base_url = \"http://x\"\nmodel_id = \" \"", "model_id"),
        ] {
            let err = Settings::parse(text).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Config, "{text}");
            assert!(err.message().contains(key), "{text}: {}", err.message());
        }
    }

    #[test]
    fn formats_name_their_rates() {
        for (text, rate) in [
            ("pcm_16000", 16_000),
            ("pcm_22050", 22_050),
            ("pcm_24000", 24_000),
            ("pcm_44100", 44_100),
        ] {
            let s = Settings::parse(&format!(
                "base_url = \"http://x\"\noutput_format = \"{text}\""
            ))
            .unwrap();
            assert_eq!(
                (s.output_format.as_str(), s.output_format.sample_rate()),
                (text, rate)
            );
        }
    }
}
