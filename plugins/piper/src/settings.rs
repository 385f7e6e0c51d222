//! The provider's settings (`[providers.<id>.settings]`), parsed and checked without touching
//! the voice files, so `check-config` can call it.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `voice` | required | a Piper voice: the path of its `.onnx` file, or a name such as `en_US-joe-medium` looked up in the models directory (`make model`) |
//! | `config` | `<voice>.json` | the voice's `.onnx.json` |
//! | `speaker` | the voice's default | speaker of a multi-speaker voice: a number or a name from its `speaker_id_map` |
//! | `length_scale` | the voice's (1.0) | speaking time: above 1 slower, below 1 faster |
//! | `noise_scale` | the voice's (0.667) | generator noise (expressiveness) |
//! | `noise_w` | the voice's (0.8) | phoneme length noise (rhythm variation) |
//! | `threads` | 1 | ONNX Runtime threads per synthesis |
//! | `espeak_binary` | `espeak-ng` | the espeak-ng program that phonemizes |
//! | `onnxruntime` | found | `libonnxruntime.so`; else `$OPENCLAW_ONNXRUNTIME`, `$ORT_DYLIB_PATH`, the models directory |
//! | `chunk_ms` | 200 | longest audio chunk handed to the host |
//! | `sentence_silence_ms` | 0 | silence after each sentence but the last (piper-tts `--sentence-silence`) |

use std::path::PathBuf;

use plugin_api::abi::PluginError;
use serde::Deserialize;

/// Highest thread count accepted.
pub const MAX_THREADS: u32 = 64;

/// A speaker of a multi-speaker voice: by number or by name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Speaker {
    /// The speaker id.
    Id(i64),
    /// A name from the voice's `speaker_id_map`.
    Name(String),
}

/// Parsed settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The `.onnx` file, or a voice name in the models directory.
    pub voice: String,
    /// The `.onnx.json` file.
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// Speaker of a multi-speaker voice.
    #[serde(default)]
    pub speaker: Option<Speaker>,
    /// Overrides the voice's `length_scale`.
    #[serde(default)]
    pub length_scale: Option<f32>,
    /// Overrides the voice's `noise_scale`.
    #[serde(default)]
    pub noise_scale: Option<f32>,
    /// Overrides the voice's `noise_w`.
    #[serde(default)]
    pub noise_w: Option<f32>,
    /// ONNX Runtime threads.
    #[serde(default = "default_threads")]
    pub threads: u32,
    /// The espeak-ng program.
    #[serde(default = "default_espeak")]
    pub espeak_binary: String,
    /// The ONNX Runtime library.
    #[serde(default)]
    pub onnxruntime: Option<PathBuf>,
    /// Longest chunk, in milliseconds.
    #[serde(default = "default_chunk_ms")]
    pub chunk_ms: u32,
    /// Silence after each sentence but the last, in milliseconds.
    #[serde(default)]
    pub sentence_silence_ms: u32,
}

fn default_threads() -> u32 {
    1
}

fn default_espeak() -> String {
    "espeak-ng".into()
}

fn default_chunk_ms() -> u32 {
    200
}

impl Settings {
    /// Parses and checks the settings text (TOML).
    pub fn parse(text: &str) -> Result<Settings, PluginError> {
        let settings: Settings = plugin_api::sdk::parse_settings(text)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), PluginError> {
        if self.voice.trim().is_empty() {
            return Err(PluginError::config(
                "`voice` must name a Piper voice (`en_US-joe-medium`) or its .onnx file",
            ));
        }
        for (key, value, max) in [
            ("length_scale", self.length_scale, 10.0),
            ("noise_scale", self.noise_scale, 2.0),
            ("noise_w", self.noise_w, 2.0),
        ] {
            if let Some(v) = value {
                let positive = key == "length_scale";
                if !v.is_finite() || v > max || v < 0.0 || (positive && v == 0.0) {
                    return Err(PluginError::config(format!(
                        "`{key}` = {v} is out of range ({} to {max})",
                        if positive { "above 0" } else { "0" }
                    )));
                }
            }
        }
        if self.threads == 0 || self.threads > MAX_THREADS {
            return Err(PluginError::config(format!(
                "`threads` = {} is out of range (1 to {MAX_THREADS})",
                self.threads
            )));
        }
        if !(20..=5000).contains(&self.chunk_ms) {
            return Err(PluginError::config(format!(
                "`chunk_ms` = {} is out of range (20 to 5000)",
                self.chunk_ms
            )));
        }
        if self.sentence_silence_ms > 5000 {
            return Err(PluginError::config(format!(
                "`sentence_silence_ms` = {} is out of range (0 to 5000)",
                self.sentence_silence_ms
            )));
        }
        Ok(())
    }

    /// The voice's `.onnx` file: `voice` itself when it names a file (has a `/` or ends in
    /// `.onnx`), else `<models dir>/<voice>.onnx`.
    pub fn model_path(&self) -> Result<PathBuf, PluginError> {
        let voice = self.voice.trim();
        if voice.contains('/') || voice.ends_with(".onnx") {
            return Ok(PathBuf::from(voice));
        }
        let dir = openclaw_onnx::models_dir().ok_or_else(|| {
            PluginError::config(format!(
                "`voice` = \"{voice}\" is a name, but there is no models directory \
                 (set OPENCLAW_MODELS_DIR or HOME), so give the .onnx file's path"
            ))
        })?;
        Ok(dir.join(format!("{voice}.onnx")))
    }

    /// The voice's `.onnx.json`: `config`, else the model path with `.json` appended.
    pub fn config_path(&self) -> Result<PathBuf, PluginError> {
        if let Some(config) = &self.config {
            return Ok(config.clone());
        }
        let mut path = self.model_path()?.into_os_string();
        path.push(".json");
        Ok(PathBuf::from(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_paths() {
        let s = Settings::parse("voice = \"/v/en_US-joe-medium.onnx\"").unwrap();
        assert_eq!(s.threads, 1);
        assert_eq!(s.chunk_ms, 200);
        assert_eq!(s.espeak_binary, "espeak-ng");
        assert_eq!(
            s.config_path().unwrap(),
            PathBuf::from("/v/en_US-joe-medium.onnx.json")
        );
        let s = Settings::parse("voice = \"en_US-joe-medium\"\nspeaker = \"joe\"").unwrap();
        assert!(s.model_path().unwrap().ends_with("en_US-joe-medium.onnx"));
        assert_eq!(s.speaker, Some(Speaker::Name("joe".into())));
        let s = Settings::parse("voice = \"x.onnx\"\nspeaker = 3").unwrap();
        assert_eq!(s.speaker, Some(Speaker::Id(3)));
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (text, key) in [
            ("", "voice"),
            ("voice = \" \"", "voice"),
            ("voice = \"a.onnx\"\nlength_scale = 0.0", "length_scale"),
            ("voice = \"a.onnx\"\nnoise_scale = -1.0", "noise_scale"),
            ("voice = \"a.onnx\"\nthreads = 0", "threads"),
            ("voice = \"a.onnx\"\nchunk_ms = 1", "chunk_ms"),
            (
                "voice = \"a.onnx\"\nsentence_silence_ms = 9000",
                "sentence_silence_ms",
            ),
            ("voice = \"a.onnx\"\nvoise = 1", "voise"),
        ] {
            let e = Settings::parse(text).unwrap_err();
            assert!(e.message().contains(key), "{text}: {}", e.message());
        }
    }
}
