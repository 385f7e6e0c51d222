//! The provider's settings (the `settings` table of an `espeak` provider in the host config),
//! with their defaults and range checks.
//!
//! ```toml
//! [providers.tts.settings]
//! voice = "en-us"      # any `espeak-ng --voices` language, optionally with a variant: "en-us+f3"
//! rate = 175           # words per minute, 80 to 450
//! pitch = 50           # 0 to 99
//! amplitude = 100      # volume, 0 to 200
//! binary = "espeak-ng" # a name looked up on PATH, or a path
//! gap_ms = 250         # pause between sentences; absent: espeak-ng's own (about 300 ms after ".")
//! chunk_ms = 200       # longest audio chunk handed to the host
//! trim_silence = true  # drop the silence espeak-ng puts before and after the speech
//! prespawn = true      # keep an espeak-ng process started, waiting for the next text
//! ```

use std::ops::RangeInclusive;

use plugin_api::prelude::*;
use serde::Deserialize;

use crate::engine::{Espeak, VoiceOrigin};

/// Accepted `rate` values, in words per minute (espeak-ng clamps below 80 anyway).
pub const RATE_RANGE: RangeInclusive<u32> = 80..=450;
/// Accepted `pitch` values.
pub const PITCH_RANGE: RangeInclusive<u32> = 0..=99;
/// Accepted `amplitude` values.
pub const AMPLITUDE_RANGE: RangeInclusive<u32> = 0..=200;
/// Accepted `gap_ms` values.
pub const GAP_RANGE: RangeInclusive<u32> = 0..=5_000;
/// Accepted `chunk_ms` values.
pub const CHUNK_RANGE: RangeInclusive<u32> = 20..=5_000;

/// Settings of an `espeak` text-to-speech provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Default voice: an espeak-ng voice or language (`en-us`, `en-gb`, `de`), optionally with a
    /// variant (`en-us+f3`).
    pub voice: String,
    /// Speaking rate in words per minute.
    pub rate: u32,
    /// Base pitch, 0 to 99.
    pub pitch: u32,
    /// Amplitude (volume), 0 to 200.
    pub amplitude: u32,
    /// The espeak-ng program: a name looked up on `PATH`, or a path.
    pub binary: String,
    /// Silence between sentences in milliseconds; unset keeps espeak-ng's own pause, which
    /// depends on the punctuation (about 300 ms after a period, 225 ms after a semicolon).
    pub gap_ms: Option<u32>,
    /// Longest chunk handed to the host, in milliseconds of audio.
    pub chunk_ms: u32,
    /// Whether to drop the silence espeak-ng adds before the speech (12 ms) and after the
    /// last sentence (300 ms).
    pub trim_silence: bool,
    /// Whether to start espeak-ng processes before they are needed: one waiting for the next
    /// synthesis (with the default voice) and, during a synthesis, one for the next sentence.
    /// Saves espeak-ng's start-up (about 8 ms) per sentence; costs one idle process (~8 MB).
    pub prespawn: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            voice: "en-us".into(),
            rate: 175,
            pitch: 50,
            amplitude: 100,
            binary: "espeak-ng".into(),
            gap_ms: None,
            chunk_ms: 200,
            trim_silence: true,
            prespawn: true,
        }
    }
}

impl Settings {
    /// Parses and range-checks settings, without looking for the program.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        plugin_api::settings::parse(text).map_err(PluginError::from)
    }

    /// Finds the program and checks that it accepts the configured voice.
    pub fn engine(&self) -> Result<Espeak, PluginError> {
        let engine = Espeak::locate(&self.binary)?;
        engine
            .check_voice(&self.voice)
            .map_err(|e| e.into_plugin_error(VoiceOrigin::Settings))?;
        Ok(engine)
    }
}

impl PluginSettings for Settings {
    fn check(&self) -> Result<(), SettingsError> {
        check_voice_name(&self.voice).map_err(|why| SettingsError::new("voice", why))?;
        in_range("rate", self.rate, RATE_RANGE, " words per minute")?;
        in_range("pitch", self.pitch, PITCH_RANGE, "")?;
        in_range("amplitude", self.amplitude, AMPLITUDE_RANGE, "")?;
        if let Some(gap) = self.gap_ms {
            in_range("gap_ms", gap, GAP_RANGE, " ms")?;
        }
        in_range("chunk_ms", self.chunk_ms, CHUNK_RANGE, " ms")?;
        if self.binary.trim().is_empty() {
            return Err(SettingsError::new("binary", "must not be empty"));
        }
        Ok(())
    }

    /// `check-config`: the program is there and knows the voice.
    fn check_environment(&self) -> Result<(), PluginError> {
        self.engine().map(|_| ())
    }
}

fn in_range(
    key: &str,
    value: u32,
    range: RangeInclusive<u32>,
    unit: &str,
) -> Result<(), SettingsError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(SettingsError::new(
            key,
            format!(
                "must be between {} and {}{unit}, got {value}",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// Checks that `voice` looks like an espeak-ng voice name (`en-us`, `gmw/en-US`, `en+f3`), so
/// that nothing else reaches its command line. Returns why not.
pub fn check_voice_name(voice: &str) -> Result<(), String> {
    if voice.is_empty() {
        return Err("must not be empty".into());
    }
    if voice.len() > 64 {
        return Err(format!("is too long ({} bytes, at most 64)", voice.len()));
    }
    if voice.starts_with('-') {
        return Err(format!("must not start with `-`, got `{voice}`"));
    }
    if let Some(bad) = voice
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '/' | '.')))
    {
        return Err(format!(
            "may only hold letters, digits and `-_+/.`, got `{voice}` (with `{bad}`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_settings_are_the_defaults() {
        assert_eq!(Settings::parse("").unwrap(), Settings::default());
        let s = Settings::parse("voice = \"en-gb\"\nrate = 200\ngap_ms = 100").unwrap();
        assert_eq!(s.voice, "en-gb");
        assert_eq!(s.rate, 200);
        assert_eq!(s.gap_ms, Some(100));
        assert_eq!(s.pitch, 50);
    }

    #[test]
    fn out_of_range_values_name_the_key_and_range() {
        for (text, key, range) in [
            ("rate = 79", "rate", "80 and 450"),
            ("rate = 451", "rate", "80 and 450"),
            ("pitch = 100", "pitch", "0 and 99"),
            ("amplitude = 201", "amplitude", "0 and 200"),
            ("gap_ms = 9000", "gap_ms", "0 and 5000"),
            ("chunk_ms = 5", "chunk_ms", "20 and 5000"),
        ] {
            let err = Settings::parse(text).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Config, "{text}");
            assert!(err.message().contains(key), "{text}: {}", err.message());
            assert!(err.message().contains(range), "{text}: {}", err.message());
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused() {
        let err = Settings::parse("speed = 200").unwrap_err();
        assert!(err.message().contains("speed"), "{}", err.message());
        let err = Settings::parse("rate = \"fast\"").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        let err = Settings::parse("pitch = -1").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
    }

    #[test]
    fn voice_names_are_restricted() {
        for good in ["en-us", "en-us+f3", "gmw/en-US", "mb-en1", "en_GB"] {
            check_voice_name(good).unwrap();
        }
        for bad in ["", "-x", "en us", "en;rm", &"a".repeat(65)] {
            assert!(check_voice_name(bad).is_err(), "{bad:?}");
        }
        let err = Settings::parse("voice = \"--help\"").unwrap_err();
        assert!(err.message().contains("voice"), "{}", err.message());
    }
}
