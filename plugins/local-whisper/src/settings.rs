//! Provider settings: the `settings` table of a `local-whisper` provider in the host config,
//! parsed and checked without touching the model.
//!
//! ```toml
//! [providers.local-whisper.settings]
//! model_name = "tiny.en"          # model = "models/ggml-tiny.en.bin" by default
//! threads = 1
//! beam_size = 0                   # 0 = greedy
//! audio_ctx = "auto"              # or "full", or a number of encoder frames (20 ms each)
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use plugin_api::prelude::*;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The encoder frames Whisper has per 30 s window (one per 20 ms of audio).
pub const FULL_AUDIO_CTX: u32 = 1500;
/// The smallest `audio_ctx` accepted: below this tiny models lose too much context.
pub const MIN_AUDIO_CTX: u32 = 64;
/// `audio_ctx = "auto"` uses multiples of this many frames (5.12 s).
pub const AUTO_STEP: u32 = 256;
/// Frames of margin `audio_ctx = "auto"` adds after the utterance (1 s).
const AUTO_MARGIN: u64 = 50;

/// How much of the 30 s encoder window to compute for an utterance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCtx {
    /// The whole 30 s window, as Whisper was trained (1500 frames).
    Full,
    /// Frames in proportion to the utterance's length plus a margin, in steps of 256 (see
    /// [`AudioCtx::frames`]).
    Auto,
    /// A fixed number of frames (20 ms each), from [`MIN_AUDIO_CTX`] to [`FULL_AUDIO_CTX`];
    /// utterances longer than that are cut. Multiples of 256 behaved best.
    Fixed(u32),
}

impl AudioCtx {
    /// The `audio_ctx` to hand whisper.cpp for `duration_ms` of audio; `0` means "full".
    ///
    /// `Auto` covers the utterance (one frame per 20 ms) plus 1 s of margin, rounded up to a
    /// multiple of [`AUTO_STEP`] frames; utterances too long for that get the full window. On
    /// the benchmark clips this transcribed as well as the full window (better, in fact) at
    /// about a tenth of the time, while finer steps (64 frames) made Whisper repeat or drop
    /// sentences (see docs/BENCHMARKS.md).
    pub fn frames(self, duration_ms: u64) -> u32 {
        match self {
            AudioCtx::Full => 0,
            AudioCtx::Fixed(n) => n,
            AudioCtx::Auto => {
                let needed = duration_ms.div_ceil(20) + AUTO_MARGIN;
                let step = u64::from(AUTO_STEP);
                let rounded = needed.div_ceil(step).max(1) * step;
                match u32::try_from(rounded) {
                    Ok(frames) if frames < FULL_AUDIO_CTX => frames,
                    _ => 0,
                }
            }
        }
    }
}

impl fmt::Display for AudioCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioCtx::Full => f.write_str("full"),
            AudioCtx::Auto => f.write_str("auto"),
            AudioCtx::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for AudioCtx {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AudioCtxVisitor;

        impl Visitor<'_> for AudioCtxVisitor {
            type Value = AudioCtx;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "\"full\", \"auto\" or a number of frames from {MIN_AUDIO_CTX} to {FULL_AUDIO_CTX}"
                )
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<AudioCtx, E> {
                match value {
                    "full" => Ok(AudioCtx::Full),
                    "auto" => Ok(AudioCtx::Auto),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<AudioCtx, E> {
                match u32::try_from(value) {
                    Ok(n) if (MIN_AUDIO_CTX..=FULL_AUDIO_CTX).contains(&n) => {
                        Ok(AudioCtx::Fixed(n))
                    }
                    _ => Err(E::invalid_value(de::Unexpected::Signed(value), &self)),
                }
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<AudioCtx, E> {
                match i64::try_from(value) {
                    Ok(v) => self.visit_i64(v),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Unsigned(value), &self)),
                }
            }
        }

        deserializer.deserialize_any(AudioCtxVisitor)
    }
}

/// Settings of a `local-whisper` provider. Every key is optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Path to a whisper.cpp ggml model; relative paths resolve against the current directory.
    /// Default: `models/ggml-<model_name>.bin`.
    pub model: Option<PathBuf>,
    /// The model's name (`tiny.en`, `base.en`, `small.en`…), used for the default path and in
    /// the hint on how to fetch it.
    pub model_name: String,
    /// CPU threads per transcription. On busy 2-core machines 2 threads were 10–20× slower
    /// than 1 (ggml's threads spin-wait for each other), and 1 leaves a core for the rest of
    /// the host (see docs/BENCHMARKS.md).
    pub threads: u32,
    /// Beam width; 0 decodes greedily (the default: the same words as faster-whisper's greedy
    /// decoding on the benchmark clips; a 5-wide beam is more accurate for ~1.6× the CPU).
    pub beam_size: u32,
    /// Language code (`en`), or `auto` to detect it (multilingual models only).
    pub language: String,
    /// Text that primes the decoder on every call (names, vocabulary). A per-call prompt from
    /// the host is used instead when one is given.
    pub initial_prompt: Option<String>,
    /// How much of the encoder window to compute: `full`, `auto` (in proportion to the
    /// utterance) or a number of frames.
    pub audio_ctx: AudioCtx,
    /// How many transcriptions may run at once: the most decoder states the provider makes.
    /// One is made at load; another only when a call finds every state made so far busy for
    /// `pool_grow_after_ms` (with tiny.en each is ~23 MB: the process holds 126 MB with one,
    /// 148 MB with two). Further calls wait for a free one; if a state cannot be made, the
    /// pool stops growing there.
    pub pool_size: u32,
    /// How long a call that finds every decoder state busy waits for one to come back before
    /// making another (while fewer than `pool_size` exist), in ms. 0 makes a state at once:
    /// the OpenClaw host never overlaps one speaker's calls (a speculation it threw away is
    /// decoded to its end before that speaker's next call starts), so overlapping calls are
    /// different speakers', which should not wait. A host that does overlap one speaker's
    /// calls can trade latency for memory here (a second state is ~37 MB with tiny.en once
    /// two decodes run). Default: 0 (docs/BENCHMARKS.md, "Turn taking" → "Memory").
    pub pool_grow_after_ms: u32,
    /// Whisper's no-speech probability above which a low-confidence result counts as silence.
    pub no_speech_threshold: f32,
    /// Utterances quieter than this (RMS, in dBFS) are empty without running the model.
    pub silence_threshold_dbfs: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            model_name: "tiny.en".into(),
            threads: 1,
            beam_size: 0,
            language: "en".into(),
            initial_prompt: None,
            audio_ctx: AudioCtx::Auto,
            pool_size: 2,
            pool_grow_after_ms: 0,
            no_speech_threshold: 0.6,
            silence_threshold_dbfs: -60.0,
        }
    }
}

/// The largest accepted `threads`, `beam_size` and `pool_size`.
const MAX_THREADS: u32 = 64;
const MAX_BEAM: u32 = 16;
const MAX_POOL: u32 = 16;
/// The largest accepted `pool_grow_after_ms` (10 s).
const MAX_GROW_AFTER_MS: u32 = 10_000;

impl Settings {
    /// Parses and checks settings (TOML text). Does not look at the model file.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        plugin_api::settings::parse(text).map_err(PluginError::from)
    }

    /// The model name a missing file is fetched by: from `model`'s file name when it is set
    /// (`ggml-base.en.bin` → `base.en`; empty when the name says nothing), else `model_name`.
    pub fn fetch_name(&self) -> String {
        let Some(path) = &self.model else {
            return self.model_name.clone();
        };
        path.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("ggml-")?.strip_suffix(".bin"))
            .unwrap_or_default()
            .to_string()
    }

    /// Where the model file is: `model`, or `models/ggml-<model_name>.bin`, made absolute
    /// against the current directory.
    pub fn model_path(&self) -> PathBuf {
        let path = match &self.model {
            Some(path) => path.clone(),
            None => Path::new("models").join(format!("ggml-{}.bin", self.model_name)),
        };
        if path.is_absolute() {
            return path;
        }
        match std::env::current_dir() {
            Ok(dir) => dir.join(path),
            Err(_) => path,
        }
    }

    /// The language to force, or `None` to detect it.
    pub fn forced_language(&self) -> Option<&str> {
        (self.language != "auto").then_some(self.language.as_str())
    }
}

impl PluginSettings for Settings {
    fn check(&self) -> Result<(), SettingsError> {
        let bad = |key: &str, msg: String| Err(SettingsError::new(key, msg));
        if self.model_name.is_empty()
            || !self
                .model_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            || self.model_name.starts_with('.')
        {
            return bad(
                "model_name",
                format!(
                    "`{}` is not a model name like `tiny.en` (letters, digits, `.`, `-`, `_`)",
                    self.model_name
                ),
            );
        }
        if self.model.as_deref() == Some(Path::new("")) {
            return bad(
                "model",
                "is empty; leave it out to use models/ggml-<model_name>.bin".into(),
            );
        }
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return bad(
                "threads",
                format!("must be between 1 and {MAX_THREADS}, got {}", self.threads),
            );
        }
        if self.beam_size > MAX_BEAM {
            return bad(
                "beam_size",
                format!("must be 0 (greedy) to {MAX_BEAM}, got {}", self.beam_size),
            );
        }
        if !(1..=MAX_POOL).contains(&self.pool_size) {
            return bad(
                "pool_size",
                format!("must be between 1 and {MAX_POOL}, got {}", self.pool_size),
            );
        }
        if self.pool_grow_after_ms > MAX_GROW_AFTER_MS {
            return bad(
                "pool_grow_after_ms",
                format!(
                    "must be 0 to {MAX_GROW_AFTER_MS} ms, got {}",
                    self.pool_grow_after_ms
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.no_speech_threshold) {
            return bad(
                "no_speech_threshold",
                format!("must be between 0 and 1, got {}", self.no_speech_threshold),
            );
        }
        if !(-120.0..=0.0).contains(&self.silence_threshold_dbfs) {
            return bad(
                "silence_threshold_dbfs",
                format!(
                    "must be between -120 and 0, got {}",
                    self.silence_threshold_dbfs
                ),
            );
        }
        check_language(&self.language).map_err(|e| SettingsError::new("language", e.message()))
    }

    /// `check-config`: the model file is there (it is not loaded).
    fn check_environment(&self) -> Result<(), PluginError> {
        let path = self.model_path();
        crate::model::check_file(&path, &self.fetch_name())?;
        // Without loading it: an English-only model says so in its name (`ggml-tiny.en.bin`).
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
        let english_only = self.model_name.ends_with(".en")
            || file.is_some_and(|f| f.contains(".en.") || f.ends_with(".en"));
        if english_only && self.language != "en" {
            return Err(PluginError::config(format!(
                "language = \"{}\" needs a multilingual model, but {} is English-only (`.en`); \
                 use a model without `.en` in its name, or language = \"en\"",
                self.language,
                path.display()
            )));
        }
        Ok(())
    }
}

/// Checks a language code against whisper.cpp's table; `auto` is accepted too.
pub fn check_language(language: &str) -> Result<(), PluginError> {
    if language == "auto" || whisper_rs::get_lang_id(language).is_some() {
        Ok(())
    } else {
        Err(PluginError::config(format!(
            "language `{language}` is not one Whisper knows; use a code such as `en`, `de`, \
             or `auto`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_greedy_one_thread_auto_ctx() {
        let s = Settings::parse("").unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.threads, 1);
        assert_eq!(s.beam_size, 0);
        assert_eq!(s.audio_ctx, AudioCtx::Auto);
        assert_eq!(s.language, "en");
        assert!(s
            .model_path()
            .ends_with(Path::new("models/ggml-tiny.en.bin")));
        assert!(s.model_path().is_absolute());
    }

    #[test]
    fn the_fetch_hint_follows_the_model_file_not_the_default_name() {
        let s = Settings::parse("model = \"/m/ggml-base.en.bin\"").unwrap();
        assert_eq!(s.fetch_name(), "base.en");
        let s = Settings::parse("model = \"/m/whisper-small.bin\"").unwrap();
        assert_eq!(s.fetch_name(), "");
        let message = crate::model::check_file(&s.model_path(), &s.fetch_name())
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(!message.contains("fetch it with"), "{message}");
        assert!(
            message.contains("set `model` to the path of a ggml Whisper model"),
            "{message}"
        );
        assert_eq!(Settings::parse("").unwrap().fetch_name(), "tiny.en");
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let err = Settings::parse("thread = 2").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err.message().contains("thread"), "{}", err.message());
    }

    #[test]
    fn audio_ctx_accepts_full_auto_and_frames() {
        assert_eq!(
            Settings::parse("audio_ctx = \"full\"").unwrap().audio_ctx,
            AudioCtx::Full
        );
        assert_eq!(
            Settings::parse("audio_ctx = 768").unwrap().audio_ctx,
            AudioCtx::Fixed(768)
        );
        for bad in ["audio_ctx = \"half\"", "audio_ctx = 10", "audio_ctx = 1501"] {
            let err = Settings::parse(bad).unwrap_err();
            assert!(err.message().contains("audio_ctx"), "{}", err.message());
        }
    }

    #[test]
    fn auto_audio_ctx_covers_the_utterance() {
        let auto = AudioCtx::Auto;
        // 3 s = 150 frames, + 50 margin = 200 -> 256.
        assert_eq!(auto.frames(3_000), 256);
        assert_eq!(auto.frames(0), 256);
        assert_eq!(auto.frames(4_100), 256);
        assert_eq!(auto.frames(4_200), 512);
        for ms in [500, 1_000, 2_345, 5_000, 12_000, 24_000] {
            let frames = auto.frames(ms);
            assert!(u64::from(frames) * 20 >= ms + 1_000, "{ms}");
            assert_eq!(frames % AUTO_STEP, 0);
        }
        assert_eq!(auto.frames(25_000), 0);
        assert_eq!(auto.frames(120_000), 0);
        assert_eq!(AudioCtx::Full.frames(3_000), 0);
        assert_eq!(AudioCtx::Fixed(512).frames(3_000), 512);
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        for (text, key) in [
            ("threads = 0", "threads"),
            ("beam_size = 99", "beam_size"),
            ("pool_size = 0", "pool_size"),
            ("pool_grow_after_ms = 10001", "pool_grow_after_ms"),
            ("no_speech_threshold = 1.5", "no_speech_threshold"),
            ("silence_threshold_dbfs = 3.0", "silence_threshold_dbfs"),
            ("model_name = \"../etc\"", "model_name"),
            ("model = \"\"", "model"),
            ("threads = -1", "threads"),
        ] {
            let err = Settings::parse(text).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Config);
            assert!(err.message().contains(key), "{text}: {}", err.message());
        }
    }

    #[test]
    fn languages_are_checked() {
        assert!(Settings::parse("language = \"de\"").is_ok());
        assert_eq!(
            Settings::parse("language = \"auto\"")
                .unwrap()
                .forced_language(),
            None
        );
        let err = Settings::parse("language = \"klingon\"").unwrap_err();
        assert!(err.message().contains("klingon"), "{}", err.message());
    }

    #[test]
    fn explicit_model_path_wins() {
        let s = Settings::parse("model = \"/opt/m/ggml-base.en.bin\"").unwrap();
        assert_eq!(s.model_path(), PathBuf::from("/opt/m/ggml-base.en.bin"));
        let s = Settings::parse("model_name = \"base.en\"").unwrap();
        assert!(s.model_path().ends_with("models/ggml-base.en.bin"));
    }
}
