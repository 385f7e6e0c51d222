//! Failover and circuit breaking with the real cloud plugins (`cdylib`s loaded from disk)
//! against local fake servers that follow the OpenAI and ElevenLabs contracts
//! (`openclaw_voice_tests::fake_cloud`):
//!
//! - through the host library (`PluginSet`, `Providers`, `failover`, the provider handles): the
//!   circuit opens after repeated failures, skips the provider, probes it after the cooldown
//!   and closes on recovery; ElevenLabs' first chunk reaches the host's stream while the server
//!   is still holding the rest back;
//! - through the real binary's `simulate`: a stalling speech-to-text and text-to-speech
//!   server time out and the turn completes on the next providers (local-whisper, openai-tts);
//!   a refused key opens the circuit at once, is logged once, and the key is in no log line.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openclaw_voice::config::Config;
use openclaw_voice::plugins::{failover, CircuitState, PluginSet, Providers};
use openclaw_voice_tests::fake_cloud::{
    elevenlabs, openai, pcm_bytes, tone, FakeServer, Gate, Piece, Reply, Request,
};
use openclaw_voice_tests::{
    espeak_speech, openclaw_voice, toml_path, whisper_model, ConfigDir, PluginDir, Run, ELEVENLABS,
    FAULT, OPENAI_TTS, OPENAI_WHISPER,
};
use plugin_api::abi::{ErrorKind, SynthesisOptions, TranscribeOptions};

const WHISPER: &str = "openclaw_plugin_local_whisper";
const ESPEAK: &str = "openclaw_plugin_espeak";

/// The variable holding the fake servers' key, and the key.
const KEY_VAR: &str = "OCV_FAILOVER_TEST_KEY";
const KEY: &str = "sk-failover-test-7d3e9a1b5c2f4e6d8a0b";

fn set_key() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var(KEY_VAR, KEY));
}

/// Runs `future` on a fresh runtime, dropped without waiting for abandoned blocking calls.
fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start a tokio runtime");
    let output = runtime.block_on(future);
    runtime.shutdown_background();
    output
}

fn build(set: &PluginSet, text: &str) -> Providers {
    let config: Config = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let providers = block_on(Providers::build(set, &config));
    assert!(providers.failures.is_empty(), "{:?}", providers.failures);
    providers
}

/// One second of a quiet ramp.
fn utterance() -> Arc<[i16]> {
    (0..16_000).map(|i| (i % 200) as i16 - 100).collect()
}

#[test]
fn the_circuit_opens_after_repeated_failures_skips_the_provider_and_closes_after_recovery() {
    set_key();
    let healthy = Arc::new(AtomicBool::new(false));
    let server = {
        let healthy = healthy.clone();
        let transcribe = openai::transcriptions(KEY, "The cloud is back.");
        FakeServer::start(move |request: &Request| {
            if healthy.load(Ordering::SeqCst) {
                transcribe(request)
            } else {
                openai::server_error(503)
            }
        })
    };
    let dir = PluginDir::with(&[OPENAI_WHISPER, FAULT]);
    let set = PluginSet::scan(dir.path()).unwrap();
    let providers = build(
        &set,
        &format!(
            r#"
            [stt]
            providers = ["cloud", "backup"]
            [providers.cloud]
            plugin = "openai-whisper"
            circuit = {{ failures = 2, cooldown_ms = 400 }}
            settings = {{ base_url = "{}", api_key_env = "{KEY_VAR}", max_retries = 0 }}
            [providers.backup]
            plugin = "fault"
            "#,
            server.base_url()
        ),
    );
    let cloud = providers.stt[0].stats().clone();
    let transcribe = || {
        block_on(failover::transcribe(
            &providers.stt,
            utterance(),
            TranscribeOptions::default(),
            Duration::from_secs(10),
        ))
        .expect("the backup always answers")
        .provider
    };

    // Two 503s in a row: each turn is answered by the backup; then the circuit is open.
    assert_eq!(transcribe(), "backup");
    assert_eq!(cloud.snapshot().circuit.state, CircuitState::Closed);
    assert_eq!(transcribe(), "backup");
    let snap = cloud.snapshot();
    assert_eq!(snap.circuit.state, CircuitState::Open);
    assert_eq!(snap.failures.get("unavailable"), Some(&2));
    assert!(snap.circuit.next_probe_in.is_some());
    assert_eq!(server.hits(), 2);

    // While open, turns skip it: no request reaches the server.
    healthy.store(true, Ordering::SeqCst);
    assert_eq!(transcribe(), "backup");
    assert_eq!(server.hits(), 2, "an open circuit is skipped");

    // After the cooldown one probe goes through, succeeds, and closes the circuit.
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(cloud.circuit().state, CircuitState::HalfOpen);
    assert_eq!(transcribe(), "cloud");
    let snap = cloud.snapshot();
    assert_eq!(snap.circuit.state, CircuitState::Closed);
    assert_eq!(snap.circuit.times_opened, 1);
    assert_eq!((snap.calls, snap.successes), (3, 1));
    assert_eq!(server.hits(), 3);
    assert_eq!(transcribe(), "cloud");
}

#[test]
fn a_refused_key_opens_the_circuit_at_once_and_the_backup_answers() {
    set_key();
    let server = FakeServer::start(openai::transcriptions("sk-the-right-key-00000000", "x"));
    let dir = PluginDir::with(&[OPENAI_WHISPER, FAULT]);
    let set = PluginSet::scan(dir.path()).unwrap();
    let providers = build(
        &set,
        &format!(
            r#"
            [stt]
            providers = ["openai-whisper", "backup"]
            [providers.openai-whisper.settings]
            base_url = "{}"
            api_key_env = "{KEY_VAR}"
            [providers.backup]
            plugin = "fault"
            "#,
            server.base_url()
        ),
    );
    let result = block_on(failover::transcribe(
        &providers.stt,
        utterance(),
        TranscribeOptions::default(),
        Duration::from_secs(10),
    ));
    let done = result.expect("the backup answers");
    assert_eq!(done.provider, "backup");
    assert_eq!(done.errors.len(), 1);
    assert_eq!(done.errors[0].kind, ErrorKind::Auth);
    let stats = providers.stt[0].stats().snapshot();
    assert_eq!(
        stats.circuit.state,
        CircuitState::Open,
        "one auth error opens it"
    );
    assert_eq!(
        stats.circuit.reason.map(|r| r.kind()),
        Some(ErrorKind::Auth)
    );
    // The error names the provider and the variable, never the key.
    let error = block_on(providers.stt[0].transcribe(utterance(), TranscribeOptions::default()))
        .expect_err("the key is refused");
    let text = error.to_string();
    assert!(
        text.contains("openai-whisper") && text.contains(KEY_VAR),
        "{text}"
    );
    assert!(
        !text.contains(KEY) && !text.contains(&KEY[KEY.len() - 6..]),
        "{text}"
    );
}

#[test]
fn elevenlabs_first_audio_reaches_the_host_before_the_server_has_finished() {
    set_key();
    let gate = Gate::new();
    let (first, rest) = (tone(4_800, 24_000), tone(48_000, 24_000));
    let server = {
        let (gate, first, rest) = (gate.clone(), first.clone(), rest.clone());
        FakeServer::start(
            move |request: &Request| match elevenlabs::parse_stream(request, KEY) {
                Ok(_) => Reply::chunked(
                    200,
                    "audio/pcm",
                    vec![
                        Piece::Data(pcm_bytes(&first)),
                        Piece::Wait(gate.clone()),
                        Piece::Data(pcm_bytes(&rest)),
                    ],
                ),
                Err(reply) => reply,
            },
        )
    };
    let dir = PluginDir::with(&[ELEVENLABS]);
    let set = PluginSet::scan(dir.path()).unwrap();
    let providers = build(
        &set,
        &format!(
            r#"
            [tts]
            providers = ["elevenlabs"]
            [providers.elevenlabs.settings]
            base_url = "{}"
            api_key_env = "{KEY_VAR}"
            "#,
            server.base_url()
        ),
    );
    let tts = providers.tts[0].clone();
    let (first_len, held, total) = block_on(async move {
        let mut stream = tts.synthesize("A long answer.".into(), SynthesisOptions::default());
        let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("audio while the server holds the rest back")
            .expect("a chunk")
            .expect("no error");
        let held = !gate.is_open();
        gate.open();
        let mut total = first.samples.len();
        while let Some(chunk) = stream.next().await {
            total += chunk.expect("no error").samples.len();
        }
        (first.samples.len(), held, total)
    });
    assert!(held, "the first chunk came before the server sent the rest");
    assert!(first_len > 0 && first_len <= first.len());
    assert_eq!(total, first.len() + rest.len(), "every sample arrives");
    let stats = providers.tts[0].stats().snapshot();
    assert_eq!((stats.calls, stats.successes), (1, 1));
}

/// A `simulate` setup: the plugins, a config (`extra` appended) and a work directory.
struct Simulation {
    _plugins: PluginDir,
    config: ConfigDir,
    work: tempfile::TempDir,
}

impl Simulation {
    fn new(extra: &str) -> Self {
        let plugins = PluginDir::with(&[OPENAI_WHISPER, WHISPER, ELEVENLABS, OPENAI_TTS, ESPEAK]);
        // The tests count calls to each provider: one transcription per turn, no speculation.
        let config = ConfigDir::energy_endpointing();
        config.write(
            "test.toml",
            &format!(
                "[plugins]\ndir = {}\n\
                 [providers.local-whisper.settings]\nmodel = {}\n\
                 [ops]\nenabled = false\n{extra}",
                toml_path(plugins.path()),
                toml_path(&whisper_model())
            ),
        );
        Simulation {
            _plugins: plugins,
            config,
            work: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn simulate(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut all = vec![
            "--config-dir".to_string(),
            self.config.path().display().to_string(),
            "--env".into(),
            "test".into(),
            "simulate".into(),
            "--json".into(),
            "--output".into(),
            self.work.path().join("reply.wav").display().to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        openclaw_voice(all, env)
    }
}

fn turns(run: &Run) -> Vec<serde_json::Value> {
    run.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("turn").is_some())
        .collect()
}

#[test]
fn stalling_cloud_providers_time_out_and_the_turn_completes_on_the_next_ones() {
    let stt_server = FakeServer::start(|_| Reply::stall());
    let tts_stall = FakeServer::start(|_| Reply::stall());
    let voice = tone(24_000, 24_000);
    let tts_server = FakeServer::start(openai::speech(KEY, voice, 2_400, Duration::ZERO));
    let env = Simulation::new(&format!(
        r#"
        [stt]
        providers = ["openai-whisper", "local-whisper"]
        [tts]
        providers = ["elevenlabs", "openai-tts"]
        # The plugin's own timeout comes first here...
        [providers.openai-whisper]
        timeout_ms = 1500
        [providers.openai-whisper.settings]
        base_url = "{}"
        api_key_env = "{KEY_VAR}"
        timeout_ms = 1000
        # ...and the host's here.
        [providers.elevenlabs]
        timeout_ms = 1000
        [providers.elevenlabs.settings]
        base_url = "{}"
        api_key_env = "{KEY_VAR}"
        timeout_ms = 2000
        [providers.openai-tts.settings]
        base_url = "{}"
        api_key_env = "{KEY_VAR}"
        [logging]
        level = "warn"
        "#,
        stt_server.base_url(),
        tts_stall.base_url(),
        tts_server.base_url()
    ));
    let question = espeak_speech(env.work.path(), "q.wav", "What is the capital of France?");
    let run = env.simulate(
        &["--fast", "--input", question.to_str().unwrap()],
        &[(KEY_VAR, KEY)],
    );
    assert!(run.success(), "{run}");
    let turns = turns(&run);
    assert_eq!(turns.len(), 1, "{run}");
    let turn = &turns[0];
    assert_eq!(turn["outcome"]["kind"], "completed", "{run}");
    assert_eq!(turn["stt_provider"], "local-whisper", "{run}");
    assert_eq!(turn["tts_provider"], "openai-tts", "{run}");
    let heard = turn["transcript"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(heard.contains("france"), "{run}");
    assert!(
        turn["reply_audio_ms"].as_f64().unwrap_or_default() > 0.0,
        "{run}"
    );
    let errors = turn["errors"].to_string();
    assert!(
        errors.contains("openai-whisper") && errors.contains("timeout"),
        "{run}"
    );
    assert!(
        errors.contains("elevenlabs") && errors.contains("timeout"),
        "{run}"
    );
    assert_eq!(stt_server.hits(), 1, "{run}");
    assert!(tts_stall.hits() >= 1 && tts_server.hits() >= 1, "{run}");
}

#[test]
fn a_refused_key_is_logged_once_and_never_shows_the_key() {
    let stt_server = FakeServer::start(openai::transcriptions("sk-the-right-key-00000000", "x"));
    let env = Simulation::new(&format!(
        r#"
        [stt]
        providers = ["openai-whisper", "local-whisper"]
        [tts]
        providers = ["espeak"]
        [providers.openai-whisper.settings]
        base_url = "{}"
        api_key_env = "{KEY_VAR}"
        [providers.espeak.settings]
        voice = "en-us"
        [pipeline]
        barge_in = false
        [logging]
        format = "json"
        "#,
        stt_server.base_url(),
    ));
    let first = espeak_speech(env.work.path(), "a.wav", "Hello there.");
    let second = espeak_speech(env.work.path(), "b.wav", "Good morning.");
    // Real time, so that the second utterance ends after the first turn's failure.
    let run = env.simulate(
        &[
            "--input",
            first.to_str().unwrap(),
            "--speaker",
            "ann",
            "--input",
            second.to_str().unwrap(),
            "--speaker",
            "bob",
            "--at",
            "3s",
        ],
        &[(KEY_VAR, KEY), ("LOG_LEVEL", "trace")],
    );
    assert!(run.success(), "{run}");
    let turns = turns(&run);
    assert_eq!(turns.len(), 2, "{run}");
    for turn in &turns {
        assert_eq!(turn["outcome"]["kind"], "completed", "{run}");
        assert_eq!(turn["stt_provider"], "local-whisper", "{run}");
    }
    assert_eq!(
        stt_server.hits(),
        1,
        "the second turn skipped the open circuit: {run}"
    );
    let first_errors = turns[0]["errors"].to_string();
    assert!(first_errors.contains(KEY_VAR), "{first_errors}");

    // Every log line: the refusal is an error exactly once, with the variable, and nothing
    // anywhere shows the key (not even OpenAI's masked echo of it).
    let loud: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("HTTP 401"))
        .filter(|l| l.contains("\"ERROR\"") || l.contains("\"WARN\""))
        .collect();
    assert_eq!(loud.len(), 1, "{}", run.stderr);
    assert!(
        loud[0].contains("\"ERROR\"") && loud[0].contains(KEY_VAR),
        "{}",
        loud[0]
    );
    assert!(loud[0].contains("circuit"), "{}", loud[0]);
    let output = run.output();
    assert!(!output.contains(KEY), "the key leaked: {output}");
    assert!(
        !output.contains(&KEY[KEY.len() - 6..]),
        "part of the key leaked: {output}"
    );
    assert!(
        output.lines().count() > 10,
        "trace logging captured: {output}"
    );
}
