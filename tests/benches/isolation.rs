//! What process isolation costs, in one run: the same provider (the `fault` test plugin in
//! `ok` mode) in-process and in a worker process, called through the host's provider handles
//! exactly as the pipeline calls them.
//!
//! - `transcribe` of a 5 s utterance (80 000 samples; the plugin sums them): p50 and p95 of
//!   each, interleaved call by call so that both see the same machine;
//! - the first chunk of a synthesis (`synthesize` → first audio through `SpeechStream`);
//! - a worker killed with SIGKILL: time until a call succeeds again (the restart), and, when
//!   the Whisper model is there, how long a local-whisper worker takes to come up (model load).
//!
//! Run: `cargo build --release -p openclaw-voice -p openclaw-test-plugin-fault
//! -p openclaw-plugin-local-whisper && cargo bench -p openclaw-voice-tests --bench isolation`.
//! Results: docs/BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openclaw_voice::config::{Config, Isolation, ProviderConfig};
use openclaw_voice::plugins::worker::WorkerLauncher;
use openclaw_voice::plugins::{PluginSet, Providers, SpeechToTextProvider, TextToSpeechProvider};
use openclaw_voice_tests::{binary, whisper_model, PluginDir, FAULT};
use plugin_api::abi::{SynthesisOptions, TranscribeOptions};

const CALLS: usize = 400;

fn config(isolation: Isolation, plugin: &str, settings: toml::Table) -> Config {
    let mut config = Config::default();
    config.stt.providers = vec!["p".into()];
    config.tts.providers = vec!["p".into()];
    config.providers.insert(
        "p".into(),
        ProviderConfig {
            plugin: Some(plugin.into()),
            isolation,
            settings,
            ..ProviderConfig::default()
        },
    );
    config
}

async fn build(
    dir: &PluginDir,
    config: &Config,
) -> (Arc<SpeechToTextProvider>, Option<Arc<TextToSpeechProvider>>) {
    let set = PluginSet::for_config(dir.path(), config)
        .with_launcher(WorkerLauncher { program: binary() });
    let providers = Providers::build(&set, config).await;
    assert!(providers.stt.len() == 1, "{:?}", providers.failures);
    (providers.stt[0].clone(), providers.tts.first().cloned())
}

fn percentile(times: &mut [f64], p: f64) -> f64 {
    times.sort_by(f64::total_cmp);
    times[((times.len() - 1) as f64 * p).round() as usize]
}

async fn transcribe_ms(stt: &SpeechToTextProvider, audio: &Arc<[i16]>) -> f64 {
    let started = Instant::now();
    stt.transcribe(audio.clone(), TranscribeOptions::default())
        .await
        .expect("transcribe");
    started.elapsed().as_secs_f64() * 1e3
}

async fn first_audio_ms(tts: &TextToSpeechProvider) -> f64 {
    let started = Instant::now();
    let mut stream = tts.synthesize("Hello there.".into(), SynthesisOptions::default());
    stream.next().await.expect("a chunk").expect("audio");
    let ms = started.elapsed().as_secs_f64() * 1e3;
    while stream.next().await.is_some() {}
    ms
}

fn report(what: &str, inproc: &mut [f64], process: &mut [f64]) {
    let (a50, b50) = (percentile(inproc, 0.5), percentile(process, 0.5));
    let (a95, b95) = (percentile(inproc, 0.95), percentile(process, 0.95));
    println!(
        "{what}: in-process p50 {a50:.3} ms p95 {a95:.3} ms · process p50 {b50:.3} ms p95 \
         {b95:.3} ms · added p50 {:.3} ms",
        b50 - a50
    );
}

async fn overhead(dir: &PluginDir) {
    let (in_stt, in_tts) = build(
        dir,
        &config(Isolation::InProcess, "fault", toml::Table::new()),
    )
    .await;
    let (pr_stt, pr_tts) = build(
        dir,
        &config(Isolation::Process, "fault", toml::Table::new()),
    )
    .await;
    let (in_tts, pr_tts) = (in_tts.expect("tts"), pr_tts.expect("tts"));
    let audio: Arc<[i16]> = (0..80_000u32).map(|n| (n % 2_000) as i16 - 1_000).collect();
    let (mut a, mut b, mut c, mut d) = (vec![], vec![], vec![], vec![]);
    for _ in 0..20 {
        transcribe_ms(&in_stt, &audio).await;
        transcribe_ms(&pr_stt, &audio).await;
    }
    for _ in 0..CALLS {
        a.push(transcribe_ms(&in_stt, &audio).await);
        b.push(transcribe_ms(&pr_stt, &audio).await);
        c.push(first_audio_ms(&in_tts).await);
        d.push(first_audio_ms(&pr_tts).await);
    }
    report("transcribe, 5 s utterance", &mut a, &mut b);
    report("synthesis, first chunk", &mut c, &mut d);
}

async fn restart(dir: &PluginDir) {
    let (stt, _) = build(
        dir,
        &config(Isolation::Process, "fault", toml::Table::new()),
    )
    .await;
    let audio: Arc<[i16]> = vec![1i16; 16_000].into();
    let mut times = Vec::new();
    for _ in 0..10 {
        let pid = stt.worker().and_then(|w| w.pid).expect("a running worker");
        let killed = Instant::now();
        // SAFETY: kill(2) with a pid this process started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        loop {
            let serving = stt.worker().and_then(|w| w.pid).is_some_and(|p| p != pid);
            if serving
                && stt
                    .transcribe(audio.clone(), TranscribeOptions::default())
                    .await
                    .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        times.push(killed.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "restart (SIGKILL → serving again): p50 {:.1} ms, max {:.1} ms over 10",
        percentile(&mut times, 0.5),
        percentile(&mut times, 1.0)
    );
}

async fn model_load() {
    let dir = PluginDir::with(&["openclaw_plugin_local_whisper"]);
    let mut settings = toml::Table::new();
    settings.insert("model".into(), whisper_model().display().to_string().into());
    let mut config = config(Isolation::Process, "local-whisper", settings);
    config.tts.providers.clear();
    let started = Instant::now();
    build(&dir, &config).await;
    println!(
        "local-whisper worker up (process start + model load): {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = PluginDir::with(&[FAULT]);
    runtime.block_on(async {
        overhead(&dir).await;
        restart(&dir).await;
        model_load().await;
    });
}
