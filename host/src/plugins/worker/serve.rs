//! The worker side: `openclaw-voice plugin-worker` loads one plugin library, builds one
//! provider and serves the host's requests over stdin/stdout until the host closes the pipe
//! (or dies: the worker asks the kernel to kill it with its parent).
//!
//! A crash here (a segfault in C++ code, `abort()`, a stack overflow, running out of the
//! memory limit) ends this process only; the host sees the pipe close and reports a typed
//! provider error, fails over and starts a new worker.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Stdout, Write};
use std::sync::{Arc, Mutex, OnceLock};

use abi_stable::std_types::{ROption, RStr};
use plugin_api::abi::{
    HostContext, LogLevel, Pcm16kMono, PluginError, Role, SpeechStreamBox, SttBox, SttStreamBox,
    TtsBox,
};

use super::protocol::{level_from, read_request, write_reply, Reply, Request, Setup};
use crate::plugins::loader::{self, LoadedPlugin};

type Writer = Arc<Mutex<BufWriter<Stdout>>>;

/// Where this process's replies and the plugin's log records go.
static OUT: OnceLock<Writer> = OnceLock::new();

fn send(id: u64, reply: &Reply) {
    if let Some(out) = OUT.get() {
        let mut w = match out.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        // A closed pipe means the host is gone; the read loop ends this process.
        let _ = write_reply(&mut *w, id, reply);
    }
}

extern "C" fn forward_log(level: LogLevel, _plugin: RStr<'_>, target: RStr<'_>, msg: RStr<'_>) {
    send(
        0,
        &Reply::Log(level as u8, target.to_string(), msg.to_string()),
    );
}

/// Asks the kernel to kill this process when the host dies, applies the memory limit, and
/// ignores SIGTERM and SIGINT: a service manager or a terminal signals the whole group, and
/// the host, which drains its turns first, ends its workers by closing their pipes.
fn harden(memory_limit_mb: Option<u64>) {
    // SAFETY: prctl, signal and setrlimit take plain integers and a pointer to a local struct.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        if let Some(mb) = memory_limit_mb {
            let bytes = mb.saturating_mul(1024 * 1024) as libc::rlim_t;
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
        }
    }
}

/// The provider this worker serves.
enum Provider {
    Stt(Arc<SttBox>),
    Tts(Arc<TtsBox>),
}

/// Synthesis streams and transcription streams in flight, by request id, for `Cancel`.
#[derive(Default)]
struct Open {
    speech: Mutex<HashMap<u64, Arc<SpeechStreamBox>>>,
    transcription: Mutex<HashMap<u64, Arc<SttStreamBox>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Runs the worker: reads the setup, builds the provider, serves requests. Returns the exit
/// code (0 when the host closed the pipe).
pub fn serve(memory_limit_mb: Option<u64>) -> i32 {
    harden(memory_limit_mb);
    let _ = OUT.set(Arc::new(Mutex::new(BufWriter::new(std::io::stdout()))));
    let mut input = BufReader::new(std::io::stdin());
    let setup = match read_request(&mut input) {
        Ok(Some((_, Request::Setup(setup)))) => setup,
        _ => {
            eprintln!("plugin-worker: expected a setup frame on stdin (this command is started by openclaw-voice)");
            return 2;
        }
    };
    let provider = match build(&setup) {
        Ok(Some(p)) => p,
        Ok(None) => return 0,
        Err(e) => {
            send(0, &Reply::Error(e));
            return 0;
        }
    };
    super::release_free_heap();
    let provider = Arc::new(provider);
    let open = Arc::new(Open::default());
    loop {
        match read_request(&mut input) {
            Ok(Some((id, request))) => dispatch(&provider, &open, id, request),
            Ok(None) => return 0,
            Err(e) => {
                eprintln!("plugin-worker: bad frame from the host: {e}");
                return 2;
            }
        }
    }
}

/// Loads the library through the verified loader and builds the provider (`None`: only the
/// settings were to be checked).
fn build(setup: &Setup) -> Result<Option<Provider>, PluginError> {
    let host = HostContext {
        log: forward_log,
        max_level: level_from(setup.max_level),
    };
    let plugin: LoadedPlugin = loader::load_plugin(
        std::path::Path::new(&setup.library),
        setup.sha256.as_deref(),
        host,
    )
    .map_err(|e| PluginError::config(format!("{}: {e}", setup.library)).with_retryable(false))?;
    if plugin.info.name != setup.expect_plugin {
        return Err(PluginError::config(format!(
            "{} is named for plugin `{}` but holds plugin `{}`",
            setup.library, setup.expect_plugin, plugin.info.name
        ))
        .with_retryable(false));
    }
    let module = plugin.module;
    let settings = RStr::from_str(&setup.settings);
    (module.validate_config())(setup.role, settings).into_result()?;
    let info = serde_json::to_string(&plugin.info)
        .map_err(|e| PluginError::internal(format!("cannot describe the plugin: {e}")))?;
    let ready = Reply::Ready(info);
    if setup.validate_only {
        send(0, &ready);
        return Ok(None);
    }
    let provider = match setup.role {
        Role::SpeechToText => Provider::Stt(Arc::new((module.new_stt())(settings).into_result()?)),
        Role::TextToSpeech => Provider::Tts(Arc::new((module.new_tts())(settings).into_result()?)),
    };
    send(0, &ready);
    Ok(Some(provider))
}

fn reply_with<T>(id: u64, result: Result<T, PluginError>, ok: impl FnOnce(T) -> Reply) {
    match result {
        Ok(v) => send(id, &ok(v)),
        Err(e) => send(id, &Reply::Error(e)),
    }
}

fn wrong_role(what: &str) -> PluginError {
    PluginError::invalid_input(format!("{what} is not offered by this provider's role"))
}

/// Handles one request; calls that may block run on their own thread.
fn dispatch(provider: &Arc<Provider>, open: &Arc<Open>, id: u64, request: Request) {
    if let Request::Cancel = request {
        if let Some(s) = lock(&open.speech).get(&id) {
            s.cancel();
        }
        if let Some(s) = lock(&open.transcription).remove(&id) {
            s.cancel();
        }
        return;
    }
    let (provider, open) = (provider.clone(), open.clone());
    std::thread::spawn(move || handle(&provider, &open, id, request));
}

fn handle(provider: &Provider, open: &Open, id: u64, request: Request) {
    match (provider, request) {
        (Provider::Stt(stt), Request::Transcribe(options, samples)) => reply_with(
            id,
            stt.transcribe_detailed(Pcm16kMono::new(&samples), &options)
                .into_result(),
            Reply::Transcript,
        ),
        (Provider::Stt(stt), Request::Health) => {
            reply_with(id, stt.health().into_result(), Reply::Health)
        }
        (Provider::Tts(tts), Request::Health) => {
            reply_with(id, tts.health().into_result(), Reply::Health)
        }
        (Provider::Tts(tts), Request::Voices) => reply_with(
            id,
            tts.voices().into_result().map(|v| v.into_vec()),
            Reply::Voices,
        ),
        (Provider::Tts(tts), Request::Synthesize(text, options)) => {
            match tts
                .synthesize(RStr::from_str(&text), &options)
                .into_result()
            {
                Ok(stream) => stream_speech(open, id, Arc::new(stream)),
                Err(e) => send(id, &Reply::Error(e)),
            }
        }
        (Provider::Stt(stt), Request::StreamStart(options)) => {
            match stt.start_stream(&options).into_result() {
                Ok(ROption::RSome(stream)) => {
                    lock(&open.transcription).insert(id, Arc::new(stream));
                    send(id, &Reply::StreamStarted(true));
                }
                Ok(ROption::RNone) => send(id, &Reply::StreamStarted(false)),
                Err(e) => send(id, &Reply::Error(e)),
            }
        }
        (_, Request::StreamPush(samples)) => {
            let stream = lock(&open.transcription).get(&id).cloned();
            let result = match stream {
                Some(s) => s.push(Pcm16kMono::new(&samples)).into_result(),
                None => Err(PluginError::invalid_input(
                    "push to a stream that is not open",
                )),
            };
            reply_with(id, result, |p| Reply::Partial(p.into_option()));
        }
        (_, Request::StreamFinish) => {
            let stream = lock(&open.transcription).remove(&id);
            let result = match stream {
                Some(s) => s.finish().into_result(),
                None => Err(PluginError::invalid_input(
                    "finish of a stream that is not open",
                )),
            };
            reply_with(id, result, Reply::Final);
        }
        (_, other) => send(id, &Reply::Error(wrong_role(&format!("{other:?}")))),
    }
}

/// Pulls a synthesis to its end, sending each chunk as it comes.
fn stream_speech(open: &Open, id: u64, stream: Arc<SpeechStreamBox>) {
    lock(&open.speech).insert(id, stream.clone());
    loop {
        match stream.next_chunk().into_result() {
            Ok(ROption::RSome(chunk)) => send(id, &Reply::Chunk(chunk)),
            Ok(ROption::RNone) => {
                send(id, &Reply::End);
                break;
            }
            Err(e) => {
                send(id, &Reply::Error(e));
                break;
            }
        }
    }
    lock(&open.speech).remove(&id);
    if let Some(out) = OUT.get() {
        let _ = lock(out).flush();
    }
}
