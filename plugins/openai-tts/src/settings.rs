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
//! connect_timeout_ms = 3000
//! timeout_ms = 10000                   # until the audio starts, and longest pause within it
//! max_retries = 2                      # on 429, 5xx and refused connections, before any audio
//! backoff_initial_ms = 200
//! backoff_max_ms = 2000
//! max_retry_wait_ms = 3000             # longest Retry-After waited for
//! # A pool of equivalent servers instead of `base_url` (docs/SCALING.md): least outstanding
//! # requests weighted by latency, a circuit breaker per endpoint, failover between them.
//! # base_urls = ["http://stt-0:8000", "http://stt-1:8000", "http://stt-2:8000"]
//! endpoint_failures = 3                # failures in a row that take an endpoint out
//! endpoint_cooldown_ms = 10000         # how long before one probe request
//! ```

use plugin_api::prelude::*;
use serde::Deserialize;

use crate::http::{check_endpoint, check_range, ApiSettings, AuthScheme, TimingSettings};
use crate::pool::{self, BreakerSettings};
use crate::PLUGIN;

/// The OpenAI API's host, which needs a key.
const OPENAI_HOST: &str = "api.openai.com";

/// Settings of an `openai-tts` text-to-speech provider.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The server, without `/v1`.
    pub base_url: String,
    /// The environment variable holding the key, sent as `Authorization: Bearer`. Required for
    /// api.openai.com; leave it out for servers without auth.
    pub api_key_env: Option<String>,
    /// The model.
    pub model: String,
    /// The voice used when the host asks for none.
    pub voice: String,
    /// Speaking speed, 0.25 to 4.
    pub speed: f32,
    /// How to speak (tone, accent, pace); `gpt-4o-mini-tts` only.
    pub instructions: Option<String>,
    /// Time allowed to connect, in ms.
    pub connect_timeout_ms: u64,
    /// Time allowed until the response starts, and for any pause within the audio, in ms.
    pub timeout_ms: u64,
    /// Retries on 429, 5xx and refused connections (before any audio arrived).
    pub max_retries: u32,
    /// Backoff before the first retry, in ms; it doubles for each further one.
    pub backoff_initial_ms: u64,
    /// Longest backoff, in ms.
    pub backoff_max_ms: u64,
    /// Longest `Retry-After` waited for, in ms; a longer one is returned as `RateLimited` at
    /// once, so that the host fails over.
    pub max_retry_wait_ms: u64,
    /// A pool of equivalent servers, used instead of `base_url` when set (see `pool.rs`).
    pub base_urls: Vec<String>,
    /// In a pool: failures in a row that take an endpoint out of rotation.
    pub endpoint_failures: u32,
    /// In a pool: how long an endpoint stays out before one probe request, in ms.
    pub endpoint_cooldown_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            base_url: "https://api.openai.com".into(),
            api_key_env: None,
            model: "tts-1".into(),
            voice: "alloy".into(),
            speed: 1.0,
            instructions: None,
            connect_timeout_ms: 3_000,
            timeout_ms: 10_000,
            max_retries: 2,
            backoff_initial_ms: 200,
            backoff_max_ms: 2_000,
            max_retry_wait_ms: 3_000,
            base_urls: Vec::new(),
            endpoint_failures: 3,
            endpoint_cooldown_ms: 10_000,
        }
    }
}

impl Settings {
    /// Parses and checks settings.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        plugin_api::settings::parse(text).map_err(PluginError::from)
    }

    fn check_values(&self) -> Result<(), PluginError> {
        let endpoint = |url: &str| {
            check_endpoint(
                url,
                self.api_key_env.as_deref(),
                OPENAI_HOST,
                "OPENAI_API_KEY",
            )
        };
        if self.base_urls.is_empty() {
            endpoint(&self.base_url)?;
        } else if self.base_url != Settings::default().base_url {
            return Err(PluginError::config(
                "set either `base_url` (one server) or `base_urls` (a pool), not both",
            ));
        }
        pool::check_settings(
            &self.base_urls,
            self.endpoint_failures,
            self.endpoint_cooldown_ms,
            endpoint,
        )?;
        if self.model.trim().is_empty() {
            return Err(PluginError::config("`model` must not be empty"));
        }
        check_voice(&self.voice).map_err(|why| PluginError::config(format!("`voice` {why}")))?;
        check_range("speed", self.speed, 0.25..=4.0)?;
        self.timing().check()
    }

    /// The HTTP settings.
    pub fn api(&self) -> ApiSettings<'_> {
        self.timing()
            .api(
                PLUGIN,
                &self.base_url,
                self.api_key_env.as_deref(),
                AuthScheme::Bearer,
            )
            .pool(
                &self.base_urls,
                BreakerSettings {
                    failures: self.endpoint_failures,
                    cooldown: std::time::Duration::from_millis(self.endpoint_cooldown_ms),
                },
            )
    }

    fn timing(&self) -> TimingSettings {
        TimingSettings {
            connect_timeout_ms: self.connect_timeout_ms,
            timeout_ms: self.timeout_ms,
            max_retries: self.max_retries,
            backoff_initial_ms: self.backoff_initial_ms,
            backoff_max_ms: self.backoff_max_ms,
            max_retry_wait_ms: self.max_retry_wait_ms,
        }
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

impl PluginSettings for Settings {
    fn check(&self) -> Result<(), SettingsError> {
        self.check_values().map_err(crate::http::settings_error)
    }
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
