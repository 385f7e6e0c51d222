//! The provider's settings (`[providers.<id>.settings]`), checked without the network.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `address` | required | the server, `host:port` or `tcp://host:port` |
//! | `connect_timeout_ms` | 2000 | connecting (each try) |
//! | `io_timeout_ms` | 10000 | longest silence from the server within a call |
//! | `timeout_ms` | 30000 | a whole call |
//! | `model` | the server's | speech-to-text model name (`transcribe` `name`) |
//! | `language` | the request's | language sent with `transcribe` when the request has none |
//! | `voice` | the server's | text-to-speech voice name (`synthesize` `voice.name`) |
//! | `speaker` | none | speaker of a multi-speaker voice |

use std::time::Duration;

use plugin_api::abi::PluginError;
use serde::Deserialize;

/// Parsed settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `host:port`.
    pub address: String,
    /// Connect timeout, ms.
    #[serde(default = "default_connect")]
    pub connect_timeout_ms: u64,
    /// Idle timeout, ms.
    #[serde(default = "default_io")]
    pub io_timeout_ms: u64,
    /// Whole-call timeout, ms.
    #[serde(default = "default_total")]
    pub timeout_ms: u64,
    /// STT model.
    #[serde(default)]
    pub model: Option<String>,
    /// Default language.
    #[serde(default)]
    pub language: Option<String>,
    /// TTS voice.
    #[serde(default)]
    pub voice: Option<String>,
    /// TTS speaker.
    #[serde(default)]
    pub speaker: Option<String>,
}

fn default_connect() -> u64 {
    2000
}
fn default_io() -> u64 {
    10_000
}
fn default_total() -> u64 {
    30_000
}

impl Settings {
    /// Parses and checks the settings text.
    pub fn parse(text: &str) -> Result<Settings, PluginError> {
        let mut settings: Settings = plugin_api::sdk::parse_settings(text)?;
        let address = settings.address.trim();
        let address = address.strip_prefix("tcp://").unwrap_or(address);
        if address.rsplit_once(':').is_none_or(|(host, port)| {
            host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0)
        }) {
            return Err(PluginError::config(format!(
                "`address` = \"{}\" is not `host:port` (e.g. \"127.0.0.1:10300\")",
                settings.address
            )));
        }
        settings.address = address.to_string();
        for (key, value) in [
            ("connect_timeout_ms", settings.connect_timeout_ms),
            ("io_timeout_ms", settings.io_timeout_ms),
            ("timeout_ms", settings.timeout_ms),
        ] {
            if !(10..=600_000).contains(&value) {
                return Err(PluginError::config(format!(
                    "`{key}` = {value} is out of range (10 to 600000)"
                )));
            }
        }
        Ok(settings)
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// The idle timeout.
    pub fn io_timeout(&self) -> Duration {
        Duration::from_millis(self.io_timeout_ms)
    }
    /// The whole-call timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ranges() {
        let s = Settings::parse("address = \"tcp://127.0.0.1:10300\"").unwrap();
        assert_eq!(s.address, "127.0.0.1:10300");
        assert_eq!(s.timeout(), Duration::from_secs(30));
        for (text, key) in [
            ("address = \"localhost\"", "address"),
            ("address = \":10300\"", "address"),
            ("address = \"h:0\"", "address"),
            ("address = \"h:1\"\ntimeout_ms = 1", "timeout_ms"),
            ("address = \"h:1\"\nadress = 2", "adress"),
        ] {
            let e = Settings::parse(text).unwrap_err();
            assert!(e.message().contains(key), "{text}: {}", e.message());
        }
    }
}
