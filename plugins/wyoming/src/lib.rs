//! `wyoming`: speech-to-text and text-to-speech from any server speaking the
//! [Wyoming protocol](https://github.com/OHF-Voice/wyoming) — wyoming-faster-whisper,
//! wyoming-piper, wyoming-whisper-cpp and the others Home Assistant users already run — or
//! another OpenClaw Voice host's `wyoming serve`.
//!
//! - STT: `transcribe` (model, language), `audio-start`, `audio-chunk`s of 16 kHz 16-bit
//!   mono, `audio-stop`, then the server's `transcript` ([`WyomingStt`]).
//! - TTS: `synthesize` (text, voice), then the server's `audio-start`, `audio-chunk`s handed
//!   to the host as they arrive (any rate; stereo averaged to mono), `audio-stop`
//!   ([`WyomingTts`]).
//! - Each call opens its own connection ([`client`]); the provider asks `describe` at start
//!   (a server that offers no model for the role is a configuration error; one that is down
//!   is only logged, the host's failover and health take it from there) and in `health`.
//!
//! ```toml
//! [providers.faster-whisper]
//! plugin = "wyoming"
//! [providers.faster-whisper.settings]
//! address = "127.0.0.1:10300"
//! ```

pub mod client;
pub mod settings;

use std::thread;

use openclaw_wyoming::{pcm_bytes, AudioFormat, Event};
use plugin_api::abi::{
    AudioChunk, Capabilities, HealthReport, Pcm16kMono, PluginError, Role, SynthesisOptions,
    TranscribeOptions, Transcript,
};
use plugin_api::sdk::{
    text_to_say, CancelToken, ChannelStream, PluginDefinition, SpeechToText, Synthesis,
    TextToSpeech,
};
use serde_json::json;

use crate::settings::Settings;

/// Audio per `audio-chunk` sent to a server: 100 ms at 16 kHz.
const SAMPLES_PER_CHUNK: usize = 1600;

/// Longest text sent in one `synthesize` event, in characters (Wyoming events are one JSON
/// line each; about 2 hours of speech).
pub const MAX_TEXT_CHARS: usize = 100_000;

/// Checks the server's offer for `role` when it answers; a server that is down is logged.
fn discover(settings: &Settings, role: Role) -> Result<(), PluginError> {
    match client::describe(settings) {
        Ok(offer) => {
            let (what, list) = match role {
                Role::SpeechToText => ("speech-to-text model", &offer.asr),
                Role::TextToSpeech => ("text-to-speech voice", &offer.tts),
            };
            if list.is_empty() {
                return Err(PluginError::config(format!(
                    "the Wyoming server at {} offers no {what}",
                    settings.address
                )));
            }
            let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
            plugin_api::log::info!("{} offers: {}", settings.address, names.join(", "));
            Ok(())
        }
        Err(e) => {
            plugin_api::log::warn!("{} (checked again at each call)", e.message());
            Ok(())
        }
    }
}

fn health_of(settings: &Settings) -> HealthReport {
    match client::describe(settings) {
        Ok(_) => HealthReport::healthy(format!("{} answers `describe`", settings.address)),
        Err(e) => HealthReport::unhealthy(e.message().to_string()),
    }
}

/// Speech-to-text through a Wyoming server.
pub struct WyomingStt {
    settings: Settings,
}

impl WyomingStt {
    /// Builds the provider from its settings (TOML text).
    pub fn new(text: &str) -> Result<Self, PluginError> {
        let settings = Settings::parse(text)?;
        discover(&settings, Role::SpeechToText)?;
        Ok(WyomingStt { settings })
    }
}

impl SpeechToText for WyomingStt {
    fn transcribe(
        &self,
        audio: Pcm16kMono<'_>,
        options: &TranscribeOptions,
    ) -> Result<Transcript, PluginError> {
        let mut request = json!({});
        if let Some(model) = &self.settings.model {
            request["name"] = model.as_str().into();
        }
        let language = options.language().or(self.settings.language.as_deref());
        if let Some(language) = language.filter(|l| *l != "auto") {
            request["language"] = language.into();
        }
        let format = AudioFormat::mono16(16_000);
        let mut call = client::connect(&self.settings)?;
        call.send(&Event::new("transcribe", request))?;
        call.send(&Event::new("audio-start", format.data()))?;
        for piece in audio.as_slice().chunks(SAMPLES_PER_CHUNK) {
            call.send(&Event::new("audio-chunk", format.data()).with_payload(pcm_bytes(piece)))?;
        }
        call.send(&Event::new("audio-stop", json!({})))?;
        let transcript = call.receive_until("transcript")?;
        let text = transcript
            .str("text")
            .unwrap_or_default()
            .trim()
            .to_string();
        let mut result = Transcript::new(text);
        if let Some(language) = transcript.str("language") {
            result = result.with_language(language);
        }
        Ok(result)
    }

    fn health(&self) -> Result<HealthReport, PluginError> {
        Ok(health_of(&self.settings))
    }
}

/// Text-to-speech through a Wyoming server.
pub struct WyomingTts {
    settings: Settings,
}

impl WyomingTts {
    /// Builds the provider from its settings (TOML text).
    pub fn new(text: &str) -> Result<Self, PluginError> {
        let settings = Settings::parse(text)?;
        discover(&settings, Role::TextToSpeech)?;
        Ok(WyomingTts { settings })
    }
}

impl TextToSpeech for WyomingTts {
    fn synthesize(&self, text: &str, options: &SynthesisOptions, cancel: CancelToken) -> Synthesis {
        text_to_say(text, MAX_TEXT_CHARS)?;
        let mut voice = json!({});
        if let Some(name) = options.voice().or(self.settings.voice.as_deref()) {
            voice["name"] = name.into();
        }
        if let Some(language) = options.language() {
            voice["language"] = language.into();
        }
        if let Some(speaker) = &self.settings.speaker {
            voice["speaker"] = speaker.as_str().into();
        }
        let mut call = client::connect(&self.settings)?;
        call.send(&Event::new(
            "synthesize",
            json!({"text": text, "voice": voice}),
        ))?;
        let (sender, stream) = ChannelStream::new(cancel.clone());
        thread::Builder::new()
            .name("wyoming-tts".into())
            .spawn(move || {
                if let Err(e) = relay(&mut call, &sender, &cancel) {
                    let _ = sender.send(Err(e));
                }
            })
            .map_err(|e| PluginError::internal(format!("cannot start a thread: {e}")))?;
        Ok(Box::new(stream))
    }

    fn health(&self) -> Result<HealthReport, PluginError> {
        Ok(health_of(&self.settings))
    }
}

/// Hands the server's audio to the stream as it arrives, until `audio-stop`.
fn relay(
    call: &mut client::Call,
    sender: &std::sync::mpsc::SyncSender<Result<AudioChunk, PluginError>>,
    cancel: &CancelToken,
) -> Result<(), PluginError> {
    let bad = |e: openclaw_wyoming::ProtocolError| PluginError::unavailable(e.to_string());
    let mut format = None;
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let event = call.receive()?;
        match event.kind.as_str() {
            "audio-start" => format = Some(AudioFormat::of(&event).map_err(bad)?),
            "audio-chunk" => {
                let chunk_format = AudioFormat::of(&event).ok().or(format).ok_or_else(|| {
                    PluginError::unavailable("the server sent audio without its format")
                })?;
                let samples = chunk_format.to_mono16(&event.payload).map_err(bad)?;
                let chunk = AudioChunk::new(samples, chunk_format.rate);
                if sender.send(Ok(chunk)).is_err() {
                    return Ok(());
                }
            }
            "audio-stop" => return Ok(()),
            _ => {}
        }
    }
}

fn validate(role: Role, text: &str) -> Result<(), PluginError> {
    // `check-config` must not reach the network: the server's offer is checked at start.
    let _ = role;
    Settings::parse(text).map(|_| ())
}

/// The plugin definition.
pub fn definition() -> PluginDefinition {
    PluginDefinition::new("wyoming", env!("CARGO_PKG_VERSION"))
        .description("Speech-to-text and text-to-speech from a Wyoming server")
        .capabilities(Capabilities {
            streaming: true,
            ..Capabilities::default()
        })
        .speech_to_text(WyomingStt::new)
        .text_to_speech(WyomingTts::new)
        .validate_config(validate)
}

plugin_api::export_plugin!(definition);

#[cfg(test)]
mod tests;
