//! Frame path cost: one 20 ms frame of 48 kHz stereo through endpointing, resampling to
//! 16 kHz and buffering, per speaker (goal: ≤ 5 µs per frame); and, with Silero VAD, one
//! 20 ms tick of 200 speakers of whom 20 are talking (real speech) and 180 are silent, in
//! 16 kHz mono (what the Discord transport decodes to), through the router (goal: within
//! 10 % of one core, i.e. ≤ 2 ms per tick). The Silero part needs `make model`.
//!
//! `cargo bench -p openclaw-voice --bench frame_path`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use openclaw_voice::config::PipelineConfig;
use openclaw_voice::config::VadKind;
use openclaw_voice::pipeline::{
    AudioOutput, EndpointConfig, FrameRouter, Playback, SessionDeps, Speaker, SpeakerEndpointer,
    TurnModels, VoiceSession,
};
use openclaw_voice::plugins::Audio;

/// 50 frames (1 s) of speech-like audio: a 180 Hz voice with a 4 Hz syllable envelope, with
/// pauses, so the gate opens and closes as it would on real speech.
fn frames() -> Vec<Vec<i16>> {
    let mut out = Vec::new();
    let mut n = 0u64;
    for f in 0..50 {
        let mut frame = Vec::with_capacity(1920);
        for _ in 0..960 {
            let t = n as f32 / 48_000.0;
            let envelope = if f % 25 < 18 {
                (t * 4.0 * std::f32::consts::TAU).sin().abs()
            } else {
                0.0
            };
            let v = ((t * 180.0 * std::f32::consts::TAU).sin() * 0.3 * envelope * 32767.0) as i16;
            frame.push(v);
            frame.push(v);
            n += 1;
        }
        out.push(frame);
    }
    out
}

struct Discard;
impl AudioOutput for Discard {
    fn enqueue(&self, _audio: &Audio, _start_at: Instant) {}
    fn stop(&self, _at: Instant) {}
}

/// A router with a live session behind it (no providers: an utterance fails at once).
fn router(rt: &tokio::runtime::Runtime, config: PipelineConfig, models: TurnModels) -> FrameRouter {
    rt.block_on(async {
        let playback = Arc::new(Playback::new(Arc::new(Discard), true));
        let deps = SessionDeps {
            stt: Vec::new(),
            tts: Vec::new(),
            agent: openclaw_voice::agent::Agent::Echo,
            config,
            voices: Default::default(),
            models,
        };
        let (router, session) = VoiceSession::start(deps, "bench".into(), playback);
        std::mem::forget(session);
        router
    })
}

/// 20 ms frames of 16 kHz mono speech: the Smart Turn fixture clip (espeak-ng, 2 s) with
/// 0.6 s of silence after it, so talkers pause and start again as people do.
fn speech_frames() -> Vec<Vec<i16>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/turn/clip.wav");
    let mut wav = hound::WavReader::open(path).expect("the fixture clip");
    let mut pcm: Vec<i16> = wav.samples::<i16>().map(|s| s.expect("a sample")).collect();
    pcm.resize(pcm.len() + 9_600, 0);
    pcm.chunks_exact(320).map(<[i16]>::to_vec).collect()
}

/// Silero for 200 speakers, 20 of them talking: the cost of one 20 ms tick.
fn bench_many_speakers(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let config = PipelineConfig {
        vad: VadKind::Silero,
        ..PipelineConfig::default()
    };
    let models = TurnModels::load(&config).expect("the turn-taking models load");
    assert!(
        models.vad.is_some(),
        "Silero VAD is not installed: run `make model`"
    );
    let mut router = router(rt, config, models);
    let speech = speech_frames();
    // Quiet room noise at about -70 dBFS: under the -60 dBFS gate, as a muted or idle user.
    let silence: Vec<i16> = (0..320).map(|i| [7, -9, 4, -6, 10][i % 5]).collect();
    let speakers: Vec<Speaker> = (0..200)
        .map(|n| Speaker {
            id: n.to_string(),
            name: format!("speaker {n}"),
        })
        .collect();
    let mut now = Instant::now();
    let mut tick = 0usize;
    let mut one_tick = |router: &mut FrameRouter| {
        now += Duration::from_millis(20);
        for (n, speaker) in speakers.iter().enumerate() {
            // Talkers start at different points of the clip.
            let frame = if n % 10 == 0 {
                &speech[(tick + n * 7) % speech.len()]
            } else {
                &silence
            };
            router.push(speaker, black_box(frame), 1, 16_000, now);
        }
        tick += 1;
    };
    c.bench_function(
        "frame router + Silero: 20 ms tick, 200 speakers (20 talking), 16 kHz mono",
        |b| b.iter(|| one_tick(&mut router)),
    );
    // Wall time swells when other work shares the cores; the thread's own CPU time does not.
    let ticks = 1_500; // 30 s of audio
    let started = thread_cpu();
    for _ in 0..ticks {
        one_tick(&mut router);
    }
    let per_tick = (thread_cpu() - started) / ticks as f64;
    println!(
        "200 speakers (20 talking), Silero: {:.3} ms CPU per 20 ms tick = {:.1} % of one core \
         (goal <= 10 %)",
        per_tick * 1000.0,
        per_tick / 0.020 * 100.0
    );
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn bench(c: &mut Criterion) {
    let frames = frames();
    let cfg = EndpointConfig::from(&PipelineConfig::default());

    c.bench_function("endpointer: 20 ms 48 kHz stereo frame", |b| {
        let mut ep = SpeakerEndpointer::new(cfg);
        let mut now = Instant::now();
        let mut i = 0;
        b.iter(|| {
            now += Duration::from_millis(20);
            let e = ep.push(black_box(&frames[i % frames.len()]), 2, 48_000, now);
            i += 1;
            black_box(e)
        })
    });

    // The whole per-frame path a transport drives: router lookup, endpointing, barge-in check
    // and event send, with a live session behind it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut router = router(&rt, PipelineConfig::default(), TurnModels::default());
    let speaker = Speaker {
        id: "1".into(),
        name: "bench".into(),
    };
    c.bench_function(
        "frame router: 20 ms 48 kHz stereo frame, one speaker",
        |b| {
            let mut now = Instant::now();
            let mut i = 0;
            b.iter(|| {
                now += Duration::from_millis(20);
                router.push(
                    &speaker,
                    black_box(&frames[i % frames.len()]),
                    2,
                    48_000,
                    now,
                );
                i += 1;
            })
        },
    );
    bench_many_speakers(c, &rt);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
