//! Time to first audio of the `elevenlabs` plugin through the host's stream, against raw HTTP
//! clients, all talking to the same local fake ElevenLabs server, which waits a fixed
//! [`SERVER_DELAY`] (the model's "thinking") before it answers with chunked PCM.
//!
//! Four paths, interleaved so that background load hits each alike; each is timed from the
//! start of the request to the first audio sample in hand:
//!
//! - `raw TCP`: a new loopback connection, the request written by hand, the response read up
//!   to the first byte of the first chunk: the floor;
//! - `reqwest`: `reqwest::blocking` with a pooled connection, up to the first body read: the
//!   HTTP client the plugin uses, without the plugin;
//! - `plugin (ABI)`: the release `cdylib`, loaded by the host's loader, called through the
//!   ABI (`synthesize`, then `next_chunk`): plugin code, its worker thread and channel;
//! - `plugin + host stream`: `TextToSpeechProvider::synthesize` and `SpeechStream::next`, the
//!   path the pipeline takes (a tokio task, a permit, `spawn_blocking`, the chunk channel).
//!
//! Every response is read to its end, so pooled connections are reused. The "added" column is
//! each path's median minus the raw TCP median.
//!
//! Run: `cargo build --release -p openclaw-plugin-elevenlabs && cargo bench -p
//! openclaw-voice-tests --bench cloud_tts_ttfa [-- RUNS]` (default 200 runs per path).
//! Results: docs/BENCHMARKS.md, "Cloud TTS: time to first audio".

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use abi_stable::std_types::{ROption, RStr};
use openclaw_voice::config::Config;
use openclaw_voice::plugins::{PluginSet, Providers};
use openclaw_voice_tests::fake_cloud::{elevenlabs, pcm_pieces, tone, FakeServer, Reply};
use openclaw_voice_tests::{PluginDir, ELEVENLABS};
use plugin_api::abi::SynthesisOptions;

/// How long the fake server waits before it answers.
const SERVER_DELAY: Duration = Duration::from_millis(20);
const KEY_VAR: &str = "OCV_BENCH_ELEVENLABS_KEY";
const KEY: &str = "bench-key-0123456789";
const VOICE: &str = "21m00Tcm4TlvDq8Ikt00";
const TEXT: &str = "Sure, I can help with that.";

fn main() -> Result<(), Box<dyn Error>> {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    std::env::set_var(KEY_VAR, KEY);
    // 600 ms of 24 kHz audio in six chunks of 100 ms.
    let pcm = tone(14_400, 24_000);
    let server = FakeServer::start(
        move |request| match elevenlabs::parse_stream(request, KEY) {
            Ok(_) => Reply::chunked(200, "audio/pcm", pcm_pieces(&pcm, 2_400, Duration::ZERO))
                .after(SERVER_DELAY),
            Err(reply) => reply,
        },
    );
    let addr: SocketAddr = server.base_url().trim_start_matches("http://").parse()?;
    let path = format!("/v1/text-to-speech/{VOICE}/stream?output_format=pcm_24000");
    let body = serde_json::json!({"text": TEXT, "model_id": "eleven_flash_v2_5"}).to_string();

    let dir = PluginDir::with(&[ELEVENLABS]);
    let set = PluginSet::scan(dir.path())?;
    let config: Config = toml::from_str(&format!(
        "[tts]\nproviders = [\"elevenlabs\"]\n[providers.elevenlabs.settings]\n\
         base_url = \"{}\"\napi_key_env = \"{KEY_VAR}\"\n",
        server.base_url()
    ))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let providers = runtime.block_on(Providers::build(&set, &config));
    let provider = providers
        .tts
        .first()
        .cloned()
        .ok_or_else(|| format!("the provider was not built: {:?}", providers.failures))?;
    let module = set
        .plugins
        .get("elevenlabs")
        .ok_or("the elevenlabs plugin did not load")?
        .module();
    let settings = format!(
        "base_url = \"{}\"\napi_key_env = \"{KEY_VAR}\"\n",
        server.base_url()
    );
    let abi_tts = (module.new_tts())(RStr::from_str(&settings)).into_result()?;
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .build()?;
    let url = format!("{}{path}", server.base_url());

    let raw = || -> Result<Duration, Box<dyn Error>> { raw_ttfa(addr, &path, &body) };
    let direct = || -> Result<Duration, Box<dyn Error>> {
        let started = Instant::now();
        let mut response = client
            .post(&url)
            .header("xi-api-key", KEY)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()?
            .error_for_status()?;
        let mut buf = [0u8; 4_096];
        let n = response.read(&mut buf)?;
        let ttfa = started.elapsed();
        if n == 0 {
            return Err("no audio".into());
        }
        std::io::copy(&mut response, &mut std::io::sink())?;
        Ok(ttfa)
    };
    let abi = || -> Result<Duration, Box<dyn Error>> {
        let started = Instant::now();
        let stream = abi_tts
            .synthesize(RStr::from_str(TEXT), &SynthesisOptions::default())
            .into_result()?;
        let first = stream.next_chunk().into_result()?;
        let ttfa = started.elapsed();
        if first.is_none() {
            return Err("no audio".into());
        }
        while let ROption::RSome(_) = stream.next_chunk().into_result()? {}
        Ok(ttfa)
    };
    let host = || -> Result<Duration, Box<dyn Error>> {
        let provider = provider.clone();
        runtime.block_on(async move {
            let started = Instant::now();
            let mut stream = provider.synthesize(TEXT.into(), SynthesisOptions::default());
            let first = stream.next().await.ok_or("no audio")??;
            let ttfa = started.elapsed();
            if first.samples.is_empty() {
                return Err("an empty first chunk".into());
            }
            while let Some(chunk) = stream.next().await {
                chunk?;
            }
            Ok(ttfa)
        })
    };

    type Path<'a> = (
        &'a str,
        Box<dyn Fn() -> Result<Duration, Box<dyn Error>> + 'a>,
    );
    let paths: Vec<Path<'_>> = vec![
        ("raw TCP (new connection)", Box::new(raw)),
        ("reqwest::blocking (pooled)", Box::new(direct)),
        ("plugin (ABI)", Box::new(abi)),
        ("plugin + host stream", Box::new(host)),
    ];
    // Warm up: connections, page cache, the plugin's client.
    for (_, path) in &paths {
        for _ in 0..5 {
            path()?;
        }
    }
    let mut times: Vec<Vec<f64>> = paths.iter().map(|_| Vec::with_capacity(runs)).collect();
    for _ in 0..runs {
        for ((_, path), times) in paths.iter().zip(&mut times) {
            times.push(path()?.as_secs_f64() * 1_000.0);
        }
    }

    let floor = median(&times[0]);
    println!(
        "{runs} runs per path, interleaved; server delay {} ms; times in ms",
        SERVER_DELAY.as_millis()
    );
    println!();
    println!("| path | median | p90 | p99 | min | added (median) |");
    println!("|---|---|---|---|---|---|");
    for ((label, _), times) in paths.iter().zip(&times) {
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.2} | {:+.2} |",
            median(times),
            percentile(times, 0.9),
            percentile(times, 0.99),
            percentile(times, 0.0),
            median(times) - floor
        );
    }
    drop(paths);
    drop(providers);
    runtime.shutdown_background();
    Ok(())
}

/// A request written by hand on a new connection; the time until the first body byte.
fn raw_ttfa(addr: SocketAddr, path: &str, body: &str) -> Result<Duration, Box<dyn Error>> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nxi-api-key: {KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("HTTP/1.1 200") {
        return Err(format!("unexpected answer: {line}").into());
    }
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    line.clear();
    reader.read_line(&mut line)?; // the first chunk's size
    let mut first = [0u8; 2];
    reader.read_exact(&mut first)?;
    let ttfa = started.elapsed();
    std::io::copy(&mut reader, &mut std::io::sink())?;
    Ok(ttfa)
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

fn percentile(values: &[f64], q: f64) -> f64 {
    let v = sorted(values);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}
