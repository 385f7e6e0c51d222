//! The Wyoming transport (`openclaw-voice wyoming serve`): this host's configured
//! speech-to-text and text-to-speech providers, with their failover chains and circuit
//! breakers, offered to Home Assistant or any Wyoming client over TCP.
//!
//! Per connection, events in order: `describe` → `info` (one ASR program whose models are the
//! STT providers, one TTS program whose voices are the TTS providers); `transcribe`
//! (language), `audio-start`, `audio-chunk`s (any rate, 16-bit, mono or stereo), `audio-stop`
//! → `transcript` (text, language); `synthesize` (text, voice language) → `audio-start`,
//! `audio-chunk`s as the providers make them, `audio-stop`; `ping` → `pong`. When every
//! provider fails the client gets an `error` event with the reasons. A connection silent for
//! [`IDLE_TIMEOUT`] is closed.
//!
//! Each connection runs on a thread of its own with the protocol crate's blocking reads, and
//! calls the async providers through the runtime's handle.

use std::io::{BufReader, BufWriter};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openclaw_wyoming::{pcm_bytes, AudioFormat, Event, ProtocolError};
use plugin_api::abi::{SynthesisOptions, TranscribeOptions};
use serde_json::{json, Value};
use tokio::runtime::Handle;

use crate::plugins::failover::{self, Budget, FailoverOrder};
use crate::plugins::{SpeechToTextProvider, TextToSpeechProvider};
use crate::voice::local::resample_linear;

/// A connection with no event for this long is closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest audio accepted for one transcription.
pub(crate) const MAX_UTTERANCE: Duration = Duration::from_secs(120);
/// Budget for one transcription across the failover chain.
const STT_BUDGET: Duration = Duration::from_secs(60);
/// Budget for a synthesis's first audio across the failover chain.
const TTS_BUDGET: Duration = Duration::from_secs(30);

/// The providers on offer.
pub(crate) struct WyomingService {
    stt: Vec<Arc<SpeechToTextProvider>>,
    tts: Vec<Arc<TextToSpeechProvider>>,
    languages: Vec<String>,
    runtime: Handle,
}

/// What one connection is in the middle of.
#[derive(Default)]
struct Transcription {
    language: Option<String>,
    format: Option<AudioFormat>,
    samples: Vec<i16>,
}

impl WyomingService {
    /// A service for these providers (failover order), announcing `languages` (the
    /// configuration's languages; Wyoming clients filter on them). Must be built inside the
    /// runtime the providers run on.
    pub fn new(
        stt: Vec<Arc<SpeechToTextProvider>>,
        tts: Vec<Arc<TextToSpeechProvider>>,
        languages: Vec<String>,
    ) -> Arc<WyomingService> {
        Arc::new(WyomingService {
            stt,
            tts,
            languages,
            runtime: Handle::current(),
        })
    }

    /// Accepts connections until the listener fails; one thread per connection.
    pub fn serve(self: Arc<Self>, listener: TcpListener) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let service = self.clone();
                let spawned = std::thread::Builder::new()
                    .name("wyoming-conn".into())
                    .spawn(move || service.connection(stream));
                if let Err(e) = spawned {
                    tracing::warn!("wyoming: cannot start a connection thread: {e}");
                }
            }
        })
    }

    /// The `info` event.
    pub fn info(&self) -> Event {
        let attribution =
            json!({"name": "OpenClaw Voice", "url": "https://github.com/openclaw/openclaw-voice"});
        let version = env!("CARGO_PKG_VERSION");
        let artifact = |name: &str, what: &str| {
            json!({"name": name, "attribution": attribution, "installed": true,
                   "description": what, "version": version, "languages": self.languages})
        };
        let models: Vec<Value> = self
            .stt
            .iter()
            .map(|p| artifact(&p.id, "speech-to-text provider"))
            .collect();
        let voices: Vec<Value> = self
            .tts
            .iter()
            .map(|p| artifact(&p.id, "text-to-speech provider"))
            .collect();
        let program = |what: &str| {
            json!({"name": "openclaw-voice", "attribution": attribution, "installed": true,
                   "description": what, "version": version})
        };
        let offer = |key: &str, list: Vec<Value>, what: &str| {
            if list.is_empty() {
                return json!([]);
            }
            let mut one = program(what);
            one[key] = list.into();
            json!([one])
        };
        let asr = offer(
            "models",
            models,
            "OpenClaw Voice speech-to-text, with failover",
        );
        let tts = offer(
            "voices",
            voices,
            "OpenClaw Voice text-to-speech, with failover",
        );
        Event::new("info", json!({"asr": asr, "tts": tts}))
    }

    fn connection(&self, stream: TcpStream) {
        // Provider calls spawn their tasks on the runtime.
        let _runtime = self.runtime.enter();
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
        let _ = stream.set_nodelay(true);
        let Ok(writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let mut out = BufWriter::new(writer);
        let mut state = Transcription::default();
        loop {
            let event = match Event::read_from(&mut reader) {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(%peer, "wyoming: connection ends: {e}");
                    let _ = error_event(&format!("{e}"), "protocol").write_to(&mut out);
                    return;
                }
            };
            if let Err(e) = self.handle(event, &mut state, &mut out) {
                tracing::debug!(%peer, "wyoming: connection ends: {e}");
                return;
            }
        }
    }

    /// Answers one event.
    fn handle(
        &self,
        event: Event,
        state: &mut Transcription,
        out: &mut BufWriter<TcpStream>,
    ) -> Result<(), ProtocolError> {
        match event.kind.as_str() {
            "describe" => self.info().write_to(out),
            "ping" => Event::new("pong", json!({})).write_to(out),
            "transcribe" => {
                *state = Transcription {
                    language: event.str("language").map(String::from),
                    ..Transcription::default()
                };
                Ok(())
            }
            "audio-start" => {
                state.format = Some(AudioFormat::of(&event)?);
                state.samples.clear();
                Ok(())
            }
            "audio-chunk" => {
                let format = AudioFormat::of(&event).or_else(|e| state.format.ok_or(e))?;
                state.format = Some(format);
                let max = MAX_UTTERANCE.as_secs() as usize * format.rate as usize;
                if state.samples.len() > max {
                    return error_event("the utterance is too long", "too-long").write_to(out);
                }
                state.samples.extend(format.to_mono16(&event.payload)?);
                Ok(())
            }
            "audio-stop" => {
                let done = std::mem::take(state);
                self.transcribe(done).write_to(out)
            }
            "synthesize" => self.synthesize(&event, out),
            _ => Ok(()),
        }
    }

    /// The `transcript` (or `error`) for a finished utterance.
    fn transcribe(&self, done: Transcription) -> Event {
        let Some(format) = done.format else {
            return error_event("`audio-stop` without `audio-start`", "protocol");
        };
        if self.stt.is_empty() {
            return error_event("this server offers no speech-to-text", "unsupported");
        }
        let audio: Arc<[i16]> = resample_linear(&done.samples, format.rate, 16_000).into();
        let options = match done.language {
            Some(code) => TranscribeOptions::default().with_language(code),
            None => TranscribeOptions::default(),
        };
        let result = self
            .runtime
            .block_on(failover::transcribe(&self.stt, audio, options, STT_BUDGET));
        match result {
            Ok(done) => {
                let mut data = json!({"text": done.transcript.text.as_str()});
                if let Some(language) = done.transcript.language_code() {
                    data["language"] = language.into();
                }
                Event::new("transcript", data)
            }
            Err(errors) => {
                let reasons: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                error_event(&reasons.join("; "), "stt-failed")
            }
        }
    }

    /// Streams the audio of a `synthesize` event from the first provider that makes some.
    fn synthesize(
        &self,
        event: &Event,
        out: &mut BufWriter<TcpStream>,
    ) -> Result<(), ProtocolError> {
        let text = event.str("text").unwrap_or_default().trim().to_string();
        if text.is_empty() {
            return error_event("nothing to say: `text` is empty", "bad-request").write_to(out);
        }
        let language = event
            .data
            .get("voice")
            .and_then(|v| v.get("language"))
            .and_then(Value::as_str);
        let options = match language {
            Some(code) => SynthesisOptions::default().with_language(code),
            None => SynthesisOptions::default(),
        };
        let budget = Budget::new(TTS_BUDGET);
        let mut errors = Vec::new();
        for (provider, _) in FailoverOrder::new(&self.tts) {
            if budget.limit(provider.timeout()).is_none() {
                errors.push(budget.spent(&provider.id, "text-to-speech").to_string());
                break;
            }
            let mut stream = provider
                .synthesize(text.clone(), options.clone())
                .first_audio_by(budget.deadline());
            match self.relay(&mut stream, out)? {
                Relayed::All => return Ok(()),
                Relayed::Nothing(e) => errors.push(e),
                Relayed::Broken(e) => {
                    // Audio went out already: end it; the client hears a cut sentence.
                    tracing::warn!("wyoming: text-to-speech broke off: {e}");
                    return Event::new("audio-stop", json!({})).write_to(out);
                }
            }
        }
        if errors.is_empty() {
            errors.push("this server offers no text-to-speech".into());
        }
        error_event(&errors.join("; "), "tts-failed").write_to(out)
    }

    fn relay(
        &self,
        stream: &mut crate::plugins::SpeechStream,
        out: &mut BufWriter<TcpStream>,
    ) -> Result<Relayed, ProtocolError> {
        let mut format: Option<AudioFormat> = None;
        let started = Instant::now();
        while let Some(item) = self.runtime.block_on(stream.next()) {
            let audio = match item {
                Ok(audio) if audio.samples.is_empty() => continue,
                Ok(audio) => audio,
                Err(e) if format.is_none() => return Ok(Relayed::Nothing(e.to_string())),
                Err(e) => return Ok(Relayed::Broken(e.to_string())),
            };
            let chunk_format = AudioFormat::mono16(audio.sample_rate);
            if format.is_none() {
                Event::new("audio-start", chunk_format.data()).write_to(out)?;
                tracing::debug!("wyoming: first audio in {:?}", started.elapsed());
            }
            format = Some(chunk_format);
            Event::new("audio-chunk", chunk_format.data())
                .with_payload(pcm_bytes(&audio.samples))
                .write_to(out)?;
        }
        match format {
            Some(_) => {
                Event::new("audio-stop", json!({})).write_to(out)?;
                Ok(Relayed::All)
            }
            None => Ok(Relayed::Nothing("no audio".into())),
        }
    }
}

/// How one provider's stream went.
enum Relayed {
    /// To its end.
    All,
    /// It failed before any audio: try the next provider.
    Nothing(String),
    /// It failed after some audio.
    Broken(String),
}

fn error_event(text: &str, code: &str) -> Event {
    Event::new("error", json!({"text": text, "code": code}))
}
