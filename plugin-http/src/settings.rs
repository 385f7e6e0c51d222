//! The connection settings every HTTP speech plugin takes, written once: where the API is
//! (`base_url` or a `base_urls` pool), which variable holds its key, and the timeout, retry
//! and breaker keys. [`http_settings!`](crate::http_settings) declares a plugin's settings
//! struct with these keys added to its own, so that one `settings` table stays flat and
//! unknown keys stay errors (serde's `flatten` cannot be combined with
//! `deny_unknown_fields`).
//!
//! ```toml
//! base_url = "https://api.openai.com"  # the server, without /v1
//! api_key_env = "OPENAI_API_KEY"       # variable holding the key; "" or left out: no auth
//! connect_timeout_ms = 3000
//! timeout_ms = 10000                   # STT: the whole request; TTS: until audio starts
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

use std::time::Duration;

use plugin_api::prelude::*;

use crate::http::{check_endpoint, ApiSettings, AuthScheme, TimingSettings};
use crate::pool::{self, BreakerSettings};

/// The API a plugin calls when `base_url` is left out, and the key it needs there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfficialApi {
    /// The default `base_url` (`https://api.openai.com`).
    pub base_url: &'static str,
    /// Its host, which needs a key (`api.openai.com`).
    pub host: &'static str,
    /// The usual name of the key's variable, shown in the error when it is missing.
    pub key_var: &'static str,
}

/// A view of the connection keys of a settings struct that
/// [`http_settings!`](crate::http_settings) declared.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints<'a> {
    /// `base_url`.
    pub base_url: &'a str,
    /// `api_key_env`.
    pub api_key_env: Option<&'a str>,
    /// `base_urls`.
    pub base_urls: &'a [String],
    /// `endpoint_failures`.
    pub endpoint_failures: u32,
    /// `endpoint_cooldown_ms`.
    pub endpoint_cooldown_ms: u64,
    /// The timeout and retry keys.
    pub timing: TimingSettings,
}

impl<'a> Endpoints<'a> {
    /// Checks the keys, naming the one at fault: a callable URL, a key variable wherever
    /// `official`'s host is used, `base_url` and `base_urls` not both set, the pool and the
    /// timing ranges.
    pub fn check(&self, official: OfficialApi) -> Result<(), PluginError> {
        let endpoint =
            |url: &str| check_endpoint(url, self.api_key_env, official.host, official.key_var);
        if self.base_urls.is_empty() {
            endpoint(self.base_url)?;
        } else if self.base_url != official.base_url {
            return Err(PluginError::config(
                "set either `base_url` (one server) or `base_urls` (a pool), not both",
            ));
        }
        pool::check_settings(
            self.base_urls,
            self.endpoint_failures,
            self.endpoint_cooldown_ms,
            endpoint,
        )?;
        self.timing.check()
    }

    /// The settings [`Api::new`](crate::http::Api::new) takes.
    pub fn api(&self, plugin: &'static str, auth: AuthScheme) -> ApiSettings<'a> {
        self.timing
            .api(plugin, self.base_url, self.api_key_env, auth)
            .pool(
                self.base_urls,
                BreakerSettings {
                    failures: self.endpoint_failures,
                    cooldown: Duration::from_millis(self.endpoint_cooldown_ms),
                },
            )
    }
}

/// Declares a struct with the given fields followed by the six timeout and retry keys every
/// HTTP plugin takes; [`TimingSettings`] and [`http_settings!`](crate::http_settings) are
/// both declared with it, so the keys are written once.
#[doc(hidden)]
#[macro_export]
macro_rules! with_timing_fields {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident { $($fields:tt)* }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($fields)*
            /// Time allowed to connect, in ms.
            pub connect_timeout_ms: u64,
            /// Time allowed, in ms: for speech-to-text the whole request; for text-to-speech
            /// until the audio starts, and for any pause within it.
            pub timeout_ms: u64,
            /// Retries on 429, 5xx and refused connections (for text-to-speech, before any
            /// audio arrived).
            pub max_retries: u32,
            /// Backoff before the first retry, in ms; it doubles for each further one.
            pub backoff_initial_ms: u64,
            /// Longest backoff, in ms.
            pub backoff_max_ms: u64,
            /// Longest `Retry-After` waited for, in ms; a longer one is returned as
            /// `RateLimited` at once, so that the host fails over.
            pub max_retry_wait_ms: u64,
        }
    };
}

/// Declares a plugin's settings struct with the connection keys of this module added to its
/// own fields, each field written with its default (`pub model: String = "tts-1".into(),`),
/// after the [`OfficialApi`] the plugin calls by default. It derives nothing itself: put
/// `#[derive(Debug, Clone, PartialEq, Deserialize)]` on it (serde's derive in scope). It adds
/// `#[serde(deny_unknown_fields, default)]`, a `Default` impl, `fn endpoints()` (the view that
/// checks the keys and builds the [`ApiSettings`]) and the `PluginSettings` impl, whose check
/// is the connection keys' and then the struct's own `fn check_own(&self) -> Result<(),
/// PluginError>`, with the key at fault named.
///
/// ```
/// use serde::Deserialize;
///
/// openclaw_plugin_http::http_settings! {
///     /// Settings of a `demo` provider.
///     #[derive(Debug, Clone, PartialEq, Deserialize)]
///     pub struct Settings {
///         official: EXAMPLE,
///         /// The model.
///         pub model: String = "small".into(),
///     }
/// }
///
/// const EXAMPLE: openclaw_plugin_http::settings::OfficialApi = openclaw_plugin_http::settings::OfficialApi {
///     base_url: "https://api.example.com",
///     host: "api.example.com",
///     key_var: "EXAMPLE_API_KEY",
/// };
///
/// impl Settings {
///     fn check_own(&self) -> Result<(), plugin_api::abi::PluginError> {
///         Ok(())
///     }
/// }
///
/// let settings: Settings = plugin_api::settings::parse(
///     "api_key_env = \"EXAMPLE_API_KEY\"\nmodel = \"large\"\ntimeout_ms = 500",
/// )
/// .unwrap();
/// assert_eq!(settings.model, "large");
/// assert_eq!(settings.endpoints().timing.timeout_ms, 500);
/// assert_eq!(settings.base_url, "https://api.example.com");
/// ```
#[macro_export]
macro_rules! http_settings {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            official: $official:expr,
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty = $default:expr ),* $(,)?
        }
    ) => {
        $crate::with_timing_fields! {
        $(#[$meta])*
        #[serde(deny_unknown_fields, default)]
        $vis struct $name {
            /// The server, without `/v1`.
            pub base_url: String,
            /// The environment variable holding the key; left out or `""`: no key is sent.
            pub api_key_env: Option<String>,
            $( $(#[$fmeta])* $fvis $field: $ty, )*
            /// A pool of equivalent servers, used instead of `base_url` when set.
            pub base_urls: Vec<String>,
            /// In a pool: failures in a row that take an endpoint out of rotation.
            pub endpoint_failures: u32,
            /// In a pool: how long an endpoint stays out before one probe request, in ms.
            pub endpoint_cooldown_ms: u64,
        }
        }

        impl Default for $name {
            fn default() -> Self {
                let timing = $crate::http::TimingSettings::DEFAULT;
                $name {
                    base_url: $official.base_url.into(),
                    api_key_env: None,
                    $( $field: $default, )*
                    connect_timeout_ms: timing.connect_timeout_ms,
                    timeout_ms: timing.timeout_ms,
                    max_retries: timing.max_retries,
                    backoff_initial_ms: timing.backoff_initial_ms,
                    backoff_max_ms: timing.backoff_max_ms,
                    max_retry_wait_ms: timing.max_retry_wait_ms,
                    base_urls: Vec::new(),
                    endpoint_failures: 3,
                    endpoint_cooldown_ms: 10_000,
                }
            }
        }

        impl $name {
            /// Parses and checks settings (TOML text), naming the key at fault.
            pub fn parse(text: &str) -> Result<Self, $crate::plugin_api::abi::PluginError> {
                $crate::plugin_api::settings::parse(text)
                    .map_err($crate::plugin_api::abi::PluginError::from)
            }

            /// The connection keys, to check them and to build the client's settings.
            pub fn endpoints(&self) -> $crate::settings::Endpoints<'_> {
                $crate::settings::Endpoints {
                    base_url: &self.base_url,
                    api_key_env: self.api_key_env.as_deref(),
                    base_urls: &self.base_urls,
                    endpoint_failures: self.endpoint_failures,
                    endpoint_cooldown_ms: self.endpoint_cooldown_ms,
                    timing: $crate::http::TimingSettings {
                        connect_timeout_ms: self.connect_timeout_ms,
                        timeout_ms: self.timeout_ms,
                        max_retries: self.max_retries,
                        backoff_initial_ms: self.backoff_initial_ms,
                        backoff_max_ms: self.backoff_max_ms,
                        max_retry_wait_ms: self.max_retry_wait_ms,
                    },
                }
            }
        }

        impl $crate::plugin_api::settings::PluginSettings for $name {
            fn check(&self) -> Result<(), $crate::plugin_api::settings::SettingsError> {
                self.endpoints()
                    .check($official)
                    .and_then(|()| self.check_own())
                    .map_err($crate::http::settings_error)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    crate::http_settings! {
        /// Settings of a test plugin.
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        struct Demo {
            official: DEMO,
            /// A key of its own.
            pub model: String = "small".into(),
        }
    }

    impl Demo {
        fn check_own(&self) -> Result<(), PluginError> {
            if self.model.is_empty() {
                return Err(PluginError::config("`model` must not be empty"));
            }
            Ok(())
        }
    }

    const DEMO: OfficialApi = OfficialApi {
        base_url: "https://api.demo.example",
        host: "api.demo.example",
        key_var: "DEMO_API_KEY",
    };

    fn parse(text: &str) -> Result<Demo, PluginError> {
        Demo::parse(text)
    }

    #[test]
    fn defaults_and_own_keys_sit_in_one_flat_table() {
        let demo = parse("api_key_env = \"DEMO_API_KEY\"\nmodel = \"large\"").unwrap();
        assert_eq!(demo.model, "large");
        assert_eq!(demo.endpoints().timing, TimingSettings::DEFAULT);
        let api = demo.endpoints().api("demo", AuthScheme::Bearer);
        assert_eq!(api.base_urls, vec!["https://api.demo.example"]);
        assert_eq!(api.breaker.failures, 3);
    }

    #[test]
    fn unknown_and_bad_keys_are_named() {
        for (text, key) in [
            ("modle = \"x\"", "modle"),
            ("api_key_env = \"K\"\ntimeout_ms = 5", "timeout_ms"),
            (
                "base_url = \"http://x\"\nendpoint_failures = 0",
                "endpoint_failures",
            ),
            ("", "api_key_env"),
            ("base_url = \"http://x\"\nmodel = \"\"", "model"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn a_pool_replaces_base_url_and_excludes_it() {
        let demo = parse("base_urls = [\"http://a:1\", \"http://b:2\"]").unwrap();
        let api = demo.endpoints().api("demo", AuthScheme::Bearer);
        assert_eq!(api.base_urls, vec!["http://a:1", "http://b:2"]);
        let err = parse("base_url = \"http://c:3\"\nbase_urls = [\"http://a:1\"]").unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }
}
