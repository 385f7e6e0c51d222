//! A Piper voice's `.onnx.json`: sample rate, espeak-ng voice, inference defaults, speakers,
//! and the phoneme-id map that turns a sentence's phonemes into the model's input, exactly as
//! piper-tts does (`phonemes_to_ids`: `^`, `_`, then each phoneme's ids followed by `_`, then
//! `$`; phonemes missing from the map are dropped).

use std::collections::HashMap;
use std::path::Path;

use plugin_api::abi::PluginError;
use serde::Deserialize;

use crate::settings::Speaker;

/// Beginning of sentence.
const BOS: &str = "^";
/// End of sentence.
const EOS: &str = "$";
/// Padding between phonemes.
const PAD: &str = "_";

#[derive(Debug, Deserialize)]
struct RawAudio {
    sample_rate: u32,
}

#[derive(Debug, Deserialize)]
struct RawEspeak {
    voice: String,
}

#[derive(Debug, Default, Deserialize)]
struct RawInference {
    noise_scale: Option<f32>,
    length_scale: Option<f32>,
    noise_w: Option<f32>,
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    audio: RawAudio,
    espeak: RawEspeak,
    #[serde(default)]
    inference: RawInference,
    #[serde(default)]
    phoneme_type: Option<String>,
    num_speakers: u32,
    #[serde(default)]
    speaker_id_map: HashMap<String, i64>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

/// The synthesis scales fed to the model (`scales` input: noise, length, noise_w).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scales {
    /// Generator noise.
    pub noise_scale: f32,
    /// Speaking time.
    pub length_scale: f32,
    /// Phoneme length noise.
    pub noise_w: f32,
}

/// A voice's configuration, checked.
#[derive(Debug, Clone)]
pub struct VoiceConfig {
    /// Output sample rate.
    pub sample_rate: u32,
    /// The espeak-ng voice that phonemizes (e.g. `en-us`).
    pub espeak_voice: String,
    /// The voice's default scales.
    pub scales: Scales,
    /// Number of speakers (a `sid` input when above 1).
    pub num_speakers: u32,
    /// Speaker names to ids.
    pub speaker_ids: HashMap<String, i64>,
    phoneme_ids: HashMap<String, Vec<i64>>,
}

impl VoiceConfig {
    /// Reads and checks `path`. Errors are `Config` errors naming the file.
    pub fn load(path: &Path) -> Result<VoiceConfig, PluginError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            PluginError::config(format!(
                "cannot read the Piper voice config {} ({e}); it is the `.onnx.json` beside \
                 the voice (setting `config`)",
                path.display()
            ))
        })?;
        VoiceConfig::parse(&text)
            .map_err(|why| PluginError::config(format!("{}: {why}", path.display())))
    }

    /// Parses a `.onnx.json` text.
    pub fn parse(text: &str) -> Result<VoiceConfig, String> {
        let raw: RawConfig =
            serde_json::from_str(text).map_err(|e| format!("not a Piper voice config: {e}"))?;
        if let Some(kind) = raw.phoneme_type.as_deref().filter(|k| *k != "espeak") {
            return Err(format!(
                "phoneme_type `{kind}` is not supported (only espeak voices)"
            ));
        }
        for symbol in [BOS, EOS, PAD] {
            if !raw.phoneme_id_map.contains_key(symbol) {
                return Err(format!("phoneme_id_map has no `{symbol}`"));
            }
        }
        if raw.audio.sample_rate < 8000 || raw.audio.sample_rate > 96_000 {
            return Err(format!(
                "audio.sample_rate {} is implausible",
                raw.audio.sample_rate
            ));
        }
        let inference = raw.inference;
        Ok(VoiceConfig {
            sample_rate: raw.audio.sample_rate,
            espeak_voice: raw.espeak.voice,
            scales: Scales {
                noise_scale: inference.noise_scale.unwrap_or(0.667),
                length_scale: inference.length_scale.unwrap_or(1.0),
                noise_w: inference.noise_w.unwrap_or(0.8),
            },
            num_speakers: raw.num_speakers.max(1),
            speaker_ids: raw.speaker_id_map,
            phoneme_ids: raw.phoneme_id_map,
        })
    }

    /// The speaker id to feed (`None` for a single-speaker voice): the configured one, checked
    /// against the voice, else 0.
    pub fn speaker_id(&self, speaker: Option<&Speaker>) -> Result<Option<i64>, PluginError> {
        if self.num_speakers <= 1 {
            return match speaker {
                None => Ok(None),
                Some(_) => Err(PluginError::config(
                    "`speaker` is set, but this voice has a single speaker",
                )),
            };
        }
        let id = match speaker {
            None => 0,
            Some(Speaker::Id(id)) => *id,
            Some(Speaker::Name(name)) => *self.speaker_ids.get(name).ok_or_else(|| {
                let mut names: Vec<&str> = self.speaker_ids.keys().map(String::as_str).collect();
                names.sort_unstable();
                PluginError::config(format!(
                    "`speaker` = \"{name}\" is not one of this voice's speakers ({})",
                    names.join(", ")
                ))
            })?,
        };
        if id < 0 || id >= i64::from(self.num_speakers) {
            return Err(PluginError::config(format!(
                "`speaker` = {id} is out of range (this voice has speakers 0 to {})",
                self.num_speakers - 1
            )));
        }
        Ok(Some(id))
    }

    /// The model input for one sentence's phonemes (each a string: one codepoint after NFD).
    pub fn phoneme_ids<'a>(&self, phonemes: impl IntoIterator<Item = &'a str>) -> Vec<i64> {
        let map = &self.phoneme_ids;
        let pad = &map[PAD];
        let mut ids = Vec::new();
        ids.extend_from_slice(&map[BOS]);
        ids.extend_from_slice(pad);
        for phoneme in phonemes {
            if let Some(id) = map.get(phoneme) {
                ids.extend_from_slice(id);
                ids.extend_from_slice(pad);
            }
        }
        ids.extend_from_slice(&map[EOS]);
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"{"audio":{"sample_rate":22050},"espeak":{"voice":"en-us"},
        "num_speakers":1,"phoneme_id_map":{"_":[0],"^":[1],"$":[2]," ":[3],"a":[14]}}"#;

    #[test]
    fn ids_are_padded_and_unknown_phonemes_dropped() {
        let voice = VoiceConfig::parse(MINI).unwrap();
        assert_eq!(
            voice.phoneme_ids(["a", " ", "ʃ", "a"]),
            [1, 0, 14, 0, 3, 0, 14, 0, 2]
        );
        assert_eq!(voice.scales.noise_w, 0.8);
        assert_eq!(voice.speaker_id(None).unwrap(), None);
        assert!(voice.speaker_id(Some(&Speaker::Id(1))).is_err());
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        assert!(VoiceConfig::parse("{}")
            .unwrap_err()
            .contains("not a Piper voice config"));
        let no_pad = MINI.replace(r#""_":[0],"#, "");
        assert!(VoiceConfig::parse(&no_pad).unwrap_err().contains("`_`"));
        let pinyin = MINI.replace(
            r#""num_speakers""#,
            r#""phoneme_type":"pinyin","num_speakers""#,
        );
        assert!(VoiceConfig::parse(&pinyin).unwrap_err().contains("pinyin"));
    }

    #[test]
    fn speakers_by_id_and_name() {
        let multi = MINI.replace(
            r#""num_speakers":1"#,
            r#""num_speakers":3,"speaker_id_map":{"ann":2}"#,
        );
        let voice = VoiceConfig::parse(&multi).unwrap();
        assert_eq!(voice.speaker_id(None).unwrap(), Some(0));
        assert_eq!(
            voice
                .speaker_id(Some(&Speaker::Name("ann".into())))
                .unwrap(),
            Some(2)
        );
        let e = voice
            .speaker_id(Some(&Speaker::Name("bob".into())))
            .unwrap_err();
        assert!(e.message().contains("ann"), "{}", e.message());
        assert!(voice.speaker_id(Some(&Speaker::Id(3))).is_err());
    }
}
