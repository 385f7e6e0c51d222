//! `vintage`: a plugin written and built against openclaw-plugin-api 0.1.0 exactly as it was
//! released. It must keep loading and working in every later 0.1.x host.
//!
//! Speech-to-text answers with the utterance's length and sum, like the fault plugin's `ok`
//! mode; text-to-speech makes a 440 Hz tone, 100 ms per word, in 20 ms chunks.

use plugin_api::abi::{
    AudioChunk, Pcm16kMono, PluginError, SynthesisOptions, TranscribeOptions, Transcript, Voice,
};
use plugin_api::sdk::{
    AudioStream, CancelToken, PluginDefinition, SpeechToText, TextToSpeech, VecStream,
};

struct Counter;

impl SpeechToText for Counter {
    fn transcribe(
        &self,
        audio: Pcm16kMono<'_>,
        _: &TranscribeOptions,
    ) -> Result<Transcript, PluginError> {
        let samples = audio.as_slice();
        let sum: i64 = samples.iter().map(|&s| i64::from(s)).sum();
        Ok(Transcript::new(format!(
            "vintage heard {} samples, sum {sum}",
            samples.len()
        )))
    }
}

struct Tone;

impl TextToSpeech for Tone {
    fn synthesize(
        &self,
        text: &str,
        _: &SynthesisOptions,
        _: CancelToken,
    ) -> Result<Box<dyn AudioStream>, PluginError> {
        let words = text.split_whitespace().count().max(1);
        let total = words * 1_600;
        let samples: Vec<i16> = (0..total)
            .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin() * 8_000.0) as i16)
            .collect();
        let chunks = samples
            .chunks(320)
            .map(|c| AudioChunk::new(c.to_vec(), 16_000))
            .collect();
        Ok(Box::new(VecStream::new(chunks)))
    }

    fn voices(&self) -> Result<Vec<Voice>, PluginError> {
        Ok(vec![Voice::new("a440", "A 440 Hz tone")])
    }
}

fn definition() -> PluginDefinition {
    PluginDefinition::new("vintage", env!("CARGO_PKG_VERSION"))
        .description("Built against plugin-api 0.1.0")
        .speech_to_text(|_: &str| Ok(Counter))
        .text_to_speech(|_: &str| Ok(Tone))
}

plugin_api::export_plugin!(definition);
