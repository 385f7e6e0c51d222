//! The speech-to-text pool under load: one `openai-whisper` provider with
//! `base_urls` = four local fake transcription servers, driven through the host's provider
//! (`SpeechToTextProvider::transcribe`, the pipeline's path).
//!
//! - Three healthy servers with one worker each (requests queue, as on a GPU server without
//!   batching) and service times of 100, 200 and 400 ms; one server that always answers 503,
//!   listed first so that it is tried before anything is known about the others.
//! - Open-loop load: Poisson arrivals (fixed seed) at `RATE` utterances per second for
//!   `SECONDS`, each a 1 s utterance, none waiting for another.
//! - The yardstick: the **ideal least-loaded assignment** of the same arrivals, computed
//!   offline with perfect knowledge: each utterance goes to the server where it would finish
//!   first (`max(arrival, server free) + service`). The pool knows only what it measures.
//! - The failing server: every request it receives is timed; after the first
//!   `endpoint_failures` (which open its circuit) each further one must come at least
//!   `endpoint_cooldown_ms` after the one before (a probe), never while the circuit is open.
//!
//! Passes (exit 0) when the pool's p50 latency is within 10 % of the ideal's and no request
//! reached the failing server while its circuit was open.
//!
//! Run: `cargo build -p openclaw-plugin-openai-whisper && cargo bench --profile dev -p
//! openclaw-voice-tests --bench stt_pool [-- SECONDS RATE]` (default 30 s at 12 per second;
//! the figures are the servers' simulated times, so the profile matters little; with
//! `cargo build --release …` plain `cargo bench` runs it on release libraries).
//! Results: docs/BENCHMARKS.md, "STT pool".

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use abi_stable::std_types::{ROption, RString};
use openclaw_voice::config::Config;
use openclaw_voice::plugins::{PluginSet, Providers};
use openclaw_voice_tests::fake_cloud::{one_worker, openai, FakeServer, Request};
use openclaw_voice_tests::{PluginDir, OPENAI_WHISPER};
use plugin_api::abi::TranscribeOptions;

const SERVICE_MS: [u64; 3] = [100, 200, 400];
const FAILURES: u32 = 3;
const COOLDOWN_MS: u64 = 5_000;
const KEY_VAR: &str = "OCV_BENCH_STT_POOL_KEY";
const KEY: &str = "bench-key-stt-pool-0123456789";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// The ideal least-loaded assignment's latencies (ms) and requests per server.
fn ideal(arrivals_ms: &[f64]) -> (Vec<f64>, [usize; 3]) {
    let mut free = [0.0f64; 3];
    let mut counts = [0usize; 3];
    let mut latencies = Vec::with_capacity(arrivals_ms.len());
    for &a in arrivals_ms {
        let (i, done) = (0..3)
            .map(|i| (i, free[i].max(a) + SERVICE_MS[i] as f64))
            .fold(
                (0, f64::INFINITY),
                |best, x| if x.1 < best.1 { x } else { best },
            );
        free[i] = done;
        counts[i] += 1;
        latencies.push(done - a);
    }
    latencies.sort_by(f64::total_cmp);
    (latencies, counts)
}

/// Checks the failing server's request times: `FAILURES` requests, then probes at least a
/// cooldown apart. Returns (requests, probes, violations).
fn breaker_check(requests: &[Request]) -> (usize, usize, usize) {
    let mut times: Vec<Instant> = requests.iter().map(|r| r.received).collect();
    times.sort();
    let cooldown = Duration::from_millis(COOLDOWN_MS);
    let probes = times.len().saturating_sub(FAILURES as usize);
    let violations = times
        .windows(2)
        .skip(FAILURES as usize - 1)
        .filter(|w| w[1] - w[0] < cooldown)
        .count();
    (times.len(), probes, violations)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<f64>().ok());
    let seconds = args.next().unwrap_or(30.0);
    let rate = args.next().unwrap_or(12.0);
    std::env::set_var(KEY_VAR, KEY);
    let broken = FakeServer::start(|_: &Request| openai::server_error(503));
    let servers: Vec<FakeServer> = SERVICE_MS
        .iter()
        .map(|ms| {
            FakeServer::start(one_worker(
                Duration::from_millis(*ms),
                openai::transcriptions(KEY, &format!("{ms} ms")),
            ))
        })
        .collect();
    let urls: Vec<String> = std::iter::once(&broken)
        .chain(&servers)
        .map(|s| format!("\"{}\"", s.base_url()))
        .collect();
    let dir = PluginDir::with(&[OPENAI_WHISPER]);
    let set = PluginSet::scan(dir.path())?;
    let config: Config = toml::from_str(&format!(
        "[stt]\nproviders = [\"pool\"]\n[providers.pool]\nplugin = \"openai-whisper\"\n\
         timeout_ms = 60000\nmax_concurrent_calls = 256\n[providers.pool.settings]\n\
         base_urls = [{}]\napi_key_env = \"{KEY_VAR}\"\nresponse_format = \"json\"\n\
         timeout_ms = 60000\n\
         endpoint_failures = {FAILURES}\nendpoint_cooldown_ms = {COOLDOWN_MS}\n\
         backoff_initial_ms = 10\nbackoff_max_ms = 50\n",
        urls.join(", ")
    ))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(512)
        .enable_all()
        .build()?;
    let providers = runtime.block_on(Providers::build(&set, &config));
    let provider = providers
        .stt
        .first()
        .cloned()
        .ok_or_else(|| format!("the provider was not built: {:?}", providers.failures))?;

    // Poisson arrivals, fixed seed.
    let mut rng = fastrand::Rng::with_seed(16);
    let mut arrivals = Vec::new();
    let mut t = 0.0;
    loop {
        t += -(1.0 - rng.f64()).ln() / rate * 1000.0;
        if t > seconds * 1000.0 {
            break;
        }
        arrivals.push(t);
    }
    let audio: Arc<[i16]> = (0..16_000).map(|i| (i % 200) as i16 - 100).collect();
    let start = Instant::now();
    let results: Vec<(f64, bool)> = runtime.block_on(async {
        let tasks: Vec<_> = arrivals
            .iter()
            .map(|&at| {
                let provider = provider.clone();
                let audio = audio.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until((start + Duration::from_secs_f64(at / 1000.0)).into())
                        .await;
                    let sent = Instant::now();
                    let result = provider
                        .transcribe(
                            audio,
                            TranscribeOptions {
                                language: ROption::RSome(RString::from("en")),
                                prompt: ROption::RNone,
                            },
                        )
                        .await;
                    if let Err(e) = &result {
                        eprintln!("failed: {e}");
                    }
                    (sent.elapsed().as_secs_f64() * 1000.0, result.is_ok())
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or((f64::NAN, false)));
        }
        out
    });
    let failed = results.iter().filter(|(_, ok)| !ok).count();
    let mut pool: Vec<f64> = results.iter().map(|(l, _)| *l).collect();
    pool.sort_by(f64::total_cmp);
    let (best, best_counts) = ideal(&arrivals);
    let counts: Vec<usize> = servers.iter().map(FakeServer::hits).collect();
    let (to_broken, probes, violations) = breaker_check(&broken.requests());
    let (p50, i50) = (percentile(&pool, 0.5), percentile(&best, 0.5));
    let ratio = p50 / i50;

    println!(
        "STT pool: {} utterances in {seconds} s ({rate}/s, {:.0} % of the pool's capacity), servers {:?} ms + one failing",
        arrivals.len(),
        rate / SERVICE_MS.iter().map(|ms| 1000.0 / *ms as f64).sum::<f64>() * 100.0,
        SERVICE_MS
    );
    println!("| | p50 ms | p90 ms | p99 ms | utterances per server (100/200/400 ms) |");
    println!("|---|---|---|---|---|");
    for (name, l, c) in [
        ("pool (least outstanding × latency)", &pool, counts.clone()),
        ("ideal least-loaded", &best, best_counts.to_vec()),
    ] {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:?} |",
            percentile(l, 0.5),
            percentile(l, 0.9),
            percentile(l, 0.99),
            c
        );
    }
    println!("p50 pool / ideal: {ratio:.3} (goal ≤ 1.10); failed utterances: {failed}");
    println!(
        "failing server: {to_broken} request(s): {} before its circuit opened, {probes} probe(s) \
         at least {COOLDOWN_MS} ms apart; requests while open: {violations}",
        to_broken.min(FAILURES as usize)
    );
    if ratio > 1.10 || violations > 0 || failed > 0 {
        return Err(format!(
            "goal missed: p50 ratio {ratio:.3}, {violations} request(s) while open, {failed} failed"
        )
        .into());
    }
    Ok(())
}
