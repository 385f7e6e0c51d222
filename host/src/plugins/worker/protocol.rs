//! The framed protocol between the host and a plugin worker process, over the child's stdin
//! (requests) and stdout (replies).
//!
//! A frame is `u32` length (little-endian, of what follows), a `u8` tag, a `u64` request id,
//! then the payload. Strings are a `u32` length and UTF-8 bytes; audio is a `u32` sample count
//! and raw `i16` little-endian samples, never JSON. Every request carries an id chosen by the
//! host; replies carry the id of the request they answer (a synthesis or a transcription
//! stream answers with many frames under one id). Id 0 is the setup exchange and log records.

use std::io::{self, Read, Write};

#[cfg(test)]
use abi_stable::std_types::ROption;
use abi_stable::std_types::{RString, RVec};
use plugin_api::abi::{
    AudioChunk, DetailedTranscript, ErrorKind, HealthReport, LogLevel, PartialTranscript,
    PluginError, Role, Segment, SynthesisOptions, TranscribeOptions, Transcript, Voice, Word,
};

/// The largest frame either side accepts (10 minutes of 16 kHz audio and then some).
pub(crate) const MAX_FRAME: usize = 32 * 1024 * 1024;

/// What the host asks of a worker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Request {
    /// Load the library and build the provider (id 0, first frame).
    Setup(Setup),
    /// Transcribe one utterance.
    Transcribe(TranscribeOptions, Vec<i16>),
    /// The provider's health.
    Health,
    /// The voices on offer.
    Voices,
    /// Start a synthesis; chunks follow under the same id.
    Synthesize(String, SynthesisOptions),
    /// Start a transcription stream under this id.
    StreamStart(TranscribeOptions),
    /// Push audio to the stream with this id.
    StreamPush(Vec<i16>),
    /// Finish the stream with this id.
    StreamFinish,
    /// Cancel the synthesis or stream with this id.
    Cancel,
}

/// The first request: what to load and build.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Setup {
    /// Provider id from config (for logs and errors).
    pub provider: String,
    /// The library file.
    pub library: String,
    /// The SHA-256 the file must have, when configured.
    pub sha256: Option<String>,
    /// The role to build.
    pub role: Role,
    /// The provider's settings, as TOML text.
    pub settings: String,
    /// The most verbose log level the host keeps.
    pub max_level: u8,
    /// Only check the settings (`check-config`): answer `Ready` and exit without building.
    pub validate_only: bool,
    /// The plugin name the configuration expects the library to hold.
    pub expect_plugin: String,
}

/// What a worker answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// The provider is built (or its settings checked): what the plugin says of itself,
    /// as JSON (metadata, once per worker; audio never travels as JSON).
    Ready(String),
    /// A call failed (or setup did).
    Error(PluginError),
    /// A transcript, with its words where the provider reports them.
    Transcript(DetailedTranscript),
    /// A health report.
    Health(HealthReport),
    /// The voices.
    Voices(Vec<Voice>),
    /// A piece of synthesized audio.
    Chunk(AudioChunk),
    /// The synthesis ended.
    End,
    /// A stream was started (`true`) or the provider does not stream (`false`).
    StreamStarted(bool),
    /// A push's answer: a partial transcript, if any.
    Partial(Option<PartialTranscript>),
    /// The stream's final transcript.
    Final(DetailedTranscript),
    /// A log record from the plugin: level, target, message.
    Log(u8, String, String),
}

/// Builds a payload.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn f32(&mut self, v: f32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }
    fn str(&mut self, v: &str) -> &mut Self {
        self.u32(len32(v.len())).0.extend_from_slice(v.as_bytes());
        self
    }
    fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(s) => self.u8(1).str(s),
            None => self.u8(0),
        }
    }
    fn opt_u32(&mut self, v: Option<u32>) -> &mut Self {
        match v {
            Some(n) => self.u8(1).u32(n),
            None => self.u8(0),
        }
    }
    fn opt_u64(&mut self, v: Option<u64>) -> &mut Self {
        match v {
            Some(n) => self.u8(1).u64(n),
            None => self.u8(0),
        }
    }
    fn opt_f32(&mut self, v: Option<f32>) -> &mut Self {
        match v {
            Some(n) => self.u8(1).f32(n),
            None => self.u8(0),
        }
    }
    fn samples(&mut self, v: &[i16]) -> &mut Self {
        self.u32(len32(v.len()));
        self.0.extend_from_slice(samples_as_bytes(v));
        self
    }
}

// Audio crosses as raw little-endian samples, copied in one piece: on the little-endian
// machines this runs on, that is the samples' own memory.
#[cfg(not(target_endian = "little"))]
compile_error!("the worker protocol copies samples as little-endian bytes");

fn samples_as_bytes(v: &[i16]) -> &[u8] {
    // SAFETY: i16 has no padding and no invalid bit patterns; the byte slice covers exactly
    // the samples' memory and borrows it for as long as `v`.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

fn samples_as_bytes_mut(v: &mut [i16]) -> &mut [u8] {
    // SAFETY: as above; every byte pattern is a valid pair of i16 halves.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads a payload.
struct Dec<'a>(&'a [u8]);

fn short() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "truncated worker frame")
}

impl Dec<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(short());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> io::Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn f32(&mut self) -> io::Result<f32> {
        Ok(f32::from_bits(self.u32()?))
    }
    fn bool(&mut self) -> io::Result<bool> {
        Ok(self.u8()? != 0)
    }
    fn string(&mut self) -> io::Result<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "worker string not UTF-8"))
    }
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<Option<T>> {
        if self.bool()? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }
    fn samples(&mut self) -> io::Result<Vec<i16>> {
        let n = self.u32()? as usize;
        let bytes = self.take(n.checked_mul(2).ok_or_else(short)?)?;
        let mut out = vec![0i16; n];
        samples_as_bytes_mut(&mut out).copy_from_slice(bytes);
        Ok(out)
    }
}

/// A log level as its wire code (`LogLevel` is `repr(u8)`, most severe first) and back.
pub(crate) fn level_from(code: u8) -> LogLevel {
    match code {
        0 => LogLevel::Error,
        1 => LogLevel::Warn,
        2 => LogLevel::Info,
        3 => LogLevel::Debug,
        _ => LogLevel::Trace,
    }
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::SpeechToText => 0,
        Role::TextToSpeech => 1,
    }
}

fn role_from(code: u8) -> io::Result<Role> {
    match code {
        0 => Ok(Role::SpeechToText),
        1 => Ok(Role::TextToSpeech),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, "unknown role")),
    }
}

const KINDS: [ErrorKind; 7] = [
    ErrorKind::Config,
    ErrorKind::Auth,
    ErrorKind::RateLimited,
    ErrorKind::Timeout,
    ErrorKind::Unavailable,
    ErrorKind::InvalidInput,
    ErrorKind::Internal,
];

fn kind_code(kind: ErrorKind) -> u8 {
    KINDS.iter().position(|k| *k == kind).unwrap_or(6) as u8
}

fn enc_transcribe_options(e: &mut Enc, o: &TranscribeOptions) {
    e.opt_str(o.language()).opt_str(o.prompt());
}

fn dec_transcribe_options(d: &mut Dec<'_>) -> io::Result<TranscribeOptions> {
    Ok(TranscribeOptions {
        language: d.opt(Dec::string)?.map(RString::from).into(),
        prompt: d.opt(Dec::string)?.map(RString::from).into(),
    })
}

fn enc_transcript(e: &mut Enc, t: &Transcript) {
    e.str(&t.text)
        .opt_str(t.language.as_ref().map(|s| s.as_str()).into_option())
        .opt_f32(t.confidence.into_option())
        .u32(len32(t.segments.len()));
    for s in t.segments.iter() {
        e.u32(s.start_ms).u32(s.end_ms).str(&s.text);
    }
}

fn dec_transcript(d: &mut Dec<'_>) -> io::Result<Transcript> {
    let text = d.string()?;
    let language = d.opt(Dec::string)?;
    let confidence = d.opt(Dec::f32)?;
    let n = d.u32()? as usize;
    let mut segments = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        segments.push(Segment {
            start_ms: d.u32()?,
            end_ms: d.u32()?,
            text: d.string()?.into(),
        });
    }
    Ok(Transcript {
        text: text.into(),
        language: language.map(RString::from).into(),
        segments: RVec::from(segments),
        confidence: confidence.into(),
    })
}

fn enc_detailed(e: &mut Enc, t: &DetailedTranscript) {
    enc_transcript(e, &t.transcript);
    e.opt_f32(t.language_probability.into_option())
        .u32(len32(t.words.len()));
    for w in t.words.iter() {
        e.u32(w.start_ms)
            .u32(w.end_ms)
            .str(&w.text)
            .opt_f32(w.probability.into_option());
    }
}

fn dec_detailed(d: &mut Dec<'_>) -> io::Result<DetailedTranscript> {
    let transcript = dec_transcript(d)?;
    let language_probability = d.opt(Dec::f32)?;
    let n = d.u32()? as usize;
    let mut words = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        words.push(Word {
            start_ms: d.u32()?,
            end_ms: d.u32()?,
            text: d.string()?.into(),
            probability: d.opt(Dec::f32)?.into(),
        });
    }
    Ok(DetailedTranscript {
        transcript,
        words: RVec::from(words),
        language_probability: language_probability.into(),
    })
}

impl Request {
    fn tag(&self) -> u8 {
        match self {
            Request::Setup(_) => 1,
            Request::Transcribe(..) => 2,
            Request::Health => 3,
            Request::Voices => 4,
            Request::Synthesize(..) => 5,
            Request::StreamStart(_) => 6,
            Request::StreamPush(_) => 7,
            Request::StreamFinish => 8,
            Request::Cancel => 9,
        }
    }

    fn encode(&self, e: &mut Enc) {
        match self {
            Request::Setup(s) => {
                e.str(&s.provider)
                    .str(&s.library)
                    .opt_str(s.sha256.as_deref())
                    .u8(role_code(s.role))
                    .str(&s.settings)
                    .u8(s.max_level)
                    .bool(s.validate_only)
                    .str(&s.expect_plugin);
            }
            Request::Transcribe(options, samples) => {
                enc_transcribe_options(e, options);
                e.samples(samples);
            }
            Request::Synthesize(text, o) => {
                e.str(text)
                    .opt_str(o.voice())
                    .opt_str(o.language())
                    .opt_u32(o.preferred_sample_rate.into_option());
            }
            Request::StreamStart(options) => enc_transcribe_options(e, options),
            Request::StreamPush(samples) => {
                e.samples(samples);
            }
            Request::Health | Request::Voices | Request::StreamFinish | Request::Cancel => {}
        }
    }

    fn decode(tag: u8, d: &mut Dec<'_>) -> io::Result<Request> {
        Ok(match tag {
            1 => Request::Setup(Setup {
                provider: d.string()?,
                library: d.string()?,
                sha256: d.opt(Dec::string)?,
                role: role_from(d.u8()?)?,
                settings: d.string()?,
                max_level: d.u8()?,
                validate_only: d.bool()?,
                expect_plugin: d.string()?,
            }),
            2 => Request::Transcribe(dec_transcribe_options(d)?, d.samples()?),
            3 => Request::Health,
            4 => Request::Voices,
            5 => Request::Synthesize(
                d.string()?,
                SynthesisOptions {
                    voice: d.opt(Dec::string)?.map(RString::from).into(),
                    language: d.opt(Dec::string)?.map(RString::from).into(),
                    preferred_sample_rate: d.opt(Dec::u32)?.into(),
                },
            ),
            6 => Request::StreamStart(dec_transcribe_options(d)?),
            7 => Request::StreamPush(d.samples()?),
            8 => Request::StreamFinish,
            9 => Request::Cancel,
            _ => return Err(bad_tag(tag)),
        })
    }
}

fn bad_tag(tag: u8) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unknown worker frame tag {tag}"),
    )
}

impl Reply {
    fn tag(&self) -> u8 {
        match self {
            Reply::Ready(_) => 101,
            Reply::Error(_) => 102,
            Reply::Transcript(_) => 103,
            Reply::Health(_) => 104,
            Reply::Voices(_) => 105,
            Reply::Chunk(_) => 106,
            Reply::End => 107,
            Reply::StreamStarted(_) => 108,
            Reply::Partial(_) => 109,
            Reply::Final(_) => 110,
            Reply::Log(..) => 111,
        }
    }

    fn encode(&self, e: &mut Enc) {
        match self {
            Reply::Ready(info) => {
                e.str(info);
            }
            Reply::Error(err) => {
                e.u8(kind_code(err.kind))
                    .str(err.message())
                    .bool(err.retryable)
                    .opt_u64(err.retry_after_ms.into_option());
            }
            Reply::Transcript(t) => enc_detailed(e, t),
            Reply::Health(h) => {
                e.bool(h.healthy).str(&h.detail);
            }
            Reply::Voices(voices) => {
                e.u32(len32(voices.len()));
                for v in voices {
                    e.str(&v.id)
                        .str(&v.name)
                        .opt_str(v.language.as_ref().map(|s| s.as_str()).into_option());
                }
            }
            Reply::Chunk(c) => {
                e.u32(c.sample_rate).samples(&c.samples);
            }
            Reply::StreamStarted(ok) => {
                e.bool(*ok);
            }
            Reply::Partial(p) => match p {
                Some(p) => {
                    e.u8(1).str(&p.text).u32(p.audio_ms);
                }
                None => {
                    e.u8(0);
                }
            },
            Reply::Final(t) => enc_detailed(e, t),
            Reply::Log(level, target, message) => {
                e.u8(*level).str(target).str(message);
            }
            Reply::End => {}
        }
    }

    fn decode(tag: u8, d: &mut Dec<'_>) -> io::Result<Reply> {
        Ok(match tag {
            101 => Reply::Ready(d.string()?),
            102 => {
                let kind = KINDS
                    .get(d.u8()? as usize)
                    .copied()
                    .unwrap_or(ErrorKind::Internal);
                let message = d.string()?;
                let retryable = d.bool()?;
                let retry_after = d.opt(Dec::u64)?;
                Reply::Error(PluginError {
                    kind,
                    message: message.into(),
                    retryable,
                    retry_after_ms: retry_after.into(),
                })
            }
            103 => Reply::Transcript(dec_detailed(d)?),
            104 => Reply::Health(HealthReport {
                healthy: d.bool()?,
                detail: d.string()?.into(),
            }),
            105 => {
                let n = d.u32()? as usize;
                let mut voices = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    voices.push(Voice {
                        id: d.string()?.into(),
                        name: d.string()?.into(),
                        language: d.opt(Dec::string)?.map(RString::from).into(),
                    });
                }
                Reply::Voices(voices)
            }
            106 => {
                let sample_rate = d.u32()?;
                Reply::Chunk(AudioChunk::new(d.samples()?, sample_rate))
            }
            107 => Reply::End,
            108 => Reply::StreamStarted(d.bool()?),
            109 => Reply::Partial(d.opt(|d| {
                Ok(PartialTranscript {
                    text: d.string()?.into(),
                    audio_ms: d.u32()?,
                })
            })?),
            110 => Reply::Final(dec_detailed(d)?),
            111 => Reply::Log(d.u8()?, d.string()?, d.string()?),
            _ => return Err(bad_tag(tag)),
        })
    }
}

fn write_frame(w: &mut impl Write, tag: u8, id: u64, payload: &Enc) -> io::Result<()> {
    let len = len32(1 + 8 + payload.0.len());
    let mut head = [0u8; 13];
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4] = tag;
    head[5..].copy_from_slice(&id.to_le_bytes());
    w.write_all(&head)?;
    w.write_all(&payload.0)?;
    w.flush()
}

/// Reads one frame: `None` at a clean end of the stream.
fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, u64, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if !(9..=MAX_FRAME).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("worker frame of {len} bytes"),
        ));
    }
    let mut head = [0u8; 9];
    r.read_exact(&mut head)?;
    let mut body = vec![0u8; len - 9];
    r.read_exact(&mut body)?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&head[1..]);
    Ok(Some((head[0], u64::from_le_bytes(id), body)))
}

/// Writes a request frame.
pub(crate) fn write_request(w: &mut impl Write, id: u64, request: &Request) -> io::Result<()> {
    let mut e = Enc::default();
    request.encode(&mut e);
    write_frame(w, request.tag(), id, &e)
}

/// Writes a reply frame.
pub(crate) fn write_reply(w: &mut impl Write, id: u64, reply: &Reply) -> io::Result<()> {
    let mut e = Enc::default();
    reply.encode(&mut e);
    write_frame(w, reply.tag(), id, &e)
}

/// Reads a request frame; `None` when the host closed the pipe.
pub(crate) fn read_request(r: &mut impl Read) -> io::Result<Option<(u64, Request)>> {
    let Some((tag, id, body)) = read_frame(r)? else {
        return Ok(None);
    };
    Request::decode(tag, &mut Dec(&body)).map(|req| Some((id, req)))
}

/// Reads a reply frame; `None` when the worker closed its end.
pub(crate) fn read_reply(r: &mut impl Read) -> io::Result<Option<(u64, Reply)>> {
    let Some((tag, id, body)) = read_frame(r)? else {
        return Ok(None);
    };
    Reply::decode(tag, &mut Dec(&body)).map(|rep| Some((id, rep)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ropt<T>(v: Option<T>) -> ROption<T> {
        v.into()
    }

    fn round_trip_request(req: Request) {
        let mut buf = Vec::new();
        write_request(&mut buf, 42, &req).unwrap();
        let (id, back) = read_request(&mut buf.as_slice()).unwrap().unwrap();
        assert_eq!((id, back), (42, req));
    }

    fn round_trip_reply(rep: Reply) {
        let mut buf = Vec::new();
        write_reply(&mut buf, 7, &rep).unwrap();
        let (id, back) = read_reply(&mut buf.as_slice()).unwrap().unwrap();
        assert_eq!((id, back), (7, rep));
    }

    #[test]
    fn requests_survive_the_wire() {
        round_trip_request(Request::Setup(Setup {
            provider: "stt-a".into(),
            library: "/x/libp.so".into(),
            sha256: Some("ab".into()),
            role: Role::TextToSpeech,
            settings: "model = \"m\"\n".into(),
            max_level: 3,
            validate_only: true,
            expect_plugin: "p".into(),
        }));
        let options = TranscribeOptions {
            language: ropt(Some("fr".into())),
            prompt: ropt(None),
        };
        round_trip_request(Request::Transcribe(options.clone(), vec![1, -2, i16::MIN]));
        round_trip_request(Request::Synthesize(
            "Héllo".into(),
            SynthesisOptions {
                voice: ropt(Some("v".into())),
                language: ropt(None),
                preferred_sample_rate: ropt(Some(24_000)),
            },
        ));
        round_trip_request(Request::StreamStart(options));
        round_trip_request(Request::StreamPush(vec![5; 320]));
        for r in [
            Request::Health,
            Request::Voices,
            Request::StreamFinish,
            Request::Cancel,
        ] {
            round_trip_request(r);
        }
    }

    #[test]
    fn replies_survive_the_wire() {
        let transcript = Transcript::new("hi")
            .with_language("en")
            .with_confidence(0.5)
            .with_segments(vec![Segment {
                start_ms: 1,
                end_ms: 2,
                text: "hi".into(),
            }]);
        round_trip_reply(Reply::Transcript(DetailedTranscript::from(
            transcript.clone(),
        )));
        round_trip_reply(Reply::Error(
            PluginError::rate_limited("slow", Some(250)).with_retryable(false),
        ));
        round_trip_reply(Reply::Chunk(AudioChunk::new(vec![1, 2, 3], 22_050)));
        round_trip_reply(Reply::Voices(vec![Voice::new("a", "A")]));
        round_trip_reply(Reply::Health(HealthReport::unhealthy("no model")));
        round_trip_reply(Reply::Partial(Some(PartialTranscript {
            text: "par".into(),
            audio_ms: 480,
        })));
        round_trip_reply(Reply::Final(DetailedTranscript {
            transcript,
            words: RVec::from(vec![Word {
                start_ms: 0,
                end_ms: 5,
                text: "hi".into(),
                probability: ropt(Some(0.9)),
            }]),
            language_probability: ropt(Some(0.99)),
        }));
        round_trip_reply(Reply::Log(2, "t".into(), "m".into()));
        round_trip_reply(Reply::Ready("{\"name\":\"n\"}".into()));
        round_trip_reply(Reply::End);
        round_trip_reply(Reply::StreamStarted(true));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut frame = Vec::new();
        frame.extend_from_slice(&20u32.to_le_bytes());
        frame.extend_from_slice(&[2u8; 20]);
        assert!(read_request(&mut frame.as_slice()).is_err());
        let huge = (MAX_FRAME as u32 + 1).to_le_bytes();
        assert!(read_reply(&mut huge.as_slice()).is_err());
        // A worker that died mid-header: the end of its stream.
        assert!(read_reply(&mut [0u8; 2].as_slice()).unwrap().is_none());
        assert!(read_reply(&mut [].as_slice()).unwrap().is_none());
    }
}
