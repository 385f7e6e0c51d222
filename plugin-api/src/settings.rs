//! Typed provider settings: parsed once, checked once, errors that name the key.
//!
//! A provider's settings are its `[providers.<id>.settings]` table in the host's configuration.
//! Give [`PluginDefinition::stt`](crate::sdk::PluginDefinition::stt) or
//! [`tts`](crate::sdk::PluginDefinition::tts) a constructor that takes your settings type and
//! the SDK does the rest: it parses the table into that type (refusing unknown keys when the
//! type says `#[serde(deny_unknown_fields)]`), runs [`PluginSettings::check`], and uses the
//! same two steps for the host's `check-config` (no provider is built there, so no model is
//! loaded and no network call is made).
//!
//! An error names the key it is about (`setting `voice.speed`: invalid type: string "one",
//! expected u8`); the host adds the configuration file or `OPENCLAW__…` variable that set it.
//!
//! ```
//! use plugin_api::prelude::*;
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize)]
//! #[serde(deny_unknown_fields, default)]
//! struct Settings {
//!     speed: u8,
//! }
//! impl Default for Settings {
//!     fn default() -> Self {
//!         Settings { speed: 1 }
//!     }
//! }
//! impl PluginSettings for Settings {
//!     fn check(&self) -> Result<(), SettingsError> {
//!         if self.speed == 0 {
//!             return Err(SettingsError::new("speed", "must be at least 1"));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let err = plugin_api::settings::parse::<Settings>("speed = \"one\"").unwrap_err();
//! assert_eq!(err.key(), Some("speed"));
//! assert!(err.to_string().contains("expected u8"), "{err}");
//! let err = plugin_api::settings::parse::<Settings>("speed = 0").unwrap_err();
//! assert_eq!(err.to_string(), "setting `speed`: must be at least 1");
//! assert_eq!(plugin_api::settings::parse::<Settings>("").unwrap().speed, 1);
//! ```

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::abi::PluginError;

/// A provider's settings type: deserialized from the `settings` table, then checked.
///
/// Implement it on a `#[derive(Deserialize)]` struct; [`check`](Self::check) is for rules
/// beyond the types (ranges, keys that go together). It runs before the provider is built and
/// when the host only validates the configuration, so it must not load models or call out.
pub trait PluginSettings: DeserializeOwned + 'static {
    /// Checks the values; the default accepts whatever deserialized.
    fn check(&self) -> Result<(), SettingsError> {
        Ok(())
    }

    /// Checks what the settings point at, for the host's `check-config` only: a program on
    /// the `PATH`, a model file that exists. Cheap (no network, no model load); errors of any
    /// kind. The provider's constructor meets the same problems itself, so it is not run
    /// before building one. The default checks nothing.
    ///
    /// ```
    /// use plugin_api::prelude::*;
    /// # use plugin_api::testing::TestPlugin;
    /// #[derive(serde::Deserialize)]
    /// struct Settings { model: std::path::PathBuf }
    /// impl PluginSettings for Settings {
    ///     fn check_environment(&self) -> Result<(), PluginError> {
    ///         if !self.model.is_file() {
    ///             let shown = self.model.display();
    ///             return Err(SettingsError::new("model", format!("{shown} does not exist")).into());
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// # struct Nothing;
    /// # impl SpeechToText for Nothing {
    /// #     fn transcribe(&self, _: Pcm16kMono<'_>, _: &TranscribeOptions) -> Result<Transcript, PluginError> {
    /// #         Ok(Transcript::empty())
    /// #     }
    /// # }
    /// # fn definition() -> PluginDefinition {
    /// #     PluginDefinition::new("m", "0.1.0").stt(|_: Settings| Ok(Nothing))
    /// # }
    /// let plugin = TestPlugin::new(definition);
    /// let err = plugin.validate_config(Role::SpeechToText, "model = \"/no/such.bin\"").unwrap_err();
    /// assert_eq!(err.message(), "setting `model`: /no/such.bin does not exist");
    /// assert!(plugin.stt("model = \"/no/such.bin\"").is_ok(), "not run before building");
    /// ```
    fn check_environment(&self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Settings for a provider that takes none: any key is refused.
///
/// ```
/// use plugin_api::prelude::*;
/// assert!(plugin_api::settings::parse::<NoSettings>("").is_ok());
/// let err = plugin_api::settings::parse::<NoSettings>("model = 1").unwrap_err();
/// assert!(err.to_string().contains("unknown field `model`"), "{err}");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

impl PluginSettings for NoSettings {}

/// A problem with one setting (or with the table as a whole), named by its dotted key.
///
/// Converted into a [`PluginError`] of kind `Config` whose message starts with
/// ``setting `KEY`: ``; [`key_of`] reads the key back (the host does, to say which file or
/// variable set it).
///
/// ```
/// use plugin_api::prelude::*;
/// let err: PluginError = SettingsError::new("voice", "unknown voice `x`").into();
/// assert_eq!(err.kind, ErrorKind::Config);
/// assert_eq!(plugin_api::settings::key_of(err.message()), Some("voice"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    key: Option<String>,
    message: String,
}

impl SettingsError {
    /// A problem with the setting `key` (dotted for nested tables: `voice.speed`).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        SettingsError {
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// A problem with the settings as a whole (no single key to blame).
    pub fn whole(message: impl Into<String>) -> Self {
        SettingsError {
            key: None,
            message: message.into(),
        }
    }

    /// The dotted key, when the problem is with one setting.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// What is wrong, without the key.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{KEY_PREFIX}{key}`: {}", self.message),
            None => write!(f, "settings: {}", self.message),
        }
    }
}

impl std::error::Error for SettingsError {}

impl From<SettingsError> for PluginError {
    fn from(error: SettingsError) -> Self {
        PluginError::config(error.to_string()).with_retryable(false)
    }
}

const KEY_PREFIX: &str = "setting `";

/// The setting a message (a [`PluginError`]'s, or one that quotes it) is about: the `KEY` of
/// the first ``setting `KEY`: `` in it.
///
/// ```
/// assert_eq!(
///     plugin_api::settings::key_of("provider `beep`: config error: setting `rate`: too low"),
///     Some("rate")
/// );
/// assert_eq!(plugin_api::settings::key_of("config error: no such file"), None);
/// ```
pub fn key_of(message: &str) -> Option<&str> {
    let start = message.find(KEY_PREFIX)? + KEY_PREFIX.len();
    let rest = &message[start..];
    let end = rest.find("`: ")?;
    let key = &rest[..end];
    (!key.is_empty() && !key.contains(char::is_whitespace)).then_some(key)
}

/// Parses settings (TOML text) into `T` and checks them: what the SDK does before building a
/// provider and when the host validates the configuration.
pub fn parse<T: PluginSettings>(text: &str) -> Result<T, SettingsError> {
    let settings: T = deserialize(text)?;
    settings.check()?;
    Ok(settings)
}

/// Deserializes TOML text into `T`, naming the key of the first error.
pub(crate) fn deserialize<T: DeserializeOwned>(text: &str) -> Result<T, SettingsError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().message().trim().to_string();
        if path == "." || path.is_empty() {
            SettingsError::whole(message)
        } else {
            SettingsError::new(path, message)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Voice {
        speed: u8,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Settings {
        model: String,
        #[serde(default)]
        voice: Option<Voice>,
    }

    impl PluginSettings for Settings {}

    #[test]
    fn a_type_error_names_the_nested_key() {
        let err = parse::<Settings>("model = \"m\"\n[voice]\nspeed = \"one\"").unwrap_err();
        assert_eq!(err.key(), Some("voice.speed"));
        assert!(
            err.to_string()
                .starts_with("setting `voice.speed`: invalid type: string \"one\", expected u8"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_its_path() {
        let err = parse::<Settings>("model = \"m\"\n[voice]\nsped = 1").unwrap_err();
        assert_eq!(err.key(), Some("voice.sped"));
    }

    #[test]
    fn a_missing_key_and_broken_toml_are_errors_of_the_whole() {
        let err = parse::<Settings>("").unwrap_err();
        assert!(err.to_string().contains("missing field `model`"), "{err}");
        let err = parse::<Settings>("model = ").unwrap_err();
        assert_eq!(err.key(), None);
    }

    #[test]
    fn the_key_survives_the_trip_through_a_plugin_error() {
        let err: PluginError = parse::<Settings>("model = 3").unwrap_err().into();
        assert_eq!(key_of(err.message()), Some("model"));
        assert_eq!(key_of(&format!("provider `x`: {err}")), Some("model"));
    }
}
