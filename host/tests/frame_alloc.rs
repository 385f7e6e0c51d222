//! The frame path's invariant (ARCHITECTURE.md): once warm, a frame through the
//! `FrameRouter` does not allocate. Counted with a global allocator that tallies the
//! allocations of the current thread only (the session's tasks run on other threads).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openclaw_voice::config::PipelineConfig;
use openclaw_voice::pipeline::{
    AudioOutput, FrameRouter, Playback, SessionDeps, Speaker, TurnModels, VoiceSession,
};
use openclaw_voice::plugins::Audio;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; the counter is a
// thread-local `Cell` that allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

struct Discard;

impl AudioOutput for Discard {
    fn enqueue(&self, _audio: &Audio, _start_at: Instant) {}
    fn stop(&self, _at: Instant) {}
}

/// A 20 ms frame of 48 kHz stereo: a steady 180 Hz voice (`loud`) or digital silence.
fn frame(loud: bool) -> Vec<i16> {
    (0..960)
        .flat_map(|i| {
            let t = i as f32 / 48_000.0;
            let v = if loud {
                ((t * 180.0 * std::f32::consts::TAU).sin() * 9_000.0) as i16
            } else {
                0
            };
            [v, v]
        })
        .collect()
}

#[test]
fn a_warm_frame_path_does_not_allocate_per_frame() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut router: FrameRouter = rt.block_on(async {
        let deps = SessionDeps {
            stt: Vec::new(),
            tts: Vec::new(),
            agent: openclaw_voice::agent::Agent::Echo,
            config: PipelineConfig::default(),
            voices: Default::default(),
            models: TurnModels::default(),
        };
        let playback = Arc::new(Playback::new(Arc::new(Discard), true));
        let (router, session) = VoiceSession::start(deps, "alloc".into(), playback);
        std::mem::forget(session);
        router
    });
    let speakers: Vec<Speaker> = (0..20)
        .map(|n| Speaker {
            id: format!("{n}"),
            name: format!("speaker {n}"),
        })
        .collect();
    let (silence, voice) = (frame(false), frame(true));
    let mut now = Instant::now();
    let mut tick = |router: &mut FrameRouter, pcm: &[i16], ticks: usize| {
        for _ in 0..ticks {
            now += Duration::from_millis(20);
            for speaker in &speakers {
                router.push(speaker, pcm, 2, 48_000, now);
            }
        }
    };
    // Warm: every speaker has its slot and has talked once.
    tick(&mut router, &silence, 10);
    tick(&mut router, &voice, 20);

    // Mid-utterance: the utterance buffer grows by doubling, never once per frame.
    let before = allocations();
    tick(&mut router, &voice, 50);
    let talking = allocations() - before;
    let frames = 50 * speakers.len() as u64;
    assert!(
        talking < frames / 10,
        "{talking} allocations for {frames} frames of speech"
    );

    // Silence after the utterances ended: nothing at all.
    tick(&mut router, &silence, 100);
    let before = allocations();
    tick(&mut router, &silence, 50);
    assert_eq!(allocations() - before, 0, "silent frames allocated");
}
