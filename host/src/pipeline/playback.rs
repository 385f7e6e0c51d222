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
    /// While audio plays: when this stretch of it started, and when it ends.
    playing: Mutex<Option<(Instant, Instant)>>,
}

impl Playback {
    /// Playback on `output`. With `realtime` false (offline `--fast` runs) audio counts as
    /// played at once: the bot is never "talking", so there is no barge-in.
    pub fn new(output: Arc<dyn AudioOutput>, realtime: bool) -> Self {
        Playback {
            output,
            realtime,
            playing: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Instant)>> {
        match self.playing.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Queues audio; returns when it will start playing.
    pub fn enqueue(&self, audio: &Audio) -> Instant {
        let now = Instant::now();
        let mut playing = self.lock();
        let (began, start) = match *playing {
            Some((began, end)) if end > now => (began, end),
            _ => (now, now),
        };
        self.output.enqueue(audio, start);
        if self.realtime {
            *playing = Some((began, start + duration(audio)));
        }
        start
    }

    /// Whether audio plays in real time (not an offline `--fast` run).
    pub(crate) fn is_realtime(&self) -> bool {
        self.realtime
    }

    /// Whether queued audio is still playing.
    pub(crate) fn is_playing(&self) -> bool {
        matches!(*self.lock(), Some((_, end)) if end > Instant::now())
    }

    /// When the queued audio ends, if it is still playing.
    pub(crate) fn ends_at(&self) -> Option<Instant> {
        let playing = *self.lock();
        playing.map(|(_, end)| end).filter(|e| *e > Instant::now())
    }

    /// Stops playback now, dropping what was not played; how long the audio stopped had
    /// been playing, if any was.
    pub fn stop(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut playing = self.lock();
        let played = playing
            .take()
            .filter(|(_, end)| *end > now)
            .map(|(began, _)| now.saturating_duration_since(began));
        self.output.stop(now);
        played
    }
}

/// How long `audio` plays.
pub fn duration(audio: &Audio) -> Duration {
    Duration::from_micros(
        audio.samples.len() as u64 * 1_000_000 / u64::from(audio.sample_rate.max(1)),
    )
}
