//! Frame path cost: one 20 ms frame of 48 kHz stereo (Discord's format) through endpointing,
//! resampling to 16 kHz and buffering, per speaker. Goal: ≤ 5 µs per frame.
//!
//! `cargo bench -p openclaw-voice --bench frame_path`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use openclaw_voice::config::PipelineConfig;
use openclaw_voice::pipeline::{
    AudioOutput, EndpointConfig, FrameRouter, Playback, SessionDeps, Speaker, SpeakerEndpointer,
    VoiceSession,
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
    let mut router: FrameRouter = rt.block_on(async {
        let playback = Arc::new(Playback::new(Arc::new(Discard), true));
        let deps = SessionDeps {
            stt: Vec::new(),
            tts: Vec::new(),
            agent: openclaw_voice::agent::Agent::Echo,
            config: PipelineConfig::default(),
            models: Default::default(),
        };
        let (router, session) = VoiceSession::start(deps, "bench".into(), playback);
        std::mem::forget(session);
        router
    });
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
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
