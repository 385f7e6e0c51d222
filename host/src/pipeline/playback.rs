//! Playback: queues the bot's audio on a transport's output and keeps the clock of what is
//! playing, so barge-in knows whether the bot is talking and timelines know when audio starts.
//!
//! **Architecture Invariant:** `enqueue` never blocks (transports copy the audio into their
//! own queue); no audio thread ever waits on the pipeline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::plugins::Audio;

/// A transport's audio output (the local WAV recorder, a Discord call).
pub trait AudioOutput: Send + Sync + 'static {
    /// Queues `audio` to start playing at `start_at`, right after what is already queued.
    fn enqueue(&self, audio: &Audio, start_at: Instant);
    /// Stops at `at`: what has not been played by then is dropped.
    fn stop(&self, at: Instant);
}

/// The pipeline's view of playback.
pub struct Playback {
    output: Arc<dyn AudioOutput>,
    realtime: bool,
    end_at: Mutex<Option<Instant>>,
}

impl Playback {
    /// Playback on `output`. With `realtime` false (offline `--fast` runs) audio counts as
    /// played at once: the bot is never "talking", so there is no barge-in.
    pub fn new(output: Arc<dyn AudioOutput>, realtime: bool) -> Self {
        Playback {
            output,
            realtime,
            end_at: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        match self.end_at.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Queues audio; returns when it will start playing.
    pub fn enqueue(&self, audio: &Audio) -> Instant {
        let now = Instant::now();
        let mut end_at = self.lock();
        let start = match *end_at {
            Some(end) if end > now => end,
            _ => now,
        };
        self.output.enqueue(audio, start);
        if self.realtime {
            *end_at = Some(start + duration(audio));
        }
        start
    }

    /// Whether queued audio is still playing.
    pub(crate) fn is_playing(&self) -> bool {
        matches!(*self.lock(), Some(end) if end > Instant::now())
    }

    /// When the queued audio ends, if it is still playing.
    pub(crate) fn ends_at(&self) -> Option<Instant> {
        let end = *self.lock();
        end.filter(|e| *e > Instant::now())
    }

    /// Stops playback now, dropping what was not played.
    pub fn stop(&self) {
        let now = Instant::now();
        let mut end_at = self.lock();
        *end_at = None;
        self.output.stop(now);
    }
}

/// How long `audio` plays.
pub fn duration(audio: &Audio) -> Duration {
    Duration::from_micros(
        audio.samples.len() as u64 * 1_000_000 / u64::from(audio.sample_rate.max(1)),
    )
}
