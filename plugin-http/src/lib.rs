//! `openclaw-plugin-http`: what a plugin that calls an HTTP speech API needs, shared by the
//! bundled cloud plugins (`openai-whisper`, `elevenlabs`, `openai-tts`) and open to
//! third-party plugin authors:
//!
//! - [`http`]: a blocking client with connect and whole-request timeouts, the API key read
//!   from the variable `api_key_env` names (never logged), retries with jittered backoff that
//!   honour `Retry-After`, HTTP failures mapped to `PluginError` kinds with the API's own
//!   text, settings checks (`check_endpoint`, `check_range`, [`http::TimingSettings`]);
//! - [`pool`]: one `base_url` or a `base_urls` pool balanced by outstanding requests and
//!   latency, a circuit breaker per endpoint, figures for `health()`;
//! - [`pcm_stream`]: a response body of raw PCM streamed to the host as it arrives;
//! - [`settings`]: the connection keys every such plugin takes (`base_url`, `api_key_env`,
//!   timeouts, retries, a pool), declared once with [`http_settings!`].
//!
//! It depends on `openclaw-plugin-api` only, so a plugin built with it stays a plain
//! `cdylib` of the same ABI.

pub mod http;
pub mod pcm_stream;
pub mod pool;
pub mod settings;

/// The plugin API this crate is built on, for [`http_settings!`]'s expansion.
pub use plugin_api;
