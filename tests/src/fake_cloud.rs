//! Local fake servers for the cloud speech APIs, written to each API's documented contract, so
//! that tests run the real cloud plugins against them:
//!
//! - OpenAI `POST /v1/audio/transcriptions` (`multipart/form-data`: `file`, `model`,
//!   `response_format`, `language`, `prompt`; answers `json`, `verbose_json` or `text`) and
//!   `POST /v1/audio/speech` (JSON: `model`, `input`, `voice`, `response_format`, `speed`;
//!   answers a chunked audio stream), with `Authorization: Bearer` and OpenAI's error body
//!   `{"error": {"message", "type", "param", "code"}}`;
//! - ElevenLabs `POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_…` (JSON: `text`,
//!   `model_id`, `voice_settings`; answers chunked raw PCM) and `GET /v1/voices`, with
//!   `xi-api-key` and ElevenLabs' error bodies `{"detail": {"status", "message"}}` and, for
//!   validation, `{"detail": [{"loc", "msg", "type"}]}`.
//!
//! [`FakeServer`] is a small HTTP/1.1 server on `127.0.0.1` (keep-alive, chunked transfer
//! encoding both ways, a thread per connection) that records every request and answers with
//! what a handler returns: a [`Reply`] with a status, headers and a body sent whole or in
//! chunks with pauses between them, held at a [`Gate`] until the test opens it, after a delay,
//! or never (a stall). The [`openai`] and [`elevenlabs`] modules check requests against the
//! contract (a request that breaks it gets the error the real API would send) and build the
//! real APIs' answers.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a stalled reply or a closed gate holds a connection (the server's drop ends it
/// sooner).
const HOLD_MAX: Duration = Duration::from_secs(60);

/// One request, as the server received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`…
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
    /// When its head arrived.
    pub received: Instant,
}

impl Request {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// A query parameter, percent-decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == key).then(|| percent_decode(v))
        })
    }

    /// A header's value (`name` in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("the body is not JSON: {e}"))
    }

    /// The parts of a `multipart/form-data` body.
    pub fn multipart(&self) -> Result<Vec<Part>, String> {
        let content_type = self
            .header("content-type")
            .ok_or("no Content-Type header")?;
        let (kind, params) = content_type
            .split_once(';')
            .ok_or_else(|| format!("`{content_type}` has no boundary"))?;
        if kind.trim() != "multipart/form-data" {
            return Err(format!("Content-Type is `{kind}`, not multipart/form-data"));
        }
        let boundary = params
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .ok_or_else(|| format!("`{content_type}` has no boundary"))?
            .trim_matches('"');
        let delimiter = format!("--{boundary}").into_bytes();
        let mut parts = Vec::new();
        let mut sections = split_bytes(&self.body, &delimiter).into_iter();
        let preamble = sections.next().unwrap_or_default();
        if !preamble.is_empty() && preamble != b"\r\n" {
            return Err("bytes before the first boundary".into());
        }
        for section in sections {
            if section.starts_with(b"--") {
                return Ok(parts);
            }
            let section = section
                .strip_prefix(b"\r\n")
                .ok_or("a boundary is not followed by CRLF")?;
            let split = find(section, b"\r\n\r\n").ok_or("a part has no header end")?;
            let head = String::from_utf8_lossy(&section[..split]).to_string();
            let data = section[split + 4..]
                .strip_suffix(b"\r\n")
                .ok_or("a part does not end with CRLF before the boundary")?;
            let mut part = Part {
                name: String::new(),
                filename: None,
                content_type: None,
                data: data.to_vec(),
            };
            for line in head.split("\r\n") {
                let (k, v) = line.split_once(':').ok_or("a malformed part header")?;
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-disposition" => {
                        for param in v.split(';').skip(1) {
                            if let Some((pk, pv)) = param.trim().split_once('=') {
                                let pv = pv.trim_matches('"').to_string();
                                match pk {
                                    "name" => part.name = pv,
                                    "filename" => part.filename = Some(pv),
                                    _ => {}
                                }
                            }
                        }
                    }
                    "content-type" => part.content_type = Some(v.trim().to_string()),
                    _ => {}
                }
            }
            if part.name.is_empty() {
                return Err("a part has no name".into());
            }
            parts.push(part);
        }
        Err("the body has no closing boundary".into())
    }
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone)]
pub struct Part {
    /// The field name.
    pub name: String,
    /// The file name, for file parts.
    pub filename: Option<String>,
    /// The part's Content-Type, if sent.
    pub content_type: Option<String>,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Part {
    /// The data as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// Holds a streamed reply at a point until the test opens it.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens it: replies waiting at it go on.
    pub fn open(&self) {
        let (lock, cond) = &*self.0;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cond.notify_all();
    }

    /// Whether it is open.
    pub fn is_open(&self) -> bool {
        *self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait(&self, stop: &AtomicBool) {
        let (lock, cond) = &*self.0;
        let deadline = Instant::now() + HOLD_MAX;
        let mut open = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*open && !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            open = cond
                .wait_timeout(open, Duration::from_millis(20))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A piece of a chunked body.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Bytes sent as one chunk, and flushed.
    Data(Vec<u8>),
    /// A pause.
    Pause(Duration),
    /// Wait here until the gate opens.
    Wait(Gate),
}

#[derive(Debug, Clone)]
enum Body {
    Whole(Vec<u8>),
    Chunked(Vec<Piece>),
}

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
    delay: Duration,
    stall: bool,
}

impl Reply {
    /// A reply with `status` and an empty body.
    pub fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Whole(Vec::new()),
            delay: Duration::ZERO,
            stall: false,
        }
    }

    /// A JSON body.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::bytes(status, "application/json", value.to_string().into_bytes())
    }

    /// A text body.
    pub fn text(status: u16, content_type: &str, text: &str) -> Self {
        Self::bytes(status, content_type, text.as_bytes().to_vec())
    }

    /// A body sent whole, with `Content-Length`.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Reply {
            body: Body::Whole(body),
            ..Self::new(status)
        }
        .header("content-type", content_type)
    }

    /// A body sent with `Transfer-Encoding: chunked`, piece by piece.
    pub fn chunked(status: u16, content_type: &str, pieces: Vec<Piece>) -> Self {
        Reply {
            body: Body::Chunked(pieces),
            ..Self::new(status)
        }
        .header("content-type", content_type)
    }

    /// Never answers: reads the request, then holds the connection silently (until the server
    /// is dropped, or a minute).
    pub fn stall() -> Self {
        Reply {
            stall: true,
            ..Self::new(200)
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Waits `delay` before sending anything.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A local HTTP/1.1 server answering with a handler; dropped, it stops.
pub struct FakeServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Starts a server on a free port of 127.0.0.1.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let addr = listener.local_addr().expect("the bound address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let acceptor = {
            let requests = requests.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("fake-cloud-accept".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(stream) = stream else { continue };
                        let (handler, requests, stop) =
                            (handler.clone(), requests.clone(), stop.clone());
                        let _ = std::thread::Builder::new()
                            .name("fake-cloud-conn".into())
                            .spawn(move || serve(stream, &*handler, &requests, &stop));
                    }
                })
                .expect("start the accept thread")
        };
        FakeServer {
            addr,
            requests,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:<port>`: the `base_url` to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// `handler` as a server with one worker: requests are answered one at a time, each after
/// `service` of work (a GPU speech server without batching), so concurrent requests queue.
pub fn one_worker(
    service: Duration,
    handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    let worker = Mutex::new(());
    move |request| {
        let _busy = worker.lock().unwrap_or_else(|p| p.into_inner());
        std::thread::sleep(service);
        handler(request)
    }
}

/// Replies with `first` to the first `n` requests, then with `then`.
pub fn first_n(
    n: usize,
    first: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    then: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    let count = AtomicUsize::new(0);
    move |request| {
        if count.fetch_add(1, Ordering::SeqCst) < n {
            first(request)
        } else {
            then(request)
        }
    }
}

fn serve(stream: TcpStream, handler: &Handler, requests: &Mutex<Vec<Request>>, stop: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(HOLD_MAX));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) | Err(_) => return,
        };
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request.clone());
        let reply = handler(&request);
        if write_reply(&mut writer, &reply, stop).is_err() || close || reply.stall {
            return;
        }
    }
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let received = Instant::now();
    let mut words = line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(std::io::Error::other(format!("bad request line {line:?}")));
    };
    let (method, target) = (method.to_string(), target.to_string());
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(reader)?
    } else {
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        body
    };
    Ok(Some(Request {
        method,
        target,
        headers,
        body,
        received,
    }))
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|e| std::io::Error::other(format!("bad chunk size {line:?}: {e}")))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// Sleeps up to `d`, returning early when the server stops.
fn pause(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(20)));
    }
}

fn write_reply(out: &mut TcpStream, reply: &Reply, stop: &AtomicBool) -> std::io::Result<()> {
    pause(reply.delay, stop);
    if reply.stall {
        pause(HOLD_MAX, stop);
        return Ok(());
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match &reply.body {
        Body::Whole(bytes) => {
            head.push_str(&format!("content-length: {}\r\n\r\n", bytes.len()));
            out.write_all(head.as_bytes())?;
            out.write_all(bytes)?;
            out.flush()
        }
        Body::Chunked(pieces) => {
            head.push_str("transfer-encoding: chunked\r\n\r\n");
            out.write_all(head.as_bytes())?;
            out.flush()?;
            for piece in pieces {
                match piece {
                    Piece::Data(bytes) if bytes.is_empty() => {}
                    Piece::Data(bytes) => {
                        out.write_all(format!("{:x}\r\n", bytes.len()).as_bytes())?;
                        out.write_all(bytes)?;
                        out.write_all(b"\r\n")?;
                        out.flush()?;
                    }
                    Piece::Pause(d) => pause(*d, stop),
                    Piece::Wait(gate) => gate.wait(stop),
                }
                if stop.load(Ordering::SeqCst) {
                    return Err(std::io::ErrorKind::Interrupted.into());
                }
            }
            out.write_all(b"0\r\n\r\n")?;
            out.flush()
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split_bytes<'a>(mut data: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(at) = find(data, delimiter) {
        out.push(&data[..at]);
        data = &data[at + delimiter.len()..];
    }
    out.push(data);
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// 16-bit little-endian bytes of `samples`: raw PCM as both TTS APIs stream it.
pub fn pcm_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// `n` samples of a 440 Hz tone at `rate`, half scale: recognisable audio to reassemble.
pub fn tone(n: usize, rate: u32) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            ((t * 440.0 * std::f64::consts::TAU).sin() * 16_000.0) as i16
        })
        .collect()
}

/// `samples` as chunked pieces of `chunk_samples` each, `pause` apart.
pub fn pcm_pieces(samples: &[i16], chunk_samples: usize, pause: Duration) -> Vec<Piece> {
    let mut pieces = Vec::new();
    for (i, chunk) in samples.chunks(chunk_samples.max(1)).enumerate() {
        if i > 0 && !pause.is_zero() {
            pieces.push(Piece::Pause(pause));
        }
        pieces.push(Piece::Data(pcm_bytes(chunk)));
    }
    pieces
}

/// A WAV file's format and samples, as a fake server reads an upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Bits per sample.
    pub bits: u16,
    /// The samples (16-bit files only).
    pub samples: Vec<i16>,
}

impl Wav {
    /// Parses a RIFF/WAVE file with a `fmt ` and a `data` chunk.
    pub fn parse(bytes: &[u8]) -> Result<Wav, String> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err("not a RIFF/WAVE file".into());
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let mut at = 12;
        let mut format = None;
        while at + 8 <= bytes.len() {
            let id = &bytes[at..at + 4];
            let size = u32_at(at + 4) as usize;
            let body = at + 8;
            if body + size > bytes.len() {
                return Err(format!(
                    "chunk {:?} runs past the end",
                    String::from_utf8_lossy(id)
                ));
            }
            match id {
                b"fmt " if size >= 16 => {
                    if u16_at(body) != 1 {
                        return Err("not PCM".into());
                    }
                    format = Some((u16_at(body + 2), u32_at(body + 4), u16_at(body + 14)));
                }
                b"data" => {
                    let (channels, sample_rate, bits) = format.ok_or("data before fmt")?;
                    let samples = if bits == 16 {
                        bytes[body..body + size]
                            .chunks_exact(2)
                            .map(|p| i16::from_le_bytes([p[0], p[1]]))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    return Ok(Wav {
                        sample_rate,
                        channels,
                        bits,
                        samples,
                    });
                }
                _ => {}
            }
            at = body + size + size % 2;
        }
        Err("no data chunk".into())
    }
}

/// OpenAI's audio API: `POST /v1/audio/transcriptions` and `POST /v1/audio/speech`.
pub mod openai {
    use super::*;
    use serde_json::json;

    /// Formats the transcription endpoint accepts, by file extension.
    pub const FILE_FORMATS: [&str; 9] = [
        "flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm",
    ];
    /// `response_format` values of the transcription endpoint.
    pub const TRANSCRIPTION_FORMATS: [&str; 5] = ["json", "text", "srt", "verbose_json", "vtt"];
    /// Voices of the speech endpoint.
    pub const VOICES: [&str; 11] = [
        "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer",
        "verse",
    ];
    /// Sample rate of `response_format = "pcm"`.
    pub const PCM_RATE: u32 = 24_000;

    /// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
    pub fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Reply {
        Reply::json(
            status,
            &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        )
    }

    fn invalid_request(message: &str) -> Reply {
        error(400, message, "invalid_request_error", None)
    }

    /// The 401 for a wrong key; like OpenAI, it repeats the key masked (first 5 and last 4
    /// characters).
    pub fn invalid_key(presented: &str) -> Reply {
        let masked = if presented.len() > 9 {
            format!(
                "{}{}{}",
                &presented[..5],
                "*".repeat(presented.len() - 9),
                &presented[presented.len() - 4..]
            )
        } else {
            "*".repeat(presented.len())
        };
        error(
            401,
            &format!(
                "Incorrect API key provided: {masked}. You can find your API key at \
                 https://platform.openai.com/account/api-keys."
            ),
            "invalid_request_error",
            Some("invalid_api_key"),
        )
    }

    /// A 429 asking to wait `seconds` (`Retry-After`).
    pub fn rate_limited(seconds: u64) -> Reply {
        error(
            429,
            "Rate limit reached for whisper-1 in organization org-test on requests per min \
             (RPM): Limit 50, Used 50, Requested 1. Please try again in 1s.",
            "requests",
            Some("rate_limit_exceeded"),
        )
        .header("retry-after", &seconds.to_string())
    }

    /// A 429 for a spent quota: waiting does not help.
    pub fn quota_exceeded() -> Reply {
        error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            Some("insufficient_quota"),
        )
    }

    /// A 5xx as OpenAI sends it.
    pub fn server_error(status: u16) -> Reply {
        error(
            status,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        )
    }

    /// Checks `Authorization: Bearer <key>`; the 401 OpenAI sends otherwise.
    pub fn check_auth(request: &Request, key: &str) -> Result<(), Reply> {
        match request.header("authorization") {
            None => Err(error(
                401,
                "You didn't provide an API key. You need to provide your API key in an \
                 Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
            )),
            Some(value) => match value.strip_prefix("Bearer ") {
                Some(presented) if presented == key => Ok(()),
                Some(presented) => Err(invalid_key(presented)),
                None => Err(invalid_key(value)),
            },
        }
    }

    /// A transcription request, read as the API documents it.
    #[derive(Debug, Clone)]
    pub struct Transcription {
        /// `model`.
        pub model: String,
        /// `response_format` (`json` when not sent).
        pub response_format: String,
        /// `language`.
        pub language: Option<String>,
        /// `prompt`.
        pub prompt: Option<String>,
        /// `temperature`.
        pub temperature: Option<String>,
        /// The uploaded file's name.
        pub file_name: String,
        /// The uploaded file's Content-Type.
        pub file_type: Option<String>,
        /// The uploaded audio.
        pub audio: Wav,
        /// Every field name, in order.
        pub fields: Vec<String>,
    }

    /// Checks a transcription request: method, path, key, multipart fields, a WAV `file`, the
    /// format the model allows. Any breach gets the 4xx the API would send.
    pub fn parse_transcription(request: &Request, key: &str) -> Result<Transcription, Reply> {
        if request.path() != "/v1/audio/transcriptions" {
            return Err(error(
                404,
                &format!("Invalid URL ({} {})", request.method, request.path()),
                "invalid_request_error",
                None,
            ));
        }
        if request.method != "POST" {
            return Err(error(
                405,
                "Method not allowed",
                "invalid_request_error",
                None,
            ));
        }
        check_auth(request, key)?;
        let parts = request.multipart().map_err(|e| invalid_request(&e))?;
        let field = |name: &str| parts.iter().find(|p| p.name == name);
        let text = |name: &str| field(name).map(Part::text);
        let file = field("file")
            .ok_or_else(|| invalid_request("1 validation error for Request\nbody -> file\n  field required (type=value_error.missing)"))?;
        let model =
            text("model").ok_or_else(|| invalid_request("you must provide a model parameter"))?;
        let file_name = file.filename.clone().unwrap_or_default();
        let extension = file_name.rsplit('.').next().unwrap_or_default();
        if !FILE_FORMATS.contains(&extension) {
            return Err(invalid_request(&format!(
                "Invalid file format. Supported formats: {FILE_FORMATS:?}"
            )));
        }
        let audio = Wav::parse(&file.data).map_err(|e| {
            invalid_request(&format!(
                "Audio file might be corrupted or unsupported ({e})"
            ))
        })?;
        let response_format = text("response_format").unwrap_or_else(|| "json".into());
        if !TRANSCRIPTION_FORMATS.contains(&response_format.as_str()) {
            return Err(invalid_request(&format!(
                "'{response_format}' is not one of {TRANSCRIPTION_FORMATS:?} - 'response_format'"
            )));
        }
        if model.starts_with("gpt-4o") && !matches!(response_format.as_str(), "json" | "text") {
            return Err(invalid_request(&format!(
                "response_format '{response_format}' is not compatible with model '{model}'. \
                 Use 'json' or 'text' instead."
            )));
        }
        Ok(Transcription {
            model,
            response_format,
            language: text("language"),
            prompt: text("prompt"),
            temperature: text("temperature"),
            file_name,
            file_type: file.content_type.clone(),
            audio,
            fields: parts.iter().map(|p| p.name.clone()).collect(),
        })
    }

    /// The answer to `request` saying `text`, in its `response_format`. `verbose_json` has one
    /// segment per sentence; a segment whose text starts with `(no speech)` gets Whisper's
    /// no-speech scores.
    pub fn transcription_reply(request: &Transcription, text: &str) -> Reply {
        let duration =
            request.audio.samples.len() as f64 / f64::from(request.audio.sample_rate.max(1));
        match request.response_format.as_str() {
            "text" => Reply::text(200, "text/plain; charset=utf-8", &format!("{text}\n")),
            "verbose_json" => {
                let sentences: Vec<&str> = text
                    .split_inclusive(['.', '?', '!'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                let step = duration / sentences.len().max(1) as f64;
                let segments: Vec<serde_json::Value> = sentences
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let silent = s.starts_with("(no speech)");
                        let s = s.trim_start_matches("(no speech)").trim();
                        json!({
                            "id": i, "seek": 0, "start": i as f64 * step,
                            "end": (i + 1) as f64 * step, "text": format!(" {s}"),
                            "tokens": [50364, 2425], "temperature": 0.0,
                            "avg_logprob": if silent { -1.4 } else { -0.2 },
                            "compression_ratio": 1.1,
                            "no_speech_prob": if silent { 0.9 } else { 0.01 },
                        })
                    })
                    .collect();
                let spoken: Vec<String> = sentences
                    .iter()
                    .map(|s| s.trim_start_matches("(no speech)").trim().to_string())
                    .collect();
                Reply::json(
                    200,
                    &json!({
                        "task": "transcribe",
                        "language": "english",
                        "duration": duration,
                        "text": spoken.join(" "),
                        "segments": segments,
                    }),
                )
            }
            _ => Reply::json(200, &json!({"text": text})),
        }
    }

    /// A whole transcription endpoint that checks every request and transcribes every upload
    /// as `text` (and lists the models, as the health check asks).
    pub fn transcriptions(
        key: &str,
        text: &str,
    ) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
        let (key, text) = (key.to_string(), text.to_string());
        move |request| {
            if request.path() == "/v1/models" {
                return models(request, &key);
            }
            match parse_transcription(request, &key) {
                Ok(t) => transcription_reply(&t, &text),
                Err(reply) => reply,
            }
        }
    }

    /// `GET /v1/models`: the model list, as the API answers it (the key is checked).
    pub fn models(request: &Request, key: &str) -> Reply {
        if request.method != "GET" {
            return invalid_request(&format!(
                "Invalid URL ({} {})",
                request.method,
                request.path()
            ));
        }
        if let Err(reply) = check_auth(request, key) {
            return reply;
        }
        let model = |id: &str| json!({"id": id, "object": "model", "created": 1_677_610_602, "owned_by": "openai"});
        Reply::json(
            200,
            &json!({"object": "list", "data": [model("whisper-1"), model("tts-1"), model("gpt-4o-mini-tts")]}),
        )
    }

    /// A speech request, read as the API documents it.
    #[derive(Debug, Clone)]
    pub struct Speech {
        /// `model`.
        pub model: String,
        /// `input`.
        pub input: String,
        /// `voice`.
        pub voice: String,
        /// `response_format` (`mp3` when not sent).
        pub response_format: String,
        /// `speed`.
        pub speed: Option<f64>,
        /// `instructions`.
        pub instructions: Option<String>,
    }

    /// Checks a speech request: method, path, key, JSON body and its documented fields and
    /// ranges.
    pub fn parse_speech(request: &Request, key: &str) -> Result<Speech, Reply> {
        if request.path() != "/v1/audio/speech" || request.method != "POST" {
            return Err(error(
                404,
                &format!("Invalid URL ({} {})", request.method, request.path()),
                "invalid_request_error",
                None,
            ));
        }
        check_auth(request, key)?;
        if !request
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        {
            return Err(invalid_request(
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let body = request.json().map_err(|e| invalid_request(&e))?;
        let string = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let missing =
            |name: &str| invalid_request(&format!("Missing required parameter: '{name}'."));
        let model = string("model").ok_or_else(|| missing("model"))?;
        let input = string("input").ok_or_else(|| missing("input"))?;
        let voice = string("voice").ok_or_else(|| missing("voice"))?;
        if input.chars().count() > 4096 {
            return Err(invalid_request(
                "'input' is too long: at most 4096 characters",
            ));
        }
        if !VOICES.contains(&voice.as_str()) {
            return Err(invalid_request(&format!(
                "Invalid value: '{voice}'. Supported values are: {VOICES:?}."
            )));
        }
        let response_format = string("response_format").unwrap_or_else(|| "mp3".into());
        let speed = body.get("speed").and_then(|v| v.as_f64());
        if let Some(speed) = speed {
            if !(0.25..=4.0).contains(&speed) {
                return Err(invalid_request(&format!(
                    "{speed} is greater than the maximum of 4 - 'speed'"
                )));
            }
        }
        Ok(Speech {
            model,
            input,
            voice,
            response_format,
            speed,
            instructions: string("instructions"),
        })
    }

    /// A whole speech endpoint that checks every request and streams `pcm` (24 kHz) in
    /// chunks of `chunk_samples`, `pause` apart.
    pub fn speech(
        key: &str,
        pcm: Vec<i16>,
        chunk_samples: usize,
        pause: Duration,
    ) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
        let key = key.to_string();
        move |request| match parse_speech(request, &key) {
            _ if request.path() == "/v1/models" => models(request, &key),
            Ok(speech) if speech.response_format == "pcm" => {
                Reply::chunked(200, "audio/pcm", pcm_pieces(&pcm, chunk_samples, pause))
            }
            Ok(speech) => invalid_request(&format!(
                "this fake serves response_format pcm only, not {}",
                speech.response_format
            )),
            Err(reply) => reply,
        }
    }
}

/// ElevenLabs: `POST /v1/text-to-speech/{voice_id}/stream` and `GET /v1/voices`.
pub mod elevenlabs {
    use super::*;
    use serde_json::json;

    /// PCM `output_format` values and their sample rates.
    pub const PCM_FORMATS: [(&str, u32); 5] = [
        ("pcm_8000", 8_000),
        ("pcm_16000", 16_000),
        ("pcm_22050", 22_050),
        ("pcm_24000", 24_000),
        ("pcm_44100", 44_100),
    ];

    /// ElevenLabs' error body: `{"detail": {"status", "message"}}`.
    pub fn error(status: u16, detail_status: &str, message: &str) -> Reply {
        Reply::json(
            status,
            &json!({"detail": {"status": detail_status, "message": message}}),
        )
    }

    /// The 401 for a wrong key.
    pub fn invalid_key() -> Reply {
        error(401, "invalid_api_key", "Invalid API key")
    }

    /// The 401 ElevenLabs sends when the characters left do not cover the request.
    pub fn quota_exceeded() -> Reply {
        error(
            401,
            "quota_exceeded",
            "This request exceeds your quota of 10000. You have 5 credits remaining, while 120 \
             credits are required for this request.",
        )
    }

    /// A 429: too many requests at once for the plan.
    pub fn busy(retry_after_s: Option<u64>) -> Reply {
        let reply = error(
            429,
            "too_many_concurrent_requests",
            "Too many concurrent requests. Your current subscription is limited to 2 \
             concurrent requests.",
        );
        match retry_after_s {
            Some(s) => reply.header("retry-after", &s.to_string()),
            None => reply,
        }
    }

    /// A FastAPI validation error (422): `{"detail": [{"loc", "msg", "type"}]}`.
    pub fn validation_error(loc: &[&str], msg: &str) -> Reply {
        Reply::json(
            422,
            &json!({"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]}),
        )
    }

    /// Checks `xi-api-key`.
    pub fn check_auth(request: &Request, key: &str) -> Result<(), Reply> {
        match request.header("xi-api-key") {
            None => Err(error(
                401,
                "needs_authorization",
                "Neither authorization header nor xi-api-key received, please provide one.",
            )),
            Some(presented) if presented == key => Ok(()),
            Some(_) => Err(invalid_key()),
        }
    }

    /// A streaming synthesis request, read as the API documents it.
    #[derive(Debug, Clone)]
    pub struct StreamRequest {
        /// The voice id in the path.
        pub voice_id: String,
        /// `output_format` (`mp3_44100_128` when not sent).
        pub output_format: String,
        /// The PCM rate it asks for, if PCM.
        pub sample_rate: Option<u32>,
        /// `optimize_streaming_latency`, if sent.
        pub optimize_streaming_latency: Option<String>,
        /// `text`.
        pub text: String,
        /// `model_id`.
        pub model_id: Option<String>,
        /// `voice_settings`.
        pub voice_settings: Option<serde_json::Value>,
        /// The whole JSON body.
        pub body: serde_json::Value,
    }

    /// Checks a streaming request: method, path, key, query, JSON body and the ranges of
    /// `voice_settings`. Breaches get ElevenLabs' 401/404/422.
    pub fn parse_stream(request: &Request, key: &str) -> Result<StreamRequest, Reply> {
        let path = request.path();
        let voice_id = path
            .strip_prefix("/v1/text-to-speech/")
            .and_then(|rest| rest.strip_suffix("/stream"))
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .ok_or_else(|| Reply::json(404, &json!({"detail": "Not Found"})))?
            .to_string();
        if request.method != "POST" {
            return Err(Reply::json(405, &json!({"detail": "Method Not Allowed"})));
        }
        check_auth(request, key)?;
        let output_format = request
            .query("output_format")
            .unwrap_or_else(|| "mp3_44100_128".into());
        let sample_rate = PCM_FORMATS
            .iter()
            .find(|(name, _)| *name == output_format)
            .map(|(_, rate)| *rate);
        if sample_rate.is_none() && !output_format.starts_with("mp3_") {
            return Err(validation_error(
                &["query", "output_format"],
                &format!("unsupported output format `{output_format}`"),
            ));
        }
        let optimize_streaming_latency = request.query("optimize_streaming_latency");
        if let Some(level) = &optimize_streaming_latency {
            if !matches!(level.as_str(), "0" | "1" | "2" | "3" | "4") {
                return Err(validation_error(
                    &["query", "optimize_streaming_latency"],
                    "value is not a valid integer between 0 and 4",
                ));
            }
        }
        if !request
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        {
            return Err(validation_error(&["body"], "the body must be JSON"));
        }
        let body = request
            .json()
            .map_err(|e| validation_error(&["body"], &e))?;
        let text = body
            .get("text")
            .and_then(|v| v.as_str())
            .ok_or_else(|| validation_error(&["body", "text"], "field required"))?
            .to_string();
        let voice_settings = body.get("voice_settings").cloned();
        if let Some(settings) = &voice_settings {
            for field in ["stability", "similarity_boost", "style"] {
                if let Some(v) = settings.get(field).and_then(|v| v.as_f64()) {
                    if !(0.0..=1.0).contains(&v) {
                        return Err(validation_error(
                            &["body", "voice_settings", field],
                            "ensure this value is less than or equal to 1.0",
                        ));
                    }
                }
            }
        }
        Ok(StreamRequest {
            voice_id,
            output_format,
            sample_rate,
            optimize_streaming_latency,
            text,
            model_id: body
                .get("model_id")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            voice_settings,
            body,
        })
    }

    /// A whole streaming endpoint that checks every request and streams `pcm` in chunks of
    /// `chunk_samples`, `pause` apart (the samples are the same whatever rate is asked for).
    pub fn stream(
        key: &str,
        pcm: Vec<i16>,
        chunk_samples: usize,
        pause: Duration,
    ) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
        let key = key.to_string();
        move |request| {
            if request.path() == "/v1/voices" {
                return voices(request, &key);
            }
            match parse_stream(request, &key) {
                Ok(r) if r.sample_rate.is_some() => {
                    Reply::chunked(200, "audio/pcm", pcm_pieces(&pcm, chunk_samples, pause))
                }
                Ok(r) => validation_error(
                    &["query", "output_format"],
                    &format!("this fake serves PCM only, not {}", r.output_format),
                ),
                Err(reply) => reply,
            }
        }
    }

    /// `GET /v1/voices`: two premade voices.
    pub fn voices(request: &Request, key: &str) -> Reply {
        if request.method != "GET" {
            return Reply::json(405, &json!({"detail": "Method Not Allowed"}));
        }
        if let Err(reply) = check_auth(request, key) {
            return reply;
        }
        Reply::json(
            200,
            &json!({"voices": [
                {"voice_id": "21m00Tcm4TlvDq8Ikt00", "name": "Rachel", "category": "premade",
                 "labels": {"accent": "american", "gender": "female", "language": "en"},
                 "preview_url": "https://example.invalid/rachel.mp3"},
                {"voice_id": "pNInz6obpgDQGcFmaJgB", "name": "Adam", "category": "premade",
                 "labels": {"accent": "american", "gender": "male"},
                 "verified_languages": [{"language": "en", "model_id": "eleven_flash_v2_5"}]},
            ]}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_are_split_into_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRI\r\nFF\r\n--XyZ--\r\n";
        let request = Request {
            method: "POST".into(),
            target: "/v1/audio/transcriptions?x=a%20b".into(),
            headers: vec![(
                "content-type".into(),
                "multipart/form-data; boundary=XyZ".into(),
            )],
            body: body.to_vec(),
            received: Instant::now(),
        };
        let parts = request.multipart().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].name.as_str(), parts[0].text()),
            ("model", "whisper-1".into())
        );
        assert_eq!(parts[1].filename.as_deref(), Some("a.wav"));
        assert_eq!(parts[1].content_type.as_deref(), Some("audio/wav"));
        assert_eq!(parts[1].data, b"RI\r\nFF");
        assert_eq!(request.query("x").as_deref(), Some("a b"));
        assert_eq!(request.path(), "/v1/audio/transcriptions");
    }
}
