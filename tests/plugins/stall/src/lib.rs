//! `stall`: a test plugin whose library misbehaves while it is being loaded, before any
//! provider setting can say so. Environment variables choose what it does:
//!
//! - `OPENCLAW_STALL_MARKER=PATH`: its ELF initialiser (run by `dlopen`, before any plugin
//!   code is called) appends a line to `PATH`, so a test can prove the library was never
//!   opened (a mismatched `sha256`, a library no provider uses).
//! - `OPENCLAW_STALL_LOAD_MS=N`: the initialiser sleeps N ms (a slow load).
//! - `OPENCLAW_STALL_INFO_MS=N`: describing the plugin (`info`) sleeps N ms (a hang in info).
//!
//! Otherwise it is a working speech-to-text and text-to-speech plugin: transcripts say
//! `"stall heard N samples"`, speech is 100 ms of a 220 Hz tone per word.

use std::io::Write;
use std::time::Duration;

use plugin_api::prelude::*;

fn env_ms(var: &str) -> Option<u64> {
    std::env::var(var).ok()?.parse().ok()
}

/// Runs when the dynamic loader maps the library, before any of its functions is called.
extern "C" fn on_load() {
    if let Ok(path) = std::env::var("OPENCLAW_STALL_MARKER") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "stall library opened by pid {}", std::process::id());
        }
    }
    if let Some(ms) = env_ms("OPENCLAW_STALL_LOAD_MS") {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;

struct Ears;

impl SpeechToText for Ears {
    fn transcribe(
        &self,
        audio: Pcm16kMono<'_>,
        _: &TranscribeOptions,
    ) -> Result<Transcript, PluginError> {
        Ok(Transcript::new(format!(
            "stall heard {} samples",
            audio.as_slice().len()
        )))
    }
}

struct Hum;

impl TextToSpeech for Hum {
    fn synthesize(
        &self,
        text: &str,
        _: &SynthesisOptions,
        _: CancelToken,
    ) -> Result<Box<dyn AudioStream>, PluginError> {
        let words = text.split_whitespace().count().max(1);
        let samples: Vec<i16> = (0..words * 1_600)
            .map(|i| ((i as f32 * 220.0 * std::f32::consts::TAU / 16_000.0).sin() * 6_000.0) as i16)
            .collect();
        Ok(Box::new(VecStream::new(
            samples
                .chunks(320)
                .map(|c| AudioChunk::new(c.to_vec(), 16_000))
                .collect(),
        )))
    }
}

fn definition() -> PluginDefinition {
    if let Some(ms) = env_ms("OPENCLAW_STALL_INFO_MS") {
        std::thread::sleep(Duration::from_millis(ms));
    }
    PluginDefinition::new("stall", env!("CARGO_PKG_VERSION"))
        .description("Test plugin that misbehaves while loading, as its environment says")
        .stt(|_: NoSettings| Ok(Ears))
        .tts(|_: NoSettings| Ok(Hum))
}

plugin_api::export_plugin!(definition);
