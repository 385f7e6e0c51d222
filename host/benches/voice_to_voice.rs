//! Voice-to-voice latency on the offline stack (local-whisper, echo agent, espeak): from the
//! detected end of an utterance (the configured silence hang-over excluded) to the first reply
//! audio, over 24 spoken questions in several voices. Goal: p50 ≤ 400 ms on a 2-core machine.
//! Also runs `openclaw-voice simulate` on one question and reports its peak RSS: with the
//! defaults (the turn-taking models: goal ≤ 230 MB, issue #11) and with the energy gate (the
//! earlier goal, ≤ 200 MB with tiny.en).
//!
//! Needs the release plugins and the model: `make build model`, then
//! `cargo bench -p openclaw-voice --bench voice_to_voice`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openclaw_voice::agent::Agent;
use openclaw_voice::config;
use openclaw_voice::pipeline::{AudioOutput, Playback, SessionDeps, Speaker, VoiceSession};
use openclaw_voice::plugins::{Audio, PluginSet, Providers};
use openclaw_voice::voice::local::read_wav;

const QUESTIONS: &[&str] = &[
    "What is the capital of France?",
    "How far away is the moon?",
    "Can you tell me a joke about cats?",
    "What time does the library open tomorrow?",
    "Please remind me to call my mother tonight.",
    "How do I make a cup of green tea?",
    "Who wrote the novel Pride and Prejudice?",
    "What is the weather going to be like this weekend?",
    "Turn the music down a little, please.",
    "How many players are on a football team?",
    "What should I cook for dinner tonight?",
    "Explain how a rainbow forms.",
    "Is it going to rain in London today?",
    "Set a timer for ten minutes.",
    "What is the square root of one hundred and forty four?",
    "Which planet is closest to the sun?",
    "Recommend a good science fiction book.",
    "How do you say thank you in Japanese?",
    "What are the opening hours of the museum?",
    "Why is the sky blue?",
    "Can you summarize the news for me?",
    "How long should I boil an egg?",
    "What is the tallest mountain in the world?",
    "Play something relaxing for me.",
];
const VOICES: &[(&str, &str)] = &[
    ("en-us", "165"),
    ("en", "150"),
    ("en-us+f3", "175"),
    ("en+m3", "160"),
];

struct Discard;
impl AudioOutput for Discard {
    fn enqueue(&self, _audio: &Audio, _start_at: Instant) {}
    fn stop(&self, _at: Instant) {}
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("target/<profile>")
}

fn model() -> PathBuf {
    [
        root().join("models/ggml-tiny.en.bin"),
        root().join("../shared/models/ggml-tiny.en.bin"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .expect("the tiny.en model: run `make model`")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// One measured turn: question, voice, audio ms, STT ms after the endpoint, voice-to-voice
/// ms, transcript.
type Row = (String, &'static str, u64, f64, f64, String);

/// The `OPENCLAW__…` overrides every run here uses: the release plugins and the model.
fn overrides() -> Vec<(String, String)> {
    vec![
        (
            "OPENCLAW__PLUGINS__DIR".to_string(),
            format!("\"{}\"", profile_dir().display()),
        ),
        (
            "OPENCLAW__PROVIDERS__LOCAL-WHISPER__SETTINGS__MODEL".to_string(),
            format!("\"{}\"", model().display()),
        ),
    ]
}

/// `question` spoken by espeak-ng into `path`.
fn speak(path: &Path, question: &str, (voice, speed): (&str, &str)) {
    let ok = Command::new("espeak-ng")
        .args(["-v", voice, "-s", speed, "-w"])
        .arg(path)
        .arg(question)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "espeak-ng failed (make deps)");
}

/// Every question through one session, frame by frame; a row per turn.
async fn run_questions(work: &Path, loaded: &config::LoadedConfig) -> Vec<Row> {
    let set = PluginSet::scan(&profile_dir()).expect("plugins");
    let providers = Providers::build(&set, &loaded.config).await;
    assert!(
        providers.failures.is_empty() && !providers.stt.is_empty() && !providers.tts.is_empty(),
        "providers: {:?} (run `make build`)",
        providers.failures
    );
    let deps = SessionDeps {
        stt: providers.stt,
        tts: providers.tts,
        agent: Agent::Echo,
        config: loaded.config.pipeline.clone(),
        voices: loaded.config.tts.voices.clone(),
        // No turn models: the energy gate and its fixed hang-over. This bench measures from
        // the endpoint on (the turn-taking bench in docs/BENCHMARKS.md measures end of
        // speech → reply with the models).
        models: Default::default(),
    };
    let playback = Arc::new(Playback::new(Arc::new(Discard), false));
    let (mut router, mut session) = VoiceSession::start(deps, "bench".into(), playback);
    let mut rows = Vec::new();
    for (n, question) in QUESTIONS.iter().enumerate() {
        let voice = VOICES[n % VOICES.len()];
        let path = work.join(format!("q{n}.wav"));
        speak(&path, question, voice);
        let wav = read_wav(&path).expect("wav");
        let speaker = Speaker {
            id: format!("s{}", n % 3),
            name: format!("speaker{}", n % 3),
        };
        let frame = (wav.sample_rate / 50) as usize * usize::from(wav.channels);
        let silence = vec![0i16; frame];
        let hangover_frames = loaded.config.pipeline.silence_hangover_ms as usize / 20 + 2;
        for chunk in wav
            .samples
            .chunks(frame)
            .chain(std::iter::repeat_n(&silence[..], hangover_frames))
        {
            let mut f = chunk.to_vec();
            f.resize(frame, 0);
            router.push(&speaker, &f, wav.channels, wav.sample_rate, Instant::now());
        }
        let report = tokio::time::timeout(Duration::from_secs(60), session.reports.recv())
            .await
            .expect("a turn within 60 s")
            .expect("session alive");
        let ms = report.timeline.ms();
        rows.push((
            question.to_string(),
            voice.0,
            report.utterance_ms,
            ms.stt_done.unwrap_or(f64::NAN) - ms.endpoint_detected,
            ms.voice_to_voice.unwrap_or(f64::NAN),
            report.transcript.clone(),
        ));
    }
    session.shutdown();
    rows
}

/// The table and the percentiles.
fn report(rows: &[Row]) {
    println!(
        "{:<4} {:<9} {:>7} {:>8} {:>8}  transcript",
        "#", "voice", "audio", "stt ms", "v2v ms"
    );
    for (n, (_q, voice, audio_ms, stt, v2v, transcript)) in rows.iter().enumerate() {
        println!(
            "{:<4} {:<9} {:>5} ms {:>8.0} {:>8.0}  {transcript}",
            n + 1,
            voice,
            audio_ms,
            stt,
            v2v
        );
    }
    let sorted = |f: fn(&Row) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(f).filter(|v| v.is_finite()).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let (v2v, stt) = (sorted(|r| r.4), sorted(|r| r.3));
    println!(
        "voice-to-voice over {} turns: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms (stt p50 {:.0} ms)",
        v2v.len(),
        percentile(&v2v, 0.5),
        percentile(&v2v, 0.95),
        v2v.last().copied().unwrap_or(f64::NAN),
        percentile(&stt, 0.5)
    );
}

/// Peak RSS of a whole `simulate` run with tiny.en on `question`, with the defaults (the
/// turn-taking models, when installed) and with the energy gate.
fn simulate_rss(work: &Path, question: &Path, vars: &[(String, String)]) {
    for (label, extra) in [
        ("defaults", vec![]),
        (
            "energy gate, no turn model",
            vec![
                ("OPENCLAW__PIPELINE__VAD", "\"energy\""),
                ("OPENCLAW__PIPELINE__TURN_MODEL", "\"none\""),
            ],
        ),
    ] {
        let out = Command::new(profile_dir().join("openclaw-voice"))
            .current_dir(root())
            .args(["--env", "offline", "simulate", "--fast", "--input"])
            .arg(question)
            .arg("--output")
            .arg(work.join("reply.wav"))
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra)
            .output()
            .expect("run openclaw-voice simulate");
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().find(|l| l.contains("peak memory")) {
            Some(line) => println!("simulate ({label}): {line}"),
            None => println!("simulate ({label}) did not report its peak memory:\n{text}"),
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let work = tempfile::tempdir().expect("temp dir");
    let vars = overrides();
    let loaded = config::load(&root().join("config"), "offline", vars.clone()).expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let rows = rt.block_on(run_questions(work.path(), &loaded));
    report(&rows);
    simulate_rss(work.path(), &work.path().join("q0.wav"), &vars);
}
