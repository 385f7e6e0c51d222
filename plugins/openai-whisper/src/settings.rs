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
//! timeout_ms = 10000                   # whole request; keep it below the provider's timeout_ms
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

openclaw_plugin_http::http_settings! {
    /// Settings of an `openai-whisper` speech-to-text provider: its own keys below, and the
    /// connection keys of `openclaw_plugin_http::settings` (`base_url`: OpenAI, Groq
    /// (`https://api.groq.com/openai`), a whisper.cpp server, speaches, an in-cluster pool;
    /// `api_key_env`, required for api.openai.com, sent as `Authorization: Bearer`).
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    pub struct Settings {
        official: OPENAI,
        /// The model.
        pub model: String = "whisper-1".into(),
        /// The response format; see [`ResponseFormat`].
        pub response_format: ResponseFormat = ResponseFormat::Auto,
        /// The language (ISO 639-1, `en`), overriding the host's hint.
        pub language: Option<String> = None,
        /// Text that primes the model (names, vocabulary), when the host gives none.
        pub prompt: Option<String> = None,
        /// Sampling temperature, 0 to 1; the server's default when unset.
        pub temperature: Option<f32> = None,
        /// Whether to drop segments that Whisper scores as probably not speech (its own
        /// thresholds: no-speech probability above 0.6 and average log-probability below -1),
        /// which is where "Thank you." on a cough comes from. Needs `verbose_json`.
        pub drop_no_speech: bool = true,
    }
}

impl Settings {
    /// The checks of this plugin's own keys (the connection keys are checked first).
    fn check_own(&self) -> Result<(), PluginError> {
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
        Ok(())
    }

    /// The HTTP settings.
    pub fn api(&self) -> ApiSettings<'_> {
        self.endpoints().api(PLUGIN, AuthScheme::Bearer)
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
