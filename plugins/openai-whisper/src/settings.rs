//! The provider's settings (the `settings` table of an `openai-whisper` provider in the host
//! config), with their defaults and checks. Checking needs no network and no key.
//!
//! ```toml
//! [providers.openai-whisper.settings]
//! base_url = "https://api.openai.com"  # any OpenAI-compatible server, without /v1
//! api_key_env = "OPENAI_API_KEY"       # variable holding the key; "" or left out: no auth
//! model = "whisper-1"                  # or gpt-4o-mini-transcribe, gpt-4o-transcribe, whisper-large-v3…
//! response_format = "auto"             # auto | verbose_json | json | text
//! # language = "en"                    # overrides the host's language hint
//! # prompt = "OpenClaw, Discord"       # used when the host gives no prompt
//! # temperature = 0.0
//! drop_no_speech = true                # drop segments Whisper marks as probably not speech
//! connect_timeout_ms = 3000
//! timeout_ms = 10000                   # whole request; keep it below the provider's timeout_ms
//! max_retries = 2                      # on 429, 5xx and refused connections
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

/// Which `response_format` to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    /// `verbose_json` (timed segments, language, no-speech scores) where the model offers it:
    /// every model but OpenAI's `gpt-4o*` ones, which offer only `json` and `text`.
    Auto,
    /// Segments with timings and scores.
    VerboseJson,
    /// Just the text, as JSON.
    Json,
    /// Just the text, as plain text.
    Text,
}

impl ResponseFormat {
    /// The value sent for `model`.
    pub fn resolve(self, model: &str) -> &'static str {
        match self {
            ResponseFormat::Auto if model.starts_with("gpt-4o") => "json",
            ResponseFormat::Auto | ResponseFormat::VerboseJson => "verbose_json",
            ResponseFormat::Json => "json",
            ResponseFormat::Text => "text",
        }
    }
}

/// Settings of an `openai-whisper` speech-to-text provider.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The server, without `/v1`: OpenAI, Groq (`https://api.groq.com/openai`), a whisper.cpp
    /// server, speaches, an in-cluster pool.
    pub base_url: String,
    /// The environment variable holding the key, sent as `Authorization: Bearer`. Required for
    /// api.openai.com; leave it out for servers without auth.
    pub api_key_env: Option<String>,
    /// The model.
    pub model: String,
    /// The response format; see [`ResponseFormat`].
    pub response_format: ResponseFormat,
    /// The language (ISO 639-1, `en`), overriding the host's hint.
    pub language: Option<String>,
    /// Text that primes the model (names, vocabulary), when the host gives none.
    pub prompt: Option<String>,
    /// Sampling temperature, 0 to 1; the server's default when unset.
    pub temperature: Option<f32>,
    /// Whether to drop segments that Whisper scores as probably not speech (its own
    /// thresholds: no-speech probability above 0.6 and average log-probability below -1),
    /// which is where "Thank you." on a cough comes from. Needs `verbose_json`.
    pub drop_no_speech: bool,
    /// Time allowed to connect, in ms.
    pub connect_timeout_ms: u64,
    /// Time allowed for the whole request, in ms.
    pub timeout_ms: u64,
    /// Retries on 429, 5xx and refused connections.
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
            model: "whisper-1".into(),
            response_format: ResponseFormat::Auto,
            language: None,
            prompt: None,
            temperature: None,
            drop_no_speech: true,
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
        if let Some(language) = &self.language {
            if !(2..=3).contains(&language.len())
                || !language.chars().all(|c| c.is_ascii_lowercase())
            {
                return Err(PluginError::config(format!(
                    "`language` must be an ISO 639-1 code such as \"en\", got \"{language}\""
                )));
            }
        }
        if let Some(t) = self.temperature {
            check_range("temperature", t, 0.0..=1.0)?;
        }
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
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err.message().contains("api_key_env"), "{}", err.message());
        let s = Settings::parse("api_key_env = \"OPENAI_API_KEY\"").unwrap();
        assert_eq!(s.model, "whisper-1");
        assert_eq!(s.timeout_ms, 10_000);
        Settings::parse("base_url = \"http://127.0.0.1:8080\"").unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        for (text, key) in [
            ("modle = \"x\"", "modle"),
            ("base_url = \"ftp://x\"", "base_url"),
            ("base_url = \"https://api.openai.com/v1\"", "base_url"),
            ("base_url = \"http://x\"\nmodel = \"\"", "model"),
            ("base_url = \"http://x\"\ntemperature = 2.0", "temperature"),
            ("base_url = \"http://x\"\ntimeout_ms = 0", "timeout_ms"),
            (
                "base_url = \"http://x\"\nlanguage = \"English\"",
                "language",
            ),
            ("base_url = \"http://x\"\nresponse_format = \"srt\"", "srt"),
            (
                "base_url = \"http://x\"\nbackoff_initial_ms = 500\nbackoff_max_ms = 100",
                "backoff_max_ms",
            ),
        ] {
            let err = Settings::parse(text).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Config, "{text}");
            assert!(err.message().contains(key), "{text}: {}", err.message());
        }
    }

    #[test]
    fn auto_format_follows_the_model() {
        assert_eq!(ResponseFormat::Auto.resolve("whisper-1"), "verbose_json");
        assert_eq!(
            ResponseFormat::Auto.resolve("whisper-large-v3"),
            "verbose_json"
        );
        assert_eq!(
            ResponseFormat::Auto.resolve("gpt-4o-mini-transcribe"),
            "json"
        );
        assert_eq!(ResponseFormat::Text.resolve("whisper-1"), "text");
    }

    #[test]
    fn a_value_out_of_range_names_its_key_for_the_host() {
        let err = Settings::parse("api_key_env = \"K\"\ntimeout_ms = 5").unwrap_err();
        assert!(
            err.message()
                .starts_with("setting `timeout_ms`: must be between"),
            "{err}"
        );
        assert_eq!(
            plugin_api::settings::key_of(err.message()),
            Some("timeout_ms")
        );
    }
}
