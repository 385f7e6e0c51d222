//! `keyword`: an example speech-to-text plugin that needs no model. It splits the audio into
//! 20 ms frames, finds the bursts of speech by their loudness, and transcribes each burst as
//! the configured keyword ("hello hello" for two bursts).
//!
//! It shows what an STT plugin has: typed settings checked by the SDK, `transcribe`, a
//! streaming transcription with partial results, and tests with the SDK's test kit. Copy this
//! crate to start a speech-to-text plugin (or run `openclaw-voice plugins new NAME --stt`).

use plugin_api::prelude::*;
use serde::Deserialize;

/// Settings, from the provider's `settings` table in the host config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// The word each burst of speech is transcribed as.
    keyword: String,
    /// Loudness (RMS of a 20 ms frame, 0 to 32767) above which a frame is speech.
    threshold: u16,
    /// Shortest burst counted, in milliseconds.
    min_burst_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            keyword: "hello".into(),
            threshold: 500,
            min_burst_ms: 100,
        }
    }
}

impl PluginSettings for Settings {
    fn check(&self) -> Result<(), SettingsError> {
        if self.keyword.trim().is_empty() {
            return Err(SettingsError::new("keyword", "must not be empty"));
        }
        if self.min_burst_ms < FRAME_MS {
            return Err(SettingsError::new(
                "min_burst_ms",
                format!("must be at least {FRAME_MS} (one frame)"),
            ));
        }
        Ok(())
    }
}

/// Frame length in milliseconds, and in samples at 16 kHz.
const FRAME_MS: u32 = 20;
const FRAME: usize = (STT_SAMPLE_RATE / 1000 * FRAME_MS) as usize;

/// The speech-to-text provider.
struct Keyword {
    settings: Settings,
}

impl Keyword {
    /// The number of bursts of speech in `samples`.
    fn bursts(&self, samples: &[i16]) -> usize {
        let min_frames = (self.settings.min_burst_ms / FRAME_MS) as usize;
        let (mut bursts, mut run) = (0, 0);
        for frame in samples.chunks(FRAME) {
            let energy = frame.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
            let rms = (energy / frame.len() as f64).sqrt();
            if rms >= f64::from(self.settings.threshold) {
                run += 1;
                if run == min_frames {
                    bursts += 1;
                }
            } else {
                run = 0;
            }
        }
        bursts
    }

    fn text(&self, samples: &[i16]) -> String {
        vec![self.settings.keyword.as_str(); self.bursts(samples)].join(" ")
    }
}

impl SpeechToText for Keyword {
    fn transcribe(
        &self,
        audio: Pcm16kMono<'_>,
        _options: &TranscribeOptions,
    ) -> Result<Transcript, PluginError> {
        let text = self.text(audio.as_slice());
        log::debug!("{} ms of audio: {text:?}", audio.duration_ms());
        Ok(Transcript::new(text))
    }

    fn start_stream(
        &self,
        _options: &TranscribeOptions,
        cancel: CancelToken,
    ) -> Result<Option<Box<dyn TranscriptionStream>>, PluginError> {
        Ok(Some(Box::new(Listening {
            provider: Keyword {
                settings: self.settings.clone(),
            },
            samples: Vec::new(),
            cancel,
        })))
    }
}

/// A streaming transcription: the audio so far, with a partial transcript after each push.
struct Listening {
    provider: Keyword,
    samples: Vec<i16>,
    cancel: CancelToken,
}

impl TranscriptionStream for Listening {
    fn push(&mut self, samples: &[i16]) -> Result<Option<PartialTranscript>, PluginError> {
        if self.cancel.is_cancelled() {
            return Err(PluginError::invalid_input("the stream was cancelled"));
        }
        self.samples.extend_from_slice(samples);
        let audio_ms = (self.samples.len() * 1000 / STT_SAMPLE_RATE as usize) as u32;
        Ok(Some(PartialTranscript::new(
            self.provider.text(&self.samples),
            audio_ms,
        )))
    }

    fn finish(&mut self) -> Result<DetailedTranscript, PluginError> {
        Ok(Transcript::new(self.provider.text(&self.samples)).into())
    }
}

fn definition() -> PluginDefinition {
    PluginDefinition::new("keyword", env!("CARGO_PKG_VERSION"))
        .description("Example speech-to-text that transcribes each burst of speech as a keyword")
        .capabilities(Capabilities::new().streaming(true).sample_rates([16_000]))
        .stt(|settings: Settings| Ok(Keyword { settings }))
}

plugin_api::export_plugin!(definition);

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::TestPlugin;

    /// `bursts` bursts of a 440 Hz tone, 300 ms each, 300 ms apart.
    fn speech(bursts: usize) -> Vec<i16> {
        let mut samples = Vec::new();
        for _ in 0..bursts {
            samples.extend((0..4_800).map(|n| {
                let t = n as f32 / 16_000.0;
                ((t * 440.0 * std::f32::consts::TAU).sin() * 8_000.0) as i16
            }));
            samples.extend(std::iter::repeat_n(0, 4_800));
        }
        samples
    }

    #[test]
    fn behaves_as_the_host_expects() {
        TestPlugin::new(definition).check_stt("").unwrap();
    }

    #[test]
    fn each_burst_is_one_keyword() {
        let plugin = TestPlugin::new(definition);
        let stt = plugin.stt("keyword = \"ping\"").unwrap();
        let options = TranscribeOptions::default();
        assert_eq!(
            stt.transcribe(&speech(3), &options).unwrap().text(),
            "ping ping ping"
        );
        assert_eq!(stt.transcribe(&[0; 16_000], &options).unwrap().text(), "");
    }

    #[test]
    fn a_stream_gives_partials_and_the_final_text() {
        let plugin = TestPlugin::new(definition);
        let stt = plugin.stt("").unwrap();
        let stream = stt
            .start_stream(&TranscribeOptions::default())
            .unwrap()
            .unwrap();
        let audio = speech(2);
        let partial = stream.push(&audio[..9_600]).unwrap().unwrap();
        assert_eq!((partial.text.as_str(), partial.audio_ms), ("hello", 600));
        stream.push(&audio[9_600..]).unwrap();
        assert_eq!(stream.finish().unwrap().transcript.text(), "hello hello");
    }

    #[test]
    fn bad_settings_name_their_key() {
        let plugin = TestPlugin::new(definition);
        let err = plugin
            .validate_config(Role::SpeechToText, "min_burst_ms = 5")
            .unwrap_err();
        assert!(err.message().starts_with("setting `min_burst_ms`"), "{err}");
        let err = plugin
            .validate_config(Role::SpeechToText, "threshold = -1")
            .unwrap_err();
        assert!(err.message().starts_with("setting `threshold`"), "{err}");
    }
}
