//! The provider's settings (the `settings` table of an `openai-tts` provider in the host
//! config), with their defaults and checks. Checking needs no network and no key.
//!
//! ```toml
//! [providers.openai-tts.settings]
//! base_url = "https://api.openai.com"  # any OpenAI-compatible server, without /v1
//! api_key_env = "OPENAI_API_KEY"       # required for api.openai.com
//! model = "tts-1"                      # the low-latency model; or gpt-4o-mini-tts, tts-1-hd
//! voice = "alloy"                      # alloy, ash, coral, echo, fable, nova, onyx, sage, shimmer…
//! speed = 1.0                          # 0.25 to 4
//! # instructions = "Speak warmly."     # gpt-4o-mini-tts only
//! timeout_ms = 10000                   # until the audio starts, and longest pause within it
//! ```
//!
//! The timeout, retry and pool keys are every HTTP plugin's: see
//! `openclaw_plugin_http::settings`.

use plugin_api::prelude::*;
use serde::Deserialize;

use crate::http::{check_range, ApiSettings, AuthScheme};
use crate::PLUGIN;
use openclaw_plugin_http::settings::OfficialApi;

/// The OpenAI API, which needs a key.
const OPENAI: OfficialApi = OfficialApi {
    base_url: "https://api.openai.com",
    host: "api.openai.com",
    key_var: "OPENAI_API_KEY",
};

openclaw_plugin_http::http_settings! {
    /// Settings of an `openai-tts` text-to-speech provider: its own keys below, and the
    /// connection keys of `openclaw_plugin_http::settings` (`api_key_env` is required for
    /// api.openai.com and sent as `Authorization: Bearer`).
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    pub struct Settings {
        official: OPENAI,
        /// The model.
        pub model: String = "tts-1".into(),
        /// The voice used when the host asks for none.
        pub voice: String = "alloy".into(),
        /// Speaking speed, 0.25 to 4.
        pub speed: f32 = 1.0,
        /// How to speak (tone, accent, pace); `gpt-4o-mini-tts` only.
        pub instructions: Option<String> = None,
    }
}

impl Settings {
    /// The checks of this plugin's own keys (the connection keys are checked first).
    fn check_own(&self) -> Result<(), PluginError> {
        if self.model.trim().is_empty() {
            return Err(PluginError::config("`model` must not be empty"));
        }
        check_voice(&self.voice).map_err(|why| PluginError::config(format!("`voice` {why}")))?;
        check_range("speed", self.speed, 0.25..=4.0)
    }

    /// The HTTP settings.
    pub fn api(&self) -> ApiSettings<'_> {
        self.endpoints().api(PLUGIN, AuthScheme::Bearer)
    }
}

/// Checks a voice name: OpenAI's are short lower-case words; compatible servers use ids such as
/// `af_heart` or `en_US-amy-medium`. Returns why not.
pub fn check_voice(voice: &str) -> Result<(), String> {
    if voice.is_empty() || voice.len() > 64 {
        return Err(format!("must be 1 to 64 characters, got \"{voice}\""));
    }
    if !voice
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "may only hold letters, digits, `_`, `-` and `.`, got \"{voice}\""
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_a_key_for_openai_only() {
        let err = Settings::parse("").unwrap_err();
        assert!(err.message().contains("api_key_env"), "{}", err.message());
        let s = Settings::parse("api_key_env = \"OPENAI_API_KEY\"").unwrap();
        assert_eq!(
            (s.model.as_str(), s.voice.as_str(), s.speed),
            ("tts-1", "alloy", 1.0)
        );
        Settings::parse("base_url = \"http://127.0.0.1:8000\"\nvoice = \"af_heart\"").unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        for (text, key) in [
            ("response_format = \"mp3\"", "response_format"),
            ("base_url = \"http://x\"\nspeed = 5.0", "speed"),
            ("base_url = \"http://x\"\nvoice = \"\"", "voice"),
            ("base_url = \"http://x\"\nvoice = \"a b\"", "voice"),
            ("base_url = \"http://x\"\nmodel = \"\"", "model"),
            (
                "base_url = \"http://x\"\nconnect_timeout_ms = 10",
                "connect_timeout_ms",
            ),
        ] {
            let err = Settings::parse(text).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Config, "{text}");
            assert!(err.message().contains(key), "{text}: {}", err.message());
        }
    }
}
